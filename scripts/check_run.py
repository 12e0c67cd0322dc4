"""Check that a finished run folder is complete: ``python scripts/check_run.py runs/debug [--rounds 1]``.

Every stage the loop runs (warm-up, the base model's and every round's evaluation with their sampling and
scoring, each round's sample/score/pairs/train) must hold a ``manifest.json`` and a ``DONE`` marker that
record the same fingerprint, its output, and a count that is not 0 (questions, samples, pairs, examples);
the report must exist and list every round. Prints one line per stage; exit status 1 names what is missing
(CI runs this after the end-to-end run).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUTPUTS = {"warmup": "model/config.json", "sample": "samples.jsonl", "score": "scores.jsonl", "pairs": "pairs.jsonl",
           "train": "model/config.json", "eval": "metrics.json", "baselines": "metrics.json"}
COUNTED = {"warmup": "examples", "sample": "questions", "score": "samples", "pairs": "pairs", "train": "pairs",
           "eval": "questions", "baselines": "questions"}  # the count that must not be 0


def expected_stages(rounds: int, *, warmup: bool = True, base: bool = True) -> list[tuple[str, str]]:
    """(folder relative to the run, kind) for every stage of a complete run."""
    out = [("round_0/warmup", "warmup")] if warmup else []
    out.append(("round_0/baselines", "baselines"))
    evals = (["round_0/eval_base"] if base else []) + ["round_0/eval"]
    for r in range(1, rounds + 1):
        out += [(f"round_{r}/{s}", s) for s in ("sample", "score", "pairs", "train")]
        evals.append(f"round_{r}/eval")
    for e in evals:
        out += [(f"{e}/sample", "sample"), (f"{e}/score", "score"), (e, "eval")]
    return out


def problems(run_dir: Path, rounds: int, *, warmup: bool = True, base: bool = True) -> list[str]:
    found = []
    for folder, kind in expected_stages(rounds, warmup=warmup, base=base):
        d = run_dir / folder
        manifest, marker = d / "manifest.json", d / "DONE"
        if not (manifest.is_file() and marker.is_file()):
            found.append(f"{folder}: no manifest.json or DONE")
            continue
        m, done = json.loads(manifest.read_text()), json.loads(marker.read_text())
        if m.get("fingerprint") != done.get("fingerprint"):
            found.append(f"{folder}: manifest and DONE record different fingerprints")
        # a round whose samples gave no preference pair passes its policy through (passthrough.json)
        passed = kind in ("pairs", "train") and (d.parent / "train" / "passthrough.json").is_file()
        if not (d / OUTPUTS[kind]).is_file() and not (passed and kind == "train"):
            found.append(f"{folder}: {OUTPUTS[kind]} is missing")
        if not (m.get("counts") or {}).get(COUNTED[kind]) and not passed:
            found.append(f"{folder}: no {COUNTED[kind]} (counts {m.get('counts')})")
        print(f"ok  {folder:<28} {m.get('wall_seconds', 0):7.1f} s  {m.get('counts')}")
    report = run_dir / "report" / "report.md"
    if not report.is_file():
        found.append("report/report.md is missing")
    else:
        text = report.read_text()
        labels = (["base"] if base else []) + [str(r) for r in range(rounds + 1)]
        found += [f"report.md has no row for round {x}" for x in labels if f"| {x} |" not in text]
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--no-warmup", action="store_true")
    p.add_argument("--no-base", action="store_true")
    args = p.parse_args(argv)
    found = problems(args.run_dir, args.rounds, warmup=not args.no_warmup, base=not args.no_base)
    for x in found:
        print(f"error: {x}", file=sys.stderr)
    if not found:
        print(f"{args.run_dir}: complete")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
