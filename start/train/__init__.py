"""Training stages (need the ``train`` extra: trl, peft, accelerate)."""

from start.train.sft import SFTSettings, train_sft

__all__ = ["SFTSettings", "train_sft"]
