"""The run's whole configuration: built once into typed sections at the entry and checked before anything is
written; the stages receive their sections, never the raw dict.

``python -m start.run`` (and :func:`start.pipeline.run`) calls :func:`check_run_config`, ``python -m
start.sample`` :func:`check_sample_config`, ``python -m start.warmup_cli`` :func:`check_warmup_config`. Each
takes the resolved Hydra dict and returns the typed configuration, in two steps:

* building it (:func:`build_run_config`, ...): every section becomes its dataclass (their own checks run)
  and the run's selection (``stage``, ``round`` against ``rounds``) is checked -- values only, no file is
  read, so every shipped experiment builds offline;
* checking what it names (:func:`check_inputs`): every model and NLI judge is a readable local folder (or a
  built-in model, or a hub name when the hub may be reached), the question sources load and are not empty,
  questions without documents have a corpus, and the prompts fit the model's context.

Every problem is a :class:`ConfigError` whose message names the setting (``sampler.n: must be >= 1, got
0``); the command lines print it on one line and exit with status 2 (:func:`validated_or_exit`).

:func:`config_problems` lists what is valid per section but wrong for the run as a whole (the pipeline logs
them as warnings):

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

import dataclasses
import os
import sys
import types
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union, get_args, get_origin

if TYPE_CHECKING:
    from start.preferences import PreferenceConfig
    from start.sampling.stage import DataConfig, SampleConfig
    from start.scoring import AttributionScorer, NLIConfig, ScorerConfig
    from start.train.dpo import DPOTrainConfig
    from start.train.launch import LaunchConfig
    from start.train.sft import SFTSettings
    from start.warmup.config import WarmupStageConfig

STAGES = ("warmup", "sample", "score", "pairs", "train", "eval", "report", "verify")
T = TypeVar("T")


class ConfigError(ValueError):
    """A bad setting; ``str()`` is one line that starts with the setting's name."""

    def __init__(self, setting: str, message: str):
        first, _, rest = message.partition(" ")
        if first.startswith(f"{setting}.") and rest:  # "sampler.n must be >= 1": name the field itself
            setting, message = first, rest
        self.setting = setting
        super().__init__(f"{setting}: {message.removeprefix(f'{setting}: ')}")


def validated_or_exit(cfg: dict, check: Callable[[dict], T]) -> T:
    """``check(cfg)`` (the typed configuration); on a :class:`ConfigError` print its one line and exit with
    status 2 (the command-line entry points: nothing is written before this)."""
    try:
        return check(cfg)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


# ------------------------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class JudgeConfig:
    """A scorer: its rules and its NLI judge."""

    rules: ScorerConfig
    nli: NLIConfig

    def rules_fingerprint(self) -> dict:
        """The rules that change scores (where the NLI cache lives does not)."""
        return {k: v for k, v in asdict(self.rules).items() if k not in ("cache", "cache_dir")}

    def scorer(self) -> AttributionScorer:
        from start.scoring import AttributionScorer

        return AttributionScorer(self.nli, self.rules)


@dataclass(frozen=True)
class RejectionSFTConfig:
    """Optional SFT on each question's best sample before DPO (``trainer.rs_sft``)."""

    enabled: bool = False
    min_reward: float = 0.5  # best samples below this reward are left out
    only: bool = False  # no DPO after it (the rejection-sampling ablation)
    settings: SFTSettings | None = None  # when enabled: the ``sft`` section updated by ``rs_sft.settings``


@dataclass(frozen=True)
class TrainConfig:
    """A round's training stage: DPO, optionally after rejection-sampling SFT, and how each runs."""

    dpo: DPOTrainConfig  # its seed is the stage's (train_stage sets it)
    launch: LaunchConfig
    rs_sft: RejectionSFTConfig
    sft_launch: LaunchConfig  # how the rejection-sampling SFT runs (the ``sft`` section's launch keys)


@dataclass(frozen=True)
class EvalConfig:
    """The held-out evaluation: its questions, sampler settings, judges and bootstrap."""

    sample: SampleConfig  # the run's sampler updated by ``eval.sampler``
    data: DataConfig  # ``eval_source`` (else ``data.source``), ``eval_split``, first ``eval_questions``
    judge: JudgeConfig  # the reward judge (``scorer``)
    eval_judge: JudgeConfig | None  # ``scorer.eval_nli`` with the same rules (None: off)
    n_boot: int
    base: bool = True  # also evaluate the base model


@dataclass(frozen=True)
class RunConfig:
    """A whole ``start.run``: the selection and every stage's typed section."""

    experiment_name: str
    run_dir: Path
    seed: int
    rounds: int
    round: int | None  # run only this round (None: all)
    stage: str | None  # run only this stage (None: all)
    model: str  # the base policy (a built-in name, a folder or a hub name)
    train_data: DataConfig  # the training pool: ``train_source`` / ``train_split``; limit = ``train_questions``
    sample: SampleConfig  # the rounds' sampling
    scorer: JudgeConfig  # the reward judge
    preference: PreferenceConfig
    trainer: TrainConfig
    warmup: WarmupStageConfig
    eval: EvalConfig
    raw: dict = field(default_factory=dict, repr=False, compare=False)  # the resolved dict (saved as config.json)


@dataclass(frozen=True)
class SampleJob:
    """What ``python -m start.sample`` runs."""

    sample: SampleConfig
    data: DataConfig
    model: str
    seed: int
    out_dir: Path


# ------------------------------------------------------------------------------------------- building


def _field_types(cls) -> dict[str, Any]:
    """A dataclass's field types, resolved from their annotations. A type named only for type checkers (imported
    under ``TYPE_CHECKING``) stays unresolved (None): such a field is a typed section built by its own code."""
    out = {}
    for f in dataclasses.fields(cls):
        tp = f.type
        if isinstance(tp, str):
            owner = next(k for k in cls.__mro__ if f.name in getattr(k, "__annotations__", {}))
            try:
                tp = eval(tp, vars(sys.modules[owner.__module__]))  # an annotation of the project's own code
            except NameError:  # imported for type checkers only: checked where that section is built
                tp = None
        out[f.name] = tp
    return out


_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a mapping",
          list: "a list", tuple: "a list", type(None): "null", Path: "a path"}


def _expected(tp) -> str:
    """What a type asks for, in words (``int | None`` -> "an integer or null")."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(dict.fromkeys(_expected(a) for a in get_args(tp)))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return _NAMES.get(origin or tp, getattr(tp, "__name__", str(tp)))


def _matches(value: Any, tp) -> bool:
    """Whether a configuration value fits a field type (an int fits a float; the elements of a list are left to
    the section's own checks, which convert them)."""
    if tp is None or tp is Any:
        return True
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return any(_matches(value, a) for a in get_args(tp))
    if origin is Literal:
        return value in get_args(tp)
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp in (int, float):
        return not isinstance(value, bool) and isinstance(value, int if tp is int else (int, float))
    if tp is Path:
        return isinstance(value, str | os.PathLike)
    if origin in (list, tuple) or tp in (list, tuple):
        return isinstance(value, list | tuple)
    if dataclasses.is_dataclass(tp):
        return isinstance(value, dict | tp)
    return isinstance(value, origin or tp) if isinstance(origin or tp, type) else True


def check_types(setting: str, cls, values: dict) -> None:
    """Every value of ``values`` against the type of the field of ``cls`` it sets (nested sections too): the
    first value of the wrong type is a :class:`ConfigError` naming its setting and the type expected
    (``sampler.n: expected an integer, got 'abc'``). Unknown keys are left to the dataclass to report."""
    hints = _field_types(cls)
    for name, value in values.items():
        if name not in hints:
            continue
        tp = hints[name]
        if not _matches(value, tp):
            raise ConfigError(f"{setting}.{name}", f"expected {_expected(tp)}, got {value!r}")
        if isinstance(value, dict):
            inner = [a for a in (get_args(tp) or (tp,)) if dataclasses.is_dataclass(a)]
            if inner:
                check_types(f"{setting}.{name}", inner[0], value)


def _typed(setting: str, cls, values: Any, **extra):
    """``cls(**values, **extra)`` with any failure reported against ``setting`` (a value of the wrong type
    against the setting itself: :func:`check_types`)."""
    if not isinstance(values, dict):
        raise ConfigError(setting, f"expected a mapping, got {type(values).__name__}")
    check_types(setting, cls, values)
    try:
        return cls(**{**values, **extra})
    except TypeError as e:  # an unknown or missing field
        raise ConfigError(setting, str(e).split("__init__() ")[-1]) from None
    except ValueError as e:
        raise ConfigError(setting, str(e)) from None


def _positive_or_null(cfg: dict, key: str) -> None:
    value = cfg.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(key, f"must be a whole number >= 1 or null, got {value!r}")


def _split_launch(setting: str, section: Any) -> tuple[dict, LaunchConfig]:
    """A trainer section without its launch keys, and those keys typed (start.train.launch)."""
    from start.train.launch import LAUNCH_KEYS, LaunchConfig, split_launch

    if not isinstance(section, dict):
        raise ConfigError(setting, f"expected a mapping, got {type(section).__name__}")
    check_types(setting, LaunchConfig, {k: v for k, v in section.items() if k in LAUNCH_KEYS and v is not None})
    try:
        return split_launch(section)
    except (TypeError, ValueError) as e:
        raise ConfigError(setting, str(e)) from None


def _sample_config(raw: dict, sampler: dict, setting: str = "sampler") -> SampleConfig:
    """The engine (``sampler.backend`` with the model's dtype and context), decoding settings, prompt."""
    from start.sampling.backends import BackendConfig, SamplingConfig
    from start.sampling.prompt import PromptConfig
    from start.sampling.stage import SampleConfig

    model = raw.get("model") or {}
    if not isinstance(model.get("max_model_len"), int) or model["max_model_len"] < 16:
        raise ConfigError("model.max_model_len", f"must be a whole number >= 16, got {model.get('max_model_len')!r}")
    smp = dict(sampler)
    backend = _typed(f"{setting}.backend", BackendConfig, smp.pop("backend", {}),
                     dtype=model.get("dtype", "auto"), max_model_len=model["max_model_len"])
    chunk = smp.pop("chunk_size", 8)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ConfigError(f"{setting}.chunk_size", f"must be a whole number >= 1, got {chunk!r}")
    orders = smp.pop("doc_orders", 1)
    if isinstance(orders, bool) or not isinstance(orders, int) or orders < 1:
        raise ConfigError(f"{setting}.doc_orders", f"must be a whole number >= 1, got {orders!r}")
    params = _typed(setting, SamplingConfig, smp)
    # one citation prompt for the warm-up's SFT rows, sampling and evaluation: the policy is trained on the
    # prompts it is later sampled with
    prompt = _typed("prompt", PromptConfig, {"max_model_len": model["max_model_len"], **(raw.get("prompt") or {})})
    return SampleConfig(backend, params, prompt, chunk, orders)


def _data_config(data: dict, **choice) -> DataConfig:
    """The ``data`` section, with ``choice`` (source, split, limit) replacing its values."""
    from start.data import RetrievalConfig
    from start.sampling.stage import DataConfig

    data = dict(data)
    _positive_or_null(data, "max_docs")
    retrieval = _typed("data.retrieval", RetrievalConfig, data.pop("retrieval", None) or {})
    return _typed("data", DataConfig, {**data, **choice}, retrieval=retrieval)


def _run_questions(raw: dict, which: str) -> DataConfig:
    """The training or held-out questions: ``{which}_source`` (else ``data.source``), ``{which}_split``, the
    first ``{which}_questions``."""
    data = raw.get("data") or {}
    own = {}
    if which == "eval" and "eval_max_docs" in raw:  # an evaluation file's own number of documents per question
        _positive_or_null(raw, "eval_max_docs")
        own["max_docs"] = raw["eval_max_docs"]
    return _data_config(data, source=raw.get(f"{which}_source") or data.get("source"),
                        split=raw.get(f"{which}_split"), limit=raw.get(f"{which}_questions"), **own)


def _warmup_config(raw: dict, sample: SampleConfig) -> WarmupStageConfig:
    from start.scoring import NLIConfig
    from start.train.sft import SFTSettings
    from start.warmup.config import WarmupConfig, WarmupStageConfig

    check_types("warmup", WarmupConfig, raw.get("warmup") or {})
    try:
        warm = WarmupConfig.from_dict(raw.get("warmup") or {})
    except TypeError as e:
        raise ConfigError("warmup", str(e).split("__init__() ")[-1]) from None
    except ValueError as e:
        raise ConfigError("warmup", str(e)) from None
    sft, launch = _split_launch("sft", raw.get("sft") or {})
    # never the held-out questions: the run's training source, and its training split unless warmup.split
    # says otherwise ("train" for python -m start.warmup_cli, whose config has no train_split)
    source = raw.get("train_source") or (raw.get("data") or {}).get("source")
    split = warm.split if warm.split is not None else raw.get("train_split", "train")
    return WarmupStageConfig(settings=warm, nli=_typed("warmup.nli", NLIConfig, warm.nli),
                             sft=_typed("sft", SFTSettings, sft), launch=launch, prompt=sample.prompt,
                             backend=sample.backend, model=(raw.get("model") or {}).get("name"), source=source,
                             split=split, seed=int(raw.get("seed", 0)))


def _trainer_config(raw: dict) -> TrainConfig:
    from start.train.dpo import DPOTrainConfig
    from start.train.sft import SFTSettings

    settings, launch = _split_launch("trainer", raw.get("trainer") or {})
    rs = dict(settings.pop("rs_sft", None) or {})
    dpo = _typed("trainer", DPOTrainConfig, settings)
    sft, sft_launch = _split_launch("sft", raw.get("sft") or {})
    overrides = rs.pop("settings", None) or {}
    rs_settings = _typed("trainer.rs_sft.settings", SFTSettings, {**sft, **overrides}) if rs.get("enabled") else None
    return TrainConfig(dpo, launch, _typed("trainer.rs_sft", RejectionSFTConfig, rs, settings=rs_settings), sft_launch)


def build_run_config(raw: dict) -> RunConfig:
    """A whole ``start.run`` configuration (a resolved dict) as typed sections; :class:`ConfigError` on the
    first bad value. Reads no file (:func:`check_inputs` checks what the configuration names)."""
    from start.preferences import PreferenceConfig
    from start.scoring import NLIConfig, ScorerConfig

    for key in ("rounds", "seed"):
        if isinstance(raw.get(key), bool) or not isinstance(raw.get(key), int) or raw[key] < 0:
            raise ConfigError(key, f"must be a whole number >= 0, got {raw.get(key)!r}")
    stage, rnd = raw.get("stage"), raw.get("round")
    if stage is not None and stage not in STAGES:
        raise ConfigError("stage", f"must be one of {', '.join(STAGES)} (or null), got {stage!r}")
    if rnd is not None and (isinstance(rnd, bool) or not isinstance(rnd, int) or not 0 <= rnd <= raw["rounds"]):
        raise ConfigError("round", f"must be in 0..{raw['rounds']} (rounds={raw['rounds']}) or null, got {rnd!r}")
    if not raw.get("run_dir"):
        raise ConfigError("run_dir", "is empty")
    for key in ("train_questions", "eval_questions"):
        _positive_or_null(raw, key)

    sc = raw.get("scorer") or {}
    rules = _typed("scorer.rules", ScorerConfig, sc.get("rules") or {})
    judge = JudgeConfig(rules, _typed("scorer.nli", NLIConfig, sc.get("nli") or {}))
    eval_nli = sc.get("eval_nli")
    eval_judge = JudgeConfig(rules, _typed("scorer.eval_nli", NLIConfig, eval_nli)) if eval_nli else None

    pref = raw.get("preference") or {}
    if pref.get("max_pairs_per_question") == 0:
        raise ConfigError("preference.max_pairs_per_question", "is 0: no preference pair, nothing to train on")
    preference = _typed("preference", PreferenceConfig, pref)
    trainer = _trainer_config(raw)

    ev = raw.get("eval") or {}
    n_boot = ev.get("n_boot")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ConfigError("eval.n_boot", f"must be a whole number >= 1, got {n_boot!r}")

    sampler = raw.get("sampler") or {}
    sample = _sample_config(raw, sampler)
    train_data = _run_questions(raw, "train")
    evaluation = EvalConfig(sample=_sample_config(raw, {**sampler, **(ev.get("sampler") or {})}, "eval.sampler"),
                            data=_run_questions(raw, "eval"), judge=judge, eval_judge=eval_judge, n_boot=n_boot,
                            base=bool(ev.get("base", True)))
    return RunConfig(experiment_name=str(raw.get("experiment_name", "run")), run_dir=Path(raw["run_dir"]),
                     seed=raw["seed"], rounds=raw["rounds"], round=rnd, stage=stage,
                     model=(raw.get("model") or {}).get("name"), train_data=train_data, sample=sample, scorer=judge,
                     preference=preference, trainer=trainer, warmup=_warmup_config(raw, sample), eval=evaluation,
                     raw=raw)


def build_sample_config(raw: dict) -> SampleJob:
    """What ``python -m start.sample`` needs: model, data, prompt, sampler, seed, out_dir."""
    return SampleJob(sample=_sample_config(raw, raw.get("sampler") or {}), data=_data_config(raw.get("data") or {}),
                     model=(raw.get("model") or {}).get("name"), seed=int(raw.get("seed", 0)),
                     out_dir=Path(str(raw.get("out_dir"))))


def build_warmup_config(raw: dict) -> WarmupStageConfig:
    """The warm-up's section from ``python -m start.warmup_cli``'s config (conf/sample.yaml + warmup + sft)."""
    return _warmup_config(raw, _sample_config(raw, raw.get("sampler") or {}))


# ------------------------------------------------------------------------------------------- inputs


def check_model_spec(setting: str, spec: Any, *, builtin: tuple[str, ...] = ()) -> None:
    """A model is a built-in name, a readable local folder with a ``config.json``, or a hub name that is
    cached or may be downloaded (``HF_HUB_OFFLINE`` unset)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(setting, f"expected a model folder or name, got {spec!r}")
    if spec in builtin:
        return
    path = Path(spec).expanduser()
    if path.is_dir():
        if not os.access(path, os.R_OK | os.X_OK):
            raise ConfigError(setting, f"{spec} is not readable")
        if not (path / "config.json").is_file():
            raise ConfigError(setting, f"{spec} is a folder without config.json, not a model")
        return
    if path.exists():
        raise ConfigError(setting, f"{spec} is a file, not a model folder")
    if spec.startswith(("/", "./", "../", "~")) or spec.count("/") > 1:  # a path, not "org/name"
        raise ConfigError(setting, f"no such model folder: {spec}")
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(spec, "config.json")
        except ValueError:  # not even a valid hub name
            cached = None
        if not isinstance(cached, str):
            raise ConfigError(setting, f"{spec!r} is no local folder and not in the Hugging Face cache, and "
                              "HF_HUB_OFFLINE=1 forbids downloading it")


def check_nli_spec(setting: str, spec: Any) -> None:
    """An NLI judge: "default" or a bundled judge's name (its folder must exist), a folder or a hub name."""
    from start.scoring.nli import BUNDLED, resolve_model

    if spec == "default" or spec in BUNDLED:
        folder = Path(resolve_model(spec))
        if not folder.is_dir():
            raise ConfigError(setting, f"the bundled NLI judge {spec!r} is missing at {folder} (make nli-model)")
        return
    check_model_spec(setting, spec)


def _check_policy(spec: Any) -> None:
    from start.models import BUILTIN_MODELS

    check_model_spec("model.name", spec, builtin=tuple(BUILTIN_MODELS))


def _check_questions(setting: str, data: DataConfig, *, need_docs: bool = True) -> list:
    """Load the questions (cheap: no retrieval) and check the file, its size and the documents' source."""
    from start.data import load_source
    from start.io import InputError

    if not isinstance(data.source, str) or not data.source:
        raise ConfigError(setting, f"expected a data source (embedded, a file or a data set), got {data.source!r}")
    try:
        records = load_source(data.source, data.split, data.limit)
    except (InputError, ValueError, OSError) as e:
        raise ConfigError(setting, str(e)) from None
    if not records:
        raise ConfigError(setting, f"{data.source} has no questions"
                          + (f" in split {data.split!r}" if data.split else ""))
    if need_docs and any(not r.docs for r in records):
        if data.corpus is None:
            raise ConfigError("data.corpus", f"{sum(not r.docs for r in records)} question(s) of {data.source} have "
                              "no documents and data.corpus is null; give a corpus to retrieve from")
        if data.corpus != "embedded" and not Path(data.corpus).is_file():
            raise ConfigError("data.corpus", f"no such file: {data.corpus}")
    return records


def _check_prompt_fits(model: str, sample: SampleConfig, questions: list) -> None:
    """Every question's prompt, with its documents emptied, must fit ``max_model_len - max_new_tokens``
    tokens (documents are shortened to fit; the rest cannot be). Needs the tokenizer: only checked when the
    model is a local folder (or an already converted built-in model)."""
    from start.io import cache_root
    from start.models import BUILTIN_MODELS, CONVERTED_MARKER
    from start.sampling.prompt import build_prompt
    from start.text import Document

    folder = cache_root() / "models" / model if model in BUILTIN_MODELS else Path(model)
    converted = model not in BUILTIN_MODELS or (folder / CONVERTED_MARKER).is_file()
    if not (folder / "config.json").is_file() or not converted:
        return
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    longest = max(questions, key=lambda r: len(r.question))
    empty = [Document(d.title, "", d.distractor) for d in longest.docs]
    try:
        build_prompt(sample.prompt, longest.question, empty, tokenizer)
    except ValueError as e:
        raise ConfigError("model.max_model_len", f"question {longest.id}: {e}") from None


def _check_warmup_inputs(warm: WarmupStageConfig) -> None:
    if warm.enabled:
        _check_policy(warm.model)
        check_nli_spec("warmup.nli.model", warm.nli.model)
        _check_questions("warmup.split", _data_config({}, source=warm.source, split=warm.split,
                                                      limit=warm.settings.limit), need_docs=False)


def check_loggers(setting: str, launch: LaunchConfig) -> None:
    """Every logger ``report_to`` names (that the project knows) is installed."""
    import importlib.util

    from start.train.launch import LOGGER_PACKAGES

    for name in launch.report_to:
        packages = LOGGER_PACKAGES.get(name, ())
        if packages and not any(importlib.util.find_spec(p) for p in packages):
            raise ConfigError(f"{setting}.report_to", f"{name} is not installed (pip install {packages[0]}"
                              + (", or make setup: the 'train' extra" if name == "tensorboard" else "")
                              + f"); or set {setting}.report_to=none")


def check_inputs(run: RunConfig) -> None:
    """What the run's configuration names: models, NLI judges, question sources and prompt lengths, loggers."""
    check_nli_spec("scorer.nli.model", run.scorer.nli.model)
    if run.eval.eval_judge is not None:
        check_nli_spec("scorer.eval_nli.model", run.eval.eval_judge.nli.model)
    _check_policy(run.model)
    questions = _check_questions("train_source" if run.raw.get("train_source") else "data.source", run.train_data)
    _check_prompt_fits(run.model, run.sample, questions)
    _check_questions("eval_source" if run.raw.get("eval_source") else "data.source", run.eval.data)
    _check_warmup_inputs(run.warmup)
    check_loggers("trainer", run.trainer.launch)
    if run.warmup.enabled or run.trainer.rs_sft.enabled:
        check_loggers("sft", run.warmup.launch)


def check_run_config(raw: dict) -> RunConfig:
    """:func:`build_run_config` and :func:`check_inputs`: the entry's whole check, before anything is written."""
    run = build_run_config(raw)
    check_inputs(run)
    return run


def check_sample_config(raw: dict) -> SampleJob:
    job = build_sample_config(raw)
    _check_policy(job.model)
    _check_prompt_fits(job.model, job.sample, _check_questions("data.source", job.data))
    return job


def check_warmup_config(raw: dict) -> WarmupStageConfig:
    warm = build_warmup_config(raw)
    _check_warmup_inputs(warm)
    return warm


# ------------------------------------------------------------------------------------------- warnings

# (method, LoRA?) -> the learning rates such runs use in practice (inclusive)
LR_RANGES = {
    ("dpo", True): (5e-5, 5e-4),
    ("dpo", False): (1e-7, 1e-5),
    ("sft", True): (5e-5, 1e-3),
    ("sft", False): (1e-6, 5e-5),
}


def _lr_problem(name: str, method: str, lora: bool, lr: float) -> str | None:
    low, high = LR_RANGES[(method, lora)]
    if low <= lr <= high:
        return None
    kind = "LoRA" if lora else "full fine-tuning"
    return (f"{name}={lr:g} is outside the usual {kind} {method.upper()} range {low:g}..{high:g}"
            + (" (a full fine-tuning rate: the adapter barely moves)" if lora and lr < low else ""))


def config_problems(run: RunConfig) -> list[str]:
    """What is wrong with the run's configuration as a whole (empty: nothing); see the module docstring."""
    dpo, sft, rs, prompt = run.trainer.dpo, run.warmup.sft, run.trainer.rs_sft.settings, run.sample.prompt
    ctx = run.sample.backend.max_model_len
    problems = []
    lengths = [("trainer.max_length", dpo.max_length), ("sft.max_length", sft.max_length)]
    rates = [_lr_problem("trainer.learning_rate", "dpo", dpo.lora.enabled, dpo.learning_rate),
             _lr_problem("sft.learning_rate", "sft", sft.use_lora, sft.learning_rate)]
    if rs is not None:
        lengths.append(("trainer.rs_sft.settings.max_length", rs.max_length))
        rates.append(_lr_problem("trainer.rs_sft.settings.learning_rate", "sft", rs.use_lora, rs.learning_rate))
    for name, value in lengths:
        if value < ctx:
            problems.append(f"{name}={value} < model.max_model_len={ctx}: a prompt of up to "
                            f"{ctx - prompt.max_new_tokens} tokens plus its answer can exceed it, and TRL "
                            "cuts such rows from the end (the answer and its EOS)")
    problems += [p for p in rates if p]
    if prompt.max_new_tokens != run.sample.params.max_new_tokens:
        problems.append(f"prompt.max_new_tokens={prompt.max_new_tokens} differs from sampler.max_new_tokens="
                        f"{run.sample.params.max_new_tokens}: prompts are sized for another generation budget")
    held_out = (run.eval.data.source, run.eval.data.split)
    if run.warmup.enabled and (run.warmup.source, run.warmup.split) == held_out:
        problems.append(f"the warm-up writes its data for the held-out questions ({held_out[0]}, split "
                        f"{held_out[1]}); set train_source / train_split or warmup.split")
    for section, launch in (("trainer", run.trainer.launch), ("sft", run.warmup.launch)):
        if launch.launcher == "accelerate" and not Path(str(launch.accelerate_config)).is_file():
            problems.append(f"{section}.accelerate_config={launch.accelerate_config} does not exist")
    return problems
