"""Benchmark: how often judges take a distilled student's teacher's decisions -> bench/distill.{json,md}.

    python scripts/bench_distill.py [--student .cache/nli/nli-minilm-distil] [--judge minilm-long ...]
                                    [--out bench/distill.json]

Rebuilds the student's held-out pairs from its own build settings (``start_nli.json``: the same documents, seed
and split by passage; the teacher's labels come from the build cache, or are computed again), then for the
student and each ``--judge`` (bundled name or folder; by default the student's starting point):

* the judge's model P(entailment) on every pair (whole premise, no reader, no guard: the quantity distilled);
* the threshold that best matches the teacher's decisions on the calibration passages;
* the share of the test passages' pairs whose decision at that threshold equals the teacher's, overall and by
  kind of pair.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def agreement_with_teacher(model_dir: Path, calib: list, test: list, max_length: int) -> dict:
    """``test``'s pairs carry the teacher's decisions as labels: the judge's binary accuracy on them at the
    threshold that best matches the teacher on ``calib`` (``start.nli.measure.evaluate``, overall and by kind)."""
    import numpy as np
    import torch
    from transformers import AutoTokenizer

    from start.nli import data as D
    from start.nli.distill import teacher_label_order
    from start.nli.measure import best_threshold, evaluate, predict_proba
    from start.scoring.nli import read_settings
    from start.scoring.weights import load_classifier

    model = load_classifier(model_dir, read_settings(model_dir), dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    order = teacher_label_order(model.config.id2label)  # columns in D.LABELS order, whatever the judge's
    ent = D.LABEL2ID["entailment"]
    p_cal = predict_proba(model, tokenizer, calib, max_length)[:, order][:, ent]
    threshold, _ = best_threshold(p_cal, np.array([p.label == "entailment" for p in calib]))
    measured = evaluate(test, predict_proba(model, tokenizer, test, max_length)[:, order], threshold)
    return {"threshold": round(float(threshold), 4),
            "decisions_equal_teacher": measured["all"]["entail_accuracy_at_threshold"], "n": len(test),
            "by_kind": {k: m["entail_accuracy_at_threshold"] for k, m in measured.items() if k != "all"}}


def from_root(config: dict) -> dict:
    """A build's recorded settings with their relative paths read from the project root (where start_nli.json
    records them from), so the script runs from any folder."""
    out = dict(config)
    for key in ("out", "cache_dir", "teacher", "probe", "bigbench_tarball", "base", "distill_source"):
        value = out.get(key)
        if isinstance(value, str) and not Path(value).is_absolute() and (ROOT / value).exists():
            out[key] = str(ROOT / value)
    return out


def render(out: dict) -> str:
    kinds = sorted({k for r in out["judges"].values() for k in r["by_kind"]})
    lines = [
        "# Distillation benchmark: decisions equal to the teacher's",
        "",
        f"Student `{out['student']}`, taught by `{out['teacher']}` on pairs built from `{out['distill_source']}` "
        f"(seed {out['seed']}). Held-out passages: {out['calibration_pairs']} calibration pairs (each judge's "
        f"threshold is the one that best matches the teacher there) and {out['test_pairs']} test pairs. Model "
        "P(entailment) on the whole premise (no reader, no guard): the quantity the student was trained on. "
        f"Machine: {out['machine']}.",
        "",
        "| judge | threshold | decisions = teacher's | " + " | ".join(kinds) + " |",
        "|---|---:|---:|" + "---:|" * len(kinds),
    ]
    for name, r in out["judges"].items():
        lines.append(f"| {name} | {r['threshold']:.3f} | **{100 * r['decisions_equal_teacher']:.1f}%** | "
                     + " | ".join(f"{100 * r['by_kind'].get(k, float('nan')):.1f}%" for k in kinds) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--student", type=Path, default=Path(".cache/nli/nli-minilm-distil"))
    ap.add_argument("--judge", action="append", default=None,
                    help="another judge to compare (bundled name or folder; default: the student's base)")
    ap.add_argument("--out", type=Path, default=Path("bench/distill.json"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    meta_path = args.student / "start_nli.json"
    if not meta_path.is_file():
        ap.error(f"{meta_path} not found: build the student first (make nli-model-distil)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if not meta.get("config", {}).get("distill_source"):
        ap.error(f"{meta_path}: not a distilled judge (its build had no --distill-source)")
    import torch

    from start.io import project_relative
    from start.nli.config import BuildConfig
    from start.nli.train import _distill_data
    from start.scoring.nli import resolve_model

    torch.set_num_threads(args.threads)
    cfg = BuildConfig(**from_root(meta["config"]))
    _, calib, test, _, _, _, _ = _distill_data(cfg, lambda msg: print(msg, flush=True))
    judges = {"student": args.student}
    for spec in args.judge or [meta["config"]["base"]]:  # a name, or a folder as given / as the build recorded it
        judges[spec] = Path(resolve_model(from_root({"base": spec})["base"]))
    out = {"student": project_relative(args.student), "teacher": project_relative(cfg.teacher),
           "distill_source": cfg.distill_source, "seed": cfg.seed, "calibration_pairs": len(calib),
           "test_pairs": len(test), "judges": {},
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, {args.threads} torch threads, "
                      f"torch {torch.__version__}"}
    for name, folder in judges.items():
        out["judges"][name] = {"model": project_relative(folder),
                               **agreement_with_teacher(folder, calib, test, cfg.max_length)}
        print(name, json.dumps(out["judges"][name]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for path, text in ((args.out, json.dumps(out, indent=2) + "\n"), (args.out.with_suffix(".md"), render(out))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
