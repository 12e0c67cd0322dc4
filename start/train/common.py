"""What the SFT and DPO trainers share: finding the checkpoint to resume from, saving a full model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from start.io import atomic_dir, write_json
from start.stage import write_content_hash


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
