"""Every experiment / debug config composes, and its values win over the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

CONF = Path(__file__).resolve().parent.parent / "conf"


def cfg(*overrides):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_default_config_is_the_embedded_cpu_run():
    c = cfg()
    assert c.model.name == "smollm2-135m-instruct" and c.data.source == "embedded" and c.rounds == 2
    assert c.scorer.nli.model == "minilm" and c.scorer.eval_nli.model == "default"  # reward / evaluation judge
    assert c.run_dir == "runs/default"
    assert c.prompt.max_new_tokens == c.sampler.max_new_tokens
    assert c.sampler.backend.name == "vllm" and c.data.max_docs == 3 and c.prompt.n_demos == 0


@pytest.mark.parametrize("override, expected", [
    ("debug=tiny", {"experiment_name": "debug", "run_dir": "runs/debug", "eval_questions": 4}),
    ("experiment=cpu_large", {"experiment_name": "cpu_large", "run_dir": "runs/cpu_large"}),
    ("experiment=gpu_7b", {"experiment_name": "gpu_7b", "run_dir": "runs/gpu_7b"}),
])
def test_experiment_and_debug_values_override_the_defaults(override, expected):
    c = cfg(override)
    for key, value in expected.items():
        assert c[key] == value, key


def test_gpu_experiment_uses_vllm_and_the_reference_nli():
    c = cfg("experiment=gpu_7b")
    assert c.sampler.backend.name == "vllm" and c.scorer.nli.model == "google/t5_xxl_true_nli_mixture"
    assert c.sft.use_lora in (True, False) and c.trainer.lora.enabled
    assert c.train_questions is None and c.eval_questions is None and c.warmup.limit is None
    assert c.data.max_docs == 5 and c.prompt.n_demos == 1
