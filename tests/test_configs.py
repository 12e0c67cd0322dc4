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


EXPERIMENTS = [None] + sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def container(*overrides) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg(*overrides), resolve=True)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("debug", [None, "tiny"])
@pytest.mark.parametrize("sampler", [None, "transformers"])
def test_every_config_of_every_experiment_builds_and_holds_the_invariants(experiment, debug, sampler):
    from start.config_check import config_problems, stage_configs

    overrides = [f"{k}={v}" for k, v in (("experiment", experiment), ("debug", debug), ("sampler", sampler)) if v]
    c = container(*overrides)
    built = stage_configs(c)  # every stage's typed settings (raises on a bad value)
    assert config_problems(c) == []
    ctx = c["model"]["max_model_len"]
    assert built["dpo"].max_length >= ctx and built["sft"].max_length >= ctx
    assert built["prompt"].max_model_len == ctx and built["prompt"].max_new_tokens == built["sampling"].max_new_tokens


def test_gpu_7b_warms_up_on_its_training_questions_with_the_sampling_prompt():
    from start.config_check import stage_configs
    from start.warmup.stage import training_source

    c = container("experiment=gpu_7b")
    built = stage_configs(c)
    assert training_source(c, built["warmup"]) == ("data/asqa_train_gtr_top5.json", None)
    assert built["prompt"].n_demos == 1  # the warm-up SFT rows use this same PromptConfig
    assert built["dpo"].lora.enabled and 5e-5 <= built["dpo"].learning_rate <= 5e-4
    assert built["sft"].max_length == built["dpo"].max_length == 4096


def test_warmup_split_defaults_to_the_runs_training_split():
    from start.warmup.config import WarmupConfig
    from start.warmup.stage import training_source

    warm = WarmupConfig.from_dict(container()["warmup"])
    assert warm.split is None
    assert training_source({"data": {"source": "embedded"}}, warm) == ("embedded", "train")  # start.warmup's config
    assert training_source(container("train_split=dev"), warm) == ("embedded", "dev")
    assert training_source(container("warmup.split=test"), WarmupConfig.from_dict(
        container("warmup.split=test")["warmup"])) == ("embedded", "test")


@pytest.mark.parametrize("override, message", [
    ("trainer.learning_rate=5e-6", "full fine-tuning rate"),
    ("sft.max_length=1024", "sft.max_length=1024 < model.max_model_len=2048"),
    ("trainer.max_length=512", "trainer.max_length=512"),
    ("warmup.split=dev", "held-out questions"),
    ("prompt.max_new_tokens=100", "prompt.max_new_tokens=100"),
    ("trainer.lora.enabled=false", "full fine-tuning DPO range"),
])
def test_config_problems_are_found(override, message):
    from start.config_check import config_problems

    problems = config_problems(container(override))
    assert len(problems) == 1 and message in problems[0], problems


def test_a_missing_accelerate_config_file_is_a_problem():
    from start.config_check import config_problems

    with pytest.raises(ValueError, match="accelerate_config"):  # launcher=accelerate without any file
        config_problems(container("trainer.launcher=accelerate"))
    problems = config_problems(container("sft.launcher=accelerate", "sft.accelerate_config=conf/accelerate/no.yaml"))
    assert problems == ["sft.accelerate_config=conf/accelerate/no.yaml does not exist"]
