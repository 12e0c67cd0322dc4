"""Reading input files with precise error messages, and writing outputs atomically.

Every reader error names the file, the record (index and id when known) and the field, so that a user
can fix a 10,000-record file without bisecting it. Writers go through a temporary file in the same
folder followed by ``os.replace``, so an interrupted run never leaves a half-written artefact.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class InputError(ValueError):
    """Bad user input; the message names the file, record and field."""

    def __init__(self, path: str | os.PathLike, message: str, *, record: int | None = None,
                 record_id: str | None = None, field: str | None = None, line: int | None = None):
        self.path, self.record, self.record_id, self.field, self.line = path, record, record_id, field, line
        where = [str(path)]
        if line is not None:
            where.append(f"line {line}")
        if record is not None:
            where.append(f"record {record}" + (f" (id={record_id})" if record_id else ""))
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(": ".join(where) + ": " + message)


PROJECT_ROOT = Path(__file__).resolve().parents[1]


def project_relative(path: str | os.PathLike, parts: int = 1) -> str:
    """A path as committed files hold it (cards, manifests, bench JSON): relative to the project root when it
    is inside, else its last ``parts`` parts -- never a machine's absolute path."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(Path(*path.parts[-parts:]))


def cache_root() -> Path:
    """Where every stage caches derived artefacts: ``$START_CACHE_DIR``, else ``~/.cache/start``."""
    root = os.environ.get("START_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "start"


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    """Rows of a JSON Lines file this project wrote itself (an empty file has no rows)."""
    text = Path(path).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n") if line.strip()]  # not splitlines: U+2028


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(path, f"not valid UTF-8 (byte {e.start}: {raw[e.start:e.start + 1]!r})",
                         line=line) from None


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a JSON list, a ``{"data": [...]}`` object (ALCE result files) or JSON Lines.

    Returns the records as dicts; raises :class:`InputError` on anything malformed.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a directory, not a file of records (name the JSON or JSONL file in it)")
    if not path.is_file():
        raise InputError(path, "no such file")
    text = _decode(path)
    stripped = text.lstrip()
    if not stripped:
        raise InputError(path, "the file is empty")
    records: Any
    try:
        records = json.loads(text)
    except json.JSONDecodeError as e:
        # A complete first object followed by more data is JSON Lines.
        if not (stripped[0] == "{" and e.msg.startswith("Extra data")):
            raise InputError(path, f"malformed JSON: {e.msg} (column {e.colno})", line=e.lineno) from None
        records = list(_read_jsonl(path, text))
    else:
        if isinstance(records, dict):
            # ALCE result files keep the records under "data"; a lone object is a one-line JSONL file.
            records = records["data"] if "data" in records else [records]
        if not isinstance(records, list):
            raise InputError(path, "expected a list of records", field="data")
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise InputError(path, f"expected a JSON object, got {type(rec).__name__}", record=i)
    return records


def _read_jsonl(path: Path, text: str) -> Iterator[Any]:
    for lineno, line in enumerate(text.split("\n"), start=1):  # U+2028 in a string is no line end
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(path, f"malformed JSON line: {e.msg} (column {e.colno})", line=lineno) from None


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(error: BaseException) -> bool:
    """Whether an error is a full disk (or an exhausted quota)."""
    return isinstance(error, OSError) and error.errno in DISK_FULL


@contextlib.contextmanager
def naming_full_disk(path: str | os.PathLike):
    """Re-raise a full-disk error inside the block as one that names ``path`` (a failed ``write`` or ``fsync``
    names no file), so the command line can say what could not be written."""
    try:
        yield
    except OSError as e:
        if e.errno in DISK_FULL and e.filename is None:
            raise OSError(e.errno, os.strerror(e.errno), str(path)) from e
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w"):
    """Open a temporary file beside ``path``; on success rename it over ``path``, else delete it (a full
    disk is reported against ``path``: :func:`naming_full_disk`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with naming_full_disk(path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_open(path) as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> None:
    """Write rows as JSON Lines, atomically."""
    with atomic_open(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike):
    """Yield a temporary folder beside ``target``; on success it replaces ``target``, else it is deleted.

    For artefacts that are folders (model checkpoints, indexes): nobody ever sees a half-written one.
    """
    import shutil

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
