"""How often does the policy cite at all? Share of samples with at least one valid citation, zero-shot vs
one-shot, on the embedded dev split (the same sampler settings otherwise).

    python scripts/citation_share.py [hydra overrides, e.g. sampler=vllm model.name=...]

Runs the sampling stage twice (``prompt.n_demos=0`` and ``=1``) under ``runs/citation-share/`` (resumable,
skipped when complete) and writes ``bench/citation_share.{json,md}``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def share(path: Path) -> tuple[float, int]:
    from start.io import read_jsonl

    rows = read_jsonl(path)
    samples = [s for r in rows for s in r["samples"]]
    return sum(bool(s["citations"]) for s in samples) / len(samples), len(samples)


def main(overrides: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from start.config import build_sample_config
    from start.io import atomic_open, write_json
    from start.sampling.stage import sample_stage

    results = {}
    for demos in (0, 1):
        with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("sample", overrides=[f"prompt.n_demos={demos}",
                                               f"out_dir=runs/citation-share/demos{demos}", *overrides])
        resolved = OmegaConf.to_container(cfg, resolve=True)
        job = build_sample_config(resolved)
        path = sample_stage(job.sample, job.data, model=job.model, out_dir=job.out_dir, seed=job.seed)
        value, n = share(path)
        results[f"{demos}-shot"] = {"share_with_valid_citation": value, "samples": n}
        model, backend = resolved["model"]["name"], resolved["sampler"]["backend"]["name"]
    report = {"model": model, "backend": backend, "split": resolved["data"]["split"], "results": results,
              "overrides": overrides}
    write_json(ROOT / "bench" / "citation_share.json", report)
    lines = ["# Citation share before training", "",
             f"{model} ({backend}), embedded {resolved['data']['split']} split, "
             f"n={resolved['sampler']['n']}, temperature {resolved['sampler']['temperature']}.", "",
             "| prompt | samples | with >= 1 valid citation |", "|---|---:|---:|"]
    lines += [f"| {k} | {v['samples']} | {100 * v['share_with_valid_citation']:.1f}% |" for k, v in results.items()]
    with atomic_open(ROOT / "bench" / "citation_share.md") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
