"""CLI: ``python -m start.nli build --out start/assets/nli-minilm --seed 13`` (what ``make nli-model`` runs),
``python -m start.nli card --model start/assets/nli-minilm`` (re-render README.md from start_nli.json),
``python -m start.nli calibrate --model DIR --human FILE`` (choose premise reader, guard and threshold on
people's citation judgments; stored in DIR/start_nli.json)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    from start.nli.train import BuildConfig  # heavy import only for the build command

    for f in dataclasses.fields(BuildConfig):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "") + f" (default: {f.default})"
        if f.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=help_text)
            continue
        kind = {"int": int, "float": float, "int | None": int, "float | None": float}.get(str(f.type), str)
        parser.add_argument(flag, type=kind, default=f.default, help=help_text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m start.nli", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build_p = sub.add_parser("build", help="fetch data, train, calibrate, evaluate, export the NLI model")
    if "build" in (argv if argv is not None else sys.argv[1:]):
        _add_config_args(build_p)
    card_p = sub.add_parser("card", help="re-render README.md of a built model from its start_nli.json")
    card_p.add_argument("--model", type=Path, default=Path("start/assets/nli-minilm"))
    cal_p = sub.add_parser("calibrate", help="choose premise reader, number guard and threshold on human "
                                             "citation judgments; store them in the model's start_nli.json")
    cal_p.add_argument("--model", type=Path, required=True)
    cal_p.add_argument("--human", type=Path, required=True, help="ALCE human-judged sentences (.jsonl)")
    cal_p.add_argument("--max-length", type=int, default=None, help="tokens per pair (default: the model's)")
    cal_p.add_argument("--ensemble", default=None, help="a second model (bundled name or folder) whose "
                       "P(entailment) may be averaged in (weight chosen among --weights)")
    cal_p.add_argument("--weights", type=float, nargs="+", default=[0.0], help="partner weights to try")
    cal_p.add_argument("--readers", nargs="+", default=None,
                       help="premise readers to try (names in start.nli.agreement.READERS; default: all)")
    cal_p.add_argument("--threshold-step", type=float, default=0.025, help="threshold grid step in [0.05, 0.95]")
    cal_p.add_argument("--probe", type=Path, default=Path("tests/data/nli_probe.jsonl"),
                       help="hand-written probe pairs, run through the chosen settings (report only)")
    args = parser.parse_args(argv)

    if args.command == "calibrate":
        import numpy as np

        from start.nli.agreement import calibrate

        meta_path = args.model / "start_nli.json"
        if not meta_path.is_file():
            parser.error(f"{meta_path} not found: build the model first")
        from start.nli.agreement import READERS

        unknown = sorted(set(args.readers or ()) - set(READERS))
        if unknown:
            parser.error(f"unknown reader(s) {unknown}; known: {sorted(READERS)}")
        grid = tuple(round(float(t), 4) for t in np.arange(0.05, 0.95 + 1e-9, args.threshold_step))
        found = calibrate(str(args.model), args.human, args.max_length, probe=args.probe, ensemble=args.ensemble,
                          weights=args.weights, thresholds=grid,
                          readers={k: READERS[k] for k in args.readers} if args.readers else None)
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta.setdefault("threshold_vitaminc_calibration", meta["threshold"])
        meta.update(found["settings"])
        meta["human_calibration"] = {k: v for k, v in found.items() if k != "settings"}
        tmp = meta_path.with_name(meta_path.name + ".tmp")
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, meta_path)
        from start.nli.card import render_model_card

        tmp = args.model / "README.md.tmp"
        tmp.write_text(render_model_card(meta), encoding="utf-8")
        os.replace(tmp, args.model / "README.md")
        print(json.dumps({"reader": found["reader"], **found["settings"], "agreement": found["agreement"]}))
        return 0

    if args.command == "card":
        from start.nli.card import render_model_card

        meta_path = args.model / "start_nli.json"
        if not meta_path.is_file():
            parser.error(f"{meta_path} not found: build the model first")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        tmp = args.model / "README.md.tmp"
        tmp.write_text(render_model_card(meta), encoding="utf-8")
        os.replace(tmp, args.model / "README.md")
        print(f"wrote {args.model / 'README.md'}")
        return 0

    from start.nli.train import BuildConfig, build

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(BuildConfig)}
    try:
        cfg = BuildConfig(**values)
    except ValueError as err:
        parser.error(str(err))
    build(cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
