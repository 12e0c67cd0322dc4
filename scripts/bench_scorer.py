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
import copy
import json
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


class _Counting:
    """Wraps the model backend: counts and records every model input (after premise windowing)."""

    def __init__(self, inner, one_by_one: bool = False):
        self.inner, self.one_by_one = inner, one_by_one
        self.fingerprint, self.threshold = inner.fingerprint, inner.threshold
        self.inputs: list = []

    def predict(self, pairs):
        from start.scoring import NLIPrediction

        self.inputs += pairs
        if not self.one_by_one:
            return self.inner.predict(pairs)
        preds = [self.inner.predict([p]) for p in pairs]  # one forward pass per model input
        return NLIPrediction(np.array([x.probs[0] for x in preds]), np.array([x.truncated[0] for x in preds]))


def _rechain(nli, new_base):
    """The same wrapper chain (premise windows, number guard) over another base backend."""
    if not hasattr(nli, "inner"):
        return new_base
    outer = copy.copy(nli)
    outer.inner = _rechain(nli.inner, new_base)
    return outer


def run_suite(nli, records: list[dict]) -> dict:
    from start.scoring import AttributionScorer, ScorerConfig
    from start.scoring.nli import base_backend

    base = base_backend(nli)
    ref_base, bat_base = _Counting(base, one_by_one=True), _Counting(base)
    with tempfile.TemporaryDirectory() as cache_dir:
        t0 = time.perf_counter()
        ref = AttributionScorer(_rechain(nli, ref_base), ScorerConfig(cache=False)).score(records, sequential=True)
        t_ref = time.perf_counter() - t0
        log.info("reference loop: %d questions, %d model inputs in %.1f s", ref.stats["model_pairs"],
                 len(ref_base.inputs), t_ref)
        cached = ScorerConfig(cache=True, cache_dir=cache_dir)
        t0 = time.perf_counter()
        bat = AttributionScorer(_rechain(nli, bat_base), cached).score(records)
        t_bat = time.perf_counter() - t0
        log.info("batched scorer: %d unique questions, %d model inputs in %.1f s", bat.stats["unique_pairs"],
                 len(bat_base.inputs), t_bat)
        t0 = time.perf_counter()
        warm = AttributionScorer(_rechain(nli, _Counting(base)), cached).score(records)
        t_warm = time.perf_counter() - t0
    ok, why = same_results(ref, bat)
    limit = best_forward_throughput(base, sorted(set(bat_base.inputs)))
    n_ref, n_bat = len(ref_base.inputs), len(bat_base.inputs)
    return {
        "records": len(records),
        "reference_loop": {"seconds": t_ref, "questions": ref.stats["model_pairs"], "model_inputs": n_ref,
                           "model_inputs_per_s": n_ref / t_ref},
        "batched": {"seconds": t_bat, "questions_requested": bat.stats["pairs_requested"],
                    "unique_questions": bat.stats["unique_pairs"], "model_inputs": n_bat,
                    "rounds": bat.stats["rounds"], "model_inputs_per_s": n_bat / t_bat},
        "speedup": t_ref / t_bat,
        "batching_gain": (n_bat / t_bat) / (n_ref / t_ref),
        "dedup_ratio": n_ref / max(n_bat, 1),
        "identical": ok, "identical_detail": why,
        "forward_only_limit": limit,
        "share_of_limit": (n_bat / t_bat) / limit["best_pairs_per_s"],
        "warm_cache": {"seconds": t_warm, "cache_hits": warm.stats["cache_hits"],
                       "model_pairs": warm.stats["model_pairs"], "speedup_vs_cold": t_bat / t_warm},
        "metrics": bat.metrics,
    }


def alce_demo_records(folder: Path) -> list[dict]:
    """ALCE's prompt files (``{"demos": [{question, docs, answer}]}``) as records to score."""
    out = []
    for f in sorted(folder.glob("*.json")):
        for i, d in enumerate(json.loads(f.read_text()).get("demos", [])):
            out.append({"id": f"{f.stem}-{i}", "question": d["question"], "docs": d["docs"], "output": d["answer"]})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=Path, nargs="+", default=[ROOT / "examples" / "demo_answers.json"])
    ap.add_argument("--variants", type=int, default=12, help="citation variants per input record")
    ap.add_argument("--alce-demos", type=Path, help="also score ALCE's demonstration answers (prompts/ folder)")
    ap.add_argument("--nli", default="default")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "scorer.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import torch

    from start.io import atomic_open, project_relative, write_json
    from start.scoring import NLIConfig, load_nli
    from start.scoring.nli import base_backend

    torch.manual_seed(args.seed)
    nli = load_nli(NLIConfig(model=args.nli, batch_size=args.batch_size, progress=False))
    model = base_backend(nli)
    nli.predict([("warm-up premise.", "warm-up hypothesis.")] * 4)  # first-call allocations off the clock
    suites = {"sampled-answers": load_inputs(args.input, args.variants, args.seed)}
    if args.alce_demos:
        suites["alce-demonstrations"] = alce_demo_records(args.alce_demos)
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "python": sys.version.split()[0],
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "nli_model": args.nli, "nli_fingerprint": nli.fingerprint, "max_length": model.max_length,
        "wrappers": _wrappers(nli), "batch_size": args.batch_size, "inputs": [project_relative(p) for p in args.input],
        "variants": args.variants, "suites": {},
    }
    for name, records in suites.items():
        log.info("suite %s: %d records", name, len(records))
        result["suites"][name] = run_suite(nli, records)
    write_json(args.out, result)
    with atomic_open(args.out.with_suffix(".md")) as f:
        f.write(render_markdown(result))
    print(render_markdown(result))
    return 0 if all(s["identical"] for s in result["suites"].values()) else 1


def _wrappers(nli) -> list[str]:
    out = []
    while hasattr(nli, "inner"):
        out.append(type(nli).__name__ + (f"({nli.words} words)" if hasattr(nli, "words") else ""))
        nli = nli.inner
    return out


def render_markdown(r: dict) -> str:
    lines = ["# Scorer benchmark", "",
             f"NLI model `{r['nli_model']}` (max length {r['max_length']}; "
             f"{', '.join(r['wrappers']) or 'no wrappers'}); "
             f"{r['machine']['threads']} torch threads, torch {r['machine']['torch']}, {r['machine']['cpu']}.",
             "A *question* is one (premise, hypothesis) the metric asks; a *model input* is one forward row "
             "(a question becomes several with premise windows). The reference loop runs one forward pass per "
             "model input, no deduplication, no cache.", ""]
    for name, s in r["suites"].items():
        ref, bat, lim, warm = s["reference_loop"], s["batched"], s["forward_only_limit"], s["warm_cache"]
        lines += [
            f"## {name} ({s['records']} records)", "",
            "| run | seconds | questions | model inputs | model inputs/s |", "|---|---:|---:|---:|---:|",
            f"| reference loop | {ref['seconds']:.1f} | {ref['questions']} | {ref['model_inputs']} | "
            f"{ref['model_inputs_per_s']:.1f} |",
            f"| batched scorer, cold cache | {bat['seconds']:.1f} | {bat['unique_questions']} unique of "
            f"{bat['questions_requested']} | {bat['model_inputs']} | {bat['model_inputs_per_s']:.1f} |",
            f"| batched scorer, warm cache | {warm['seconds']:.2f} | 0 | 0 | - |",
            f"| forward passes only, batch {lim['best_batch_size']} | - | - | - | {lim['best_pairs_per_s']:.1f} |",
            "",
            f"- speed-up over the reference loop: **{s['speedup']:.1f}x** (batching alone: {s['batching_gain']:.1f}x "
            f"model inputs/s; deduplication: {s['dedup_ratio']:.1f}x fewer model inputs; {bat['rounds']} rounds)",
            f"- scores identical: **{s['identical']}** ({s['identical_detail']})",
            f"- batched throughput = {100 * s['share_of_limit']:.0f}% of the best forward-only throughput",
            f"- warm-cache rescoring: {warm['seconds']:.2f} s ({warm['cache_hits']} cache hits, "
            f"{warm['model_pairs']} model pairs), {warm['speedup_vs_cold']:.0f}x faster than cold",
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
