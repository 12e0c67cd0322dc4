"""The embedded data set's questions about one, two or three elements: answer material read from an element's
fields and prose (discoverer aliases, uses), template phrasings, and the question, short answers and claims each
template makes (before the quality gates of :mod:`start.data.builder.build`).

Short factual questions need one passage (who discovered X, when, where, what is X used for, which element has
atomic number N or symbol S, ...). The others need two or three passages and several sentences: a fact and a use
of one element, the long-form discovery (who, when, where) and uses of an element, comparisons of two elements
(discoveries, uses, years, atomic numbers) and "which of these three was discovered first". They carry ELI5-style
``claims`` (one fact per sentence) besides ASQA-style ``qa_pairs``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from start.data.builder.elements import Element, _join, _places, split_sentences
from start.data.records import Passage

_ORG_WORDS = re.compile(r"Institute|Laborator|Centre|Center|Research|RIKEN|Argonne|Alamos|\bU\.? of\b|Nobel")


def discoverer_aliases(discoverers: str, limit: int = 2) -> list[list[str]]:
    """Alias lists for the first ``limit`` discoverers: the name as written and, for people, the surname.

    >>> discoverer_aliases("G.T.Seaborg, S.G.Tompson, A.Ghiorso")
    [['G.T.Seaborg', 'Seaborg'], ['S.G.Tompson', 'Tompson']]
    >>> discoverer_aliases("Pierre and Marie Curie")
    [['Pierre and Marie Curie', 'Curie']]
    """
    names = [n.strip().rstrip(".").strip() for n in re.split(r"[,;/]", discoverers)]
    names = [re.sub(r"\s+Jr$", "", n) for n in names if n and n.lower() not in {"et al", "et al."}]
    out = []
    for name in names[:limit]:
        if _ORG_WORDS.search(name):
            abbrev = re.search(r"\(([A-Z]{2,})\)", name)
            out.append([name] + ([abbrev.group(1)] if abbrev else []))
        else:
            surname = re.split(r"[\s.]+", name.strip())[-1]
            out.append([name] if surname == name else [name, surname])
    return out


# "used in/as/for ..." clauses; the words after the preposition, up to punctuation, name the use.
_USE_RE = re.compile(r"\b(used)\s+((?:mainly|mostly|chiefly|primarily|widely|also|extensively|commonly)\s+)?"
                     r"(in|as|for|to|by|on|with)\s+([^,.;:()]+)", re.IGNORECASE)

_GENERIC = frozenset("""
production produce producing manufacture making make made other various many some certain number variety
form forms type types compound compounds small amounts amount quantities large applications application
research purposes purpose products product industry industries element elements metal metals also such
well because which where being them their give gives given used uses using useful very most more much
world great deal important especially often commonly mainly chiefly widely several special known three
two four five first second high higher low lower source sources agent agents material materials process
processes sometimes called other others include including temperature almost modest increase prevent quality
treat treating obtain strong expensive items degree improve definition points works color colour maker
substitute substitue economical unreactive inert gases high-grade high-intensity high-strength filling
high-performance light electrical electric procedures technology equipment industrial resistant control
standard apparatus products reasons""".split())


def use_clauses(text: str, exclude: Sequence[str] = (), per_clause: int = 3) -> list[tuple[str, list[str]]]:
    """The "used in/as/for ..." clauses of a passage that name a use, each with its key words.

    Per clause, the first ``per_clause`` content words (5+ letters, not generic, not a past participle,
    not in ``exclude``) up to a relative clause or conjunction; clauses without one are left out.

    >>> use_clauses("Most hydrogen is used in the production of ammonia. Also used in balloons.")
    [('in the production of ammonia', ['ammonia']), ('in balloons', ['balloons'])]
    """
    banned = {w.lower() for w in exclude}
    out: list[tuple[str, list[str]]] = []
    for m in _USE_RE.finditer(text):
        phrase = m.group(4).strip()
        phrase = re.split(r"\s+(?:that|which|who|whose|where|because|since|when|but|while|so|such|caused|"
                          r"due|than)\b", phrase)[0]
        words = [w.lower() for w in re.findall(r"[A-Za-z][A-Za-z-]+", phrase)]
        keep = [w for w in words if len(w) >= 5 and w not in _GENERIC and w not in banned
                and not w.endswith("ed")][:per_clause]
        if keep:
            out.append((f"{m.group(3).lower()} {phrase}", keep))
    return out


def use_terms(text: str, exclude: Sequence[str] = (), per_clause: int = 3) -> tuple[list[str], str | None]:
    """Key words of the "used ..." clauses of a passage (:func:`use_clauses`), and the first clause.

    >>> use_terms("Most hydrogen is used in the production of ammonia. Also used in balloons.")
    (['ammonia', 'balloons'], 'in the production of ammonia')
    """
    clauses = use_clauses(text, exclude, per_clause)
    terms: list[str] = []
    for _, keep in clauses:
        terms += [w for w in keep if w not in terms]
    return terms, clauses[0][0] if clauses else None


_YEAR_RE = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})\b")


def conflicting_year(el: Element, prose: Sequence[Passage]) -> bool:
    """True when the element's prose names a discovery year other than the database's."""
    for p in prose:
        for s in split_sentences(p.text):
            if re.search(r"discover|isolat", s, re.IGNORECASE):
                if any(int(y) != el.year for y in _YEAR_RE.findall(s)):
                    return True
    return False


# -------------------------------------------------------------------------------------------- questions

PHRASINGS: dict[str, tuple[str, ...]] = {
    "discoverer": ("Who discovered {name}?", "Who is credited with the discovery of {name}?",
                   "{Name} was discovered by whom?", "Which scientists or laboratory first identified {name}?"),
    "year": ("When was {name} discovered?", "In what year was {name} discovered?",
             "What year did the discovery of {name} take place?", "{Name} was discovered in which year?"),
    "location": ("In which country was {name} discovered?", "Where was {name} discovered?",
                 "Which country is credited as the place where {name} was first found?"),
    "uses": ("What is {name} used for?", "What are some uses of {name}?",
             "Name a common application of {name}.", "How is {name} used?"),
    "atomic_number": ("What is the atomic number of {name}?", "How many protons does an atom of {name} have?",
                      "Which atomic number does {name} have?"),
    "by_number": ("Which element has atomic number {number}?",
                  "What is the chemical element with atomic number {number}?",
                  "Name the element whose atoms have {number} protons."),
    "by_symbol": ("Which element has the chemical symbol {symbol}?", "What element does the symbol {symbol} "
                  "stand for?", "The symbol {symbol} denotes which chemical element?"),
    "name_language": ("From which language does the name {name} come?",
                      "What language is the name of {name} derived from?"),
    "discoverer_uses": ("Who discovered {name}, and what is it used for?",
                        "Who first identified {name}, and what is it used for today?",
                        "Name the discoverer of {name} and one of its uses."),
    "year_uses": ("When was {name} discovered, and what is it used for?",
                  "In which year was {name} discovered, and what is it used for?"),
    "location_uses": ("Where was {name} discovered, and what is it used for?",
                      "In which country was {name} first found, and what is it used for?"),
    "atomic_number_uses": ("What is the atomic number of {name}, and what is it used for?",
                           "Give the atomic number of {name} and one of its uses."),
    "discovery_uses": ("Who discovered {name}, when and where, and what is it used for?",
                       "Describe the discovery of {name} (who, when and where) and what it is used for.",
                       "Tell me how {name} was discovered and how it is used today."),
    "compare_year": ("Which was discovered first, {a} or {b}?", "Was {a} or {b} discovered earlier?",
                     "Which element is older as a discovery: {a} or {b}?"),
    "compare_number": ("Which has the higher atomic number, {a} or {b}?",
                       "Does {a} or {b} have more protons in its nucleus?"),
    "compare_discovery": ("Who discovered {a} and {b}, and when?",
                          "Compare the discoveries of {a} and {b}: who made each, and in which year?"),
    "compare_uses": ("What are {a} and {b} used for?", "Compare the uses of {a} and {b}.",
                     "How are {a} and {b} used?"),
    "which_first": ("Which of these elements was discovered first: {a}, {b} or {c}? Give each one's "
                    "discovery year.",
                    "Of {a}, {b} and {c}, which was discovered earliest, and when was each of them discovered?"),
}

SINGLE_TEMPLATES = ("discoverer", "year", "location", "uses", "atomic_number", "by_number", "by_symbol",
                    "name_language")

# Two passages of one element: a fact from the facts passage and a use from the prose.
PAIR_TEMPLATES = ("discoverer_uses", "year_uses", "location_uses", "atomic_number_uses")

# Long-form, one element: who, when and where (facts passage) and its uses (prose), several sentences.
LONG_TEMPLATES = ("discovery_uses",)

# Two or three elements: their facts passages (their prose passages for compare_uses).
COMPARISON_TEMPLATES = ("compare_year", "compare_number", "compare_discovery", "compare_uses", "which_first")

TWO_DOC_TEMPLATES = PAIR_TEMPLATES + LONG_TEMPLATES + COMPARISON_TEMPLATES

ELEMENTS_PER_QUESTION = {"which_first": 3}  # comparisons not named here are about two elements


@dataclass(frozen=True)
class _Facts:
    """What the question templates need about one element."""

    el: Element
    facts: Passage
    prose: tuple[Passage, ...]
    use_passage: Passage | None
    use_terms: tuple[str, ...]
    use_clause: str | None
    year_ok: bool
    use_clauses: tuple[str, ...] = ()  # every "used ..." clause of use_passage that names a use

    @property
    def discovered(self) -> bool:
        """Discoverers and a year not contradicted by the prose: the discovery can be asked about."""
        return bool(self.el.discoverers) and self.year_ok


def _element_facts(el: Element, passages: Sequence[Passage], all_names: Sequence[str] = ()) -> _Facts:
    facts = passages[-1]
    prose = tuple(passages[:-1])
    use_passage, terms, clause, clauses = None, [], None, []
    for p in prose:
        # Other elements' names are no answer to "what is X used for" (they are ambiguous as a use).
        clauses = use_clauses(p.text, exclude=(el.name, el.symbol, *all_names))
        if clauses:
            use_passage = p
            terms, clause = use_terms(p.text, exclude=(el.name, el.symbol, *all_names))
            break
    year_ok = bool(el.year) and not el.ancient and not conflicting_year(el, prose)
    return _Facts(el, facts, prose, use_passage, tuple(terms[:6]), clause, year_ok,
                  tuple(dict.fromkeys(c for c, _ in clauses)))


def _qa(question: str, aliases: Sequence[str]) -> dict[str, Any]:
    return {"question": question, "short_answers": list(aliases)}


# Claims (ELI5 style): one fact each, a plain sentence a gold passage states. The builder keeps a claim only
# when the bundled NLI model finds it entailed by a gold passage (verify_claims).

def _claim(kind: str, el: Element) -> str:
    # Phrasings close to the facts passage's wording: the bundled NLI judge accepts 85-95% of them
    # (fewer for "X was discovered in <country>." alone, hence the year in the location claim).
    if kind == "discoverer":
        return f"{el.name} was discovered by {el.discoverers.rstrip('.')} in {el.year}."
    if kind == "year":
        return f"The discovery of {el.name.lower()} was in {el.year}."
    if kind == "location":
        return f"{el.name} was discovered in {el.year} in {_join(_places(el.location)[:2])}."
    if kind == "atomic_number":
        return f"The atomic number of {el.name.lower()} is {el.number}."
    raise ValueError(f"no claim for {kind!r}")


def _use_claims(f: _Facts, limit: int = 2) -> list[str]:
    return [f"{f.el.name} is used {c}." for c in f.use_clauses[:limit]]


def _uses_sentence(f: _Facts, subject: str, limit: int = 2) -> str:
    return f"{subject} is used " + " and ".join(f.use_clauses[:limit]) + "."


def _single(kind: str, f: _Facts, q: str) -> dict[str, Any] | None:
    """The qa_pairs, gold passages and reference answer of a one-element question (None: not available)."""
    el = f.el
    fmt = {"name": el.name.lower(), "Name": el.name, "number": el.number, "symbol": el.symbol}
    sub = {k: PHRASINGS[k][0].format(**fmt) for k in PHRASINGS if k not in COMPARISON_TEMPLATES}
    if kind in ("discoverer", "discoverer_uses", "year", "year_uses", "location", "location_uses",
                "discovery_uses") and (el.ancient or not el.discoverers or not el.year):
        return None
    if kind in ("uses", *PAIR_TEMPLATES, *LONG_TEMPLATES) and not f.use_passage:
        return None
    if kind in ("year", "year_uses", "discovery_uses") and not f.year_ok:
        return None
    if kind == "discoverer":
        aliases = discoverer_aliases(el.discoverers)
        return {"qa_pairs": [_qa(q, a) for a in aliases], "gold": [f.facts],
                "answer": f"{el.name} was discovered by {el.discoverers.rstrip('.')}."}
    if kind == "year":
        return {"qa_pairs": [_qa(q, [str(el.year)])], "gold": [f.facts],
                "answer": f"{el.name} was discovered in {el.year}."}
    if kind == "location":
        if not el.location:
            return None
        places = _places(el.location)[:2]
        return {"qa_pairs": [_qa(q, [p]) for p in places], "gold": [f.facts],
                "answer": f"{el.name} was discovered in {_join(places)}."}
    if kind == "uses":
        return {"qa_pairs": [_qa(q, f.use_terms)], "gold": [f.use_passage],
                "answer": f"{el.name} is used {f.use_clause}."}
    if kind == "atomic_number":
        if el.number < 10:  # a one-digit answer matches almost any output under a substring check
            return None
        return {"qa_pairs": [_qa(q, [str(el.number)])], "gold": [f.facts],
                "answer": f"The atomic number of {el.name.lower()} is {el.number}."}
    if kind == "by_number":
        return {"qa_pairs": [_qa(q, [el.name])], "gold": [f.facts],
                "answer": f"{el.name} has atomic number {el.number}."}
    if kind == "by_symbol":
        return {"qa_pairs": [_qa(q, [el.name])], "gold": [f.facts],
                "answer": f"{el.symbol} is the symbol of {el.name.lower()}."}
    if kind == "name_language":
        m = re.match(r"([A-Z][A-Za-z-]+):", el.name_origin or "")
        if not m:
            return None
        return {"qa_pairs": [_qa(q, [m.group(1)])], "gold": [f.facts],
                "answer": f"The name {el.name.lower()} comes from {m.group(1)}."}
    if kind in PAIR_TEMPLATES:
        base = kind.removesuffix("_uses")
        first = _single(base, f, sub[base])
        uses = _single("uses", f, sub["uses"])
        if first is None or uses is None:
            return None
        return {"qa_pairs": first["qa_pairs"] + uses["qa_pairs"], "gold": first["gold"] + uses["gold"],
                "answer": first["answer"] + " " + _uses_sentence(f, "It", 1),
                "claims": [_claim(base, el), *_use_claims(f, 2)]}
    if kind == "discovery_uses":
        disc = discoverer_aliases(el.discoverers)
        places = _places(el.location)[:2] if el.location else []
        where = f" in {_join(places)}" if places else ""
        return {"qa_pairs": [_qa(sub["discoverer"], disc[0]), _qa(sub["year"], [str(el.year)]),
                             *([_qa(sub["location"], places[:1])] if places else []),
                             _qa(sub["uses"], f.use_terms)],
                "gold": [f.facts, f.use_passage],
                "answer": f"{el.name} was discovered by {el.discoverers.rstrip('.')} in {el.year}{where}. "
                          + _uses_sentence(f, "It"),
                "claims": [_claim("discoverer", el), *([_claim("location", el)] if places else []),
                           *_use_claims(f, 3)]}
    raise ValueError(f"unknown template {kind!r}")


def _comparison(kind: str, fs: Sequence[_Facts]) -> dict[str, Any]:
    """A question about two or three elements. The qa_pairs are values checkable by substring (years,
    atomic numbers, discoverers, use words); a winner, when the question asks for one, is kept in
    ``answer_entity`` (a substring check cannot grade it: answers name every element)."""
    def sub(k: str, x: _Facts) -> str:
        return PHRASINGS[k][0].format(name=x.el.name.lower())

    if kind in ("compare_year", "which_first"):
        by_year = sorted(fs, key=lambda x: x.el.year)
        first, rest = by_year[0], by_year[1:]
        answer = f"{first.el.name} was discovered first, in {first.el.year}. " + " ".join(
            f"{x.el.name} was discovered in {x.el.year}." for x in rest)
        return {"qa_pairs": [_qa(sub("year", x), [str(x.el.year)]) for x in fs], "gold": [x.facts for x in fs],
                "answer": answer, "answer_entity": first.el.name, "claims": [_claim("year", x.el) for x in fs]}
    if kind == "compare_number":
        a, b = fs
        high, low = (a, b) if a.el.number > b.el.number else (b, a)
        return {"qa_pairs": [_qa(sub("atomic_number", x), [str(x.el.number)]) for x in fs],
                "gold": [x.facts for x in fs],
                "answer": f"{high.el.name} has the higher atomic number, {high.el.number}. {low.el.name} has "
                          f"atomic number {low.el.number}.",
                "answer_entity": high.el.name, "claims": [_claim("atomic_number", x.el) for x in fs]}
    if kind == "compare_discovery":
        first = min(fs, key=lambda x: x.el.year)
        return {"qa_pairs": [qa for x in fs for qa in (_qa(sub("discoverer", x), discoverer_aliases(
                    x.el.discoverers)[0]), _qa(sub("year", x), [str(x.el.year)]))],
                "gold": [x.facts for x in fs],
                "answer": " ".join(f"{x.el.name} was discovered by {x.el.discoverers.rstrip('.')} in "
                                   f"{x.el.year}." for x in fs),
                "answer_entity": first.el.name,
                "claims": [_claim("discoverer", x.el) for x in fs]}
    if kind == "compare_uses":
        return {"qa_pairs": [_qa(sub("uses", x), x.use_terms) for x in fs], "gold": [x.use_passage for x in fs],
                "answer": " ".join(_uses_sentence(x, x.el.name) for x in fs),
                "claims": [c for x in fs for c in _use_claims(x, 3)]}
    raise ValueError(f"unknown comparison {kind!r}")


def _comparable(kind: str, fs: Sequence[_Facts]) -> bool:
    if kind in ("compare_year", "which_first"):
        return all(x.year_ok for x in fs) and len({x.el.year for x in fs}) == len(fs)
    if kind == "compare_number":
        return all(x.el.number >= 10 for x in fs)  # one-digit answers are not checkable by substring
    if kind == "compare_discovery":
        return all(x.discovered for x in fs) and len({x.el.year for x in fs}) == len(fs)
    if kind == "compare_uses":
        return all(x.use_passage is not None for x in fs)
    raise ValueError(f"unknown comparison {kind!r}")
