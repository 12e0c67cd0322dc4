"""Benchmark: generation throughput of vLLM (CPU build) vs transformers on the same prompts.

Both backends get the same prompts (the citation prompt over the first ``--questions`` questions of the
embedded dev split, one-shot), the same sampling settings (n=4, temperature 0.7, top-p 0.95,
``--max-new-tokens``) and the same model (SmolLM2-135M-Instruct by default). Each backend runs in its own
process (vLLM patches kernels process-wide at start-up). Reported: generated tokens, seconds for the
whole prompt list (model loading excluded), tokens/s, and the share of samples with a valid citation.
Results: ``bench/sampler.json`` and ``bench/sampler.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("bench_sampler")


def prompt_config(n_demos: int, max_new_tokens: int):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from start.sampling.prompt import PromptConfig

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("sample", overrides=[f"prompt.n_demos={n_demos}", f"sampler.max_new_tokens={max_new_tokens}"])
    return PromptConfig(**OmegaConf.to_container(cfg.prompt, resolve=True))


def worker(args) -> dict:
    """Run one backend on the prompts; print a JSON line with the timing."""
    from start.data import load_embedded
    from start.models import resolve_model
    from start.sampling.backends import BackendConfig, SamplingConfig, make_generator
    from start.sampling.prompt import build_prompt
    from start.sampling.sampler import derive_seed
    from start.text import parse_citations

    records = load_embedded("dev")[: args.questions]
    path = resolve_model(args.model)
    backend = BackendConfig(name=args.backend, dtype=args.dtype, batch_size=args.batch_size, max_model_len=2048)
    t0 = time.perf_counter()
    gen = make_generator(path, backend, seed=0)
    load_s = time.perf_counter() - t0
    pcfg = prompt_config(1, args.max_new_tokens)
    prompts = [build_prompt(pcfg, r.question, r.docs, gen.tokenizer).text for r in records]
    params = SamplingConfig(n=4, temperature=0.7, top_p=0.95, max_new_tokens=args.max_new_tokens, seed=0)
    seeds = [derive_seed(0, r.id) for r in records]
    gen.generate(prompts[:1], SamplingConfig(n=1, max_new_tokens=4), seeds[:1])  # warm-up
    t0 = time.perf_counter()
    out = gen.generate(prompts, params, seeds)
    secs = time.perf_counter() - t0
    tokens = sum(g.n_tokens for row in out for g in row)
    cited = sum(any(1 <= c <= len(r.docs) for c in parse_citations(g.text)) for r, row in zip(records, out, strict=True)
                for g in row)
    return {"backend": args.backend, "prompts": len(prompts), "samples": 4 * len(prompts), "tokens": tokens,
            "seconds": secs, "tokens_per_s": tokens / secs, "load_seconds": load_s,
            "share_with_citation": cited / (4 * len(prompts)), "batch_size": args.batch_size, "dtype": args.dtype}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--batch-size", type=int, default=16, help="transformers: prompts per generate() call")
    ap.add_argument("--backends", nargs="+", default=["vllm", "transformers"])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "sampler.json")
    ap.add_argument("--worker", dest="backend", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.backend:
        print(json.dumps(worker(args)))
        return 0
    results, skipped = [], {}
    for b in args.backends:
        if b == "vllm":
            import importlib.util

            if importlib.util.find_spec("vllm") is None:
                skipped[b] = "vLLM is not installed (make setup-vllm)"
                continue
        cmd = [sys.executable, __file__, "--worker", b, "--model", args.model, "--questions", str(args.questions),
               "--max-new-tokens", str(args.max_new_tokens), "--dtype", args.dtype,
               "--batch-size", str(args.batch_size)]
        log.info("running %s", b)
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
        if proc.returncode != 0:
            raise SystemExit(f"{b} worker failed:\n{proc.stderr[-4000:]}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        log.info("%s: %.1f tokens/s", b, results[-1]["tokens_per_s"])
    from start.io import atomic_open, write_json

    report = {"model": args.model, "questions": args.questions, "n": 4, "max_new_tokens": args.max_new_tokens,
              "results": results, "skipped": skipped}
    by = {r["backend"]: r for r in results}
    if "vllm" in by and "transformers" in by:
        report["vllm_over_transformers"] = by["vllm"]["tokens_per_s"] / by["transformers"]["tokens_per_s"]
    write_json(args.out, report)
    lines = ["# Sampler benchmark", "",
             f"{args.model}, {args.questions} embedded-dev prompts (one-shot citation prompt), n=4, "
             f"temperature 0.7, top-p 0.95, up to {args.max_new_tokens} new tokens, {args.dtype}.", "",
             "| backend | samples | tokens | seconds | tokens/s | load s | samples citing |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['backend']} | {r['samples']} | {r['tokens']} | {r['seconds']:.1f} | "
                     f"{r['tokens_per_s']:.1f} | {r['load_seconds']:.1f} | {100 * r['share_with_citation']:.0f}% |")
    if "vllm_over_transformers" in report:
        lines += ["", f"vLLM / transformers throughput: **{report['vllm_over_transformers']:.2f}x**"]
    for b, why in skipped.items():
        lines += ["", f"{b}: skipped ({why})"]
    with atomic_open(args.out.with_suffix(".md")) as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
