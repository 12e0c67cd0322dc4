"""The embedded default data set, as committed in ``start/data/embedded/``: passages and checkable questions about
the chemical elements (``corpus.jsonl``; ``train/dev/test.jsonl`` in the ALCE layout; ``manifest.json``).

Each record holds 5 documents: its gold passages and distractors (marked ``"distractor": true``) in a seeded
random order; ``gold_doc_ids`` names the gold passages. Elements, not questions, are split between train, dev and
test, so test questions are about elements never seen in training. This module only reads the files; how they are
made (from ``mendeleev``'s database, with every claim checked by the bundled judge) is :mod:`start.data.builder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from start.data.records import Passage, QARecord, load_qa
from start.io import read_records
from start.text import Document

EMBEDDED_DIR = Path(__file__).parent / "embedded"
SPLITS = ("train", "dev", "test")


# Claims (ELI5 style): one fact each, a plain sentence a gold passage states. The builder keeps a claim only
# when the bundled NLI model finds it entailed by a gold passage (verify_claims).


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
