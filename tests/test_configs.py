"""Every experiment / debug config composes, and its values win over the defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

CONF = Path(__file__).resolve().parent.parent / "conf"


def cfg(*overrides):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_default_config_is_the_embedded_cpu_run():
    c = cfg()
    assert c.model.name == "smollm2-135m-instruct" and c.data.source == "embedded" and c.rounds == 1
    assert c.scorer.nli.model == "minilm-long" and c.scorer.eval_nli.model == "default"  # reward / evaluation judge
    assert c.run_dir == "runs/default"
    assert c.prompt.max_new_tokens == c.sampler.max_new_tokens
    assert c.sampler.backend.name == "vllm" and c.data.max_docs == 3 and c.prompt.n_demos == 0
    # position-proof by default: samples under 3 document orders, each pair under 3 orders, warm-up rows too
    assert c.sampler.doc_orders == 3 and c.preference.permutations == 3 and c.warmup.doc_orders == 3
    assert c.trainer.nll_weight == 1.0 and c.sampler.n == 8


@pytest.mark.parametrize("override, expected", [
    ("debug=tiny", {"experiment_name": "debug", "run_dir": "runs/debug", "eval_questions": 4}),
    ("experiment=cpu_large", {"experiment_name": "cpu_large", "run_dir": "runs/cpu_large"}),
    ("experiment=demo", {"experiment_name": "demo", "train_questions": 24, "eval_questions": 80}),
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


def run_config(*overrides):
    from start.config import build_run_config

    return build_run_config(container(*overrides))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("debug", [None, "tiny"])
@pytest.mark.parametrize("sampler", [None, "transformers"])
def test_every_config_of_every_experiment_builds_and_holds_the_invariants(experiment, debug, sampler):
    from start.config import config_problems

    overrides = [f"{k}={v}" for k, v in (("experiment", experiment), ("debug", debug), ("sampler", sampler)) if v]
    run = run_config(*overrides)  # every stage's typed section (raises on a bad value; reads no file)
    assert config_problems(run) == []
    ctx = container(*overrides)["model"]["max_model_len"]
    assert run.trainer.dpo.max_length >= ctx and run.warmup.sft.max_length >= ctx
    prompt = run.sample.prompt
    assert prompt.max_model_len == ctx and prompt.max_new_tokens == run.sample.params.max_new_tokens


@pytest.mark.parametrize("override", [None, "debug=tiny", "experiment=cpu_large", "experiment=gpu_7b"])
def test_the_run_config_is_built_once_into_typed_sections(override):
    from start.config import EvalConfig, JudgeConfig, RunConfig, TrainConfig
    from start.preferences import PreferenceConfig
    from start.sampling.backends import BackendConfig, SamplingConfig
    from start.sampling.prompt import PromptConfig
    from start.sampling.stage import DataConfig, SampleConfig
    from start.scoring import NLIConfig, ScorerConfig
    from start.train.dpo import DPOTrainConfig
    from start.train.sft import SFTSettings
    from start.warmup.config import WarmupConfig, WarmupStageConfig

    raw = container(*[override] if override else [])
    run = run_config(*[override] if override else [])
    assert isinstance(run, RunConfig) and run.raw == raw
    assert isinstance(run.sample, SampleConfig) and isinstance(run.sample.backend, BackendConfig)
    assert isinstance(run.sample.params, SamplingConfig) and isinstance(run.sample.prompt, PromptConfig)
    assert isinstance(run.train_data, DataConfig) and isinstance(run.eval.data, DataConfig)
    assert isinstance(run.scorer, JudgeConfig) and isinstance(run.scorer.rules, ScorerConfig)
    assert isinstance(run.scorer.nli, NLIConfig) and isinstance(run.preference, PreferenceConfig)
    assert isinstance(run.trainer, TrainConfig) and isinstance(run.trainer.dpo, DPOTrainConfig)
    assert isinstance(run.warmup, WarmupStageConfig) and isinstance(run.warmup.settings, WarmupConfig)
    assert isinstance(run.warmup.sft, SFTSettings) and isinstance(run.eval, EvalConfig)
    # the values are the config's, with the run's choices of questions applied
    assert (run.seed, run.rounds, run.round, run.stage) == (raw["seed"], raw["rounds"], None, None)
    assert str(run.run_dir) == raw["run_dir"] and run.model == raw["model"]["name"]
    assert run.sample.params.n == raw["sampler"]["n"] and run.eval.n_boot == raw["eval"]["n_boot"]
    assert run.eval.sample.params.n == raw["eval"]["sampler"]["n"]  # the evaluation's own sampler settings
    assert run.eval.sample.params.max_new_tokens == raw["sampler"]["max_new_tokens"]  # ... over the run's
    assert (run.train_data.source, run.train_data.split, run.train_data.limit) == (
        raw["train_source"] or raw["data"]["source"], raw["train_split"], raw["train_questions"])
    assert (run.eval.data.source, run.eval.data.split, run.eval.data.limit) == (
        raw["eval_source"] or raw["data"]["source"], raw["eval_split"], raw["eval_questions"])
    assert run.train_data.max_docs == run.eval.data.max_docs == raw["data"]["max_docs"]
    assert run.scorer.nli.model == raw["scorer"]["nli"]["model"]
    assert run.eval.eval_judge.nli.model == raw["scorer"]["eval_nli"]["model"]
    assert run.trainer.dpo.learning_rate == raw["trainer"]["learning_rate"] and not run.trainer.rs_sft.enabled
    assert run.warmup.prompt is run.sample.prompt and run.warmup.settings.limit == raw["warmup"]["limit"]
    with pytest.raises(AttributeError):  # frozen: a stage cannot change the run's settings
        run.seed = 1


def test_an_alce_evaluation_file_keeps_its_own_number_of_documents(tmp_path):
    from start.config import ConfigError
    from start.sampling.stage import load_questions

    rows = [{"question": f"Who built tower {i}?", "qa_pairs": [{"short_answers": [f"Builder {i}"]}],
             "answer": f"Builder {i} built it.",
             "docs": [{"title": f"Doc {i}.{k}", "text": f"Passage {k} about tower {i}."} for k in range(5)]}
            for i in range(3)]
    path = tmp_path / "asqa_eval_gtr_top5.json"
    path.write_text(json.dumps(rows))
    run = run_config(f"eval_source={path}", "eval_split=null", "eval_questions=null", "eval_max_docs=5",
                     "data.max_docs=3", "data.shuffle_docs=false")
    assert run.eval.data.max_docs == 5 and run.train_data.max_docs == 3
    questions = load_questions(run.eval.data)
    assert [len(q.docs) for q in questions] == [5, 5, 5]
    assert [d.title for d in questions[0].docs] == [f"Doc 0.{k}" for k in range(5)]  # the retriever's order
    four = load_questions(run_config(f"eval_source={path}", "eval_split=null", "eval_max_docs=4",
                                     "data.shuffle_docs=false").eval.data)
    assert [d.title for d in four[1].docs] == [f"Doc 1.{k}" for k in range(4)]  # the top 4, in order
    assert run_config().eval.data.max_docs == run_config().train_data.max_docs  # by default: data.max_docs
    with pytest.raises(ConfigError, match="eval_max_docs: must be a whole number >= 1 or null, got 0"):
        run_config("eval_max_docs=0")


def test_a_round_slice_is_a_typed_copy():
    run = run_config()
    picked = run.train_data.only(["b", "a"])
    assert picked.ids == ("b", "a") and picked.limit is None and run.train_data.ids is None
    assert picked.source == run.train_data.source and picked.retrieval == run.train_data.retrieval


def test_rejection_sampling_sft_gets_the_sft_settings_updated_by_its_own():
    run = run_config("trainer.rs_sft.enabled=true", "+trainer.rs_sft.settings.epochs=1", "sft.learning_rate=3e-4")
    rs = run.trainer.rs_sft
    assert rs.enabled and rs.settings.epochs == 1 and rs.settings.learning_rate == 3e-4
    assert run_config().trainer.rs_sft.settings is None  # off: no SFT settings in the training fingerprint


def test_gpu_7b_warms_up_on_its_training_questions_with_the_sampling_prompt():
    run = run_config("experiment=gpu_7b")
    assert (run.warmup.source, run.warmup.split) == ("data/asqa_train_gtr_top5.json", None)
    assert run.warmup.prompt.n_demos == 1  # the warm-up SFT rows use this same PromptConfig
    assert run.trainer.dpo.lora.enabled and 5e-5 <= run.trainer.dpo.learning_rate <= 5e-4
    assert run.warmup.sft.max_length == run.trainer.dpo.max_length == 4096


def test_warmup_split_defaults_to_the_runs_training_split():
    from start.config import build_warmup_config

    warm = run_config().warmup
    assert warm.settings.split is None and (warm.source, warm.split) == ("embedded", "train")
    assert (run_config("train_split=dev").warmup.split) == "dev"
    assert run_config("warmup.split=test").warmup.split == "test"
    from start.warmup_cli import CONF_DIR

    assert CONF_DIR == CONF  # python -m start.warmup_cli composes the project's configs
    with initialize_config_dir(str(CONF), version_base="1.3"):  # python -m start.warmup_cli's config: no train_split
        from omegaconf import OmegaConf

        sample = OmegaConf.to_container(compose("sample", overrides=["+warmup=default", "+trainer@sft=sft",
                                                                     "out_dir=x"]), resolve=True)
    assert (build_warmup_config(sample).source, build_warmup_config(sample).split) == ("embedded", "train")


@pytest.mark.parametrize("override, message", [
    ("trainer.learning_rate=5e-6", "full fine-tuning rate"),
    ("sft.max_length=1024", "sft.max_length=1024 < model.max_model_len=2048"),
    ("trainer.max_length=512", "trainer.max_length=512"),
    ("warmup.split=dev", "held-out questions"),
    ("prompt.max_new_tokens=100", "prompt.max_new_tokens=100"),
    ("trainer.lora.enabled=false", "full fine-tuning DPO range"),
])
def test_config_problems_are_found(override, message):
    from start.config import config_problems

    problems = config_problems(run_config(override))
    assert len(problems) == 1 and message in problems[0], problems


def test_a_missing_accelerate_config_file_is_a_problem():
    from start.config import ConfigError, config_problems

    with pytest.raises(ConfigError, match="accelerate_config"):  # launcher=accelerate without any file
        run_config("trainer.launcher=accelerate")
    problems = config_problems(run_config("sft.launcher=accelerate", "sft.accelerate_config=conf/accelerate/no.yaml"))
    assert problems == ["sft.accelerate_config=conf/accelerate/no.yaml does not exist"]


def test_a_logger_that_is_not_installed_names_the_setting(monkeypatch):
    import importlib.util

    from start.config import ConfigError, check_loggers
    from start.train.launch import LaunchConfig

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if "ensorboard" in name else real(name, *a))
    with pytest.raises(ConfigError, match=r"^trainer\.report_to: tensorboard is not installed \(pip install "
                                          r"tensorboard, or make setup: the 'train' extra\); or set "
                                          r"trainer\.report_to=none$"):
        check_loggers("trainer", LaunchConfig())
    check_loggers("trainer", LaunchConfig(report_to="none"))
