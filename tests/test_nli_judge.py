"""The second bundled judge: passage-shaped training data, document-aligned premise windows, resumable
training, agreement with people's citation judgments and the threshold/reader search on it."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import StubNLI

from start.nli import data as D
from start.nli import long_pairs as L
from start.nli.agreement import (
    HumanSentence,
    agreement,
    cohen_kappa,
    load_human,
    reader_stack,
    score_at,
    to_records,
    tune,
)
from start.scoring.nli import (
    MemoNLI,
    NLIConfig,
    PremiseWindowNLI,
    document_windows,
    load_nli,
    split_documents,
)

# ------------------------------------------------------------------------------------- training data


def _train_split() -> list[D.NLIPair]:
    """Ten pages, each with an evidence sentence, a revision of it, and two unrelated sentences."""
    pairs = []
    for k in range(10):
        title = f"Page {k}"
        ev = f"Page {k} was founded in {1900 + k} , by Person {k} ."
        rev = f"Page {k} was founded in {1950 + k} , by Person {k} ."
        other = [f"It has {k + 3} museums and a large harbour area .",
                 f"The local football club plays in the regional league number {k} ."]
        pairs.append(D.NLIPair(f"{title}: {ev}", f"Page {k} was founded in {1900 + k} .", "entailment",
                               "vitaminc_fact_verification", f"vc:page {k}"))
        pairs.append(D.NLIPair(f"{title}: {rev}", f"Page {k} was founded in {1900 + k} .", "contradiction",
                               "vitaminc_fact_verification", f"vc:page {k}"))
        for o in other:
            pairs.append(D.NLIPair(f"{title}: {o}", f"Page {k} is a city .", "neutral",
                                   "vitaminc_fact_verification", f"vc:page {k}"))
    return pairs


def test_long_premise_pairs_are_passages_with_the_label_kept():
    train = _train_split()
    made = L.long_premise_pairs(train, seed=3, n_packed=30, n_joint=20, words=(10, 30))
    assert made == L.long_premise_pairs(train, seed=3, n_packed=30, n_joint=20, words=(10, 30))  # seeded
    kinds = {p.source for p in made}
    assert kinds == {"long-packed", "long-joint", "long-partial", "long-joint-contradiction"}
    originals = {(L.detokenize(L._title_and_evidence(p.premise)[1]), L.detokenize(p.hypothesis)): p.label
                 for p in train}
    for p in made:
        docs = split_documents(p.premise)
        assert all(head.startswith("Title: Page ") for head, _ in docs), p.premise
        assert " ," not in p.premise and " ." not in p.hypothesis  # detokenised
        if p.source == "long-packed":
            # the pair's own evidence is inside one passage, its label unchanged; never beside its revision
            hits = [(ev, lab) for (ev, hyp), lab in originals.items() if hyp == p.hypothesis and ev in p.premise]
            assert hits and all(lab == p.label for _, lab in hits), p
            subject = p.hypothesis.split(" was founded")[0]
            if " was founded" in p.hypothesis:
                assert p.premise.count(f"{subject} was founded in") == 1, p.premise
    joint = [p for p in made if p.source == "long-joint"]
    for p in joint:
        assert p.label == "entailment" and ", and " in p.hypothesis
        years = re.findall(r"\b1[89]\d\d\b", p.hypothesis)
        assert len(years) == 2 and all(f"founded in {y}" in p.premise for y in years)  # both passages given
    for p in (p for p in made if p.source == "long-partial"):
        years = re.findall(r"\b1[89]\d\d\b", p.hypothesis)
        assert p.label == "neutral" and sum(f"founded in {y}" in p.premise for y in years) == 1


def test_detokenize_and_join_claims():
    assert L.detokenize("GLOW -LRB-TV series-RRB- , it 's 96 % .") == "GLOW (TV series), it's 96%."
    assert L._join_claims("Paris is big.", "The tower was built in 1889.") == \
        "Paris is big, and the tower was built in 1889."
    assert L._join_claims("Paris is big.", "Eiffel built it.") == "Paris is big, and Eiffel built it."


# ------------------------------------------------------------------------------------ premise readers


def test_document_windows_stay_inside_documents_under_their_title():
    premise = "Title: A\nOne two three four. Five six seven eight. Nine ten.\nTitle: B\nEleven twelve."
    assert split_documents(premise) == [("Title: A", "One two three four. Five six seven eight. Nine ten."),
                                        ("Title: B", "Eleven twelve.")]
    assert document_windows(premise, 6) == ["Title: A\nOne two three four.",
                                            "Title: A\nFive six seven eight. Nine ten.",
                                            "Title: B\nEleven twelve."]
    # neighbouring windows share a sentence when more than one fits
    assert document_windows("Title: A\nSun rose. Rain fell. Wind blew. Snow came.", 4) == [
        "Title: A\nSun rose. Rain fell.", "Title: A\nRain fell. Wind blew.", "Title: A\nWind blew. Snow came."]
    assert document_windows("no title. two sentences.", 60) == ["no title. two sentences."]


def test_whole_premise_reading_keeps_joint_support():
    pair = ("Title: A\nF1 here.\nTitle: B\nF2 there.", "F1 and F2.")
    windows_only = PremiseWindowNLI(StubNLI(), 60, "documents", whole=False)
    with_whole = PremiseWindowNLI(StubNLI(), 60, "documents", whole=True)
    assert windows_only.predict([pair]).probs.tolist() == [0.0]  # each document alone misses one fact
    assert with_whole.predict([pair]).probs.tolist() == [1.0]
    assert windows_only.fingerprint != with_whole.fingerprint
    with pytest.raises(ValueError, match="premise window mode"):
        PremiseWindowNLI(StubNLI(), 60, "pages")


def test_reader_settings_are_read_from_the_model_folder(tiny_cross_encoder, tmp_path):
    import shutil

    folder = tmp_path / "judge"
    shutil.copytree(tiny_cross_encoder, folder)
    (folder / "start_nli.json").write_text(json.dumps({"threshold": 0.3, "premise_window_words": 40,
                                                       "premise_windows": "documents", "premise_whole": True}))
    nli = load_nli(NLIConfig(model=str(folder), progress=False))
    assert isinstance(nli, PremiseWindowNLI) and (nli.mode, nli.whole, nli.words) == ("documents", True, 40)
    other = load_nli(NLIConfig(model=str(folder), premise_whole=False, progress=False))
    assert not other.whole and other.fingerprint != nli.fingerprint
    with pytest.raises(ValueError, match="premise_windows"):
        NLIConfig(premise_windows="pages")


# ---------------------------------------------------------------------------------- human agreement


def test_cohen_kappa():
    assert cohen_kappa([1, 1, 0, 0], [1, 1, 0, 0]) == (1.0, 1.0)
    acc, k = cohen_kappa([1, 0, 1, 0], [1, 1, 1, 1])
    assert acc == 0.5 and k == 0.0  # always "yes" agrees only by chance
    with pytest.raises(ValueError):
        cohen_kappa([1], [1, 0])


def _human_rows() -> list[HumanSentence]:
    """Sentences whose facts F<n> the stub judge checks; the people's labels follow the same rule, except
    that they accept sentence 3 too (so no threshold can agree on everything)."""
    docs = {1: ("A", "F1 is stated here."), 2: ("B", "F2 is stated here."), 3: ("C", "Nothing relevant.")}
    spec = [("F1 holds [1].", [1], 1, [2]), ("F1 and F2 hold [1][2].", [1, 2], 1, [1, 1]),
            ("F2 holds [2][3].", [2, 3], 1, [2, 0]), ("F3 holds [3].", [3], 1, [1]),
            ("F4 holds [1].", [1], 0, [0])]
    return [HumanSentence("q", s, tuple(docs[d] for d in ds), rec, tuple(int(c >= 1) for c in cites), rec,
                          tuple(int(c >= 1) for c in cites)) for s, ds, rec, cites in spec]


def test_agreement_with_a_rule_judge():
    rows = _human_rows()
    m = score_at(rows, StubNLI())
    assert m["sentences"] == 5 and m["citations"] == 7
    # the reference judge's labels in these rows equal the people's: measured on the same sentences
    assert m["reference"]["recall"]["kappa"] == 1.0 and m["reference"]["precision"]["acc"] == 1.0
    # the stub misses sentence 3 (people said supported): recall 4/5; its citation counts as imprecise
    assert m["recall"]["acc"] == 0.8 and m["precision"]["acc"] == pytest.approx(6 / 7, abs=1e-3)
    recs = to_records(rows)
    assert recs[1]["output"] == "F1 and F2 hold [1][2]."
    assert recs[1]["docs"][1] == {"title": "B", "text": "F2 is stated here."}
    same = agreement(rows, [r.human_recall for r in rows], [list(r.human_citation) for r in rows])
    assert same["recall"]["kappa"] == 1.0 and same["precision"]["kappa"] == 1.0


def test_tune_picks_the_threshold_people_agree_with():
    rows = _human_rows()
    # a judge whose probabilities are informative only above 0.6: 0.7 for facts present, 0.5 otherwise
    table = {}

    class Shifted(StubNLI):
        def prob(self, premise, hypothesis):
            return 0.7 if super().prob(premise, hypothesis) else 0.5

    found = tune(rows, {"shifted": lambda: Shifted(table)}, thresholds=(0.4, 0.6, 0.8), log=lambda _: None)
    best = found["candidates"]["shifted"]
    assert found["best"] == "shifted" and best["threshold"] == 0.6
    assert [s["threshold"] for s in best["sweep"]] == [0.4, 0.6, 0.8]
    assert best["agreement"]["recall"]["kappa"] > best["sweep"][0]["recall_kappa"]


def test_memo_backend_asks_each_pair_once_and_takes_a_new_threshold():
    inner = StubNLI()
    memo = MemoNLI(inner)
    stack = reader_stack(memo, {"premise_window_words": 60, "premise_windows": "documents"}, number_guard=True)
    changed = ("Title: A\nF1 was built in 1889.", "F1 was built in 1925.")
    same = ("Title: A\nF1 was built in 1889.", "F1 was built in 1889.")
    # the number guard rejects the changed year without asking the model; the other pair is asked once
    assert stack.predict([changed, same]).probs.tolist() == [0.0, 1.0]
    stack.predict([same, changed])
    assert inner.pairs_seen == [same]
    memo.threshold = 0.9
    assert memo.threshold == 0.9


def test_load_human_names_the_bad_line(tmp_path):
    f = tmp_path / "h.jsonl"
    good = {"question": "q", "sentence": "s [1].", "cited_docs": [{"title": "t", "text": "x"}], "human_recall": 1,
            "human_citation_scores": [2], "auto_recall": 1, "auto_citation_scores": [1]}
    f.write_text(json.dumps(good) + "\n" + json.dumps({**good, "human_citation_scores": [2, 1]}) + "\n")
    with pytest.raises(ValueError, match=r"h.jsonl:2: human_citation_scores has 2 scores for 1 cited_docs"):
        load_human(f)
    f.write_text(json.dumps(good) + "\n" + json.dumps({k: v for k, v in good.items() if k != "question"}) + "\n")
    with pytest.raises(ValueError, match=r"h.jsonl:2: missing field\(s\) \['question'\]"):
        load_human(f)
    f.write_text(json.dumps({**good, "cited_docs": [], "human_citation_scores": []}) + "\n" + json.dumps(good) + "\n")
    rows = load_human(f)
    assert len(rows) == 1 and rows[0].ref_citation == (1,)


# ------------------------------------------------------------------------------ resumable training


def test_training_resumes_where_it_stopped(tiny_cross_encoder, tmp_path):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from start.nli.train import BuildConfig, train_model

    words = "the tower was built in 1889 1925 paris is france big eiffel".split()
    rng = random.Random(0)
    pairs = [D.NLIPair(" ".join(rng.choices(words, k=8)), " ".join(rng.choices(words, k=4)),
                       D.LABELS[i % 3], "t", f"g{i}") for i in range(24)]
    tok = AutoTokenizer.from_pretrained(tiny_cross_encoder)

    def fresh():
        torch.manual_seed(0)
        m = AutoModelForSequenceClassification.from_pretrained(
            tiny_cross_encoder, num_labels=3, id2label=dict(enumerate(D.LABELS)), label2id=dict(D.LABEL2ID),
            ignore_mismatched_sizes=True)
        return m

    def cfg(cache):
        return BuildConfig(out=tmp_path / "out", cache_dir=cache, max_length=32, batch_size=4, lr=1e-3,
                           max_train_minutes=None, log_every=2, checkpoint_minutes=60)

    straight = fresh()
    stats = train_model(cfg(tmp_path / "a"), straight, tok, pairs, log=lambda _: None)
    assert stats["steps"] == 6 and not stats["stopped_by_time_cap"]

    resumed = fresh()
    first = train_model(cfg(tmp_path / "b"), resumed, tok, pairs, log=lambda _: None, stop=lambda step, _: step >= 2)
    assert first["steps"] == 2 and first["stopped_by_time_cap"] and Path(first["checkpoint"]).is_file()
    again = fresh()  # a new process: the weights come from the checkpoint, not from memory
    logs = []
    second = train_model(cfg(tmp_path / "b"), again, tok, pairs, log=logs.append)
    assert second["steps"] == 6 and any("resuming" in x and "step 2/6" in x for x in logs)
    for (name, a), b in zip(straight.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


def test_averaged_judge_is_the_weighted_mean_and_loads_from_settings(tiny_cross_encoder, tmp_path):
    import shutil

    from start.scoring.nli import AveragedNLI, base_backend

    half = StubNLI({("p", "h"): 0.2})
    other = StubNLI({("p", "h"): 0.6}, fingerprint="stub-v2")
    mean = AveragedNLI([(half, 0.75), (other, 0.25)])
    assert mean.predict([("p", "h")]).probs.tolist() == pytest.approx([0.3])
    assert mean.threshold == half.threshold and "stub-v2*0.25" in mean.fingerprint
    with pytest.raises(ValueError, match="sum to 1"):
        AveragedNLI([(half, 0.5), (other, 0.2)])

    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(tiny_cross_encoder, a)
    shutil.copytree(tiny_cross_encoder, b)
    (a / "start_nli.json").write_text(json.dumps({"threshold": 0.4, "ensemble": {"model": str(b), "weight": 0.3}}))
    nli = load_nli(NLIConfig(model=str(a), progress=False))
    assert isinstance(nli, AveragedNLI) and [w for _, w in nli.members] == [0.7, 0.3] and nli.threshold == 0.4
    assert base_backend(nli) is nli.members[0][0]
    alone = load_nli(NLIConfig(model=str(a), ensemble=False, progress=False))
    assert not isinstance(alone, AveragedNLI)
    pair = [("the tower was built in 1889 .", "it was built in 1889 .")]
    assert nli.predict(pair).probs[0] == pytest.approx(alone.predict(pair).probs[0], abs=1e-6)  # same weights


# ------------------------------------------------------------------------------------------- distillation


def _random_pairs(n: int, seed: int = 0) -> list[D.NLIPair]:
    words = "the tower was built in 1889 1925 paris is france big eiffel".split()
    rng = random.Random(seed)
    return [D.NLIPair(" ".join(rng.choices(words, k=8)), " ".join(rng.choices(words, k=4)),
                      D.LABELS[i % 3], "t", f"g{i}") for i in range(n)]


def test_teacher_labels_follow_label_names_and_resume_from_cached_chunks(tiny_cross_encoder, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from start.nli import distill
    from start.nli.measure import predict_proba

    pairs = _random_pairs(10)
    monkeypatch.setattr(distill, "CHUNK", 4)
    logs: list[str] = []
    probs = distill.teacher_probs(tiny_cross_encoder, pairs, 32, tmp_path, logs.append, batch_size=3)
    # the tiny teacher's outputs are (contradiction, neutral, entailment): columns come back in D.LABELS order
    model = AutoModelForSequenceClassification.from_pretrained(tiny_cross_encoder)
    raw = predict_proba(model, AutoTokenizer.from_pretrained(tiny_cross_encoder), pairs, 32)
    assert np.allclose(probs, raw[:, [2, 1, 0]], atol=1e-5)
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    folder = next(tmp_path.glob("teacher-*"))
    assert [f.name for f in folder.iterdir()] == ["probs.npy"]  # the chunks are gone once the whole is written

    # a stopped labelling: two of three chunks on disk; the next call computes only the third
    (folder / "probs.npy").unlink()
    for c in range(2):
        distill._save_npy(folder / f"chunk-{c:05d}.npy", np.full((4, 3), 1 / 3, dtype=np.float32))
    again = distill.teacher_probs(tiny_cross_encoder, pairs, 32, tmp_path, logs.append)
    assert any("(2 already done)" in line for line in logs)
    assert np.isclose(again, 1 / 3).all(axis=1).sum() == 8 and np.allclose(again.sum(1), 1, atol=1e-5)
    assert np.array_equal(distill.teacher_probs(tiny_cross_encoder, pairs, 32, tmp_path, logs.append), again)
    assert "read from" in logs[-1]
    with pytest.raises(ValueError, match="lack"):
        distill.teacher_label_order({0: "yes", 1: "no", 2: "neutral"})
    # held-out pairs are labelled with the teacher's decisions: entailed at its threshold, else the likelier rest
    rows = np.array([[0.5, 0.3, 0.2], [0.3, 0.3, 0.4], [0.44, 0.5, 0.06]], dtype=np.float32)
    decided = distill.teacher_labelled(_random_pairs(3), rows, 0.45)
    assert [p.label for p in decided] == ["entailment", "contradiction", "neutral"]


def test_soft_targets_train_the_student_towards_the_teacher(tiny_cross_encoder, tmp_path):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from start.nli.config import BuildConfig
    from start.nli.measure import predict_proba
    from start.nli.train import train_model

    pairs = _random_pairs(16)
    tok = AutoTokenizer.from_pretrained(tiny_cross_encoder)
    # a teacher that says "neutral" (0.9) whatever the gold label: the student must follow it, not the gold
    soft = np.tile(np.array([[0.05, 0.9, 0.05]], dtype=np.float32), (len(pairs), 1))
    torch.manual_seed(0)
    student = AutoModelForSequenceClassification.from_pretrained(
        tiny_cross_encoder, num_labels=3, id2label=dict(enumerate(D.LABELS)), label2id=dict(D.LABEL2ID),
        ignore_mismatched_sizes=True)
    cfg = BuildConfig(out=tmp_path / "out", cache_dir=tmp_path / "cache", max_length=32, batch_size=4, lr=1e-2,
                      epochs=10, max_train_minutes=None, checkpoint_minutes=60, teacher=tiny_cross_encoder)
    train_model(cfg, student, tok, pairs, log=lambda _: None, soft_targets=soft)
    after = predict_proba(student, tok, pairs, 32)
    assert after[:, D.LABEL2ID["neutral"]].mean() > 0.7
    with pytest.raises(ValueError, match="soft_targets has shape"):
        train_model(cfg, student, tok, pairs, log=lambda _: None, soft_targets=soft[:3])
    # the teacher is part of what a checkpoint depends on
    plain = BuildConfig(out=tmp_path / "out", cache_dir=tmp_path / "cache")
    assert plain.training_fingerprint(16) != BuildConfig(out=tmp_path / "out", cache_dir=tmp_path / "cache",
                                                         teacher=tiny_cross_encoder).training_fingerprint(16)


_ELEMENTS = [
    ("Argon", "Argon is a noble gas with atomic number 18. It was discovered in 1894 by Lord Rayleigh and William "
              "Ramsay. It makes up about 0.93% of the air we breathe. It is used in light bulbs and welding."),
    ("Neon", "Neon is a noble gas with atomic number 10. It was discovered in 1898 by William Ramsay and Morris "
             "Travers in London. It glows red in a vacuum discharge tube. It is used in advertising signs."),
    ("Helium", "Helium is the second lightest element, with atomic number 2. It was first seen in 1868 in the "
               "spectrum of the Sun. It is used to fill balloons and to cool magnets. It boils at 4 K."),
    ("Krypton", "Krypton is a noble gas with atomic number 36. It was discovered in 1898 by Ramsay and Travers in "
                "London. It is used in some flash lamps for photography. It has six stable isotopes."),
]


def test_passage_pairs_are_shaped_like_cited_passages_and_reproducible():
    from start.nli import distill

    passages = [distill.Passage(t, distill.split_sentences(x)) for t, x in _ELEMENTS]
    assert passages[0].sentences[1] == "It was discovered in 1894 by Lord Rayleigh and William Ramsay."
    pairs = distill.passage_pairs(passages, 300, seed=3)
    assert pairs == distill.passage_pairs(passages, 300, seed=3) and len(pairs) == 300
    assert pairs != distill.passage_pairs(passages, 300, seed=4)
    kinds = {p.source for p in pairs}
    assert kinds >= {"distill-own", "distill-swap", "distill-other", "distill-joint", "distill-window"}
    by_title = {t: x for t, x in _ELEMENTS}
    for p in pairs:
        docs = p.premise.split("\n")
        titles = [d.removeprefix("Title: ") for d in docs[0::2]]
        assert 1 <= len(titles) <= 3 and all(t in by_title for t in titles), p.premise
        premise_text = " ".join(docs[1::2])
        if p.source in ("distill-own", "distill-window"):
            assert p.hypothesis in premise_text and p.label == "entailment"
        elif p.source == "distill-other":
            assert p.hypothesis not in premise_text and p.group not in titles
        elif p.source == "distill-swap":
            assert p.hypothesis not in premise_text and p.label == "contradiction"
        elif p.source == "distill-window":
            assert len(docs) == 2
    with pytest.raises(ValueError, match=">= 3 passages"):
        distill.passage_pairs(passages[:2], 10, seed=0)


def test_a_distilled_build_needs_no_bigbench_and_is_measured_against_its_teacher(tiny_cross_encoder, tmp_path):
    pytest.importorskip("torch")
    from start.nli.config import BuildConfig
    from start.nli.train import build

    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps({"question": f"What is {t} ({k})?", "docs": [{"title": t, "text": x}]})
                              + "\n" for k in range(3) for t, x in _ELEMENTS), encoding="utf-8")  # docs read once
    cfg = BuildConfig(out=tmp_path / "student", cache_dir=tmp_path / "cache", base=str(tiny_cross_encoder),
                      teacher=tiny_cross_encoder, distill_source=str(source), distill_pairs=60, max_length=48,
                      batch_size=8, max_train_minutes=None, calibration_frac=0.25, test_frac=0.25)
    meta = build(cfg)
    dist = meta["distillation"]
    assert dist["source_passages"] == 4 and dist["held_out_passages"] == {"calibration": 1, "test": 1}
    assert "bigbench" not in meta["data"] and meta["data"]["distill_source"] == str(source)
    assert not (tmp_path / "cache" / "bigbench").exists()
    assert meta["metrics"]["test"]["all"]["n"] > 0 and "test_long" not in meta["metrics"]
    card = (tmp_path / "student" / "README.md").read_text(encoding="utf-8")
    assert "distilled from" in card and f"--distill-source {source}" in card.replace("\\\n  ", "")
    with pytest.raises(ValueError, match="needs a teacher"):
        BuildConfig(distill_source=str(source))


def test_build_cli_names_a_bad_distillation_source_and_refuses_bigbench_options(tiny_cross_encoder, tmp_path,
                                                                                 capsys):
    from start.nli.__main__ import main

    bad = tmp_path / "docs.jsonl"
    bad.write_text('{"question": "What is argon?", "docs": []}\n{"docs": [{"title": "Neon"}]}\n', encoding="utf-8")
    common = ["build", "--out", str(tmp_path / "student"), "--cache-dir", str(tmp_path / "cache"),
              "--base", str(tiny_cross_encoder), "--teacher", str(tiny_cross_encoder)]
    assert main([*common, "--distill-source", str(bad)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "record 1" in err
    with pytest.raises(SystemExit):
        main([*common, "--distill-source", str(bad), "--long-pairs", "10"])
    assert "does not read" in capsys.readouterr().err


def test_bench_distill_measures_decisions_equal_to_the_teacher(tiny_cross_encoder, tmp_path):
    pytest.importorskip("torch")
    import sys

    from start.nli.config import BuildConfig
    from start.nli.train import build

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import bench_distill

    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps({"question": f"What is {t}?", "docs": [{"title": t, "text": x}]}) + "\n"
                              for t, x in _ELEMENTS), encoding="utf-8")
    build(BuildConfig(out=tmp_path / "student", cache_dir=tmp_path / "cache", base=str(tiny_cross_encoder),
                      teacher=tiny_cross_encoder, distill_source=str(source), distill_pairs=60, max_length=48,
                      batch_size=8, max_train_minutes=None, calibration_frac=0.25, test_frac=0.25))
    meta_path = tmp_path / "student" / "start_nli.json"
    meta = json.loads(meta_path.read_text())
    # outside the project the build records folder names only: point them at this test's folders
    meta["config"].update(cache_dir=str(tmp_path / "cache"), teacher=str(tiny_cross_encoder))
    meta_path.write_text(json.dumps(meta))
    out = tmp_path / "distill.json"
    assert bench_distill.main(["--student", str(tmp_path / "student"), "--judge", str(tiny_cross_encoder),
                               "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["judges"]
    assert rows[str(tiny_cross_encoder)]["decisions_equal_teacher"] == 1.0  # the teacher, asked as a judge
    assert 0 <= rows["student"]["decisions_equal_teacher"] <= 1 and rows["student"]["n"] > 0
    assert "decisions = teacher's" in out.with_suffix(".md").read_text()
