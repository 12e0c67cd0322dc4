"""The Hugging Face NLI backends on tiny random models built in fixtures."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from start.scoring import AttributionScorer, NLIConfig, ScorerConfig, load_nli
from start.scoring.nli import Seq2SeqNLI, SequenceClassificationNLI, entailment_index

PAIRS = [
    ("title : paris\nthe tower was built in 1889 .", "the tower was built in 1889 ."),
    ("title : paris\nthe tower is big .", "it was built in 1925 ."),
    ("f1 f2 f3", "f1"),
    ("the tower", "paris is big and the tower was built in 1889 ."),
]


def test_entailment_index_is_read_from_id2label():
    assert entailment_index({0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"}) == 2
    assert entailment_index({"0": "entailment", "1": "not_entailment"}) == 0
    assert entailment_index({0: "yes", 1: "no"}, override="yes") == 0
    with pytest.raises(ValueError, match="entailment_label"):
        entailment_index({0: "LABEL_0", 1: "LABEL_1"})


def test_cross_encoder_batched_equals_one_by_one(tiny_cross_encoder):
    nli = load_nli(NLIConfig(model=str(tiny_cross_encoder), batch_size=3, progress=False))
    assert isinstance(nli, SequenceClassificationNLI) and nli.entail_index == 2
    batched = nli.predict(PAIRS).probs
    single = np.array([nli.predict([p]).probs[0] for p in PAIRS])
    assert batched.shape == (4,) and np.all((batched > 0) & (batched < 1))
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert len(set(np.round(batched, 6))) > 1  # the model does look at its input


def test_cross_encoder_truncates_the_premise_and_flags_it(tiny_cross_encoder):
    nli = load_nli(NLIConfig(model=str(tiny_cross_encoder), max_length=16, progress=False))
    long_premise = " ".join(["the tower is big ."] * 20)
    pred = nli.predict([(long_premise, "the tower was built in 1889 ."), ("f1", "f1")])
    assert pred.truncated.tolist() == [True, False]
    ids, _, _ = nli._encode([(long_premise, "the tower was built in 1889 .")])
    assert len(ids[0]) == 16
    tokens = nli.tokenizer.convert_ids_to_tokens(ids[0])
    assert tokens[-9:] == ["[SEP]", "the", "tower", "was", "built", "in", "1889", ".", "[SEP]"]  # hypothesis whole


def test_fingerprint_changes_with_settings(tiny_cross_encoder):
    a = load_nli(NLIConfig(model=str(tiny_cross_encoder), max_length=32))
    b = load_nli(NLIConfig(model=str(tiny_cross_encoder), max_length=32))
    c = load_nli(NLIConfig(model=str(tiny_cross_encoder), max_length=16))
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_seq2seq_true_format(tiny_t5_nli):
    import torch

    nli = load_nli(NLIConfig(model=str(tiny_t5_nli), batch_size=2, progress=False))
    assert isinstance(nli, Seq2SeqNLI)
    probs = nli.predict(PAIRS).probs
    single = np.array([nli.predict([p]).probs[0] for p in PAIRS])
    np.testing.assert_allclose(probs, single, atol=1e-5)
    # P("1") / (P("1") + P("0")) at the first decoder step, computed by hand for the first pair
    enc = nli.tokenizer([f"premise: {PAIRS[0][0]} hypothesis: {PAIRS[0][1]}"], return_tensors="pt")
    with torch.no_grad():
        logits = nli.model(**enc, decoder_input_ids=torch.zeros((1, 1), dtype=torch.long)).logits[0, 0]
    two = torch.softmax(torch.stack([logits[nli.yes_id], logits[nli.no_id]]), 0)
    assert probs[0] == pytest.approx(float(two[0]), abs=1e-5)


def test_scorer_runs_on_a_real_backend_and_batched_matches_sequential(tiny_cross_encoder):
    nli = load_nli(NLIConfig(model=str(tiny_cross_encoder), progress=False, threshold=0.33))
    records = [{"question": "q", "docs": [{"title": "paris", "text": "the tower was built in 1889 ."},
                                          {"title": "f1", "text": "f1 f2"}],
                "output": "the tower was built in 1889 [1][2]. f1 [2]. paris is big [1]."}] * 3
    scorer = AttributionScorer(nli, ScorerConfig(cache=False))
    a, b = scorer.score(records), scorer.score(records, sequential=True)
    assert a.metrics == pytest.approx(b.metrics)
    assert b.stats["model_pairs"] > a.stats["model_pairs"]  # the loop repeats what batching deduplicates


def test_number_guard_from_stored_settings(tiny_cross_encoder, tmp_path):
    import json
    import shutil

    from start.scoring.nli import NumberGuardedNLI

    folder = tmp_path / "guarded"
    shutil.copytree(tiny_cross_encoder, folder)
    (folder / "start_nli.json").write_text(json.dumps({"threshold": 0.0, "number_guard": True}))
    nli = load_nli(NLIConfig(model=str(folder), progress=False))
    assert isinstance(nli, NumberGuardedNLI) and nli.threshold == 0.0
    probs = nli.predict([("the tower was built in 1889 .", "it was built in 1925 ."),
                         ("the tower was built in 1889 .", "it was built in 1889 .")]).probs
    assert probs[0] == 0.0 and probs[1] > 0.0  # the changed year is never entailed
    plain = load_nli(NLIConfig(model=str(folder), number_guard=False, progress=False))
    assert not isinstance(plain, NumberGuardedNLI) and plain.fingerprint != nli.fingerprint


def test_premise_windows_pack_sentences():
    from start.scoring.nli import premise_windows

    premise = "Title: A\nOne two three four. Five six seven eight. Nine ten.\nTitle: B\nEleven twelve."
    wins = premise_windows(premise, 6)
    assert wins == ["Title: A One two three four.", "One two three four. Five six seven eight.",
                    "Five six seven eight. Nine ten.", "Nine ten. Title: B Eleven twelve."]
    assert premise_windows("Short premise.", 60) == ["Short premise."]
    assert premise_windows("", 60) == [""]


def test_premise_window_backend_takes_the_max_over_windows():
    from conftest import StubNLI

    from start.scoring.nli import PremiseWindowNLI

    inner = StubNLI()
    nli = PremiseWindowNLI(inner, words=3)
    pred = nli.predict([("F1 here. Filler words here. F2 there.", "F1 and F2."),
                        ("F1 here. Filler words here. F2 there.", "F2 again.")])
    # F1 and F2 never share a 3-word window, so the joint fact is missed; F2 alone is found
    assert pred.probs.tolist() == [0.0, 1.0]
    assert len(inner.pairs_seen) == 2 * 3 and nli.fingerprint.endswith("premise-window-3")


def _scripted(seed: int = 0):
    """A StubNLI whose probability per (reading, hypothesis) is a seeded coin, so maxima and thresholds matter."""
    import hashlib

    from conftest import StubNLI

    class Coin(StubNLI):
        def prob(self, premise, hypothesis):
            return hashlib.sha256(f"{seed}\0{premise}\0{hypothesis}".encode()).digest()[0] / 255

    return Coin()


def _premises(rng, n):
    docs = [f"Title: D{k}\n" + " ".join(f"Sentence {k}.{j} says F{rng.randint(1, 9)} with filler words here."
                                          for j in range(rng.randint(1, 6))) for k in range(6)]
    out = []
    for _ in range(n):
        cited = rng.sample(docs, rng.randint(1, 3))
        out.append(("\n".join(cited), f"F{rng.randint(1, 9)} is said."))
    return out


@pytest.mark.parametrize("mode,whole", [("documents", True), ("text", False)])
def test_lazy_reading_decides_like_reading_everything_with_fewer_readings(mode, whole):
    import random

    from start.scoring.nli import PremiseWindowNLI

    pairs = _premises(random.Random(1), 80)
    exact_inner, lazy_inner = _scripted(), _scripted()
    exact = PremiseWindowNLI(exact_inner, 12, mode, whole)
    lazy = PremiseWindowNLI(lazy_inner, 12, mode, whole, lazy=True)
    a, b = exact.predict(pairs), lazy.predict(pairs)
    thr = exact.threshold
    assert ((a.probs >= thr) == (b.probs >= thr)).all()  # the same decisions
    entailed = a.probs >= thr
    assert entailed.any() and (~entailed).any()
    assert (b.probs[~entailed] == a.probs[~entailed]).all()  # not entailed: every reading was read, exact maximum
    assert (b.probs[entailed] <= a.probs[entailed]).all()  # entailed: a lower bound at or above the threshold
    assert lazy.readings_asked < exact.readings_asked
    # exact mode asks every distinct reading once, and remembers it
    distinct = {r for p, h in pairs for r in exact.readings(p, h)}
    assert exact.readings_asked == len(distinct) == len(set(exact_inner.pairs_seen))
    exact.predict(pairs[:10])
    assert exact.readings_asked == len(distinct)
    # the lazy reader's fingerprint names its threshold: its cached probabilities are only good for that one
    assert lazy.fingerprint == exact.fingerprint + f":lazy@{thr:g}"


def test_readings_start_with_the_most_promising_window():
    from start.scoring.nli import PremiseWindowNLI

    nli = PremiseWindowNLI(_scripted(), 6, "documents", True)
    premise = "Title: A\nNothing to see in this part. The tower was built in 1889 in Paris."
    first, *_ = nli.readings(premise, "The tower was built in 1889.")
    assert "1889" in first[0] and first[0] != premise  # a window holding the words, before the whole premise


def test_number_guard_decides_guarded_pairs_without_the_model():
    from conftest import StubNLI

    from start.scoring.nli import NumberGuardedNLI

    inner = StubNLI()
    pred = NumberGuardedNLI(inner).predict([("F1 was built in 1889.", "F1 was built in 1925."),
                                            ("F1 was built in 1889.", "F1 was built in 1889.")])
    assert pred.probs.tolist() == [0.0, 1.0] and inner.pairs_seen == [("F1 was built in 1889.",
                                                                       "F1 was built in 1889.")]


def test_token_batches_fill_up_to_the_budget():
    import random

    from start.scoring.nli import token_batches

    rng = random.Random(0)
    lengths = [rng.randint(5, 300) for _ in range(200)]
    order = sorted(range(200), key=lambda i: -lengths[i])
    batches = token_batches(order, lengths, 32, 1024)
    assert [i for b in batches for i in b] == order  # every pair once, in order
    for b in batches:
        assert len(b) <= 32 and (len(b) == 1 or len(b) * lengths[b[0]] <= 1024)
    assert len(token_batches(order, lengths, 32, None)) == -(-200 // 32)  # by count only
    assert len(batches) > len(token_batches(order, lengths, 32, None))  # long pairs go a few at a time


def test_a_judge_runs_in_its_accepted_cpu_arithmetic(tiny_cross_encoder, tmp_path, monkeypatch):
    import torch

    import start.scoring.hf as hf
    import start.scoring.nli as N

    folder = tmp_path / "judge"
    shutil.copytree(tiny_cross_encoder, folder)
    settings = {"threshold": 0.5, "cpu_dtype": {"dtype": "bfloat16", "accepted": True}}
    (folder / "start_nli.json").write_text(json.dumps(settings))
    cpu = torch.device("cpu")
    monkeypatch.setattr(N, "cpu_has_bf16", lambda: True)
    assert N.judge_dtype("auto", cpu, settings) == torch.bfloat16
    assert N.judge_dtype("float32", cpu, settings) == torch.float32  # fp32 stays selectable
    assert N.judge_dtype("auto", cpu, {"cpu_dtype": {"dtype": "bfloat16", "accepted": False}}) == torch.float32
    fast = N.load_nli(N.NLIConfig(model=str(folder), progress=False))
    assert N.base_backend(fast).model.dtype == torch.bfloat16
    monkeypatch.setattr(N, "cpu_has_bf16", lambda: False)  # no bf16 instructions: emulated bf16 is slow
    assert N.judge_dtype("auto", cpu, settings) == torch.float32
    plain = N.load_nli(N.NLIConfig(model=str(folder), progress=False))
    assert N.base_backend(plain).model.dtype == torch.float32
    # other arithmetic, other probabilities: another fingerprint (fp32 keeps the name it always had)
    base = N.base_backend(plain)
    assert fast.fingerprint != plain.fingerprint == hf._fingerprint(
        str(folder), base.model, f"SequenceClassificationNLI:{base.max_length}")


def test_fp32_band_gives_fp32_decisions_with_fast_arithmetic(tiny_cross_encoder):
    """bf16 with a guard band: a pair within the band of the threshold is read again in fp32, so every decision
    is fp32's as long as bf16 errs by less than the band."""
    import random

    import start.scoring.nli as N

    rng = random.Random(0)
    words = "the tower was built in paris by engineers of steel and iron long ago".split()
    pairs = [(" ".join(rng.choices(words, k=12)), " ".join(rng.choices(words, k=5))) for _ in range(60)]
    exact = N.load_nli(N.NLIConfig(model=str(tiny_cross_encoder), dtype="float32", progress=False))
    p32 = exact.predict(pairs).probs
    thr = float(np.median(p32))  # half the pairs on each side, many of them close to it
    cfg = dict(model=str(tiny_cross_encoder), dtype="bfloat16", threshold=thr, progress=False)
    fast = N.load_nli(N.NLIConfig(**cfg))
    banded = N.load_nli(N.NLIConfig(**cfg, fp32_band=0.5))
    p16, pb = fast.predict(pairs).probs, banded.predict(pairs).probs
    err = float(np.abs(p16 - p32).max())
    assert 0 < err < 0.5
    assert ((pb >= thr) == (p32 >= thr)).all()  # fp32's decisions
    near = np.abs(p16 - thr) < 0.5
    assert banded.reread == int(near.sum()) and np.allclose(pb[near], p32[near], atol=1e-6)
    assert banded.fingerprint != fast.fingerprint != exact.fingerprint
    # under "auto" the band is the one the judge's accepted fast mode was measured with
    torch = pytest.importorskip("torch")
    settings = {"cpu_dtype": {"dtype": "bfloat16", "fp32_band": 0.05, "accepted": True}}
    cpu = torch.device("cpu")
    auto = N.NLIConfig(model="x")
    assert N.judge_arithmetic(auto, cpu, settings)[1] == (0.05 if N.cpu_has_bf16() else 0.0)
    assert N.judge_arithmetic(N.NLIConfig(model="x", dtype="float32"), cpu, settings) == (torch.float32, 0.0)
    with pytest.raises(ValueError, match="fp32_band"):
        N.NLIConfig(fp32_band=1.5)
