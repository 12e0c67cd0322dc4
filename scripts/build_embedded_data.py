"""Build the embedded default data set (corpus + train/dev/test questions) from the `mendeleev` package.

    python scripts/build_embedded_data.py                      # rewrites start/data/embedded/
    python scripts/build_embedded_data.py --out /tmp/x --elements 1-20

Deterministic: the same seed and the same mendeleev database give byte-identical files. The library code
is in :mod:`start.data.builder`; this is only the command line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from start.data.builder import BuildConfig, build_embedded, source_info, write_embedded
from start.data.embedded import EMBEDDED_DIR

log = logging.getLogger("build_embedded_data")


def parse_elements(spec: str) -> tuple[int, ...]:
    """``"1-20,26,92"`` -> atomic numbers."""
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = (int(x) for x in part.split("-", 1))
            out += range(lo, hi + 1)
        elif part:
            out.append(int(part))
    return tuple(sorted(set(out)))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = BuildConfig()
    p.add_argument("--out", type=Path, default=EMBEDDED_DIR, help="output folder")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of every random choice")
    p.add_argument("--elements", type=parse_elements, default=None,
                   help="only these atomic numbers, e.g. 1-20,26 (default: all 118)")
    p.add_argument("--db", default=None, help="mendeleev SQLite file (default: the installed package's)")
    p.add_argument("--n-docs", type=int, default=d.n_docs, help="documents per question")
    p.add_argument("--max-words", type=int, default=d.max_words, help="passage length limit in words")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    cfg = BuildConfig(seed=args.seed, elements=args.elements, db_path=args.db, n_docs=args.n_docs,
                      max_words=args.max_words)
    data = build_embedded(cfg)
    manifest = write_embedded(data, args.out, source=source_info(args.db), config=cfg)
    summary = {k: manifest[k] for k in ("questions", "elements", "two_doc_questions", "two_doc_share", "needs_docs",
                                        "multi_doc_claims_share", "templates", "claims", "dropped", "corpus")}
    log.info("wrote %s\n%s", args.out, json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
