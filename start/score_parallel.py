"""``accelerate launch [--num_processes N] -m start.score_parallel INPUT [start.score options]``: score a file
with the NLI model's batches sharded over processes (one per GPU, or gloo processes on a CPU; torchrun works too).

Takes :mod:`start.score`'s options and writes the same files, byte for byte the ones one process writes. Rank 0
runs the scorer (cache, rounds, outputs: it alone writes) and sends every model request to all ranks; each rank
runs its share of the request's batches (:mod:`start.scoring.parallel`: ``ProcessShardNLI`` and ``serve``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections.abc import Sequence

from start import score
from start.scoring.nli import base_backend, load_nli
from start.scoring.parallel import ProcessShardNLI, serve

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    from accelerate import PartialState

    args = score.build_parser().parse_args(argv)
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s [rank {rank}] %(name)s: %(message)s")
    import torch

    on_gpu = torch.cuda.is_available() and args.device != "cpu"
    state = PartialState(cpu=not on_gpu)  # gloo on the CPU, nccl on GPUs
    try:
        scorer_cfg, nli_cfg = score.configs_from_args(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    nli_cfg = dataclasses.replace(nli_cfg, device=str(state.device) if on_gpu else "cpu")
    if not state.is_main_process:
        log.info("rank %s served %d NLI requests", rank, serve(base_backend(load_nli(nli_cfg))))
        return 0
    leader: dict[str, ProcessShardNLI] = {}

    def wrap(backend):
        leader["nli"] = ProcessShardNLI(backend)
        return leader["nli"]

    try:
        return score.run(args, scorer_cfg, load_nli(nli_cfg, wrap=wrap))
    finally:
        if "nli" in leader:
            leader["nli"].close()
        else:  # loading failed on rank 0: release the others anyway
            import torch.distributed as dist

            dist.broadcast_object_list([None], src=0)


if __name__ == "__main__":
    sys.exit(main())
