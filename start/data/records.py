"""One internal record type for QA examples, and a loader for the ALCE data formats.

Accepted inputs (ALCE's JSON files, or any file in the same layout):

* ASQA: ``question``, ``docs``, ``qa_pairs[].short_answers`` (aliases per sub-question), ``answer`` (a long
  reference answer);
* ELI5: ``question``, ``docs``, ``claims`` (sub-claims), ``answer``;
* QAMPARI: ``question``, ``docs``, ``answers`` (a list of alias lists);
* StrategyQA-style: ``answer`` is a boolean or the string "yes"/"no".

Field validation is shared with the scorer (:func:`start.scoring.records.parse_record`) so that both read a
record the same way and report errors with the same file/record/field wording. ``docs`` may be absent or
empty here (questions without documents get them from :mod:`start.data.retrieval`). Every other field of a
record (``gold_doc_ids``, ``template``, ``wikipages``, ...) is kept in :attr:`QARecord.meta`.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from start.io import InputError, read_records
from start.scoring.records import parse_record
from start.text import Document

# Fields read into QARecord's typed attributes; everything else goes into ``meta``. ``qa_pairs`` is kept
# in ``meta`` as well: its sub-questions (and ASQA's ``context``/``wikipage``) are useful beside the aliases.
_TYPED_FIELDS = frozenset({"id", "sample_id", "question", "docs", "claims", "answers", "answer", "output"})


@dataclass(frozen=True)
class Passage:
    """One retrievable corpus passage (ALCE: a 100-word Wikipedia chunk)."""

    id: str
    title: str
    text: str

    def to_document(self) -> Document:
        return Document(title=self.title, text=self.text)


@dataclass(frozen=True)
class QARecord:
    """One question with its documents and whatever gold information its data set provides."""

    id: str
    question: str
    docs: tuple[Document, ...]
    short_answers: tuple[tuple[str, ...], ...] | None = None  # ASQA: aliases per sub-question
    claims: tuple[str, ...] | None = None  # ELI5: sub-claims a good answer entails
    answers: tuple[tuple[str, ...], ...] | None = None  # QAMPARI: aliases per gold answer
    yes_no: bool | None = None  # StrategyQA-style gold answer
    reference_answer: str | None = None  # a long gold answer
    split: str | None = None
    # Remaining raw fields (e.g. ``gold_doc_ids``); excluded from hashing so the record stays hashable.
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)

    def with_docs(self, docs: Sequence[Document]) -> QARecord:
        """A copy with other documents (e.g. retrieved ones)."""
        return QARecord(self.id, self.question, tuple(docs), self.short_answers, self.claims, self.answers,
                        self.yes_no, self.reference_answer, self.split, dict(self.meta))


def shuffle_docs(rec: QARecord, seed: int | str = 0) -> QARecord:
    """The record with its documents in a random order seeded by ``seed`` and the question id (the same
    order in every run and process). Gold and distractor documents are shuffled alike, so a document's
    position says nothing about its relevance.

    >>> r = QARecord("q", "Q?", tuple(Document(t, t) for t in "abcd"))
    >>> sorted(d.title for d in shuffle_docs(r).docs), shuffle_docs(r) == shuffle_docs(r)
    (['a', 'b', 'c', 'd'], True)
    """
    order = list(range(len(rec.docs)))
    # A string seed is hashed with SHA-512 by `random`: stable across processes (unlike hash()).
    random.Random(f"docs/{seed}/{rec.id}").shuffle(order)
    out = rec.with_docs([rec.docs[i] for i in order])
    if rec.meta.get("doc_ids"):
        out.meta["doc_ids"] = [rec.meta["doc_ids"][i] for i in order]
    return out


def limit_docs(rec: QARecord, max_docs: int, *, shuffle: bool = True, seed: int | str = 0) -> QARecord:
    """At most ``max_docs`` documents: the gold ones (``gold_doc_ids``) first kept, then the earliest others,
    then shuffled (:func:`shuffle_docs`). Shorter prompts for small budgets without losing the answer's
    evidence, and without a position shortcut: keeping the earliest others in their original order would
    push gold documents to the end. ``shuffle=False`` keeps the original order (a retriever's ranking).

    >>> r = QARecord("q", "Q?", tuple(Document(t, t) for t in "abcd"), meta={"doc_ids": list("abcd"),
    ...              "gold_doc_ids": ["d"]})
    >>> sorted(limit_docs(r, 2).meta["doc_ids"])
    ['a', 'd']
    """
    if max_docs < 1:
        raise ValueError(f"data.max_docs must be >= 1, got {max_docs}")
    if len(rec.docs) <= max_docs:
        return rec
    ids = rec.meta.get("doc_ids") or [None] * len(rec.docs)
    gold = set(map(str, rec.meta.get("gold_doc_ids") or ()))
    order = [i for i, d in enumerate(ids) if d in gold] + [i for i, d in enumerate(ids) if d not in gold]
    keep = sorted(order[:max_docs])
    out = rec.with_docs([rec.docs[i] for i in keep])
    if rec.meta.get("doc_ids"):
        out.meta["doc_ids"] = [ids[i] for i in keep]
    return shuffle_docs(out, seed) if shuffle else out


def question_id(question: str) -> str:
    """A stable id for a record without one: a short hash of its whitespace-normalised question."""
    return "q-" + hashlib.sha256(" ".join(question.split()).encode("utf-8")).hexdigest()[:16]


def parse_qa_record(raw: dict[str, Any], i: int, *, path: str | os.PathLike = "<input>",
                    split: str | None = None) -> QARecord:
    """Validate one raw ALCE-format record and convert it; raise :class:`InputError` naming the field."""
    if not isinstance(raw, dict):
        raise InputError(path, f"expected a JSON object, got {type(raw).__name__}", record=i)
    # The scorer's parser wants an ``output`` and a ``docs`` list; a QA record needs neither.
    scored = parse_record({"docs": [], **raw, "output": ""}, i, path=path, allow_empty_docs=True)
    if "id" in raw:
        rid = str(raw["id"])
    elif "sample_id" in raw:  # ALCE's ASQA files name the id this way
        rid = str(raw["sample_id"])
    else:
        rid = question_id(scored.question)
    if not scored.question.strip():
        raise InputError(path, "is empty", record=i, record_id=rid, field="question")
    meta = {k: v for k, v in raw.items() if k not in _TYPED_FIELDS}
    raw_docs = raw.get("docs") or []
    if any("id" in d for d in raw_docs):  # Document has no id; keep them to resolve ``gold_doc_ids``
        meta["doc_ids"] = [None if d.get("id") is None else str(d["id"]) for d in raw_docs]
    return QARecord(id=rid, question=scored.question, docs=scored.docs, short_answers=scored.short_answers,
                    claims=scored.claims, answers=scored.answers, yes_no=scored.yes_no,
                    reference_answer=scored.reference_answer, split=split, meta=meta)


def parse_qa_records(raws: Iterable[dict[str, Any]], *, path: str | os.PathLike = "<input>",
                     split: str | None = None) -> list[QARecord]:
    """Convert every raw record; ids must be unique within one input."""
    records = [parse_qa_record(r, i, path=path, split=split) for i, r in enumerate(raws)]
    seen: dict[str, int] = {}
    for i, rec in enumerate(records):
        if rec.id in seen:
            raise InputError(path, f"duplicate id (also record {seen[rec.id]}; records without an id get a "
                             "hash of their question, so this may be a repeated question)", record=i,
                             record_id=rec.id, field="id")
        seen[rec.id] = i
    return records


def load_qa(path_or_name: str | os.PathLike, split: str | None = None) -> list[QARecord]:
    """Load QA records from a local JSON / JSON Lines file, or else from a Hugging Face data set.

    A local file is read whole (``split`` only labels its records). Anything that is not an existing file
    and does not end in ``.json``/``.jsonl`` goes to ``datasets.load_dataset(path_or_name, split=split)``
    (needs the network or a warm HF cache); with ``split=None`` every split of the data set is loaded, each
    record labelled with its split.
    """
    path = Path(path_or_name)
    if path.is_file():
        return parse_qa_records(read_records(path), path=path, split=split)
    if path.exists():
        raise InputError(path, "is not a file (expected a JSON or JSON Lines file)")
    if path.suffix in (".json", ".jsonl"):  # clearly meant as a local file: don't go to the hub
        raise InputError(path, "no such file")
    return _load_hf(str(path_or_name), split)


def _load_hf(name: str, split: str | None) -> list[QARecord]:
    try:
        import datasets  # lazy: only this path needs it, and it is slow to import
    except ImportError as e:  # pragma: no cover - datasets is a core dependency
        raise InputError(name, "is not a local file, and the `datasets` package is not installed") from e
    try:
        loaded = datasets.load_dataset(name, split=split)
    except Exception as e:  # noqa: BLE001 - datasets raises many types; report them uniformly
        raise InputError(name, f"is not a local file and could not be loaded as a Hugging Face data set "
                         f"({type(e).__name__}: {e})") from e
    parts = loaded.items() if isinstance(loaded, dict) else [(split, loaded)]
    records: list[QARecord] = []
    for part_split, rows in parts:
        where = f"{name}[{part_split}]" if part_split else name
        records += parse_qa_records((dict(r) for r in rows), path=where, split=part_split)
    return records


def qa_record_to_dict(rec: QARecord) -> dict[str, Any]:
    """The ALCE-format dict of a record (inverse of :func:`parse_qa_record` up to field order)."""
    out: dict[str, Any] = {"id": rec.id, "question": rec.question,
                           "docs": [{"title": d.title, "text": d.text, **({"distractor": True}
                                                                           if d.distractor else {})}
                                    for d in rec.docs]}
    if rec.short_answers is not None and "qa_pairs" not in rec.meta:
        out["qa_pairs"] = [{"short_answers": list(a)} for a in rec.short_answers]
    if rec.claims is not None:
        out["claims"] = list(rec.claims)
    if rec.answers is not None:
        out["answers"] = [list(a) for a in rec.answers]
    if rec.yes_no is not None:
        out["answer"] = rec.yes_no
    elif rec.reference_answer is not None:
        out["answer"] = rec.reference_answer
    meta = dict(rec.meta)
    doc_ids = meta.pop("doc_ids", None)
    if doc_ids is not None and len(doc_ids) == len(rec.docs):
        out["docs"] = [{"id": i, **d} if i is not None else d for i, d in zip(doc_ids, out["docs"], strict=True)]
    return {**out, **meta}
