"""Training data for the offline NLI cross-encoder: BIG-bench task files -> (premise, hypothesis, label).

Everything here is a pure function over plain records, except `fetch_bigbench` (runs `pip download`) and
`extract_tasks` (reads the tarball). No torch import: the tests exercise this module in milliseconds.

Sources (all inside the PyPI sdist ``bigbench==1.0.0``, Apache-2.0):
  * ``vitaminc_fact_verification``: "<title>: <evidence>\\nClaim: <claim>", True/False/Neither (VitaminC,
    CC BY-SA 3.0). Grouped by page title so that no Wikipedia page crosses splits.
  * ``epistemic_reasoning``: "Premise: ... Hypothesis: ...", entailment/non-entailment.
  * ``analytic_entailment``: "<premise>. So/Therefore <hypothesis>", entailment/no-entailment.
  * ``entailed_polarity`` is NOT used: its inputs are a fact plus a yes/no *question*; turning the
    question into a declarative hypothesis would need hand-written rewriting rules per verb, so it cannot
    be mapped faithfully. ``presuppositions_as_nli`` is never used (CC BY-NC 4.0).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tarfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from start.nli.long_pairs import long_premise_pairs
from start.nli.negatives import augment_hard_negatives
from start.nli.pairs import LABEL2ID, LABELS, NLIPair, label_counts

# re-exported: the pairs and labels (start.nli.pairs), hard negatives (start.nli.negatives) and long premises
# (start.nli.long_pairs; the bundled judges' cards name start.nli.data.long_premise_pairs)
__all__ = [
    "BIGBENCH_SDIST", "BIGBENCH_VERSION", "EXCLUDED_TASKS", "LABEL2ID", "LABELS", "PARSERS", "SPLITS", "TASKS",
    "TASK_ROOT", "VITAMINC_LABELS", "NLIPair", "augment_hard_negatives", "build_splits", "extract_tasks",
    "fetch_bigbench", "label_counts", "load_task", "long_premise_pairs", "parse_analytic", "parse_epistemic",
    "parse_vitaminc", "split_by_group",
]

BIGBENCH_VERSION = "1.0.0"
BIGBENCH_SDIST = f"bigbench-{BIGBENCH_VERSION}.tar.gz"
TASK_ROOT = f"bigbench-{BIGBENCH_VERSION}/bigbench/benchmark_tasks"
# Tasks we read. Listed explicitly: never glob, so a licence-incompatible task can't slip in.
TASKS: tuple[str, ...] = (
    "vitaminc_fact_verification",
    "epistemic_reasoning",
    "analytic_entailment",
)
EXCLUDED_TASKS: dict[str, str] = {
    "presuppositions_as_nli": "CC BY-NC 4.0 (non-commercial) licence",
    "entailed_polarity": "hypotheses are yes/no questions, not statements; no faithful mapping",
}

SPLITS: tuple[str, ...] = ("train", "calibration", "test")


# --------------------------------------------------------------------------------------------- fetching


def fetch_bigbench(cache_dir: Path, tarball: Path | None = None) -> Path:
    """Return a path to ``bigbench-1.0.0.tar.gz``: ``tarball`` if given, the cached copy, or a fresh
    ``pip download`` of the sdist (PyPI only, no build, no install) into ``cache_dir``."""
    if tarball is not None:
        tarball = Path(tarball)
        if not tarball.is_file():
            raise FileNotFoundError(f"bigbench tarball not found: {tarball}")
        return tarball
    cached = Path(cache_dir) / BIGBENCH_SDIST
    if cached.is_file():
        return cached
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        f"bigbench=={BIGBENCH_VERSION}",
        "-d",
        str(cache_dir),
    ]
    print("fetching BIG-bench sdist (358 MB):", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, check=False)
    if proc.returncode != 0 or not cached.is_file():
        raise RuntimeError(
            f"`pip download` of bigbench=={BIGBENCH_VERSION} failed (exit {proc.returncode}; on 2026-12-06 PyPI "
            f"listed only bigbench 0.0.1); pass a saved sdist with --bigbench-tarball PATH or "
            f"START_BIGBENCH_TARBALL, or distil a judge from an existing one, which needs no BIG-bench "
            f"(--teacher DIR --distill-source embedded)"
        )
    return cached


def extract_tasks(tarball: Path, dest: Path, tasks: Sequence[str] = TASKS) -> dict[str, Path]:
    """Extract only ``<task>/task.json`` for each task (skips files already extracted)."""
    bad = sorted(set(tasks) & {"presuppositions_as_nli"})
    if bad:
        raise ValueError(f"refusing to use {bad}: {EXCLUDED_TASKS[bad[0]]}")
    dest = Path(dest)
    wanted = {f"{TASK_ROOT}/{t}/task.json": t for t in tasks}
    out = {t: dest / f"{TASK_ROOT}/{t}/task.json" for t in tasks}
    if all(p.is_file() for p in out.values()):
        return out
    found: set[str] = set()
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar:
            if member.name in wanted:
                tar.extract(member, dest, filter="data")
                found.add(member.name)
                if len(found) == len(wanted):
                    break
    missing = sorted(wanted[name] for name in set(wanted) - found)
    if missing:
        raise FileNotFoundError(f"task files missing from {tarball}: {missing}")
    return out


# ---------------------------------------------------------------------------------------------- parsing


def _gold(target_scores: dict[str, float]) -> str:
    best = [k for k, v in target_scores.items() if v == max(target_scores.values())]
    if len(best) != 1:
        raise ValueError(f"ambiguous target_scores {target_scores}")
    return best[0]


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


VITAMINC_LABELS = {"True": "entailment", "False": "contradiction", "Neither": "neutral"}


def parse_vitaminc(examples: Iterable[dict]) -> list[NLIPair]:
    """``"<title>: <evidence>\\nClaim: <claim>"``; split on the LAST ``"\\nClaim: "`` (evidence text may
    itself contain the word "Claim"). The page title (text before the first ``": "``) is the group."""
    pairs = []
    for i, ex in enumerate(examples):
        text = ex["input"]
        head, sep, claim = text.rpartition("\nClaim: ")
        if not sep:
            raise ValueError(f"vitaminc example {i} has no '\\nClaim: ' separator: {text[:80]!r}")
        title, colon, _ = head.partition(": ")
        group = _norm(title).lower() if colon else _norm(head).lower()
        label = VITAMINC_LABELS[_gold(ex["target_scores"])]
        # The premise keeps its "<title>: " prefix: it names the subject, as a cited passage would.
        pairs.append(NLIPair(_norm(head), _norm(claim), label, "vitaminc_fact_verification", "vc:" + group))
    return pairs


_EPISTEMIC_RE = re.compile(r"^Premise:\s*(?P<p>.+?)\s*Hypothesis:\s*(?P<h>.+)$", re.S)


def parse_epistemic(examples: Iterable[dict]) -> list[NLIPair]:
    """Epistemic reasoning: non-entailment becomes ``neutral`` (the task does not separate contradiction).
    Rows are templated around a shared scene sentence (the text after the last "that "); that scene is the
    group so the same scene never appears in two splits."""
    pairs = []
    for i, ex in enumerate(examples):
        m = _EPISTEMIC_RE.match(ex["input"].strip())
        if not m:
            raise ValueError(f"epistemic_reasoning example {i} not 'Premise: ... Hypothesis: ...'")
        p, h = _norm(m["p"]), _norm(m["h"])
        label = "entailment" if _gold(ex["target_scores"]) == "entailment" else "neutral"
        scene = p.rsplit(" that ", 1)[-1].lower()
        pairs.append(NLIPair(p, h, label, "epistemic_reasoning", "ep:" + scene))
    return pairs


_ANALYTIC_RE = re.compile(r"^(?P<p>.+?[.!?])\s+(?:So|Therefore|Hence|Thus),?\s+(?P<h>.+)$", re.S)


def parse_analytic(examples: Iterable[dict]) -> list[NLIPair]:
    """Analytic entailment: "<premise>. So[,] <hypothesis>" (also "Therefore"); no-entailment -> neutral."""
    pairs = []
    for i, ex in enumerate(examples):
        m = _ANALYTIC_RE.match(ex["input"].strip())
        if not m:
            raise ValueError(f"analytic_entailment example {i} has no 'So'/'Therefore' connective")
        h = _norm(m["h"])
        h = h[0].upper() + h[1:]
        label = "entailment" if _gold(ex["target_scores"]) == "entailment" else "neutral"
        pairs.append(NLIPair(_norm(m["p"]), h, label, "analytic_entailment", f"an:{i}"))
    return pairs


PARSERS = {
    "vitaminc_fact_verification": parse_vitaminc,
    "epistemic_reasoning": parse_epistemic,
    "analytic_entailment": parse_analytic,
}


def load_task(path: Path, task: str) -> list[NLIPair]:
    with open(path, encoding="utf-8") as f:
        examples = json.load(f)["examples"]
    return PARSERS[task](examples)


# -------------------------------------------------------------------------------------------- splitting


def split_by_group(
    pairs: Sequence[NLIPair], seed: int, calibration_frac: float = 0.05, test_frac: float = 0.10
) -> dict[str, list[NLIPair]]:
    """Assign whole groups to train / calibration / test, aiming at the row fractions given.

    Groups are ordered by a seeded hash (not by Python's salted ``hash``), so the split is the same on every
    machine; each source is split on its own so every source appears in every split in proportion."""
    if not (0 < calibration_frac < 1 and 0 < test_frac < 1 and calibration_frac + test_frac < 1):
        raise ValueError("calibration_frac and test_frac must be in (0, 1) and sum to < 1")
    out: dict[str, list[NLIPair]] = {s: [] for s in SPLITS}
    by_source: dict[str, dict[str, list[NLIPair]]] = defaultdict(lambda: defaultdict(list))
    for p in pairs:
        by_source[p.source][p.group].append(p)
    for source in sorted(by_source):
        groups = by_source[source]
        order = sorted(groups, key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest())
        total = sum(len(v) for v in groups.values())
        n_test = n_cal = 0
        for g in order:
            rows = groups[g]
            if n_test < test_frac * total:
                out["test"].extend(rows)
                n_test += len(rows)
            elif n_cal < calibration_frac * total:
                out["calibration"].extend(rows)
                n_cal += len(rows)
            else:
                out["train"].extend(rows)
    return out


# ---------------------------------------------------------------------------------------------- summary


def build_splits(
    task_files: dict[str, Path],
    seed: int,
    calibration_frac: float = 0.05,
    test_frac: float = 0.10,
    contradiction_ratio: float = 0.45,
    unrelated_ratio: float = 0.15,
) -> dict[str, list[NLIPair]]:
    """Parse every task, split by group, add train-only augmentation. Returns train/calibration/test."""
    pairs: list[NLIPair] = []
    for task in TASKS:
        if task in task_files:
            pairs.extend(load_task(task_files[task], task))
    splits = split_by_group(pairs, seed, calibration_frac, test_frac)
    splits["train"] = splits["train"] + augment_hard_negatives(
        splits["train"], seed, contradiction_ratio, unrelated_ratio
    )
    return splits


