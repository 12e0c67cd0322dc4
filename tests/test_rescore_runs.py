"""scripts/rescore_runs.py: a finished run's held-out answers judged again by another judge."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [{"title": "Erbium", "text": "Erbium was discovered by Carl Mosander in 1843 in Sweden."},
        {"title": "Iron", "text": "Iron melts at 1538 degrees Celsius."}]
ANSWERS = {0: ["Erbium was found in 1843 [2].", "Iron melts at 1538 degrees [1]."],
           2: ["Erbium was discovered by Carl Mosander in 1843 [1].", "Iron melts at 1538 degrees Celsius [2]."]}


def _script():
    spec = importlib.util.spec_from_file_location("rescore_runs", ROOT / "scripts" / "rescore_runs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(folder: Path, judge: Path) -> Path:
    """A run folder as start.run leaves it: config.json and two evaluated rounds' samples (no scores)."""
    rules = {"at_most_citations": 3, "first_line_only": True, "citation_format": "alce", "sentence_mode": "auto",
             "support_check": True, "cache": False, "cache_dir": None}
    (folder).mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"scorer": {"rules": rules, "nli": {"model": str(judge)},
                                                               "eval_nli": {"model": str(judge)}}}))
    for r, answers in ANSWERS.items():
        sample = folder / f"round_{r}" / "eval" / "sample"
        sample.mkdir(parents=True)
        rows = [{"id": f"q{i}", "question": f"Question {i}?", "docs": DOCS, "answers": ["1843"],
                 "samples": [{"text": a}]} for i, a in enumerate(answers)]
        (sample / "samples.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
    return folder


def test_rescoring_judges_the_first_and_last_round_and_pairs_them(tmp_path, tiny_cross_encoder):
    mod = _script()
    run = _run(tmp_path / "runs" / "seed0-test", tiny_cross_encoder)
    out = tmp_path / "bench" / "rescore.json"
    assert mod.main([str(run), "--judge", str(tiny_cross_encoder), "--work", str(tmp_path / "work"),
                     "--out", str(out), "--n-boot", "50"]) == 0
    res = json.loads(out.read_text())
    (only,) = res["runs"]
    assert only["run"] == "seed0-test"  # outside the project: the folder's name, never a machine path
    # the run had no scores of its own: only the new judge's row, on rounds 0 and 2, both questions
    (j,) = only["judges"].values()
    assert j["rounds"] == [0, 2] and j["questions"] == 2 and j["fingerprint"]
    f1 = j["change"]["citation_f1"][0]
    assert f1 == pytest.approx(j["last"]["citation_f1"][0] - j["first"]["citation_f1"][0], abs=0.02)
    # the scores went to --work, the run folder was only read
    assert (tmp_path / "work" / "seed0-test" / "round_2" / "scores.jsonl").is_file()
    assert not list(run.glob("round_*/eval/score*"))
    md = out.with_suffix(".md").read_text()
    assert "| seed0-test |" in md and str(tmp_path) not in md
    # a second call reuses the finished scores (resumable) and gives the same numbers
    assert mod.main([str(run), "--judge", str(tiny_cross_encoder), "--work", str(tmp_path / "work"),
                     "--out", str(out), "--n-boot", "50"]) == 0
    assert json.loads(out.read_text()) == res


def test_rescoring_refuses_a_folder_that_is_not_a_run(tmp_path, tiny_cross_encoder, capsys):
    mod = _script()
    with pytest.raises(SystemExit):
        mod.main([str(tmp_path), "--judge", str(tiny_cross_encoder)])
    assert "not a run folder (no config.json)" in capsys.readouterr().err
    run = _run(tmp_path / "one-round", tiny_cross_encoder)
    for f in run.glob("round_2/eval/sample/samples.jsonl"):
        f.unlink()
    with pytest.raises(ValueError, match="needs two evaluated rounds"):
        mod.rescore(run, str(tiny_cross_encoder), tmp_path / "work")
