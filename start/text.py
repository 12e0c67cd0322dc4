"""Text helpers shared by every stage: sentence splitting, citation parsing, answer normalisation, word tokens.

The citation and normalisation rules follow the ALCE reference evaluation (``eval.py`` of
princeton-nlp/ALCE) so that our scores are comparable with published numbers:

* a citation is any ``[`` followed by digits (``[3``), so ``[1][2]`` cites 1 and 2, while ``[1, 2]`` only
  cites 1 under the reference rule (the ``lenient`` format also reads comma lists);
* ``remove_citations`` deletes ``" [n"``, ``"[n"``, ``" |"`` and every ``"]"``;
* answers are normalised by lower-casing, dropping punctuation and articles and folding white space.

Word tokens (:func:`tokenize`: lower-cased ``\\w+`` words, short English stop words dropped) are what BM25 retrieval
(``start.data.retrieval``) indexes and what the learned judge's lexical features (``start.scoring.learned``) count.
"""

from __future__ import annotations

import os
import re
import string
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

CitationFormat = Literal["alce", "lenient"]

_REF_RE = re.compile(r"\[\d+")
_LENIENT_RE = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")
_PUNKT_SUBDIR = Path("tokenizers") / "punkt_tab" / "english"
_PUNCTUATION = frozenset(string.punctuation)


class PunktUnavailable(RuntimeError):
    """NLTK's punkt_tab sentence-splitter data could not be found on this machine."""


def _punkt_candidates() -> list[Path]:
    """Folders that may hold NLTK data with punkt_tab, without importing any of the packages."""
    candidates = []
    if os.environ.get("NLTK_DATA"):
        candidates += [Path(p) for p in os.environ["NLTK_DATA"].split(os.pathsep)]
    for entry in sys.path:
        # llama-index-core ships NLTK's punkt_tab data (installed with --no-deps by `make setup`).
        candidates.append(Path(entry) / "llama_index" / "core" / "_static" / "nltk_cache")
    return candidates


_punkt_ready = False


def ensure_punkt() -> None:
    """Make ``nltk.sent_tokenize`` work offline; raise a clear error if punkt_tab is nowhere."""
    global _punkt_ready  # a flag, not a model: only remembers that the search path is set
    if _punkt_ready:
        return
    import nltk

    try:
        nltk.data.find(str(_PUNKT_SUBDIR))
    except LookupError:
        for folder in _punkt_candidates():
            if (folder / _PUNKT_SUBDIR).is_dir():
                nltk.data.path.insert(0, str(folder))
                break
        else:
            raise PunktUnavailable(
                "NLTK's punkt_tab data (english) was not found. Install it offline with "
                "`pip install --no-deps llama-index-core==0.14.25` (ships it), run "
                "`python -m nltk.downloader punkt_tab` where the internet is reachable, "
                "or point NLTK_DATA at a folder holding tokenizers/punkt_tab/english."
            ) from None
    _punkt_ready = True


def sent_tokenize(text: str) -> list[str]:
    """Split ``text`` into sentences exactly as the reference metric does (``nltk.sent_tokenize``)."""
    ensure_punkt()
    import nltk

    return nltk.sent_tokenize(text)


def clean_output(output: str, *, first_line_only: bool = True) -> tuple[str, bool]:
    """Prepare a model output the way the reference does; return it and whether a line was cut.

    The reference strips the output, keeps its first line and removes a stray ``<|im_end|>``.
    """
    text = output.strip()
    cut = False
    if first_line_only and "\n" in text:
        text = text.split("\n")[0]
        cut = True
    return text.replace("<|im_end|>", ""), cut


def parse_citations(sentence: str, fmt: CitationFormat = "alce") -> list[int]:
    """Return the 1-based document ids a sentence cites, in order of appearance (duplicates kept).

    >>> parse_citations("Built in 1889 [1][3].")
    [1, 3]
    >>> parse_citations("Built in 1889 [1, 3].")
    [1]
    >>> parse_citations("Built in 1889 [1, 3].", "lenient")
    [1, 3]
    """
    if fmt == "alce":
        return [int(m.group(0)[1:]) for m in _REF_RE.finditer(sentence)]
    if fmt == "lenient":
        ids: list[int] = []
        for m in _LENIENT_RE.finditer(sentence):
            ids += [int(x) for x in re.split(r"\s*[,;]\s*", m.group(1))]
        return ids
    raise ValueError(f"unknown citation format {fmt!r} (expected 'alce' or 'lenient')")


def renumber_citations(text: str, mapping: dict[int, int], fmt: CitationFormat = "alce") -> str:
    """Citation marks rewritten through ``mapping`` (old 1-based id -> new one), as :func:`parse_citations` reads
    them; ids outside ``mapping`` (documents that do not exist) are kept as written.

    >>> renumber_citations("Built in 1889 [1][3]. Tall [4].", {1: 2, 2: 3, 3: 1})
    'Built in 1889 [2][1]. Tall [4].'
    >>> renumber_citations("Built [1, 3].", {1: 2, 3: 1}, "lenient")
    'Built [2, 1].'
    """
    def new(m: re.Match) -> str:
        return str(mapping.get(int(m.group(0)), m.group(0)))

    if fmt == "alce":
        return _REF_RE.sub(lambda m: "[" + new(re.match(r"\d+", m.group(0)[1:])), text)
    if fmt == "lenient":
        return _LENIENT_RE.sub(lambda m: re.sub(r"\d+", new, m.group(0)), text)
    raise ValueError(f"unknown citation format {fmt!r} (expected 'alce' or 'lenient')")


def remove_citations(text: str, fmt: CitationFormat = "alce") -> str:
    """Remove citation marks the way the reference does (``lenient`` also drops whole comma lists).

    >>> remove_citations("Built in 1889 [1][3].")
    'Built in 1889.'
    """
    if fmt == "lenient":
        text = re.sub(r" ?" + _LENIENT_RE.pattern, "", text)
    return re.sub(r"\[\d+", "", re.sub(r" \[\d+", "", text)).replace(" |", "").replace("]", "")


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and articles, fold white space (SQuAD/ALCE normalisation)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


@dataclass(frozen=True)
class Document:
    """One retrieved or given document."""

    title: str
    text: str
    distractor: bool = False

    def for_nli(self) -> str:
        """The reference's premise format for one document."""
        return f"Title: {self.title}\n{self.text}"


def join_documents(docs: Sequence[Document]) -> str:
    """Premise for a set of cited documents: their NLI formats joined by newlines (reference rule)."""
    return "\n".join(d.for_nli() for d in docs)


WORD_RE = re.compile(r"\w+")

# A short English stop-word list (function words only), written for this project. Content words such as
# "used", "first" or "discovered" are kept: questions depend on them.
STOPWORDS: frozenset[str] = frozenset("""
a about above after again against all am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
now of off on once only or other our ours ourselves out over own same she should so some such than that the
their theirs them themselves then there these they this those through to too under until up very was we
were what when where which while who whom why will with would you your yours yourself yourselves
""".split())


def tokenize(text: str, *, stopwords: bool = True) -> list[str]:
    """Lower-cased ``\\w+`` words, without stop words unless ``stopwords=False``.

    >>> tokenize("Who discovered Radium, and when?")
    ['discovered', 'radium']
    """
    words = WORD_RE.findall(text.lower())
    return [w for w in words if w not in STOPWORDS] if stopwords else words
