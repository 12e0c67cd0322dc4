"""The judge's interface: what the scorer needs from an NLI model, what it answers, and how it is loaded.

A judge takes a batch of (premise, hypothesis) pairs and answers P(entailment) per pair (:class:`NLIPrediction`).
Every model backend (:mod:`start.scoring.hf`), premise reader and wrapper (:mod:`start.scoring.readers`,
:mod:`start.scoring.learned`, :mod:`start.scoring.parallel`) is an :class:`NLIBackend`;
:func:`start.scoring.nli.load_nli` builds one from an :class:`NLIConfig`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

Pair = tuple[str, str]

WINDOW_MODES = ("text", "documents")


@dataclass(frozen=True)
class NLIPrediction:
    """Entailment probability per pair and whether the pair had to be truncated."""

    probs: np.ndarray
    truncated: np.ndarray


@runtime_checkable
class NLIBackend(Protocol):
    """What the scorer needs from an NLI model."""

    fingerprint: str  # names the weights and settings; part of every cache key
    threshold: float  # a pair is entailed when its probability is >= threshold

    def predict(self, pairs: Sequence[Pair]) -> NLIPrediction: ...


@dataclass
class NLIConfig:
    """How to load and run an NLI model."""

    model: str = "default"  # "default", a local folder, or a Hugging Face hub name
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    batch_size: int = 32  # at most this many pairs per forward pass
    # at most this many tokens per forward pass, padding included (pairs sorted by length fill each batch up to
    # it): long pairs go a few at a time, short ones many at a time. None: batch_size pairs whatever their length
    batch_tokens: int | None = 4096
    max_length: int | None = None  # None: the model's own limit (512 when it declares none)
    threshold: float | None = None  # None: the model's stored threshold, else 0.5
    entailment_label: str | None = None  # override when id2label has no label starting with "entail"
    # "auto": bf16 on a GPU; on a CPU, the judge's accepted fast arithmetic (start_nli.json "cpu_dtype", stored
    # only with its measured agreement with fp32) when the CPU has bf16 instructions, else fp32. Or "float32",
    # "bfloat16", "float16"
    dtype: str = "auto"
    # with a dtype other than fp32: pairs whose probability lands within this distance of the threshold are read
    # again in fp32, so the decisions are fp32's whenever the fast arithmetic errs by less (None: as the judge's
    # cpu_dtype block says under "auto", else 0; 0: off)
    fp32_band: float | None = None
    progress: bool = True
    number_guard: bool | None = None  # None: as stored with the model (start_nli.json), else force on/off
    premise_window_words: int | None = None  # None: as stored with the model; 0: whole premise; N: windows
    premise_windows: str | None = None  # None: as stored; "text": windows run across documents; "documents":
    #                                     windows inside each cited document, each under its title line
    premise_whole: bool | None = None  # None: as stored; True: the whole premise is read too (max with windows)
    # read a pair's premise readings (windows, whole premise) most promising first and stop at the first that
    # entails it: the same decisions for fewer forward passes, but the probability of an entailed pair is then a
    # lower bound (>= threshold), not the maximum. False: every reading (exact maxima, e.g. to sweep thresholds)
    lazy: bool = True
    ensemble: bool | None = None  # None: as stored ("ensemble" in start_nli.json); False: this model alone
    # None: as stored ("aggregator" in start_nli.json: a learned combination of the readings, start.scoring.learned,
    # which replaces the reader, guard and ensemble settings above when its "enabled" is true); True: the stored
    # aggregator even when not enabled (an error when there is none); False: the stored fixed rule
    aggregator: bool | None = None
    # passed to from_pretrained (e.g. revision). {"device_map": "auto"} spreads one model too big for a GPU
    # (TRUE T5-11B: 22 GB in bf16) over the visible GPUs, layer by layer; "max_memory" caps each GPU's share
    extra: dict = field(default_factory=dict)
    # one replica of the model per device (e.g. ["cuda:0", "cuda:1"]); the batches of every request are spread
    # over them and the probabilities are the ones one device gives (start.scoring.parallel)
    devices: list[str] | None = None

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.batch_tokens is not None and self.batch_tokens < 1:
            raise ValueError(f"batch_tokens must be >= 1 or null, got {self.batch_tokens}")
        if self.max_length is not None and self.max_length < 8:
            raise ValueError(f"max_length must be >= 8, got {self.max_length}")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.premise_windows not in (None, *WINDOW_MODES):
            raise ValueError(f"premise_windows must be one of {WINDOW_MODES}, got {self.premise_windows!r}")
        if self.dtype not in {"auto", "float32", "bfloat16", "float16"}:
            raise ValueError(f"dtype must be auto, float32, bfloat16 or float16, got {self.dtype!r}")
        if self.fp32_band is not None and not 0 <= self.fp32_band < 1:
            raise ValueError(f"fp32_band must be in [0, 1), got {self.fp32_band}")
        if self.devices is not None:
            if not self.devices or "device_map" in self.extra:
                raise ValueError("devices must name at least one device and cannot be combined with "
                                 "extra.device_map (one model over several GPUs)")
            self.devices = [str(d) for d in self.devices]
