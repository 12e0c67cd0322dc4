"""On-disk cache of NLI results, so that rescoring a file (or a file that shares pairs) is nearly free.

Keys are SHA-256 digests of (backend fingerprint, premise, hypothesis); the fingerprint names the model
weights and every setting that changes a result (e.g. the truncation length). Values are the entailment
probability and whether the pair had to be truncated, so a new threshold needs no new forward passes.
SQLite gives atomic, concurrent-safe writes with the standard library alone.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path

_CHUNK = 500  # SQLite's default limit on host parameters is 999


def pair_key(fingerprint: str, premise: str, hypothesis: str) -> bytes:
    h = hashlib.sha256()
    for part in (fingerprint, premise, hypothesis):
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))  # length-prefixed: no ambiguity between parts
        h.update(data)
    return h.digest()


class NLICache:
    """A persistent map from pair keys to (probability, truncated)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS nli (key BLOB PRIMARY KEY, prob REAL NOT NULL, truncated INTEGER NOT NULL)"
        )

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, tuple[float, bool]]:
        found: dict[bytes, tuple[float, bool]] = {}
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for key, prob, trunc in self._db.execute(
                f"SELECT key, prob, truncated FROM nli WHERE key IN ({marks})", chunk
            ):
                found[bytes(key)] = (prob, bool(trunc))
        return found

    def put_many(self, items: Sequence[tuple[bytes, float, bool]]) -> None:
        with self._db:  # one transaction
            self._db.executemany(
                "INSERT OR REPLACE INTO nli (key, prob, truncated) VALUES (?, ?, ?)",
                [(k, float(p), int(t)) for k, p, t in items],
            )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM nli").fetchone()[0]

    def close(self) -> None:
        self._db.close()
