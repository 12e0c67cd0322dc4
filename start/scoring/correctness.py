"""Correctness metrics that need no model: ASQA string EM, QAMPARI list F1, yes/no accuracy, length.

All take the *normalised* output (first line kept, citations removed), as the reference does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from start.text import normalize_answer


def exact_presence(short_answers: Sequence[str], context: str) -> bool:
    """True when any normalised alias occurs as a substring of the normalised context (ALCE STR-EM)."""
    ctx = normalize_answer(context)
    return any(normalize_answer(a) in ctx for a in short_answers)


def str_em(short_answers: Sequence[Sequence[str]], output: str) -> float:
    """Share of sub-questions (ASQA ``qa_pairs``) whose short answer appears in the output."""
    return sum(exact_presence(aliases, output) for aliases in short_answers) / len(short_answers)


@dataclass(frozen=True)
class QampariScores:
    num_preds: int
    prec: float
    rec: float
    rec_top5: float
    f1: float
    f1_top5: float


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def qampari_scores(answers: Sequence[Sequence[str]], output: str) -> QampariScores:
    """QAMPARI list metrics: the output is a comma-separated list of answers (ALCE definition)."""
    preds = [normalize_answer(x.strip()) for x in output.rstrip().rstrip(".").rstrip(",").split(",")]
    preds = [p for p in preds if p]
    gold = [[normalize_answer(a) for a in aliases] for aliases in answers]
    flat = {a for aliases in gold for a in aliases}
    prec = sum(p in flat for p in preds) / len(preds) if preds else 0.0
    hits = sum(any(a in preds for a in aliases) for aliases in gold)
    rec = hits / len(gold)
    rec5 = min(5, hits) / min(5, len(gold))
    return QampariScores(len(preds), prec, rec, rec5, _f1(prec, rec), _f1(prec, rec5))


def yes_no_prediction(output: str) -> bool | None:
    """The first "yes" or "no" word of the normalised output, or None when there is neither.

    The reference has no StrategyQA scorer; this is the usual reading of a yes/no answer.
    """
    for word in normalize_answer(output).split():
        if word == "yes":
            return True
        if word == "no":
            return False
    return None


def length_in_words(output: str) -> int:
    """Answer length as the reference counts it: white-space separated tokens."""
    return len(output.split())
