"""DPO on fine-grained preference pairs (TRL ``DPOTrainer``), the reference being the previous policy.

Input: a JSONL of ``{prompt, chosen, rejected, ...}`` (``start.preferences``), prompts already rendered
with the chat template (exactly what the sampler fed the model). The policy starts from the previous
round's model and the reference model *is* that model: with LoRA, TRL uses the base weights with the
adapter disabled; for full fine-tuning, a frozen copy (or precomputed reference log-probabilities).
Checkpoints are saved every ``save_steps`` and a rerun resumes from the last one. The result is saved as
a full model folder (LoRA merged) so the next round's sampler -- vLLM included -- loads it by path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from start.io import write_json
from start.scoring.devices import mixed_bf16
from start.train import dist
from start.train.common import check_lengths, curve_loggers, last_checkpoint

log = logging.getLogger(__name__)


@dataclass
class LoraSettings:
    enabled: bool = True
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"

    def __post_init__(self):
        if self.r < 1 or self.alpha < 1 or not 0 <= self.dropout < 1:
            raise ValueError(f"invalid LoRA settings r={self.r} alpha={self.alpha} dropout={self.dropout}")


@dataclass
class DPOTrainConfig:
    beta: float = 0.1
    # weight of the chosen answers' negative log-likelihood (mean per token) added to the DPO loss (iterative RPO,
    # Pang et al. 2024): keeps the chosen answers likely while the rounds push the rejected ones down; 0: plain DPO
    nll_weight: float = 0.0
    learning_rate: float = 5e-5
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 1024
    precompute_ref_log_probs: bool = True  # one reference pass up front: no second model in memory
    lora: LoraSettings = field(default_factory=LoraSettings)
    save_steps: int = 50
    logging_steps: int = 5
    gradient_checkpointing: bool = False  # recompute activations in the backward pass (long sequences, big models)
    seed: int = 0
    device: str = "auto"  # "auto" uses a GPU when there is one
    # bf16 mixed precision: None (auto) where the hardware has bf16 instructions (a GPU, or a CPU with AVX512-BF16
    # / AMX: 1.5x faster here), false: fp32
    bf16: bool | None = None

    def __post_init__(self):
        if isinstance(self.lora, dict):
            self.lora = LoraSettings(**self.lora)
        if self.beta <= 0:
            raise ValueError(f"trainer.beta must be > 0, got {self.beta}")
        if self.nll_weight < 0:
            raise ValueError(f"trainer.nll_weight must be >= 0, got {self.nll_weight}")
        if self.learning_rate <= 0:
            raise ValueError(f"trainer.learning_rate must be > 0, got {self.learning_rate}")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("trainer.batch_size and trainer.grad_accum must be >= 1")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ValueError("set trainer.epochs > 0 or trainer.max_steps > 0")


def train_dpo(policy_path: str, pairs_path: str | Path, cfg: DPOTrainConfig, out_dir: str | Path, *,
              report_to: Sequence[str] = (), log_dir: str | Path | None = None) -> Path:
    """Train one DPO round; returns the folder of the new (merged) policy. The logged values (loss, chosen and
    rejected rewards, margins, accuracies, learning rate) go to ``metrics.json`` and to ``report_to``
    (``tensorboard``: event files in ``log_dir``, default ``<out_dir>/tb``; :func:`curve_loggers`)."""
    import torch
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    on_gpu = torch.cuda.is_available() and cfg.device != "cpu"
    state = dist.state(cpu=not on_gpu)  # one process, or one of several under `accelerate launch`
    data = load_dataset("json", data_files=str(pairs_path), split="train")
    data = data.select_columns(["prompt", "chosen", "rejected"])
    if len(data) == 0:
        raise ValueError(f"{pairs_path}: no preference pairs to train on")
    tokenizer = AutoTokenizer.from_pretrained(policy_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    check_lengths(tokenizer, data["prompt"], list(zip(data["chosen"], data["rejected"], strict=True)),
                  cfg.max_length, source=str(pairs_path))
    dtype = torch.bfloat16 if on_gpu else torch.float32
    mixed = mixed_bf16(cfg.bf16, on_gpu)
    model = AutoModelForCausalLM.from_pretrained(policy_path, dtype=dtype)
    peft_config = None
    if cfg.lora.enabled:
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                                 target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM")
    resume = last_checkpoint(ckpt_dir)
    report, callbacks = curve_loggers(report_to, Path(log_dir) if log_dir else out / "tb", resuming=resume is not None,
                                      main_process=state.is_main_process)
    args = DPOConfig(
        output_dir=str(ckpt_dir), beta=cfg.beta, learning_rate=cfg.learning_rate, num_train_epochs=cfg.epochs,
        **({"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, cfg.nll_weight]} if cfg.nll_weight else {}),
        max_steps=cfg.max_steps, per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, max_length=cfg.max_length,
        precompute_ref_log_probs=cfg.precompute_ref_log_probs, save_steps=cfg.save_steps,
        logging_steps=cfg.logging_steps, seed=cfg.seed, data_seed=cfg.seed, report_to=report,
        use_cpu=not on_gpu, bf16=mixed, save_total_limit=2, disable_tqdm=False,
        gradient_checkpointing=cfg.gradient_checkpointing,
    )
    trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=data, processing_class=tokenizer,
                         peft_config=peft_config, callbacks=callbacks)
    log.info("DPO on %d pairs from %s (%d process(es), %s)%s", len(data), policy_path, state.num_processes,
             "bf16 mixed precision" if mixed else "fp32",
             f"; resuming from {resume}" if resume else "")
    result = trainer.train(resume_from_checkpoint=resume)
    if state.is_main_process:
        write_json(out / "metrics.json", {"policy": policy_path, "train": result.metrics,
                                          "log_history": trainer.state.log_history, "pairs": len(data),
                                          "processes": state.num_processes, "bf16": mixed,
                                          "config": json.loads(json.dumps(asdict(cfg)))})
        log.info("wrote the training metrics to %s", out / "metrics.json")
    return dist.save_final_model(trainer, tokenizer, policy_path, out / "model")
