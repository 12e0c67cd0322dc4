"""Bootstrap intervals and the round report."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from start.evaluate import markdown_table, write_report
from start.io import write_json
from start.stats import bootstrap, paired_difference, per_question


def rec(rid, rec_, prec, em=None, length=10):
    return SimpleNamespace(id=rid, citation_rec=rec_, citation_prec=prec, str_em=em, str_hit=None, claims_nli=None,
                           comprehensiveness=em, robustness=None, length=length)


def test_per_question_means_over_samples_with_empty_answers_as_zero():
    cols = per_question([rec("a#0", 1.0, 0.5, 1.0), rec("a#1", 0.0, 0.5, 0.0), rec("b#0", None, None),
                         rec("c#0", 1.0, 1.0), rec("c#1", None, None, length=0)], lambda i: i.split("#")[0])
    assert cols["citation_rec"].tolist() == [0.5, 0.0, 0.5] and cols["citation_prec"].tolist() == [0.5, 0.0, 0.5]
    assert np.isnan(cols["str_em"][1])  # not a citation metric: not measurable, not 0
    assert cols["length"].tolist() == [10.0, 10.0, 5.0]


def test_bootstrap_interval_contains_the_point_and_narrows_with_more_questions():
    rng = np.random.default_rng(0)
    small = {"citation_rec": rng.random(20), "citation_prec": rng.random(20)}
    big = {"citation_rec": rng.random(2000), "citation_prec": rng.random(2000)}
    s, b = bootstrap(small, n_boot=300, seed=1), bootstrap(big, n_boot=300, seed=1)
    for res in (s, b):
        for k in ("citation_rec", "citation_prec", "citation_f1"):
            assert res[k]["low"] <= res[k]["value"] <= res[k]["high"]
    width = lambda r: r["citation_rec"]["high"] - r["citation_rec"]["low"]  # noqa: E731
    assert width(b) < width(s) / 3
    r, p = s["citation_rec"]["value"], s["citation_prec"]["value"]
    assert s["citation_f1"]["value"] == pytest.approx(2 * r * p / (r + p))
    assert bootstrap(small, n_boot=300, seed=1) == s  # seeded


def test_constant_metric_has_a_zero_width_interval():
    res = bootstrap({"citation_rec": np.ones(10), "citation_prec": np.ones(10)}, n_boot=100)
    assert res["citation_rec"] == {"value": 100.0, "low": 100.0, "high": 100.0}


def test_report_table_and_plots(tmp_path):
    for folder, v in (("round_0/eval_base", 10.0), ("round_0/eval", 20.0), ("round_1/eval", 30.0),
                      ("round_2/eval", 45.0)):
        m = {k: {"value": v, "low": v - 5, "high": v + 5} for k in ("citation_rec", "citation_prec", "citation_f1")}
        write_json(tmp_path / folder / "metrics.json", {"metrics": m})
    folder = write_report(tmp_path)
    md = (folder / "report.md").read_text()
    rows = [line.split(" | ")[0] for line in md.splitlines() if line.startswith("| ") and "[" in line]
    assert rows == ["| base", "| 0", "| 1", "| 2"] * 2  # the headline table, then every metric
    assert "| 2 | 45.0 [40.0, 50.0] | - | - | - | - | - | - | - |" in md  # headline: no evaluation judge here
    assert "| 2 | 45.0 [40.0, 50.0] | 45.0 [40.0, 50.0] | 45.0 [40.0, 50.0] | - | - | - | - |" in md
    assert (folder / "citation_f1.png").stat().st_size > 1000 and "citation_f1.png" in md
    assert "<table" in (folder / "report.html").read_text()
    assert markdown_table([]).count("\n") == 1


def test_report_lists_stage_times_that_add_up(tmp_path):
    m = {"citation_f1": {"value": 1.0, "low": 0.0, "high": 2.0}}
    write_json(tmp_path / "round_0" / "eval" / "metrics.json", {"metrics": m})
    write_json(tmp_path / "round_0" / "eval" / "manifest.json", {"wall_seconds": 1.5, "counts": {"questions": 3}})
    write_json(tmp_path / "round_0" / "eval" / "sample" / "manifest.json",
               {"wall_seconds": 20.0, "counts": {"questions": 3, "nested": {"x": 1}}})
    write_json(tmp_path / "round_1" / "train" / "manifest.json", {"wall_seconds": 100.25, "counts": {}})
    folder = write_report(tmp_path)
    md = (folder / "report.md").read_text()
    assert "| round_0/eval | 2 | questions 3 |" in md and "| round_0/eval/sample | 20 | questions 3 |" in md
    assert "| round_1/train | 100 |  |" in md and "| total | 122 | |" in md
    stages = json.loads((folder / "stages.json").read_text())
    assert [s["stage"] for s in stages] == ["round_0/eval", "round_0/eval/sample", "round_1/train"]


def test_paired_difference_resamples_questions_jointly():
    rng = np.random.default_rng(1)
    a = {"citation_rec": rng.uniform(0, 1, 50), "citation_prec": rng.uniform(0, 1, 50)}
    b = {"citation_rec": a["citation_rec"] + 0.1, "citation_prec": a["citation_prec"].copy()}
    d = paired_difference(a, b, n_boot=200)
    # the same shift on every question: the paired interval has no width, although each round's own is wide
    assert d["citation_rec"]["value"] == pytest.approx(10.0)
    assert d["citation_rec"]["low"] == pytest.approx(10.0) and d["citation_rec"]["high"] == pytest.approx(10.0)
    assert d["citation_prec"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    assert d["citation_f1"]["low"] > 0


def test_paired_difference_compares_the_same_questions():
    a = {"citation_rec": np.array([1.0, 0.0, 1.0, 0.0]), "citation_prec": np.ones(4),
         "comprehensiveness": np.array([1.0, np.nan, 0.0, 0.0])}
    b = {"citation_rec": np.ones(4), "citation_prec": np.ones(4),
         "comprehensiveness": np.array([np.nan, 1.0, 1.0, 1.0])}
    d = paired_difference(a, b, n_boot=200, seed=3)
    # comprehensiveness on the questions measurable in both (the last two): 0 -> 100, not 33.3 -> 100
    assert d["comprehensiveness"] == {"value": 100.0, "low": 100.0, "high": 100.0}
    assert d["citation_rec"]["value"] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="same questions"):
        paired_difference(a, {k: v[:3] for k, v in b.items()})


def _scores(folder, values, empty=()):
    from start.io import write_jsonl

    rows = []
    for q, v in enumerate(values):
        for k in range(2):
            blank = (q, k) in empty
            rows.append({"id": f"q{q}#{k}", "n_sentences": 0 if blank else 1, "citation_rec": None if blank else v,
                         "citation_prec": None if blank else v, "citation_f1": None if blank else v,
                         "n_citations": 1, "comprehensiveness": v, "comprehensiveness_source": "short_answers",
                         "distractor_citation_rate": None, "unsupported_sentence_rate": None, "robustness": None,
                         "length": 3, "str_em": v})
    write_jsonl(folder / "score" / "scores.jsonl", rows)


def test_report_differences_honour_n_boot_and_count_empty_answers_as_zero(tmp_path, monkeypatch):
    import start.evaluate as ev

    rng = np.random.default_rng(0)
    for r, shift in ((0, 0.0), (1, 0.3)):
        folder = tmp_path / f"round_{r}" / "eval"
        _scores(folder, np.clip(rng.random(12) * 0.5 + shift, 0, 1), empty={(0, 0), (0, 1)} if r == 1 else ())
        m = {k: {"value": 1.0, "low": 0.0, "high": 2.0} for k in ("citation_rec", "citation_prec", "citation_f1")}
        write_json(folder / "metrics.json", {"metrics": m, "samples": 24, "empty_answers": 2 * r})
    calls = []
    real = ev.paired_difference
    monkeypatch.setattr(ev, "paired_difference", lambda a, b, n_boot, seed: calls.append(n_boot) or real(a, b,
                                                                                                      n_boot, seed))
    folder = write_report(tmp_path, n_boot=77, seed=5)
    assert calls == [77]
    (diff,) = json.loads((folder / "differences.json").read_text())
    assert diff["change"] == "0 -> 1" and diff["questions"] == 12
    # question 0 is empty in round 1 and counts 0 (not dropped): the paired mean uses all 12 questions
    a, b = ev.eval_columns(tmp_path / "round_0/eval/score/scores.jsonl")[1], \
        ev.eval_columns(tmp_path / "round_1/eval/score/scores.jsonl")[1]
    assert b["citation_rec"][0] == 0.0
    expected = 100 * (b["citation_rec"].mean() - a["citation_rec"].mean())
    assert diff["metrics"]["citation_rec"]["value"] == pytest.approx(expected)
    assert "(empty answers: 0 0/24, 1 2/24)" in (folder / "report.md").read_text()


def test_printed_headline_shows_the_reports_intervals(tmp_path):
    """What `start.run` prints after the report (and bench_run records) uses the report's own bootstrap (its
    n_boot and seed), not a second resampling with other settings."""
    from start.evaluate import headline, report_differences

    rng = np.random.default_rng(1)
    for r, shift in ((0, 0.0), (1, 0.3)):
        folder = tmp_path / f"round_{r}" / "eval"
        _scores(folder, np.clip(rng.random(12) * 0.5 + shift, 0, 1))
        m = {k: {"value": 1.0, "low": 0.0, "high": 2.0} for k in ("citation_rec", "citation_prec", "citation_f1")}
        write_json(folder / "metrics.json", {"metrics": m, "samples": 24, "empty_answers": 0})
    folder = write_report(tmp_path, n_boot=50, seed=9)
    stored = json.loads((folder / "differences.json").read_text())
    (change, diff), = report_differences(tmp_path)
    assert change == stored[0]["change"] and diff["metrics"] == stored[0]["metrics"]
    f1 = diff["metrics"]["citation_f1"]
    assert f"citation F1 {f1['value']:+.1f} [{f1['low']:.1f}, {f1['high']:.1f}]" in headline(tmp_path)
    (folder / "differences.json").unlink()  # no report yet: recomputed with the defaults
    assert report_differences(tmp_path)[0][0] == "0 -> 1"
