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
import random
import re
import subprocess
import sys
import tarfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

LABELS: tuple[str, ...] = ("entailment", "neutral", "contradiction")
LABEL2ID: dict[str, int] = {name: i for i, name in enumerate(LABELS)}

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


@dataclass(frozen=True)
class NLIPair:
    """One labelled pair. ``group`` keeps related rows (same page / same scene) in one split."""

    premise: str
    hypothesis: str
    label: str  # one of LABELS
    source: str  # task name, or "aug-<kind>" for synthetic pairs
    group: str

    def __post_init__(self) -> None:
        if self.label not in LABEL2ID:
            raise ValueError(f"label must be one of {LABELS}, got {self.label!r}")
        if not self.premise.strip() or not self.hypothesis.strip():
            raise ValueError(f"empty premise or hypothesis in {self.source} pair (group {self.group!r})")


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
            f"`pip download` of bigbench=={BIGBENCH_VERSION} failed (exit {proc.returncode}); download the "
            f"sdist by hand and pass --bigbench-tarball PATH or set START_BIGBENCH_TARBALL"
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


# ----------------------------------------------------------------------------------------- augmentation

_NUM_RE = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|(?<![\w.,])\d+(?:\.\d+)?(?![\w])")
_YEAR_RE = re.compile(r"^(1[5-9]\d\d|20[0-4]\d)$")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_MONTH_RE = re.compile(r"\b(" + "|".join(_MONTHS) + r")\b")
# Capitalised spans of 1-4 words ("New York", "Marie Curie"); joined by "of"/"de" inside names.
_ENT_RE = re.compile(r"\b[A-Z][a-zA-Z\-']+(?:\s+(?:of\s+|de\s+)?[A-Z][a-zA-Z\-']+){0,3}")
_STOP_ENTS = {
    "The",
    "A",
    "An",
    "In",
    "On",
    "At",
    "It",
    "He",
    "She",
    "They",
    "This",
    "That",
    "There",
    "As",
    "By",
    "For",
    "After",
    "Before",
    "During",
    "His",
    "Her",
    "Its",
    "Their",
    "LRB",
    "RRB",
    "Claim",
    "And",
    "But",
    "Of",
    "To",
    "With",
    "From",
    "Since",
    "When",
    "While",
    "Over",
    "Under",
    "Less",
    "More",
    "About",
    "Only",
    "No",
    "Not",
    "All",
    "Some",
    *_MONTHS,
}


def _num_value(tok: str) -> float:
    return float(tok.replace(",", ""))


def _format_like(value: float, template: str) -> str:
    decimals = len(template.split(".", 1)[1]) if "." in template else 0
    text = f"{value:,.{decimals}f}" if "," in template else f"{value:.{decimals}f}"
    return text


# Words that make a number a bound ("more than 200"): changing such a number may keep the claim true.
_BOUND_RE = re.compile(
    r"\b(more|less|fewer|over|under|above|below|at least|at most|nearly|almost|about|around|approximately"
    r"|roughly|up to|exceed\w*|before|after|since|until|by|within|than|between|some|estimated)\W*$",
    re.IGNORECASE,
)


def _swap_number(claim: str, premise: str, rng: random.Random) -> tuple[str, str] | None:
    """Replace one number in ``claim`` with a different value that does not occur in ``premise``.

    Only numbers the claim copies verbatim from the premise, and not stated as a bound ("more than 200",
    "before 1990"), are swapped: then the edited claim is false rather than possibly still true."""
    matches = [m for m in _NUM_RE.finditer(claim)]
    rng.shuffle(matches)
    premise_nums = set(_NUM_RE.findall(premise))
    for m in matches:
        tok = m.group(0)
        if tok not in premise_nums or _BOUND_RE.search(claim[max(0, m.start() - 30) : m.start()].replace("$", "")):
            continue
        if _YEAR_RE.match(tok):
            kind = "date"
            y = int(tok)
            cands = [str(y + d) for d in (-30, -12, -7, -3, -2, -1, 1, 2, 3, 5, 10, 25) if 1500 <= y + d <= 2049]
        else:
            kind = "number"
            v = _num_value(tok)
            factors = (0.5, 0.7, 0.8, 1.25, 1.5, 2.0, 3.0) if v >= 10 else ()
            cands = [_format_like(v * f, tok) for f in factors]
            cands += [_format_like(v + d, tok) for d in (-3, -2, -1, 1, 2, 4, 7) if v + d >= 0]
        cands = [c for c in dict.fromkeys(cands) if c != tok and c not in premise_nums and c not in premise]
        if cands:
            new = rng.choice(cands)
            return claim[: m.start()] + new + claim[m.end() :], kind
    return None


def _swap_month(claim: str, premise: str, rng: random.Random) -> str | None:
    m = _MONTH_RE.search(claim)
    if not m:
        return None
    cands = [x for x in _MONTHS if x != m.group(1) and x not in premise]
    return claim[: m.start()] + rng.choice(cands) + claim[m.end() :] if cands else None


def _entities(text: str) -> list[str]:
    ents = []
    for m in _ENT_RE.finditer(text):
        words = m.group(0).split()
        while words and words[0] in _STOP_ENTS:
            words = words[1:]
        if words and not (len(words) == 1 and len(words[0]) < 3):
            ents.append(" ".join(words))
    return ents


def _swap_entity(claim: str, premise: str, pool: Sequence[str], rng: random.Random) -> str | None:
    """Replace a capitalised entity of the claim with one from the premise (a close distractor) or, failing
    that, from a pool of train-split entities. The page subject (premise title) is kept, so the claim stays
    on-topic and the change is a factual error, not an off-topic sentence."""
    title = premise.split(": ", 1)[0] if ": " in premise else ""
    claim_ents = [e for e in _entities(claim) if e not in title and title not in e]
    if not claim_ents:
        return None
    target = rng.choice(claim_ents)
    local = [
        e
        for e in _entities(premise.split(": ", 1)[-1])
        if e not in claim and target not in e and e not in target and e not in title
    ]
    cands = local or [e for e in rng.sample(list(pool), min(30, len(pool))) if e not in premise and e != target]
    if not cands:
        return None
    return claim.replace(target, rng.choice(cands), 1)


def augment_hard_negatives(
    train: Sequence[NLIPair], seed: int, contradiction_ratio: float = 0.45, unrelated_ratio: float = 0.15
) -> list[NLIPair]:
    """Synthetic pairs from the TRAIN split only.

    * contradiction: an entailed claim with one number, year, month or named entity swapped
      (about ``contradiction_ratio`` x the number of entailed train pairs);
    * neutral: an entailed claim paired with the premise of a different group (an unrelated passage),
      about ``unrelated_ratio`` x the entailed count.
    Each synthetic pair keeps the group of the pair it came from."""
    if contradiction_ratio < 0 or unrelated_ratio < 0:
        raise ValueError("augmentation ratios must be >= 0")
    rng = random.Random(seed)
    entailed = [p for p in train if p.label == "entailment" and p.source == "vitaminc_fact_verification"]
    pool = sorted({e for p in entailed for e in _entities(p.hypothesis)})
    order = list(entailed)
    rng.shuffle(order)
    out: list[NLIPair] = []
    n_contra = int(round(contradiction_ratio * len(entailed)))
    for p in order:
        if len(out) >= n_contra:
            break
        # Prefer number/date edits (the scorer's main failure mode), then months, then entities.
        swapped = _swap_number(p.hypothesis, p.premise, rng)
        if swapped is not None:
            hyp, kind = swapped
        elif (m := _swap_month(p.hypothesis, p.premise, rng)) is not None:
            hyp, kind = m, "date"
        elif (e := _swap_entity(p.hypothesis, p.premise, pool, rng)) is not None:
            hyp, kind = e, "entity"
        else:
            continue
        out.append(NLIPair(p.premise, hyp, "contradiction", f"aug-{kind}", p.group))
        if len(out) >= n_contra:
            break
    n_unrel = int(round(unrelated_ratio * len(entailed)))
    premises = [p for p in train if p.source == "vitaminc_fact_verification"]
    for p in order[:n_unrel]:
        for _ in range(10):
            other = rng.choice(premises)
            if other.group != p.group:
                out.append(NLIPair(other.premise, p.hypothesis, "neutral", "aug-unrelated", p.group))
                break
    return out


# ---------------------------------------------------------------------------------------------- summary


def label_counts(pairs: Iterable[NLIPair]) -> dict[str, dict[str, int]]:
    """``{source: {label: n}}`` plus an ``"all"`` row; used by the data card and start_nli.json."""
    table: dict[str, Counter] = defaultdict(Counter)
    for p in pairs:
        table[p.source][p.label] += 1
        table["all"][p.label] += 1
    return {s: {lab: c[lab] for lab in LABELS} for s, c in sorted(table.items())}


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


# ------------------------------------------------------------------------------- long, multi-document premises
#
# The scorer's premises are cited passages: ~100-word Wikipedia snippets, "Title: <title>\n<text>", several
# joined by newlines. VitaminC evidence is one ~30-word sentence. These builders re-shape train pairs into
# that form, keeping each pair's label: the evidence sentence is packed with other sentences of the same page
# into a passage, passages of other pages are added as distractors, and two claims are joined into one
# hypothesis that needs two passages together (both given: entailed; one missing: neutral).

_DETOK = ((re.compile(r" ([,.;:!?%)\]])"), r"\1"), (re.compile(r"([(\[$]) "), r"\1"),
          (re.compile(r" (n't|'s) "), r"\1 "), (re.compile(r"-LRB- ?"), "("), (re.compile(r" ?-RRB-"), ")"))
_JOIN_LOWER = {"The", "A", "An", "In", "It", "He", "She", "They", "This", "There", "His", "Her", "Its", "Their",
               "As", "On", "At", "By", "For", "After", "Before", "During", "Since", "When", "While", "Over"}


def detokenize(text: str) -> str:
    """Undo VitaminC's tokenised spacing ("Germany , there" -> "Germany, there")."""
    for pattern, repl in _DETOK:
        text = pattern.sub(repl, text)
    return text


def _title_and_evidence(premise: str) -> tuple[str, str]:
    title, sep, evidence = premise.partition(": ")
    return (title, evidence) if sep else ("", premise)


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def _near_duplicate(a: str, b: str, limit: float = 0.3) -> bool:
    """Token Jaccard overlap above ``limit``: VitaminC pages hold many revisions of one sentence, which must
    not be packed beside each other (a revision can state the opposite of the evidence)."""
    wa, wb = _words(a), _words(b)
    return bool(wa and wb) and len(wa & wb) / len(wa | wb) > limit


def _context_pool(pairs: Sequence[NLIPair]) -> dict[str, tuple[str, list[str]]]:
    """Per VitaminC group: page title and its distinct evidence sentences (detokenised)."""
    pool: dict[str, tuple[str, list[str]]] = {}
    for p in pairs:
        if p.source != "vitaminc_fact_verification":
            continue
        title, ev = _title_and_evidence(p.premise)
        entry = pool.setdefault(p.group, (detokenize(title), []))
        ev = detokenize(ev)
        if ev not in entry[1]:
            entry[1].append(ev)
    return pool


def _passage(title: str, evidence: str | None, others: Sequence[str], words: int, rng: random.Random) -> str:
    """A "Title: <title>\\n<text>" passage of about ``words`` words: ``evidence`` at a random position among
    sentences of the same page that are not revisions of it (or of each other)."""
    chosen: list[str] = [evidence] if evidence else []
    n = len(evidence.split()) if evidence else 0
    for s in rng.sample(list(others), len(others)):
        if n >= words:
            break
        if any(_near_duplicate(s, c) for c in chosen):
            continue
        chosen.append(s)
        n += len(s.split())
    if evidence:
        chosen.remove(evidence)
        chosen.insert(rng.randint(0, len(chosen)), evidence)
    return f"Title: {title}\n" + " ".join(chosen)


def _join_claims(a: str, b: str) -> str:
    a, b = a.strip().rstrip("."), b.strip()
    first = b.split(" ", 1)[0]
    if first in _JOIN_LOWER:
        b = b[0].lower() + b[1:]
    return f"{a}, and {b}"


def long_premise_pairs(
    train: Sequence[NLIPair],
    seed: int,
    n_packed: int,
    n_joint: int,
    words: tuple[int, int] = (60, 120),
    max_docs: int = 3,
) -> list[NLIPair]:
    """Train-split pairs re-shaped like the scorer's premises (labels kept; all from ``train`` only).

    * ``long-packed`` (``n_packed``): a VitaminC pair (original or hard negative) whose evidence sits inside a
      passage of its page (``words`` words), in half of them beside 1-2 passages of other pages;
    * ``long-joint`` / ``long-partial`` / ``long-joint-contradiction`` (``n_joint`` in all, 50/30/20%):
      hypothesis = two claims of two pages joined with "and"; premise = both passages (entailment), one
      passage and a distractor (neutral: only part is supported), or the other claim's evidence refutes it
      (contradiction).
    Each pair keeps the group of the pair it was built from."""
    rng = random.Random(seed + 1)
    pool = _context_pool(train)
    groups = sorted(pool)
    vc = [p for p in train if p.source == "vitaminc_fact_verification" or p.source.startswith("aug-")]
    vc = [p for p in vc if p.group in pool]
    if not vc or (n_packed == 0 and n_joint == 0):
        return []

    def passage_for(p: NLIPair) -> str:
        title, ev = _title_and_evidence(p.premise)
        ev = detokenize(ev)
        others = [s for s in pool[p.group][1] if not _near_duplicate(s, ev)]
        n = rng.randint(*words)
        if sum(len(s.split()) for s in others) + len(ev.split()) < n:
            # A short page: fill the passage with sentences of another page (never a revision of the evidence).
            g = rng.choice(groups)
            if g != p.group:
                others += [s for s in pool[g][1] if not _near_duplicate(s, ev)]
        return _passage(detokenize(title), ev, others, n, rng)

    def distractor(exclude: str) -> str:
        for _ in range(20):
            g = rng.choice(groups)
            if g != exclude:
                title, sents = pool[g]
                return _passage(title, None, sents, rng.randint(*words), rng)
        raise RuntimeError("no distractor page found")

    def docs_with_distractors(docs: list[str], group: str, k: int) -> str:
        docs = docs + [distractor(group) for _ in range(k)]
        rng.shuffle(docs)
        return "\n".join(docs)

    out: list[NLIPair] = []
    for p in rng.sample(vc, min(n_packed, len(vc))):
        k = rng.choice((0, 0, 1, 2)) if max_docs > 1 else 0
        premise = docs_with_distractors([passage_for(p)], p.group, min(k, max_docs - 1))
        out.append(NLIPair(premise, detokenize(p.hypothesis), p.label, "long-packed", p.group))

    entailed = [p for p in train if p.source == "vitaminc_fact_verification" and p.label == "entailment"
                and p.group in pool]
    contra = [p for p in train if p.source == "vitaminc_fact_verification" and p.label == "contradiction"
              and p.group in pool]
    kinds = ["long-joint"] * 5 + ["long-partial"] * 3 + ["long-joint-contradiction"] * 2
    made = 0
    while made < n_joint and len(entailed) > 1:
        kind = kinds[made % len(kinds)]
        a = rng.choice(entailed)
        b = rng.choice(contra if kind == "long-joint-contradiction" and contra else entailed)
        if a.group == b.group:
            continue
        hyp = _join_claims(detokenize(a.hypothesis), detokenize(b.hypothesis))
        if rng.random() < 0.5:
            hyp = _join_claims(detokenize(b.hypothesis), detokenize(a.hypothesis))
        if kind == "long-partial":
            docs, label = [passage_for(a), distractor(b.group)], "neutral"
            if rng.random() < 0.5:
                docs = [passage_for(b), distractor(a.group)]
        else:
            docs = [passage_for(a), passage_for(b)]
            label = "entailment" if kind == "long-joint" else "contradiction"
        extra = 1 if max_docs > 2 and rng.random() < 0.3 else 0
        premise = docs_with_distractors(docs, a.group, extra)
        out.append(NLIPair(premise, hyp, label, kind, a.group))
        made += 1
    return out
