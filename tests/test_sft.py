"""SFT with TRL on the tiny random Llama: loss logged, parameters changed, LoRA merged, resume works."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("trl")
pytest.importorskip("peft")

from start.train.sft import MODEL_INFO, SFTSettings, train_sft  # noqa: E402

ROWS = [{"prompt": "<user> question : the tower was built in ? </s> <assistant> ",
         "completion": "the tower was built in 1889 [ 1 ] ."},
        {"prompt": "<user> question : where is the eiffel tower ? </s> <assistant> ",
         "completion": "the eiffel tower is in paris [ 2 ] ."},
        {"prompt": "<user> document title paris is in france </s> <assistant> ",
         "completion": "paris is in france [ 1 ] ."}] * 2


def settings(**kw) -> SFTSettings:
    base = dict(max_steps=3, learning_rate=1e-2, batch_size=2, grad_accum=1, max_length=64, use_lora=False,
                lr_scheduler="constant", save_steps=2, seed=0, save_dtype="float32")
    return SFTSettings(**{**base, **kw})


def weights(folder) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_full_finetuning_logs_loss_and_changes_parameters(tiny_causal_lm, tmp_path):
    before = weights(tiny_causal_lm)
    out = train_sft(ROWS, str(tiny_causal_lm), settings(), tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["loss_curve"]) == 3 and all(m["loss"] > 0 for m in metrics["loss_curve"])
    after = weights(out)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert "model.layers.0.self_attn.q_proj.weight" in changed
    assert (out / "tokenizer_config.json").is_file() and list(out.glob("*.safetensors"))


def test_lora_is_merged_into_a_full_model_folder(tiny_causal_lm, tmp_path):
    from transformers import AutoModelForCausalLM

    out = train_sft(ROWS, str(tiny_causal_lm), settings(use_lora=True, lora_r=4, lora_alpha=8, lora_dropout=0.0,
                                                       learning_rate=5e-2), tmp_path)
    assert not (out / "adapter_config.json").exists()  # merged, not an adapter
    model = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in k for k in model.state_dict())
    before, after = weights(tiny_causal_lm), weights(out)
    assert not torch.equal(before["model.layers.1.mlp.down_proj.weight"], after["model.layers.1.mlp.down_proj.weight"])
    assert torch.equal(before["model.embed_tokens.weight"], after["model.embed_tokens.weight"])  # not a target


def test_interrupted_run_resumes_from_last_checkpoint(tiny_causal_lm, tmp_path):
    train_sft(ROWS, str(tiny_causal_lm), settings(max_steps=2), tmp_path)  # "killed" after step 2
    assert (tmp_path / "checkpoints" / "checkpoint-2").is_dir()
    out = train_sft(ROWS, str(tiny_causal_lm), settings(max_steps=4), tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["resumed_from"].endswith("checkpoint-2")
    assert metrics["global_step"] == 4
    assert [m["step"] for m in metrics["loss_curve"]] == [1, 2, 3, 4]  # history restored from the checkpoint
    assert json.loads((out / MODEL_INFO).read_text())["global_step"] == 4


def test_finished_run_is_skipped_and_changed_data_restarts(tiny_causal_lm, tmp_path, caplog):
    train_sft(ROWS, str(tiny_causal_lm), settings(max_steps=2), tmp_path)
    stamp = (tmp_path / "model" / MODEL_INFO).stat().st_mtime_ns
    train_sft(ROWS, str(tiny_causal_lm), settings(max_steps=2), tmp_path)
    assert (tmp_path / "model" / MODEL_INFO).stat().st_mtime_ns == stamp
    train_sft(ROWS[:3], str(tiny_causal_lm), settings(max_steps=2), tmp_path)  # other data: no stale resume
    assert json.loads((tmp_path / "metrics.json").read_text())["resumed_from"] is None


@pytest.mark.parametrize("bad", [dict(max_steps=-1, epochs=0), dict(learning_rate=0), dict(batch_size=0),
                                 dict(use_lora=True, lora_r=0), dict(use_lora=True, lora_dropout=1.0),
                                 dict(save_dtype="int8"), dict(save_total_limit=0)])
def test_settings_are_validated(bad):
    with pytest.raises(ValueError):
        settings(**bad)


def test_rows_need_prompt_and_completion(tiny_causal_lm, tmp_path):
    with pytest.raises(ValueError, match="prompt"):
        train_sft([{"text": "x"}], str(tiny_causal_lm), settings(), tmp_path)


def test_sft_loss_curve_goes_to_tensorboard(tiny_causal_lm, tmp_path):
    from test_dpo import _scalars

    train_sft(ROWS, str(tiny_causal_lm), settings(max_steps=2, logging_steps=1), tmp_path / "sft",
              report_to=("tensorboard",), log_dir=tmp_path / "tb" / "round_0")
    curves = _scalars(tmp_path / "tb" / "round_0")
    assert len(curves["train/loss"]) == 2 and len(curves["train/learning_rate"]) == 2
