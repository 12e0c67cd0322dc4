"""BM25 retrieval over a passage corpus, for questions that come without documents.

Two interchangeable backends behind one interface, :meth:`Retriever.search`:

* ``bm25s`` (default): sparse-matrix BM25, fast to index and to query;
* ``rank_bm25``: the widely used pure-Python implementation, kept as a cross-check.

Both see the same tokens (:func:`start.text.tokenize`: lower-case, ``\\w+`` words, optional English stop words) and
score with the same formula, Lucene's BM25 (``idf = ln(1 + (N - n + 0.5) / (n + 0.5))``, term weight
``tf / (tf + k1 * (1 - b + b * len / avglen))``; rank_bm25's idf is replaced by this one and its scores are
divided by its extra constant ``k1 + 1``), so their scores agree up to float32 rounding. Results are
ordered by score, ties by passage index (except that which zero-score passages bm25s fills a top k with,
when fewer than k passages share a word with the query, is its own choice).

The index is built once per (corpus content, backend, tokeniser settings, BM25 parameters) and cached on
disk under that key: bm25s with its own ``save``/``load`` (numpy arrays and JSON, no pickle); rank_bm25 as
a pickle of its index object (it has no other persistence, and rebuilding means re-counting every term in
Python). Only load cache folders you wrote yourself: unpickling runs code.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, Protocol

from start.io import atomic_dir, cache_root
from start.text import STOPWORDS, WORD_RE, Document, tokenize

Backend = Literal["bm25s", "rank_bm25"]
BACKENDS: tuple[str, ...] = ("bm25s", "rank_bm25")
Hit = tuple[int, float]

_CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``$START_CACHE_DIR/bm25`` if set, else ``~/.cache/start/bm25``."""
    return cache_root() / "bm25"


@dataclass(frozen=True)
class RetrievalConfig:
    """How to index a corpus and search it."""

    backend: str = "bm25s"  # "bm25s" (fast, default) or "rank_bm25" (pure Python cross-check)
    k: int = 5  # passages returned per question when `search` is not given k
    k1: float = 1.5  # BM25 term-frequency saturation
    b: float = 0.75  # BM25 length normalisation (0 = none, 1 = full)
    stopwords: bool = True  # drop the built-in English stop words from passages and questions
    include_title: bool = True  # index "title text" rather than the text alone
    use_cache: bool = True  # load/save the index on disk, keyed by corpus hash and these settings
    cache_dir: str | None = None  # None: default_cache_dir()

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
            raise ValueError(f"k must be a positive integer, got {self.k!r}")
        if not (math.isfinite(self.k1) and self.k1 >= 0):
            raise ValueError(f"k1 must be a finite number >= 0, got {self.k1!r}")
        if not (0.0 <= self.b <= 1.0):
            raise ValueError(f"b must be in [0, 1], got {self.b!r}")

    def index_settings(self) -> dict[str, Any]:
        """The settings that change the index (and so its cache key)."""
        return {"backend": self.backend, "k1": self.k1, "b": self.b, "stopwords": self.stopwords,
                "stopword_list": hashlib.sha256(" ".join(sorted(STOPWORDS)).encode()).hexdigest()[:12],
                "token_pattern": WORD_RE.pattern, "include_title": self.include_title,
                "library": f"{self.backend}=={_version(self.backend)}", "format": _CACHE_FORMAT}


def _version(backend: str) -> str:
    try:
        return metadata.version(backend.replace("_", "-"))
    except metadata.PackageNotFoundError:
        return "missing"


def corpus_hash(texts: Sequence[str]) -> str:
    """Content hash of the indexed strings (order matters: results are passage indices)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x1e")
    return h.hexdigest()


def _index_text(doc: Document | str, include_title: bool) -> str:
    if isinstance(doc, str):
        return doc
    return f"{doc.title} {doc.text}" if include_title and doc.title else doc.text


class _Index(Protocol):
    def search(self, queries: list[list[str]], k: int) -> list[list[Hit]]: ...

    def save(self, folder: Path) -> None: ...


def _ranked(pairs: Sequence[tuple[int, float]], k: int) -> list[Hit]:
    return sorted(((int(i), float(s)) for i, s in pairs), key=lambda h: (-h[1], h[0]))[:k]


class _Bm25sIndex:
    def __init__(self, model: Any, n_docs: int):
        self.model, self.n_docs = model, n_docs

    @classmethod
    def build(cls, tokens: list[list[str]], cfg: RetrievalConfig) -> _Bm25sIndex:
        import bm25s

        model = bm25s.BM25(k1=cfg.k1, b=cfg.b, method="lucene")
        model.index(tokens, show_progress=False)
        return cls(model, len(tokens))

    def search(self, queries: list[list[str]], k: int) -> list[list[Hit]]:
        k = min(k, self.n_docs)
        docs, scores = self.model.retrieve(queries, k=k, show_progress=False, n_threads=1)
        return [_ranked(list(zip(d.tolist(), s.tolist(), strict=True)), k) for d, s in zip(docs, scores,
                                                                                           strict=True)]

    def save(self, folder: Path) -> None:
        self.model.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path, n_docs: int) -> _Bm25sIndex:
        import bm25s

        return cls(bm25s.BM25.load(str(folder), show_progress=False), n_docs)


class _RankBm25Index:
    def __init__(self, model: Any, k1: float):
        self.model, self.k1 = model, k1

    @classmethod
    def build(cls, tokens: list[list[str]], cfg: RetrievalConfig) -> _RankBm25Index:
        from rank_bm25 import BM25Okapi

        # rank_bm25 refuses an empty document list by dividing by zero; an empty doc needs a token.
        model = BM25Okapi([t or [""] for t in tokens], k1=cfg.k1, b=cfg.b)
        n = model.corpus_size
        doc_count: dict[str, int] = {}
        for freqs in model.doc_freqs:
            for w in freqs:
                doc_count[w] = doc_count.get(w, 0) + 1
        # Lucene's idf (always positive) in place of Okapi's, to match bm25s.
        model.idf = {w: math.log(1.0 + (n - c + 0.5) / (c + 0.5)) for w, c in doc_count.items()}
        return cls(model, cfg.k1)

    def search(self, queries: list[list[str]], k: int) -> list[list[Hit]]:
        import numpy as np

        out = []
        idx = np.arange(self.model.corpus_size)
        for q in queries:
            scores = self.model.get_scores(q) / (self.k1 + 1.0)
            order = np.lexsort((idx, -scores))[:k]
            out.append([(int(i), float(scores[i])) for i in order])
        return out

    def save(self, folder: Path) -> None:
        with open(folder / "rank_bm25.pkl", "wb") as f:
            pickle.dump(self.model, f, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def load(cls, folder: Path, k1: float) -> _RankBm25Index:
        with open(folder / "rank_bm25.pkl", "rb") as f:
            return cls(pickle.load(f), k1)  # noqa: S301 - our own cache folder (see module docstring)


class Retriever:
    """A BM25 index over a fixed list of passages; build it with :meth:`Retriever.build`."""

    def __init__(self, index: _Index, config: RetrievalConfig, n_docs: int, key: str, *,
                 from_cache: bool, build_seconds: float):
        self._index, self.config, self.n_docs, self.key = index, config, n_docs, key
        self.from_cache = from_cache  # True when the index was loaded, not built
        self.build_seconds = build_seconds  # wall time of building or loading

    @classmethod
    def build(cls, docs: Sequence[Document | str], config: RetrievalConfig | None = None) -> Retriever:
        """Index ``docs`` (documents or plain strings), or load the cached index of the same corpus."""
        cfg = config or RetrievalConfig()
        if not docs:
            raise ValueError("cannot build a retriever over an empty corpus")
        t0 = time.perf_counter()
        texts = [_index_text(d, cfg.include_title) for d in docs]
        key = hashlib.sha256(json.dumps({"corpus": corpus_hash(texts), **cfg.index_settings()},
                                        sort_keys=True).encode()).hexdigest()[:24]
        folder = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
        target = folder / f"{cfg.backend}-{key}"
        if cfg.use_cache and (target / "done.json").is_file():
            index = _load(cfg, target, len(texts))
            return cls(index, cfg, len(texts), key, from_cache=True, build_seconds=time.perf_counter() - t0)
        tokens = [tokenize(t, stopwords=cfg.stopwords) for t in texts]
        index = _Bm25sIndex.build(tokens, cfg) if cfg.backend == "bm25s" else _RankBm25Index.build(tokens, cfg)
        if cfg.use_cache:
            _save(index, target, {"key": key, "n_docs": len(texts), **cfg.index_settings()})
        return cls(index, cfg, len(texts), key, from_cache=False, build_seconds=time.perf_counter() - t0)

    def search(self, queries: Sequence[str], k: int | None = None) -> list[list[Hit]]:
        """Top-``k`` ``(passage index, score)`` per query, best first (ties: lower index first)."""
        k = self.config.k if k is None else k
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if isinstance(queries, str):
            raise TypeError("search() takes a list of queries, not a single string")
        if not queries:
            return []
        tokens = [tokenize(q, stopwords=self.config.stopwords) for q in queries]
        return self._index.search(tokens, min(k, self.n_docs))


def _save(index: _Index, target: Path, info: dict[str, Any]) -> None:
    """Write into a temporary sibling folder, mark it complete, then rename it into place."""
    with atomic_dir(target) as tmp:
        index.save(tmp)
        (tmp / "done.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _load(cfg: RetrievalConfig, target: Path, n_docs: int) -> _Index:
    if cfg.backend == "bm25s":
        return _Bm25sIndex.load(target, n_docs)
    return _RankBm25Index.load(target, cfg.k1)


def retrieve_docs(records: Sequence[Any], passages: Sequence[Document], retriever: Retriever,
                  k: int | None = None, *, overwrite: bool = False) -> list[Any]:
    """Give every record without documents (all records with ``overwrite``) its top-``k`` passages.

    ``records`` are :class:`start.data.records.QARecord`; the retriever must index ``passages`` in order.
    """
    if retriever.n_docs != len(passages):
        raise ValueError(f"the retriever indexes {retriever.n_docs} passages, but {len(passages)} were given")
    todo = [i for i, r in enumerate(records) if overwrite or not r.docs]
    hits = retriever.search([records[i].question for i in todo], k)
    out = list(records)
    for i, h in zip(todo, hits, strict=True):
        out[i] = records[i].with_docs([passages[j] for j, _ in h])
    return out
