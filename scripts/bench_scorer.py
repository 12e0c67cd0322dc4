"""Benchmark: the batched attribution scorer against the reference's one-pair-at-a-time loop.

Both runs use the same NLI model and the same inputs. Reported (JSON + Markdown):
* wall time and NLI pairs/s of the reference loop (one forward pass per question, no dedup, no cache);
* the same for the batched scorer with a cold cache, and the speed-up;
* whether the two agree (every per-record score and the data-set metrics);
* the model's best batched forward throughput on the same unique pairs (the practical limit), found by
  timing forward passes alone over several batch sizes, and the scorer's share of it;
* a rescoring with a warm on-disk cache.

Inputs: ``--input`` ALCE-format files; by default the bundled demonstration answers, each expanded into
``--variants`` citation variants (shuffled, added, dropped, out-of-range citations), which gives the
realistic mix of supported, partly supported and unsupported sentences that drives the reference logic.
"""

from __future__ import annotations

import argparse
import logging
import platform
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("bench_scorer")


def citation_variants(record: dict, n: int, rng: random.Random) -> list[dict]:
    """The record as written plus ``n - 1`` copies whose citations are perturbed."""
    n_docs = len(record["docs"])
    out = [record]
    for k in range(1, n):
        kind = k % 4

        def swap(m, kind=kind):
            i = int(m.group(1))
            if kind == 0:
                return f"[{rng.randint(1, n_docs)}]"  # shuffled
            if kind == 1:
                return f"[{i}][{rng.randint(1, n_docs)}]"  # one more citation
            if kind == 2:
                return "" if rng.random() < 0.5 else f"[{i}]"  # dropped
            return f"[{i}]" if rng.random() < 0.8 else f"[{n_docs + 1}]"  # out of range

        output = re.sub(r"\[(\d+)\]", swap, record["output"])
        out.append({**record, "id": f"{record.get('id', 'r')}-v{k}", "output": output})
    return out


def load_inputs(paths: list[Path], variants: int, seed: int) -> list[dict]:
    from start.io import read_records

    rng = random.Random(seed)
    records = []
    for p in paths:
        for r in read_records(p):
            records += citation_variants(r, variants, rng)
    return records


def best_forward_throughput(nli, pairs, batch_sizes=(8, 16, 32, 64), repeats=1) -> dict:
    """Pairs/s of forward passes alone (tokenised, sorted, padded in advance): the practical limit."""
    import torch

    from start.scoring.nli import base_backend

    nli = base_backend(nli)  # the model under its wrappers (premise windows, number guard)
    ids, types, _ = nli._encode(pairs)
    order = np.argsort([len(x) for x in ids])[::-1]
    results = {}
    for bs in batch_sizes:
        batches = []
        for s in range(0, len(order), bs):
            feats = [{"input_ids": ids[i]} | ({"token_type_ids": types[i]} if types else {}) for i in order[s:s + bs]]
            batches.append(nli.tokenizer.pad(feats, return_tensors="pt"))
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            with torch.inference_mode():
                for b in batches:
                    nli._probs(b)
            best = min(best, time.perf_counter() - t0)
        results[bs] = len(pairs) / best
        log.info("forward only, batch %d: %.1f pairs/s", bs, results[bs])
    top = max(results, key=results.get)
    return {"by_batch_size": results, "best_batch_size": top, "best_pairs_per_s": results[top]}


def same_results(a, b, atol=1e-4) -> tuple[bool, str]:
    """Per-record decisions must be equal; probabilities equal up to batched floating-point noise."""
    for ra, rb in zip(a.records, b.records, strict=True):
        da, db = ra.to_dict(), rb.to_dict()
        for sa, sb in zip(da.pop("sentences"), db.pop("sentences"), strict=True):
            pa, pb = sa.pop("prob"), sb.pop("prob")
            if sa != sb or (pa is None) != (pb is None) or (pa is not None and abs(pa - pb) > atol):
                return False, f"record {ra.id}: sentence differs: {sa} vs {sb} ({pa} vs {pb})"
        if da != db:
            return False, f"record {ra.id}: {da} vs {db}"
    if a.metrics != b.metrics:
        return False, f"metrics differ: {a.metrics} vs {b.metrics}"
    return True, "identical"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=Path, nargs="+", default=[ROOT / "examples" / "demo_answers.json"])
    ap.add_argument("--variants", type=int, default=12, help="citation variants per input record")
    ap.add_argument("--nli", default="default")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "scorer.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import torch

    from start.io import write_json
    from start.scoring import AttributionScorer, NLIConfig, ScorerConfig, load_nli
    from start.scoring.nli import base_backend

    torch.manual_seed(args.seed)
    records = load_inputs(args.input, args.variants, args.seed)
    nli = load_nli(NLIConfig(model=args.nli, batch_size=args.batch_size, progress=False))
    model = base_backend(nli)
    log.info("%d records; NLI %s (max length %d, threshold %.3f, %s); %d torch threads", len(records), args.nli,
             model.max_length, nli.threshold, type(nli).__name__, torch.get_num_threads())

    with tempfile.TemporaryDirectory() as cache_dir:
        nocache = ScorerConfig(cache=False)
        nli.predict([("warm-up premise", "warm-up hypothesis")] * 4)  # first-call allocations off the clock

        t0 = time.perf_counter()
        ref = AttributionScorer(nli, nocache).score(records, sequential=True)
        t_ref = time.perf_counter() - t0
        log.info("reference loop: %d NLI calls in %.1f s", ref.stats["model_pairs"], t_ref)

        cached = ScorerConfig(cache=True, cache_dir=cache_dir)
        t0 = time.perf_counter()
        bat = AttributionScorer(nli, cached).score(records)
        t_bat = time.perf_counter() - t0
        log.info("batched scorer: %d unique pairs in %.1f s", bat.stats["unique_pairs"], t_bat)

        t0 = time.perf_counter()
        warm = AttributionScorer(nli, cached).score(records)
        t_warm = time.perf_counter() - t0
        log.info("rescoring with a warm cache: %.2f s", t_warm)

    ok, why = same_results(ref, bat)
    # the practical limit, on exactly the pairs the batched scorer sent to the model
    pairs = sorted(_collect_pairs(nli, records))
    limit = best_forward_throughput(nli, pairs)
    n_calls = ref.stats["model_pairs"]
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "python": sys.version.split()[0],
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "nli_model": args.nli, "nli_fingerprint": nli.fingerprint, "max_length": model.max_length,
        "backend": type(nli).__name__, "premise_window_words": getattr(getattr(nli, "inner", None), "words", None),
        "batch_size": args.batch_size, "records": len(records), "inputs": [str(p) for p in args.input],
        "reference_loop": {"seconds": t_ref, "nli_calls": n_calls, "calls_per_s": n_calls / t_ref},
        "batched": {"seconds": t_bat, "pairs_requested": bat.stats["pairs_requested"],
                    "unique_pairs": bat.stats["unique_pairs"], "model_pairs": bat.stats["model_pairs"],
                    "rounds": bat.stats["rounds"], "model_seconds": bat.stats["model_seconds"],
                    "unique_pairs_per_s": bat.stats["unique_pairs"] / t_bat,
                    "questions_answered_per_s": n_calls / t_bat},
        "speedup": t_ref / t_bat,
        "identical": ok, "identical_detail": why,
        "forward_only_limit": limit,
        "share_of_limit": (bat.stats["unique_pairs"] / t_bat) / limit["best_pairs_per_s"],
        "warm_cache": {"seconds": t_warm, "cache_hits": warm.stats["cache_hits"],
                       "model_pairs": warm.stats["model_pairs"], "speedup_vs_cold": t_bat / t_warm},
        "metrics": bat.metrics,
    }
    write_json(args.out, result)
    md = args.out.with_suffix(".md")
    from start.io import atomic_open

    with atomic_open(md) as f:
        f.write(render_markdown(result))
    print(render_markdown(result))
    return 0 if ok else 1


def _collect_pairs(nli, records) -> set:
    """The unique pairs a batched scoring asks the model about (a throw-away scorer records them)."""
    from start.scoring import AttributionScorer, ScorerConfig

    seen: set = set()

    class Recorder:
        fingerprint, threshold = nli.fingerprint, nli.threshold

        def predict(self, pairs):
            seen.update(pairs)
            return nli.predict(pairs)

    AttributionScorer(Recorder(), ScorerConfig(cache=False)).score(records)
    return seen


def render_markdown(r: dict) -> str:
    ref, bat, lim, warm = r["reference_loop"], r["batched"], r["forward_only_limit"], r["warm_cache"]
    rows = [
        ("reference loop (1 pair per forward)", f"{ref['seconds']:.1f}", f"{ref['nli_calls']}",
         f"{ref['calls_per_s']:.1f}"),
        ("batched scorer, cold cache", f"{bat['seconds']:.1f}", f"{bat['unique_pairs']}",
         f"{bat['unique_pairs_per_s']:.1f}"),
        ("batched scorer, warm cache", f"{warm['seconds']:.2f}", "0", "-"),
        (f"forward passes only, batch {lim['best_batch_size']} (limit)", "-", "-", f"{lim['best_pairs_per_s']:.1f}"),
    ]
    lines = [
        "# Scorer benchmark", "",
        f"{r['records']} records from {', '.join(Path(p).name for p in r['inputs'])}; NLI model `{r['nli_model']}` "
        f"(max length {r['max_length']}); {r['machine']['threads']} torch threads, torch {r['machine']['torch']}.", "",
        "| run | seconds | model pairs | pairs/s |", "|---|---:|---:|---:|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows], "",
        f"- speed-up of the batched scorer over the reference loop: **{r['speedup']:.1f}x** "
        f"({ref['nli_calls']} questions answered in {bat['seconds']:.1f} s instead of {ref['seconds']:.1f} s; "
        f"{bat['pairs_requested']} requested, {bat['unique_pairs']} unique after deduplication, "
        f"{bat['rounds']} batched rounds)",
        f"- scores identical: **{r['identical']}** ({r['identical_detail']})",
        f"- batched scorer throughput = {100 * r['share_of_limit']:.0f}% of the model's best forward-only throughput",
        f"- warm-cache rescoring: {warm['seconds']:.2f} s ({warm['cache_hits']} cache hits, "
        f"{warm['model_pairs']} model pairs), {warm['speedup_vs_cold']:.0f}x faster than cold",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
