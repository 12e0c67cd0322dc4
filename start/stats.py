"""Statistics over held-out questions: per-question means, bootstrap intervals and paired differences.

A question's value of a metric is the mean over its samples; the data-set value is the mean over
questions (``citation_f1`` is the harmonic mean of the data-set recall and precision, as in the scorer).
An empty answer counts 0 in citation recall and precision (the scorer leaves it out of its own means, as
the reference does; here a policy must not gain by saying nothing). Intervals resample questions with
replacement (``n_boot`` times, seeded) and take the 2.5th and 97.5th percentiles of each statistic,
recomputing ``citation_f1`` inside every replicate. Paired differences compare two evaluations on exactly the
same questions: a metric not measurable for a question in either evaluation is left out of both.

Used by the evaluation (:mod:`start.evaluate`) and the position-shortcut baselines and margins
(:mod:`start.shortcuts`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

# per-record attribute -> reported metric (0-100 except length)
PER_RECORD = {"citation_rec": "citation_rec", "citation_prec": "citation_prec", "str_em": "str_em",
              "str_hit": "str_hit", "claims_nli": "claims_nli", "comprehensiveness": "comprehensiveness",
              "robustness": "robustness", "length": "length", "nonexistent_citation_rate": "nonexistent_citation_rate"}
EMPTY_IS_ZERO = ("citation_rec", "citation_prec")  # None only for an empty answer: it cites nothing


def per_question(records: Sequence, question_of) -> dict[str, np.ndarray]:
    """Matrix of per-question means: metric -> array over questions (NaN where not measurable)."""
    groups: dict[str, list] = defaultdict(list)
    for r in records:
        groups[question_of(r.id)].append(r)
    out: dict[str, list[float]] = {m: [] for m in PER_RECORD}
    for rs in groups.values():
        for attr, name in PER_RECORD.items():
            vals = [getattr(r, attr, None) for r in rs]  # a metric a record lacks is not measurable
            if attr in EMPTY_IS_ZERO:
                vals = [0.0 if v is None else v for v in vals]
            vals = [float(v) for v in vals if v is not None]
            out[name].append(float(np.mean(vals)) if vals else np.nan)
    return {k: np.array(v) for k, v in out.items()}


def point_estimates(cols: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, float]:
    """The data-set value of every column over the questions ``idx`` (x100 except length), and citation F1."""
    res = {}
    for name, col in cols.items():
        vals = col[idx]
        vals = vals[~np.isnan(vals)]
        if vals.size:
            res[name] = float(vals.mean()) * (1 if name == "length" else 100)
    if "citation_rec" in res and "citation_prec" in res:
        r, p = res["citation_rec"], res["citation_prec"]
        res["citation_f1"] = 0.0 if r + p == 0 else 2 * r * p / (r + p)
    return res


def bootstrap(cols: dict[str, np.ndarray], n_boot: int = 1000, seed: int = 0) -> dict[str, dict[str, float]]:
    """Point estimates and 95% percentile intervals: metric -> {value, low, high}."""
    n = len(next(iter(cols.values())))
    point = point_estimates(cols, np.arange(n))
    rng = np.random.default_rng(seed)
    reps: dict[str, list[float]] = defaultdict(list)
    for _ in range(n_boot):
        for k, v in point_estimates(cols, rng.integers(0, n, n)).items():
            reps[k].append(v)
    return {k: {"value": v, "low": float(np.percentile(reps[k], 2.5)), "high": float(np.percentile(reps[k], 97.5))}
            for k, v in point.items()}


def paired_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray], n_boot: int = 1000,
                      seed: int = 0) -> dict[str, dict[str, float]]:
    """``b - a`` per metric on the same questions (rows aligned), with a 95% interval from resampling
    questions jointly: tighter than comparing two separate intervals, and the right test of "did it rise".
    A question whose value is NaN in either evaluation is left out of that metric on both sides (citation
    recall and precision together, since F1 combines them), so every difference compares the same questions.
    """
    n = len(next(iter(a.values())))
    if any(len(v) != n for v in (*a.values(), *b.values())):
        raise ValueError("paired_difference needs the same questions in both evaluations (rows aligned)")
    a, b = _joint_mask(a, b), _joint_mask(b, a)
    point_a, point_b = point_estimates(a, np.arange(n)), point_estimates(b, np.arange(n))
    rng = np.random.default_rng(seed)
    reps: dict[str, list[float]] = defaultdict(list)
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        sa, sb = point_estimates(a, idx), point_estimates(b, idx)
        for k in sa.keys() & sb.keys():
            reps[k].append(sb[k] - sa[k])
    return {k: {"value": point_b[k] - point_a[k], "low": float(np.percentile(reps[k], 2.5)),
                "high": float(np.percentile(reps[k], 97.5))} for k in point_a.keys() & point_b.keys() if reps[k]}


def _joint_mask(x: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``x`` with NaN wherever ``x`` or ``y`` has none for the metric (or its F1 partner)."""
    out = {}
    for k, col in x.items():
        group = EMPTY_IS_ZERO if k in EMPTY_IS_ZERO else (k,)
        bad = np.zeros(len(col), dtype=bool)
        for g in group:
            for src in (x, y):
                if g in src:
                    bad |= np.isnan(src[g])
        out[k] = np.where(bad, np.nan, col)
    return out
