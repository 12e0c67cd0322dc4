"""Premise readers and wrappers around a model backend: each is an :class:`~start.scoring.backend.NLIBackend` too.

* :class:`PremiseWindowNLI` reads a long premise in windows of sentences (and whole), and takes the maximum;
* :class:`AveragedNLI` averages several models' probabilities (a judge and its partner);
* :class:`NumberGuardedNLI` rejects a pair whose hypothesis states a number the premise does not
  (:mod:`start.scoring.guard`);
* :class:`MemoNLI` asks each distinct pair once and remembers the answer.

:func:`start.scoring.nli.load_nli` stacks them as a judge's stored settings ask; :func:`base_backend` finds the
model backend underneath.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from start.scoring.backend import WINDOW_MODES, NLIBackend, NLIPrediction, Pair
from start.scoring.guard import numbers_consistent

_WORD = re.compile(r"\w+")


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
