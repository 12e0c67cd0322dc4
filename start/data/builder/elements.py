"""The source of the embedded data set: the chemical elements in the SQLite database bundled in the PyPI package
``mendeleev`` (MIT licence), read directly with :mod:`sqlite3` (``mendeleev`` itself is never imported: it would
pull in pandas and SQLAlchemy for nothing), and each element's corpus passages.

Per element, its prose (``description``, ``sources``, ``uses``; written by the database authors) is packed at
sentence boundaries into passages of at most ~100 words, like ALCE's 100-word Wikipedia passages, plus one "facts"
passage rendered from the structured fields (symbol, atomic number, position in the table, discoverers, year and
place of discovery, name origin, melting and boiling points), as an encyclopedia infobox would read in prose.
Every passage is titled with the element name.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import util
from pathlib import Path

from start.data.records import Passage


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
