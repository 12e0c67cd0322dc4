"""The learned aggregator over a judge's premise readings: features, the logistic fit, storage in start_nli.json,
and its honest measurement (leave-one-question-out) on people's citation judgments."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import StubNLI

from start.nli.aggregator import evaluate, feature_table, fixed_rule, labelled_pairs, targets
from start.nli.agreement import HumanSentence, score_at
from start.scoring.learned import (
    AggregatedNLI,
    LogisticAggregator,
    Readings,
    fit_logistic,
    lexical_features,
    reading_features,
)
from start.scoring.nli import NLIConfig, NumberGuardedNLI, PremiseWindowNLI, load_nli


def test_lexical_features_on_tiny_strings():
    f = lexical_features("Title: Paris\nParis has 2 million people and a river.", "Paris has 3 million people.")
    assert f["cov_words"] == 1.0  # paris, million, people
    assert f["cov_numbers"] == 0.0 and f["guard"] == 0.0  # neither "3" nor "3000000" is stated
    h = lexical_features("The tower was built in 1889 by 300 men.", "It was built in 1889 by 250 men.")
    assert h["cov_numbers"] == 0.5 and h["guard"] == 0.0
    g = lexical_features("Title: Rome\nRome is old.", "The Eiffel Tower stands in Paris.")
    assert g["cov_names"] == 0.0 and g["cov_words"] == 0.0 and g["cov_numbers"] == 1.0 and g["guard"] == 1.0
    assert g["hyp_words"] == pytest.approx(np.log(7)) and g["premise_words"] == pytest.approx(np.log(6))


def test_reading_features_whole_windows_and_the_fixed_rule():
    f = reading_features(Readings(own=(0.2, 0.9, 0.1), partner=(0.5, 0.3, 0.0)), partner_weight=0.5)
    assert (f["whole"], f["whole_partner"], f["win_max"], f["win_max_partner"]) == (0.2, 0.5, 0.9, 0.3)
    assert f["win_mean"] == pytest.approx(0.5) and f["mix_max"] == pytest.approx(0.6)
    # coverage: the best window by the mix covers a third of the sentence, the whole premise all of it
    cov = reading_features(Readings(own=(0.2, 0.9, 0.1), partner=(0.5, 0.3, 0.0), cover=(1.0, 1 / 3, 0.0)), 0.5)
    assert cov["best_cov"] == pytest.approx(1 / 3) and cov["mix_cov_max"] == pytest.approx(0.35)
    one = reading_features(Readings(own=(0.7,), partner=None), partner_weight=0.3)
    assert one["win_max"] == one["whole"] == one["mix_max"] == pytest.approx(0.7)  # no windows: the whole premise


def test_fit_logistic_learns_the_direction_and_checks_its_input():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = (x[:, 0] - 0.2 * rng.normal(size=200) > 0).astype(int)  # only the first feature matters
    agg = fit_logistic(x, y, ("win_max", "cov_words"), l2=1.0)
    assert agg.coef[0] > 2.0 and abs(agg.coef[1]) < 0.5 * agg.coef[0]
    assert agg.prob(np.array([[1.5, 0.0]]))[0] > 0.9 > 0.1 > agg.prob(np.array([[-1.5, 0.0]]))[0]
    with pytest.raises(ValueError, match="both classes"):
        fit_logistic(x, np.ones(200), ("win_max", "cov_words"))
    with pytest.raises(ValueError, match="unknown feature"):
        LogisticAggregator(("shoe_size",), (1.0,), 0.0, (0.0,), (1.0,))
    assert LogisticAggregator.from_dict(agg.to_dict()).prob(x[:5]) == pytest.approx(agg.prob(x[:5]), abs=1e-5)


def _aggregator(**kw) -> LogisticAggregator:
    # entailed when the model says so in some window AND the hypothesis's numbers are in the premise
    base = dict(features=("win_max", "cov_numbers"), coef=(4.0, 4.0), intercept=-4.0, center=(0.0, 0.0),
                scale=(1.0, 1.0), threshold=0.5)
    return LogisticAggregator(**{**base, **kw})


def test_aggregated_backend_reads_windows_and_moves_predictions_the_expected_way():
    inner = StubNLI()
    nli = AggregatedNLI(inner, _aggregator(), words=6)
    premise = "Title: A\nF1 was built in 1889. Many other things happened there later on. F2 is far."
    pairs = [(premise, "F1 was built in 1889."), (premise, "F1 was built in 1925."), (premise, "F3 holds.")]
    probs = nli.predict(pairs).probs
    assert probs[0] > 0.95 and probs[1] < probs[0] and probs[2] < probs[1]
    # the model says yes; of the numbers "1" (of F1) and "1925" only the first is stated: z = -4 + 4 + 4 * 0.5
    assert probs[1] == pytest.approx(1 / (1 + np.exp(-2.0)))
    asked = {p for p, _ in inner.pairs_seen}
    assert premise in asked and "Title: A\nF1 was built in 1889." in asked  # the whole premise and a window
    # windows are asked once however many hypotheses share the premise's readings (one call, deduplicated)
    assert len(inner.calls) == 1 and len(inner.pairs_seen) == len(set(inner.pairs_seen))
    readings, _ = nli.read(pairs[:1])
    assert readings[0].cover[0] == 1.0 and min(readings[0].cover) < 1.0  # "built" is in one window only
    stricter = AggregatedNLI(StubNLI(), _aggregator(intercept=-6.0), words=6)
    assert stricter.predict(pairs[:1]).probs[0] < probs[0] and stricter.fingerprint != nli.fingerprint
    assert nli.predict([]).probs.shape == (0,)


def test_stored_aggregator_round_trips_through_settings_and_load_nli(tiny_cross_encoder, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(tiny_cross_encoder, a)
    shutil.copytree(tiny_cross_encoder, b)
    agg = _aggregator(threshold=0.45)
    block = {**agg.to_dict(), "window_words": 30, "partner": str(b)}
    (a / "start_nli.json").write_text(json.dumps({"threshold": 0.4, "number_guard": True, "premise_window_words": 40,
                                                  "premise_windows": "documents", "aggregator": block}))
    nli = load_nli(NLIConfig(model=str(a), progress=False))
    assert isinstance(nli, AggregatedNLI) and nli.aggregator == agg and nli.words == 30
    assert nli.threshold == 0.45 and nli.partner is not None
    assert load_nli(NLIConfig(model=str(a), threshold=0.7, progress=False)).threshold == 0.7
    pairs = [("the tower was built in 1889 .", "it was built in 1889 ."), ("the tower is tall .", "it is 1925 .")]
    x = agg.matrix(nli.feature_rows(pairs)[0])
    assert nli.predict(pairs).probs == pytest.approx(agg.prob(x))
    with pytest.raises(ValueError, match="aggregator=false"):
        load_nli(NLIConfig(model=str(a), premise_window_words=0, progress=False))
    off = {**block, "enabled": False}  # stored but not the default: the fixed rule decides unless asked for
    (a / "start_nli.json").write_text(json.dumps({**json.loads((a / "start_nli.json").read_text()), "aggregator": off}))
    assert isinstance(load_nli(NLIConfig(model=str(a), progress=False)), NumberGuardedNLI)
    assert isinstance(load_nli(NLIConfig(model=str(a), aggregator=True, progress=False)), AggregatedNLI)
    with pytest.raises(ValueError, match="stores no 'aggregator'"):
        load_nli(NLIConfig(model=str(b), aggregator=True, progress=False))
    old = load_nli(NLIConfig(model=str(a), aggregator=False, progress=False))  # the stored fixed rule
    assert isinstance(old, NumberGuardedNLI) and isinstance(old.inner, PremiseWindowNLI) and old.threshold == 0.4
    (a / "start_nli.json").write_text(json.dumps({"aggregator": {**block, "coef": [1.0]}}))
    with pytest.raises(ValueError, match="start_nli.json: bad 'aggregator'"):
        load_nli(NLIConfig(model=str(a), progress=False))


def _rows() -> list[HumanSentence]:
    """Five questions; the people accept a sentence when its facts F<n> are in the cited documents."""
    docs = {1: ("A", "F1 is stated here."), 2: ("B", "F2 is stated here."), 3: ("C", "Nothing relevant.")}
    spec = [("q1", "F1 holds [1].", [1], 1, [2]), ("q2", "F1 and F2 hold [1][2].", [1, 2], 1, [1, 1]),
            ("q3", "F2 holds [2][3].", [2, 3], 1, [2, 0]), ("q4", "F3 holds [3].", [3], 0, [0]),
            ("q5", "F2 holds [1][2][3].", [1, 2, 3], 1, [0, 2, 0]), ("q6", "F4 holds [1].", [1], 0, [0]),
            ("q7", "F1 and F2 hold [1][2][3].", [1, 2, 3], 1, [1, 1, 0])]
    return [HumanSentence(q, s, tuple(docs[d] for d in ds), rec, tuple(int(c >= 1) for c in cs), None, None,
                          tuple(cs)) for q, s, ds, rec, cs in spec]


def test_labelled_pairs_follow_the_peoples_scores():
    rows = _rows()
    got = {(p.pair[0].replace("\n", "|"), p.pair[1]): p.label for p in labelled_pairs(rows, targets(rows))}
    assert got[("Title: A|F1 is stated here.", "F1 holds.")] == 1  # joint = single document: recall label
    assert got[("Title: A|F1 is stated here.|Title: B|F2 is stated here.", "F1 and F2 hold.")] == 1
    assert got[("Title: A|F1 is stated here.", "F1 and F2 hold.")] == 0  # scored 1: supports only with the other
    assert got[("Title: C|Nothing relevant.", "F2 holds.")] == 0
    # three documents: leaving out an irrelevant one keeps support, leaving out the only support loses it;
    # with every document scored "supports with the others" the people's scores do not say
    assert got[("Title: B|F2 is stated here.|Title: C|Nothing relevant.", "F2 holds.")] == 1
    assert got[("Title: A|F1 is stated here.|Title: C|Nothing relevant.", "F2 holds.")] == 0
    assert got[("Title: A|F1 is stated here.|Title: B|F2 is stated here.", "F1 and F2 hold.")] == 1
    assert ("Title: B|F2 is stated here.|Title: C|Nothing relevant.", "F1 and F2 hold.") not in got


def test_cross_validation_holds_out_each_question_and_the_fixed_rule_replays_the_scorer():
    rows = _rows()
    hyps = targets(rows)
    from start.nli.aggregator import candidate_pairs

    pairs = candidate_pairs(rows)
    assert {p.pair for p in labelled_pairs(rows, hyps)} <= set(pairs)
    table = feature_table(AggregatedNLI(StubNLI(), _aggregator(), words=40, partner=StubNLI()), pairs)
    lp = labelled_pairs(rows, hyps)
    fixed = evaluate(rows, table, lp, None, fixed_threshold=0.5, grid=(0.5,))
    assert fixed["in_sample"]["agreement"]["recall"] == score_at(rows, StubNLI())["recall"]
    # the stub's rule is the people's here; joint support shows only in the whole premise, not in a window
    out = evaluate(rows, table, lp, ("whole", "win_max"), l2=0.1, grid=(0.3, 0.5, 0.7))
    assert out["cv"]["folds"] == 7 and out["cv"]["agreement"]["sentences"] == 7
    assert out["in_sample"]["agreement"]["recall"]["acc"] == 1.0 == out["cv"]["agreement"]["recall"]["acc"]
    windows_only = evaluate(rows, table, lp, ("win_max",), l2=0.1, grid=(0.3, 0.5, 0.7))
    assert windows_only["in_sample"]["agreement"]["recall"]["acc"] < 1.0
    assert fixed_rule({"mix_max": 0.8, "guard": 0.0}) == 0.0
    assert fixed_rule({"mix_max": 0.8, "guard": 0.0}, guard=False) == 0.8  # a judge stored without the guard


def test_aggregate_command_stores_an_aggregator_that_load_nli_applies(tiny_cross_encoder, tmp_path, capsys):
    from start.nli.__main__ import main

    judge, partner = tmp_path / "judge", tmp_path / "partner"
    shutil.copytree(tiny_cross_encoder, judge)
    shutil.copytree(tiny_cross_encoder, partner)
    (judge / "start_nli.json").write_text(json.dumps({"threshold": 0.4, "number_guard": True, "premise_window_words": 8,
                                                      "premise_windows": "documents", "premise_whole": True,
                                                      "ensemble": {"model": str(partner), "weight": 0.3}}))
    human = tmp_path / "human.jsonl"
    with human.open("w") as f:
        for r in _rows():
            f.write(json.dumps({"question": r.question, "sentence": r.sentence, "human_recall": r.human_recall,
                                "cited_docs": [{"title": t, "text": x} for t, x in r.docs],
                                "human_citation_scores": list(r.citation_scores)}) + "\n")
    # no --window-words: the judge's stored reader's windows (8 words) are read
    args = ["aggregate", "--model", str(judge), "--human", str(human), "--partner", str(partner),
            "--l2", "1", "--probe", "none", "--threshold-step", "0.2"]
    assert main([*args, "--features", "rule", "cov_words", "--dry-run"]) == 0
    assert "aggregator" not in json.loads((judge / "start_nli.json").read_text())
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(summary) == {"in_sample", "cv", "fixed_rule", "adopted", "chosen"}
    assert main(args) == 0
    meta = json.loads((judge / "start_nli.json").read_text())
    block, rep = meta["aggregator"], meta["aggregator_calibration"]
    # every candidate set is reported; the stored one is the best held-out (weaker kappa first, then the mean)
    from start.nli.aggregator import CANDIDATES
    from start.nli.agreement import objective

    assert set(rep["search"]) == set(CANDIDATES) and block["features"] == list(CANDIDATES[rep["chosen"]])
    best = max(objective(v["cv"]) for v in rep["search"].values())
    assert objective(rep["search"][rep["chosen"]]["cv"]) == best and block["window_words"] == 8
    # nested: the set chosen per held-out question on the other questions; every question judged once
    assert sum(rep["nested"]["picks"].values()) == 7 and rep["nested"]["agreement"]["sentences"] == 7
    assert "held_out_labels" not in json.dumps(rep)
    assert block["partner_weight"] == 0.3 and rep["cv"]["folds"] == 7 and rep["training_pairs"] > 7
    from start.nli.card import _aggregator_section

    card = _aggregator_section(meta)
    assert "## Learned aggregator" in card and "leave-one-question-out" in card and f"`{block['features'][0]}`" in card
    assert block["enabled"] == rep["adopted"]
    nli = load_nli(NLIConfig(model=str(judge), aggregator=True, progress=False))
    assert isinstance(nli, AggregatedNLI) and nli.aggregator == LogisticAggregator.from_dict(block)
    assert nli.threshold == block["threshold"] == rep["in_sample"]["threshold"]
    with pytest.raises(SystemExit):
        main([*args[:4], "--features", "shoe_size"])
    # with a calibration on record, the report says whether the replayed fixed rule reproduces it
    assert "replays_calibration" not in rep["fixed_rule"]
    for kappa, replays in ((rep["fixed_rule"]["in_sample"]["agreement"]["recall"]["kappa"], True), (0.99, False)):
        agreement = json.loads(json.dumps(rep["fixed_rule"]["in_sample"]["agreement"]))
        agreement["recall"]["kappa"] = kappa
        meta = json.loads((judge / "start_nli.json").read_text())
        (judge / "start_nli.json").write_text(json.dumps({**meta, "human_calibration": {"agreement": agreement}}))
        assert main([*args, "--features", "rule"]) == 0
        fixed = json.loads((judge / "start_nli.json").read_text())["aggregator_calibration"]["fixed_rule"]
        assert fixed["replays_calibration"] is replays


def test_bench_judge_reads_judge_overrides_and_shows_held_out_numbers():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import bench_judge

    assert bench_judge.parse_judge("previous=default:aggregator=false,threshold=0.4") == (
        "previous", "default", {"aggregator": False, "threshold": 0.4})
    with pytest.raises(ValueError, match="NAME=MODEL"):
        bench_judge.parse_judge("default")
    m = {"recall": {"acc": 0.8, "kappa": 0.4}, "precision": {"acc": 0.7, "kappa": 0.3}}
    cv = {"recall": {"acc": 0.75, "kappa": 0.35}, "precision": {"acc": 0.65, "kappa": 0.25}}
    judge = {"model": "default", "agreement": m, "agreement_cv": cv, "vitaminc_auc": None, "long_premise_auc": None,
             "probe": {"accuracy": 0.9, "by_kind": {}}, "speed": {"pairs_per_s": 10, "scorer_dev_seconds": 5,
                                                                  "pairs": 3},
             "settings": {"threshold": 0.4, "number_guard": True, "premise_window_words": 40,
                          "premise_windows": "documents", "premise_whole": True, "max_length": 512}}
    out = {"human_file": "h.jsonl", "reference": {"name": "TRUE", **m}, "machine": "x",
           "judges": {"new": judge, "old": {**judge, "agreement_cv": None, "tuned_on_this_set": False}}}
    md = bench_judge.render(out)
    assert "| new (`default`) | 0.800 | 0.400 | 0.700 | 0.300 | 0.750 | 0.350 | 0.650 | 0.250 |" in md
    assert "| old (`default`) | 0.800 | 0.400 | 0.700 | 0.300 | 0.800 | 0.400 | 0.700 | 0.300 |" in md  # not tuned


def test_the_aggregator_module_leaves_the_scorers_aggregate_function_in_place():
    import start.scoring
    import start.scoring.learned  # noqa: F401  (a submodule named like a package attribute would replace it)

    assert callable(start.scoring.aggregate) and start.scoring.aggregate.__module__ == "start.scoring.scorer"
