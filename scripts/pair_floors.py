"""What ``preference.min_attributability`` does to one round's preference pairs, without training.

    python scripts/pair_floors.py ROUND_DIR [ROUND_DIR ...] [--floors 0 0.25 0.5 0.75 1] [--out FILE.json]

Re-builds the round's pairs from its ``sample/`` and ``score/`` with each floor (the round's own preference
settings otherwise, read from its ``pairs/manifest.json``) and prints, per floor: pairs by kind, the chosen
and rejected answers' mean attributability (citation F1), the share of pairs whose chosen answer's
citations support nothing, and how many questions gave a pair. The floor's effect on the trained policy
needs a run per floor (scripts/experiment_seeds.py with ``preference.min_attributability=...``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def floor_table(round_dir: Path, floors: list[float]) -> list[dict]:
    from start.io import read_jsonl
    from start.preferences import PreferenceConfig, build_pairs, question_samples
    from start.scoring import RecordScore

    manifest = json.loads((round_dir / "pairs" / "manifest.json").read_text())
    base = PreferenceConfig(**manifest["config"])
    cfg = json.loads((round_dir.parent / "config.json").read_text())
    first_line = bool(cfg["scorer"]["rules"].get("first_line_only", True))
    by_id = {d["id"]: RecordScore.from_dict(d) for d in read_jsonl(round_dir / "score" / "scores.jsonl")}
    questions = question_samples(read_jsonl(round_dir / "sample" / "samples.jsonl"), by_id,
                                 first_line_only=first_line, max_new_tokens=int(cfg["sampler"]["max_new_tokens"]))
    out = []
    for f in floors:
        pairs, stats = build_pairs(questions, replace(base, min_attributability=f))
        chosen = [p.chosen_scores.get("attributability") or 0.0 for p in pairs]
        rejected = [p.rejected_scores.get("attributability") or 0.0 for p in pairs]
        out.append({"floor": f, "pairs": len(pairs), "by_kind": dict(Counter(p.kind for p in pairs)),
                    "by_signal": dict(Counter(p.signal for p in pairs)),
                    "questions_with_pairs": len({p.id for p in pairs}), "questions": len(questions),
                    "chosen_attributability": sum(chosen) / len(chosen) if chosen else None,
                    "rejected_attributability": sum(rejected) / len(rejected) if rejected else None,
                    "chosen_unsupported_share": sum(c == 0 for c in chosen) / len(chosen) if chosen else None})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("round_dirs", type=Path, nargs="+")
    parser.add_argument("--floors", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    tables = {str(d): floor_table(d, args.floors) for d in args.round_dirs}
    print("| round | floor | pairs | overall | fine-grained | questions with pairs | chosen F1 | rejected F1 "
          "| chosen unsupported |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for d, rows in tables.items():
        for r in rows:
            fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
            print(f"| {d} | {r['floor']} | {r['pairs']} | {r['by_kind'].get('overall', 0)} | "
                  f"{r['by_kind'].get('fine_grained', 0)} | {r['questions_with_pairs']}/{r['questions']} | "
                  f"{fmt(r['chosen_attributability'])} | {fmt(r['rejected_attributability'])} | "
                  f"{fmt(r['chosen_unsupported_share'])} |")
    if args.out:
        from start.io import write_json

        write_json(args.out, {"rounds": [{"round": d, "floors": rows} for d, rows in tables.items()]})
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
