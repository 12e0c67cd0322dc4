"""DPO on a tiny random model: it trains, logs, changes the weights, saves a loadable model, resumes."""

from __future__ import annotations

import json

import pytest

from start.io import write_jsonl
from start.train.common import last_checkpoint
from start.train.dpo import DPOTrainConfig, LoraSettings, train_dpo


@pytest.fixture
def pairs_file(tmp_path):
    rows = [{"prompt": "<user> when was the tower built ? </s> <assistant> ",
             "chosen": "the tower was built in 1889 [ 1 ] .", "rejected": "paris is big .", "signal": "overall"},
            {"prompt": "<user> is paris big ? </s> <assistant> ",
             "chosen": "paris is big [ 2 ] .", "rejected": "it f1 f2 .", "signal": "attributability"}] * 4
    path = tmp_path / "pairs.jsonl"
    write_jsonl(path, rows)
    return path


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


@pytest.mark.parametrize("lora", [True, False])
def test_dpo_trains_changes_weights_and_saves_a_full_model(tiny_causal_lm, pairs_file, tmp_path, lora):
    import torch
    from transformers import AutoModelForCausalLM

    cfg = DPOTrainConfig(max_steps=3, batch_size=2, learning_rate=5e-3, max_length=64, save_steps=100,
                         logging_steps=1, lora=LoraSettings(enabled=lora, r=4, alpha=8))
    model_dir = train_dpo(str(tiny_causal_lm), pairs_file, cfg, tmp_path / "dpo")
    metrics = json.loads((tmp_path / "dpo" / "metrics.json").read_text())
    losses = [h["loss"] for h in metrics["log_history"] if "loss" in h]
    assert len(losses) == 3 and all(x > 0 for x in losses)
    before, after = _weights(tiny_causal_lm), _weights(model_dir)
    changed = [k for k in before if k in after and not torch.equal(before[k].float(), after[k].float())]
    assert changed, "DPO did not change any weight"
    assert not any("lora" in k for k in after)  # merged: a plain model folder
    AutoModelForCausalLM.from_pretrained(model_dir)


def test_dpo_resumes_from_the_last_checkpoint(tiny_causal_lm, pairs_file, tmp_path):
    out = tmp_path / "dpo"
    cfg = DPOTrainConfig(max_steps=2, batch_size=2, max_length=64, save_steps=2, logging_steps=1,
                         lora=LoraSettings(r=4, alpha=8))
    train_dpo(str(tiny_causal_lm), pairs_file, cfg, out)
    ckpt = last_checkpoint(out / "checkpoints")
    assert ckpt.endswith("checkpoint-2")
    # tag the checkpoint's history: a resumed run carries it on, a restarted one would not
    state_file = out / "checkpoints" / "checkpoint-2" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state["log_history"] = [{**h, "from_checkpoint": True} for h in state["log_history"]]
    state_file.write_text(json.dumps(state))
    cfg4 = DPOTrainConfig(**{**cfg.__dict__, "max_steps": 4})
    train_dpo(str(tiny_causal_lm), pairs_file, cfg4, out)
    history = [h for h in json.loads((out / "metrics.json").read_text())["log_history"] if "loss" in h]
    assert [(h["step"], h.get("from_checkpoint", False)) for h in history] == [
        (1, True), (2, True), (3, False), (4, False)]


def test_dpo_config_is_validated():
    with pytest.raises(ValueError, match="beta"):
        DPOTrainConfig(beta=0)
    with pytest.raises(ValueError, match="LoRA"):
        DPOTrainConfig(lora={"r": 0})


def test_first_step_loss_is_ln2_and_the_margin_grows(tiny_causal_lm, pairs_file, tmp_path):
    """At step 1 the policy is the reference, so every pair's implicit reward margin is 0 and the DPO loss
    is -log(sigmoid(0)) = ln 2 exactly; training then separates chosen from rejected."""
    import math

    cfg = DPOTrainConfig(max_steps=8, batch_size=8, learning_rate=1e-2, max_length=64, save_steps=100,
                         logging_steps=1, lora=LoraSettings(enabled=True, r=4, alpha=8, dropout=0.0))
    train_dpo(str(tiny_causal_lm), pairs_file, cfg, tmp_path / "dpo")
    history = [h for h in json.loads((tmp_path / "dpo" / "metrics.json").read_text())["log_history"] if "loss" in h]
    assert [h["step"] for h in history] == list(range(1, 9))
    assert history[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert history[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-4)
    margins = [h["rewards/margins"] for h in history]
    assert margins[-1] > 0.5 and margins[-1] > margins[len(margins) // 2] > margins[0]
    assert history[-1]["loss"] < history[0]["loss"] - 0.2


def _scalars(log_dir) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_dpo_curves_go_to_tensorboard_and_a_new_training_clears_old_ones(tiny_causal_lm, pairs_file, tmp_path):
    log_dir = tmp_path / "tb" / "round_1"
    log_dir.mkdir(parents=True)
    (log_dir / "events.out.tfevents.stale").write_bytes(b"left by an earlier attempt")
    cfg = DPOTrainConfig(max_steps=3, batch_size=2, learning_rate=5e-3, max_length=64, save_steps=100,
                         logging_steps=1, lora=LoraSettings(r=4, alpha=8))
    train_dpo(str(tiny_causal_lm), pairs_file, cfg, tmp_path / "dpo", report_to=("tensorboard",), log_dir=log_dir)
    assert not (log_dir / "events.out.tfevents.stale").exists()
    curves = _scalars(log_dir)
    for tag in ("train/loss", "train/rewards/chosen", "train/rewards/rejected", "train/rewards/margins",
                "train/rewards/accuracies", "train/learning_rate"):
        assert len(curves[tag]) == 3, (tag, sorted(curves))
    history = json.loads((tmp_path / "dpo" / "metrics.json").read_text())["log_history"]
    assert curves["train/loss"] == pytest.approx([h["loss"] for h in history if "loss" in h], rel=1e-5)
    assert not (tmp_path / "dpo" / "tb").exists()  # nowhere else


def test_report_to_none_writes_no_curves(tiny_causal_lm, pairs_file, tmp_path):
    from start.train.launch import LaunchConfig, run_dpo

    cfg = DPOTrainConfig(max_steps=1, batch_size=2, max_length=64, save_steps=100, lora=LoraSettings(r=4, alpha=8))
    run_dpo(str(tiny_causal_lm), pairs_file, cfg, tmp_path / "dpo", launch=LaunchConfig(report_to="none"),
            log_dir=tmp_path / "tb")
    assert not (tmp_path / "tb").exists() and not (tmp_path / "dpo" / "tb").exists()
    assert LaunchConfig().report_to == ("tensorboard",) and LaunchConfig(report_to=["wandb", "none"]).report_to == (
        "wandb",)


def test_nll_weight_adds_the_chosen_answers_likelihood_to_the_loss(tiny_causal_lm, pairs_file, tmp_path):
    """Iterative RPO: loss = DPO + w x the chosen answers' mean NLL. At step 1 the DPO part is ln 2, so the loss
    is ln 2 + w x NLL(chosen) > ln 2; the chosen answers become more likely than under plain DPO."""
    import math

    def run(w: float, name: str) -> list[dict]:
        cfg = DPOTrainConfig(max_steps=6, batch_size=8, learning_rate=1e-2, max_length=64, save_steps=100,
                             logging_steps=1, nll_weight=w, lora=LoraSettings(enabled=True, r=4, alpha=8, dropout=0.0))
        train_dpo(str(tiny_causal_lm), pairs_file, cfg, tmp_path / name)
        return [h for h in json.loads((tmp_path / name / "metrics.json").read_text())["log_history"] if "loss" in h]

    plain, rpo = run(0.0, "dpo"), run(1.0, "rpo")
    assert plain[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert rpo[0]["loss"] > math.log(2) + 1.0  # + the NLL of the random model's chosen answers
    assert rpo[-1]["logps/chosen"] > plain[-1]["logps/chosen"]
    with pytest.raises(ValueError, match="nll_weight"):
        DPOTrainConfig(nll_weight=-1)
