"""The run's whole configuration, built into typed sections and checked once, before anything is written.

``python -m start.run`` (and :func:`start.pipeline.run`), ``python -m start.sample`` and
``python -m start.warmup`` call :func:`check_run_config` / :func:`check_sample_config` first. Every
problem is a :class:`ConfigError` whose message names the setting (``sampler.n: must be >= 1, got 0``);
the CLIs print it on one line and exit with status 2, having written nothing.

What is checked: every typed section (scorer rules and NLI, preference, DPO trainer and its
rejection-sampling SFT, SFT, sampler and backend, evaluation sampler, prompt, retrieval, warm-up), the
run selection (``stage``, ``round`` against ``rounds``), that every model and NLI model is a readable local
folder (or a built-in model, or a hub name when the hub may be reached), that the question sources load
and are not empty, that questions without documents have a corpus, and that the prompts fit the model's
context. The stages still receive the plain dict and build their own dataclasses from it (the same
constructors, so they cannot disagree with this check).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STAGES = ("warmup", "sample", "score", "pairs", "train", "eval", "report")


class ConfigError(ValueError):
    """A bad setting; ``str()`` is one line that starts with the setting's name."""

    def __init__(self, setting: str, message: str):
        first, _, rest = message.partition(" ")
        if first.startswith(f"{setting}.") and rest:  # "sampler.n must be >= 1": name the field itself
            setting, message = first, rest
        self.setting = setting
        super().__init__(f"{setting}: {message.removeprefix(f'{setting}: ')}")


def validated_or_exit(cfg: dict, check) -> dict:
    """``cfg`` after ``check(cfg)``; on a :class:`ConfigError` print its one line and exit with status 2 (the
    command-line entry points: nothing is written before this)."""
    import sys

    try:
        check(cfg)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    return cfg


def _typed(setting: str, cls, values: Any, **extra):
    """``cls(**values, **extra)`` with any failure reported against ``setting``."""
    if not isinstance(values, dict):
        raise ConfigError(setting, f"expected a mapping, got {type(values).__name__}")
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


@dataclass
class SampleSections:
    """The typed sections sampling needs."""

    backend: Any
    sampler: Any
    prompt: Any
    chunk_size: int


def _sampling_sections(cfg: dict, sampler: dict, setting: str = "sampler") -> SampleSections:
    from start.sampling.backends import BackendConfig, SamplingConfig
    from start.sampling.prompt import PromptConfig

    model = cfg.get("model") or {}
    if not isinstance(model.get("max_model_len"), int) or model["max_model_len"] < 16:
        raise ConfigError("model.max_model_len", f"must be a whole number >= 16, got {model.get('max_model_len')!r}")
    smp = dict(sampler)
    backend = _typed(f"{setting}.backend", BackendConfig, smp.pop("backend", {}),
                     dtype=model.get("dtype", "auto"), max_model_len=model["max_model_len"])
    chunk = smp.pop("chunk_size", 8)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ConfigError(f"{setting}.chunk_size", f"must be a whole number >= 1, got {chunk!r}")
    params = _typed(setting, SamplingConfig, smp)
    prompt = _typed("prompt", PromptConfig, cfg.get("prompt") or {})
    return SampleSections(backend, params, prompt, chunk)


def _check_questions(setting: str, data: dict, split: Any, limit: Any, *, need_docs: bool = True) -> list:
    """Load the questions (cheap: no retrieval) and check the file, its size and the documents' source."""
    from start.data import load_source
    from start.io import InputError

    source = data.get("source")
    if not isinstance(source, str) or not source:
        raise ConfigError(setting, f"expected a data source (embedded, a file or a data set), got {source!r}")
    try:
        records = load_source(source, split, limit)
    except (InputError, ValueError, OSError) as e:
        raise ConfigError(setting, str(e)) from None
    if not records:
        raise ConfigError(setting, f"{source} has no questions" + (f" in split {split!r}" if split else ""))
    if need_docs and any(not r.docs for r in records):
        corpus = data.get("corpus")
        if corpus is None:
            raise ConfigError("data.corpus", f"{sum(not r.docs for r in records)} question(s) of {source} have no "
                              "documents and data.corpus is null; give a corpus to retrieve from")
        if corpus != "embedded" and not Path(corpus).is_file():
            raise ConfigError("data.corpus", f"no such file: {corpus}")
    return records


def _check_prompt_fits(cfg: dict, sections: SampleSections, questions: list) -> None:
    """Every question's prompt, with its documents emptied, must fit ``max_model_len - max_new_tokens``
    tokens (documents are shortened to fit; the rest cannot be). Needs the tokenizer: only checked when the
    model is a local folder (or an already converted built-in model)."""
    from start.io import cache_root
    from start.models import BUILTIN_MODELS, CONVERTED_MARKER
    from start.sampling.prompt import build_prompt
    from start.text import Document

    spec = cfg["model"]["name"]
    folder = cache_root() / "models" / spec if spec in BUILTIN_MODELS else Path(spec)
    if not (folder / "config.json").is_file() or (spec in BUILTIN_MODELS and not (folder / CONVERTED_MARKER).is_file()):
        return
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    longest = max(questions, key=lambda r: len(r.question))
    empty = [Document(d.title, "", d.distractor) for d in longest.docs]
    try:
        build_prompt(sections.prompt, longest.question, empty, tokenizer)
    except ValueError as e:
        raise ConfigError("model.max_model_len", f"question {longest.id}: {e}") from None


def check_sample_config(cfg: dict) -> SampleSections:
    """What ``python -m start.sample`` needs: model, data, prompt, sampler."""
    from start.models import BUILTIN_MODELS

    check_model_spec("model.name", (cfg.get("model") or {}).get("name"), builtin=tuple(BUILTIN_MODELS))
    sections = _sampling_sections(cfg, cfg.get("sampler") or {})
    data = cfg.get("data") or {}
    _positive_or_null(data, "max_docs")
    _typed("data.retrieval", _retrieval_config(), data.get("retrieval") or {})
    questions = _check_questions("data.source", data, data.get("split"), data.get("limit"))
    _check_prompt_fits(cfg, sections, questions)
    return sections


def _retrieval_config():
    from start.data import RetrievalConfig

    return RetrievalConfig


def check_warmup_config(cfg: dict):
    """The warm-up's sections: its own settings, the SFT settings and its NLI judge."""
    from start.models import BUILTIN_MODELS
    from start.train.launch import split_launch
    from start.train.sft import SFTSettings
    from start.warmup.config import WarmupConfig
    from start.warmup.stage import training_source

    try:
        warm = WarmupConfig.from_dict(cfg.get("warmup") or {})
    except TypeError as e:
        raise ConfigError("warmup", str(e).split("__init__() ")[-1]) from None
    except ValueError as e:
        raise ConfigError("warmup", str(e)) from None
    _typed("sft", SFTSettings, split_launch(cfg.get("sft") or {})[0])
    if warm.enabled:
        check_model_spec("model.name", (cfg.get("model") or {}).get("name"), builtin=tuple(BUILTIN_MODELS))
        check_nli_spec("warmup.nli.model", (warm.nli or {}).get("model", "default"))
        source, split = training_source(cfg, warm)
        _check_questions("warmup.split", {**(cfg.get("data") or {}), "source": source}, split, warm.limit,
                         need_docs=False)
    return warm


def check_run_config(cfg: dict) -> None:
    """Check a whole ``start.run`` configuration (a resolved dict); raise :class:`ConfigError` on the first
    bad setting."""
    from start.preferences import PreferenceConfig
    from start.scoring import NLIConfig, ScorerConfig
    from start.train.dpo import DPOTrainConfig
    from start.train.launch import split_launch
    from start.train.sft import SFTSettings

    for key in ("rounds", "seed"):
        if isinstance(cfg.get(key), bool) or not isinstance(cfg.get(key), int) or cfg[key] < 0:
            raise ConfigError(key, f"must be a whole number >= 0, got {cfg.get(key)!r}")
    stage, rnd = cfg.get("stage"), cfg.get("round")
    if stage is not None and stage not in STAGES:
        raise ConfigError("stage", f"must be one of {', '.join(STAGES)} (or null), got {stage!r}")
    if rnd is not None and (isinstance(rnd, bool) or not isinstance(rnd, int) or not 0 <= rnd <= cfg["rounds"]):
        raise ConfigError("round", f"must be in 0..{cfg['rounds']} (rounds={cfg['rounds']}) or null, got {rnd!r}")
    if not cfg.get("run_dir"):
        raise ConfigError("run_dir", "is empty")
    for key in ("train_questions", "eval_questions"):
        _positive_or_null(cfg, key)

    sc = cfg.get("scorer") or {}
    _typed("scorer.rules", ScorerConfig, sc.get("rules") or {})
    _typed("scorer.nli", NLIConfig, sc.get("nli") or {})
    check_nli_spec("scorer.nli.model", (sc.get("nli") or {}).get("model", "default"))
    if sc.get("eval_nli"):
        _typed("scorer.eval_nli", NLIConfig, sc["eval_nli"])
        check_nli_spec("scorer.eval_nli.model", sc["eval_nli"].get("model", "default"))

    pref = cfg.get("preference") or {}
    if pref.get("max_pairs_per_question") == 0:
        raise ConfigError("preference.max_pairs_per_question", "is 0: no preference pair, nothing to train on")
    _typed("preference", PreferenceConfig, pref)

    trainer = dict(split_launch(cfg.get("trainer") or {})[0])  # launch keys: how a stage runs (start.train.launch)
    rs = trainer.pop("rs_sft", None) or {}
    _typed("trainer", DPOTrainConfig, trainer)
    if rs.get("enabled"):
        _typed("trainer.rs_sft.settings", SFTSettings,
               {**split_launch(cfg.get("sft") or {})[0], **(rs.get("settings") or {})})

    ev = cfg.get("eval") or {}
    n_boot = ev.get("n_boot")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ConfigError("eval.n_boot", f"must be a whole number >= 1, got {n_boot!r}")

    data = cfg.get("data") or {}
    sample_cfg = {**cfg, "data": {**data, "split": cfg.get("train_split"), "limit": cfg.get("train_questions"),
                                  "source": cfg.get("train_source") or data.get("source")}}
    try:
        check_sample_config(sample_cfg)
    except ConfigError as e:
        if e.setting != "data.source":
            raise
        raise ConfigError("train_source" if cfg.get("train_source") else "data.source",
                          str(e).split(": ", 1)[1]) from None
    _sampling_sections(cfg, {**(cfg.get("sampler") or {}), **(ev.get("sampler") or {})}, "eval.sampler")
    eval_data = {**data, "source": cfg.get("eval_source") or data.get("source")}
    _check_questions("eval_source" if cfg.get("eval_source") else "data.source", eval_data, cfg.get("eval_split"),
                     cfg.get("eval_questions"))
    check_warmup_config(cfg)
