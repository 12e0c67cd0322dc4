"""Tests of the offline NLI model: data parsing/splitting, augmentation, the number guard, and the shipped
weights in start/assets/nli-minilm against the hand-written probe set."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from start.nli import data as D
from start.scoring.guard import extract_quantities, guarded_entailment, numbers_consistent

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "start" / "assets" / "nli-minilm"
PROBE = ROOT / "tests" / "data" / "nli_probe.jsonl"


def _vc(title: str, evidence: str, claim: str, label: str) -> dict:
    scores = {"True": 0, "False": 0, "Neither": 0}
    scores[label] = 1
    return {"input": f"{title}: {evidence}\nClaim: {claim}", "target_scores": scores}


def _write_task(tmp_path: Path, name: str, examples: list[dict]) -> Path:
    path = tmp_path / name / "task.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"name": name, "examples": examples}), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ parsing


def test_vitaminc_parser_labels_and_last_claim_split(tmp_path):
    examples = [
        _vc(
            "Westlife",
            "The band sold 23 million records in the UK .",
            "Westlife sold 23 million records .",
            "True",
        ),
        _vc(
            "Westlife",
            "The band sold 23 million records in the UK .",
            "Westlife sold 40 million records .",
            "False",
        ),
        _vc("Westlife", "The band sold 23 million records .", "Westlife has five members .", "Neither"),
        # The evidence itself contains "\nClaim: " once: the split must use the LAST one.
        _vc("Quote", "He said:\nClaim: nothing is certain .", "He made a statement .", "True"),
    ]
    pairs = D.load_task(_write_task(tmp_path, "vitaminc_fact_verification", examples), "vitaminc_fact_verification")
    assert [p.label for p in pairs] == ["entailment", "contradiction", "neutral", "entailment"]
    assert pairs[0].premise == "Westlife: The band sold 23 million records in the UK ."
    assert pairs[0].hypothesis == "Westlife sold 23 million records ."
    assert pairs[3].premise == "Quote: He said: Claim: nothing is certain ."  # whitespace normalised
    assert pairs[3].hypothesis == "He made a statement ."
    assert {p.group for p in pairs[:3]} == {"vc:westlife"}


def test_other_task_parsers():
    ep = D.parse_epistemic(
        [
            {
                "input": "Premise: Ann knows that a dog runs. Hypothesis: A dog runs.",
                "target_scores": {"entailment": 1, "non-entailment": 0},
            },
            {
                "input": "Premise: Ann thinks that a dog runs. Hypothesis: A dog runs.",
                "target_scores": {"entailment": 0, "non-entailment": 1},
            },
        ]
    )
    assert [(p.premise, p.hypothesis, p.label) for p in ep] == [
        ("Ann knows that a dog runs.", "A dog runs.", "entailment"),
        ("Ann thinks that a dog runs.", "A dog runs.", "neutral"),
    ]
    assert ep[0].group == ep[1].group  # same scene sentence -> same group
    an = D.parse_analytic(
        [
            {
                "input": "Sally met two actresses. So Sally met at least one woman.",
                "target_scores": {"entailment": 1, "no-entailment": 0},
            },
            {
                "input": "Caleb bought some art. Therefore Caleb bought a painting.",
                "target_scores": {"entailment": 0, "no-entailment": 1},
            },
        ]
    )
    assert [(p.premise, p.hypothesis, p.label) for p in an] == [
        ("Sally met two actresses.", "Sally met at least one woman.", "entailment"),
        ("Caleb bought some art.", "Caleb bought a painting.", "neutral"),
    ]


def test_malformed_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="Claim"):
        D.parse_vitaminc([{"input": "Title: no claim here", "target_scores": {"True": 1}}])
    with pytest.raises(ValueError, match="label must be one of"):
        D.NLIPair("p", "h", "yes", "x", "g")
    with pytest.raises(ValueError, match="non-commercial"):
        D.extract_tasks(Path("unused.tar.gz"), Path("unused"), ["presuppositions_as_nli"])


def test_split_is_group_disjoint_and_deterministic():
    rng = random.Random(0)
    pairs = [
        D.NLIPair(
            f"Page {g}: evidence {i}",
            f"claim {i}",
            rng.choice(D.LABELS),
            "vitaminc_fact_verification",
            f"vc:page {g}",
        )
        for g in range(200)
        for i in range(rng.randint(1, 6))
    ]
    a = D.split_by_group(pairs, seed=13, calibration_frac=0.1, test_frac=0.2)
    b = D.split_by_group(list(reversed(pairs)), seed=13, calibration_frac=0.1, test_frac=0.2)
    groups = {name: {p.group for p in rows} for name, rows in a.items()}
    assert not groups["train"] & groups["test"]
    assert not groups["train"] & groups["calibration"]
    assert not groups["calibration"] & groups["test"]
    assert sum(len(v) for v in a.values()) == len(pairs)
    assert {k: sorted(p.group for p in v) for k, v in a.items()} == {
        k: sorted(p.group for p in v) for k, v in b.items()
    }
    assert 0.15 < len(a["test"]) / len(pairs) < 0.3
    c = D.split_by_group(pairs, seed=14, calibration_frac=0.1, test_frac=0.2)
    assert {p.group for p in c["test"]} != groups["test"]


# ------------------------------------------------------------------------------------- augmentation


def test_augmentation_swaps_a_number_or_entity():
    train = [
        D.NLIPair(
            "Eiffel Tower: The tower was completed in 1889 .",
            "The tower was completed in 1889 .",
            "entailment",
            "vitaminc_fact_verification",
            "vc:eiffel tower",
        ),
        D.NLIPair(
            "Band: The band has 94 members and plays 120 concerts .",
            "The band has 94 members .",
            "entailment",
            "vitaminc_fact_verification",
            "vc:band",
        ),
        D.NLIPair(
            "Opera: The opera was composed by Giuseppe Verdi and performed in Cairo .",
            "The opera was performed in Cairo .",
            "entailment",
            "vitaminc_fact_verification",
            "vc:opera",
        ),
        D.NLIPair("Other: Something else .", "Nothing .", "neutral", "vitaminc_fact_verification", "vc:other"),
    ]
    aug = D.augment_hard_negatives(train, seed=13, contradiction_ratio=1.0, unrelated_ratio=0.0)
    assert len(aug) == 3
    originals = {p.group: p for p in train}
    for a in aug:
        src = originals[a.group]
        assert a.label == "contradiction" and a.source.startswith("aug-")
        assert a.premise == src.premise and a.hypothesis != src.hypothesis
        assert not numbers_consistent(a.premise, a.hypothesis) or a.source == "aug-entity"
    by_group = {a.group: a for a in aug}
    assert re.search(r"\b(?!1889)1[5-9]\d\d|20[0-4]\d\b", by_group["vc:eiffel tower"].hypothesis)
    assert "94" not in by_group["vc:band"].hypothesis
    opera = by_group["vc:opera"]
    assert opera.source == "aug-entity" and "Cairo" not in opera.hypothesis  # swapped for a premise entity
    # Bounds ("more than 200") are not swapped: the edit could leave the claim true.
    bound = [
        D.NLIPair(
            "X: It sold 433 copies .",
            "It sold more than 433 copies .",
            "entailment",
            "vitaminc_fact_verification",
            "vc:x",
        )
    ]
    assert all(a.source != "aug-number" for a in D.augment_hard_negatives(bound, 1, 1.0, 0.0))


def test_augmentation_only_unrelated_from_other_groups():
    train = [
        D.NLIPair(f"P{i}: fact {i} .", f"claim {i} .", "entailment", "vitaminc_fact_verification", f"vc:{i}")
        for i in range(20)
    ]
    aug = D.augment_hard_negatives(train, seed=3, contradiction_ratio=0.0, unrelated_ratio=0.5)
    assert len(aug) == 10
    for a in aug:
        assert a.label == "neutral" and a.source == "aug-unrelated"
        assert not a.premise.startswith(a.group.removeprefix("vc:").upper() + ":")


# -------------------------------------------------------------------------------------------- guard


@pytest.mark.parametrize(
    ("premise", "hypothesis", "expected"),
    [
        ("It was completed in 1889.", "It was completed in 1889.", True),
        ("It was completed in 1889.", "It was completed in 1925.", False),
        ("The bridge is 1,280 metres long.", "The bridge is 1280 metres long.", True),
        ("She has three children.", "She has 3 children.", True),
        ("Sales reached 13 million.", "Sales reached 13,000,000.", True),
        ("About 78% voted.", "About 21% voted.", False),
        ("Signed on 4 July 1921.", "Signed in June 1921.", False),
        ("Signed on 4 July 1921.", "Signed in July 1921.", True),
        ("The factory closed.", "The factory closed for good.", True),  # no numbers: no opinion
        ("You may go.", "He was her first love.", True),  # "may" (verb) and "first" are not quantities
        ("The ship carried 2,224 people.", "The ship carried 2,224 people on its first voyage.", True),
    ],
)
def test_numbers_consistent(premise, hypothesis, expected):
    assert numbers_consistent(premise, hypothesis) is expected


def test_extract_quantities_and_guarded_decision():
    assert extract_quantities("born 7 November 1867, 19th of 20") == {
        "7",
        "month:november",
        "1867",
        "19",
        "20",
    }
    assert guarded_entailment(0.9, "Built in 1889.", "Built in 1889.", 0.5)
    assert not guarded_entailment(0.9, "Built in 1889.", "Built in 1925.", 0.5)
    assert not guarded_entailment(0.1, "Built in 1889.", "Built in 1889.", 0.5)


def test_guard_function_named_by_the_bundled_judges_resolves():
    """The judges' start_nli.json name the guard by its old path (start.nli.guard), which stays importable."""
    import importlib

    named = {json.loads(p.read_text())["number_guard_function"]
             for p in (ROOT / "start" / "assets").glob("*/start_nli.json") if "number_guard_function" in p.read_text()}
    assert named
    for dotted in named:
        module, _, name = dotted.rpartition(".")
        assert getattr(importlib.import_module(module), name) is numbers_consistent


# ------------------------------------------------------------------------------------ shipped model


def _probe_rows() -> list[dict]:
    return [json.loads(line) for line in PROBE.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_probe_file_is_well_formed():
    rows = _probe_rows()
    assert len(rows) >= 40
    assert {r["kind"] for r in rows} == {"number", "date", "entity", "paraphrase", "unrelated"}
    for r in rows:
        assert set(r) == {"premise", "hypothesis", "entailed", "kind"}
        assert isinstance(r["entailed"], bool)


@pytest.mark.skipif(
    not (MODEL_DIR / "model.safetensors").is_file(),
    reason="NLI weights not built: run `python -m start.nli build --out start/assets/nli-minilm --seed 13`",
)
def test_shipped_model_loads_offline_and_passes_probe(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    torch = pytest.importorskip("torch")
    meta = json.loads((MODEL_DIR / "start_nli.json").read_text(encoding="utf-8"))
    for key in ("threshold", "max_length", "entailment_label", "base_model", "seed", "metrics"):
        assert key in meta
    assert meta["entailment_label"] == "entailment"
    assert (MODEL_DIR / "model.safetensors").stat().st_size < 60e6

    # the scorer's own loading path: bundled name, stored threshold, premise windows and number guard
    from start.scoring import NLIConfig, load_nli
    from start.scoring.nli import base_backend

    nli = load_nli(NLIConfig(model="minilm", progress=False))
    model = base_backend(nli)
    assert model.model.config.id2label == {0: "entailment", 1: "neutral", 2: "contradiction"}
    assert model.model.dtype == torch.float32 and nli.threshold == meta["threshold"]

    rows = _probe_rows()
    probs = nli.predict([(r["premise"], r["hypothesis"]) for r in rows]).probs
    # every number / date / entity swap and every unrelated hypothesis is rejected at the stored threshold
    accepted_wrongly = [(r["kind"], r["hypothesis"], round(float(p), 3)) for r, p in zip(rows, probs, strict=True)
                        if not r["entailed"] and p >= nli.threshold]
    assert not accepted_wrongly, f"swaps accepted at threshold {meta['threshold']:.3f}: {accepted_wrongly}"
    # and, for every premise, each faithful restatement scores above each swap of it
    by_premise: dict[str, dict[bool, list[float]]] = {}
    for r, p in zip(rows, probs, strict=True):
        by_premise.setdefault(r["premise"], {True: [], False: []})[r["entailed"]].append(float(p))
    for premise, ps in by_premise.items():
        if ps[True] and ps[False]:
            assert min(ps[True]) > max(ps[False]), premise
    # the shipped model card reports the same probe result as this run
    hits = sum((p >= nli.threshold) == r["entailed"] for r, p in zip(rows, probs, strict=True))
    assert hits / len(rows) == pytest.approx(meta["metrics"]["probe"]["accuracy_with_guard"], abs=1.5 / len(rows))


DEFAULT_DIR = ROOT / "start" / "assets" / "nli-mpnet-long"


def _weights(folder: Path) -> Path:
    meta = json.loads((folder / "start_nli.json").read_text(encoding="utf-8"))
    return folder / meta.get("weights_file", "model.safetensors")


@pytest.mark.skipif(not (DEFAULT_DIR / "start_nli.json").is_file(), reason="default judge not built (nli-model-mpnet)")
def test_default_judge_is_the_passage_judge_with_its_stored_settings(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from start.nli.agreement import probe_accuracy
    from start.scoring import NLIConfig, load_nli
    from start.scoring.learned import AggregatedNLI, LogisticAggregator
    from start.scoring.nli import DEFAULT_MODEL_DIR, PremiseWindowNLI, base_backend, resolve_model

    assert Path(resolve_model("default")) == DEFAULT_MODEL_DIR == DEFAULT_DIR
    meta = json.loads((DEFAULT_DIR / "start_nli.json").read_text(encoding="utf-8"))
    from start.scoring.weights import parts_of

    assert sum(f.stat().st_size for f in parts_of(_weights(DEFAULT_DIR))) <= 120e6  # whole or in parts
    agg = meta.get("aggregator") or {}
    if agg.get("enabled"):
        # the learned aggregator decides; its probe result in the model card is what it gives now
        judge = load_nli(NLIConfig(model="default", progress=False))
        assert isinstance(judge, AggregatedNLI) and judge.threshold == agg["threshold"]
        assert judge.words == agg["window_words"] and judge.aggregator == LogisticAggregator.from_dict(agg)
        assert probe_accuracy(judge, PROBE)["accuracy"] == meta["aggregator_calibration"]["probe"]["accuracy"]
    # the stored fixed rule (the default before the aggregator, and still the default without one)
    nli = load_nli(NLIConfig(model="default", aggregator=False, progress=False))
    assert nli.threshold == meta["threshold"] and base_backend(nli).max_length == meta["max_length"]
    if meta.get("premise_window_words"):
        window = nli if isinstance(nli, PremiseWindowNLI) else nli.inner
        assert (window.words, window.mode, window.whole) == (
            meta["premise_window_words"], meta["premise_windows"], meta["premise_whole"])
    if "human_calibration" in meta:
        # the probe result in the model card is what the stored settings give now
        assert probe_accuracy(nli, PROBE)["accuracy"] == meta["human_calibration"]["probe"]["accuracy"]
