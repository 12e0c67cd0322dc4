"""A labelled NLI pair (premise, hypothesis, entailment / neutral / contradiction), the unit of a judge's training
data, and the label counts the data card and ``start_nli.json`` report."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

LABELS: tuple[str, ...] = ("entailment", "neutral", "contradiction")

LABEL2ID: dict[str, int] = {name: i for i, name in enumerate(LABELS)}


@dataclass(frozen=True)
class NLIPair:
    """One labelled pair. ``group`` keeps related rows (same page / same scene) in one split."""

    premise: str
    hypothesis: str
    label: str  # one of LABELS
    source: str  # task name, or "aug-<kind>" for synthetic pairs
    group: str

    def __post_init__(self) -> None:
        if self.label not in LABEL2ID:
            raise ValueError(f"label must be one of {LABELS}, got {self.label!r}")
        if not self.premise.strip() or not self.hypothesis.strip():
            raise ValueError(f"empty premise or hypothesis in {self.source} pair (group {self.group!r})")


def label_counts(pairs: Iterable[NLIPair]) -> dict[str, dict[str, int]]:
    """``{source: {label: n}}`` plus an ``"all"`` row; used by the data card and start_nli.json."""
    table: dict[str, Counter] = defaultdict(Counter)
    for p in pairs:
        table[p.source][p.label] += 1
        table["all"][p.label] += 1
    return {s: {lab: c[lab] for lab in LABELS} for s, c in sorted(table.items())}
