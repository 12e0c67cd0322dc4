"""QA loader (ALCE formats, errors, Hugging Face path) and the committed embedded data set."""

from __future__ import annotations

import json
import re
import sys
import types
from collections import Counter

import pytest

from start.data import embedded
from start.data.embedded import SPLITS, BuildConfig, build_embedded, load_embedded, load_embedded_corpus
from start.data.records import QARecord, limit_docs, load_qa, qa_record_to_dict, question_id
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
    assert 300 <= sum(len(r) for r in splits.values()) <= 450
    assert len(corpus) == manifest["corpus"]["passages"]
    assert all(len(p.text.split()) <= 130 for p in corpus.values())
    for recs in splits.values():
        for r in recs:
            assert len(r.docs) == 5 and r.short_answers and r.reference_answer
            assert r.meta["doc_ids"] and set(r.meta["gold_doc_ids"]) <= set(r.meta["doc_ids"])
            # The documents are the corpus passages, unmarked (gold_doc_ids says which are gold).
            for doc_id, doc in zip(r.meta["doc_ids"], r.docs, strict=True):
                assert corpus[doc_id].text == doc.text and not doc.distractor


def test_embedded_splits_are_disjoint(splits):
    questions = {s: {r.question for r in recs} for s, recs in splits.items()}
    ids = [r.id for recs in splits.values() for r in recs]
    assert len(ids) == len(set(ids))
    elements = {s: {e for r in recs for e in r.meta["entities"]} for s, recs in splits.items()}
    for a, b in [("train", "dev"), ("train", "test"), ("dev", "test")]:
        assert not questions[a] & questions[b]
        assert not elements[a] & elements[b]


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


def test_two_document_questions(splits, corpus):
    recs = [r for s in SPLITS for r in splits[s]]
    two = [r for r in recs if len(r.meta["gold_doc_ids"]) == 2]
    assert len(two) >= 0.10 * len(recs)
    for r in two:  # neither gold passage alone holds an answer to every sub-question
        for g in r.meta["gold_doc_ids"]:
            text = normalize_answer(corpus[g].text)
            assert not all(any(normalize_answer(a) in text for a in al) for al in r.short_answers), r.id
    templates = Counter(r.meta["template"] for r in recs)
    assert len(templates) >= 8
    gold_positions = Counter(r.meta["doc_ids"].index(r.meta["gold_doc_ids"][0]) for r in recs)
    assert len(gold_positions) == 5  # gold documents are not always in the same slot


def test_builder_is_deterministic_on_a_subset(tmp_path):
    cfg = BuildConfig(elements=tuple(range(1, 16)))
    a = embedded.write_embedded(build_embedded(cfg), tmp_path / "a", config=cfg)
    b = embedded.write_embedded(build_embedded(cfg), tmp_path / "b", config=cfg)
    assert a == b and a["questions"]["total"] > 20
    for name in ["corpus.jsonl", *(f"{s}.jsonl" for s in SPLITS), "manifest.json"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    other = build_embedded(BuildConfig(elements=tuple(range(1, 16)), seed=1))
    assert other.splits != build_embedded(cfg).splits  # the seed matters


def test_committed_files_match_a_fresh_build(tmp_path):
    manifest = json.loads((embedded.EMBEDDED_DIR / "manifest.json").read_text(encoding="utf-8"))
    if manifest["source"]["database_sha256"] != embedded.source_info()["database_sha256"]:
        pytest.skip("the installed mendeleev database differs from the one the data was built from")
    cfg = BuildConfig()
    written = embedded.write_embedded(build_embedded(cfg), tmp_path, source=embedded.source_info(), config=cfg)
    assert written["files"] == manifest["files"], "rebuild with scripts/build_embedded_data.py"


def test_helpers():
    assert embedded.discoverer_aliases("A. Ghiorso, et al") == [["A. Ghiorso", "Ghiorso"]]
    assert embedded.discoverer_aliases("Heavy Ion Research Laboratory (HIRL)") == [
        ["Heavy Ion Research Laboratory (HIRL)", "HIRL"]]
    assert embedded.split_sentences("Used in glass (see A. Smith). Also in steel.") == [
        "Used in glass (see A. Smith).", "Also in steel."]
    a, b, c = (" ".join([w] * n) for w, n in (("a", 60), ("b", 60), ("c", 10)))
    assert embedded.pack_passages([a, b, c], max_words=100) == [a, f"{b} {c}"]
    assert embedded.pack_passages([a, c], max_words=65, min_tail=30) == [f"{a} {c}"]  # short tail joins
    with pytest.raises(ValueError):
        BuildConfig(split_fractions=(0.5, 0.5, 0.5))


def test_limit_docs_keeps_gold_documents_in_order(splits):
    for r in splits["dev"]:
        short = limit_docs(r, 3)
        assert len(short.docs) == 3 and set(r.meta["gold_doc_ids"]) <= set(short.meta["doc_ids"])
        positions = [r.meta["doc_ids"].index(d) for d in short.meta["doc_ids"]]
        assert positions == sorted(positions)  # the original order (gold not moved to the front)
        assert [d.text for d in short.docs] == [r.docs[i].text for i in positions]
    r = splits["dev"][0]
    assert limit_docs(r, 9) is r and r.meta["doc_ids"] != limit_docs(r, 1).meta["doc_ids"]
    with pytest.raises(ValueError, match="max_docs"):
        limit_docs(r, 0)
