"""The judge: an NLI model and its stored settings, loaded by name or folder (:func:`load_nli`).

A judge answers P(entailment) for a batch of (premise, hypothesis) pairs (the interface:
:mod:`start.scoring.backend`). :func:`load_nli` reads a model folder or hub name and the settings stored beside
it (``start_nli.json``) and builds the judge they describe: a model backend (:mod:`start.scoring.hf`), spread over
devices when asked (:mod:`start.scoring.parallel`), under the premise readers, partner model and number guard of
its settings (:mod:`start.scoring.readers`) or under its learned aggregator (:mod:`start.scoring.learned`). The
project's own offline judges ship in ``start/assets/`` and load with the spec ``"default"`` or a name of
:data:`BUNDLED`. The names of those modules are importable from here too, as they always were.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from start.scoring.backend import WINDOW_MODES, NLIBackend, NLIConfig, NLIPrediction, Pair
from start.scoring.devices import cpu_has_bf16, resolve_device, resolve_dtype
from start.scoring.hf import (
    SETTINGS_FILE,
    BatchPlan,
    Seq2SeqNLI,
    SequenceClassificationNLI,
    entailment_index,
    token_batches,
)
from start.scoring.readers import (
    AveragedNLI,
    MemoNLI,
    NumberGuardedNLI,
    PremiseWindowNLI,
    base_backend,
    document_windows,
    premise_windows,
    split_documents,
)

__all__ = [
    "ASSETS_DIR", "BUNDLED", "DEFAULT_BUNDLED", "DEFAULT_MODEL_DIR", "SETTINGS_FILE", "WINDOW_MODES", "AveragedNLI",
    "BatchPlan", "MemoNLI", "NLIBackend", "NLIConfig", "NLIPrediction", "NumberGuardedNLI", "Pair",
    "PremiseWindowNLI", "Seq2SeqNLI", "SequenceClassificationNLI", "base_backend", "cpu_has_bf16",
    "document_windows", "entailment_index", "judge_arithmetic", "judge_dtype", "load_nli", "nli_fingerprint",
    "premise_windows", "read_settings", "resolve_model", "split_documents", "token_batches",
]

log = logging.getLogger(__name__)

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
# Bundled judges by name. "minilm": the first one (VitaminC sentences, read in 60-word windows; fast, the
# reward judge); "minilm-long": trained further on passage-shaped and multi-passage premises; "mpnet-long": the
# same recipe on the larger MPNet encoder, int8 weights (agrees best with people's citation judgments; the
# default, and the evaluation judge).
BUNDLED = {"minilm": ASSETS_DIR / "nli-minilm", "minilm-long": ASSETS_DIR / "nli-minilm-long",
           "mpnet-long": ASSETS_DIR / "nli-mpnet-long"}
DEFAULT_BUNDLED = "mpnet-long"
DEFAULT_MODEL_DIR = BUNDLED[DEFAULT_BUNDLED]


def resolve_model(spec: str) -> str:
    """``"default"`` or a bundled judge's name -> its folder; anything else (a folder, a hub name) unchanged."""
    if spec == "default":
        return str(DEFAULT_MODEL_DIR)
    return str(BUNDLED[spec]) if spec in BUNDLED else spec


def read_settings(model_path: str | Path) -> dict:
    """A judge folder's stored settings (``start_nli.json``); {} when it has none."""
    f = Path(model_path) / SETTINGS_FILE
    return json.loads(f.read_text()) if f.is_file() else {}


def nli_fingerprint(nli: NLIBackend) -> dict:
    """A loaded judge by what decides its answers -- weights and settings (its backend fingerprint) and
    threshold -- not by its name: a stage fingerprint holding this re-runs when the judge is rebuilt."""
    return {"backend": nli.fingerprint, "threshold": nli.threshold}


def load_nli(cfg: NLIConfig | str = "default", *, wrap=None) -> NLIBackend:
    """Load an NLI backend from ``"default"``, a local folder, or a hub name (downloads only then).

    ``wrap`` (optional) is applied to the model backend before the premise-window and number-guard wrappers,
    e.g. to spread its batches over devices or processes (``start.scoring.parallel``).
    """
    if isinstance(cfg, str):
        cfg = NLIConfig(model=cfg)
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

    from start.scoring.weights import load_classifier

    path = resolve_model(cfg.model)
    if (cfg.model == "default" or cfg.model in BUNDLED) and not Path(path).is_dir():
        raise FileNotFoundError(
            f"the bundled NLI model {cfg.model!r} is missing at {path}; rebuild it with `make nli-model` "
            "or pass --nli with a model folder or hub name"
        )
    local_only = Path(path).is_dir() or os.environ.get("HF_HUB_OFFLINE") == "1"
    placement = ("device_map", "max_memory", "offload_folder")  # for the weights, not the config
    config = AutoConfig.from_pretrained(path, local_files_only=local_only,
                                        **{k: v for k, v in cfg.extra.items() if k not in placement})
    settings = read_settings(path) if Path(path).is_dir() else {}
    threshold = float(settings.get("threshold", 0.5))
    if cfg.max_length is None and settings.get("max_length"):
        cfg = NLIConfig(**{**cfg.__dict__, "max_length": int(settings["max_length"])})
    device = resolve_device(cfg.devices[0] if cfg.devices else cfg.device)
    import torch

    dtype, band = judge_arithmetic(cfg, device, settings)
    kwargs = {"local_files_only": local_only, "dtype": dtype, **cfg.extra}
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_only)
    exact = None
    if config.is_encoder_decoder:
        model = AutoModelForSeq2SeqLM.from_pretrained(path, **kwargs)
        backend_cls = Seq2SeqNLI
        if band:
            exact = AutoModelForSeq2SeqLM.from_pretrained(path, **{**kwargs, "dtype": torch.float32})
    else:
        model = load_classifier(path, settings, **kwargs)
        backend_cls = SequenceClassificationNLI
        if band:
            exact = load_classifier(path, settings, **{**kwargs, "dtype": torch.float32})
    for m in (model, exact):
        if m is not None and "device_map" not in cfg.extra:
            m.to(device)
    placed = getattr(model, "hf_device_map", None) or {}  # set when the map spans more than one device
    where = sorted({str(d) for d in placed.values()}) or cfg.devices or model.device
    log.info("loaded NLI model %s (%s, %s%s) on %s", cfg.model, backend_cls.__name__, model.dtype,
             f", pairs within {band:g} of the threshold read again in fp32" if band else "", where)
    backend: NLIBackend = backend_cls(cfg, model, tokenizer, path, threshold, exact_model=exact, fp32_band=band)
    model_max_length = backend.max_length
    if cfg.devices and len(cfg.devices) > 1:
        from start.scoring.parallel import DeviceReplicasNLI

        backend = DeviceReplicasNLI.from_backend(backend, cfg.devices)
    if wrap is not None:
        backend = wrap(backend)
    agg = settings.get("aggregator")
    if cfg.aggregator and not agg:
        raise ValueError(f"aggregator=true, but {Path(path) / SETTINGS_FILE} stores no 'aggregator' "
                         "(fit one with `python -m start.nli aggregate`)")
    if agg and (cfg.aggregator or (cfg.aggregator is None and agg.get("enabled", True))):
        return _aggregated(cfg, backend, agg, path, model_max_length)
    ens = settings.get("ensemble") if cfg.ensemble is None or cfg.ensemble else None
    if ens and float(ens["weight"]) > 0:
        # the partner is not wrapped: under the process-sharded scorer it runs whole in the main process (two
        # wrapped backends interleaving their shared batches gave last-digit differences from one process)
        partner = _partner(cfg, ens["model"], model_max_length)
        backend = AveragedNLI([(backend, 1 - float(ens["weight"])), (partner, float(ens["weight"]))])
    words = settings.get("premise_window_words") if cfg.premise_window_words is None else cfg.premise_window_words
    if words:
        mode = cfg.premise_windows or settings.get("premise_windows", "text")
        whole = settings.get("premise_whole", False) if cfg.premise_whole is None else cfg.premise_whole
        backend = PremiseWindowNLI(backend, int(words), mode, bool(whole), lazy=cfg.lazy)
    guard = settings.get("number_guard", False) if cfg.number_guard is None else cfg.number_guard
    return NumberGuardedNLI(backend) if guard else backend


def judge_dtype(spec: str, device, settings: dict):
    """The torch dtype a judge runs in: ``spec`` when given; for "auto", bf16 on a GPU, and on a CPU the judge's
    accepted fast arithmetic (its stored ``cpu_dtype`` block, written with the measured agreement of its
    decisions with fp32's) when the CPU has bf16 instructions, else fp32."""
    import torch

    if spec != "auto" or device.type != "cpu":
        return resolve_dtype(spec, device)
    fast = settings.get("cpu_dtype") or {}
    if fast.get("accepted") and fast.get("dtype") == "bfloat16" and cpu_has_bf16():
        return torch.bfloat16
    return torch.float32


def judge_arithmetic(cfg: NLIConfig, device, settings: dict) -> tuple:
    """The judge's dtype (:func:`judge_dtype`) and its fp32 guard band: ``cfg.fp32_band`` when set, else under
    "auto" the band the judge's accepted fast mode was measured with (``cpu_dtype.fp32_band``); 0 in fp32."""
    import torch

    dtype = judge_dtype(cfg.dtype, device, settings)
    if dtype == torch.float32:
        return dtype, 0.0
    if cfg.fp32_band is not None:
        return dtype, float(cfg.fp32_band)
    stored = (settings.get("cpu_dtype") or {}).get("fp32_band", 0.0) if cfg.dtype == "auto" else 0.0
    return dtype, float(stored or 0.0)


def _partner(cfg: NLIConfig, model: str, max_length: int) -> NLIBackend:
    """A judge's partner model, bare (no reader, guard, ensemble or aggregator of its own), at the judge's length."""
    return load_nli(NLIConfig(**{**cfg.__dict__, "model": model, "max_length": max_length, "premise_window_words": 0,
                                 "premise_windows": None, "premise_whole": None, "number_guard": False,
                                 "ensemble": False, "aggregator": False}))


_READER_FIELDS = ("number_guard", "premise_window_words", "premise_windows", "premise_whole", "ensemble")


def _aggregated(cfg: NLIConfig, backend: NLIBackend, agg: dict, path: str, max_length: int) -> NLIBackend:
    """The stored learned aggregator around ``backend`` (start.scoring.learned)."""
    from dataclasses import replace

    from start.scoring.learned import AggregatedNLI, LogisticAggregator

    fixed = [k for k in _READER_FIELDS if getattr(cfg, k) is not None]
    if fixed:
        raise ValueError(f"the judge at {path} combines its premise readings with a learned aggregator "
                         f"({SETTINGS_FILE} 'aggregator'), which fixes {', '.join(fixed)}; set aggregator=false "
                         "(CLI: --no-aggregator) to use the stored fixed rule with your own reader settings")
    try:
        aggregator = LogisticAggregator.from_dict(agg)
        words = int(agg["window_words"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{Path(path) / SETTINGS_FILE}: bad 'aggregator' block: {err}") from None
    if cfg.threshold is not None:
        aggregator = replace(aggregator, threshold=cfg.threshold)
    partner = _partner(cfg, agg["partner"], max_length) if agg.get("partner") else None
    return AggregatedNLI(backend, aggregator, words, partner)
