"""Warm-up step 5: check the generated documents, cite them, and verify with the attribution scorer.

* :func:`check_documents` discards every document that does not entail each of its own claims (a
  document the model failed to write cannot support anything reliably).
* :func:`relabel` gives each answer sentence its minimal covering set of documents: one document when one
  entails the sentence, else the smallest combination (2, then 3) of the question's own documents whose
  joined text entails it. Because every smaller combination was tried first, each cited document is
  needed, so the reference scorer's precision test (a citation is irrelevant when it does not entail the
  sentence alone and the others do without it) passes by construction. Premises use the scorer's format
  (:meth:`Document.for_nli`, :func:`join_documents`, documents in citation order).
* :func:`verify` re-scores every example with :class:`~start.scoring.AttributionScorer`; anything short of
  citation recall = precision = 1 is dropped and counted.

All NLI questions of a step go to the backend in one deduplicated ``predict`` call (per combination size).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from start.scoring.nli import MemoNLI, Pair  # noqa: F401 (MemoNLI: moved to start.scoring.nli, re-exported)
from start.scoring.scorer import AttributionScorer
from start.text import join_documents, sent_tokenize
from start.warmup.config import RelabelStep
from start.warmup.steps import StepStats, WarmDoc, WarmupItem


def _premise(docs: Sequence[WarmDoc]) -> str:
    return join_documents([d.to_document() for d in docs])


# ------------------------------------------------------------------------------ 5a: document check


def check_documents(items: Sequence[WarmupItem], nli: MemoNLI) -> tuple[list[WarmupItem], StepStats]:
    """Discard documents (own and distractor) that do not entail every claim they were written for."""
    stats = StepStats("check_documents", n_in=len(items))
    pairs = [(_premise([d]), c) for it in items for d in it.docs for c in d.claims]
    probs = nli.entailed(pairs)
    out = []
    for it in items:
        docs = []
        for d in it.docs:
            if all(probs[(_premise([d]), c)] >= nli.threshold for c in d.claims):
                docs.append(d)
            else:
                stats.counts["distractor_fails_own_claims" if d.distractor else "document_fails_own_claims"] += 1
        if not any(not d.distractor for d in docs):
            stats.dropped["no_valid_documents"] += 1
            continue
        out.append(replace(it, docs=tuple(docs)))
    stats.n_out = len(out)
    return out, stats


# --------------------------------------------------------------------------------------- 5b: relabel

_END = re.compile(r"([.!?]+[\"'”’)\]]*)\s*$")


def insert_citations(sentence: str, ids: Sequence[int]) -> str:
    """Put ``[i][j]`` before the sentence's final punctuation.

    >>> insert_citations("It opened in 1994.", [1, 3])
    'It opened in 1994 [1][3].'
    """
    marks = "".join(f"[{i}]" for i in ids)
    m = _END.search(sentence)
    if m:
        return f"{sentence[:m.start()].rstrip()} {marks}{m.group(1)}"
    return f"{sentence.rstrip()} {marks}"


def _best(candidates: list[tuple[tuple[int, ...], float]], thr: float) -> tuple[int, ...] | None:
    """The entailing candidate with the highest probability (ties: the earliest documents)."""
    hits = [(c, p) for c, p in candidates if p >= thr]
    return min(hits, key=lambda cp: (-cp[1], cp[0]))[0] if hits else None


def relabel(items: Sequence[WarmupItem], nli: MemoNLI, cfg: RelabelStep) -> tuple[list[WarmupItem], StepStats]:
    """Cite each answer sentence with its minimal covering set of documents; drop unsupported sentences."""
    stats = StepStats("relabel", n_in=len(items))
    thr = nli.threshold
    sentences = {it.id: sent_tokenize(it.answer) for it in items}

    # Round 1: every document against every sentence. Distractors that entail a sentence are not
    # distractors for this answer: they are removed from its documents.
    singles = nli.entailed([(_premise([d]), s) for it in items for d in it.docs for s in sentences[it.id]])
    docs_of: dict[str, tuple[WarmDoc, ...]] = {}
    for it in items:
        keep = [d for d in it.docs
                if not (d.distractor and any(singles[(_premise([d]), s)] >= thr for s in sentences[it.id]))]
        if len(keep) < len(it.docs):
            stats.counts["distractor_entails_answer"] += len(it.docs) - len(keep)
        docs_of[it.id] = tuple(keep)

    choice: dict[tuple[str, int], tuple[int, ...]] = {}  # (item id, sentence index) -> 0-based doc indices
    for it in items:
        docs = docs_of[it.id]
        for k, s in enumerate(sentences[it.id]):
            pick = _best([((i,), singles[(_premise([d]), s)]) for i, d in enumerate(docs)], thr)
            if pick is not None:
                choice[(it.id, k)] = pick

    # Rounds 2..max: combinations of the question's own documents, smallest first, all items at once.
    for size in range(2, cfg.max_citations + 1):
        asks: dict[tuple[str, int], list[tuple[tuple[int, ...], Pair]]] = {}
        for it in items:
            docs = docs_of[it.id]
            own = [i for i, d in enumerate(docs) if not d.distractor]
            for k, s in enumerate(sentences[it.id]):
                if (it.id, k) not in choice:
                    asks[(it.id, k)] = [(combo, (_premise([docs[i] for i in combo]), s))
                                        for combo in itertools.combinations(own, size)]
        if not any(asks.values()):
            break
        probs = nli.entailed([pair for combos in asks.values() for _, pair in combos])
        for key, combos in asks.items():
            pick = _best([(combo, probs[pair]) for combo, pair in combos], thr)
            if pick is not None:
                choice[key] = pick

    out = []
    for it in items:
        docs = docs_of[it.id]
        cited, dropped = [], []
        for k, s in enumerate(sentences[it.id]):
            if (it.id, k) in choice:
                cited.append(insert_citations(s, [i + 1 for i in choice[(it.id, k)]]))
                stats.counts[f"sentences_with_{len(choice[(it.id, k)])}_citations"] += 1
            else:
                dropped.append(s)
        stats.counts["sentences_dropped_unsupported"] += len(dropped)
        if dropped and cfg.unsupported == "drop_example":
            stats.dropped["unsupported_sentence"] += 1
            continue
        if len(cited) < cfg.min_sentences:
            stats.dropped["too_few_supported_sentences"] += 1
            continue
        out.append(replace(it, docs=docs, cited_answer=" ".join(cited), dropped_sentences=tuple(dropped)))
    stats.n_out = len(out)
    return out, stats


# ---------------------------------------------------------------------------------------- 5c: verify


def to_alce(item: WarmupItem) -> dict[str, Any]:
    """The ALCE-format record of an example (what the scorer reads)."""
    return {"id": item.id, "question": item.question, "output": item.cited_answer,
            "docs": [{"title": d.title, "text": d.text, "distractor": d.distractor} for d in item.docs]}


def verify(items: Sequence[WarmupItem], scorer: AttributionScorer) -> tuple[list[WarmupItem], StepStats]:
    """Keep the examples the attribution scorer gives citation recall = precision = 1."""
    stats = StepStats("verify", n_in=len(items))
    report = scorer.score([to_alce(it) for it in items]) if items else None
    out = []
    for i, it in enumerate(items):
        rec = report.records[i]
        if rec.n_sentences == 0:
            stats.dropped["empty_output"] += 1
        elif rec.citation_rec != 1.0:
            stats.dropped["recall_below_1"] += 1
        elif rec.citation_prec != 1.0:
            stats.dropped["precision_below_1"] += 1
        else:
            out.append(it)
    stats.n_out = len(out)
    return out, stats
