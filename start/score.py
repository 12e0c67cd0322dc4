"""``python -m start.score INPUT [--nli MODEL] [--out PATH]``: score cited answers from a file.

Writes the data-set metrics (JSON, reference key names, 0-100) to ``--out`` (default
``<input stem>.score.json`` beside the input) and the per-record, per-sentence detail as JSON Lines to
``--detail`` (default: the metrics path with ``.detail.jsonl``). Exit status 2 on bad input, with the
file, record and field named; nothing is written then.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from start.io import InputError, write_json, write_jsonl

log = logging.getLogger("start.score")

# The headline rows of the summary table, in order; other keys are printed after them.
_HEADLINE = ("citation_rec", "citation_prec", "citation_f1", "str_em", "str_hit", "claims_nli",
             "qampari_f1", "yes_no_acc", "comprehensiveness", "robustness", "length", "num_examples")


def default_out(input_path: Path) -> Path:
    name = input_path.name
    for suffix in (".jsonl", ".json"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return input_path.with_name(name + ".score.json")


def detail_path(out: Path) -> Path:
    name = out.name[: -len(".json")] if out.name.endswith(".json") else out.name
    return out.with_name(name + ".detail.jsonl")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m start.score", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("input", type=Path, help="ALCE-format results: JSON list, {'data': [...]}, or JSONL")
    p.add_argument("--nli", default="default",
                   help="NLI model: 'default' (the bundled MPNet passage judge), 'minilm', 'minilm-long', a local "
                        "folder, or a hub name")
    p.add_argument("--out", type=Path, help="metrics JSON (default: <input>.score.json)")
    p.add_argument("--detail", type=Path, help="per-record detail JSONL (default: <out>.detail.jsonl)")
    p.add_argument("--batch-size", type=int, default=32, help="at most this many pairs per forward pass")
    p.add_argument("--batch-tokens", type=int, default=4096,
                   help="at most this many tokens per forward pass, padding included (0: --batch-size pairs)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="the NLI model's arithmetic; auto: bf16 on a GPU, on a CPU the judge's accepted fast mode "
                        "when the CPU has bf16 instructions, else float32")
    p.add_argument("--lazy", action=argparse.BooleanOptionalAction, default=True,
                   help="stop reading a premise's windows at the first that entails (same decisions; the detail's "
                        "probabilities of entailed sentences are then lower bounds); --no-lazy: exact maxima")
    p.add_argument("--max-length", type=int, help="NLI input limit in tokens (default: the model's)")
    p.add_argument("--threshold", type=float, help="entailment threshold (default: stored with the model)")
    p.add_argument("--entailment-label", help="name of the entailment class when id2label is unusual")
    p.add_argument("--device", default="auto")
    p.add_argument("--premise-window-words", type=int,
                   help="score premises in windows of this many words and take the max (0: off; "
                        "default: as stored with the model)")
    p.add_argument("--number-guard", action=argparse.BooleanOptionalAction, default=None,
                   help="reject entailment when the hypothesis states a number the premise does not "
                        "(default: as stored with the model)")
    p.add_argument("--aggregator", action=argparse.BooleanOptionalAction, default=None,
                   help="decide by the judge's learned aggregator (start.scoring.learned) or, with "
                        "--no-aggregator, by its fixed rule (default: as stored with the model)")
    p.add_argument("--at-most-citations", type=int, default=3)
    p.add_argument("--first-line-only", action=argparse.BooleanOptionalAction, default=True,
                   help="keep only the first line of each output, as the reference does")
    p.add_argument("--citation-format", choices=["alce", "lenient"], default="alce")
    p.add_argument("--sentence-mode", choices=["auto", "sentences", "qampari"], default="auto")
    p.add_argument("--support-check", action=argparse.BooleanOptionalAction, default=True,
                   help="check unsupported sentences against every document (robustness)")
    p.add_argument("--allow-empty-docs", action="store_true", help="accept records with no documents")
    p.add_argument("--cache", action=argparse.BooleanOptionalAction, default=True, help="on-disk NLI cache")
    p.add_argument("--cache-dir", help="cache folder (default: $START_CACHE_DIR or ~/.cache/start)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    return p


def format_table(metrics: dict) -> str:
    keys = [k for k in _HEADLINE if k in metrics] + [k for k in metrics if k not in _HEADLINE]
    rows = [(k, metrics[k]) for k in keys if isinstance(metrics[k], int | float)]
    width = max(len(k) for k, _ in rows)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  -------"]
    for k, v in rows:
        lines.append(f"{k:<{width}}  {v:.2f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    return "\n".join(lines)


def configs_from_args(args: argparse.Namespace):
    """The scoring rules and the NLI settings the command line asks for (ValueError on a bad value)."""
    from start.scoring import NLIConfig, ScorerConfig

    cfg = ScorerConfig(at_most_citations=args.at_most_citations, first_line_only=args.first_line_only,
                       citation_format=args.citation_format, sentence_mode=args.sentence_mode,
                       support_check=args.support_check, allow_empty_docs=args.allow_empty_docs,
                       cache=args.cache, cache_dir=args.cache_dir)
    nli_cfg = NLIConfig(model=args.nli, device=args.device, batch_size=args.batch_size,
                        batch_tokens=args.batch_tokens or None, dtype=args.dtype, lazy=args.lazy,
                        max_length=args.max_length, threshold=args.threshold,
                        entailment_label=args.entailment_label, progress=args.progress,
                        number_guard=args.number_guard, premise_window_words=args.premise_window_words,
                        aggregator=args.aggregator)
    return cfg, nli_cfg


def run(args: argparse.Namespace, cfg, nli) -> int:
    """Read, score with ``nli`` (an NLIConfig or a loaded backend) and write; the exit status."""
    from start.config import check_nli_spec
    from start.io import read_records
    from start.scoring import AttributionScorer, parse_records

    try:
        records = parse_records(read_records(args.input), path=args.input,
                                allow_empty_docs=args.allow_empty_docs)
        check_nli_spec("--nli", args.nli)  # after the input: its errors name the record to fix first
    except (InputError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not records:
        print(f"error: {args.input}: no records to score", file=sys.stderr)
        return 2
    out = args.out or default_out(args.input)
    detail = args.detail or detail_path(out)
    log.info("scoring %d records from %s", len(records), args.input)
    try:
        scorer = AttributionScorer(nli, cfg)
    except (OSError, ValueError) as e:  # a folder that is not a loadable NLI model
        print(f"error: --nli: {args.nli} could not be loaded as an NLI model: {str(e).splitlines()[0]}",
              file=sys.stderr)
        return 2
    try:
        report = scorer.score(records)
    finally:
        scorer.close()
    metrics = {**report.metrics, "nli_model": args.nli, "nli_threshold": scorer.nli.threshold,
               "at_most_citations": cfg.at_most_citations, "first_line_only": cfg.first_line_only,
               "citation_format": cfg.citation_format,
               # the detail's sentence probabilities: exact maxima, or lower bounds where a lazy reader stopped early
               "nli_probabilities": "lower bounds for entailed pairs" if _reads_lazily(scorer.nli) else "exact"}
    write_jsonl(detail, (r.to_dict() for r in report.records))
    write_json(out, metrics)
    s = report.stats
    log.info("%d NLI pairs requested, %d unique, %d from cache, %d through the model (%.1f s); %.1f s in all",
             s["pairs_requested"], s["unique_pairs"], s["cache_hits"], s["model_pairs"], s["model_seconds"],
             s["seconds"])
    print(format_table(metrics))
    print(f"\nmetrics: {out}\ndetail:  {detail}")
    return 0


def _reads_lazily(nli) -> bool:
    while nli is not None:
        if getattr(nli, "lazy", False):
            return True
        nli = getattr(nli, "inner", None)
    return False


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg, nli_cfg = configs_from_args(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return run(args, cfg, nli_cfg)


if __name__ == "__main__":
    sys.exit(main())
