"""Supervised fine-tuning on prompt/completion rows with TRL's ``SFTTrainer`` (full or LoRA).

The loss covers the completion only (TRL's prompt-completion format). Checkpoints go to
``<out>/checkpoints`` and an interrupted run resumes from the last one -- but only when it was written for
the same data, base model and hyper-parameters (a ``fingerprint.json`` beside them says so; the training
length may change, so a run can be extended). The final model is always a full model folder
(``<out>/model``: safetensors + tokenizer; a LoRA adapter is merged into the base first), written to a
temporary folder and renamed, so the next stage (sampling, DPO, vLLM) loads it by path. The loss curve
and the trainer's metrics go to ``<out>/metrics.json``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from start.io import read_records, write_json
from start.scoring.devices import mixed_bf16
from start.stage import fingerprint
from start.train import dist
from start.train.common import check_lengths, curve_loggers, last_checkpoint

log = logging.getLogger(__name__)

MODEL_INFO = "start_sft.json"  # written into the final model folder, last
_DTYPES = ("float32", "bfloat16", "float16")
# Settings that may change between a run and its resumption (they do not change what a step computes).
_LENGTH_KEYS = ("epochs", "max_steps", "save_steps", "save_total_limit", "logging_steps", "save_dtype")


@dataclass
class SFTSettings:
    """Hyper-parameters of one SFT run (the ``trainer`` config group, ``conf/trainer/sft.yaml``)."""

    epochs: float = 2.0  # passes over the data (ignored when max_steps > 0)
    max_steps: int = -1  # > 0: stop after this many optimiser steps
    learning_rate: float = 2e-4
    batch_size: int = 4  # per device
    grad_accum: int = 1  # gradient accumulation steps
    max_length: int = 1024  # tokens of prompt + completion (a longer row is an error: TRL would cut its end)
    lr_scheduler: str = "cosine"  # any transformers scheduler name ("linear", "constant", ...)
    warmup_steps: float = 0.0  # steps, or a fraction of training when < 1
    weight_decay: float = 0.0
    use_lora: bool = True  # False: full fine-tuning
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | str = "all-linear"
    seed: int | None = None  # None: the stage derives one from the experiment seed
    save_steps: int = 50  # checkpoint every N optimiser steps (resume points)
    save_total_limit: int | None = 2  # checkpoints kept
    logging_steps: int = 1
    train_dtype: str = "float32"  # weights while training
    # bf16 mixed precision over fp32 weights: None (auto) where the hardware has bf16 instructions (a GPU, or a CPU
    # with AVX512-BF16 / AMX), false: fp32
    bf16: bool | None = None
    save_dtype: str = "bfloat16"  # weights of the saved model folder
    gradient_checkpointing: bool = False
    extra: dict = field(default_factory=dict)  # further trl.SFTConfig fields, passed through

    def __post_init__(self):
        if self.max_steps <= 0 and self.epochs <= 0:
            raise ValueError("trainer: set epochs > 0 or max_steps > 0")
        if self.learning_rate <= 0:
            raise ValueError(f"trainer.learning_rate must be > 0, got {self.learning_rate}")
        for name in ("batch_size", "grad_accum", "max_length", "save_steps", "logging_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"trainer.{name} must be >= 1, got {getattr(self, name)}")
        if self.save_total_limit is not None and self.save_total_limit < 1:
            raise ValueError(f"trainer.save_total_limit must be >= 1 or null, got {self.save_total_limit}")
        if self.warmup_steps < 0 or self.weight_decay < 0:
            raise ValueError("trainer.warmup_steps and weight_decay must be >= 0")
        if self.use_lora:
            if self.lora_r < 1 or self.lora_alpha <= 0:
                raise ValueError(f"trainer.lora_r must be >= 1 and lora_alpha > 0, got {self.lora_r}, "
                                 f"{self.lora_alpha}")
            if not 0 <= self.lora_dropout < 1:
                raise ValueError(f"trainer.lora_dropout must be in [0, 1), got {self.lora_dropout}")
            if not self.lora_target_modules:
                raise ValueError("trainer.lora_target_modules is empty")
        for name in ("train_dtype", "save_dtype"):
            if getattr(self, name) not in _DTYPES:
                raise ValueError(f"trainer.{name} must be one of {_DTYPES}, got {getattr(self, name)!r}")
        if self.seed is not None and self.seed < 0:
            raise ValueError(f"trainer.seed must be >= 0 or null, got {self.seed}")
        if not isinstance(self.lora_target_modules, str):
            self.lora_target_modules = list(self.lora_target_modules)


def _rows(data: str | os.PathLike | Sequence[dict]) -> list[dict[str, str]]:
    rows = read_records(data) if isinstance(data, str | os.PathLike) else list(data)
    out = []
    for i, r in enumerate(rows):
        if not isinstance(r.get("prompt"), str) or not isinstance(r.get("completion"), str):
            raise ValueError(f"SFT row {i} needs string fields 'prompt' and 'completion'")
        out.append({"prompt": r["prompt"], "completion": r["completion"]})
    if not out:
        raise ValueError("no SFT rows to train on")
    return out


def _prepare_checkpoints(folder: Path, resume_fp: str, state=None) -> str | None:
    """The checkpoint to resume from, after discarding checkpoints written for another run (by the main
    process; the others wait for it)."""
    if state is None or state.is_main_process:
        stamp = folder / "fingerprint.json"
        if folder.is_dir() and (not stamp.is_file() or json.loads(stamp.read_text()).get("fingerprint") != resume_fp):
            log.warning("%s holds checkpoints of another run (data or settings changed); starting over", folder)
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(stamp, {"fingerprint": resume_fp})
    if state is not None:
        state.wait_for_everyone()
    return last_checkpoint(folder)


def model_is_complete(model_dir: str | Path, fp: str) -> bool:
    info = Path(model_dir) / MODEL_INFO
    return info.is_file() and json.loads(info.read_text()).get("fingerprint") == fp


def train_sft(data: str | os.PathLike | Sequence[dict], model: str, cfg: SFTSettings, out_dir: str | os.PathLike,
              *, seed: int = 0, report_to: Sequence[str] = (), log_dir: str | os.PathLike | None = None) -> Path:
    """Fine-tune ``model`` (a folder or hub name) on prompt/completion rows; return the saved model folder.

    ``data`` is a JSON/JSONL file or a list of dicts with ``prompt`` and ``completion``. ``seed`` is used
    when ``cfg.seed`` is None. A finished run with the same inputs is not repeated. The loss curve also goes
    to ``report_to`` (``tensorboard``: event files in ``log_dir``, default ``<out_dir>/tb``).
    """
    out = Path(out_dir)
    model_dir = out / "model"
    rows = _rows(data)
    settings = asdict(cfg) | {"seed": cfg.seed if cfg.seed is not None else seed}
    resume_fp = fingerprint({"model": model, "rows": fingerprint(rows),
                             "settings": {k: v for k, v in settings.items() if k not in _LENGTH_KEYS}})
    fp = fingerprint({"resume": resume_fp, "settings": settings})
    if model_is_complete(model_dir, fp):
        log.info("SFT model already trained in %s; skipping", model_dir)
        return model_dir

    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    on_gpu = torch.cuda.is_available()
    tokenizer = AutoTokenizer.from_pretrained(model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    check_lengths(tokenizer, [r["prompt"] for r in rows], [[r["completion"]] for r in rows], cfg.max_length,
                  source=f"SFT data {data}" if isinstance(data, str | os.PathLike) else "SFT rows",
                  setting="sft.max_length")
    state = dist.state(cpu=not on_gpu)  # one process, or one of several under `accelerate launch`
    ckpt_dir = out / "checkpoints"
    resume = _prepare_checkpoints(ckpt_dir, resume_fp, state)
    report, callbacks = curve_loggers(report_to, Path(log_dir) if log_dir else out / "tb", resuming=resume is not None,
                                      main_process=state.is_main_process)
    base = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, cfg.train_dtype))
    peft_config = None
    if cfg.use_lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                 target_modules=cfg.lora_target_modules, task_type="CAUSAL_LM")
    args = SFTConfig(
        output_dir=str(ckpt_dir), num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler, warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay, max_length=cfg.max_length, seed=settings["seed"],
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps, logging_first_step=True, report_to=report, completion_only_loss=True,
        packing=False,
        gradient_checkpointing=cfg.gradient_checkpointing, dataloader_num_workers=0,
        use_cpu=not on_gpu, bf16=mixed_bf16(cfg.bf16, on_gpu) and cfg.train_dtype == "float32",
        **cfg.extra)
    trainer = SFTTrainer(model=base, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         peft_config=peft_config, callbacks=callbacks)
    log.info("SFT on %d rows from %s (%s, %d process(es))%s", len(rows), model,
             "LoRA" if cfg.use_lora else "full fine-tuning", state.num_processes,
             f"; resuming from {resume}" if resume else "")
    result = trainer.train(resume_from_checkpoint=resume)

    history = trainer.state.log_history
    curve = [{k: h[k] for k in ("step", "epoch", "loss", "learning_rate", "grad_norm") if k in h}
             for h in history if "loss" in h]
    metrics = {"loss_curve": curve, "train": result.metrics, "global_step": trainer.state.global_step,
               "resumed_from": resume, "rows": len(rows), "model": model, "settings": settings,
               "processes": state.num_processes}
    if state.is_main_process:
        write_json(out / "metrics.json", metrics)
        log.info("wrote the training metrics to %s", out / "metrics.json")

    dist.save_final_model(trainer, tokenizer, model, model_dir, dtype=cfg.save_dtype, info_name=MODEL_INFO,
                          info={"fingerprint": fp, "base_model": model, "rows": len(rows), "settings": settings,
                                "global_step": trainer.state.global_step})
    log.info("SFT model saved to %s (final loss %s)", model_dir, curve[-1]["loss"] if curve else None)
    return model_dir
