"""BM25 retrieval: both backends, their agreement, the on-disk index cache, config checks."""

from __future__ import annotations

import pytest

from start.data import retrieval
from start.data.records import QARecord
from start.data.retrieval import BACKENDS, RetrievalConfig, Retriever, retrieve_docs, tokenize
from start.text import Document

CORPUS = [
    Document("Radium", "Radium was isolated from pitchblende in 1898 by Marie and Pierre Curie."),
    Document("Iron", "Iron is used in steel and other alloys; its oxides are used in magnetic tapes."),
    Document("Hydrogen", "Hydrogen is the lightest element and is used in the production of ammonia."),
    Document("Neon", "Neon glows reddish orange in discharge tubes and advertising signs."),
    Document("Uranium", "Uranium is used as a fuel in nuclear reactors; it was named for the planet Uranus."),
    Document("Helium", "Helium fills balloons and is used in deep sea diving and welding."),
]
QUERIES = ["Who isolated radium from pitchblende?", "What is used to make steel?",
           "Which gas fills party balloons?", "fuel for nuclear reactors", "advertising signs that glow"]
EXPECTED = [0, 1, 5, 4, 3]


def test_tokenize_lowercases_and_drops_stop_words():
    assert tokenize("Who discovered Radium, and WHEN?") == ["discovered", "radium"]
    assert tokenize("Who discovered Radium?", stopwords=False) == ["who", "discovered", "radium"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_finds_the_right_passage(backend, tmp_path):
    r = Retriever.build(CORPUS, RetrievalConfig(backend=backend, cache_dir=str(tmp_path)))
    hits = r.search(QUERIES, k=3)
    assert [h[0][0] for h in hits] == EXPECTED
    for h in hits:
        assert len(h) == 3
        assert [s for _, s in h] == sorted((s for _, s in h), reverse=True)
    assert len(r.search(["radium"], k=50)[0]) == len(CORPUS)  # k is capped at the corpus size


def test_backends_agree_on_top1_and_scores(tmp_path):
    results = {b: Retriever.build(CORPUS, RetrievalConfig(backend=b, use_cache=False)).search(QUERIES, k=1)
               for b in BACKENDS}
    a, b = (results[x] for x in BACKENDS)
    assert [h[0][0] for h in a] == [h[0][0] for h in b]
    for x, y in zip(a, b, strict=True):  # same Lucene BM25 formula: scores match up to float32 rounding
        assert x[0][1] == pytest.approx(y[0][1], rel=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_index_cache_is_reused(backend, tmp_path, monkeypatch):
    cfg = RetrievalConfig(backend=backend, cache_dir=str(tmp_path))
    first = Retriever.build(CORPUS, cfg)
    assert not first.from_cache
    [folder] = list(tmp_path.iterdir())
    mtimes = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}

    builds = []
    cls = retrieval._Bm25sIndex if backend == "bm25s" else retrieval._RankBm25Index
    original = cls.build.__func__
    monkeypatch.setattr(cls, "build", classmethod(lambda c, *a: builds.append(1) or original(c, *a)))
    second = Retriever.build(CORPUS, cfg)
    assert second.from_cache and builds == []
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == mtimes
    assert second.search(QUERIES, k=2) == first.search(QUERIES, k=2)

    # Another corpus, or other tokeniser settings, is another index.
    assert not Retriever.build(CORPUS[:-1], cfg).from_cache
    assert not Retriever.build(CORPUS, RetrievalConfig(backend=backend, cache_dir=str(tmp_path),
                                                       stopwords=False)).from_cache
    assert len(builds) == 2 and len(list(tmp_path.iterdir())) == 3


def test_incomplete_cache_folder_is_rebuilt(tmp_path):
    cfg = RetrievalConfig(backend="rank_bm25", cache_dir=str(tmp_path))
    Retriever.build(CORPUS, cfg)
    [folder] = list(tmp_path.iterdir())
    (folder / "done.json").unlink()  # as if a run died while writing
    assert not Retriever.build(CORPUS, cfg).from_cache


@pytest.mark.parametrize("kwargs", [{"backend": "faiss"}, {"k": 0}, {"k1": -1.0}, {"b": 1.5}])
def test_config_is_validated(kwargs):
    with pytest.raises(ValueError):
        RetrievalConfig(**kwargs)


def test_search_input_checks(tmp_path):
    r = Retriever.build(CORPUS, RetrievalConfig(backend="rank_bm25", use_cache=False))
    with pytest.raises(TypeError):
        r.search("radium")
    with pytest.raises(ValueError):
        r.search(["radium"], k=0)
    assert r.search([]) == []
    with pytest.raises(ValueError):
        Retriever.build([], RetrievalConfig(use_cache=False))


def test_retrieve_docs_fills_only_records_without_documents():
    r = Retriever.build(CORPUS, RetrievalConfig(backend="rank_bm25", use_cache=False))
    given = QARecord(id="a", question="Who isolated radium?", docs=(Document("T", "given"),))
    empty = QARecord(id="b", question="What is used to make steel?", docs=())
    out = retrieve_docs([given, empty], CORPUS, r, k=2)
    assert out[0] is given
    assert len(out[1].docs) == 2 and out[1].docs[0] == CORPUS[1]
    assert retrieve_docs([given], CORPUS, r, k=1, overwrite=True)[0].docs == (CORPUS[0],)
