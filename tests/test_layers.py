"""The layering written down in pyproject.toml (``[tool.importlinter]``) holds: each layer imports only the layers
below it, the scorer imports nothing of training, sampling, warm-up, judge training or data building, data loaders
never load the judge, and no package has an import circle. ``make lint`` runs the same check (``lint-imports``)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lint():
    from importlinter import api  # noqa: F401 (configures import-linter's settings)
    from importlinter.application import use_cases

    return use_cases


def test_import_contracts_are_kept(lint, capsys):
    kept = lint.lint_imports(config_filename=str(ROOT / "pyproject.toml"), cache_dir=None, no_logo=True)
    assert kept, capsys.readouterr().out


def test_every_module_of_start_is_placed_in_a_layer(lint):
    """A new module must be given its layer on purpose (the layers contract is exhaustive)."""
    options = lint.read_user_options(str(ROOT / "pyproject.toml"))
    layers = next(c for c in options.contracts_options if c["type"] == "layers")
    assert layers["containers"] == ["start"] and layers["exhaustive"] in (True, "true", "True")
    placed = {name.strip() for layer in layers["layers"] for name in layer.replace(":", "|").split("|")}
    children = {p.stem for p in (ROOT / "start").glob("*.py") if p.stem != "__init__"}
    children |= {p.parent.name for p in (ROOT / "start").glob("*/__init__.py")}
    assert children == placed
    library = next(c for c in options.contracts_options if c["id"] == "scorer-is-a-library")
    forbidden = {m.removeprefix("start.") for m in library["forbidden_modules"] if m.startswith("start.")}
    assert forbidden == children - {"scoring", "io", "text"}  # of the project, the scorer imports only io and text
