"""Number/date consistency guard, applied beside the NLI model (pure functions, no torch).

Rule: a hypothesis that states a number, a year or a month name that the premise does not state cannot be
entailed by it. Small NLI models are weakest exactly there ("completed in 1889" vs "in 1925" looks like a
near-copy), while the attribution scorer's job is to catch such edits. The rule is deliberately strict: a
hypothesis that *derives* a number (rounds "24 million" to "more than 23.5 million", adds two counts) is
rejected too; the model card reports what that costs on held-out data.

>>> numbers_consistent("The tower was completed in 1889.", "It was finished in 1889.")
True
>>> numbers_consistent("The tower was completed in 1889.", "It was finished in 1925.")
False
>>> numbers_consistent("She has three children.", "She has 3 children.")
True
"""

from __future__ import annotations

import re

_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "hundred": 100,
    "dozen": 12,
}
# Ordinal words ("first", "second") are left out on purpose: "her first novel", "a second look" are rarely
# quantities. Digit ordinals ("19th") are read as numbers.
_SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
_MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
# "May" is also a verb/name: only counted as a month when next to a day number or a year.
_AMBIGUOUS_MONTHS = {"may"}

_TOKEN_RE = re.compile(
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?:st|nd|rd|th)?"
    r"(?:\s*(?P<scale>thousand|million|billion|trillion)\b)?"
    r"|(?P<word>\b[a-z]+\b)",
    re.IGNORECASE,
)


def _canon(value: float) -> str:
    return f"{value:.6g}"


def extract_quantities(text: str) -> set[str]:
    """Canonical forms of every number (digits or number words, with their scale) and month in ``text``.

    "13 million" yields both "13" and "13000000"; "1,000" and "1000" give the same form."""
    out: set[str] = set()
    tokens = list(_TOKEN_RE.finditer(text))
    for i, m in enumerate(tokens):
        if m.group("num"):
            v = float(m.group("num").replace(",", ""))
            out.add(_canon(v))
            if m.group("scale"):
                out.add(_canon(v * _SCALES[m.group("scale").lower()]))
            continue
        w = m.group("word").lower()
        if w in _WORDS:
            v = _WORDS[w]
            nxt = tokens[i + 1].group("word") if i + 1 < len(tokens) and tokens[i + 1].group("word") else ""
            out.add(_canon(v))
            if nxt.lower() in _SCALES:
                out.add(_canon(v * _SCALES[nxt.lower()]))
        elif w in _MONTHS:
            if w in _AMBIGUOUS_MONTHS and m.group("word")[0].islower():
                continue
            out.add("month:" + w)
    return out


def numbers_consistent(premise: str, hypothesis: str) -> bool:
    """False when the hypothesis states a number/year/month that the premise does not state."""
    hyp = extract_quantities(hypothesis)
    if not hyp:
        return True
    return hyp <= extract_quantities(premise)


def guarded_entailment(p_entail: float, premise: str, hypothesis: str, threshold: float) -> bool:
    """The scorer's decision with the guard: model says entailed AND the numbers are consistent."""
    return p_entail >= threshold and numbers_consistent(premise, hypothesis)
