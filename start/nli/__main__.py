"""CLI: ``python -m start.nli build --out start/assets/nli-minilm --seed 13`` (what ``make nli-model`` runs),
``python -m start.nli card --model start/assets/nli-minilm`` (re-render README.md from start_nli.json),
``python -m start.nli calibrate --model DIR --human FILE`` (choose premise reader, guard and threshold on
people's citation judgments; stored in DIR/start_nli.json), ``python -m start.nli aggregate --model DIR --human
FILE`` (fit a learned combination of the judge's readings on them instead, measured by leave-one-question-out
cross-validation; stored in DIR/start_nli.json as "aggregator")."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    from start.nli.config import BuildConfig

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
    agg_p = sub.add_parser("aggregate", help="fit a learned aggregator of the judge's premise readings on human "
                                             "citation judgments (leave-one-question-out measured); store it in "
                                             "the model's start_nli.json")
    agg_p.add_argument("--model", type=Path, required=True)
    agg_p.add_argument("--human", type=Path, required=True, help="ALCE human-judged sentences (.jsonl)")
    agg_p.add_argument("--partner", default="minilm", help="second model read beside it ('none': no partner)")
    agg_p.add_argument("--window-words", type=int, default=None,
                       help="words per premise window (default: the judge's stored reader's, else 40)")
    agg_p.add_argument("--features", nargs="+", default=None,
                       help="one feature set (names in start.scoring.learned.FEATURES); default: try every set "
                            "of start.nli.aggregator.CANDIDATES and keep the best held-out")
    agg_p.add_argument("--l2", type=float, default=None,
                       help="L2 penalty of the logistic regression (default: start.nli.aggregator.DEFAULT_L2)")
    agg_p.add_argument("--threshold-step", type=float, default=0.025, help="threshold grid step in [0.1, 0.9]")
    agg_p.add_argument("--probe", type=Path, default=Path("tests/data/nli_probe.jsonl"),
                       help="hand-written probe pairs, run through the fitted judge (report only)")
    agg_p.add_argument("--dry-run", action="store_true", help="report only; leave start_nli.json as it is")
    args = parser.parse_args(argv)

    if args.command == "aggregate":
        return _aggregate(parser, args)

    if args.command == "calibrate":

        from start.nli.agreement import READERS, calibrate

        meta_path = _built_model(parser, args.model)
        _known(parser, "reader", args.readers, sorted(READERS))
        grid = _grid(0.05, 0.95, args.threshold_step)
        found = calibrate(str(args.model), args.human, args.max_length, probe=args.probe, ensemble=args.ensemble,
                          weights=args.weights, thresholds=grid,
                          readers={k: READERS[k] for k in args.readers} if args.readers else None)
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta.setdefault("threshold_vitaminc_calibration", meta["threshold"])
        meta.update(found["settings"])
        meta["human_calibration"] = {k: v for k, v in found.items() if k != "settings"}
        meta["human_calibration"]["search"] = {  # what was searched: the card prints it as the command's flags
            "max_length": args.max_length, "ensemble": args.ensemble, "weights": args.weights,
            "threshold_step": args.threshold_step, "readers": args.readers or sorted(READERS)}
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

    from start.io import InputError
    from start.nli.bases import BaseNotInstalledError
    from start.nli.config import BuildConfig
    from start.nli.train import build

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(BuildConfig)}
    try:
        cfg = BuildConfig(**values)
    except ValueError as err:
        parser.error(str(err))
    try:
        build(cfg)
    except (BaseNotInstalledError, InputError) as err:  # a missing base, a bad distillation source: no traceback
        print(f"python -m start.nli build: {err}", file=sys.stderr)
        return 1
    return 0


def _write_meta(folder: Path, meta: dict) -> None:
    """start_nli.json and, for a model built here, the README.md rendered from it; each written whole."""
    from start.nli.card import render_model_card

    files = [("start_nli.json", json.dumps(meta, indent=2) + "\n")]
    if "config" in meta:  # build settings: a model built by `start.nli build` (its card is rendered from them)
        files.append(("README.md", render_model_card(meta)))
    for name, text in files:
        tmp = folder / (name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, folder / name)


def _built_model(parser: argparse.ArgumentParser, model: Path) -> Path:
    """The judge folder's ``start_nli.json``; a usage error when the judge was not built."""
    meta_path = model / "start_nli.json"
    if not meta_path.is_file():
        parser.error(f"{meta_path} not found: build the model first")
    return meta_path


def _known(parser: argparse.ArgumentParser, what: str, names, known: list[str]) -> None:
    unknown = sorted(set(names or ()) - set(known))
    if unknown:
        parser.error(f"unknown {what}(s) {unknown}; known: {known}")


def _grid(low: float, high: float, step: float) -> tuple[float, ...]:
    import numpy as np

    return tuple(round(float(t), 4) for t in np.arange(low, high + 1e-9, step))


def _aggregate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:

    from start.nli.aggregator import DEFAULT_L2, fit_judge
    from start.scoring.learned import FEATURES

    meta_path = _built_model(parser, args.model)
    _known(parser, "feature", args.features, list(FEATURES))
    if not 0 < args.threshold_step <= 0.8:
        parser.error(f"--threshold-step must be in (0, 0.8], got {args.threshold_step}")
    grid = _grid(0.1, 0.9, args.threshold_step)
    candidates = {"+".join(args.features): tuple(args.features)} if args.features else None
    found = fit_judge(str(args.model), args.human, candidates, DEFAULT_L2 if args.l2 is None else args.l2,
                      None if args.partner == "none" else args.partner, args.window_words, grid, probe=args.probe)
    rep = found["report"]
    summary = {k: {"threshold": rep[k].get("threshold"), **{m: rep[k]["agreement"][m] for m in ("recall", "precision")}}
               for k in ("in_sample", "cv")}
    summary["fixed_rule"] = {k: {m: rep["fixed_rule"][k]["agreement"][m] for m in ("recall", "precision")}
                             for k in ("in_sample", "cv")}
    summary["adopted"], summary["chosen"] = rep["adopted"], rep["chosen"]
    print(json.dumps(summary))
    if args.dry_run:
        return 0
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["aggregator"] = found["aggregator"]
    meta["aggregator_calibration"] = rep
    _write_meta(args.model, meta)
    print(f"stored the aggregator in {meta_path} ("
          + ("enabled: it agrees with people better than the fixed rule, held-out)" if rep["adopted"] else
             "not enabled: the fixed rule agrees with people as well or better held-out; aggregator=true uses it)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
