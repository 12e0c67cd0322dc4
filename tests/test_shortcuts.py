"""Constant-citation baselines, the attribution margin, the scorer's comprehensiveness priority and the
report's shortcut sections (stub NLI: a sentence is entailed when its F<n> tokens are in the premise)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from start.evaluate import write_report
from start.io import write_json, write_jsonl
from start.pipeline import baselines_stage, eval_stage  # noqa: F401 - eval_stage: imported as the pipeline does
from start.scoring import AttributionScorer, ScorerConfig
from start.shortcuts import (
    CITE_ALL,
    COPY_FIRST,
    attribution_margin,
    baseline_outputs,
    best_baseline,
    cite_sentence,
    cited_positions,
    constant_baselines,
    margin_change,
    recite,
)
from start.stats import per_question

DOCS = [{"title": "A", "text": "Alpha holds F1. More text."}, {"title": "B", "text": "Beta holds F2."},
        {"title": "C", "text": "Gamma holds nothing.", "distractor": True}]
ROW = {"id": "q1", "question": "What do alpha and beta hold?", "docs": DOCS, "answer": "Alpha holds F1. Beta holds F2.",
       "claims": ["Alpha holds F1.", "Beta holds F2."], "qa_pairs": [{"short_answers": ["F1"]}]}


@pytest.fixture
def scorer(stub_nli):
    return AttributionScorer(stub_nli, ScorerConfig(cache=False))


def test_recite_replaces_every_mark_and_cites_uncited_sentences():
    assert recite("Alpha holds F1 [1][3]. Beta holds F2. Gamma [2].", 3) == \
        "Alpha holds F1 [3]. Beta holds F2 [3]. Gamma [3]."
    assert recite("First line [1].\nSecond line [2].", 2) == "First line [2]."  # the scorer reads line 1
    assert recite("", 1) == ""
    assert cite_sentence("Ends with a quote [1].\"", "[2]") == "Ends with a quote [2].\""


def test_baseline_outputs():
    out = baseline_outputs(ROW)
    assert out["[1]"] == "Alpha holds F1 [1]. Beta holds F2 [1]."
    assert out[CITE_ALL] == "Alpha holds F1 [1][2][3]. Beta holds F2 [1][2][3]."
    assert out[COPY_FIRST] == "Alpha holds F1 [1]. Beta holds F2 [2]. Gamma holds nothing [3]."
    assert set(out) == {"[1]", "[2]", "[3]", CITE_ALL, COPY_FIRST}


def test_constant_baselines_are_scored_by_the_scorer(scorer):
    res = constant_baselines([ROW], scorer, n_boot=20)
    m = {name: {k: v["value"] for k, v in b["metrics"].items()} for name, b in res.items()}
    # [1]: the first sentence is supported by its citation, the second is not.
    assert m["[1]"]["citation_rec"] == 50.0 and m["[1]"]["citation_prec"] == 50.0
    assert m["[3]"]["citation_rec"] == 0.0 and m["[3]"]["citation_f1"] == 0.0
    # cite-all: both sentences supported, but only one of three citations is relevant in each.
    assert m[CITE_ALL]["citation_rec"] == 100.0 and m[CITE_ALL]["citation_prec"] == pytest.approx(100 / 3)
    # copy: two of three sentences supported; claims are what comprehensiveness counts (claims win).
    assert m[COPY_FIRST]["citation_rec"] == pytest.approx(200 / 3)
    assert m["[1]"]["comprehensiveness"] == 100.0 and m[COPY_FIRST]["comprehensiveness"] == 100.0
    assert best_baseline(res) == COPY_FIRST


def test_attribution_margin_is_f1_as_written_minus_the_best_constant(scorer):
    samples = [{**ROW, "id": "q1#0", "output": "Alpha holds F1 [1]. Beta holds F2 [2]."},
               {**ROW, "id": "q1#1", "output": "Alpha holds F1 [1]. Beta holds F2 [1]."},
               {**ROW, "id": "q2#0", "output": "Beta holds F2 [2]."}]
    report = scorer.score(samples)
    written = per_question(report.records, lambda i: i.rsplit("#", 1)[0])
    margin = attribution_margin(samples, written, scorer, n_boot=50)
    # As written: q1 recall (1 + 0.5) / 2, q2 recall 1 -> rec = prec = 87.5. Constant [2]: q1 (0.5 + 0.5) / 2,
    # q2 1 -> 75; constant [1]: q1 0.5, q2 0 -> 25; [3]: 0.
    assert margin["constant_f1"] == pytest.approx({"[1]": 25.0, "[2]": 75.0, "[3]": 0.0})
    assert margin["best_constant"] == "[2]" and margin["value"] == pytest.approx(12.5)
    assert margin["low"] <= margin["value"] <= margin["high"]


def test_a_position_habit_has_no_margin(scorer):
    samples = [{**ROW, "id": f"q{i}#0", "output": "Alpha holds F1 [1]. Beta holds F2 [1]."} for i in range(3)]
    written = per_question(scorer.score(samples).records, lambda i: i.rsplit("#", 1)[0])
    assert attribution_margin(samples, written, scorer, n_boot=20)["value"] == pytest.approx(0.0)


def _written(samples, scorer):
    return per_question(scorer.score(samples).records, lambda i: i.rsplit("#", 1)[0])


def test_margin_change_separates_attribution_from_a_position_habit(scorer):
    habit = [{**ROW, "id": f"q{i}#0", "output": "Alpha holds F1 [1]. Beta holds F2 [1]."} for i in range(4)]
    first_doc = [{**ROW, "id": f"q{i}#0", "output": "Alpha holds F1 [1]."} for i in range(4)]
    right = [{**ROW, "id": f"q{i}#0", "output": "Alpha holds F1 [1]. Beta holds F2 [2]."} for i in range(4)]
    # Writing only what document [1] says and citing [1]: citation F1 rises 50 -> 100, the margin stays 0.
    assert _written(habit, scorer)["citation_rec"].mean() == 0.5
    assert _written(first_doc, scorer)["citation_rec"].mean() == 1.0
    to_habit = margin_change((habit, _written(habit, scorer)), (first_doc, _written(first_doc, scorer)), scorer,
                             n_boot=30)
    assert to_habit == pytest.approx({"value": 0.0, "low": 0.0, "high": 0.0})
    # Citing the document that supports each sentence: F1 50 -> 100 and the margin 0 -> +50 (best constant: 50).
    learned = margin_change((habit, _written(habit, scorer)), (right, _written(right, scorer)), scorer, n_boot=30)
    assert learned == pytest.approx({"value": 50.0, "low": 50.0, "high": 50.0})
    with pytest.raises(ValueError, match="same questions"):
        margin_change((habit, _written(habit, scorer)), (right[:3], _written(right[:3], scorer)), scorer)


def test_claims_win_over_short_answers_and_alce_metrics_stay(scorer):
    [r] = scorer.score([{**ROW, "output": "Alpha holds F1 [1]."}]).records
    assert r.comprehensiveness_source == "claims" and r.comprehensiveness == 0.5 and r.claims_nli == 0.5
    assert r.str_em == 1.0  # ALCE's STR-EM on the short answers is still computed
    [r] = scorer.score([{**{k: v for k, v in ROW.items() if k != "claims"}, "output": "Alpha holds F1 [1]."}]).records
    assert r.comprehensiveness_source == "short_answers" and r.comprehensiveness == 1.0


def test_cited_positions_counts_valid_citations(scorer):
    report = scorer.score([{**ROW, "output": "Alpha holds F1 [1][3]. Beta holds F2 [3][7]."}])
    assert cited_positions(report.records, 3) == [1, 0, 2]


def _fake_eval(folder, outputs: dict[str, str], scorer, metrics_value: float):
    rows = [{**ROW, "id": qid, "samples": [{"text": text}]} for qid, text in outputs.items()]
    write_jsonl(folder / "sample" / "samples.jsonl", rows)
    records = [{**ROW, "id": f"{qid}#0", "output": text} for qid, text in outputs.items()]
    write_jsonl(folder / "score" / "scores.jsonl", (r.to_dict() for r in scorer.score(records).records))
    m = {k: {"value": metrics_value, "low": metrics_value - 1, "high": metrics_value + 1}
         for k in ("citation_rec", "citation_prec", "citation_f1", "attribution_margin")}
    write_json(folder / "metrics.json", {"metrics": m})


def test_report_shows_baseline_row_examples_and_cited_positions(tmp_path, scorer):
    _fake_eval(tmp_path / "round_0" / "eval_base", {"q1": "No citation here.", "q2": "Alpha holds F1 [3]."},
               scorer, 5.0)
    _fake_eval(tmp_path / "round_0" / "eval", {"q1": "Alpha holds F1 [1]. Beta holds F2 [3].",
                                               "q2": "Alpha holds F1 [1]."}, scorer, 40.0)
    baselines = constant_baselines([ROW], scorer, n_boot=20)
    write_json(tmp_path / "round_0" / "baselines" / "metrics.json",
               {"questions": 1, "best": best_baseline(baselines), "baselines": baselines})
    md = (write_report(tmp_path) / "report.md").read_text(encoding="utf-8")
    assert "| best constant baseline (copy-first-sentence) |" in md
    assert "| 0 | 40.0 [39.0, 41.0] | 40.0 [39.0, 41.0] | 40.0 [39.0, 41.0] | 40.0 [39.0, 41.0] |" in md
    # Cited positions per round: base cites [3] once; round 0 cites [1] twice and [3] once.
    assert "| base | 0% | 0% | 100% | 1 |" in md and "| 0 | 67% | 0% | 33% | 3 |" in md
    assert (tmp_path / "report" / "cited_positions.png").stat().st_size > 1000
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")  # self-contained: drawn inline
    assert "<title>cited positions (% of citations)</title>" in page and "<title>base, [3]: 100%</title>" in page
    assert "<title>0, [1]: 66.7%</title>" in page
    # The same questions in every round, each sentence's support and each citation's relevance marked.
    section = md.split("## Example answers")[1]
    assert section.count("**What do alpha and beta hold?**") == 2
    assert "- *0*: ✓ Alpha holds F1. [1+] / ✗ Beta holds F2. [3-d]" in section
    assert "- *base*: ✗ No citation here. (no citation)" in section


def test_baselines_stage_writes_once(tmp_path, scorer, monkeypatch):
    import start.sampling.stage as stage
    from start.data import load_qa

    path = tmp_path / "q.jsonl"
    write_jsonl(path, [ROW, {**ROW, "id": "q2"}])
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from start.config import build_run_config

    overrides = [f"eval_source={path}", "eval_split=null", "eval_questions=null", "data.max_docs=null",
                 "data.shuffle_docs=false", "eval.n_boot=10"]
    with initialize_config_dir(str(Path(__file__).resolve().parents[1] / "conf"), version_base="1.3"):
        cfg = build_run_config(OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)).eval
    calls = []
    monkeypatch.setattr(stage, "load_source", lambda s, split, limit: calls.append(s) or load_qa(s))
    out = baselines_stage(cfg, tmp_path / "b", scorer=scorer)
    data = json.loads(out.read_text())
    assert data["questions"] == 2 and data["best"] == COPY_FIRST and "[3]" in data["baselines"]
    baselines_stage(cfg, tmp_path / "b", scorer=scorer)
    assert (tmp_path / "b" / "DONE").exists() and len(calls) == 2  # loaded again, but not scored again


def test_sample_rows_keep_the_distractor_marks(tmp_path):
    from start.sampling.backends import Generation, SamplingConfig
    from start.sampling.prompt import PromptConfig
    from start.sampling.sampler import SampleInput, run_sampling
    from start.text import Document

    class Words:
        chat_template = None

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": text.split()}

    class Generator:
        tokenizer = Words()

        def generate(self, prompts, params, seeds):
            return [[Generation("Alpha holds F1 [1].", -1.0, 5)] for _ in prompts]

    docs = (Document("A", "Alpha holds F1."), Document("C", "Gamma.", distractor=True))
    out = tmp_path / "samples.jsonl"
    run_sampling([SampleInput("q", "Q?", docs, {})], Generator(), PromptConfig(instruction="cite", max_model_len=512,
                 max_new_tokens=16), SamplingConfig(n=1), out)
    [row] = [json.loads(x) for x in out.read_text().splitlines()]
    assert row["docs"] == [{"title": "A", "text": "Alpha holds F1."}, {"title": "C", "text": "Gamma.",
                                                                        "distractor": True}]


def test_answer_habits_read_the_text_not_the_scores():
    from start.shortcuts import answer_habits, longest_shared_run

    assert longest_shared_run("a b c d".split(), "x b c d y".split()) == 3
    assert longest_shared_run([], ["a"]) == 0
    docs = [{"text": "The Eiffel Tower was built in 1889 in Paris."}, {"text": "Gold is a metal."}]
    recs = [{"id": "q#0", "docs": docs}, {"id": "q#1", "docs": docs}, {"id": "q#2", "docs": docs}]
    scores = [
        {"id": "q#0", "length": 8, "n_sentences": 1,
         "sentences": [{"text": "The Eiffel Tower was built in 1889 [1].", "citations": [1], "supported": True}]},
        {"id": "q#1", "length": 6, "n_sentences": 2,
         "sentences": [{"text": "It is old and tall [1][2].", "citations": [1, 2, 7]},  # 7: out of range
                       {"text": "Yes.", "citations": []}]},
        {"id": "q#2", "length": 4, "n_sentences": 1, "sentences": [{"text": "Gold shines.", "citations": []}]},
    ]
    h = answer_habits(recs, scores)
    assert h["answers"] == 3 and h["words"] == 6.0
    assert h["citations_per_sentence"] == 3 / 4  # 1 + 2 valid + 0 + 0 over four sentences
    assert h["no_citation_share"] == 1 / 3 and h["cite_all_share"] == 1 / 3
    assert h["copied_sentence_share"] == 1 / 2  # of the two cited sentences: the first one is copied
    assert h["copied_supported_share"] == 1.0 and h["own_supported_share"] == 0.0
    assert h["cited_position_share"] == {"1": 2 / 3, "2": 1 / 3}
    assert answer_habits(recs, []) == {"answers": 0}
