"""Hard negatives for the judge's training pairs: entailed claims with a number, year, month or named entity
swapped (contradiction), and claims beside an unrelated premise (neutral); training split only."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from start.nli.pairs import NLIPair

_NUM_RE = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|(?<![\w.,])\d+(?:\.\d+)?(?![\w])")

_YEAR_RE = re.compile(r"^(1[5-9]\d\d|20[0-4]\d)$")

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

_MONTH_RE = re.compile(r"\b(" + "|".join(_MONTHS) + r")\b")

# Capitalised spans of 1-4 words ("New York", "Marie Curie"); joined by "of"/"de" inside names.
_ENT_RE = re.compile(r"\b[A-Z][a-zA-Z\-']+(?:\s+(?:of\s+|de\s+)?[A-Z][a-zA-Z\-']+){0,3}")

_STOP_ENTS = {
    "The",
    "A",
    "An",
    "In",
    "On",
    "At",
    "It",
    "He",
    "She",
    "They",
    "This",
    "That",
    "There",
    "As",
    "By",
    "For",
    "After",
    "Before",
    "During",
    "His",
    "Her",
    "Its",
    "Their",
    "LRB",
    "RRB",
    "Claim",
    "And",
    "But",
    "Of",
    "To",
    "With",
    "From",
    "Since",
    "When",
    "While",
    "Over",
    "Under",
    "Less",
    "More",
    "About",
    "Only",
    "No",
    "Not",
    "All",
    "Some",
    *_MONTHS,
}


def _num_value(tok: str) -> float:
    return float(tok.replace(",", ""))


def _format_like(value: float, template: str) -> str:
    decimals = len(template.split(".", 1)[1]) if "." in template else 0
    text = f"{value:,.{decimals}f}" if "," in template else f"{value:.{decimals}f}"
    return text


# Words that make a number a bound ("more than 200"): changing such a number may keep the claim true.
_BOUND_RE = re.compile(
    r"\b(more|less|fewer|over|under|above|below|at least|at most|nearly|almost|about|around|approximately"
    r"|roughly|up to|exceed\w*|before|after|since|until|by|within|than|between|some|estimated)\W*$",
    re.IGNORECASE,
)


def _swap_number(claim: str, premise: str, rng: random.Random) -> tuple[str, str] | None:
    """Replace one number in ``claim`` with a different value that does not occur in ``premise``.

    Only numbers the claim copies verbatim from the premise, and not stated as a bound ("more than 200",
    "before 1990"), are swapped: then the edited claim is false rather than possibly still true."""
    matches = [m for m in _NUM_RE.finditer(claim)]
    rng.shuffle(matches)
    premise_nums = set(_NUM_RE.findall(premise))
    for m in matches:
        tok = m.group(0)
        if tok not in premise_nums or _BOUND_RE.search(claim[max(0, m.start() - 30) : m.start()].replace("$", "")):
            continue
        if _YEAR_RE.match(tok):
            kind = "date"
            y = int(tok)
            cands = [str(y + d) for d in (-30, -12, -7, -3, -2, -1, 1, 2, 3, 5, 10, 25) if 1500 <= y + d <= 2049]
        else:
            kind = "number"
            v = _num_value(tok)
            factors = (0.5, 0.7, 0.8, 1.25, 1.5, 2.0, 3.0) if v >= 10 else ()
            cands = [_format_like(v * f, tok) for f in factors]
            cands += [_format_like(v + d, tok) for d in (-3, -2, -1, 1, 2, 4, 7) if v + d >= 0]
        cands = [c for c in dict.fromkeys(cands) if c != tok and c not in premise_nums and c not in premise]
        if cands:
            new = rng.choice(cands)
            return claim[: m.start()] + new + claim[m.end() :], kind
    return None


def _swap_month(claim: str, premise: str, rng: random.Random) -> str | None:
    m = _MONTH_RE.search(claim)
    if not m:
        return None
    cands = [x for x in _MONTHS if x != m.group(1) and x not in premise]
    return claim[: m.start()] + rng.choice(cands) + claim[m.end() :] if cands else None


def _entities(text: str) -> list[str]:
    ents = []
    for m in _ENT_RE.finditer(text):
        words = m.group(0).split()
        while words and words[0] in _STOP_ENTS:
            words = words[1:]
        if words and not (len(words) == 1 and len(words[0]) < 3):
            ents.append(" ".join(words))
    return ents


def _swap_entity(claim: str, premise: str, pool: Sequence[str], rng: random.Random) -> str | None:
    """Replace a capitalised entity of the claim with one from the premise (a close distractor) or, failing
    that, from a pool of train-split entities. The page subject (premise title) is kept, so the claim stays
    on-topic and the change is a factual error, not an off-topic sentence."""
    title = premise.split(": ", 1)[0] if ": " in premise else ""
    claim_ents = [e for e in _entities(claim) if e not in title and title not in e]
    if not claim_ents:
        return None
    target = rng.choice(claim_ents)
    local = [
        e
        for e in _entities(premise.split(": ", 1)[-1])
        if e not in claim and target not in e and e not in target and e not in title
    ]
    cands = local or [e for e in rng.sample(list(pool), min(30, len(pool))) if e not in premise and e != target]
    if not cands:
        return None
    return claim.replace(target, rng.choice(cands), 1)


def augment_hard_negatives(
    train: Sequence[NLIPair], seed: int, contradiction_ratio: float = 0.45, unrelated_ratio: float = 0.15
) -> list[NLIPair]:
    """Synthetic pairs from the TRAIN split only.

    * contradiction: an entailed claim with one number, year, month or named entity swapped
      (about ``contradiction_ratio`` x the number of entailed train pairs);
    * neutral: an entailed claim paired with the premise of a different group (an unrelated passage),
      about ``unrelated_ratio`` x the entailed count.
    Each synthetic pair keeps the group of the pair it came from."""
    if contradiction_ratio < 0 or unrelated_ratio < 0:
        raise ValueError("augmentation ratios must be >= 0")
    rng = random.Random(seed)
    entailed = [p for p in train if p.label == "entailment" and p.source == "vitaminc_fact_verification"]
    pool = sorted({e for p in entailed for e in _entities(p.hypothesis)})
    order = list(entailed)
    rng.shuffle(order)
    out: list[NLIPair] = []
    n_contra = int(round(contradiction_ratio * len(entailed)))
    for p in order:
        if len(out) >= n_contra:
            break
        # Prefer number/date edits (the scorer's main failure mode), then months, then entities.
        swapped = _swap_number(p.hypothesis, p.premise, rng)
        if swapped is not None:
            hyp, kind = swapped
        elif (m := _swap_month(p.hypothesis, p.premise, rng)) is not None:
            hyp, kind = m, "date"
        elif (e := _swap_entity(p.hypothesis, p.premise, pool, rng)) is not None:
            hyp, kind = e, "entity"
        else:
            continue
        out.append(NLIPair(p.premise, hyp, "contradiction", f"aug-{kind}", p.group))
        if len(out) >= n_contra:
            break
    n_unrel = int(round(unrelated_ratio * len(entailed)))
    premises = [p for p in train if p.source == "vitaminc_fact_verification"]
    for p in order[:n_unrel]:
        for _ in range(10):
            other = rng.choice(premises)
            if other.group != p.group:
                out.append(NLIPair(other.premise, p.hypothesis, "neutral", "aug-unrelated", p.group))
                break
    return out
