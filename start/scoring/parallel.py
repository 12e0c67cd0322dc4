"""Scoring at scale: the NLI model's batches spread over devices or processes, with one device's numbers.

The scorer asks its NLI backend for the unique pairs it needs, round after round. A model backend first
fixes its batches (:meth:`start.scoring.hf._HFNLI.plan`: tokenised, length-sorted, cut by batch size) and
only then runs them, so any device or process that runs batch ``b`` computes exactly what one device
computes for it. Two ways to spread the batches:

* :class:`DeviceReplicasNLI` -- one process, one model replica per device (``NLIConfig.devices``, e.g.
  ``["cuda:0", ..., "cuda:7"]``); batch ``b`` runs on replica ``b mod D``, the replicas in parallel threads
  (PyTorch releases the GIL inside kernels). This is what ``python -m start.run`` uses.
* processes under ``accelerate launch`` / ``torchrun`` (the command line is :mod:`start.score_parallel`):
  rank 0 runs the scorer (cache, rounds, outputs -- it alone writes) and sends every model request to all
  ranks; rank ``r`` runs batches ``b mod W == r`` on its own device and the probabilities are gathered on
  rank 0 (:class:`ProcessShardNLI`, :func:`serve`).

A model too big for one GPU is instead split layer by layer with ``NLIConfig.extra={"device_map": "auto"}``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from start.scoring.backend import NLIPrediction, Pair
from start.scoring.devices import resolve_device

log = logging.getLogger(__name__)


def _assemble(n: int, plan, results: dict[int, np.ndarray]) -> np.ndarray:
    probs = np.zeros(n, dtype=np.float64)
    for b, values in results.items():
        probs[plan.batches[b]] = values
    return probs


class DeviceReplicasNLI:
    """One model backend per device; every request's batches spread over them round-robin."""

    def __init__(self, replicas: Sequence):
        self.replicas = list(replicas)
        self.inner = self.replicas[0]  # base_backend() finds the model through this
        self.threshold, self.fingerprint = self.inner.threshold, self.inner.fingerprint

    @classmethod
    def from_backend(cls, backend, devices: Sequence[str]) -> DeviceReplicasNLI:
        """Replicas of ``backend``'s model on ``devices`` (``backend`` itself serves the first device)."""
        replicas = [backend]
        for d in devices[1:]:
            twin = copy.copy(backend)  # same tokenizer, settings and fingerprint; its own model copy
            twin.model = copy.deepcopy(backend.model).to(resolve_device(d))
            replicas.append(twin)
        log.info("NLI model replicated on %s", ", ".join(devices))
        return cls(replicas)

    def predict(self, pairs: Sequence[Pair]) -> NLIPrediction:
        if not pairs:
            return NLIPrediction(np.zeros(0), np.zeros(0, dtype=bool))
        plan = self.inner.plan(pairs)
        n = len(self.replicas)

        def run(k: int) -> dict[int, np.ndarray]:
            return {b: self.replicas[k].run_batch(plan, b) for b in range(k, len(plan.batches), n)}

        with ThreadPoolExecutor(max_workers=n) as pool:
            parts = list(pool.map(run, range(n)))
        return NLIPrediction(_assemble(len(pairs), plan, {b: v for p in parts for b, v in p.items()}),
                             plan.truncated)


def _share(backend, pairs: list[Pair]) -> tuple[np.ndarray, np.ndarray] | None:
    """This process's batches of a request, gathered on rank 0 (which gets the whole result)."""
    import torch.distributed as dist

    rank, world = dist.get_rank(), dist.get_world_size()
    plan = backend.plan(pairs)
    mine = {b: backend.run_batch(plan, b) for b in range(rank, len(plan.batches), world)}
    gathered = [None] * world if rank == 0 else None
    dist.gather_object(mine, gathered, dst=0)
    if rank != 0:
        return None
    return _assemble(len(pairs), plan, {b: v for part in gathered for b, v in part.items()}), plan.truncated


class ProcessShardNLI:
    """Rank 0's model backend: each request is broadcast to every rank and run batch-sharded."""

    def __init__(self, inner):
        import torch.distributed as dist

        if not dist.is_initialized() or dist.get_rank() != 0:
            raise RuntimeError("ProcessShardNLI runs on rank 0 of an initialised process group")
        self.inner = inner
        self.threshold, self.fingerprint = inner.threshold, inner.fingerprint

    def predict(self, pairs: Sequence[Pair]) -> NLIPrediction:
        import torch.distributed as dist

        if not pairs:
            return NLIPrediction(np.zeros(0), np.zeros(0, dtype=bool))
        dist.broadcast_object_list([list(pairs)], src=0)
        probs, truncated = _share(self.inner, list(pairs))
        return NLIPrediction(probs, truncated)

    def close(self) -> None:
        """Release the other ranks from :func:`serve`."""
        import torch.distributed as dist

        dist.broadcast_object_list([None], src=0)


def serve(backend) -> int:
    """Ranks > 0: run this rank's batches of every request rank 0 sends, until it says stop; requests served."""
    import torch.distributed as dist

    served = 0
    while True:
        box = [None]
        dist.broadcast_object_list(box, src=0)
        if box[0] is None:
            return served
        _share(backend, box[0])
        served += 1
