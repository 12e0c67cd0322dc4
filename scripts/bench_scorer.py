"""Benchmark: the batched attribution scorer against the reference's one-pair-at-a-time loop, same judge.

Three runs on the same inputs (JSON + Markdown):
* the reference loop: every reading of every (premise, hypothesis) question, one forward pass each, in fp32,
  no deduplication, no cache;
* the batched scorer in fp32: each distinct reading once per file, token-budget batches, lazy reading (the
  most promising reading first, stop at the first that entails) -- its decisions must equal the reference's;
* the batched scorer as shipped: the judge's default arithmetic (bf16 on CPUs with bf16 instructions when the
  judge accepted it), with the share of sentences it decides like fp32;
then the shipped scorer again with a warm on-disk cache. Suites: ``--input`` ALCE-format files (by default the
bundled demonstration answers, each expanded into ``--variants`` citation variants: shuffled, added, dropped,
out-of-range citations, the mix of supported and unsupported sentences START's samples have), ALCE's
demonstration answers (``--alce-demos``: long documents, no repeats), a START run's samples (``--run-samples``:
N answers per question sharing sentences and documents) and ALCE's human-judged sentences (``--human``).
"""

from __future__ import annotations

import argparse
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


# Counts of what the model read rather than what the scorer decided: a lazy reader that stops at the first
# entailing reading never reads (nor truncates) the rest.
READ_COUNTS = {"truncated_pairs", "num_truncated_pairs"}


def _decided(d: dict) -> dict:
    """``d`` without the read counts."""
    return {k: v for k, v in d.items() if k not in READ_COUNTS}


def decisions(report) -> list:
    """What the scorer decided, record by record (probabilities left out: a lazy reader's are lower bounds;
    counts of truncated readings too: it reads fewer)."""
    out = []
    for r in report.records:
        d = _decided(r.to_dict())
        for sent in d["sentences"]:
            sent.pop("prob")
        out.append(d)
    return out


def same_metrics(a, b) -> bool:
    """The data-set metrics equal (read counts aside)."""
    return _decided(a.metrics) == _decided(b.metrics)


def same_results(a, b) -> tuple[bool, str]:
    """Every per-record decision and score equal, and the data-set metrics."""
    for ra, rb in zip(decisions(a), decisions(b), strict=True):
        if ra != rb:
            return False, f"record {ra['id']}: {ra} vs {rb}"
    if not same_metrics(a, b):
        return False, f"metrics differ: {a.metrics} vs {b.metrics}"
    return True, "identical"


def sentence_agreement(a, b) -> float:
    """Share of the sentences whose support decision and citation relevance are the same in both reports."""
    pairs = [(x, y) for ra, rb in zip(a.records, b.records, strict=True)
             for x, y in zip(ra.sentences, rb.sentences, strict=True)]
    same = sum(x.supported == y.supported and x.relevant == y.relevant for x, y in pairs)
    return same / len(pairs) if pairs else 1.0


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


def load_counted(model: str, one_by_one: bool = False, **settings):
    """The judge loaded afresh (no readings remembered from another run), its model backend counted. The
    reference loop (``one_by_one``) reads every reading of every pair, one forward pass each, nothing
    remembered: the field's one-call-per-pair loop with this judge's readings."""
    from start.scoring import NLIConfig, load_nli
    from start.scoring.nli import PremiseWindowNLI

    counter: list[_Counting] = []

    def wrap(backend):
        counter.append(_Counting(backend, one_by_one))
        return counter[0]

    nli = load_nli(NLIConfig(model=model, progress=False, **settings), wrap=wrap)
    nli.predict([("warm-up premise.", "warm-up hypothesis.")] * 4)  # first-call allocations off the clock
    counter[0].inputs.clear()
    reader = nli
    while reader is not None and not isinstance(reader, PremiseWindowNLI):
        reader = getattr(reader, "inner", None)
    if reader is not None:
        reader._memo.clear()
        if one_by_one:
            reader._memo_size = 0
    return nli, counter[0]


def run_suite(model: str, records: list[dict], *, sentence_mode: str = "auto") -> dict:
    """The reference loop (fp32, every reading, one forward pass each), the batched scorer in fp32 (the same
    arithmetic: decisions must be identical) and the batched scorer as shipped (its default arithmetic and
    lazy reading), each from a cold cache; then the shipped scorer again from a warm cache."""
    from start.scoring import AttributionScorer, ScorerConfig

    def timed(nli, counter, sequential=False, **kw):
        t0 = time.perf_counter()
        report = AttributionScorer(nli, ScorerConfig(sentence_mode=sentence_mode, **kw)).score(records,
                                                                                              sequential=sequential)
        return report, time.perf_counter() - t0, len(counter.inputs)

    runs = {}
    nli, counter = load_counted(model, one_by_one=True, dtype="float32", lazy=False)
    runs["reference"] = timed(nli, counter, sequential=True, cache=False)
    log.info("reference loop: %d model inputs in %.1f s", runs["reference"][2], runs["reference"][1])
    with tempfile.TemporaryDirectory() as cache_dir:
        nli, counter = load_counted(model, dtype="float32")
        runs["batched_fp32"] = timed(nli, counter, cache=True, cache_dir=cache_dir + "/fp32")
        log.info("batched fp32: %d model inputs in %.1f s", runs["batched_fp32"][2], runs["batched_fp32"][1])
        nli, counter = load_counted(model)
        runs["batched"] = timed(nli, counter, cache=True, cache_dir=cache_dir + "/default")
        log.info("batched (%s): %d model inputs in %.1f s", _dtype(nli), runs["batched"][2], runs["batched"][1])
        counter.inputs.clear()
        warm = timed(nli, counter, cache=True, cache_dir=cache_dir + "/default")
    (ref, t_ref, n_ref), (b32, t_32, n_32), (bat, t_bat, n_bat) = (runs[k] for k in ("reference", "batched_fp32",
                                                                                      "batched"))
    ok, why = same_results(ref, b32)
    return {
        "records": len(records), "dtype": _dtype(nli),
        "reference_loop": {"seconds": t_ref, "model_inputs": n_ref, "model_inputs_per_s": n_ref / t_ref},
        "batched_fp32": {"seconds": t_32, "model_inputs": n_32, "unique_questions": b32.stats["unique_pairs"],
                         "questions_requested": b32.stats["pairs_requested"], "rounds": b32.stats["rounds"]},
        "batched": {"seconds": t_bat, "model_inputs": n_bat, "unique_questions": bat.stats["unique_pairs"],
                    "questions_requested": bat.stats["pairs_requested"], "rounds": bat.stats["rounds"]},
        "speedup": t_ref / t_bat, "speedup_fp32": t_ref / t_32, "reading_ratio": n_ref / max(n_bat, 1),
        "identical_fp32": ok, "identical_detail": why,
        "sentence_agreement_default": sentence_agreement(ref, bat), "metrics_equal_default": same_metrics(ref, bat),
        "warm_cache": {"seconds": warm[1], "model_inputs": warm[2], "speedup_vs_cold": t_bat / warm[1]},
        "metrics": bat.metrics,
    }


def _dtype(nli) -> str:
    from start.scoring.nli import base_backend

    return str(base_backend(nli).model.dtype).removeprefix("torch.")


def human_records(path: Path) -> list[dict]:
    """ALCE's human-judged cited sentences (one record each), as the judge benchmark scores them."""
    from start.nli.agreement import load_human, to_records

    return to_records(load_human(path))


def run_sample_records(path: Path) -> list[dict]:
    """A START run's samples (``round_N/sample/samples.jsonl``): one record per sample, in the document order it
    saw, gold fields left out as the rounds' score stage leaves them out."""
    from start.io import read_jsonl
    from start.sampling.sampler import expand_for_scoring

    gold = ("answer", "qa_pairs", "claims")
    return [{k: v for k, v in r.items() if k not in gold} for r in expand_for_scoring(read_jsonl(path))]


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
    ap.add_argument("--human", type=Path, help="also score ALCE's human-judged sentences (sentences.jsonl)")
    ap.add_argument("--run-samples", type=Path,
                    help="also score a START run's samples (e.g. runs/default/round_1/sample/samples.jsonl)")
    ap.add_argument("--nli", default="default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "scorer.json")
    ap.add_argument("--only", nargs="+", metavar="SUITE",
                    help="run only these suites and replace them in an existing --out file (the others kept)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import torch

    from start.io import atomic_open, project_relative, write_json

    torch.manual_seed(args.seed)
    suites = {"sampled-answers": (load_inputs(args.input, args.variants, args.seed), "auto")}
    if args.alce_demos:
        suites["alce-demonstrations"] = (alce_demo_records(args.alce_demos), "auto")
    if args.run_samples:
        suites["start-samples"] = (run_sample_records(args.run_samples), "auto")
    if args.human:
        suites["human-dev"] = (human_records(args.human), "sentences")
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "python": sys.version.split()[0],
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "nli_model": args.nli, "inputs": [project_relative(p) for p in args.input], "variants": args.variants,
        "run_samples": project_relative(args.run_samples) if args.run_samples else None,
        "suites": {},
    }
    if args.only:
        unknown = set(args.only) - set(suites)
        if unknown:
            ap.error(f"--only {sorted(unknown)}: not among the suites asked for ({sorted(suites)})")
        if args.out.is_file():
            result["suites"] = json.loads(args.out.read_text())["suites"]
        suites = {k: v for k, v in suites.items() if k in args.only}
    for name, (records, mode) in suites.items():
        log.info("suite %s: %d records", name, len(records))
        result["suites"][name] = run_suite(args.nli, records, sentence_mode=mode)
    write_json(args.out, result)
    with atomic_open(args.out.with_suffix(".md")) as f:
        f.write(render_markdown(result))
    print(render_markdown(result))
    return 0 if all(s["identical_fp32"] for s in result["suites"].values()) else 1


def render_markdown(r: dict) -> str:
    lines = ["# Scorer benchmark", "",
             f"Judge `{r['nli_model']}`; {r['machine']['threads']} torch threads, torch {r['machine']['torch']}, "
             f"{r['machine']['cpu']}. A *model input* is one forward row (a (premise, hypothesis) question becomes "
             "several with premise windows). The reference loop reads every reading of every question, one forward "
             "pass each, in fp32, no deduplication, no cache. The batched scorer asks each distinct reading once per "
             "file, in token-budget batches, most promising reading first and stops at the first that entails "
             "(lazy); its decisions in fp32 must equal the reference's, and in its default arithmetic they are "
             "counted.", ""]
    for name, s in r["suites"].items():
        ref, b32, bat, warm = s["reference_loop"], s["batched_fp32"], s["batched"], s["warm_cache"]
        lines += [
            f"## {name} ({s['records']} records)", "",
            "| run | seconds | model inputs | speed-up |", "|---|---:|---:|---:|",
            f"| reference loop (fp32) | {ref['seconds']:.1f} | {ref['model_inputs']} | 1.0x |",
            f"| batched scorer, fp32 | {b32['seconds']:.1f} | {b32['model_inputs']} | {s['speedup_fp32']:.1f}x |",
            f"| batched scorer, {s['dtype']} (default) | {bat['seconds']:.1f} | {bat['model_inputs']} | "
            f"**{s['speedup']:.1f}x** |",
            f"| same, warm cache | {warm['seconds']:.2f} | {warm['model_inputs']} | - |", "",
            f"- fp32 decisions identical to the reference loop: **{s['identical_fp32']}** "
            f"({s['identical_detail'][:200]})",
            f"- default arithmetic: {100 * s['sentence_agreement_default']:.1f}% of sentences decided alike "
            f"(support and every citation's relevance); data-set metrics equal: {s['metrics_equal_default']}",
            f"- {s['reading_ratio']:.1f}x fewer model inputs than the reference loop",
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
