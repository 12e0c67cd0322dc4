"""Warm-up data generation on a scripted generator and the fact-token StubNLI; the stage end to end."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import StubNLI

from start.config import build_warmup_config
from start.sampling.backends import Generation
from start.scoring import AttributionScorer, ScorerConfig
from start.warmup import (
    MemoNLI,
    WarmDoc,
    WarmupConfig,
    WarmupItem,
    check_documents,
    clean_answer,
    decompose_claims,
    generate_answers,
    generate_documents,
    group_claims,
    group_indices,
    insert_citations,
    on_topic,
    parse_claims,
    parse_document,
    relabel,
    render_user_message,
    to_alce,
    topic_words,
    verify,
)
from start.warmup.config import AnswerStep, ClaimStep, DocumentStep, GroupStep, RelabelStep, WarmupPrompts

CONF = Path(__file__).resolve().parents[1] / "conf"
FACT = re.compile(r"\bF\d+\b")
BAD_FACT = "F9"  # the scripted document writer never manages to state this fact (nor "EMPTY" claims at all)


class PlainTokenizer:
    chat_template = None


class ScriptedLM:
    """Answers by rule, per step, from the prompt text; records every generate() call."""

    def __init__(self, answers: dict[str, str], tokenizer=None):
        self.answers = answers
        self.tokenizer = tokenizer or PlainTokenizer()
        self.calls: list[list[str]] = []

    def respond(self, prompt: str) -> str:
        prompt = prompt.split(" </s>")[0]  # the tiny model's chat template closes the user turn on the same line
        if "Facts:" in prompt:  # step 4: a document stating the listed claims (except the bad fact)
            claims = re.findall(r"^- (.*)$", prompt.split("Facts:")[-1], flags=re.M)
            if any("EMPTY" in c for c in claims):
                return "  "
            body = " ".join(c.replace(BAD_FACT, "a vague thing") for c in claims)
            return f"Title: Scripted topic\n{body} More background text here."
        if "Text:" in prompt:  # step 2: one claim per fact token, with list noise
            answer = prompt.split("Text: ")[-1].splitlines()[0]
            facts = FACT.findall(answer)
            lines = ["Here are the facts:"] + [f"{i + 1}. The subject has {f}." for i, f in enumerate(facts)]
            return "\n".join(lines + ([f"- the subject has {facts[0]}"] if facts else []))  # a duplicate
        question = re.search(r"Question: (.*)", prompt).group(1).strip()
        return self.answers[question]

    def generate(self, prompts, params, seeds):
        """One output per prompt, or ``params.n`` when the scripted answer is a list of candidates."""
        assert len(prompts) == len(seeds)
        self.calls.append(list(prompts))
        out = []
        for p in prompts:
            texts = self.respond(p)
            texts = texts if isinstance(texts, list) else [texts] * params.n
            assert len(texts) == params.n
            out.append([Generation(t, -1.0, 3) for t in texts])
        return out


@pytest.fixture(scope="module")
def cfg() -> WarmupConfig:
    from omegaconf import OmegaConf

    return WarmupConfig.from_dict(OmegaConf.to_container(OmegaConf.load(CONF / "warmup" / "default.yaml")))


def doc(text: str, *claims: str, distractor: bool = False, source: str = "q") -> WarmDoc:
    return WarmDoc("T", text, tuple(claims), source, distractor)


# ------------------------------------------------------------------------------------ steps 1-2


def test_answers_are_generated_in_one_call_and_cleaned(cfg):
    lm = ScriptedLM({"Q one?": "The tower is in F1 [2]. It was built in F2 and", "Q two?": "  ",
                     "Q three?": "No final stop"})
    items = [WarmupItem("a", "Q one?"), WarmupItem("b", "Q two?"), WarmupItem("c", "Q three?")]
    out, stats = generate_answers(items, lm, cfg.prompts, replace(cfg.answer, require_topic=False), seed=0)
    assert len(lm.calls) == 1 and len(lm.calls[0]) == 3
    assert [it.answer for it in out] == ["The tower is in F1."]  # citation removed, cut sentence dropped
    assert stats.dropped == {"empty_answer": 1, "too_few_sentences": 1} and (stats.n_in, stats.n_out) == (3, 1)


def test_topic_is_the_rarest_content_word():
    questions = ["What is the atomic number of actinium?", "Which atomic number does gold have?",
                 "What is iron's atomic number?", "Who discovered gold?", "Why?"]
    assert topic_words(questions) == [frozenset({"actinium"}), frozenset({"gold"}), frozenset({"iron"}),
                                      frozenset({"discovered"}), frozenset()]
    assert on_topic("Actinium has 89 protons.", frozenset({"actinium"}))
    assert not on_topic("Aminoacioxidant is a compound.", frozenset({"actinium"}))
    assert on_topic("Anything at all.", frozenset())


def test_off_topic_answers_are_dropped_and_later_candidates_used(cfg):
    lm = ScriptedLM({"What is the atomic number of actinium?": ["Aminoacioxidant is a compound.",
                                                                 "Actinium has atomic number F1."],
                     "What is the atomic number of gold?": ["It is a metal.", "No stop"],
                     "What is the atomic number of iron?": ["", "Iron is F2."]})
    items = [WarmupItem("a", "What is the atomic number of actinium?"),
             WarmupItem("b", "What is the atomic number of gold?"),
             WarmupItem("c", "What is the atomic number of iron?")]
    out, stats = generate_answers(items, lm, cfg.prompts, replace(cfg.answer, candidates=2), seed=0)
    assert [(it.id, it.answer) for it in out] == [("a", "Actinium has atomic number F1."), ("c", "Iron is F2.")]
    assert stats.dropped == {"off_topic": 1}  # the first candidate's reason
    assert stats.counts == {"candidate_off_topic": 2, "candidate_too_few_sentences": 1, "candidate_empty_answer": 1}
    with pytest.raises(ValueError, match="candidates"):
        AnswerStep(candidates=0)


def test_prompts_go_through_the_chat_template(cfg, tiny_causal_lm):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_causal_lm)
    text = render_user_message(tok, "hello", use_chat_template=True)
    assert text.startswith("<user> hello") and text.rstrip().endswith("<assistant>")
    assert render_user_message(PlainTokenizer(), "hello") == "hello\n\nResponse:"
    lm = ScriptedLM({"Q?": "It is F1."}, tokenizer=tok)
    generate_answers([WarmupItem("a", "Q?")], lm, cfg.prompts, cfg.answer, seed=0)
    assert lm.calls[0][0].startswith("<user> Answer the question")


def test_clean_answer_limits_sentences():
    assert clean_answer("A is F1. B is F2.\nC is F3! D is F4?", 3) == ["A is F1.", "B is F2.", "C is F3!"]


@pytest.mark.parametrize("text, expected", [
    ("1. Paris is in France.\n2) It has a tower.\n(3) The tower is tall.",
     ["Paris is in France.", "It has a tower.", "The tower is tall."]),
    ("- Paris is in France\n* Lyon is in France\n• Nice is in France",
     ["Paris is in France.", "Lyon is in France.", "Nice is in France."]),
    ("Claim 1: Paris is in France.\nFact 2 - Lyon is in France.", ["Paris is in France.", "Lyon is in France."]),
    ("1. Paris is in France. 2. Lyon is in France. 3. Nice is big.",
     ["Paris is in France.", "Lyon is in France.", "Nice is big."]),
    ("Here are the claims:\n\n1. Paris is in France [1].\n2. paris is in france\n3. Yes.",
     ["Paris is in France."]),
    ("1889 was the year it opened.\n3.5 million people visit it.",
     ["1889 was the year it opened.", "3.5 million people visit it."]),
    ("It opened in 1889. 2. Not a list", ["It opened in 1889. 2. Not a list."]),
    ("", []),
    ('"Quoted claim is here."', ["Quoted claim is here."]),
])
def test_claim_parsing(text, expected):
    assert parse_claims(text)[0] == expected


def test_claim_parsing_counts_what_it_cuts():
    claims, counts = parse_claims("Facts:\n1. A b c.\n2. a B c\n3. No.\n4. D e f.\n5. G h i.", max_claims=2)
    assert claims == ["A b c.", "D e f."]
    assert counts == {"header": 1, "duplicate": 1, "too_short": 1, "over_max": 1}


def test_claims_step_drops_answers_without_claims(cfg):
    lm = ScriptedLM({})
    items = [WarmupItem("a", "Q?", answer="It has F1 and F2."), WarmupItem("b", "Q?", answer="No facts here.")]
    out, stats = decompose_claims(items, lm, cfg.prompts, cfg.claims, seed=0)
    assert len(lm.calls) == 1
    assert out[0].claims == ("The subject has F1.", "The subject has F2.")
    assert stats.dropped == {"no_claims": 1}
    assert stats.counts["claims_duplicate"] == 1 and stats.counts["claims_header"] == 2


# ------------------------------------------------------------------------------------ steps 3-4


def test_grouping_is_a_seeded_partition():
    items = [WarmupItem(f"q{i}", "Q?", claims=tuple(f"Claim number {j}." for j in range(7))) for i in range(20)]
    a, _ = group_claims(items, GroupStep(3), seed=1)
    b, _ = group_claims(list(reversed(items)), GroupStep(3), seed=1)
    c, stats = group_claims(items, GroupStep(3), seed=2)
    assert {it.id: it.groups for it in a} == {it.id: it.groups for it in b}  # per question, order-independent
    assert [it.groups for it in a] != [it.groups for it in c]
    for it in a:
        flat = sorted(i for g in it.groups for i in g)
        assert flat == list(range(7)) and all(1 <= len(g) <= 3 for g in it.groups)
    assert {k for k in stats.counts} >= {"groups_of_1", "groups_of_2", "groups_of_3"}
    assert group_indices(0, 3, random.Random(0)) == []


def test_documents_with_recorded_distractors(cfg):
    lm = ScriptedLM({})
    items = [WarmupItem(f"q{i}", f"Question {i}?", claims=(f"The subject has F{i}1.", f"The subject has F{i}2."),
                        groups=((0,), (1,))) for i in range(1, 4)]
    out, stats = generate_documents(items, lm, cfg.prompts, DocumentStep(n_distractors=2), seed=0)
    assert len(lm.calls) == 1 and len(lm.calls[0]) == 6
    for it in out:
        assert len(it.docs) == 4
        positions = it.distractor_positions
        assert len(positions) == 2 and all(it.docs[p].source != it.id for p in positions)
        assert all(d.source == it.id for i, d in enumerate(it.docs) if i not in positions)
        assert it.to_dict()["distractor_positions"] == positions
    again, _ = generate_documents(items, lm, cfg.prompts, DocumentStep(n_distractors=2), seed=0)
    assert again == out
    shuffles = {tuple(generate_documents(items, lm, cfg.prompts, DocumentStep(n_distractors=2), seed=s)[0][0]
                      .distractor_positions) for s in range(8)}
    assert len(shuffles) > 1  # positions depend on the seed
    assert stats.counts["distractors"] == 6 and out[0].docs[0].title == "Scripted topic"


def test_documents_that_come_back_empty_are_counted(cfg):
    lm = ScriptedLM({})
    items = [WarmupItem("a", "Where is it?", claims=("The subject is EMPTY.",), groups=((0,),)),
             WarmupItem("b", "Where is it?", claims=("The subject has F1.",), groups=((0,),))]
    out, stats = generate_documents(items, lm, cfg.prompts, DocumentStep(n_distractors=3, title="question"), seed=0)
    assert [it.id for it in out] == ["b"]
    assert stats.dropped == {"no_documents": 1}
    assert stats.counts["empty_document"] == 1 and stats.counts["distractor_shortfall"] == 3
    assert out[0].docs[0].title == "Where is it"


def test_parse_document_without_title():
    assert parse_document("Just text\nover lines [1].") == (None, "Just text over lines.")
    assert parse_document("**Title:** Paris\n\nContent: Paris is big.") == ("Paris", "Paris is big.")
    # an echoed prompt, a broken title and a sentence cut by the token limit
    echo = 'Title: Title: "Title: "\nTopic: Where?\nFacts:\n- Paris is big.\nIt has a tower. It was built in'
    assert parse_document(echo) == (None, "Paris is big. It has a tower.")


# --------------------------------------------------------------------------------------- step 5


def test_documents_failing_their_own_claims_are_discarded():
    nli = MemoNLI(StubNLI())
    good, bad = doc("About F1 and F2.", "Has F1.", "Has F2."), doc("About F3 only.", "Has F3.", "Has F4.")
    bad_distractor = doc("About F5.", "Has F6.", distractor=True, source="other")
    items = [WarmupItem("a", "Q?", docs=(good, bad, bad_distractor)), WarmupItem("b", "Q?", docs=(bad,))]
    out, stats = check_documents(items, nli)
    assert [it.docs for it in out] == [(good,)]
    assert stats.counts == {"document_fails_own_claims": 2, "distractor_fails_own_claims": 1}
    assert stats.dropped == {"no_valid_documents": 1}
    assert nli.calls == 1  # one batched, deduplicated call for the whole step
    assert nli.pairs_asked == 5


def test_relabel_picks_minimal_covering_sets():
    stub = StubNLI()
    nli = MemoNLI(stub)
    docs = (doc("Doc F1 F5."), doc("Doc F2."), doc("Doc F3."), doc("Doc F7.", distractor=True, source="x"),
            doc("Doc F1 F2 F4."))
    answer = "Alpha F1. Beta F1 F3. Gamma F2 F3 F5. Delta F9. Eps F4 F1."
    item = WarmupItem("a", "Q?", answer=answer, docs=docs)
    (out,), stats = relabel([item], nli, RelabelStep())
    # F1: docs 1 and 5 both entail alone -> the earliest; F1 F3: a pair; F2 F3 F5: a triple (F2 from doc 2,
    # not the larger doc 5, because both cost the same and doc 2 comes first); F9: nobody; F4 F1: doc 5 alone
    assert out.cited_answer == "Alpha F1 [1]. Beta F1 F3 [1][3]. Gamma F2 F3 F5 [1][2][3]. Eps F4 F1 [5]."
    assert out.dropped_sentences == ("Delta F9.",)
    assert stats.counts["sentences_dropped_unsupported"] == 1
    assert stats.counts["sentences_with_3_citations"] == 1
    assert len(stub.calls) == 3  # singles, pairs, triples: one batched call each
    assert all(len(set(call)) == len(call) for call in stub.calls)  # deduplicated
    assert not any("F7" in p for call in stub.calls[1:] for p, _ in call)  # distractors never combined
    report = AttributionScorer(nli, ScorerConfig(cache=False)).score([to_alce(out)])
    assert report.records[0].citation_rec == 1.0 and report.records[0].citation_prec == 1.0


def test_relabel_drop_policies_and_distractors_that_entail():
    nli = MemoNLI(StubNLI())
    docs = (doc("Doc F1."), doc("Doc F2.", distractor=True, source="x"))
    item = WarmupItem("a", "Q?", answer="Alpha F1. Beta F2. Gamma F3.", docs=docs)
    (out,), stats = relabel([item], nli, RelabelStep())
    assert out.docs == docs[:1]  # the distractor supports the answer: it is no distractor here
    assert out.cited_answer == "Alpha F1 [1]." and stats.counts["distractor_entails_answer"] == 1
    out, stats = relabel([item], nli, RelabelStep(unsupported="drop_example"))
    assert out == [] and stats.dropped == {"unsupported_sentence": 1}
    out, stats = relabel([item], nli, RelabelStep(min_sentences=2))
    assert out == [] and stats.dropped == {"too_few_supported_sentences": 1}


def test_insert_citations():
    assert insert_citations("It is tall.", [2]) == "It is tall [2]."
    assert insert_citations('He said "yes."', [1, 2]) == 'He said "yes [1][2]."'
    assert insert_citations("Is it tall?!", [1]) == "Is it tall [1]?!"
    assert insert_citations("No stop", [1]) == "No stop [1]"


def test_verification_keeps_only_perfect_examples():
    nli = MemoNLI(StubNLI())
    docs = (doc("Doc F1."), doc("Doc F2."))
    perfect = WarmupItem("p", "Q?", docs=docs, cited_answer="Alpha F1 [1]. Beta F1 F2 [1][2].")
    wrong = WarmupItem("w", "Q?", docs=docs, cited_answer="Alpha F1 [2].")
    extra = WarmupItem("e", "Q?", docs=docs, cited_answer="Alpha F1 [1][2].")
    out, stats = verify([perfect, wrong, extra], AttributionScorer(nli, ScorerConfig(cache=False)))
    assert [it.id for it in out] == ["p"]
    assert stats.dropped == {"recall_below_1": 1, "precision_below_1": 1}


def test_config_is_validated(cfg):
    with pytest.raises(ValueError, match="max_citations"):
        RelabelStep(max_citations=4)
    with pytest.raises(ValueError, match="min_sentences"):
        AnswerStep(min_sentences=3, max_sentences=2)
    with pytest.raises(ValueError, match="temperature"):
        ClaimStep(temperature=-1)
    with pytest.raises(ValueError, match="claims"):
        WarmupPrompts(answer="{question}", claims="no placeholder", document="{claims}")
    with pytest.raises(ValueError, match="title"):
        DocumentStep(title="random")
    assert cfg.relabel.max_citations == 3 and "{question}" in cfg.prompts.answer


# ----------------------------------------------------------------------------------------- stage

QUESTIONS = {
    "Where does the tower stand?": "The tower stands in F1 city. It was built by F2 in F3. Its colour is F9.",
    "Who wrote the book?": "The book was written by F4. It appeared in F5 and F6.",
    "What is the river called?": "",
    "What is the bad fact?": f"The bad fact is {BAD_FACT}.",
    "Where is the lake?": "The lake lies in F7. It is deep as F8 and F10. It feeds F11 with F12 water.",
}


def stage_cfg(tiny_causal_lm, tmp_path, **extra):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    data = tmp_path / "questions.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": q}) + "\n" for i, q in enumerate(QUESTIONS)))
    overrides = [f"model.name={tiny_causal_lm}", "model.dtype=float32", "model.max_model_len=512",
                 "sampler.max_new_tokens=32", f"data.source={data}", "warmup.split=train",
                 "sft.max_steps=2", "sft.batch_size=2", "sft.grad_accum=1", "sft.max_length=256",
                 "sft.use_lora=false", "sft.save_steps=1", "sft.learning_rate=1e-3",
                 *[f"{k}={v}" for k, v in extra.items()]]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="sample", overrides=["+warmup=default", "+trainer@sft=sft", *overrides])
    return build_warmup_config(OmegaConf.to_container(cfg, resolve=True))  # the stage's typed section


def test_warmup_stage_end_to_end_with_resume(tiny_causal_lm, tmp_path):
    from datasets import load_dataset

    from start.warmup import warmup_stage

    cfg = stage_cfg(tiny_causal_lm, tmp_path)
    out = tmp_path / "round_0" / "warmup"
    lm, stub = ScriptedLM(QUESTIONS), StubNLI()
    model_dir = warmup_stage(cfg, out, generator=lm, nli=stub)
    assert model_dir == out / "model" and (model_dir / "config.json").is_file()
    assert len(lm.calls) == 3  # answers, claims, documents: one generate() call each
    for name in ("stats.json", "manifest.json", "DONE", "metrics.json", "data/warmup.jsonl"):
        assert (out / name).is_file(), name

    ds = load_dataset("json", data_files=str(out / "data" / "warmup.jsonl"), split="train")
    assert {"prompt", "completion", "question", "docs", "answer"} <= set(ds.column_names)
    rows = list(ds)
    assert {r["id"] for r in rows} == {"q0", "q1", "q4"}
    for r in rows:
        assert r["prompt"].startswith("<user> Answer the question using only the documents")
        assert "Document [1](Title:" in r["prompt"] and r["question"] in r["prompt"]
        assert r["completion"] == r["answer"] and BAD_FACT not in r["answer"]
        assert [i for i, d in enumerate(r["docs"]) if d["distractor"]] == r["distractor_positions"]
    # the final check, independently: every example is perfectly cited
    report = AttributionScorer(StubNLI(), ScorerConfig(cache=False)).score(
        [{"question": r["question"], "docs": r["docs"], "output": r["answer"]} for r in rows])
    assert all(s.citation_rec == 1.0 and s.citation_prec == 1.0 for s in report.records)
    assert report.metrics["distractor_citation_rate"] == 0.0

    stats = json.loads((out / "stats.json").read_text())
    by_step = {s["step"]: s for s in stats["steps"]}
    assert by_step["answer"]["dropped"] == {"empty_answer": 1}
    assert by_step["check_documents"]["dropped"] == {"no_valid_documents": 1}
    assert by_step["check_documents"]["counts"]["document_fails_own_claims"] >= 2
    for s in stats["steps"]:
        assert s["in"] - s["out"] == sum(s["dropped"].values()), s["step"]
    assert stats["examples"] == 3 and stats["questions"] == 5

    # finished: skipped entirely
    lm2 = ScriptedLM(QUESTIONS)
    assert warmup_stage(cfg, out, generator=lm2, nli=StubNLI()) == model_dir and lm2.calls == []
    # interrupted after step 2 (later step files and the marker lost): only steps 3+ run again
    for f in ["DONE", "steps/3_grouping.json", "steps/4_documents.json", "steps/6_relabel.json"]:
        (out / f).unlink()
    before = (out / "data" / "warmup.jsonl").read_text()
    lm3 = ScriptedLM(QUESTIONS)
    warmup_stage(cfg, out, generator=lm3, nli=StubNLI())
    assert len(lm3.calls) == 1 and "Facts:" in lm3.calls[0][0]  # only the document step
    assert (out / "data" / "warmup.jsonl").read_text() == before  # seeded: the same data again
    assert (out / "DONE").is_file()


# ---------------------------------------------------------------------------------- real models

NLI_DIR = Path(__file__).resolve().parents[1] / "start" / "assets" / "nli-minilm"


@pytest.mark.slow
@pytest.mark.skipif(not (NLI_DIR / "config.json").is_file(),
                    reason=f"the bundled NLI model is missing ({NLI_DIR}/config.json); build it with `make nli-model`")
def test_warmup_with_smollm2_and_the_default_nli(tmp_path):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from start.models import resolve_model
    from start.warmup import warmup_stage

    try:
        resolve_model("smollm2-135m-instruct")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    overrides = ["data.source=embedded", "warmup.limit=8", "warmup.answer.candidates=2",
                 "warmup.answer.max_new_tokens=48",
                 "warmup.claims.max_new_tokens=64", "warmup.documents.max_new_tokens=48",
                 "warmup.documents.n_distractors=1", "warmup.relabel.min_sentences=1", "sampler.max_new_tokens=64",
                 "model.max_model_len=1024", "sft.max_steps=1", "sft.batch_size=1", "sft.max_length=512",
                 "sft.lora_r=4", "sft.save_steps=1"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        composed = compose(config_name="sample", overrides=["+warmup=default", "+trainer@sft=sft", *overrides])
        cfg = build_warmup_config(OmegaConf.to_container(composed, resolve=True))
    out = tmp_path / "warmup"
    model_dir = warmup_stage(cfg, out)  # 8 questions, 2 answer candidates each: some examples survive
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(model_dir) is not None
    stats = json.loads((out / "stats.json").read_text())
    assert stats["questions"] == 8 and stats["examples"] >= 1
    rows = list(load_dataset("json", data_files=str(out / "data" / "warmup.jsonl"), split="train"))
    assert len(rows) == stats["examples"]
    for r in rows:  # every kept sentence cites, and only documents written for this question
        assert re.search(r"\[\d+\]", r["completion"])
        cited = {int(n) - 1 for n in re.findall(r"\[(\d+)\]", r["completion"])}
        assert not cited & set(r["distractor_positions"])


class _Words:
    """A tokenizer that counts words (no chat template): the plain prompt path."""

    chat_template = None

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}


def test_sft_rows_under_document_orders_cite_every_position_alike():
    from start.sampling.prompt import PromptConfig
    from start.warmup import sft_row
    from start.warmup.stage import sft_rows

    docs = (doc("Doc F1."), doc("Doc F2."), doc("Doc F7.", distractor=True, source="x"))
    item = WarmupItem("a", "Q?", answer="Alpha F1. Beta F2.", docs=docs, cited_answer="Alpha F1 [1]. Beta F2 [2].")
    prompt = PromptConfig(instruction="answer and cite", max_model_len=512, max_new_tokens=16)
    assert [r["completion"] for r in sft_rows([item], prompt, _Words(), 1, seed=0)] == [
        sft_row(item, prompt, _Words())["completion"]]
    rows = sft_rows([item], prompt, _Words(), 3, seed=0)
    assert len(rows) == 3 and len({tuple(r["order"]) for r in rows}) == 3
    assert all(sorted(col) == [0, 1, 2] for col in zip(*(r["order"] for r in rows), strict=True))  # Latin square
    scorer = AttributionScorer(StubNLI(), ScorerConfig(cache=False))
    for r in rows:  # each row cites the documents where its prompt shows them: still perfectly cited
        f1_at, f2_at = r["order"].index(0) + 1, r["order"].index(1) + 1
        assert r["completion"] == f"Alpha F1 [{f1_at}]. Beta F2 [{f2_at}]."
        assert r["distractor_positions"] == [r["order"].index(2)]
        assert f"Document [{f1_at}](Title: T): Doc F1." in r["prompt"]
        rec = {"id": "x", "question": "Q?", "docs": r["docs"], "output": r["completion"]}
        score = scorer.score([rec]).records[0]
        assert score.citation_rec == 1.0 and score.citation_prec == 1.0
    cited = [int(c) for r in rows for c in re.findall(r"\[(\d+)\]", r["completion"])]
    assert sorted(cited) == [1, 1, 2, 2, 3, 3]
