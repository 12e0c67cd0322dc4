"""Benchmark the two BM25 backends on the embedded corpus: index time, query time, recall@k, agreement.

    python scripts/bench_retrieval.py --scale 20

Timing uses the corpus repeated ``--scale`` times (so that the numbers are not all noise) and every dev and
test question as a query; recall@k of the gold passages and the agreement of the backends are measured on
the corpus as shipped (copies would crowd the top k with duplicates). Writes ``bench/retrieval.json`` and
``bench/retrieval.md``.
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from start.data.embedded import load_embedded, load_embedded_corpus
from start.data.retrieval import BACKENDS, RetrievalConfig, Retriever
from start.io import atomic_open, write_json

log = logging.getLogger("bench_retrieval")


def _timed(fn, repeats: int) -> tuple[Any, float]:
    """The result of the last call and the median wall time over ``repeats`` calls."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def recall_at_k(hits: list[list[tuple[int, float]]], ids: list[str], gold: list[list[str]]) -> float:
    """Mean share of each question's gold passages found among its hits."""
    per_q = [len(set(g) & {ids[i] for i, _ in h}) / len(g) for h, g in zip(hits, gold, strict=True) if g]
    return sum(per_q) / len(per_q)


def run(scale: int, k: int, repeats: int) -> dict[str, Any]:
    passages = load_embedded_corpus()
    records = load_embedded("dev") + load_embedded("test")
    questions = [r.question for r in records]
    gold = [list(r.meta.get("gold_doc_ids", [])) for r in records]
    ids = [p.id for p in passages]
    docs = [p.to_document() for p in passages]
    big = docs * scale
    results: dict[str, Any] = {"corpus_passages": len(docs), "scale": scale, "indexed_passages": len(big),
                               "queries": len(questions), "k": k, "repeats": repeats, "backends": {}}
    top: dict[str, list[list[tuple[int, float]]]] = {}
    for backend in BACKENDS:
        with tempfile.TemporaryDirectory() as cache:
            cfg = RetrievalConfig(backend=backend, k=k, cache_dir=cache)
            nocache = RetrievalConfig(backend=backend, k=k, use_cache=False)
            retriever, index_s = _timed(lambda c=nocache: Retriever.build(big, c), repeats)
            Retriever.build(big, cfg)  # writes the cache
            cached, load_s = _timed(lambda c=cfg: Retriever.build(big, c), repeats)
            assert cached.from_cache
            _, query_s = _timed(lambda r=retriever: r.search(questions, k), repeats)
        small = Retriever.build(docs, RetrievalConfig(backend=backend, k=k, use_cache=False))
        top[backend] = small.search(questions, k)
        results["backends"][backend] = {
            "version": metadata.version(backend.replace("_", "-")),
            "index_seconds": round(index_s, 4), "cached_load_seconds": round(load_s, 4),
            "query_seconds": round(query_s, 4),
            "queries_per_second": round(len(questions) / query_s, 1),
            f"recall_at_{k}": round(recall_at_k(top[backend], ids, gold), 4),
        }
        log.info("%s: %s", backend, results["backends"][backend])
    a, b = (results["backends"][x] for x in BACKENDS)
    results["ratio_rank_bm25_over_bm25s"] = {
        "index": round(b["index_seconds"] / a["index_seconds"], 2),
        "query": round(b["query_seconds"] / a["query_seconds"], 2)}
    t1, t2 = (top[x] for x in BACKENDS)
    results["agreement"] = {
        "top1": round(sum(x[0][0] == y[0][0] for x, y in zip(t1, t2, strict=True)) / len(t1), 4),
        f"overlap_at_{k}": round(sum(len({i for i, _ in x} & {i for i, _ in y}) / k
                                     for x, y in zip(t1, t2, strict=True)) / len(t1), 4)}
    results["machine"] = {"python": platform.python_version(), "processor": platform.machine(),
                          "note": "2 shared CPU cores, another job training in the background; rough numbers"}
    return results


def to_markdown(r: dict[str, Any]) -> str:
    k = r["k"]
    lines = [
        "# BM25 backends on the embedded corpus",
        "",
        f"Corpus: {r['corpus_passages']} passages x {r['scale']} = {r['indexed_passages']} indexed for timing; "
        f"{r['queries']} queries (all dev + test questions), k={k}; median of {r['repeats']} runs. "
        f"Recall and agreement on the corpus as shipped (scale 1).",
        "",
        f"| backend | version | index (s) | cached load (s) | query all (s) | queries/s | recall@{k} |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, b in r["backends"].items():
        lines.append(f"| {name} | {b['version']} | {b['index_seconds']:.3f} | {b['cached_load_seconds']:.3f} | "
                     f"{b['query_seconds']:.3f} | {b['queries_per_second']:.0f} | {b[f'recall_at_{k}']:.3f} |")
    ratio, agree = r["ratio_rank_bm25_over_bm25s"], r["agreement"]
    lines += ["", f"rank_bm25 / bm25s time: index x{ratio['index']}, query x{ratio['query']}.",
              f"Agreement: same top-1 passage for {agree['top1']:.1%} of queries; mean top-{k} overlap "
              f"{agree[f'overlap_at_{k}']:.1%}.", "", f"Machine: {r['machine']['note']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--scale", type=int, default=20, help="repeat the corpus this many times for timing")
    p.add_argument("--k", type=int, default=5, help="passages per query")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median)")
    p.add_argument("--out", type=Path, default=Path("bench"), help="output folder")
    args = p.parse_args(argv)
    if args.scale < 1 or args.k < 1 or args.repeats < 1:
        p.error("--scale, --k and --repeats must be >= 1")
    results = run(args.scale, args.k, args.repeats)
    write_json(args.out / "retrieval.json", results)
    with atomic_open(args.out / "retrieval.md") as f:
        f.write(to_markdown(results))
    log.info("%s", to_markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
