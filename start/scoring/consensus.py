"""Label-free comprehensiveness: the share of the claims a question's own samples agree on that an answer covers.

START's rounds must not read human labels, so a training question's gold answers cannot say what a complete
answer contains. The policy's samples and the documents can (self-consistency, checked against the sources):

* **candidate claims** of a question are the sentences of its samples as the scorer reads them (first
  line, citations removed), each distinct text once;
* a candidate is a **consensus claim** when at least ``min_share`` of the *other* samples entail it (its own
  author is not counted; premise = a sample's whole answer without citations) **and** some single document
  of the question entails it (agreement alone would reward a shared hallucination);
* an answer's **comprehensiveness** = the share of the question's consensus claims it entails (a claim its
  own sentences state counts as entailed; an empty answer covers nothing). None when the question has no
  consensus claim (fewer than two samples, or nothing agreed and supported).

Entailment goes through the attribution scorer's NLI backend and cache (:meth:`AttributionScorer.entailment`),
in two batched calls: answers x claims, then documents x the claims that passed agreement.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from start.scoring.records import ScoreRecord, parse_record
from start.scoring.scorer import AttributionScorer, _plan


@dataclass
class ConsensusResult:
    comprehensiveness: dict[str, float | None]  # record id -> share of its question's consensus claims covered
    claims: dict[str, list[str]]  # question id -> its consensus claims
    stats: dict  # questions, candidate and consensus claims, NLI pairs


def _question_of(record_id: str) -> str:
    return record_id.rsplit("#", 1)[0]


def consensus_comprehensiveness(scorer: AttributionScorer, records: Sequence[ScoreRecord | dict], *,
                                min_share: float = 0.5,
                                question_of: Callable[[str], str] = _question_of) -> ConsensusResult:
    """Comprehensiveness of every record against the consensus claims of its question's samples.

    ``records`` are the samples of one or more questions (one record per sample, e.g. from
    ``start.sampling.sampler.expand_for_scoring``); ``question_of`` maps a record id to its question.
    """
    if not 0 <= min_share <= 1:
        raise ValueError(f"min_share must be in [0, 1], got {min_share}")
    recs = [r if isinstance(r, ScoreRecord) else parse_record(r, i, allow_empty_docs=scorer.config.allow_empty_docs)
            for i, r in enumerate(records)]
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(recs):
        groups[question_of(r.id)].append(i)
    plans = [_plan(r, scorer.config) for r in recs]
    answers = [p.normalized.strip() if p.sentences else "" for p in plans]
    # claim text -> the samples (record indices) whose own sentences state it, per question
    authors: dict[str, dict[str, set[int]]] = {}
    for qid, idx in groups.items():
        by_claim: dict[str, set[int]] = defaultdict(set)
        for i in idx:
            for s in plans[i].sentences:
                if s.target.strip():
                    by_claim[s.target.strip()].add(i)
        authors[qid] = by_claim

    stats: dict = {"questions": len(groups), "records": len(recs)}
    ask = [(answers[j], c) for qid, idx in groups.items() for c, own in authors[qid].items()
           for j in idx if j not in own and answers[j]]
    probs = dict(zip(ask, scorer.entailment(ask, stats), strict=True))
    thr = scorer.nli.threshold

    def covers(j: int, c: str, own: set[int]) -> bool:
        return j in own or (bool(answers[j]) and probs[(answers[j], c)] >= thr)

    agreed: dict[str, list[str]] = {}
    for qid, idx in groups.items():
        others = len(idx) - 1
        need = math.ceil(min_share * others - 1e-9) if others else None
        agreed[qid] = [c for c, own in authors[qid].items() if need is not None
                       and sum(covers(j, c, own) for j in idx) - 1 >= max(need, 0)]
    docs_ask = [(d.for_nli(), c) for qid, idx in groups.items() for c in agreed[qid] for d in recs[idx[0]].docs]
    doc_probs = dict(zip(docs_ask, scorer.entailment(docs_ask, stats), strict=True))
    claims = {qid: [c for c in agreed[qid] if any(doc_probs[(d.for_nli(), c)] >= thr for d in recs[idx[0]].docs)]
              for qid, idx in groups.items()}

    out: dict[str, float | None] = {}
    for qid, idx in groups.items():
        cs = claims[qid]
        for j in idx:
            out[recs[j].id] = (sum(covers(j, c, authors[qid][c]) for c in cs) / len(cs)) if cs else None
    stats.update(candidate_claims=sum(len(a) for a in authors.values()),
                 agreed_claims=sum(len(a) for a in agreed.values()),
                 consensus_claims=sum(len(c) for c in claims.values()),
                 questions_without_consensus=sum(not c for c in claims.values()))
    return ConsensusResult(out, claims, stats)
