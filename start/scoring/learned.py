"""A learned aggregator over NLI readings: a few features of a (premise, hypothesis) pair, one logistic regression.

The bundled passage judge reads a premise several ways -- whole, and in sentence-aligned windows inside each
document (:func:`start.scoring.readers.document_windows`) -- with its own model and a partner model, and until now
combined them by a fixed rule (max over readings of a weighted mean, zeroed by the number guard). Here the same
readings become features, beside cheap lexical ones (how much of the hypothesis's content words, numbers and
names the premise contains), and a logistic regression fitted on people's judgments (``start.nli.aggregator``)
turns them into P(entailment). :class:`AggregatedNLI` is an :class:`~start.scoring.backend.NLIBackend` like any
other, so the scorer's definitions (joint recall, the precision rule) are untouched. A stored judge carries it as
an ``"aggregator"`` block in its ``start_nli.json`` (:meth:`LogisticAggregator.to_dict`, plus ``window_words``,
``partner`` and ``enabled``); ``load_nli`` builds it when ``enabled`` is true or ``NLIConfig(aggregator=True)``.

Inference is plain numpy: a dot product and a sigmoid per pair.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from start.scoring.backend import NLIBackend, NLIPrediction, Pair
from start.scoring.guard import extract_quantities, numbers_consistent
from start.scoring.readers import document_windows
from start.text import tokenize

# Every feature a stored aggregator may name (its own list is a subset, in its own order), with what it measures.
FEATURE_HELP: dict[str, str] = {
    "whole": "P(entail) of the whole premise, the judge's own model",
    "whole_partner": "the same from the partner model",
    "win_max": "max over the premise's windows (whole premise when it is a single window), own model",
    "win_max_partner": "the same from the partner",
    "win_mean": "mean over the windows, own model (low when the support is one window among many)",
    "mix_max": "the fixed rule the aggregator replaces: max over readings of (1 - w) own + w partner",
    "mix_cov_max": "max over readings of the mix weighted by the share of the hypothesis's content words in it",
    "best_cov": "that share in the reading the mix rates highest (is the best reading about the sentence?)",
    "rule": "the fixed rule's score itself: mix_max, zeroed when the guard rejects the pair",
    "rule_cov": "mix_cov_max, zeroed when the guard rejects the pair",
    "guard": "1 when every number/year/month of the hypothesis is in the premise (start.nli.guard), else 0",
    "cov_words": "share of the hypothesis's content words found in the premise",
    "cov_numbers": "share of its numbers/months found in the premise (1 when it has none)",
    "cov_names": "share of its capitalised words after the first found in the premise (1 when none)",
    "hyp_words": "log(1 + words of the hypothesis)",
    "premise_words": "log(1 + words of the premise)",
    "logit_win_max": "log-odds of win_max (clipped): spreads the probabilities near 0 and 1",
    "logit_whole": "log-odds of whole (clipped)",
}
FEATURES: tuple[str, ...] = tuple(FEATURE_HELP)
_EPS = 1e-4


def _logit(p: float) -> float:
    p = min(max(p, _EPS), 1 - _EPS)
    return math.log(p / (1 - p))


def _share(needed: set[str], have: set[str]) -> float:
    return 1.0 if not needed else len(needed & have) / len(needed)


def lexical_features(premise: str, hypothesis: str) -> dict[str, float]:
    """Coverage of the hypothesis by the premise and the two lengths (see :data:`FEATURES`).

    >>> f = lexical_features("The Eiffel tower was built in 1889 by 300 men.", "Gustave Eiffel built it in 1889.")
    >>> f["cov_words"], f["cov_numbers"], f["cov_names"], f["guard"]
    (0.6666666666666666, 1.0, 1.0, 1.0)
    """
    p_words, h_words = content_words(premise), content_words(hypothesis)
    p_lower = premise.lower()
    names = {w.lower() for w in hypothesis.split()[1:] if w[:1].isupper()}
    names = {n.strip(".,;:!?()\"'") for n in names} - {""}
    return {
        "guard": float(numbers_consistent(premise, hypothesis)),
        "cov_words": _share(h_words, p_words),
        "cov_numbers": _share(extract_quantities(hypothesis), extract_quantities(premise)),
        "cov_names": 1.0 if not names else sum(n in p_lower for n in names) / len(names),
        "hyp_words": math.log1p(len(hypothesis.split())),
        "premise_words": math.log1p(len(premise.split())),
    }


@dataclass(frozen=True)
class Readings:
    """P(entailment) of one pair under each reading of its premise: index 0 the whole premise, then its
    windows (empty when the whole premise is its only window); ``partner`` the same from the partner model."""

    own: tuple[float, ...]
    partner: tuple[float, ...] | None
    cover: tuple[float, ...] | None = None  # share of the hypothesis's content words in each reading


def content_words(text: str) -> set[str]:
    """Lower-cased words without stop words and numbers (numbers have their own features)."""
    return {w for w in tokenize(text) if not any(c.isdigit() for c in w)}


def reading_features(r: Readings, partner_weight: float) -> dict[str, float]:
    """The model features of one pair (see :data:`FEATURES`)."""
    own = np.asarray(r.own)
    part = np.asarray(r.partner) if r.partner is not None else own
    wins = own[1:] if len(own) > 1 else own
    wins_p = part[1:] if len(part) > 1 else part
    mix = (1 - partner_weight) * own + partner_weight * part
    cover = np.asarray(r.cover) if r.cover is not None else np.ones(len(own))
    extra = {"mix_cov_max": float((mix * cover).max()), "best_cov": float(cover[int(mix.argmax())])}
    return extra | {"whole": float(own[0]), "whole_partner": float(part[0]), "win_max": float(wins.max()),
            "win_max_partner": float(wins_p.max()), "win_mean": float(wins.mean()), "mix_max": float(mix.max()),
            "logit_win_max": _logit(float(wins.max())), "logit_whole": _logit(float(own[0]))}


def pair_features(r: Readings, premise: str, hypothesis: str, partner_weight: float) -> dict[str, float]:
    """Every feature of :data:`FEATURES` for one pair."""
    out = reading_features(r, partner_weight) | lexical_features(premise, hypothesis)
    out["rule"] = out["mix_max"] * out["guard"]
    out["rule_cov"] = out["mix_cov_max"] * out["guard"]
    return out


@dataclass(frozen=True)
class LogisticAggregator:
    """P(entailed) = sigmoid(intercept + sum_i coef_i * (x_i - center_i) / scale_i) over named features."""

    features: tuple[str, ...]
    coef: tuple[float, ...]
    intercept: float
    center: tuple[float, ...]
    scale: tuple[float, ...]
    threshold: float = 0.5
    partner_weight: float = 0.3  # w of the "mix_max" feature

    def __post_init__(self):
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise ValueError(f"aggregator: unknown feature(s) {unknown}; known: {list(FEATURES)}")
        n = len(self.features)
        if not n or any(len(v) != n for v in (self.coef, self.center, self.scale)):
            raise ValueError(f"aggregator: features, coef, center and scale must have the same non-zero length, "
                             f"got {n}, {len(self.coef)}, {len(self.center)}, {len(self.scale)}")
        if any(s <= 0 for s in self.scale):
            raise ValueError(f"aggregator: every scale must be > 0, got {list(self.scale)}")
        if not 0.0 <= self.threshold <= 1.0 or not 0.0 <= self.partner_weight <= 1.0:
            raise ValueError(f"aggregator: threshold and partner_weight must be in [0, 1], got "
                             f"{self.threshold} and {self.partner_weight}")

    def matrix(self, rows: Sequence[dict[str, float]]) -> np.ndarray:
        return np.array([[r[f] for f in self.features] for r in rows], dtype=np.float64).reshape(-1, len(self.features))

    def prob(self, x: np.ndarray) -> np.ndarray:
        z = self.intercept + ((x - np.asarray(self.center)) / np.asarray(self.scale)) @ np.asarray(self.coef)
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict:
        return {"kind": "logistic", "features": list(self.features), "coef": [round(c, 6) for c in self.coef],
                "intercept": round(self.intercept, 6), "center": [round(c, 6) for c in self.center],
                "scale": [round(s, 6) for s in self.scale], "threshold": self.threshold,
                "partner_weight": self.partner_weight}

    @classmethod
    def from_dict(cls, d: dict) -> LogisticAggregator:
        if d.get("kind", "logistic") != "logistic":
            raise ValueError(f"aggregator: unknown kind {d.get('kind')!r} (known: 'logistic')")
        missing = [k for k in ("features", "coef", "intercept", "center", "scale") if k not in d]
        if missing:
            raise ValueError(f"aggregator: missing field(s) {missing}")
        return cls(tuple(d["features"]), tuple(float(c) for c in d["coef"]), float(d["intercept"]),
                   tuple(float(c) for c in d["center"]), tuple(float(s) for s in d["scale"]),
                   float(d.get("threshold", 0.5)), float(d.get("partner_weight", 0.3)))

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def fit_logistic(x: np.ndarray, y: np.ndarray, features: Sequence[str], l2: float = 1.0,
                 weights: np.ndarray | None = None, iters: int = 50, **kw) -> LogisticAggregator:
    """L2-penalised logistic regression by Newton steps on standardised features (the intercept is not
    penalised); ``kw`` goes to :class:`LogisticAggregator` (threshold, partner_weight)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != len(y) or x.shape[1] != len(features):
        raise ValueError(f"fit_logistic: x {x.shape} must be (len(y)={len(y)}, {len(features)} features)")
    if len(set(y.tolist())) < 2:
        raise ValueError("fit_logistic: the labels must hold both classes")
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    center = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-8] = 1.0
    z = np.hstack([np.ones((len(y), 1)), (x - center) / scale])
    beta = np.zeros(z.shape[1])
    pen = np.full(z.shape[1], float(l2))
    pen[0] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(z @ beta)))
        grad = z.T @ (w * (p - y)) + pen * beta
        hess = (z * (w * p * (1 - p))[:, None]).T @ z + np.diag(pen) + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return LogisticAggregator(tuple(features), tuple(float(b) for b in beta[1:]), float(beta[0]),
                              tuple(float(c) for c in center), tuple(float(s) for s in scale), **kw)


class AggregatedNLI:
    """An :class:`NLIBackend` whose P(entailment) is a :class:`LogisticAggregator` over the readings of each
    pair: the whole premise and its document windows of ``words`` words, by ``inner`` (and ``partner``), plus
    the lexical features. The models see each distinct (reading, hypothesis) once per call."""

    def __init__(self, inner: NLIBackend, aggregator: LogisticAggregator, words: int,
                 partner: NLIBackend | None = None):
        if words < 1:
            raise ValueError(f"aggregator windows need words >= 1, got {words}")
        self.inner, self.partner, self.aggregator, self.words = inner, partner, aggregator, words
        self.threshold = aggregator.threshold
        members = inner.fingerprint + (f",{partner.fingerprint}" if partner is not None else "")
        self.fingerprint = f"aggregate({members}):documents-{words}:{aggregator.digest()}"

    def readings(self, premise: str) -> list[str]:
        """The whole premise first, then its windows (none when the whole premise is its only window)."""
        wins = [w for w in document_windows(premise, self.words) if w != premise]
        return [premise, *wins]

    def read(self, pairs: Sequence[Pair]) -> tuple[list[Readings], np.ndarray]:
        """Every pair's readings, from one batched call per model, and whether any of them was truncated."""
        flat: list[Pair] = []
        spans = []
        for p, h in pairs:
            parts = self.readings(p)
            spans.append((len(flat), len(flat) + len(parts)))
            flat.extend((w, h) for w in parts)
        uniq = list(dict.fromkeys(flat))
        pos = {q: i for i, q in enumerate(uniq)}
        idx = np.array([pos[q] for q in flat], dtype=np.int64)
        own = self.inner.predict(uniq)
        part = self.partner.predict(uniq).probs[idx] if self.partner is not None else None
        own_p, own_t = own.probs[idx], own.truncated[idx]
        hyp_words = {h: content_words(h) for h in {h for _, h in pairs}}
        cover = [_share(hyp_words[h], content_words(w)) for w, h in flat]
        out = [Readings(tuple(own_p[a:b].tolist()), None if part is None else tuple(part[a:b].tolist()),
                        tuple(cover[a:b])) for a, b in spans]
        truncated = np.array([bool(own_t[a:b].any()) for a, b in spans], dtype=bool)
        return out, truncated

    def feature_rows(self, pairs: Sequence[Pair]) -> tuple[list[dict[str, float]], np.ndarray]:
        readings, truncated = self.read(pairs)
        rows = [pair_features(r, p, h, self.aggregator.partner_weight)
                for r, (p, h) in zip(readings, pairs, strict=True)]
        return rows, truncated

    def predict(self, pairs: Sequence[Pair]) -> NLIPrediction:
        if not pairs:
            return NLIPrediction(np.zeros(0), np.zeros(0, dtype=bool))
        rows, truncated = self.feature_rows(pairs)
        return NLIPrediction(self.aggregator.prob(self.aggregator.matrix(rows)), truncated)
