"""What the SFT and DPO trainers share: finding the checkpoint to resume from, saving a full model, and where
the training curves go."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from start.io import atomic_dir, write_json
from start.stage import write_content_hash

log = logging.getLogger(__name__)


def last_checkpoint(folder: Path) -> str | None:
    """The newest complete ``checkpoint-N`` folder (one with its trainer state), or None."""
    if not folder.is_dir():
        return None
    ckpts = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    complete = [c for c in ckpts if (c / "trainer_state.json").is_file()]
    return str(complete[-1]) if complete else None


def save_model(model, tokenizer, target: Path, *, dtype: str | None = None, info: dict[str, Any] | None = None,
               info_name: str = "start_model.json") -> Path:
    """Merge a LoRA adapter (if any), cast, and save a full model folder atomically (with an info file)."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()  # the plain base-model class with the adapter folded in
    if dtype is not None:
        import torch

        model.to(getattr(torch, dtype))
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if info is not None:
            write_json(tmp / info_name, info)
        write_content_hash(tmp)  # what later stages' fingerprints name this model by
    return target


def check_lengths(tokenizer, prompts: Sequence[str], completions: Sequence[Sequence[str]], max_length: int, *,
                  source: str, setting: str = "trainer.max_length") -> None:
    """Every prompt + completion (+ EOS) must fit ``max_length`` tokens: TRL would otherwise cut the row
    from the end, dropping the completion's end and its EOS, and the model would learn to stop nowhere.
    ``completions`` holds, per row, the completions trained after that prompt (DPO: chosen and rejected)."""
    def n_tokens(texts):
        return [len(x) for x in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    p_len = n_tokens(prompts)
    c_len = [max(n_tokens(cs)) for cs in completions]
    too_long = [(i, p, c) for i, (p, c) in enumerate(zip(p_len, c_len, strict=True)) if p + c + 1 > max_length]
    if too_long:
        i, p, c = max(too_long, key=lambda t: t[1] + t[2])
        raise ValueError(
            f"{source}: {len(too_long)} of {len(p_len)} rows are longer than {setting}={max_length} tokens "
            f"(longest: row {i + 1}, prompt {p} + completion {c} + EOS); TRL would cut their completions. Raise "
            f"{setting} (up to the model's context, model.max_model_len) or shorten the prompts (data.max_docs)")


def curve_loggers(report_to: Sequence[str], log_dir: Path | None, *, resuming: bool, main_process: bool
                  ) -> tuple[list[str] | str, list]:
    """Where a trainer's logged values go: the ``report_to`` names the trainer arguments take, and callbacks.

    TensorBoard writes to ``log_dir`` (``runs/<experiment>/tb/round_N`` in a run), through a callback given its
    own writer (the trainer arguments of transformers 5 name no folder for it); a training that starts over
    (no checkpoint to resume) clears the curves an earlier attempt left there. Every other name (``wandb``,
    ``mlflow``, ...) goes to transformers as it is. Nothing: ``"none"``.
    """
    others = [r for r in report_to if r != "tensorboard"]
    callbacks = []
    if "tensorboard" in report_to and main_process:
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        if log_dir is None:
            raise ValueError("report_to names tensorboard but no folder for its event files was given")
        if not resuming and log_dir.is_dir():
            log.info("a new training: the curves of an earlier attempt in %s are cleared", log_dir)
            shutil.rmtree(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        callbacks.append(TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(log_dir))))
        log.info("training curves: tensorboard --logdir %s", log_dir)
    return (others or "none"), callbacks
