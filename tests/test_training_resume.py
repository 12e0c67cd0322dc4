"""SFT and DPO killed for real mid-run (SIGKILL right after a checkpoint is written), then resumed: the
final weights match an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("trl")

from start.io import write_jsonl  # noqa: E402
from start.train.common import last_checkpoint  # noqa: E402
from start.train.dpo import DPOTrainConfig, LoraSettings, train_dpo  # noqa: E402
from start.train.sft import SFTSettings, train_sft  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# The child trains; after writing the checkpoint of step `kill_at` it SIGKILLs itself (no clean-up runs).
CHILD = r"""
import json, os, signal, sys
kind, model, data, out, kill_at, settings = sys.argv[1:7]
from trl.trainer.dpo_trainer import DPOTrainer
from trl.trainer.sft_trainer import SFTTrainer
for cls in (SFTTrainer, DPOTrainer):
    def save_then_die(self, *args, _original=cls._save_checkpoint, **kwargs):
        _original(self, *args, **kwargs)
        if self.state.global_step >= int(kill_at):
            os.kill(os.getpid(), signal.SIGKILL)
    cls._save_checkpoint = save_then_die
if kind == "sft":
    from start.train.sft import SFTSettings, train_sft
    train_sft(data, model, SFTSettings(**json.loads(settings)), out)
else:
    from start.train.dpo import DPOTrainConfig, train_dpo
    train_dpo(model, data, DPOTrainConfig(**json.loads(settings)), out)
"""

SFT_ROWS = [{"prompt": "<user> question : the tower was built in ? </s> <assistant> ",
             "completion": "the tower was built in 1889 [ 1 ] ."},
            {"prompt": "<user> question : where is the eiffel tower ? </s> <assistant> ",
             "completion": "the eiffel tower is in paris [ 2 ] ."},
            {"prompt": "<user> document title paris is in france </s> <assistant> ",
             "completion": "paris is in france [ 1 ] ."}] * 3
DPO_ROWS = [{"prompt": "<user> when was the tower built ? </s> <assistant> ",
             "chosen": "the tower was built in 1889 [ 1 ] .", "rejected": "paris is big ."},
            {"prompt": "<user> is paris big ? </s> <assistant> ",
             "chosen": "paris is big [ 2 ] .", "rejected": "it f1 f2 ."}] * 4


def _killed_at(kind: str, model: Path, data: Path, out: Path, step: int, settings: dict) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", CHILD, kind, str(model), str(data), str(out), str(step),
                          json.dumps(settings)], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    assert last_checkpoint(out / "checkpoints").endswith(f"checkpoint-{step}")
    assert not (out / "model").exists()


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _assert_same(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k].float(), wb[k].float(), rtol=1e-5, atol=1e-6, msg=k)


def test_sft_killed_after_a_checkpoint_resumes_to_the_same_weights(tiny_causal_lm, tmp_path):
    settings = dict(max_steps=6, learning_rate=1e-2, batch_size=2, grad_accum=1, max_length=64, use_lora=False,
                    lr_scheduler="cosine", save_steps=2, seed=0, save_dtype="float32", logging_steps=1)
    data = tmp_path / "rows.jsonl"
    write_jsonl(data, SFT_ROWS)
    _killed_at("sft", tiny_causal_lm, data, tmp_path / "killed", 4, settings)
    resumed = train_sft(data, str(tiny_causal_lm), SFTSettings(**settings), tmp_path / "killed")
    metrics = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    assert metrics["resumed_from"].endswith("checkpoint-4") and metrics["global_step"] == 6
    straight = train_sft(data, str(tiny_causal_lm), SFTSettings(**settings), tmp_path / "straight")
    _assert_same(resumed, straight)
    before = _weights(tiny_causal_lm)
    assert any(not torch.equal(before[k].float(), v.float()) for k, v in _weights(straight).items() if k in before)


def test_dpo_killed_after_a_checkpoint_resumes_to_the_same_weights(tiny_causal_lm, tmp_path, caplog):
    settings = dict(max_steps=6, batch_size=2, learning_rate=5e-3, max_length=64, save_steps=2, logging_steps=1,
                    lora={"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0})
    data = tmp_path / "pairs.jsonl"
    write_jsonl(data, DPO_ROWS)
    _killed_at("dpo", tiny_causal_lm, data, tmp_path / "killed", 2, settings)
    cfg = DPOTrainConfig(**{**settings, "lora": LoraSettings(**settings["lora"])})
    with caplog.at_level("INFO", logger="start.train.dpo"):
        resumed = train_dpo(str(tiny_causal_lm), data, cfg, tmp_path / "killed")
    assert any(r.getMessage().endswith("checkpoint-2") and "resuming" in r.getMessage() for r in caplog.records)
    history = json.loads((tmp_path / "killed" / "metrics.json").read_text())["log_history"]
    assert [h["step"] for h in history if "loss" in h] == [1, 2, 3, 4, 5, 6]
    straight = train_dpo(str(tiny_causal_lm), data, cfg, tmp_path / "straight")
    _assert_same(resumed, straight)
