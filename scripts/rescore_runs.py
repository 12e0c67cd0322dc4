"""Judge finished runs' held-out answers again with another NLI judge -> <out>.{json,md}.

    python scripts/rescore_runs.py RUN_DIR ... [--judge default] [--work runs/rescore] [--out bench/rescore.json]

Nothing is sampled again: the samples of each run's first and last evaluation (``round_<R>/eval/sample``) are
scored by ``--judge`` with the run's own scoring rules (``start.pipeline.score_stage``: resumable, the scores go
to ``--work/<run>/round_<R>``; the run folder is only read). Beside them stand the two judges the run itself
used: the reward judge (``eval/score``) and the evaluation judge of the time (``eval/score_eval``). For each
judge: citation F1 of the first and last round with 95% intervals, and the paired difference last - first on
the same questions (questions resampled jointly, as the run's report does).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
METRICS = ("citation_rec", "citation_prec", "citation_f1")


def eval_rounds(run: Path) -> list[int]:
    """The rounds whose held-out evaluation has samples, in order."""
    found = [int(p.parts[-4].split("_")[1]) for p in run.glob("round_*/eval/sample/samples.jsonl")]
    return sorted(found)


def judged(scores: dict[str, Path], n_boot: int, seed: int) -> dict:
    """Per judge: first and last round's citation metrics with intervals, and their paired difference."""
    from start.evaluate import eval_columns
    from start.stats import bootstrap, paired_difference

    (first, a), (last, b) = list(scores.items())[0], list(scores.items())[-1]
    (qa, ca), (qb, cb) = eval_columns(a), eval_columns(b)
    if qa != qb:
        raise ValueError(f"{a} and {b}: rounds {first} and {last} were evaluated on different questions")
    pick = lambda m: {k: [round(m[k][x], 2) for x in ("value", "low", "high")] for k in METRICS if k in m}  # noqa: E731
    return {"rounds": [first, last], "questions": len(qa),
            "first": pick(bootstrap(ca, n_boot, seed)), "last": pick(bootstrap(cb, n_boot, seed)),
            "change": pick(paired_difference(ca, cb, n_boot, seed))}


def rescore(run: Path, judge: str, work: Path, n_boot: int = 1000, seed: int = 0) -> dict:
    from start.config import JudgeConfig
    from start.io import project_relative
    from start.pipeline import score_stage
    from start.scoring import NLIConfig, ScorerConfig

    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    rules = ScorerConfig(**config["scorer"]["rules"])
    rounds = eval_rounds(run)
    if len(rounds) < 2:
        raise ValueError(f"{run}: needs two evaluated rounds (round_<R>/eval/sample/samples.jsonl), found {rounds}")
    ends = (rounds[0], rounds[-1])
    out = {"run": project_relative(run), "judges": {}}
    for name, sub in (("reward judge", "score"), ("evaluation judge then", "score_eval")):
        files = {r: run / f"round_{r}" / "eval" / sub / "scores.jsonl" for r in ends}
        if all(f.is_file() for f in files.values()):
            spec = config["scorer"]["nli" if sub == "score" else "eval_nli"]["model"]
            manifest = json.loads((files[ends[0]].parent / "manifest.json").read_text(encoding="utf-8"))
            out["judges"][name] = {"model": spec, "fingerprint": manifest.get("inputs", {}).get("nli"),
                                   **judged(files, n_boot, seed)}
    files = {}
    for r in ends:
        samples = run / f"round_{r}" / "eval" / "sample" / "samples.jsonl"
        logging.info("%s round %d: scoring %s with %s", run.name, r, project_relative(samples), judge)
        files[r] = score_stage(samples, JudgeConfig(rules, NLIConfig(model=judge, progress=True)),
                               work / run.name / f"round_{r}")
    fp = json.loads((files[ends[0]].parent / "manifest.json").read_text(encoding="utf-8"))["inputs"]["nli"]
    out["judges"][f"`{judge}` now"] = {"model": judge, "fingerprint": fp, **judged(files, n_boot, seed)}
    return out


def _cell(v: list[float] | None, sign: bool = False) -> str:
    if not v:
        return "-"
    f = "{:+.1f}" if sign else "{:.1f}"
    return f"{f.format(v[0])} [{v[1]:.1f}, {v[2]:.1f}]"


def render(res: dict) -> str:
    lines = ["# Held-out answers judged again", "",
             "The same answers (nothing sampled again), scored by each judge with the run's own rules; citation F1 "
             "of the first and the last evaluated round with 95% intervals, and the paired change on the same "
             f"questions. Judge `{res['judge']}`: {res['judge_note']}", "",
             "| run | judge | questions | F1 first round | F1 last round | F1 change (paired) |",
             "|---|---|---:|---:|---:|---:|"]
    for run in res["runs"]:
        for name, j in run["judges"].items():
            lines.append(f"| {run['run']} | {name} (`{j['model']}`) | {j['questions']} | "
                         f"{_cell(j['first'].get('citation_f1'))} | {_cell(j['last'].get('citation_f1'))} | "
                         f"{_cell(j['change'].get('citation_f1'), sign=True)} |")
    prints = {f"{name} (`{j['model']}`)": j["fingerprint"] for run in res["runs"] for name, j in run["judges"].items()}
    lines += ["", "Judge fingerprints (a bundled name points at whatever the default was when the run was scored):", ""]
    lines += [f"- {name}: `{fp}`" for name, fp in prints.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="finished run folders (start.run's run_dir)")
    ap.add_argument("--judge", default="default", help="NLI model spec: a bundled name, a folder, a hub name")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "rescore", help="where the new scores go")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "rescore.json")
    ap.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    for run in args.runs:
        if not (run / "config.json").is_file():
            ap.error(f"{run}: not a run folder (no config.json)")
    from start.io import atomic_open, project_relative, write_json
    from start.scoring.nli import BUNDLED, resolve_model

    folder = Path(resolve_model(args.judge))
    bundled = args.judge in BUNDLED or args.judge == "default"
    note = f"bundled, `{project_relative(folder)}`" if bundled else "given by the user"
    res = {"judge": args.judge, "judge_note": note, "runs": [rescore(r, args.judge, args.work, args.n_boot)
                                                            for r in args.runs]}
    write_json(args.out, res)
    with atomic_open(args.out.with_suffix(".md")) as f:
        f.write(render(res))
    print(f"wrote {project_relative(args.out)} and {project_relative(args.out.with_suffix('.md'))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
