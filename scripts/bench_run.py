"""Benchmark: wall-clock time of a whole START run (default: `make run`'s embedded default) from scratch.

    python scripts/bench_run.py [--out bench/run_default.json] [hydra overrides ...]

Runs ``python -m start.run`` in a fresh run folder (``runs/bench-<experiment>``, removed first so nothing is
skipped) with an empty cache folder (``START_CACHE_DIR``: no NLI results and no converted model from an earlier
run, as on a fresh clone; ``--keep-cache`` uses the user's cache instead) and writes the total wall time, every
stage's wall time and the report's headline table to ``<out>.json`` and ``<out>.md``, with the change from
round 0 to the last round as ``round0_to_last``: ``eval_citation_f1`` and ``attribution_margin`` measured by the
evaluation judge (``[value, low, high]``, paired 95% intervals over the same held-out questions), and the
reward judge's ``reward_citation_f1`` and ``reward_attribution_margin`` beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cpu_description() -> str:
    """The CPU's model name and the vector extensions that decide CPU matmul speed (bf16 runs fast only with
    avx512_bf16 / amx), from /proc/cpuinfo on Linux."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    fields = {key.strip(): value.strip() for key, value in (line.split(":", 1) for line in lines if ":" in line)}
    name = fields.get("model name") or platform.processor() or "unknown CPU"
    flags = fields.get("flags", "").split()
    wanted = " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags) or "no avx2"
    return f"{name} ({platform.machine()}, {os.cpu_count()} cores; {wanted})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "run_default.json")
    parser.add_argument("--name", default="bench-default", help="experiment_name of the timed run")
    parser.add_argument("--keep-cache", action="store_true",
                        help="use the user's cache (NLI results, converted models) instead of an empty one")
    args, overrides = parser.parse_known_args(argv)

    from start.evaluate import collect_rounds, headline, report_differences, stage_summary
    from start.io import atomic_open, write_json

    run_dir = ROOT / "runs" / args.name
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = [sys.executable, "-m", "start.run", f"experiment_name={args.name}", *overrides]
    print("running:", " ".join(cmd), flush=True)
    env = os.environ.copy()
    with tempfile.TemporaryDirectory(prefix="start-bench-cache-") as cache:
        if not args.keep_cache:
            env["START_CACHE_DIR"] = cache
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, env=env)
        total = time.perf_counter() - t0

    stages = stage_summary(run_dir)
    rounds = collect_rounds(run_dir)
    diffs = report_differences(run_dir)  # the report's own intervals: what `make run` prints
    result = {"command": " ".join(cmd[1:]), "cache": "user's" if args.keep_cache else "empty",
              "wall_seconds": round(total, 1),
              "stage_seconds_sum": round(sum(s["seconds"] for s in stages), 1),
              "round0_to_last": round0_to_last(diffs), "stages": stages,
              "rounds": [{"round": r, **m} for r, m in rounds],
              "machine": cpu_description(),
              "date": time.strftime("%Y-%m-%d")}
    write_json(args.out, result)
    lines = [f"# Whole-run benchmark: `{result['command']}`", "",
             f"Machine: {result['machine']}; {result['date']}; {result['cache']} cache. "
             f"**Total wall time: {total / 60:.1f} min** "
             f"(stages {result['stage_seconds_sum'] / 60:.1f} min; the rest is start-up and the report).", "",
             headline(run_dir, rounds, diffs), "", "| stage | wall time (s) |", "|---|---:|"]
    lines += [f"| {s['stage']} | {s['seconds']:.0f} |" for s in stages]
    with atomic_open(args.out.with_suffix(".md")) as f:
        f.write("\n".join(lines) + "\n")
    print(json.dumps({k: result[k] for k in ("wall_seconds", "stage_seconds_sum", "round0_to_last")}))
    return 0


def round0_to_last(diffs: list[tuple[str, dict]]) -> dict:
    """The paired change from round 0 to the last round: the evaluation judge's citation F1 and attribution
    margin, and the reward judge's, each ``[value, low, high]`` ({} without such a change)."""
    last = next((d for c, d in reversed(diffs) if c.startswith("0 -> ")), None)
    if last is None:
        return {}
    judge = last.get("eval_judge", {}).get("metrics", {})

    def triple(m: dict, k: str) -> list[float] | None:
        return [round(m[k][x], 2) for x in ("value", "low", "high")] if k in m else None

    return {"eval_citation_f1": triple(judge, "citation_f1"), "attribution_margin": triple(judge, "attribution_margin"),
            "reward_citation_f1": triple(last["metrics"], "citation_f1"),
            "reward_attribution_margin": triple(last["metrics"], "attribution_margin"),
            "questions": last["questions"]}


if __name__ == "__main__":
    sys.exit(main())
