"""The embedded default data set: passages and checkable questions about the chemical elements.

Everything is derived, deterministically, from the SQLite database bundled in the PyPI package
``mendeleev`` (MIT licence). The database is read directly with :mod:`sqlite3`; ``mendeleev`` itself is
never imported (it would pull in pandas and SQLAlchemy for nothing).

Corpus (``corpus.jsonl``): per element, its prose (``description``, ``sources``, ``uses``; written by the
database authors) packed at sentence boundaries into passages of at most ~100 words, like ALCE's 100-word
Wikipedia passages, plus one "facts" passage rendered from the structured fields (symbol, atomic number,
position in the table, discoverers, year and place of discovery, name origin, melting and boiling points),
as an encyclopedia infobox would read in prose. Every passage is titled with the element name.

Questions (``train/dev/test.jsonl``, ALCE layout): template questions with several phrasings each. Short
factual ones need one passage (who discovered X, when, where, what is X used for, which element has atomic
number N or symbol S, ...). The others need two or three passages and several sentences: a fact and a use
of one element, the long-form discovery (who, when, where) and uses of an element, comparisons of two
elements (discoveries, uses, years, atomic numbers) and "which of these three was discovered first". They
carry ELI5-style ``claims`` (one fact per sentence, each entailed by a gold passage under the bundled NLI
model, checked when building: :func:`verify_claims`) besides ASQA-style ``qa_pairs``. Each record holds 5
documents: its gold passages and distractors from its own split (BM25 hits for the question plus passages
from elements of the same series), none of which contains a gold short answer and each marked
``"distractor": true``, in a seeded random order; ``gold_doc_ids`` names the gold passages. Elements, not
questions, are split between train, dev and test, so test questions (and their distractors) are about
elements never seen in training.

Quality gates (a question failing one is dropped and counted): every alias of every short answer occurs in
the gold passages (ALCE normalisation); no alias occurs in the question itself (ALCE's answer check is a
substring test, which a question echo would pass); a multi-passage question is not answerable from one of
its gold passages (by its short answers, and by its claims); at least two claims survive the NLI check and
every gold passage entails one of them; a discovery-year question is dropped when the element's prose
names another discovery year.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import re
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata, util
from pathlib import Path
from typing import Any

from start.data.records import Passage, QARecord, load_qa
from start.data.retrieval import RetrievalConfig, Retriever
from start.io import read_records, write_json, write_jsonl
from start.text import Document, normalize_answer

EMBEDDED_DIR = Path(__file__).parent / "embedded"
SPLITS = ("train", "dev", "test")

# ----------------------------------------------------------------------------------------------- source


@dataclass(frozen=True)
class Element:
    """The fields of one element that the corpus and questions use."""

    number: int
    symbol: str
    name: str
    description: str | None
    sources: str | None
    uses: str | None
    discoverers: str | None
    year: int | None
    location: str | None
    name_origin: str | None
    group: int | None
    period: int
    block: str
    series: str | None
    melting_k: float | None
    boiling_k: float | None

    @property
    def slug(self) -> str:
        return self.name.lower()

    @property
    def ancient(self) -> bool:
        return (self.discoverers or "").lower().startswith("known to the ancients")


def mendeleev_db_path() -> Path:
    """The SQLite file inside the installed ``mendeleev`` package (found without importing it)."""
    spec = util.find_spec("mendeleev")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the PyPI package `mendeleev` is not installed (pip install mendeleev==1.3.0)")
    path = Path(next(iter(spec.submodule_search_locations))) / "elements.db"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: mendeleev's bundled database is missing")
    return path


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text or None


def read_elements(db_path: str | Path | None = None) -> list[Element]:
    """All elements of the database, by atomic number."""
    path = Path(db_path) if db_path else mendeleev_db_path()
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        series = dict(con.execute("SELECT id, name FROM series"))
        phases: dict[int, tuple[float | None, float | None]] = {}
        for z, mp, bp in con.execute("SELECT atomic_number, melting_point, boiling_point FROM phasetransitions "
                                     "ORDER BY atomic_number, id"):
            if z not in phases and (mp is not None or bp is not None):
                phases[z] = (mp, bp)
        rows = con.execute(
            "SELECT atomic_number, symbol, name, description, sources, uses, discoverers, discovery_year, "
            "discovery_location, name_origin, group_id, period, block, series_id FROM elements "
            "ORDER BY atomic_number").fetchall()
    finally:
        con.close()
    out = []
    for (z, sym, name, desc, src, uses, disc, year, loc, origin, group, period, block, series_id) in rows:
        mp, bp = phases.get(z, (None, None))
        out.append(Element(number=z, symbol=sym, name=name, description=_clean(desc), sources=_clean(src),
                           uses=_clean(uses), discoverers=_clean(disc), year=year, location=_clean(loc),
                           name_origin=_clean(origin), group=group, period=period, block=block,
                           series=series.get(series_id), melting_k=mp, boiling_k=bp))
    return out


def _db_fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------------------- corpus

_SPLIT_POINT = re.compile(r"(?<=[.!?])\)?\s+(?=[A-Z(\"'])")


def split_sentences(text: str) -> list[str]:
    """Sentences of a prose field; a period after an initial ("Martin H. Klaproth") does not end one.

    >>> split_sentences("Discovered by Martin H. Klaproth in 1789. Used in glass.")
    ['Discovered by Martin H. Klaproth in 1789.', 'Used in glass.']
    """
    sentences, start = [], 0
    for m in _SPLIT_POINT.finditer(text):
        before = text[start:m.start()].rstrip(").")
        last_word = before.split()[-1] if before.split() else ""
        if re.fullmatch(r"[A-Z]|[A-Z]\.[A-Z]|Mr|Dr|St|Sir|e\.g|i\.e|approx|ca|vs", last_word):
            continue
        sentences.append(text[start:m.end()].strip())
        start = m.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def pack_passages(sentences: Sequence[str], max_words: int = 100, min_tail: int = 30) -> list[str]:
    """Greedily pack sentences into passages of at most ``max_words`` words (a longer sentence stays whole);
    a last passage shorter than ``min_tail`` words joins the one before it."""
    passages: list[list[str]] = []
    count = 0
    for s in sentences:
        n = len(s.split())
        if passages and count + n <= max_words:
            passages[-1].append(s)
            count += n
        else:
            passages.append([s])
            count = n
    if len(passages) > 1 and sum(len(s.split()) for s in passages[-1]) < min_tail:
        tail = passages.pop()
        passages[-1] += tail
    return [" ".join(p) for p in passages]


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _places(location: str) -> list[str]:
    return [p.strip() for p in location.split("/") if p.strip()]


def _join(items: Sequence[str]) -> str:
    items = [f"the {x}" if x in ("United States", "USSR") else x for x in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def facts_text(el: Element) -> str:
    """The structured fields of an element as a short encyclopedic paragraph."""
    parts = [f"{el.name} is a chemical element with the symbol {el.symbol} and atomic number {el.number}."]
    where = f"It is in period {el.period}" + (f", group {el.group}," if el.group else "")
    where += f" of the periodic table, in the {el.block}-block"
    if el.series:
        where += f", and is one of the {el.series.lower()}"
    parts.append(where + ".")
    if el.ancient:
        parts.append(f"{el.name} has been known since ancient times.")
    elif el.discoverers and el.year:
        disc = el.discoverers.rstrip(".")
        place = f" in {_join(_places(el.location))}" if el.location else ""
        parts.append(f"{el.name} was discovered by {disc} in {el.year}{place}.")
    if el.name_origin:
        origin = el.name_origin.rstrip(".")
        parts.append(_sentence(origin) if origin.lower().startswith("named")
                     else f"The name comes from {origin}.")
    if el.melting_k is not None:
        parts.append(f"Its melting point is {el.melting_k:.0f} K ({el.melting_k - 273.15:.0f} °C)"
                     + (f" and its boiling point {el.boiling_k:.0f} K." if el.boiling_k is not None else "."))
    return " ".join(parts)


def element_passages(el: Element, max_words: int = 100) -> list[Passage]:
    """The prose passages of an element, then its facts passage."""
    prose = " ".join(_sentence(t) for t in (el.description, el.sources, el.uses) if t)
    out = [Passage(f"{el.slug}-p{j}", el.name, text)
           for j, text in enumerate(pack_passages(split_sentences(prose), max_words) if prose else [])]
    out.append(Passage(f"{el.slug}-facts", el.name, facts_text(el)))
    return out


# ------------------------------------------------------------------------------------- answer material

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


# ------------------------------------------------------------------------------------------------ build

# Comparisons per element of a split, the scarcest first (which_first needs three datable discoveries).
DEFAULT_COMPARISONS: tuple[tuple[str, float], ...] = (
    ("which_first", 0.4), ("compare_discovery", 0.4), ("compare_uses", 0.4), ("compare_year", 0.3),
    ("compare_number", 0.5))


@dataclass(frozen=True)
class BuildConfig:
    """Settings of the embedded data build (the defaults made the committed files)."""

    seed: int = 0  # every random choice derives from it (and from the question id)
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)  # train/dev/test share of elements
    singles_per_element: int = 2  # single-passage short questions per element
    pair_prob: float = 0.5  # chance of a two-passage question about one element (a fact + a use)
    long_prob: float = 1.0  # chance of a long-form discovery + uses question about one element
    comparisons: tuple[tuple[str, float], ...] = DEFAULT_COMPARISONS  # (template, questions per element)
    max_comparisons_per_element: int = 4  # an element appears in at most this many comparisons
    n_docs: int = 5  # documents per question (gold + distractors)
    bm25_distractors: int = 2  # of the distractors, how many are BM25 hits (the rest: same-series passages)
    claim_margin: float = 0.05  # a claim is kept when P(entailment) >= NLI threshold + margin
    max_words: int = 100  # passage length limit
    elements: tuple[int, ...] | None = None  # restrict to these atomic numbers (tests)
    db_path: str | None = None  # None: the installed mendeleev package's database

    def __post_init__(self) -> None:
        if len(self.split_fractions) != 3 or any(x < 0 for x in self.split_fractions) or not math.isclose(
                sum(self.split_fractions), 1.0):
            raise ValueError(f"split_fractions must be three non-negative shares summing to 1, "
                             f"got {self.split_fractions}")
        if self.singles_per_element < 0 or not 0 <= self.pair_prob <= 1 or not 0 <= self.long_prob <= 1:
            raise ValueError("singles_per_element must be >= 0, pair_prob and long_prob in [0, 1]")
        for kind, rate in self.comparisons:
            if kind not in COMPARISON_TEMPLATES or rate < 0:
                raise ValueError(f"comparisons: unknown template {kind!r} or negative rate {rate} "
                                 f"(templates: {COMPARISON_TEMPLATES})")
        if self.max_comparisons_per_element < 0 or not 0 <= self.claim_margin < 1:
            raise ValueError("max_comparisons_per_element must be >= 0 and claim_margin in [0, 1)")
        if self.n_docs < 2 or not 0 <= self.bm25_distractors <= self.n_docs:
            raise ValueError(f"n_docs must be >= 2 and bm25_distractors in [0, n_docs], got {self.n_docs}, "
                             f"{self.bm25_distractors}")
        if self.max_words < 20:
            raise ValueError(f"max_words must be >= 20, got {self.max_words}")


@dataclass
class EmbeddedData:
    corpus: list[Passage]
    splits: dict[str, list[dict[str, Any]]]
    stats: dict[str, Any] = field(default_factory=dict)


def _rng(seed: int, *parts: object) -> random.Random:
    # String seeds are hashed with SHA-512 by `random`, so this is stable across processes and platforms.
    return random.Random("/".join([str(seed), *map(str, parts)]))


def split_elements(numbers: Sequence[int], fractions: Sequence[float], seed: int) -> dict[str, list[int]]:
    """Shuffle the elements with the seed and cut them into train/dev/test by the given shares."""
    order = sorted(numbers)
    _rng(seed, "split").shuffle(order)
    n_train = round(fractions[0] * len(order))
    n_dev = round(fractions[1] * len(order))
    return {"train": sorted(order[:n_train]), "dev": sorted(order[n_train:n_train + n_dev]),
            "test": sorted(order[n_train + n_dev:])}


def _contains_word_seq(haystack_norm: str, needle: str) -> bool:
    n = normalize_answer(needle)
    return bool(n) and re.search(rf"(?<!\w){re.escape(n)}(?!\w)", haystack_norm) is not None


def _check(item: dict[str, Any], question: str, two_doc: bool) -> str | None:
    """Why a candidate question fails a quality gate, or None."""
    gold_norm = [normalize_answer(p.text) for p in item["gold"]]
    union = " ".join(gold_norm)
    q_norm = normalize_answer(question)
    for qa in item["qa_pairs"]:
        if not qa["short_answers"]:
            return "no_short_answer"
        for alias in qa["short_answers"]:
            a = normalize_answer(alias)
            if not a or a not in union:
                return "answer_not_in_gold"
            if a in q_norm:
                return "answer_in_question"
    if two_doc:
        for g in gold_norm:
            if all(any(normalize_answer(a) in g for a in qa["short_answers"]) for qa in item["qa_pairs"]):
                return "answerable_from_one_doc"
    return None


def _pick(kinds: Sequence[str], f: _Facts, rng: random.Random, limit: int,
          drops: Counter[str]) -> list[dict[str, Any]]:
    """Up to ``limit`` questions about one element: templates in a seeded order, skipping those that do
    not apply to it and counting those that fail a quality gate."""
    order = list(kinds)
    rng.shuffle(order)
    out: list[dict[str, Any]] = []
    for kind in order:
        if len(out) == limit:
            break
        q = rng.choice(PHRASINGS[kind]).format(name=f.el.name.lower(), Name=f.el.name, number=f.el.number,
                                               symbol=f.el.symbol)
        item = _single(kind, f, q)
        if item is None:
            continue
        item.update(template=kind, question=q, entities=[f.el.name], id=f"{kind}-{f.el.slug}")
        reason = _check(item, q, two_doc=kind in TWO_DOC_TEMPLATES)
        if reason:
            drops[reason] += 1
            continue
        out.append(item)
    return out


def _comparisons(cfg: BuildConfig, split: str, numbers: Sequence[int], facts: dict[int, _Facts],
                 drops: Counter[str]) -> list[dict[str, Any]]:
    """Questions about two or three elements of one split (so test elements never appear in training)."""
    crng = _rng(cfg.seed, "comparisons", split)
    used: Counter[int] = Counter()
    out = []
    for kind, rate in cfg.comparisons:
        target = round(rate * len(numbers))
        combos = list(itertools.combinations(numbers, ELEMENTS_PER_QUESTION.get(kind, 2)))
        crng.shuffle(combos)
        for combo in combos:
            if target == 0:
                break
            if any(used[z] >= cfg.max_comparisons_per_element for z in combo):
                continue  # spread the comparisons over the split's elements
            fs = [facts[z] for z in combo]
            crng.shuffle(fs)
            if not _comparable(kind, fs):
                continue
            names = [x.el.name.lower() for x in fs]
            q = crng.choice(PHRASINGS[kind]).format(**dict(zip("abc", names, strict=False)))
            item = _comparison(kind, fs)
            item.update(template=kind, question=q, entities=[x.el.name for x in fs],
                        id="-".join([kind, *(x.el.slug for x in fs)]))
            reason = _check(item, q, two_doc=True)
            if reason:
                drops[reason] += 1
                continue
            out.append(item)
            used.update(combo)
            target -= 1
    return out


def verify_claims(items: Sequence[dict[str, Any]], nli: Any, margin: float, drops: Counter[str],
                  claim_counts: Counter[str]) -> list[dict[str, Any]]:
    """Keep the claims a gold passage entails under ``nli`` (P >= threshold + margin), in one batch.

    A question with claims is dropped when fewer than two survive, when one of its gold passages
    entails none of them (the question would not need it) or when one gold passage entails all of them
    (it would need only one). Survivors get ``claim_docs``: per claim, the gold passages entailing it.
    """
    premise = {p.id: p.to_document().for_nli() for it in items for p in it["gold"]}
    pairs = sorted({(premise[p.id], c) for it in items for p in it["gold"] for c in it.get("claims", ())})
    probs = nli.predict(pairs).probs if pairs else []
    entailed = {pair: float(pr) >= nli.threshold + margin for pair, pr in zip(pairs, probs, strict=True)}
    out = []
    for it in items:
        if not it.get("claims"):
            out.append(it)
            continue
        gold = [p.id for p in it["gold"]]
        support = [[g for g in gold if entailed[(premise[g], c)]] for c in it["claims"]]
        keep = [(c, s) for c, s in zip(it["claims"], support, strict=True) if s]
        claim_counts["candidates"] += len(it["claims"])
        claim_counts["not_entailed"] += len(it["claims"]) - len(keep)
        if len(keep) < 2:
            drops["too_few_entailed_claims"] += 1
        elif any(not any(g in s for _, s in keep) for g in gold):
            drops["gold_doc_without_claim"] += 1
        elif any(all(g in s for _, s in keep) for g in gold):
            drops["claims_from_one_doc"] += 1
        else:
            claim_counts["kept"] += len(keep)
            out.append({**it, "claims": [c for c, _ in keep], "claim_docs": [s for _, s in keep]})
    return out


def build_embedded(cfg: BuildConfig | None = None, nli: Any = None) -> EmbeddedData:
    """Build corpus and questions in memory (no files written).

    ``nli`` judges the claims (an :class:`start.scoring.NLIBackend`; None: the bundled offline model).
    """
    cfg = cfg or BuildConfig()
    db = Path(cfg.db_path) if cfg.db_path else mendeleev_db_path()
    elements = read_elements(db)
    if cfg.elements is not None:
        wanted = set(cfg.elements)
        elements = [e for e in elements if e.number in wanted]
    if not elements:
        raise ValueError("no elements selected")
    by_number = {e.number: e for e in elements}
    per_element = {e.number: element_passages(e, cfg.max_words) for e in elements}
    corpus = [p for e in elements for p in per_element[e.number]]
    names = [e.name for e in read_elements(db)]  # all names, also outside a subset: same terms either way
    facts = {z: _element_facts(by_number[z], ps, names) for z, ps in per_element.items()}
    split_of = split_elements(list(by_number), cfg.split_fractions, cfg.seed)

    drops: Counter[str] = Counter()
    candidates: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for split, numbers in split_of.items():
        for z in numbers:
            f = facts[z]
            rng = _rng(cfg.seed, "templates", z)
            singles = _pick(SINGLE_TEMPLATES, f, rng, cfg.singles_per_element, drops)
            pair = _pick(PAIR_TEMPLATES, f, rng, 1, drops) if rng.random() < cfg.pair_prob else []
            long = _pick(LONG_TEMPLATES, f, rng, 1, drops) if rng.random() < cfg.long_prob else []
            candidates[split] += singles + pair + long
        candidates[split] += _comparisons(cfg, split, numbers, facts, drops)

    if nli is None and any(it.get("claims") for items in candidates.values() for it in items):
        from start.scoring.nli import NLIConfig, load_nli

        nli = load_nli(NLIConfig(model="minilm", progress=True))
    claim_counts: Counter[str] = Counter()
    for split in SPLITS:
        candidates[split] = verify_claims(candidates[split], nli, cfg.claim_margin, drops, claim_counts)

    retriever = Retriever.build([p.to_document() for p in corpus],
                                # rank_bm25 scores in float64 in a fixed order: distractor choice is
                                # reproducible across processes (bm25s sums float32 in hash-seeded order).
                                RetrievalConfig(backend="rank_bm25", use_cache=False))
    element_of = {p.id: p.id.rsplit("-", 1)[0] for p in corpus}
    series_of = {e.slug: e.series for e in elements}
    corpus_norm = [normalize_answer(p.text) for p in corpus]
    splits: dict[str, list[dict[str, Any]]] = {}
    shortfall = 0
    for split in SPLITS:
        items = candidates[split]
        # Distractors come from the split's own elements: no held-out passage is seen in training prompts.
        local = {by_number[z].slug for z in split_of[split]}
        pool = [i for i, p in enumerate(corpus) if element_of[p.id] in local]
        in_pool = set(pool)
        hits = retriever.search([it["question"] for it in items], k=len(corpus)) if items else []
        rows = []
        for item, h in zip(items, hits, strict=True):
            row = _assemble(item, [x for x in h if x[0] in in_pool], pool, corpus, corpus_norm, element_of,
                            series_of, cfg)
            shortfall += cfg.n_docs - len(row["docs"])
            rows.append(row)
        rows.sort(key=lambda r: r["id"])
        _rng(cfg.seed, "order", split).shuffle(rows)  # seeded order: the first N questions are a random sample
        splits[split] = rows

    conflicts = [f.el.name for f in facts.values() if f.el.year and not f.el.ancient and not f.year_ok]
    stats = _stats(splits, split_of, by_number, corpus, drops, conflicts)
    stats["claims"] = dict(sorted(claim_counts.items()))
    stats["distractor_shortfall"] = shortfall
    stats["nli"] = getattr(nli, "fingerprint", None)
    return EmbeddedData(corpus=corpus, splits=splits, stats=stats)


def _assemble(item: dict[str, Any], hits: Sequence[tuple[int, float]], pool: Sequence[int],
              corpus: Sequence[Passage], corpus_norm: Sequence[str], element_of: dict[str, str],
              series_of: dict[str, str | None], cfg: BuildConfig) -> dict[str, Any]:
    """Gold passages plus distractors (from ``pool``, free of every gold alias and marked ``distractor``),
    in a seeded random order."""
    rng = _rng(cfg.seed, "docs", item["id"])
    gold_ids = [p.id for p in item["gold"]]
    aliases = [a for qa in item["qa_pairs"] for a in qa["short_answers"]]

    def usable(i: int) -> bool:
        return corpus[i].id not in gold_ids and not any(_contains_word_seq(corpus_norm[i], a) for a in aliases)

    need = cfg.n_docs - len(gold_ids)
    chosen: list[int] = []
    # BM25 hits, ranked by score rounded to 1e-6 (float noise must not reorder near-ties), then index.
    for i, _ in sorted(hits, key=lambda h: (-round(h[1], 6), h[0])):
        if len(chosen) == min(cfg.bm25_distractors, need):
            break
        if usable(i):
            chosen.append(i)
    gold_series = {series_of.get(element_of[g]) for g in gold_ids}
    same = [i for i in pool if series_of.get(element_of[corpus[i].id]) in gold_series]
    rest = [i for i in pool if i not in same]
    for candidates in (same, rest):
        candidates = [i for i in candidates if i not in chosen and usable(i)]
        rng.shuffle(candidates)
        chosen += candidates[:max(0, need - len(chosen))]
    docs = [{"id": p.id, "title": p.title, "text": p.text} for p in item["gold"]]
    docs += [{"id": corpus[i].id, "title": corpus[i].title, "text": corpus[i].text, "distractor": True}
             for i in chosen]
    rng.shuffle(docs)
    row: dict[str, Any] = {
        "id": item["id"], "question": item["question"], "docs": docs,
        "qa_pairs": item["qa_pairs"], "answer": item["answer"], "gold_doc_ids": gold_ids,
        "template": item["template"], "entities": item["entities"],
    }
    if item.get("claims"):
        row["claims"], row["claim_docs"] = item["claims"], item["claim_docs"]
    if "answer_entity" in item:
        row["answer_entity"] = item["answer_entity"]
    return row


def needs_multi_doc(row: dict[str, Any]) -> bool:
    """Whether a question needs two or more documents and has two or more claims (a long-form question)."""
    return len(row.get("gold_doc_ids") or ()) >= 2 and len(row.get("claims") or ()) >= 2


def _stats(splits: dict[str, list[dict[str, Any]]], split_of: dict[str, list[int]],
           by_number: dict[int, Element], corpus: Sequence[Passage], drops: Counter[str],
           year_conflicts: list[str]) -> dict[str, Any]:
    all_rows = [r for s in SPLITS for r in splits[s]]
    two = sum(len(r["gold_doc_ids"]) >= 2 for r in all_rows)
    words = [len(p.text.split()) for p in corpus]

    def share(n: int, rows: Sequence[Any]) -> float:
        return round(n / len(rows), 4) if rows else 0.0

    return {
        "questions": {s: len(splits[s]) for s in SPLITS} | {"total": len(all_rows)},
        "elements": {s: len(split_of[s]) for s in SPLITS},
        "test_elements": [by_number[z].name for z in split_of["test"]],
        "two_doc_questions": two,
        "two_doc_share": share(two, all_rows),
        "needs_docs": {s: dict(sorted(Counter(len(r["gold_doc_ids"]) for r in splits[s]).items()))
                       for s in SPLITS},
        "multi_doc_claims_share": {s: share(sum(map(needs_multi_doc, splits[s])), splits[s]) for s in SPLITS},
        "templates": dict(sorted(Counter(r["template"] for r in all_rows).items())),
        "templates_by_split": {s: dict(sorted(Counter(r["template"] for r in splits[s]).items())) for s in SPLITS},
        "dropped": dict(sorted(drops.items())),
        "year_conflicts": year_conflicts,
        "corpus": {"passages": len(corpus), "words_mean": round(sum(words) / len(words), 1),
                   "words_max": max(words)},
    }


def write_embedded(data: EmbeddedData, out_dir: str | Path, *, source: dict[str, Any] | None = None,
                   config: BuildConfig | None = None) -> dict[str, Any]:
    """Write corpus, splits and a manifest (no timestamps: identical inputs give identical bytes)."""
    out = Path(out_dir)
    write_jsonl(out / "corpus.jsonl", (asdict(p) for p in data.corpus))
    for split in SPLITS:
        write_jsonl(out / f"{split}.jsonl", data.splits[split])
    files = {name: hashlib.sha256((out / name).read_bytes()).hexdigest()
             for name in ["corpus.jsonl", *(f"{s}.jsonl" for s in SPLITS)]}
    manifest = {"source": source or {}, "config": asdict(config) if config else None, **data.stats,
                "files": files}
    write_json(out / "manifest.json", manifest)
    return manifest


def source_info(db_path: str | Path | None = None) -> dict[str, Any]:
    path = Path(db_path) if db_path else mendeleev_db_path()
    try:
        version = metadata.version("mendeleev")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {"package": "mendeleev", "version": version, "licence": "MIT", "database": path.name,
            "database_sha256": _db_fingerprint(path)}


# ------------------------------------------------------------------------------------------------- load


def load_embedded(split: str, directory: str | Path = EMBEDDED_DIR) -> list[QARecord]:
    """The committed questions of one split, as :class:`QARecord` (``meta`` keeps ``gold_doc_ids``)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return load_qa(Path(directory) / f"{split}.jsonl", split=split)


def load_source(source: str, split: str | None = None, limit: int | None = None) -> list[QARecord]:
    """Questions of ``split`` from ``"embedded"`` or any :func:`load_qa` source, the first ``limit`` of them."""
    records = load_embedded(split) if source == "embedded" else load_qa(source, split=split)
    return records[:limit] if limit is not None else records


def load_embedded_corpus(directory: str | Path = EMBEDDED_DIR) -> list[Passage]:
    """The committed passages, in corpus order."""
    path = Path(directory) / "corpus.jsonl"
    return [Passage(id=str(r["id"]), title=str(r["title"]), text=str(r["text"])) for r in read_records(path)]


def passages_as_documents(passages: Sequence[Passage]) -> list[Document]:
    return [p.to_document() for p in passages]
