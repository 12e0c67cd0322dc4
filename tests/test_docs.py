"""What README.md, docs/*.md and the data and model cards name exists: Make targets, modules (``python -m
start.x``, ``start.x.name``), files and folders of the project, and the pages and headings their links point at."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
# README and docs/, and the data and model cards, which name code too
PAGES = [ROOT / "README.md", *DOCS, *sorted((ROOT / "data_cards").glob("*.md")),
         *sorted((ROOT / "start" / "assets").glob("*/README.md"))]
# a path is the project's when it starts with one of these (others are run folders, examples of user files, ...)
PROJECT_ROOTS = ("start/", "conf/", "scripts/", "tests/", "bench/", "data_cards/", "examples/", "docs/", ".ci/")
PROJECT_FILES = ("Makefile", "pyproject.toml", "README.md")

_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_SPAN = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_MAKE = re.compile(r"(?:^|[\s;&|(])make ([a-z0-9][\w%-]*)")
_RUN_MODULE = re.compile(r"-m (start(?:\.\w+)*)(?![.\w<])")
_DOTTED = re.compile(r"^(start(?:\.\w+)+)$")
_HEADING = re.compile(r"^#{1,6} (.+)$", re.M)


def code_of(text: str) -> list[str]:
    """The code a page holds: its fenced blocks and its inline code spans (outside the blocks)."""
    blocks = _FENCE.findall(text)
    return blocks + _SPAN.findall(_FENCE.sub("", text))


def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9_%.-]+):", (ROOT / "Makefile").read_text(), re.M))


def module_file(dotted: str) -> Path | None:
    """The file of module ``start.a.b`` (``start/a/b.py`` or its package's ``__init__.py``), or None."""
    base = ROOT.joinpath(*dotted.split("."))
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def _expand(token: str) -> list[str]:
    """``bench/scorer.{json,md}`` -> both files."""
    m = re.search(r"\{([^{}]*)\}", token)
    if not m:
        return [token]
    return list(itertools.chain.from_iterable(
        _expand(token[:m.start()] + part + token[m.end():]) for part in m.group(1).split(",")))


def project_paths(code: str) -> list[str]:
    out = []
    for token in re.split(r"[\s=\[\]'\"()]+|,(?![^{]*\})", code):
        token = token.rstrip(".:;")
        if not token or any(c in token for c in "<>*$~") or "//" in token:
            continue
        if token.startswith(PROJECT_ROOTS) or token in PROJECT_FILES:
            out += _expand(token)
    return out


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def problems(page: Path, text: str | None = None) -> list[str]:
    """Everything ``page`` names that does not exist, one line each."""
    text = page.read_text(encoding="utf-8") if text is None else text
    code = code_of(text)
    found = []
    targets = make_targets()
    patterns = [t.replace("%", ".+") for t in targets if "%" in t]  # round-%: round-1, round-2
    for chunk in code:
        for target in _MAKE.findall(chunk):
            if target not in targets and not any(re.fullmatch(p, target) for p in patterns):
                found.append(f"make {target}: no such Make target")
        for module in _RUN_MODULE.findall(chunk):
            f = module_file(module)
            if f is None or (f.name == "__init__.py" and not (f.parent / "__main__.py").is_file()):
                found.append(f"python -m {module}: no such runnable module")
        for path in project_paths(chunk):
            if not (ROOT / path).exists():
                found.append(f"{path}: no such file or folder")
    for span in _SPAN.findall(_FENCE.sub("", text)):
        m = _DOTTED.match(span.strip())
        if not m:
            continue
        parts = m.group(1).split(".")
        for n in range(len(parts), 1, -1):
            f = module_file(".".join(parts[:n]))
            if f is not None:
                rest = parts[n:]
                if rest and not re.search(rf"\b{re.escape(rest[0])}\b", f.read_text(encoding="utf-8")):
                    found.append(f"{m.group(1)}: {rest[0]} is not in {f.relative_to(ROOT)}")
                break
        else:
            found.append(f"{m.group(1)}: no such module")
    for link in _LINK.findall(_FENCE.sub("", text)):
        if re.match(r"[a-z]+:", link):
            continue
        target, _, anchor = link.partition("#")
        dest = (page.parent / target).resolve()
        if target and not dest.exists():
            found.append(f"link {link}: no such file")
        elif anchor and (not target or dest.suffix == ".md"):
            headings = _HEADING.findall(_FENCE.sub("", dest.read_text(encoding="utf-8") if target else text))
            if anchor not in {slug(h) for h in headings}:
                found.append(f"link {link}: no such heading")
    return found


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_what_the_docs_name_exists(page):
    assert problems(page) == []


def test_readme_is_a_landing_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    assert "<!-- headline: the table `make run` prints (bench/run_default.md) -->" in readme
    assert "make run" in readme and "make test" in readme
    linked = {(ROOT / link).resolve() for link in _LINK.findall(readme) if link.startswith("docs/")}
    assert DOCS and set(DOCS) <= linked  # every page of docs/ is linked


def test_the_check_finds_what_does_not_exist(tmp_path):
    page = tmp_path / "page.md"
    text = ("Run `make no-such-target` or `python -m start.nowhere`; read `start/scoring/missing.py`, "
            "`bench/scorer.{json,csv}` and `start.scoring.nli.NoSuchJudge`; see [x](nothing.md) and "
            "[y](#no-heading).\n\n```bash\nmake run\npython scripts/no_such_script.py\n```\n")
    assert sorted(problems(page, text)) == sorted([
        "make no-such-target: no such Make target",
        "python -m start.nowhere: no such runnable module",
        "start/scoring/missing.py: no such file or folder",
        "bench/scorer.csv: no such file or folder",
        "scripts/no_such_script.py: no such file or folder",
        "start.scoring.nli.NoSuchJudge: NoSuchJudge is not in start/scoring/nli.py",
        "link nothing.md: no such file",
        "link #no-heading: no such heading",
    ])
