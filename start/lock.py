"""One run at a time per run folder: ``<run_dir>/run.lock``.

The lock is an exclusive ``flock`` on that file, and the file says who holds it (process id, host, start time,
command). A second ``python -m start.run`` on the same folder stops at once with one line naming the first.
The operating system releases a ``flock`` the moment its process ends, however it ends, so a run killed with
``kill -9`` (or whose machine rebooted) never leaves a lock that blocks: the next run takes the lock over and
says whose it was -- no process-id guessing, which a reused id or another host's id would fool. The host is
recorded because a process id means nothing on another machine (the message says where the holder runs).

The lock is re-entrant within a process (``start.run`` takes it before routing its output, and
:func:`start.pipeline.run` takes it again for callers that use the pipeline directly).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)
LOCK_FILE = "run.lock"
_held: dict[Path, int] = {}  # run folders this process holds -> nesting depth (a lock, not a model)


class RunLocked(RuntimeError):
    """Another live process holds the run folder's lock; ``str()`` is one line naming it."""


def holder_text(info: dict) -> str:
    """A lock holder as a message names it: ``pid 123 on host h, started 2026-11-01 04:40:12 (command)``."""
    started = info.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, int | float) else "?"
    command = f" ({info['command']})" if info.get("command") else ""
    return f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, started {when}{command}"


def _read(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 65536):
        raw += chunk
    try:
        info = json.loads(raw) if raw.strip() else {}
    except ValueError:  # a lock file cut short by a crash while it was written: nobody to name
        return {"pid": "?", "note": "unreadable lock file"}
    return info if isinstance(info, dict) else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _gone_text(info: dict) -> str:
    """Why a leftover lock file no longer holds (for the take-over message)."""
    pid, host = info.get("pid"), info.get("host")
    if host == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
        return f"{holder_text(info)}; that process no longer runs"
    return f"{holder_text(info)}; it no longer holds the lock"


def _command() -> str:
    """This process's command line as its user typed it (``python -m start.run ...``), shortened."""
    prog = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    if prog.suffix == ".py" and prog.resolve().parent == Path(__file__).resolve().parent:
        head = f"python -m start.{prog.stem}"
    else:
        head = prog.name
    text = " ".join([head, *sys.argv[1:]])
    return text if len(text) <= 200 else text[:200] + " ..."


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold ``<run_dir>/run.lock`` for the duration (the folder is created); :class:`RunLocked` when another
    process holds it. A lock file left by a run that ended without removing it is taken over (logged)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    key = run_dir.resolve()
    path = run_dir / LOCK_FILE
    if key in _held:
        _held[key] += 1
        try:
            yield path
        finally:
            _held[key] -= 1
        return
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read(fd)
            os.close(fd)
            raise RunLocked(f"{run_dir} is in use by another run: {holder_text(info)}; wait for it to end or "
                            f"stop it (kill {info.get('pid', '<pid>')})") from None
        try:  # the previous holder removes the file when it ends: make sure the locked file is still the one there
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        previous = _read(fd)
        if previous:
            log.warning("%s: taking over the lock left by %s", run_dir, _gone_text(previous))
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "command": _command()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        raise
    _held[key] = 1
    try:
        yield path
    finally:
        del _held[key]
        with contextlib.suppress(FileNotFoundError):  # removed while locked: nobody else can hold it meanwhile
            path.unlink()
        os.close(fd)
