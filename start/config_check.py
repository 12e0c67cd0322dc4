"""A composed run configuration checked as a whole, before any stage runs.

Each stage validates its own section when it starts; some mistakes only show across sections (and some
stages start hours into a run). :func:`stage_configs` builds every stage's typed settings from the run's
config, so a bad value fails at once; :func:`config_problems` lists what is valid per section but wrong
for the run:

* training sequences: ``trainer.max_length`` / ``sft.max_length`` below ``model.max_model_len`` -- a
  sampled prompt may fill ``max_model_len - max_new_tokens`` tokens and its answer the rest, and TRL cuts
  longer rows from the end (the answer and its EOS); the trainers also check the actual rows;
* learning rates outside the range used for the chosen method (LoRA DPO is typically trained at
  5e-5..5e-4; 5e-6 is a full fine-tuning rate under which a LoRA adapter barely moves);
* the prompt's generation budget differing from the sampler's, and warm-up questions drawn from the
  held-out split;
* ``launcher=accelerate`` without an existing ``accelerate_config``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# (method, LoRA?) -> the learning rates such runs use in practice (inclusive)
LR_RANGES = {
    ("dpo", True): (5e-5, 5e-4),
    ("dpo", False): (1e-7, 1e-5),
    ("sft", True): (5e-5, 1e-3),
    ("sft", False): (1e-6, 5e-5),
}


def stage_configs(cfg: dict[str, Any]) -> dict[str, Any]:
    """Every stage's typed settings, built the way the stages build them (raises ValueError on a bad value)."""
    from start.preferences import PreferenceConfig
    from start.sampling.backends import BackendConfig, SamplingConfig
    from start.sampling.prompt import run_prompt_config
    from start.scoring import NLIConfig, ScorerConfig
    from start.train.dpo import DPOTrainConfig
    from start.train.launch import split_launch
    from start.train.sft import SFTSettings
    from start.warmup.config import WarmupConfig

    sampler = dict(cfg["sampler"])
    backend = BackendConfig(**{**sampler.pop("backend"), "dtype": cfg["model"].get("dtype", "auto"),
                               "max_model_len": cfg["model"]["max_model_len"]})
    sampler.pop("chunk_size")
    trainer, trainer_launch = split_launch(cfg["trainer"])
    rs = trainer.pop("rs_sft", None) or {}
    sft, sft_launch = split_launch(cfg["sft"])
    out = {
        "prompt": run_prompt_config(cfg), "backend": backend, "sampling": SamplingConfig(**sampler),
        "eval_sampling": SamplingConfig(**{**sampler, **cfg["eval"]["sampler"]}),
        "nli": NLIConfig(**cfg["scorer"]["nli"]), "rules": ScorerConfig(**cfg["scorer"]["rules"]),
        "preference": PreferenceConfig(**cfg["preference"]), "dpo": DPOTrainConfig(**trainer),
        "sft": SFTSettings(**sft), "trainer_launch": trainer_launch, "sft_launch": sft_launch,
    }
    if cfg["warmup"].get("enabled", True):
        out["warmup"] = WarmupConfig.from_dict(cfg["warmup"])
        out["warmup_nli"] = NLIConfig(**out["warmup"].nli)
    if rs.get("enabled"):
        out["rs_sft"] = SFTSettings(**{**sft, **(rs.get("settings") or {})})
    return out


def _lr_problem(name: str, method: str, lora: bool, lr: float) -> str | None:
    low, high = LR_RANGES[(method, lora)]
    if low <= lr <= high:
        return None
    kind = "LoRA" if lora else "full fine-tuning"
    return (f"{name}={lr:g} is outside the usual {kind} {method.upper()} range {low:g}..{high:g}"
            + (" (a full fine-tuning rate: the adapter barely moves)" if lora and lr < low else ""))


def config_problems(cfg: dict[str, Any]) -> list[str]:
    """What is wrong with the run's configuration as a whole (empty: nothing); see the module docstring."""
    from start.warmup.stage import training_source

    c = stage_configs(cfg)
    ctx = int(cfg["model"]["max_model_len"])
    problems = []
    lengths = [("trainer.max_length", c["dpo"].max_length), ("sft.max_length", c["sft"].max_length)]
    rates = [_lr_problem("trainer.learning_rate", "dpo", c["dpo"].lora.enabled, c["dpo"].learning_rate),
             _lr_problem("sft.learning_rate", "sft", c["sft"].use_lora, c["sft"].learning_rate)]
    if "rs_sft" in c:
        lengths.append(("trainer.rs_sft.settings.max_length", c["rs_sft"].max_length))
        rates.append(_lr_problem("trainer.rs_sft.settings.learning_rate", "sft", c["rs_sft"].use_lora,
                                 c["rs_sft"].learning_rate))
    for name, value in lengths:
        if value < ctx:
            problems.append(f"{name}={value} < model.max_model_len={ctx}: a prompt of up to "
                            f"{ctx - c['prompt'].max_new_tokens} tokens plus its answer can exceed it, and TRL "
                            "cuts such rows from the end (the answer and its EOS)")
    problems += [p for p in rates if p]
    if c["prompt"].max_new_tokens != c["sampling"].max_new_tokens:
        problems.append(f"prompt.max_new_tokens={c['prompt'].max_new_tokens} differs from sampler.max_new_tokens="
                        f"{c['sampling'].max_new_tokens}: prompts are sized for another generation budget")
    if "warmup" in c:
        train = training_source(cfg, c["warmup"])
        held_out = (cfg.get("eval_source") or cfg["data"]["source"], cfg.get("eval_split"))
        if train == held_out:
            problems.append(f"the warm-up writes its data for the held-out questions ({held_out[0]}, split "
                            f"{held_out[1]}); set train_source / train_split or warmup.split")
    for section in ("trainer", "sft"):
        launch = c[f"{section}_launch"]
        if launch.launcher == "accelerate" and not Path(str(launch.accelerate_config)).is_file():
            problems.append(f"{section}.accelerate_config={launch.accelerate_config} does not exist")
    return problems
