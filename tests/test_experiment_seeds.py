"""The seeds/ablation harness (scripts/experiment_seeds.py): its plan of runs and its aggregation, on fake
run folders whose reports come from the real report writer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from start.evaluate import write_report
from start.io import write_json, write_jsonl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import experiment_seeds as harness  # noqa: E402


def fake_eval(folder: Path, f1: np.ndarray, comp: np.ndarray) -> None:
    """An evaluation of len(f1) questions x 2 samples, every sample scoring the question's value."""
    rows = []
    for q, (v, c) in enumerate(zip(f1, comp, strict=True)):
        for k in range(2):
            rows.append({"id": f"q{q:02d}#{k}", "n_sentences": 1, "citation_rec": v, "citation_prec": v,
                         "citation_f1": v, "n_citations": 1, "comprehensiveness": c,
                         "comprehensiveness_source": "short_answers", "distractor_citation_rate": None,
                         "unsupported_sentence_rate": None, "robustness": None, "length": 4, "str_em": c})
    write_jsonl(folder / "score" / "scores.jsonl", rows)
    from start.evaluate import eval_columns
    from start.stats import bootstrap

    _, cols = eval_columns(folder / "score" / "scores.jsonl")
    write_json(folder / "metrics.json", {"questions": len(f1), "samples": 2 * len(f1), "empty_answers": 0,
                                         "metrics": bootstrap(cols, n_boot=50)})


def fake_run(run_dir: Path, gains: list[float], seed: int, pairs: list[int]) -> None:
    rng = np.random.default_rng(seed)
    f1 = rng.uniform(0.0, 0.5, 16)
    comp = rng.uniform(0.0, 0.5, 16)
    write_json(run_dir / "config.json", {"eval": {"n_boot": 60}})
    fake_eval(run_dir / "round_0" / "eval_base", f1 * 0, comp)
    fake_eval(run_dir / "round_0" / "eval", f1, comp)
    for r, g in enumerate(gains, start=1):
        fake_eval(run_dir / f"round_{r}" / "eval", np.clip(f1 + g, 0, 1), np.clip(comp + g / 2, 0, 1))
        write_json(run_dir / f"round_{r}" / "questions.json", {"ids": [f"t{r}{i}" for i in range(4)], "pool": 8,
                                                               "offset": 4 * (r - 1), "reused": 0})
        write_json(run_dir / f"round_{r}" / "pairs" / "stats.json",
                   {"pairs": pairs[r - 1], "by_kind": {"overall": pairs[r - 1]}, "questions_with_pairs": 1,
                    "comprehensiveness": {"setting": "consensus"}})
    write_report(run_dir, n_boot=60)


def test_plan_names_every_run_and_its_overrides(tmp_path):
    runs = harness.plan_runs([0, 1, 2], 1, tmp_path, ["rounds=3"], rs_sft=True, tiny=True, more_rounds=4)
    assert [r["name"] for r in runs] == ["seed1", "seed0", "seed2", "overall-seed1", "no-warmup-seed1",
                                         "no-attributability-seed1", "no-comprehensiveness-seed1",
                                         "no-robustness-seed1", "rs-sft-seed1", "rounds4-seed1"]
    assert [r["row"] for r in runs] == ["full method", None, None, "overall pairs only", "without warm-up",
                                        "without attributability", "without comprehensiveness", "without robustness",
                                        "rejection-sampling SFT only", "4 rounds"]
    o = runs[3]["overrides"]
    assert o[:3] == ["debug=tiny", "sampler=transformers", "rounds=3"] and "preference.fine_grained=false" in o
    assert f"run_dir={tmp_path / 'overall-seed1'}" in o and "seed=1" in o
    assert "warmup.enabled=false" in runs[4]["overrides"] and runs[4]["own_round0"]
    assert {"preference.weights.attributability=0", "preference.min_attributability=0"} <= set(runs[5]["overrides"])
    assert "preference.weights.robustness=0" in runs[7]["overrides"]
    assert "trainer.rs_sft.only=true" in runs[8]["overrides"]
    assert runs[9]["overrides"].index("rounds=4") > runs[9]["overrides"].index("rounds=3") and runs[9]["continues"]
    assert [r["name"] for r in harness.plan_runs([0], 0, tmp_path, [], ablations=False)] == ["seed0", "overall-seed0"]


def test_dry_run_prints_commands_and_runs_nothing(tmp_path, capsys):
    assert harness.main(["--dry-run", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "bench"),
                         "rounds=1"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("-m start.run") == 8 and "rounds=1" in printed
    assert not (tmp_path / "runs").exists() and not (tmp_path / "bench").exists()


def test_aggregation_of_finished_runs(tmp_path):
    runs_dir = tmp_path / "runs"
    fake_run(runs_dir / "seed0", [0.1, 0.2], seed=0, pairs=[5, 3])
    fake_run(runs_dir / "seed1", [0.0, 0.0], seed=1, pairs=[2, 0])
    fake_run(runs_dir / "seed2", [0.05, 0.3], seed=2, pairs=[4, 4])
    fake_run(runs_dir / "overall-seed0", [0.05, 0.05], seed=0, pairs=[6, 6])
    samples = [{"id": f"q{q:02d}", "docs": [{"text": "A b c."}], "samples": [{"text": "A b c [1]."}] * 2}
               for q in range(16)]
    write_jsonl(runs_dir / "seed0" / "round_2" / "eval" / "sample" / "samples.jsonl", samples)
    out = tmp_path / "bench"
    assert harness.main(["--no-run", "--runs", str(runs_dir), "--out", str(out)]) == 0

    seeds = json.loads((out / "start_seeds.json").read_text())
    assert [s["seed"] for s in seeds["seeds"]] == [0, 1, 2]
    s0 = seeds["seeds"][0]
    assert set(s0) >= {"seed", "base", "warmup", "rounds", "round0_to_last"}
    assert [r["round"] for r in s0["rounds"]] == [1, 2]
    for m in ("citation_rec", "citation_prec", "citation_f1", "comprehensiveness", "str_em"):
        lo_hi = s0["rounds"][1][m]
        assert len(lo_hi) == 3 and lo_hi[1] <= lo_hi[0] <= lo_hi[2]
    # a constant shift of +0.2 on every question: the paired difference is exactly +20 points
    assert s0["round0_to_last"]["citation_f1"] == pytest.approx([20.0, 20.0, 20.0])
    assert s0["round0_to_last"]["comprehensiveness"] == pytest.approx([10.0, 10.0, 10.0])
    assert seeds["seeds"][1]["round0_to_last"]["citation_f1"] == [0.0, 0.0, 0.0]
    assert seeds["seeds_with_citation_f1_rise"] == [0, 2]
    assert [t["pairs"] for t in s0["training"]] == [5, 3]
    assert s0["habits"]["warmup"] is None  # no samples kept for that evaluation
    assert s0["habits"]["last"]["answers"] == 32 and s0["habits"]["last"]["words"] == 4.0

    abl = json.loads((out / "start_ablation.json").read_text())
    assert abl["seed"] == 0
    assert [r["row"] for r in abl["rows"]] == ["warm-up only", "full method", "overall pairs only"]
    assert abl["not_finished"] == ["without warm-up", "without attributability", "without comprehensiveness",
                                   "without robustness"]
    rows = {r["row"]: r for r in abl["rows"]}
    assert rows["full method"]["metrics"]["citation_f1"][0] == pytest.approx(s0["rounds"][1]["citation_f1"][0])
    assert rows["warm-up only"]["metrics"]["citation_f1"][0] == pytest.approx(s0["warmup"]["citation_f1"][0])
    assert rows["overall pairs only"]["full_minus_row"]["citation_f1"] == pytest.approx([15.0, 15.0, 15.0])
    assert "full_minus_row" not in rows["full method"]
    assert harness._rel(harness.ROOT / "runs" / "seeds" / "seed0") == "runs/seeds/seed0"  # committed: relative
    md = (out / "start_seeds.md").read_text()
    assert "| 0 |" in md and "| overall pairs only |" in md and "20.0 [20.0, 20.0]" in md


def test_unfinished_run_is_named(tmp_path):
    (tmp_path / "runs" / "seed0").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="seed0: no report"):
        harness.main(["--no-run", "--seeds", "0", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "b")])


def test_ablation_run_starts_from_the_full_methods_finished_round0(tmp_path):
    runs = harness.plan_runs([0, 1], 0, tmp_path, [])
    full, other, overall = runs[0], runs[1], runs[2]
    assert not harness.share_warmup(overall, runs)  # the full method's round 0 is not finished yet
    fake_eval(full["run_dir"] / "round_0" / "eval", np.full(4, 0.5), np.full(4, 0.5))
    assert not harness.share_warmup(other, runs)  # another seed is not an ablation row
    assert harness.share_warmup(overall, runs)
    copied = overall["run_dir"] / "round_0" / "eval" / "metrics.json"
    assert copied.read_text() == (full["run_dir"] / "round_0" / "eval" / "metrics.json").read_text()
    assert not harness.share_warmup(overall, runs)  # never over an existing round 0
    assert not (overall["run_dir"] / "round_0.tmp").exists()


def test_final_split_links_the_models_and_evaluates_round0_and_the_last_round(tmp_path):
    runs = harness.plan_runs([0], 0, tmp_path, ["rounds=2"])
    src = runs[0]["run_dir"]
    write_json(src / "config.json", {"rounds": 2, "eval": {"n_boot": 50}})
    for m in ("round_0/warmup/model", "round_1/train/model", "round_2/train/model"):
        write_json(src / m / "weights.json", {"w": m})
    final = harness.split_runs(runs[:1], "test")[0]
    assert final["name"] == "seed0-test" and final["run_dir"] == tmp_path / "seed0-test"
    first, last = final["commands"]
    assert {"eval_split=test", "stage=eval", "round=0", "eval.base=false"} <= set(first)
    assert "round=2" in last and f"run_dir={tmp_path / 'seed0-test'}" in last
    assert not any(o.startswith("run_dir=") and "seed0-test" not in o for o in first + last)
    harness.link_models(final)
    for m in ("round_0/warmup/model", "round_1/train/model", "round_2/train/model"):
        a, b = src / m / "weights.json", final["run_dir"] / m / "weights.json"
        assert a.stat().st_ino == b.stat().st_ino  # hard links: no second copy of the weights
    assert not (final["run_dir"] / "round_1" / "eval").exists()


def test_tried_settings_are_rows_on_the_ablation_seed_and_never_go_to_the_final_split(tmp_path):
    tried = harness.parse_tried(["floor0:preference.min_attributability=0",
                                 "light:preference.weights.comprehensiveness=0.25 preference.weights.robustness=0.25"])
    assert tried[1] == ("light", ["preference.weights.comprehensiveness=0.25", "preference.weights.robustness=0.25"])
    for bad in ("floor0", "floor0:", "x:min_attributability", "a b:x=1"):
        with pytest.raises(ValueError, match="expected NAME:key=value"):
            harness.parse_tried([bad])
    with pytest.raises(ValueError, match="given twice"):
        harness.parse_tried(["a:x=1", "a:y=2"])
    runs = harness.plan_runs([0, 1], 0, tmp_path / "runs", ["rounds=2"], tried=tried, ablations=False)
    t = runs[-2]
    assert t["name"] == "try-floor0-seed0" and t["row"] == "tried: floor0" and t["tried"]
    assert "preference.min_attributability=0" in t["overrides"] and "seed=0" in t["overrides"]
    for r in runs:
        write_json(r["run_dir"] / "config.json", {"rounds": 2})
    assert [r["name"] for r in harness.split_runs(runs, "test")] == ["seed0-test", "seed1-test", "overall-seed0-test"]
    fake_eval(runs[0]["run_dir"] / "round_0" / "eval", np.full(4, 0.5), np.full(4, 0.5))
    assert harness.share_warmup(t, runs)  # from the same warm-up as the full method

    runs_dir = tmp_path / "agg"
    fake_run(runs_dir / "seed0", [0.1, 0.2], seed=0, pairs=[5, 3])
    fake_run(runs_dir / "seed1", [0.1, 0.1], seed=1, pairs=[5, 3])
    fake_run(runs_dir / "overall-seed0", [0.05, 0.05], seed=0, pairs=[6, 6])
    fake_run(runs_dir / "try-floor0-seed0", [0.0, 0.1], seed=0, pairs=[7, 2])
    out = tmp_path / "bench"
    assert harness.main(["--no-run", "--seeds", "0", "1", "--runs", str(runs_dir), "--out", str(out),
                         "--try", "floor0:preference.min_attributability=0"]) == 0
    abl = json.loads((out / "start_ablation.json").read_text())
    assert [r["row"] for r in abl["rows"]] == ["warm-up only", "full method", "overall pairs only"]
    assert abl["not_finished"] == ["without warm-up", "without attributability", "without comprehensiveness",
                                   "without robustness"]
    (row,) = abl["tried"]
    assert row["row"] == "tried: floor0" and row["overrides"] == ["preference.min_attributability=0"]
    assert row["full_minus_row"]["citation_f1"] == pytest.approx([10.0, 10.0, 10.0])
    assert [t["pairs"] for t in row["training"]] == [7, 2]
    md = (out / "start_seeds.md").read_text()
    assert "## Settings tried" in md and "| floor0 | `preference.min_attributability=0` |" in md and "cites [1]" in md


def test_margin_change_is_rescored_with_the_runs_judge(tmp_path, stub_nli, monkeypatch):
    import start.scoring
    from start.scoring import AttributionScorer, ScorerConfig
    from start.shortcuts import margin_change

    judge = AttributionScorer(stub_nli, ScorerConfig(cache=False))
    monkeypatch.setattr(start.scoring, "AttributionScorer", lambda nli, rules: judge)
    docs = [{"title": "A", "text": "Alpha holds F1."}, {"title": "B", "text": "Beta holds F2."}]
    outputs = {0: "Alpha holds F1 [1]. Beta holds F2 [1].", 2: "Alpha holds F1 [1]. Beta holds F2 [2]."}
    run = tmp_path / "seed0"
    write_json(run / "config.json", {"eval": {"n_boot": 40}, "scorer": {"nli": {}, "rules": {}}})
    sides = []
    for r, out in outputs.items():
        rows = [{"id": f"q{q}", "question": "What?", "docs": docs, "samples": [{"text": out}]} for q in range(5)]
        write_jsonl(run / f"round_{r}" / "eval" / "sample" / "samples.jsonl", rows)
        records = [{"id": f"q{q}#0", "question": "What?", "docs": docs, "output": out} for q in range(5)]
        scored = judge.score(records).records
        write_jsonl(run / f"round_{r}" / "eval" / "score" / "scores.jsonl", [s.to_dict() for s in scored])
        sides.append((records, per_question_of(scored)))
    got = harness.margin_change_of(run, 2)
    assert got == pytest.approx([50.0, 50.0, 50.0])  # from the [1] habit (margin 0) to citing each source
    want = margin_change(*sides, judge, n_boot=40)
    assert got == pytest.approx([want["value"], want["low"], want["high"]])
    assert harness.margin_change_of(tmp_path / "no-samples", 2) is None


def per_question_of(records):
    from start.stats import per_question

    return per_question(records, lambda i: i.rsplit("#", 1)[0])


def test_final_split_tables_name_what_the_source_runs_trained_on(tmp_path):
    runs_dir = tmp_path / "runs"
    for name, seed in (("seed0", 0), ("overall-seed0", 0)):
        fake_run(runs_dir / name, [0.1, 0.2], seed=seed, pairs=[5, 3])
        write_json(runs_dir / name / "config.json", {"rounds": 2, "eval": {"n_boot": 60}})
        fake_run(runs_dir / f"{name}-test", [0.0, 0.1], seed=seed + 7, pairs=[0, 0])
        (runs_dir / f"{name}-test" / "report" / "training.json").unlink()  # the split's runs train nothing
    runs = harness.plan_runs([0], 0, runs_dir, [])
    seeds, _ = harness.aggregate(harness.split_runs(runs, "test"), tmp_path / "bench", 0, [], split="test")
    assert [t["pairs"] for t in seeds["seeds"][0]["training"]] == [5, 3]
    assert "| 5, 3 |" in (tmp_path / "bench" / "start_seeds_test.md").read_text()


def test_rows_without_warm_up_and_continued_rounds(tmp_path):
    runs = harness.plan_runs([0], 0, tmp_path / "runs", ["rounds=2"], more_rounds=3)
    full, no_warmup, more = runs[0], runs[2], runs[-1]
    fake_run(full["run_dir"], [0.1, 0.2], seed=0, pairs=[5, 3])
    for m in ("round_1/train/model", "round_2/train/model"):
        write_json(full["run_dir"] / m / "weights.json", {"w": m})
    write_json(full["run_dir"] / "config.json", {"rounds": 2, "eval": {"n_boot": 60}})
    assert not harness.share_warmup(no_warmup, runs)  # its round 0 is the base model, never the warm-up's
    assert harness.share_warmup(more, runs)
    for m in ("round_1/train/model", "round_2/train/model"):  # the continued run starts from the finished rounds
        inode = (full["run_dir"] / m / "weights.json").stat().st_ino
        assert (more["run_dir"] / m / "weights.json").stat().st_ino == inode
    assert (more["run_dir"] / "round_2" / "eval" / "metrics.json").is_file()
    # on the final split the full method is evaluated at every round (the rows "1 round", ...)
    write_json(more["run_dir"] / "config.json", {"rounds": 3})
    write_json(no_warmup["run_dir"] / "config.json", {"rounds": 2})
    finals = {r["name"]: r for r in harness.split_runs([full, no_warmup, more], "test")}
    assert [c[-1] for c in finals["seed0-test"]["commands"]] == ["eval.base=false", "round=1", "round=2"]
    assert [c[-1] for c in finals["rounds3-seed0-test"]["commands"]] == ["eval.base=false", "round=3"]
    harness.link_models(finals["no-warmup-seed0-test"])  # no round_0/warmup to link: no error
    # the continued run's last round is the "3 rounds" row, the full method's round 1 the "1 round" row
    fake_run(more["run_dir"], [0.1, 0.2, 0.3], seed=0, pairs=[5, 3, 2])
    write_json(more["run_dir"] / "config.json", {"rounds": 3, "eval": {"n_boot": 60}})
    _, abl = harness.aggregate(runs, tmp_path / "bench", 0, [])
    assert [r["row"] for r in abl["rows"]] == ["warm-up only", "1 round", "full method", "3 rounds"]
    rows = {r["row"]: r for r in abl["rows"]}
    assert rows["3 rounds"]["full_minus_row"]["citation_f1"] == pytest.approx([-10.0, -10.0, -10.0])
    assert rows["1 round"]["full_minus_row"]["citation_f1"] == pytest.approx([10.0, 10.0, 10.0])


def test_targets_read_the_evaluation_judge_and_the_positions():
    seeds = [{"seed": k, "round0_to_last": {"eval_attribution_margin": [m, lo, m + 5]},
              "evaluations": {"0": {"position_gap": 30.0, "habits": {"own_supported_share": 0.2}},
                              "2": {"position_gap": g, "habits": {"own_supported_share": o}}}}
             for k, m, lo, g, o in ((0, 8.0, 1.0, 10.0, 0.4), (1, 5.0, -2.0, 12.0, 0.3), (2, 9.0, 2.0, 20.0, 0.1))]
    abl = {"rows": [{"row": "overall pairs only", "full_minus_row": {"citation_f1": [1.0, -3.0, 5.0],
                                                                      "comprehensiveness": [4.0, 1.0, 7.0]}}]}
    t = harness.targets(seeds, abl)
    assert t["eval_margin_interval_above_0"]["seeds"] == [0, 2]
    assert t["position_within_15_points"]["max_gap_points"] == {0: 30.0, 1: 30.0, 2: 30.0}
    assert [v["rises"] for v in t["own_words_supported_rises"].values()] == [True, True, False]
    assert t["full_vs_overall"]["comprehensiveness"] == [4.0, 1.0, 7.0]
    assert "seeds [0, 2]" in harness.targets_markdown(t)


def test_rows_choose_the_ablation_rows_by_name(tmp_path):
    names = [r["name"] for r in harness.plan_runs([0, 1], 0, tmp_path, [], ablations=("no-robustness", "overall"))]
    assert names == ["seed0", "seed1", "overall-seed0", "no-robustness-seed0"]
    assert [r["name"] for r in harness.plan_runs([0, 1], 0, tmp_path, [], ablations=())] == ["seed0", "seed1"]
    with pytest.raises(ValueError, match="unknown ablation rows.*no-such"):
        harness.plan_runs([0], 0, tmp_path, [], ablations=("no-such",))


def test_rows_on_the_command_line(tmp_path, capsys):
    common = ["--dry-run", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "bench")]
    assert harness.main([*common, "--rows"]) == 0
    assert capsys.readouterr().out.count("-m start.run") == 3
    with pytest.raises(SystemExit):
        harness.main([*common, "--rows", "overall", "--no-ablations"])
    assert "give one" in capsys.readouterr().err
