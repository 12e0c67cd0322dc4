"""NLI models of Hugging Face ``transformers`` as judges: a batch of (premise, hypothesis) pairs in, entailment
probabilities out.

Two kinds sit behind the judge's interface (:class:`start.scoring.backend.NLIBackend`):

* :class:`SequenceClassificationNLI` -- cross-encoders (BERT/DeBERTa/MiniLM ``...ForSequenceClassification``).
  The entailment class is read from ``config.id2label``, never assumed; P(entailment) is its softmax share.
  The project's own offline judges, shipped in ``start/assets/``, are such cross-encoders.
* :class:`Seq2SeqNLI` -- the "TRUE" format used by the reference (``google/t5_xxl_true_nli_mixture``):
  ``"premise: P hypothesis: H"`` -> ``"1"`` (entailed) or ``"0"``. We read the first decoder step once
  instead of generating, and report P("1") / (P("1") + P("0")), so "entailed" is P >= 0.5, which is the
  reference's greedy decision whenever the model answers "0" or "1" (the only things TRUE emits).

Every HF backend tokenises the whole batch once, sorts pairs by length and pads per batch, so a file's
pairs cost about what the model's best batched forward pass costs. Over-long pairs are truncated on the
premise side to the model's limit and flagged, so callers can warn and count them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from start.scoring.backend import NLIConfig, NLIPrediction, Pair

SETTINGS_FILE = "start_nli.json"  # threshold and metadata stored beside a model by `start.nli`


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

    def __init__(self, cfg: NLIConfig, model, tokenizer, model_path: str, default_threshold: float, *,
                 exact_model=None, fp32_band: float = 0.0):
        self.cfg, self.model, self.tokenizer = cfg, model, tokenizer
        declared = getattr(tokenizer, "model_max_length", None)
        if declared is None or declared > 100_000:  # "no limit" sentinel of HF tokenizers
            declared = getattr(model.config, "max_position_embeddings", None) or 512
        self.max_length = cfg.max_length or int(declared)
        self.threshold = cfg.threshold if cfg.threshold is not None else default_threshold
        # the fp32 guard band: a pair the fast arithmetic puts within fp32_band of the threshold is read again by
        # exact_model (the same weights in fp32), so decisions are fp32's wherever the fast error is smaller
        self.exact_model, self.fp32_band = exact_model, (fp32_band if exact_model is not None else 0.0)
        self.reread = 0  # pairs read again in fp32 (over this object's life)
        # fp32 is the reference arithmetic and keeps its old name; any other dtype gives other probabilities
        dtype = str(getattr(model, "dtype", "torch.float32")).removeprefix("torch.")
        band = f"+fp32@{self.fp32_band:g}" if self.fp32_band else ""
        self.fingerprint = _fingerprint(model_path, model, f"{type(self).__name__}:{self.max_length}"
                                        + ("" if dtype == "float32" else f":{dtype}{band}"))
        self.model.eval()
        if exact_model is not None:
            exact_model.eval()

    def _encode(self, pairs: Sequence[Pair]) -> tuple[list[list[int]], list[list[int]] | None, np.ndarray]:
        raise NotImplementedError

    def _probs(self, batch, model) -> np.ndarray:
        raise NotImplementedError

    def plan(self, pairs: Sequence[Pair]) -> BatchPlan:
        """Tokenise once and cut into length-sorted batches (longest first: fail fast on OOM)."""
        ids, types, truncated = self._encode(pairs)
        lengths = [len(x) for x in ids]
        order = np.argsort(lengths, kind="stable")[::-1]
        return BatchPlan(ids, types, truncated, token_batches(order, lengths, self.cfg.batch_size,
                                                              self.cfg.batch_tokens))

    def run_batch(self, plan: BatchPlan, b: int, model=None) -> np.ndarray:
        """P(entailment) of the pairs of batch ``b`` (padded to the batch's longest pair), by ``model`` (default:
        the backend's own)."""
        import torch

        model = self.model if model is None else model
        idx = plan.batches[b]
        feats = [{"input_ids": plan.ids[i]} | ({"token_type_ids": plan.types[i]} if plan.types else {})
                 for i in idx]
        with torch.inference_mode():
            batch = self.tokenizer.pad(feats, return_tensors="pt").to(model.device)
            return self._probs(batch, model)

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
        near = np.flatnonzero(np.abs(probs - self.threshold) < self.fp32_band)
        if len(near):  # the guard band: these are decided by fp32
            again = BatchPlan(plan.ids, plan.types, plan.truncated,
                              token_batches(near[np.argsort([len(plan.ids[i]) for i in near], kind="stable")[::-1]],
                                            [len(x) for x in plan.ids], self.cfg.batch_size, self.cfg.batch_tokens))
            for b in range(len(again.batches)):
                probs[again.batches[b]] = self.run_batch(again, b, self.exact_model)
            self.reread += len(near)
        return NLIPrediction(probs, plan.truncated)


class SequenceClassificationNLI(_HFNLI):
    """A cross-encoder NLI model; the entailment index comes from ``config.id2label``."""

    def __init__(self, cfg: NLIConfig, model, tokenizer, model_path: str, default_threshold: float = 0.5, **arith):
        super().__init__(cfg, model, tokenizer, model_path, default_threshold, **arith)
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

    def _probs(self, batch, model) -> np.ndarray:
        import torch

        logits = model(**batch).logits.float()
        return torch.softmax(logits, dim=-1)[:, self.entail_index].cpu().numpy()


class Seq2SeqNLI(_HFNLI):
    """TRUE-style seq2seq NLI: ``premise: P hypothesis: H`` -> "1" / "0"."""

    def __init__(self, cfg: NLIConfig, model, tokenizer, model_path: str, default_threshold: float = 0.5, **arith):
        super().__init__(cfg, model, tokenizer, model_path, default_threshold, **arith)
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

    def _probs(self, batch, model) -> np.ndarray:
        import torch

        n = batch["input_ids"].shape[0]
        start = torch.full((n, 1), self.decoder_start, dtype=torch.long, device=model.device)
        logits = model(**batch, decoder_input_ids=start).logits[:, 0, :].float()
        two = torch.stack([logits[:, self.yes_id], logits[:, self.no_id]], dim=-1)
        return torch.softmax(two, dim=-1)[:, 0].cpu().numpy()


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
