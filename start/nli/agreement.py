"""Agreement of the attribution scorer with people's citation judgments (ALCE's human evaluation format).

Input: one cited answer sentence per JSON line, as transcribed from ALCE's ``human_eval`` file:
``question``, ``sentence`` (with its ``[n]`` marks), ``cited_docs`` ([{title, text}] in citation order),
``human_recall`` (0/1: the cited documents jointly support the sentence), ``human_citation_scores`` (per
cited document: 2 supports alone, 1 supports with the others, 0 irrelevant) and optionally the reference
judge's labels on the same sentence, ``auto_recall`` / ``auto_citation_scores`` (TRUE-11B in ALCE).

Each sentence becomes one ALCE record whose documents are its cited documents, cited ``[1]..[k]``, and the
project's scorer decides sentence recall (joint entailment) and per-citation relevance (the reference
precision rule). A citation counts as precise for people when its score is >= 1, as ALCE reads them.

:func:`tune` chooses the decision threshold (and, among candidate premise readers, the reader) that agrees
best with the people; it re-uses one set of NLI probabilities for every threshold (:class:`MemoNLI`), so a
sweep costs one pass of the model.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from start.scoring.nli import MemoNLI, NLIBackend

REQUIRED = ("question", "sentence", "cited_docs", "human_recall", "human_citation_scores")


@dataclass(frozen=True)
class HumanSentence:
    question: str
    sentence: str
    docs: tuple[tuple[str, str], ...]  # (title, text) in citation order
    human_recall: int
    human_citation: tuple[int, ...]  # 1: precise (score >= 1), per cited document
    ref_recall: int | None  # the reference judge's labels (TRUE in ALCE), when the file has them
    ref_citation: tuple[int, ...] | None
    citation_scores: tuple[int, ...] | None = None  # people's raw scores (2 alone, 1 with the others, 0 irrelevant)


def load_human(path: str | Path) -> list[HumanSentence]:
    """Read the sentences that cite at least one document; a malformed line is an error naming it."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: not JSON ({err})") from None
            missing = [k for k in REQUIRED if k not in r]
            if missing:
                raise ValueError(f"{path}:{n}: missing field(s) {missing}")
            if not r["cited_docs"]:
                continue
            docs = tuple((d["title"], d["text"]) for d in r["cited_docs"])
            if len(r["human_citation_scores"]) != len(docs):
                raise ValueError(f"{path}:{n}: human_citation_scores has {len(r['human_citation_scores'])} "
                                 f"scores for {len(docs)} cited_docs")
            auto = r.get("auto_citation_scores")
            rows.append(HumanSentence(
                r["question"], r["sentence"], docs, int(r["human_recall"]),
                tuple(int(s >= 1) for s in r["human_citation_scores"]),
                None if r.get("auto_recall") is None else int(r["auto_recall"]),
                None if auto is None else tuple(int(s >= 1) for s in auto),
                tuple(int(s) for s in r["human_citation_scores"]),
            ))
    if not rows:
        raise ValueError(f"{path}: no cited sentence found")
    return rows


def to_records(rows: Sequence[HumanSentence]) -> list[dict]:
    """One ALCE record per sentence: its cited documents become documents 1..k, cited in that order."""
    recs = []
    for i, r in enumerate(rows):
        text = re.sub(r"\s*\[\d+\]", "", r.sentence).strip()
        marks = "".join(f"[{k + 1}]" for k in range(len(r.docs)))
        text = text[:-1] + " " + marks + text[-1] if text and text[-1] in ".!?" else text + " " + marks
        recs.append({"id": f"s{i}", "question": r.question, "output": text,
                     "docs": [{"title": t, "text": x} for t, x in r.docs]})
    return recs


def cohen_kappa(a: Sequence[int], b: Sequence[int]) -> tuple[float, float]:
    """(accuracy, Cohen's kappa) of two binary label lists; kappa is 0 when chance agreement is 1.

    >>> cohen_kappa([1, 1, 0, 0], [1, 0, 0, 0])
    (0.75, 0.5)
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"need two label lists of the same non-zero length, got {len(a)} and {len(b)}")
    x, y = np.asarray(a), np.asarray(b)
    po = float((x == y).mean())
    pa, pb = x.mean(), y.mean()
    pe = float(pa * pb + (1 - pa) * (1 - pb))
    return po, (po - pe) / (1 - pe) if pe < 1 else 0.0


def judge_labels(rows: Sequence[HumanSentence], report) -> tuple[list[int | None], list[list[int] | None]]:
    """Per sentence: the scorer's recall decision and per-citation relevance (None where the scorer split the
    sentence in two, which leaves it out of the comparison, as ALCE's own comparison does)."""
    rec, cites = [], []
    for r, rs in zip(rows, report.records, strict=True):
        sents = [s for s in rs.sentences if s.status == "ok"]
        if len(sents) != 1:
            rec.append(None)
            cites.append(None)
            continue
        s = sents[0]
        rel = s.relevant if s.relevant is not None else [False] * len(s.used)
        rec.append(int(s.supported))
        cites.append([int(x) for x in rel[: len(r.docs)]])
    return rec, cites


def agreement(rows: Sequence[HumanSentence], rec: Sequence[int | None], cites: Sequence[list[int] | None]) -> dict:
    """Accuracy and kappa vs the people for a judge's labels (and for the reference judge's, when present)."""
    keep = [i for i, x in enumerate(rec) if x is not None]
    h_rec = [rows[i].human_recall for i in keep]
    o_rec = [rec[i] for i in keep]
    h_pre = [h for i in keep for h in rows[i].human_citation[: len(cites[i])]]
    o_pre = [o for i in keep for o in cites[i]]
    out = {"sentences": len(keep), "citations": len(h_pre), "skipped_split": len(rows) - len(keep)}
    for name, h, o in (("recall", h_rec, o_rec), ("precision", h_pre, o_pre)):
        acc, kap = cohen_kappa(h, o)
        out[name] = {"acc": round(acc, 3), "kappa": round(kap, 3), "human_pos": round(float(np.mean(h)), 3),
                     "judge_pos": round(float(np.mean(o)), 3)}
    if all(rows[i].ref_recall is not None and rows[i].ref_citation is not None for i in keep):
        # the reference judge on the very same sentences and citations
        kept = set(keep)
        ref_rec = [rows[i].ref_recall if i in kept else None for i in range(len(rows))]
        ref_cites = [list(rows[i].ref_citation[: len(cites[i])]) if i in kept else None for i in range(len(rows))]
        out["reference"] = {k: v for k, v in agreement(_without_ref(rows), ref_rec, ref_cites).items()
                            if k in ("recall", "precision")}
    return out


def _without_ref(rows: Sequence[HumanSentence]) -> list[HumanSentence]:
    from dataclasses import replace

    return [replace(r, ref_recall=None, ref_citation=None) for r in rows]


def score_at(rows: Sequence[HumanSentence], backend: NLIBackend) -> dict:
    """Agreement of the scorer with ``backend`` (at its current threshold) with the people."""
    from start.scoring import AttributionScorer, ScorerConfig

    scorer = AttributionScorer(backend, ScorerConfig(sentence_mode="sentences", cache=False, support_check=False))
    quiet = logging.getLogger("start.scoring.scorer")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # truncation warnings repeat once per threshold of a sweep
    try:
        report = scorer.score(to_records(rows))
    finally:
        quiet.setLevel(level)
    return agreement(rows, *judge_labels(rows, report))


def objective(m: dict) -> tuple[float, float]:
    """Higher is better: the weaker of the two kappas first, then their mean."""
    k1, k2 = m["recall"]["kappa"], m["precision"]["kappa"]
    return min(k1, k2), (k1 + k2) / 2


def tune(rows: Sequence[HumanSentence], readers: dict[str, Callable[[], NLIBackend]],
         thresholds: Sequence[float] = tuple(np.round(np.arange(0.05, 0.951, 0.025), 3)),
         log: Callable[[str], None] = print) -> dict:
    """Best (reader, threshold) by :func:`objective`; every candidate's best threshold is reported too."""
    results = {}
    for name, make in readers.items():
        memo = MemoNLI(make())
        sweep = []
        for t in thresholds:
            memo.threshold = float(t)
            sweep.append((float(t), score_at(rows, memo)))
        t_best, m_best = max(sweep, key=lambda x: objective(x[1]))
        results[name] = {"threshold": t_best, "agreement": m_best,
                         "sweep": [{"threshold": t, "recall_kappa": m["recall"]["kappa"],
                                    "precision_kappa": m["precision"]["kappa"]} for t, m in sweep]}
        log(f"{name}: best threshold {t_best:.3f} recall kappa {m_best['recall']['kappa']:.3f} "
            f"precision kappa {m_best['precision']['kappa']:.3f}")
    best = max(results, key=lambda k: objective(results[k]["agreement"]))
    return {"best": best, "candidates": results}


# Premise readers tried by `calibrate` (chunk-and-max over sentence-aligned windows; see start.scoring.nli).
READERS: dict[str, dict] = {
    "whole": {"premise_window_words": 0},
    "text-60": {"premise_window_words": 60, "premise_windows": "text", "premise_whole": False},
    "documents-40": {"premise_window_words": 40, "premise_windows": "documents", "premise_whole": False},
    "documents-60": {"premise_window_words": 60, "premise_windows": "documents", "premise_whole": False},
    "documents-40+whole": {"premise_window_words": 40, "premise_windows": "documents", "premise_whole": True},
    "documents-60+whole": {"premise_window_words": 60, "premise_windows": "documents", "premise_whole": True},
    "documents-80+whole": {"premise_window_words": 80, "premise_windows": "documents", "premise_whole": True},
    "documents-100+whole": {"premise_window_words": 100, "premise_windows": "documents", "premise_whole": True},
}


def reader_stack(base: NLIBackend, reader: dict, number_guard: bool) -> NLIBackend:
    """The scorer's wrappers around ``base`` for one reader (same order as ``load_nli`` builds them)."""
    from start.scoring.nli import NumberGuardedNLI, PremiseWindowNLI

    backend = base
    if reader.get("premise_window_words"):
        backend = PremiseWindowNLI(base, int(reader["premise_window_words"]), reader.get("premise_windows", "text"),
                                   bool(reader.get("premise_whole", False)))
    return NumberGuardedNLI(backend) if number_guard else backend


def probe_accuracy(backend: NLIBackend, path: str | Path) -> dict:
    """The hand-written probe pairs through ``backend`` (reader and guard included) at its threshold."""
    from start.nli.measure import load_probe

    rows = load_probe(Path(path))
    probs = backend.predict([(r["premise"], r["hypothesis"]) for r in rows]).probs
    by_kind: dict[str, dict[str, int]] = {}
    failures = []
    for r, p in zip(rows, probs, strict=True):
        ok = bool(p >= backend.threshold) == r["entailed"]
        k = by_kind.setdefault(r["kind"], {"n": 0, "correct": 0})
        k["n"] += 1
        k["correct"] += int(ok)
        if not ok:
            failures.append({"hypothesis": r["hypothesis"], "entailed": r["entailed"], "p_entail": round(float(p), 4)})
    return {"n": len(rows), "accuracy": round(sum(k["correct"] for k in by_kind.values()) / len(rows), 4),
            "by_kind": by_kind, "failures": failures}


def calibrate(model: str, human: str | Path, max_length: int | None = None, readers: dict | None = None,
              probe: str | Path | None = None, ensemble: str | None = None, weights: Sequence[float] = (0.0,),
              thresholds: Sequence[float] = tuple(np.round(np.arange(0.05, 0.951, 0.025), 3)),
              log: Callable[[str], None] = print) -> dict:
    """Choose reader, number guard, threshold (and, with ``ensemble``, the partner model's weight among
    ``weights``) for ``model`` on the human-judged file; returns the settings (``start_nli.json`` keys) and
    the full search. Each model runs once per distinct window."""
    from start.scoring.nli import AveragedNLI, NLIConfig, load_nli

    rows = load_human(human)

    def raw(spec: str, length: int | None) -> MemoNLI:
        return MemoNLI(load_nli(NLIConfig(model=spec, premise_window_words=0, number_guard=False, ensemble=False,
                                          aggregator=False, max_length=length, progress=False)))

    base = raw(model, max_length)
    partner = raw(ensemble, base.backend.max_length) if ensemble else None
    readers = readers or READERS
    cands, chosen_of = {}, {}
    for w in (weights if partner is not None else (0.0,)):
        judge = base if w == 0 else AveragedNLI([(base, 1 - w), (partner, w)])
        for name, r in readers.items():
            for g in (False, True):
                key = f"{name}{'+guard' if g else ''}{f'+{ensemble}*{w:g}' if w else ''}"
                cands[key] = lambda r=r, g=g, judge=judge: reader_stack(judge, r, g)
                chosen_of[key] = (r, g, w)
    found = tune(rows, cands, thresholds, log=log)
    name = found["best"]
    reader, guard, weight = chosen_of[name]
    settings = {
        "threshold": found["candidates"][name]["threshold"],
        "number_guard": guard,
        "ensemble": {"model": ensemble, "weight": weight} if weight else None,
        "premise_window_words": int(reader.get("premise_window_words", 0)),
        "premise_windows": reader.get("premise_windows", "text"),
        "premise_whole": bool(reader.get("premise_whole", False)),
        "max_length": base.backend.max_length,
    }
    chosen = cands[name]()
    chosen.threshold = settings["threshold"]
    probe_result = probe_accuracy(chosen, probe) if probe is not None and Path(probe).is_file() else None
    return {"settings": settings, "reader": name, "human_file": Path(human).name, "sentences": len(rows),
            "probe": probe_result,
            "agreement": found["candidates"][name]["agreement"],
            "reference_agreement": found["candidates"][name]["agreement"].get("reference"),
            "candidates": {k: {"threshold": v["threshold"], "agreement": v["agreement"]}
                           for k, v in found["candidates"].items()}}
