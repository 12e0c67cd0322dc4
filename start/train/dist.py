"""What a training stage needs to run unchanged under ``accelerate launch``: who writes, when to wait,
and how to save the final model when the weights are spread over several processes.

In one process (the default, in-process training) every helper is a no-op and the model is merged and
saved as before. Under ``accelerate launch`` (DDP, DeepSpeed ZeRO-2/3, FSDP) every process runs the same
trainer; only the main process writes manifests, metrics and the merged model, and all processes take
part in the collective save that gathers sharded weights.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from start.train.common import save_model

log = logging.getLogger(__name__)


def state(cpu: bool):
    """Accelerate's process state, created the way the HF trainer creates it (``use_cpu`` -> ``cpu``), so the
    trainer built later shares it. On the CPU, processes launched by torchrun form a gloo group."""
    from accelerate import PartialState

    return PartialState(cpu=cpu)


def is_distributed(trainer) -> bool:
    """True when the weights or the work are spread over several processes (or DeepSpeed/FSDP wrap them)."""
    acc = trainer.accelerator
    return acc.num_processes > 1 or bool(getattr(trainer, "is_deepspeed_enabled", False)) or bool(
        getattr(trainer, "is_fsdp_enabled", False))


def save_final_model(trainer, tokenizer, base_model: str, target: Path, *, dtype: str | None = None,
                     info: dict[str, Any] | None = None, info_name: str = "start_model.json") -> Path:
    """Save the trained model as one full folder (LoRA merged), written by the main process only.

    One process: merge in memory and save (``save_model``). Several processes: ``trainer.save_model`` is a
    collective call that gathers ZeRO-3 / FSDP shards (the accelerate configs ask for full 16-bit state
    dicts) and writes either the adapter or the full weights; the main process then loads that folder on
    the CPU, folds the adapter into ``base_model`` and writes the final folder atomically.
    """
    if not is_distributed(trainer):
        return save_model(trainer.model, tokenizer, target, dtype=dtype, info=info, info_name=info_name)
    raw = target.parent / (target.name + ".gathered")
    trainer.save_model(str(raw))  # every process must call it
    acc = trainer.accelerator
    acc.wait_for_everyone()
    if acc.is_main_process:
        import torch
        from transformers import AutoModelForCausalLM

        if dtype is None:  # keep the dtype the model trained in
            dtype = str(next(trainer.model.parameters()).dtype).removeprefix("torch.")
        load_dtype = getattr(torch, dtype)
        if (raw / "adapter_config.json").is_file():
            from peft import PeftModel

            base = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
            model = PeftModel.from_pretrained(base, str(raw))
        else:
            model = AutoModelForCausalLM.from_pretrained(str(raw), dtype=load_dtype)
        log.info("merging the weights gathered from %d process(es) into %s", acc.num_processes, target)
        save_model(model, tokenizer, target, dtype=dtype, info=info, info_name=info_name)
        shutil.rmtree(raw)
    acc.wait_for_everyone()
    return target
