"""NLI backends: a batch of (premise, hypothesis) pairs in, entailment probabilities out.

Three kinds sit behind one small interface (:class:`NLIBackend`):

* :class:`SequenceClassificationNLI` -- cross-encoders (BERT/DeBERTa/MiniLM ``...ForSequenceClassification``).
  The entailment class is read from ``config.id2label``, never assumed; P(entailment) is its softmax share.
* :class:`Seq2SeqNLI` -- the "TRUE" format used by the reference (``google/t5_xxl_true_nli_mixture``):
  ``"premise: P hypothesis: H"`` -> ``"1"`` (entailed) or ``"0"``. We read the first decoder step once
  instead of generating, and report P("1") / (P("1") + P("0")), so "entailed" is P >= 0.5, which is the
  reference's greedy decision whenever the model answers "0" or "1" (the only things TRUE emits).
* the project's own offline judges, MiniLM cross-encoders shipped in ``start/assets/`` and loaded by
  :func:`load_nli` with the spec ``"default"`` or a name of :data:`BUNDLED`.

Every HF backend tokenises the whole batch once, sorts pairs by length and pads per batch, so a file's
pairs cost about what the model's best batched forward pass costs. Over-long pairs are truncated on the
premise side to the model's limit and flagged, so callers can warn and count them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from start.scoring.devices import resolve_device, resolve_dtype
from start.scoring.guard import numbers_consistent

log = logging.getLogger(__name__)

Pair = tuple[str, str]
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
# Bundled judges by name. "minilm": the first one (VitaminC sentences, read in 60-word windows; fast, the
# reward judge); "minilm-long": trained further on passage-shaped and multi-passage premises; "mpnet-long": the
# same recipe on the larger MPNet encoder, int8 weights (agrees best with people's citation judgments; the
# default, and the evaluation judge).
BUNDLED = {"minilm": ASSETS_DIR / "nli-minilm", "minilm-long": ASSETS_DIR / "nli-minilm-long",
           "mpnet-long": ASSETS_DIR / "nli-mpnet-long"}
DEFAULT_BUNDLED = "mpnet-long"
DEFAULT_MODEL_DIR = BUNDLED[DEFAULT_BUNDLED]
SETTINGS_FILE = "start_nli.json"  # threshold and metadata stored beside a model by `start.nli`
WINDOW_MODES = ("text", "documents")
_WORD = re.compile(r"\w+")


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
        if self.devices is not None:
            if not self.devices or "device_map" in self.extra:
                raise ValueError("devices must name at least one device and cannot be combined with "
                                 "extra.device_map (one model over several GPUs)")
            self.devices = [str(d) for d in self.devices]


def resolve_model(spec: str) -> str:
    """``"default"`` or a bundled judge's name -> its folder; anything else (a folder, a hub name) unchanged."""
    if spec == "default":
        return str(DEFAULT_MODEL_DIR)
    return str(BUNDLED[spec]) if spec in BUNDLED else spec


def read_settings(model_path: str | Path) -> dict:
    """A judge folder's stored settings (``start_nli.json``); {} when it has none."""
    f = Path(model_path) / SETTINGS_FILE
    return json.loads(f.read_text()) if f.is_file() else {}


def _fingerprint(model_path: str, model, settings: str) -> str:
    """A stable name for the exact weights: a content hash for local folders, the commit for hub models."""
    from start.scoring.weights import logical_files

    local = Path(model_path)
    h = hashlib.sha256()
    if local.is_dir():  # a file stored in parts counts as the joined file (start.scoring.weights)
        for name, files in logical_files(local, (".safetensors", ".bin", ".json")).items():
            if name != SETTINGS_FILE:
                h.update(name.encode())
                h.update(hashlib.sha256(b"".join(f.read_bytes() for f in files)).digest())
    else:
        h.update(model_path.encode())
        h.update(str(getattr(model.config, "_commit_hash", None)).encode())
    h.update(settings.encode())
    return h.hexdigest()[:24]


@dataclass(frozen=True)
class BatchPlan:
    """A request's token ids and its batches (indices into the request), fixed before any forward pass: every
    batch is the same whichever device or process runs it, so sharded scoring gives identical numbers."""

    ids: list[list[int]]
    types: list[list[int]] | None
    truncated: np.ndarray
    batches: list[np.ndarray]


def token_batches(order: Sequence[int], lengths: Sequence[int], max_pairs: int,
                  max_tokens: int | None) -> list[np.ndarray]:
    """Consecutive runs of ``order`` (indices sorted by length, longest first) as batches of at most
    ``max_pairs`` pairs whose padded size (count x the first, longest pair's length) stays within ``max_tokens``;
    a pair longer than ``max_tokens`` is a batch of its own.

    >>> [b.tolist() for b in token_batches([0, 1, 2, 3], [300, 200, 100, 100], 8, 400)]
    [[0], [1, 2], [3]]
    """
    out: list[np.ndarray] = []
    cur: list[int] = []
    for i in order:
        if cur and (len(cur) >= max_pairs or (max_tokens is not None
                                              and (len(cur) + 1) * lengths[cur[0]] > max_tokens)):
            out.append(np.array(cur, dtype=np.int64))
            cur = []
        cur.append(int(i))
    if cur:
        out.append(np.array(cur, dtype=np.int64))
    return out


class _HFNLI:
    """Shared machinery: length-sorted batching, per-batch padding, progress bar."""

    def __init__(self, cfg: NLIConfig, model, tokenizer, model_path: str, default_threshold: float):
        self.cfg, self.model, self.tokenizer = cfg, model, tokenizer
        declared = getattr(tokenizer, "model_max_length", None)
        if declared is None or declared > 100_000:  # "no limit" sentinel of HF tokenizers
            declared = getattr(model.config, "max_position_embeddings", None) or 512
        self.max_length = cfg.max_length or int(declared)
        self.threshold = cfg.threshold if cfg.threshold is not None else default_threshold
        # fp32 is the reference arithmetic and keeps its old name; any other dtype gives other probabilities
        dtype = str(getattr(model, "dtype", "torch.float32")).removeprefix("torch.")
        self.fingerprint = _fingerprint(model_path, model, f"{type(self).__name__}:{self.max_length}"
                                        + ("" if dtype == "float32" else f":{dtype}"))
        self.model.eval()

    def _encode(self, pairs: Sequence[Pair]) -> tuple[list[list[int]], list[list[int]] | None, np.ndarray]:
        raise NotImplementedError

    def _probs(self, batch) -> np.ndarray:
        raise NotImplementedError

    def plan(self, pairs: Sequence[Pair]) -> BatchPlan:
        """Tokenise once and cut into length-sorted batches (longest first: fail fast on OOM)."""
        ids, types, truncated = self._encode(pairs)
        lengths = [len(x) for x in ids]
        order = np.argsort(lengths, kind="stable")[::-1]
        return BatchPlan(ids, types, truncated, token_batches(order, lengths, self.cfg.batch_size,
                                                              self.cfg.batch_tokens))

    def run_batch(self, plan: BatchPlan, b: int) -> np.ndarray:
        """P(entailment) of the pairs of batch ``b`` (padded to the batch's longest pair)."""
        import torch

        idx = plan.batches[b]
        feats = [{"input_ids": plan.ids[i]} | ({"token_type_ids": plan.types[i]} if plan.types else {})
                 for i in idx]
        with torch.inference_mode():
            batch = self.tokenizer.pad(feats, return_tensors="pt").to(self.model.device)
            return self._probs(batch)

    def predict(self, pairs: Sequence[Pair]) -> NLIPrediction:
        from tqdm.auto import tqdm

        if not pairs:
            return NLIPrediction(np.zeros(0), np.zeros(0, dtype=bool))
        plan = self.plan(pairs)
        probs = np.zeros(len(pairs), dtype=np.float64)
        bar = tqdm(range(len(plan.batches)), desc="NLI", unit="batch", leave=False,
                   disable=not self.cfg.progress or len(plan.batches) < 2)
        for b in bar:
            probs[plan.batches[b]] = self.run_batch(plan, b)
        return NLIPrediction(probs, plan.truncated)


class SequenceClassificationNLI(_HFNLI):
    """A cross-encoder NLI model; the entailment index comes from ``config.id2label``."""

    def __init__(self, cfg: NLIConfig, model, tokenizer, model_path: str, default_threshold: float = 0.5):
        super().__init__(cfg, model, tokenizer, model_path, default_threshold)
        self.entail_index = entailment_index(model.config.id2label, cfg.entailment_label)

    def _encode(self, pairs):
        premises, hypotheses = [p for p, _ in pairs], [h for _, h in pairs]
        full = self.tokenizer(premises, hypotheses, truncation=False, verbose=False)
        ids = full["input_ids"]
        types = full.get("token_type_ids")
        truncated = np.array([len(x) > self.max_length for x in ids])
        long = np.flatnonzero(truncated)
        if len(long):
            # Cut the premise, never the hypothesis; cut both only when the hypothesis alone is too long.
            hyps = self.tokenizer([hypotheses[i] for i in long], add_special_tokens=False)["input_ids"]
            fits = {i: len(h) + 8 < self.max_length for i, h in zip(long, hyps, strict=True)}
            for strategy, group in (("only_first", [i for i in long if fits[i]]),
                                    ("longest_first", [i for i in long if not fits[i]])):
                if not group:
                    continue
                cut = self.tokenizer([premises[i] for i in group], [hypotheses[i] for i in group],
                                     truncation=strategy, max_length=self.max_length)
                for k, i in enumerate(group):
                    ids[i] = cut["input_ids"][k]
                    if types is not None:
                        types[i] = cut["token_type_ids"][k]
        return ids, types, truncated

    def _probs(self, batch) -> np.ndarray:
        import torch

        logits = self.model(**batch).logits.float()
        return torch.softmax(logits, dim=-1)[:, self.entail_index].cpu().numpy()


class Seq2SeqNLI(_HFNLI):
    """TRUE-style seq2seq NLI: ``premise: P hypothesis: H`` -> "1" / "0"."""

    def __init__(self, cfg: NLIConfig, model, tokenizer, model_path: str, default_threshold: float = 0.5):
        super().__init__(cfg, model, tokenizer, model_path, default_threshold)
        self.yes_id, self.no_id = (_single_token(tokenizer, t) for t in ("1", "0"))
        start = model.config.decoder_start_token_id
        self.decoder_start = 0 if start is None else int(start)

    def _encode(self, pairs):
        texts = [f"premise: {p} hypothesis: {h}" for p, h in pairs]
        ids = self.tokenizer(texts, truncation=False, verbose=False)["input_ids"]
        truncated = np.array([len(x) > self.max_length for x in ids])
        for i in np.flatnonzero(truncated):
            # Shorten the premise by the overflow (in tokens) so the hypothesis is kept whole.
            p, h = pairs[i]
            p_ids = self.tokenizer(p, add_special_tokens=False)["input_ids"]
            over = len(ids[i]) - self.max_length
            p_cut = self.tokenizer.decode(p_ids[: max(0, len(p_ids) - over - 2)], skip_special_tokens=True)
            ids[i] = self.tokenizer(f"premise: {p_cut} hypothesis: {h}", truncation=True,
                                    max_length=self.max_length)["input_ids"]
        return ids, None, truncated

    def _probs(self, batch) -> np.ndarray:
        import torch

        n = batch["input_ids"].shape[0]
        start = torch.full((n, 1), self.decoder_start, dtype=torch.long, device=self.model.device)
        logits = self.model(**batch, decoder_input_ids=start).logits[:, 0, :].float()
        two = torch.stack([logits[:, self.yes_id], logits[:, self.no_id]], dim=-1)
        return torch.softmax(two, dim=-1)[:, 0].cpu().numpy()


def base_backend(nli: NLIBackend) -> NLIBackend:
    """The model backend under any wrappers (premise windows, number guard)."""
    while hasattr(nli, "inner"):
        nli = nli.inner
    return nli


def premise_windows(premise: str, words: int) -> list[str]:
    """Consecutive sentences of the premise packed into windows of at most ``words`` words (a sentence
    longer than that is a window of its own); neighbouring windows share one sentence."""
    from start.text import sent_tokenize

    sents = [x for line in premise.split("\n") for x in sent_tokenize(line)]
    return _pack(sents, words)


def _pack(sents: list[str], words: int) -> list[str]:
    windows: list[str] = []
    cur: list[str] = []
    for x in sents:
        if cur and sum(len(c.split()) for c in cur) + len(x.split()) > words:
            windows.append(" ".join(cur))
            cur = cur[-1:]
        cur.append(x)
    if cur or not windows:
        windows.append(" ".join(cur))
    return windows


def _slide(sents: list[str], words: int) -> list[str]:
    """Windows of consecutive sentences, each at most ``words`` words (a longer sentence stands alone);
    each window starts at the last sentence of the previous one, so a fact stated across two neighbouring
    sentences is read together somewhere."""
    out, i = [], 0
    while i < len(sents):
        j, n = i + 1, len(sents[i].split())
        while j < len(sents) and n + len(sents[j].split()) <= words:
            n += len(sents[j].split())
            j += 1
        out.append(" ".join(sents[i:j]))
        if j >= len(sents):
            break
        i = max(j - 1, i + 1)
    return out


def split_documents(premise: str) -> list[tuple[str, str]]:
    """The (title line, text) documents of a premise in the scorer's format (``join_documents``: each
    document is ``"Title: <title>\n<text>"``); a premise in another format is one document without title."""
    docs: list[tuple[str, list[str]]] = []
    for line in premise.split("\n"):
        if line.startswith("Title: ") or not docs:
            head = line if line.startswith("Title: ") else ""
            docs.append((head, [] if head else [line]))
        else:
            docs[-1][1].append(line)
    return [(head, "\n".join(body)) for head, body in docs]


def document_windows(premise: str, words: int) -> list[str]:
    """Windows that never cross documents: each document's sentences packed as in :func:`premise_windows`,
    each window under its document's title line (the title often names the subject the text calls "it")."""
    from start.text import sent_tokenize

    out = []
    for head, text in split_documents(premise):
        sents = [x for line in text.split("\n") for x in sent_tokenize(line)]
        for w in _slide(sents, words):
            out.append(f"{head}\n{w}" if head else w)
    return out or [premise]


class PremiseWindowNLI:
    """P(entailment) of a pair = the maximum over windows of its premise (chunk-and-max, as SummaC-ZS and
    AlignScore do), and over the whole premise too when ``whole``. For NLI models trained on short evidence
    -- like the first bundled one, trained on VitaminC sentences of ~45 words -- a long multi-document
    premise is out of distribution, while a window of similar length is not. A fact spread over two
    windows is then missed: reading the whole premise as well keeps joint support (for models trained on
    multi-passage premises). Opt-in per model (``"premise_window_words"``, ``"premise_windows"``,
    ``"premise_whole"`` in its settings, or the same ``NLIConfig`` fields).

    Reading less. A pair's readings are (window, hypothesis) pairs of the model; many pairs share them (in
    ``documents`` mode the windows of a joint premise are its documents' windows, which the single-citation
    and support checks read again), so each distinct reading is asked once per call and remembered
    (``memo_size`` readings, least recently used dropped). With ``lazy`` the decision, a maximum compared with
    the threshold, is known as soon as one reading reaches the threshold: a pair's readings are asked in
    rounds, most promising first (most hypothesis words per word read), and a pair leaves once entailed. The
    decisions are those of reading everything; an entailed pair's probability is then a lower bound (the first
    reading that reached the threshold), which is why a lazy reader's fingerprint names its threshold."""

    def __init__(self, inner: NLIBackend, words: int, mode: str = "text", whole: bool = False, *,
                 lazy: bool = False, memo_size: int = 100_000):
        if mode not in WINDOW_MODES:
            raise ValueError(f"premise window mode must be one of {WINDOW_MODES}, got {mode!r}")
        self.inner, self.words, self.mode, self.whole, self.lazy = inner, words, mode, whole, lazy
        self.threshold = inner.threshold
        suffix = "" if mode == "text" and not whole else f"-{mode}" + ("-whole" if whole else "")
        self.fingerprint = f"{inner.fingerprint}:premise-window-{words}{suffix}"
        if lazy:
            self.fingerprint += f":lazy@{self.threshold:g}"
        self._memo: OrderedDict[Pair, tuple[float, bool]] = OrderedDict()
        self._memo_size = memo_size
        self.readings_asked = 0  # readings sent to the model (over this object's life)

    def windows(self, premise: str) -> list[str]:
        parts = (document_windows if self.mode == "documents" else premise_windows)(premise, self.words)
        if self.whole and premise not in parts:
            parts = [premise, *parts]
        return parts

    def readings(self, premise: str, hypothesis: str) -> list[Pair]:
        """The pair's readings, most promising first: hypothesis words found per word read, then shortest."""
        hyp = set(_WORD.findall(hypothesis.lower()))
        parts = list(dict.fromkeys(self.windows(premise)))

        def promise(k: int) -> tuple[float, int, int]:
            w = parts[k]
            found = len(hyp & set(_WORD.findall(w.lower())))
            return (-(found + 1) / (len(w.split()) + len(hypothesis.split()) + 5), len(w), k)

        return [(parts[k], hypothesis) for k in sorted(range(len(parts)), key=promise)]

    def _ask(self, readings: Sequence[Pair]) -> dict[Pair, tuple[float, bool]]:
        """Model answers for distinct readings, remembered ones first."""
        out = {r: self._memo[r] for r in readings if r in self._memo}
        todo = [r for r in readings if r not in out]
        if todo:
            pred = self.inner.predict(todo)
            self.readings_asked += len(todo)
            out.update(zip(todo, zip(pred.probs.tolist(), pred.truncated.tolist(), strict=True), strict=True))
        for r in readings:
            self._memo[r] = out[r]
            self._memo.move_to_end(r)
        while len(self._memo) > self._memo_size:
            self._memo.popitem(last=False)
        return out

    def predict(self, pairs: Sequence[Pair]) -> NLIPrediction:
        plans = [self.readings(p, h) for p, h in pairs]
        probs = np.zeros(len(pairs))
        truncated = np.zeros(len(pairs), dtype=bool)
        if not self.lazy:
            known = self._ask(list(dict.fromkeys(r for plan in plans for r in plan)))
            for k, plan in enumerate(plans):
                probs[k] = max(known[r][0] for r in plan)
                truncated[k] = any(known[r][1] for r in plan)
            return NLIPrediction(probs, truncated)
        probs[:] = -np.inf
        pending, step = [k for k, plan in enumerate(plans) if plan], 0
        while pending:
            known = self._ask(list(dict.fromkeys(plans[k][step] for k in pending)))
            for k in pending:
                prob, cut = known[plans[k][step]]
                probs[k] = max(probs[k], prob)
                truncated[k] |= cut
            step += 1
            pending = [k for k in pending if probs[k] < self.threshold and step < len(plans[k])]
        probs[np.isneginf(probs)] = 0.0
        return NLIPrediction(probs, truncated)


class AveragedNLI:
    """An ensemble: the weighted mean of several models' P(entailment) on the same pairs. Stored models opt
    in with ``"ensemble": {"model": <bundled name or folder>, "weight": w}`` in their settings (the partner
    gets weight ``w``, the model itself ``1 - w``); the threshold is the first member's."""

    def __init__(self, members: Sequence[tuple[NLIBackend, float]]):
        if not members or any(w < 0 for _, w in members) or not np.isclose(sum(w for _, w in members), 1.0):
            raise ValueError(f"ensemble weights must be >= 0 and sum to 1, got {[w for _, w in members]}")
        # The first member is ``inner``, like any wrapper's: base_backend() and code that re-wraps the base
        # model (scripts/bench_scorer.py) reach it; the partners stay as they are.
        self.inner, self.weight = members[0]
        self.partners = list(members[1:])
        self.threshold = self.inner.threshold
        self.fingerprint = "mean(" + ",".join(f"{b.fingerprint}*{w:g}" for b, w in members) + ")"

    @property
    def members(self) -> list[tuple[NLIBackend, float]]:
        return [(self.inner, self.weight), *self.partners]

    def predict(self, pairs: Sequence[Pair]) -> NLIPrediction:
        probs = np.zeros(len(pairs))
        truncated = np.zeros(len(pairs), dtype=bool)
        for backend, weight in self.members:
            if weight == 0:
                continue
            pred = backend.predict(pairs)
            probs += weight * pred.probs
            truncated |= pred.truncated
        return NLIPrediction(probs, truncated)


class NumberGuardedNLI:
    """A backend whose pairs are not entailed when the hypothesis states a number, year or month that the
    premise does not (:mod:`start.scoring.guard`): small NLI models miss exactly such edits ("built in 1889" vs
    "in 1925"). Stored models opt in with ``"number_guard": true`` in their settings; the probability of
    a guarded pair is reported as 0."""

    def __init__(self, inner: NLIBackend):
        self.inner = inner
        self.threshold = inner.threshold
        self.fingerprint = inner.fingerprint + ":number-guard-v1"

    def predict(self, pairs: Sequence[Pair]) -> NLIPrediction:
        ok = np.array([numbers_consistent(p, h) for p, h in pairs], dtype=bool)
        probs = np.zeros(len(pairs))
        truncated = np.zeros(len(pairs), dtype=bool)
        keep = np.flatnonzero(ok)
        if len(keep):  # a guarded pair is decided without the model
            pred = self.inner.predict([pairs[i] for i in keep])
            probs[keep], truncated[keep] = pred.probs, pred.truncated
        return NLIPrediction(probs, truncated)


class MemoNLI:
    """An :class:`NLIBackend` that deduplicates pairs and remembers answers (one run's worth).

    The warm-up's verification scorer asks mostly pairs its relabelling already asked; a threshold sweep
    (``start.nli.agreement``) replays the scorer at many thresholds (``threshold`` may be changed) for one
    pass of the model.
    """

    def __init__(self, backend: NLIBackend):
        self.backend = backend
        self.fingerprint = backend.fingerprint
        self.threshold = backend.threshold
        self._memo: dict[Pair, tuple[float, bool]] = {}
        self.calls = 0  # backend calls made
        self.pairs_asked = 0  # unique pairs sent to the backend

    def predict(self, pairs: Sequence[Pair]) -> NLIPrediction:
        todo = list(dict.fromkeys(p for p in pairs if p not in self._memo))
        if todo:
            pred = self.backend.predict(todo)
            self.calls += 1
            self.pairs_asked += len(todo)
            for p, prob, trunc in zip(todo, pred.probs, pred.truncated, strict=True):
                self._memo[p] = (float(prob), bool(trunc))
        return NLIPrediction(np.array([self._memo[p][0] for p in pairs], dtype=np.float64),
                             np.array([self._memo[p][1] for p in pairs], dtype=bool))

    def entailed(self, pairs: Sequence[Pair]) -> dict[Pair, float]:
        """P(entailment) of every pair, from one batched call."""
        pred = self.predict(list(pairs))
        return dict(zip(pairs, pred.probs.tolist(), strict=True))


def _single_token(tokenizer, text: str) -> int:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = [i for i in ids if tokenizer.convert_ids_to_tokens(i) not in {"▁", "Ġ"}]
    if len(ids) != 1:
        raise ValueError(f"a TRUE-style NLI model must encode {text!r} as one token, got ids {ids}")
    return ids[0]


def entailment_index(id2label: dict, override: str | None = None) -> int:
    """Index of the entailment class in ``id2label``; a clear error when it cannot be identified."""
    labels = {int(k): str(v) for k, v in id2label.items()}
    if override is not None:
        hits = [k for k, v in labels.items() if v.lower() == override.lower()]
    else:
        hits = [k for k, v in labels.items() if v.lower().startswith("entail")]
    if len(hits) != 1:
        raise ValueError(
            f"cannot identify the entailment class in id2label={labels}; "
            "set entailment_label (CLI: --entailment-label) to the name of the entailment class"
        )
    return hits[0]


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
    kwargs = {"local_files_only": local_only, "dtype": judge_dtype(cfg.dtype, device, settings), **cfg.extra}
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_only)
    if config.is_encoder_decoder:
        model = AutoModelForSeq2SeqLM.from_pretrained(path, **kwargs)
        backend_cls = Seq2SeqNLI
    else:
        model = load_classifier(path, settings, **kwargs)
        backend_cls = SequenceClassificationNLI
    if "device_map" not in cfg.extra:
        model.to(device)
    placed = getattr(model, "hf_device_map", None) or {}  # set when the map spans more than one device
    where = sorted({str(d) for d in placed.values()}) or cfg.devices or model.device
    log.info("loaded NLI model %s (%s, %s) on %s", cfg.model, backend_cls.__name__, model.dtype, where)
    backend: NLIBackend = backend_cls(cfg, model, tokenizer, path, threshold)
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


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 dot-product instructions (x86 AVX512-BF16 or AMX-BF16, Arm BF16): without them
    bf16 arithmetic is emulated and slower than fp32. Read from /proc/cpuinfo; False where it is missing."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = {f for line in re.findall(r"^(?:flags|Features)\s*:(.*)$", text, re.M) for f in line.split()}
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


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
