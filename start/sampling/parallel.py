"""Data-parallel sampling: several engines side by side, one per group of GPUs, each on its share of chunks.

vLLM's offline ``LLM`` runs one engine per process (``data_parallel_size > 1`` in one process is refused), so
``sampler.backend.data_parallel_size = D`` starts D fresh processes; engine ``r`` sees its own
``tensor_parallel_size x pipeline_parallel_size`` GPUs (``CUDA_VISIBLE_DEVICES``) and samples chunks
``r, r + D, r + 2D, ...`` of the question list into ``shards/rank<r>.jsonl``. Those are exactly the chunks a
single engine would form, with the same per-question seeds, so the merged file holds the same samples;
each shard resumes per chunk (``run_sampling``), and the merge into ``samples.jsonl`` (input order) is
written atomically once every shard is complete.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

from start.io import atomic_open, write_json
from start.sampling.backends import BackendConfig, SamplingConfig, make_generator
from start.sampling.prompt import PromptConfig
from start.sampling.sampler import SampleInput, SamplingSummary, _read_done, run_sampling

log = logging.getLogger(__name__)
SHARDS = "shards"


def shard_items(items: Sequence[SampleInput], chunk_size: int, rank: int, world: int) -> list[SampleInput]:
    """The questions of every ``world``-th chunk starting at ``rank``; re-chunked by ``chunk_size`` they form
    the very chunks a single engine forms (all chunks but the list's last are full)."""
    chunks = [items[i:i + chunk_size] for i in range(0, len(items), chunk_size)]
    return [it for ci, chunk in enumerate(chunks) if ci % world == rank for it in chunk]


def engine_devices(backend: BackendConfig) -> list[str | None]:
    """``CUDA_VISIBLE_DEVICES`` of each engine (None: leave it as it is -- CPU, or Ray places the workers)."""
    import torch

    world = backend.data_parallel_size
    if not torch.cuda.is_available() or backend.distributed_executor_backend == "ray":
        return [None] * world
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
    per = backend.gpus_per_engine
    if len(ids) < world * per:
        raise ValueError(f"sampler.backend: data_parallel_size={world} engines x {per} GPU(s) each need "
                         f"{world * per} GPUs, {len(ids)} are visible")
    return [",".join(ids[r * per:(r + 1) * per]) for r in range(world)]


def _engine(items: list[SampleInput], model_path: str, backend: BackendConfig, prompt: PromptConfig,
            params: SamplingConfig, path: str, chunk_size: int, seed: int, devices: str | None,
            doc_orders: int = 1) -> None:
    """One engine's process: pin its GPUs before anything touches CUDA, sample its chunks, record a summary."""
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    generator = make_generator(model_path, replace(backend, data_parallel_size=1), seed=seed)
    summary = run_sampling(items, generator, prompt, params, path, chunk_size=chunk_size, doc_orders=doc_orders)
    write_json(Path(path).with_suffix(".summary.json"), asdict(summary))


def run_data_parallel(items: Sequence[SampleInput], model_path: str, backend: BackendConfig, prompt: PromptConfig,
                      params: SamplingConfig, out_path: str | os.PathLike, *, chunk_size: int,
                      seed: int, doc_orders: int = 1) -> SamplingSummary:
    """Sample ``items`` with ``backend.data_parallel_size`` engines in parallel; merge into ``out_path``."""
    out_path = Path(out_path)
    folder = out_path.parent / SHARDS
    folder.mkdir(parents=True, exist_ok=True)
    world = backend.data_parallel_size
    devices = engine_devices(backend)
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: CUDA and vLLM state stay per engine
    procs = {}
    for rank in range(world):
        mine = shard_items(items, chunk_size, rank, world)
        if not mine:
            continue
        path = folder / f"rank{rank}.jsonl"
        proc = ctx.Process(target=_engine, args=(mine, model_path, backend, prompt, params, str(path), chunk_size,
                                                 seed, devices[rank], doc_orders), name=f"sampler-engine-{rank}")
        proc.start()
        log.info("engine %d/%d: %d questions%s", rank, world, len(mine),
                 f" on GPU(s) {devices[rank]}" if devices[rank] else "")
        procs[rank] = (proc, path)
    failed = []
    for rank, (proc, _) in procs.items():
        proc.join()
        if proc.exitcode != 0:
            failed.append(f"engine {rank} (exit code {proc.exitcode})")
    if failed:
        raise RuntimeError(f"data-parallel sampling failed: {', '.join(failed)}; the finished chunks are kept in "
                           f"{folder} and a rerun resumes them")
    rows = {r["id"]: r for _, path in procs.values() for r in _read_done(path)}
    missing = [it.id for it in items if it.id not in rows]
    if missing:
        raise RuntimeError(f"data-parallel sampling: {len(missing)} question(s) missing from {folder} "
                           f"(first: {missing[0]})")
    with atomic_open(out_path) as f:
        for it in items:
            f.write(json.dumps(rows[it.id], ensure_ascii=False) + "\n")
    parts = [SamplingSummary(**json.loads(path.with_suffix(".summary.json").read_text())) for _, path in procs.values()]
    shutil.rmtree(folder)
    written = sum(p.rows_written for p in parts)
    share = sum(p.share_with_citation * p.rows_written for p in parts) / written if written else 0.0
    return SamplingSummary(written, sum(p.rows_skipped for p in parts), sum(p.chunks for p in parts),
                           sum(p.truncated_docs for p in parts), share)
