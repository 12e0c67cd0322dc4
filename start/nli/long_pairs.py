"""Long, multi-document premises for the passage judges' training pairs.

The scorer's premises are cited passages: ~100-word Wikipedia snippets, "Title: <title>\\n<text>", several joined
by newlines. VitaminC evidence is one ~30-word sentence. These builders re-shape train pairs into that form,
keeping each pair's label: the evidence sentence is packed with other sentences of the same page into a passage,
passages of other pages are added as distractors, and two claims are joined into one hypothesis that needs two
passages together (both given: entailed; one missing: neutral).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from start.nli.pairs import NLIPair

_DETOK = ((re.compile(r" ([,.;:!?%)\]])"), r"\1"), (re.compile(r"([(\[$]) "), r"\1"),
          (re.compile(r" (n't|'s) "), r"\1 "), (re.compile(r"-LRB- ?"), "("), (re.compile(r" ?-RRB-"), ")"))

_JOIN_LOWER = {"The", "A", "An", "In", "It", "He", "She", "They", "This", "There", "His", "Her", "Its", "Their",
               "As", "On", "At", "By", "For", "After", "Before", "During", "Since", "When", "While", "Over"}


def detokenize(text: str) -> str:
    """Undo VitaminC's tokenised spacing ("Germany , there" -> "Germany, there")."""
    for pattern, repl in _DETOK:
        text = pattern.sub(repl, text)
    return text


def _title_and_evidence(premise: str) -> tuple[str, str]:
    title, sep, evidence = premise.partition(": ")
    return (title, evidence) if sep else ("", premise)


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def _near_duplicate(a: str, b: str, limit: float = 0.3) -> bool:
    """Token Jaccard overlap above ``limit``: VitaminC pages hold many revisions of one sentence, which must
    not be packed beside each other (a revision can state the opposite of the evidence)."""
    wa, wb = _words(a), _words(b)
    return bool(wa and wb) and len(wa & wb) / len(wa | wb) > limit


def _context_pool(pairs: Sequence[NLIPair]) -> dict[str, tuple[str, list[str]]]:
    """Per VitaminC group: page title and its distinct evidence sentences (detokenised)."""
    pool: dict[str, tuple[str, list[str]]] = {}
    for p in pairs:
        if p.source != "vitaminc_fact_verification":
            continue
        title, ev = _title_and_evidence(p.premise)
        entry = pool.setdefault(p.group, (detokenize(title), []))
        ev = detokenize(ev)
        if ev not in entry[1]:
            entry[1].append(ev)
    return pool


def _passage(title: str, evidence: str | None, others: Sequence[str], words: int, rng: random.Random) -> str:
    """A "Title: <title>\\n<text>" passage of about ``words`` words: ``evidence`` at a random position among
    sentences of the same page that are not revisions of it (or of each other)."""
    chosen: list[str] = [evidence] if evidence else []
    n = len(evidence.split()) if evidence else 0
    for s in rng.sample(list(others), len(others)):
        if n >= words:
            break
        if any(_near_duplicate(s, c) for c in chosen):
            continue
        chosen.append(s)
        n += len(s.split())
    if evidence:
        chosen.remove(evidence)
        chosen.insert(rng.randint(0, len(chosen)), evidence)
    return f"Title: {title}\n" + " ".join(chosen)


def _join_claims(a: str, b: str) -> str:
    a, b = a.strip().rstrip("."), b.strip()
    first = b.split(" ", 1)[0]
    if first in _JOIN_LOWER:
        b = b[0].lower() + b[1:]
    return f"{a}, and {b}"


def long_premise_pairs(
    train: Sequence[NLIPair],
    seed: int,
    n_packed: int,
    n_joint: int,
    words: tuple[int, int] = (60, 120),
    max_docs: int = 3,
) -> list[NLIPair]:
    """Train-split pairs re-shaped like the scorer's premises (labels kept; all from ``train`` only).

    * ``long-packed`` (``n_packed``): a VitaminC pair (original or hard negative) whose evidence sits inside a
      passage of its page (``words`` words), in half of them beside 1-2 passages of other pages;
    * ``long-joint`` / ``long-partial`` / ``long-joint-contradiction`` (``n_joint`` in all, 50/30/20%):
      hypothesis = two claims of two pages joined with "and"; premise = both passages (entailment), one
      passage and a distractor (neutral: only part is supported), or the other claim's evidence refutes it
      (contradiction).
    Each pair keeps the group of the pair it was built from."""
    rng = random.Random(seed + 1)
    pool = _context_pool(train)
    groups = sorted(pool)
    vc = [p for p in train if p.source == "vitaminc_fact_verification" or p.source.startswith("aug-")]
    vc = [p for p in vc if p.group in pool]
    if not vc or (n_packed == 0 and n_joint == 0):
        return []

    def passage_for(p: NLIPair) -> str:
        title, ev = _title_and_evidence(p.premise)
        ev = detokenize(ev)
        others = [s for s in pool[p.group][1] if not _near_duplicate(s, ev)]
        n = rng.randint(*words)
        if sum(len(s.split()) for s in others) + len(ev.split()) < n:
            # A short page: fill the passage with sentences of another page (never a revision of the evidence).
            g = rng.choice(groups)
            if g != p.group:
                others += [s for s in pool[g][1] if not _near_duplicate(s, ev)]
        return _passage(detokenize(title), ev, others, n, rng)

    def distractor(exclude: str) -> str:
        for _ in range(20):
            g = rng.choice(groups)
            if g != exclude:
                title, sents = pool[g]
                return _passage(title, None, sents, rng.randint(*words), rng)
        raise RuntimeError("no distractor page found")

    def docs_with_distractors(docs: list[str], group: str, k: int) -> str:
        docs = docs + [distractor(group) for _ in range(k)]
        rng.shuffle(docs)
        return "\n".join(docs)

    out: list[NLIPair] = []
    for p in rng.sample(vc, min(n_packed, len(vc))):
        k = rng.choice((0, 0, 1, 2)) if max_docs > 1 else 0
        premise = docs_with_distractors([passage_for(p)], p.group, min(k, max_docs - 1))
        out.append(NLIPair(premise, detokenize(p.hypothesis), p.label, "long-packed", p.group))

    entailed = [p for p in train if p.source == "vitaminc_fact_verification" and p.label == "entailment"
                and p.group in pool]
    contra = [p for p in train if p.source == "vitaminc_fact_verification" and p.label == "contradiction"
              and p.group in pool]
    kinds = ["long-joint"] * 5 + ["long-partial"] * 3 + ["long-joint-contradiction"] * 2
    made = 0
    while made < n_joint and len(entailed) > 1:
        kind = kinds[made % len(kinds)]
        a = rng.choice(entailed)
        b = rng.choice(contra if kind == "long-joint-contradiction" and contra else entailed)
        if a.group == b.group:
            continue
        hyp = _join_claims(detokenize(a.hypothesis), detokenize(b.hypothesis))
        if rng.random() < 0.5:
            hyp = _join_claims(detokenize(b.hypothesis), detokenize(a.hypothesis))
        if kind == "long-partial":
            docs, label = [passage_for(a), distractor(b.group)], "neutral"
            if rng.random() < 0.5:
                docs = [passage_for(b), distractor(a.group)]
        else:
            docs = [passage_for(a), passage_for(b)]
            label = "entailment" if kind == "long-joint" else "contradiction"
        extra = 1 if max_docs > 2 and rng.random() < 0.3 else 0
        premise = docs_with_distractors(docs, a.group, extra)
        out.append(NLIPair(premise, hyp, label, kind, a.group))
        made += 1
    return out
