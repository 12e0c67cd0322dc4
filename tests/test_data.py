"""QA loader (ALCE formats, errors, Hugging Face path) and the committed embedded data set."""

from __future__ import annotations

import json
import re
import sys
import types
from collections import Counter
from dataclasses import replace

import pytest

from start.data import embedded
from start.data.builder import BuildConfig, build_embedded
from start.data.builder.build import needs_multi_doc, source_info, split_elements, write_embedded
from start.data.builder.elements import pack_passages, read_elements, split_sentences
from start.data.builder.questions import LONG_TEMPLATES, SINGLE_TEMPLATES, discoverer_aliases
from start.data.embedded import SPLITS, load_embedded, load_embedded_corpus
from start.data.records import QARecord, limit_docs, load_qa, qa_record_to_dict, question_id, shuffle_docs
from start.io import InputError
from start.text import Document, normalize_answer

DOCS = [{"title": "Eiffel Tower", "text": "Built in 1889 in Paris."}, {"title": "Paris", "sent": "Capital."}]


def _write(path, rows, fmt="list"):
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        path.write_text(json.dumps(rows if fmt == "list" else {"data": rows}), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------ loader


def test_asqa_format(tmp_path):
    path = _write(tmp_path / "asqa.json", [{
        "sample_id": "-123", "question": "When was the tower built?", "docs": DOCS,
        "qa_pairs": [{"question": "q1", "short_answers": ["1889", "eighteen eighty-nine"]},
                     {"question": "q2", "short_answers": "Paris"}],
        "answer": "The tower was built in 1889.", "wikipages": [{"title": "Eiffel Tower"}]}])
    [rec] = load_qa(path, split="dev")
    assert rec.id == "-123" and rec.split == "dev"
    assert rec.docs == (Document("Eiffel Tower", "Built in 1889 in Paris."), Document("Paris", "Capital."))
    assert rec.short_answers == (("1889", "eighteen eighty-nine"), ("Paris",))
    assert rec.reference_answer == "The tower was built in 1889." and rec.yes_no is None
    assert rec.meta["wikipages"] == [{"title": "Eiffel Tower"}]
    assert rec.meta["qa_pairs"][0]["question"] == "q1"  # sub-questions stay available


def test_eli5_format_in_data_object(tmp_path):
    path = _write(tmp_path / "eli5.json", [{"question": "Why is the sky blue?", "docs": DOCS,
                                             "claims": ["Light scatters.", "Blue scatters most."],
                                             "answer": "Because of Rayleigh scattering."}], fmt="data")
    [rec] = load_qa(path)
    assert rec.claims == ("Light scatters.", "Blue scatters most.")
    assert rec.id == question_id("Why is the sky blue?") == question_id("  Why is the sky   blue? ")
    assert rec.id.startswith("q-")


def test_qampari_format_jsonl(tmp_path):
    path = _write(tmp_path / "qampari.jsonl", [
        {"id": "7", "question": "Which towers are in Paris?", "docs": DOCS,
         "answers": [["Eiffel Tower", "La tour Eiffel"], ["Tour Montparnasse"]]},
        {"id": 8, "question": "Which rivers?", "answers": [["Seine"]]}], fmt="jsonl")
    recs = load_qa(path)
    assert recs[0].answers == (("Eiffel Tower", "La tour Eiffel"), ("Tour Montparnasse",))
    assert recs[1].id == "8" and recs[1].docs == ()  # questions without documents are allowed


@pytest.mark.parametrize(("answer", "expected"), [(True, True), (False, False), ("yes", True), ("No.", False)])
def test_strategyqa_yes_no(tmp_path, answer, expected):
    path = _write(tmp_path / "sqa.json", [{"question": "Is Paris in France?", "docs": [], "answer": answer}])
    [rec] = load_qa(path)
    assert rec.yes_no is expected and rec.reference_answer is None


def test_round_trip_keeps_fields(tmp_path):
    raw = {"id": "x", "question": "Q?", "docs": [{"id": "d1", "title": "T", "text": "body"}],
           "qa_pairs": [{"question": "Q?", "short_answers": ["a"]}], "answer": "A long answer.",
           "gold_doc_ids": ["d1"]}
    [rec] = load_qa(_write(tmp_path / "r.json", [raw]))
    assert rec.meta["doc_ids"] == ["d1"] and rec.meta["gold_doc_ids"] == ["d1"]
    assert qa_record_to_dict(rec) == raw
    assert isinstance(hash(rec), int)  # frozen and hashable although meta is a dict


@pytest.mark.parametrize(("record", "field", "message"), [
    ({"docs": []}, "question", "is missing"),
    ({"question": 3}, "question", "expected a string"),
    ({"question": "  "}, "question", "is empty"),
    ({"question": "Q", "docs": {"title": "T"}}, "docs", "expected a list"),
    ({"question": "Q", "docs": [{"title": "T"}]}, "docs[0].text", "is missing"),
    ({"question": "Q", "qa_pairs": [{"question": "q"}]}, "qa_pairs[0].short_answers", "is missing"),
    ({"question": "Q", "qa_pairs": [{"short_answers": [1]}]}, "qa_pairs[0].short_answers[0]", "string"),
    ({"question": "Q", "claims": []}, "claims", "empty"),
    ({"question": "Q", "answers": "Seine"}, "answers", "non-empty list"),
    ({"question": "Q", "answer": 3}, "answer", "string or a boolean"),
])
def test_errors_name_file_record_and_field(tmp_path, record, field, message):
    path = _write(tmp_path / "bad.json", [{"id": "ok", "question": "fine"}, {"id": "r2", **record}])
    with pytest.raises(InputError) as e:
        load_qa(path)
    text = str(e.value)
    assert str(path) in text and "record 1 (id=r2)" in text and f"field '{field}'" in text and message in text


def test_duplicate_ids_and_bad_files(tmp_path):
    with pytest.raises(InputError, match="duplicate id"):
        load_qa(_write(tmp_path / "dup.json", [{"question": "Same?"}, {"question": "Same?"}]))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "a"}\n{"question": \n', encoding="utf-8")
    with pytest.raises(InputError, match="line 2"):
        load_qa(bad)
    with pytest.raises(InputError, match="not a file"):
        load_qa(tmp_path)


def _fake_datasets(monkeypatch, result):
    calls = []

    def load_dataset(name, split=None):
        calls.append((name, split))
        if isinstance(result, Exception):
            raise result
        return result

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    return calls


def test_hugging_face_name_goes_to_load_dataset(monkeypatch):
    rows = [{"id": "1", "question": "Q1?", "docs": DOCS, "answer": True}]
    calls = _fake_datasets(monkeypatch, rows)
    [rec] = load_qa("someone/strategyqa", split="test")
    assert calls == [("someone/strategyqa", "test")]
    assert rec.split == "test" and rec.yes_no is True

    calls = _fake_datasets(monkeypatch, {"train": [{"question": "A?"}], "dev": [{"question": "B?"}]})
    recs = load_qa("someone/asqa")
    assert calls == [("someone/asqa", None)] and [(r.split, r.question) for r in recs] == [("train", "A?"),
                                                                                         ("dev", "B?")]


def test_hugging_face_errors_are_input_errors(monkeypatch):
    _fake_datasets(monkeypatch, ConnectionError("offline"))
    with pytest.raises(InputError, match=r"someone/missing: is not a local file .*ConnectionError: offline"):
        load_qa("someone/missing")
    with pytest.raises(InputError, match="no such file"):  # a missing .json path never goes to the hub
        load_qa("no-such/file.json")
    _fake_datasets(monkeypatch, {"train": [{"question": "ok"}, {"docs": []}]})
    with pytest.raises(InputError, match=r"someone/x\[train\]: record 1: field 'question': is missing"):
        load_qa("someone/x")


# --------------------------------------------------------------------------------------- embedded data


@pytest.fixture(scope="module")
def splits() -> dict[str, list[QARecord]]:
    return {s: load_embedded(s) for s in SPLITS}


@pytest.fixture(scope="module")
def corpus():
    return {p.id: p for p in load_embedded_corpus()}


def test_embedded_files_load_with_expected_sizes(splits, corpus):
    manifest = json.loads((embedded.EMBEDDED_DIR / "manifest.json").read_text(encoding="utf-8"))
    assert {s: len(r) for s, r in splits.items()} == {s: manifest["questions"][s] for s in SPLITS}
    assert 350 <= sum(len(r) for r in splits.values()) <= 550
    assert len(corpus) == manifest["corpus"]["passages"]
    assert all(len(p.text.split()) <= 130 for p in corpus.values())
    for recs in splits.values():
        for r in recs:
            assert len(r.docs) == 5 and r.short_answers and r.reference_answer
            assert r.meta["doc_ids"] and set(r.meta["gold_doc_ids"]) <= set(r.meta["doc_ids"])
            for doc_id, doc in zip(r.meta["doc_ids"], r.docs, strict=True):
                assert corpus[doc_id].text == doc.text
                # Every document that holds none of the answer is marked as a distractor, and only those.
                assert doc.distractor is (doc_id not in r.meta["gold_doc_ids"]), (r.id, doc_id)


def _split_elements() -> dict[str, set[str]]:
    elements = read_elements()
    cfg = BuildConfig()
    numbers = split_elements([e.number for e in elements], cfg.split_fractions, cfg.seed)
    slug = {e.number: e.slug for e in elements}
    return {s: {slug[z] for z in zs} for s, zs in numbers.items()}


def test_embedded_splits_are_disjoint_and_distractors_split_local(splits):
    questions = {s: {r.question for r in recs} for s, recs in splits.items()}
    ids = [r.id for recs in splits.values() for r in recs]
    assert len(ids) == len(set(ids))
    elements = {s: {e for r in recs for e in r.meta["entities"]} for s, recs in splits.items()}
    for a, b in [("train", "dev"), ("train", "test"), ("dev", "test")]:
        assert not questions[a] & questions[b]
        assert not elements[a] & elements[b]
    # Every document of a question (gold or distractor) is a passage of an element of its own split.
    local = _split_elements()
    for s, recs in splits.items():
        for r in recs:
            assert {d.rsplit("-", 1)[0] for d in r.meta["doc_ids"]} <= local[s], (s, r.id)


def test_every_gold_short_answer_is_in_its_gold_passages(splits, corpus):
    for recs in splits.values():
        for r in recs:
            gold = " ".join(normalize_answer(corpus[g].text) for g in r.meta["gold_doc_ids"])
            for aliases in r.short_answers:
                for alias in aliases:
                    assert normalize_answer(alias) in gold, (r.id, alias)
                    assert normalize_answer(alias) not in normalize_answer(r.question), (r.id, alias)
            # No distractor states a gold answer (as a whole word sequence).
            for doc_id in set(r.meta["doc_ids"]) - set(r.meta["gold_doc_ids"]):
                text = normalize_answer(corpus[doc_id].text)
                for alias in (a for aliases in r.short_answers for a in aliases):
                    assert not re.search(rf"(?<!\w){re.escape(normalize_answer(alias))}(?!\w)", text), \
                        (r.id, doc_id, alias)


def test_multi_document_long_form_questions(splits, corpus):
    recs = [r for s in SPLITS for r in splits[s]]
    for s in ("dev", "test"):  # >= 40% of held-out questions need >= 2 documents and >= 2 claims
        assert sum(map(needs_multi_doc, (qa_record_to_dict(r) for r in splits[s]))) >= 0.40 * len(splits[s])
    templates = Counter(r.meta["template"] for r in recs)
    assert len(templates) >= 15 and all(templates[t] >= 10 for t in LONG_TEMPLATES + (
        "compare_discovery", "compare_uses", "which_first"))
    assert any(len(r.meta["gold_doc_ids"]) == 3 for r in recs)
    assert sum(r.claims is None for r in recs) >= 0.3 * len(recs)  # short factual questions stay
    for r in recs:
        gold = r.meta["gold_doc_ids"]
        if len(gold) >= 2:  # neither gold passage alone holds an answer to every sub-question
            for g in gold:
                text = normalize_answer(corpus[g].text)
                assert not all(any(normalize_answer(a) in text for a in al) for al in r.short_answers), r.id
        if r.claims is None:
            assert len(gold) == 1 and r.meta["template"] in SINGLE_TEMPLATES
            continue
        # Each claim names the gold passages that entail it; every gold passage is needed, none suffices.
        support = r.meta["claim_docs"]
        assert len(r.claims) == len(support) >= 2 and all(s and set(s) <= set(gold) for s in support), r.id
        assert all(any(g in s for s in support) for g in gold), r.id
        assert not any(all(g in s for s in support) for g in gold), r.id


def test_claims_are_entailed_by_their_gold_passages_under_the_bundled_nli(splits, corpus):
    """The real bundled NLI model (45 MB): every held-out claim is entailed by each passage it names."""
    from start.scoring.nli import NLIConfig, load_nli

    nli = load_nli(NLIConfig(model="minilm", progress=False))
    pairs = sorted({(corpus[g].to_document().for_nli(), c) for s in ("dev", "test") for r in splits[s]
                    for c, gs in zip(r.claims or (), r.meta.get("claim_docs") or (), strict=True) for g in gs})
    assert len(pairs) > 100
    probs = nli.predict(pairs).probs
    failed = [(h, float(p)) for (_, h), p in zip(pairs, probs, strict=True) if p < nli.threshold]
    assert not failed, failed[:5]
    # The check is not vacuous: the same claims are not entailed by another element's passage.
    other = [(corpus["neon-facts"].to_document().for_nli(), h) for _, h in pairs[:40] if "Neon" not in h]
    assert (nli.predict(other).probs < nli.threshold).mean() > 0.9


class _OverlapNLI:
    """Deterministic stand-in for the builder's NLI judge: entailed when every word of the hypothesis
    (4+ letters or a number) occurs in the premise."""

    threshold = 0.5
    fingerprint = "overlap"

    def predict(self, pairs):
        import numpy as np

        from start.scoring.nli import NLIPrediction

        def ok(p, h):
            words = set(re.findall(r"[a-z]{4,}|\d+", p.lower()))
            return all(w in words for w in re.findall(r"[a-z]{4,}|\d+", h.lower()))

        return NLIPrediction(np.array([float(ok(p, h)) for p, h in pairs]), np.zeros(len(pairs), dtype=bool))


def test_builder_is_deterministic_on_a_subset(tmp_path):
    cfg = BuildConfig(elements=tuple(range(1, 31)))
    a = write_embedded(build_embedded(cfg, _OverlapNLI()), tmp_path / "a", config=cfg)
    b = write_embedded(build_embedded(cfg, _OverlapNLI()), tmp_path / "b", config=cfg)
    assert a == b and a["questions"]["total"] > 40 and a["claims"]["kept"] > 10
    for name in ["corpus.jsonl", *(f"{s}.jsonl" for s in SPLITS), "manifest.json"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    other = build_embedded(BuildConfig(elements=tuple(range(1, 31)), seed=1), _OverlapNLI())
    assert other.splits != build_embedded(cfg, _OverlapNLI()).splits  # the seed matters


def test_claims_the_judge_rejects_are_dropped():
    class Reject(_OverlapNLI):
        def predict(self, pairs):  # rejects every use claim
            pred = super().predict(pairs)
            pred.probs[[i for i, (_, h) in enumerate(pairs) if " is used " in h]] = 0.0
            return pred

    data = build_embedded(BuildConfig(elements=tuple(range(1, 31))), Reject())
    rows = [r for s in SPLITS for r in data.splits[s]]
    assert not any(" is used " in c for r in rows for c in r.get("claims", ()))
    assert not any(r["template"] in ("compare_uses", "discovery_uses") for r in rows)
    dropped = data.stats["dropped"]
    assert dropped.get("too_few_entailed_claims", 0) + dropped.get("gold_doc_without_claim", 0) > 0


@pytest.mark.slow
def test_committed_files_match_a_fresh_build(tmp_path):
    manifest = json.loads((embedded.EMBEDDED_DIR / "manifest.json").read_text(encoding="utf-8"))
    if manifest["source"]["database_sha256"] != source_info()["database_sha256"]:
        pytest.skip("the installed mendeleev database differs from the one the data was built from")
    cfg = BuildConfig()
    written = write_embedded(build_embedded(cfg), tmp_path, source=source_info(), config=cfg)
    assert written["files"] == manifest["files"], "rebuild with scripts/build_embedded_data.py"


def test_helpers():
    assert discoverer_aliases("A. Ghiorso, et al") == [["A. Ghiorso", "Ghiorso"]]
    assert discoverer_aliases("Heavy Ion Research Laboratory (HIRL)") == [
        ["Heavy Ion Research Laboratory (HIRL)", "HIRL"]]
    assert split_sentences("Used in glass (see A. Smith). Also in steel.") == [
        "Used in glass (see A. Smith).", "Also in steel."]
    a, b, c = (" ".join([w] * n) for w, n in (("a", 60), ("b", 60), ("c", 10)))
    assert pack_passages([a, b, c], max_words=100) == [a, f"{b} {c}"]
    assert pack_passages([a, c], max_words=65, min_tail=30) == [f"{a} {c}"]  # short tail joins
    with pytest.raises(ValueError):
        BuildConfig(split_fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="comparisons"):
        BuildConfig(comparisons=(("compare_colour", 0.1),))


def test_shuffle_docs_is_seeded_and_keeps_every_document(splits):
    r = splits["dev"][0]
    a, b = shuffle_docs(r), shuffle_docs(r)
    assert a == b and sorted(a.meta["doc_ids"]) == sorted(r.meta["doc_ids"])
    assert [d.text for d in a.docs] == [r.docs[r.meta["doc_ids"].index(i)].text for i in a.meta["doc_ids"]]
    orders = {tuple(shuffle_docs(r, seed).meta["doc_ids"]) for seed in range(20)}
    assert len(orders) > 5  # the seed (and the question id) decide the order


def test_limit_docs_keeps_gold_documents_in_a_seeded_random_order(splits):
    positions: Counter[int] = Counter()
    for r in splits["dev"] + splits["test"]:
        short = limit_docs(r, 3)
        assert short == limit_docs(r, 3)  # seeded by the question id
        assert len(short.docs) == 3 and set(r.meta["gold_doc_ids"]) <= set(short.meta["doc_ids"])
        assert [d.text for d in short.docs] == [r.docs[r.meta["doc_ids"].index(i)].text
                                                for i in short.meta["doc_ids"]]
        assert [d.distractor for d in short.docs] == [i not in r.meta["gold_doc_ids"] for i in short.meta["doc_ids"]]
        positions.update(short.meta["doc_ids"].index(g) for g in r.meta["gold_doc_ids"])
    # Every position is reachable and none dominates (1/3 is uniform): no position shortcut to the gold.
    total = sum(positions.values())
    assert set(positions) == {0, 1, 2} and max(positions.values()) / total <= 0.45, positions
    r = splits["dev"][0]
    assert limit_docs(r, 9) is r and r.meta["doc_ids"] != limit_docs(r, 1).meta["doc_ids"]
    kept = limit_docs(r, 3, shuffle=False).meta["doc_ids"]
    assert kept == sorted(kept, key=r.meta["doc_ids"].index)  # shuffle=False: the source's order
    with pytest.raises(ValueError, match="max_docs"):
        limit_docs(r, 0)


def test_load_questions_shuffles_retrieved_documents(tmp_path):
    from start.sampling.stage import DataConfig, load_questions

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"title": f"T{i}", "text": f"radium fact number {i} radium"}) + "\n"
                              for i in range(8)), encoding="utf-8")
    questions = _write(tmp_path / "q.jsonl", [{"id": f"q{i}", "question": f"radium fact {i}?"} for i in range(6)],
                       fmt="jsonl")
    data = DataConfig(str(questions), None, corpus=str(corpus), retrieval={"k": 4, "use_cache": False})
    ranked = load_questions(replace(data, shuffle_docs=False))
    shuffled = load_questions(data)
    assert [sorted(d.title for d in r.docs) for r in ranked] == [sorted(d.title for d in r.docs) for r in shuffled]
    assert [r.docs for r in ranked] != [r.docs for r in shuffled]
    assert shuffled == load_questions(data)
