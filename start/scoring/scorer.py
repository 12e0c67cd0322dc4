"""Fine-grained attribution scoring with the semantics of the ALCE reference evaluation.

Per answer (``output``), after keeping its first line (``first_line_only``) and removing ``<|im_end|>``:

* **Sentences** come from ``nltk.sent_tokenize`` (punkt_tab). In QAMPARI mode (records with ``answers``),
  as in the reference, each comma-separated item becomes the sentence ``question + " " + item``.
* **Citations** of a sentence are its ``[n`` marks (1-based). A sentence with none, or with any id
  outside ``1..len(docs)``, is unsupported. Otherwise only the first ``at_most_citations`` (3) are used.
  The hypothesis is the sentence with citations removed; the premise is the cited documents, each
  formatted ``"Title: <title>\\n<text>"``, joined by newlines. (The reference would read ``[0`` as the
  last document through Python's negative indexing; we count it as out of range.)
* **Citation recall** of an answer = (#sentences whose cited documents jointly entail them) / #sentences.
* **Citation precision** = (#relevant citations) / (#citations used, over sentences with valid citations),
  0 when the answer has no valid citation. In a supported sentence with one citation, that citation is
  relevant. In a supported sentence with several, citation c is *irrelevant* when c alone does not
  entail the sentence **and** the other citations (the list without c's first occurrence) still do;
  otherwise it is relevant. Citations of unsupported sentences are never relevant.
* **Citation F1** (per answer) = 2PR/(P+R); the data set's ``citation_f1`` is the harmonic mean of the
  data set's recall and precision. Answers with no sentence (empty output) are left out of the three
  means, as the reference skips them, and counted in ``num_empty_outputs``.
* **Comprehensiveness** = share of the required information the answer covers: ELI5 ``claims`` entailed
  by the answer (premise = the whole answer without citations), else ASQA short answers (STR-EM of the
  answer), else QAMPARI gold answers (list recall), else yes/no correctness, else the sentences of a long
  reference ``answer`` entailed by the answer; None when the record has no gold information. Claims come
  first: a record that has them (e.g. the embedded long-form questions, which also carry ``qa_pairs``)
  spells out every piece of information a full answer needs, while short answers check only the
  checkable values. ALCE's own metrics (``str_em``, ``claims_nli``, ...) are computed as before,
  whatever source comprehensiveness uses.
* **Robustness** has two parts: ``distractor_citation_rate`` = share of the used citations that point at
  documents marked ``distractor`` (None when no document of the record is marked), and
  ``unsupported_sentence_rate`` = share of sentences that neither their citations nor any single
  document of the record entails (content no document supports; ``support_check``).
  ``robustness`` = 1 - mean of the available parts.
* ``nonexistent_citation_rate`` = share of sentences that cite a document that does not exist (``[4]``
  with three documents; such a sentence counts as unsupported).
* Correctness: ``str_em`` / ``str_hit`` (ASQA), ``claims_nli`` (ELI5), ``qampari_*`` (QAMPARI),
  ``yes_no_acc`` (StrategyQA-style: the first "yes"/"no" word), and ``length`` (words).

Aggregates are on a 0-100 scale (``length`` and counts excepted), with the reference's key names.

Probabilities: a sentence's ``prob`` (and the cache) hold P(entailment) as the judge reports it. A judge that
reads premises lazily (``NLIConfig.lazy``, the default for windowed judges) stops at the first reading that
reaches its threshold, so for a supported sentence ``prob`` is a lower bound (>= the threshold), not the
maximum; decisions are the same. Set ``lazy=False`` for exact probabilities.

Execution: the decision logic is written once (:func:`_judge_record`) against an *oracle* that answers
(premise, hypothesis) questions. The batched scorer runs it in rounds: every round collects, across the
whole file, the pairs that the logic needs next (recall pairs and claims; then single-citation pairs for
supported multi-citation sentences; then the leave-one-out pairs), deduplicates them, reads the cache,
and sends the rest to the model in length-sorted batches. The sequential mode answers each question with
its own forward pass, exactly as the reference loop does; both evaluate the same pairs, so their scores
are identical up to floating-point noise in the model's batched arithmetic.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from start.io import cache_root, read_records
from start.scoring import correctness as corr
from start.scoring.cache import NLICache, pair_key
from start.scoring.nli import NLIBackend, NLIConfig, Pair, load_nli
from start.scoring.records import ScoreRecord, parse_record, parse_records
from start.text import (
    CitationFormat,
    Document,
    clean_output,
    join_documents,
    parse_citations,
    remove_citations,
    sent_tokenize,
)

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return cache_root()


@dataclass
class ScorerConfig:
    """Scoring rules; the defaults reproduce the ALCE reference evaluation."""

    at_most_citations: int | None = 3  # citations per sentence that count (reference default: 3)
    first_line_only: bool = True  # keep only the first line of an output, as the reference does
    citation_format: CitationFormat = "alce"  # "alce": `[n` marks; "lenient": also `[1, 2]` lists
    sentence_mode: Literal["auto", "sentences", "qampari"] = "auto"  # auto: qampari when `answers` exist
    support_check: bool = True  # compute unsupported_sentence_rate (extra pairs for unsupported sentences)
    allow_empty_docs: bool = False  # accept records with no documents (their citations are out of range)
    cache: bool = True  # persist NLI results on disk
    cache_dir: str | None = None  # default: $START_CACHE_DIR or ~/.cache/start

    def __post_init__(self):
        if self.at_most_citations is not None and self.at_most_citations < 1:
            raise ValueError(f"at_most_citations must be >= 1 or None, got {self.at_most_citations}")
        if self.citation_format not in ("alce", "lenient"):
            raise ValueError(f"citation_format must be 'alce' or 'lenient', got {self.citation_format!r}")
        if self.sentence_mode not in ("auto", "sentences", "qampari"):
            raise ValueError(f"sentence_mode must be auto, sentences or qampari, got {self.sentence_mode!r}")


# --------------------------------------------------------------------------------------------------
# Results


@dataclass
class SentenceScore:
    text: str  # the sentence as written (with citations)
    target: str  # the hypothesis: citations removed
    citations: list[int]  # 1-based ids as parsed from the sentence
    status: Literal["ok", "no_citation", "out_of_range"]
    used: list[int]  # 1-based ids that were checked (after at_most_citations)
    supported: bool  # the used citations jointly entail the sentence
    prob: float | None  # P(entailment) of the joint check
    relevant: list[bool] | None  # per used citation (None for unsupported sentences)
    any_doc_support: bool | None  # some single document entails it (support_check)


@dataclass
class RecordScore:
    id: str
    n_sentences: int
    citation_rec: float | None  # 0-1; None for an empty output
    citation_prec: float | None
    citation_f1: float | None
    n_citations: int  # citations used across sentences with valid citations
    comprehensiveness: float | None
    comprehensiveness_source: str | None
    distractor_citation_rate: float | None
    unsupported_sentence_rate: float | None
    robustness: float | None
    length: int
    str_em: float | None = None
    str_hit: float | None = None
    claims_nli: float | None = None
    qampari: dict | None = None
    yes_no_correct: bool | None = None
    first_line_cut: bool = False
    out_of_range_sentences: int = 0
    truncated_pairs: int = 0  # pairs the model read that were cut at its length limit (a lazy reader reads fewer)
    sentences: list[SentenceScore] = field(default_factory=list)

    @property
    def nonexistent_citation_rate(self) -> float | None:
        """Share of the answer's sentences that cite a document that does not exist (None: empty answer)."""
        return self.out_of_range_sentences / self.n_sentences if self.n_sentences else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RecordScore:
        return cls(**{**d, "sentences": [SentenceScore(**x) for x in d.get("sentences", [])]})


@dataclass
class ScoreReport:
    metrics: dict[str, Any]  # data-set aggregates, 0-100 where the reference uses that scale
    records: list[RecordScore]
    stats: dict[str, Any]  # pairs, cache hits, timings


# --------------------------------------------------------------------------------------------------
# Planning: everything that needs no model


@dataclass(frozen=True)
class _SentencePlan:
    text: str
    target: str
    citations: tuple[int, ...]
    status: str
    refs: tuple[int, ...]  # 0-based, after at_most_citations; empty unless status == "ok"


@dataclass(frozen=True)
class _RecordPlan:
    record: ScoreRecord
    normalized: str  # first line, citations removed: the text for correctness metrics
    first_line_cut: bool
    sentences: tuple[_SentencePlan, ...]
    claims: tuple[str, ...] | None  # hypotheses whose entailment by the answer is counted
    claims_source: str | None


def _plan(rec: ScoreRecord, cfg: ScorerConfig) -> _RecordPlan:
    output, cut = clean_output(rec.output, first_line_only=cfg.first_line_only)
    fmt = cfg.citation_format
    qampari = cfg.sentence_mode == "qampari" or (cfg.sentence_mode == "auto" and rec.answers is not None)
    if qampari:
        raw = [rec.question + " " + x.strip() for x in output.rstrip().rstrip(".").rstrip(",").split(",")]
    else:
        raw = sent_tokenize(output)
    sentences = []
    for s in raw:
        cites = tuple(parse_citations(s, fmt))
        if not cites:
            status, refs = "no_citation", ()
        elif any(c < 1 or c > len(rec.docs) for c in cites):
            status, refs = "out_of_range", ()
        else:
            status = "ok"
            refs = tuple(c - 1 for c in cites[: cfg.at_most_citations])
        sentences.append(_SentencePlan(s, remove_citations(s, fmt).strip(), cites, status, refs))
    normalized = remove_citations(output, fmt)
    claims, source = None, None
    if rec.claims is not None:  # claims win over short answers (module docstring)
        claims, source = rec.claims, "claims"
    elif rec.short_answers is not None:
        source = "short_answers"
    elif rec.answers is not None:
        source = "answers"
    elif rec.yes_no is not None:
        source = "yes_no"
    elif rec.reference_answer is not None:
        claims = tuple(t for t in (remove_citations(x, fmt).strip() for x in sent_tokenize(rec.reference_answer)) if t)
        source = "reference_answer"
    return _RecordPlan(rec, normalized, cut, tuple(sentences), claims or None, source)


# --------------------------------------------------------------------------------------------------
# Judging: the decision logic, written once against an oracle


class _Pending(Exception):
    """The oracle does not know these pairs yet (batched mode)."""

    def __init__(self, pairs: set[Pair]):
        self.pairs = pairs


class _Oracle:
    """Answers P(entailment) for pairs; records which pairs a record used."""

    def __init__(self, lookup):
        self._lookup = lookup  # pairs -> list[float], may raise _Pending
        self.used: list[Pair] = []

    def require(self, pairs: list[Pair]) -> list[float]:
        probs = self._lookup(pairs)
        self.used += pairs
        return probs


def _without_first(refs: tuple[int, ...], value: int) -> list[int]:
    rest = list(refs)
    rest.remove(value)  # the reference drops the first occurrence of the value, not the position
    return rest


def _judge_sentence(s: _SentencePlan, docs: tuple[Document, ...], oracle: _Oracle, thr: float,
                    support_check: bool) -> SentenceScore:
    supported, prob, relevant, any_doc = False, None, None, None
    if s.status == "ok":
        (prob,) = oracle.require([(join_documents([docs[i] for i in s.refs]), s.target)])
        supported = prob >= thr
    if supported and len(s.refs) > 1:
        singles = oracle.require([(docs[i].for_nli(), s.target) for i in s.refs])
        weak = [k for k, p in enumerate(singles) if p < thr]
        rest = oracle.require(
            [(join_documents([docs[j] for j in _without_first(s.refs, s.refs[k])]), s.target) for k in weak]
        )
        still = dict(zip(weak, rest, strict=True))
        relevant = [k not in still or still[k] < thr for k in range(len(s.refs))]
    elif supported:
        relevant = [True]
    if support_check:
        if supported:
            any_doc = True
        elif docs:
            any_doc = max(oracle.require([(d.for_nli(), s.target) for d in docs])) >= thr
        else:
            any_doc = False
    return SentenceScore(text=s.text, target=s.target, citations=list(s.citations), status=s.status,  # type: ignore[arg-type]
                         used=[i + 1 for i in s.refs], supported=supported, prob=prob, relevant=relevant,
                         any_doc_support=any_doc)


def _judge_record(plan: _RecordPlan, oracle: _Oracle, thr: float, cfg: ScorerConfig) -> RecordScore:
    rec = plan.record
    pending: set[Pair] = set()
    sentences: list[SentenceScore] = []
    for s in plan.sentences:
        try:
            sentences.append(_judge_sentence(s, rec.docs, oracle, thr, cfg.support_check))
        except _Pending as e:
            pending |= e.pairs
    claim_hits = None
    if plan.claims:
        try:
            claim_hits = [p >= thr for p in oracle.require([(plan.normalized, c) for c in plan.claims])]
        except _Pending as e:
            pending |= e.pairs
    if pending:
        raise _Pending(pending)

    n = len(sentences)
    rec_score = prec_score = f1 = None
    n_cites = sum(len(s.used) for s in sentences)
    if n:
        rec_score = sum(s.supported for s in sentences) / n
        n_relevant = sum(sum(s.relevant) for s in sentences if s.relevant)
        prec_score = n_relevant / n_cites if n_cites else 0.0
        f1 = 0.0 if rec_score + prec_score == 0 else 2 * rec_score * prec_score / (rec_score + prec_score)

    out = RecordScore(
        id=rec.id, n_sentences=n, citation_rec=rec_score, citation_prec=prec_score, citation_f1=f1,
        n_citations=n_cites, comprehensiveness=None, comprehensiveness_source=plan.claims_source,
        distractor_citation_rate=None, unsupported_sentence_rate=None, robustness=None,
        length=corr.length_in_words(plan.normalized), first_line_cut=plan.first_line_cut,
        out_of_range_sentences=sum(s.status == "out_of_range" for s in sentences), sentences=sentences,
    )
    if rec.short_answers is not None:
        out.str_em = corr.str_em(rec.short_answers, plan.normalized)
        out.str_hit = float(out.str_em == 1.0)
    if rec.answers is not None:
        out.qampari = asdict(corr.qampari_scores(rec.answers, plan.normalized))
    if rec.yes_no is not None:
        out.yes_no_correct = corr.yes_no_prediction(plan.normalized) == rec.yes_no
    if claim_hits is not None and rec.claims is not None:
        out.claims_nli = sum(claim_hits) / len(claim_hits)
    out.comprehensiveness = {
        "short_answers": out.str_em,
        "answers": out.qampari["rec"] if out.qampari else None,
        "claims": out.claims_nli,
        "yes_no": None if out.yes_no_correct is None else float(out.yes_no_correct),
        "reference_answer": (sum(claim_hits) / len(claim_hits)) if claim_hits else None,
        None: None,
    }[plan.claims_source]
    if any(d.distractor for d in rec.docs) and n_cites:
        out.distractor_citation_rate = sum(rec.docs[i - 1].distractor for s in sentences for i in s.used) / n_cites
    if cfg.support_check and n:
        out.unsupported_sentence_rate = sum(not s.any_doc_support for s in sentences) / n
    parts = [x for x in (out.distractor_citation_rate, out.unsupported_sentence_rate) if x is not None]
    out.robustness = 1.0 - float(np.mean(parts)) if parts else None
    return out


# --------------------------------------------------------------------------------------------------
# Aggregation


def _mean100(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return 100.0 * float(np.mean(vals)) if vals else None


def aggregate(scores: Sequence[RecordScore]) -> dict[str, Any]:
    """Data-set metrics from per-record scores (0-100 scale; reference key names)."""
    m: dict[str, Any] = {"num_examples": len(scores)}
    m["length"] = float(np.mean([s.length for s in scores])) if scores else 0.0
    if any(s.str_em is not None for s in scores):
        m["str_em"] = _mean100(s.str_em for s in scores)
        m["str_hit"] = _mean100(s.str_hit for s in scores)
    rec = _mean100(s.citation_rec for s in scores)
    prec = _mean100(s.citation_prec for s in scores)
    m["citation_rec"] = rec if rec is not None else 0.0
    m["citation_prec"] = prec if prec is not None else 0.0
    r, p = m["citation_rec"], m["citation_prec"]
    m["citation_f1"] = 0.0 if r + p == 0 else 2 * r * p / (r + p)
    if any(s.claims_nli is not None for s in scores):
        m["claims_nli"] = _mean100(s.claims_nli for s in scores)
    q = [s.qampari for s in scores if s.qampari is not None]
    if q:
        m["num_preds"] = float(np.mean([x["num_preds"] for x in q]))
        for k in ("prec", "rec", "rec_top5", "f1", "f1_top5"):
            m[f"qampari_{k}"] = _mean100(x[k] for x in q)
    if any(s.yes_no_correct is not None for s in scores):
        m["yes_no_acc"] = _mean100(None if s.yes_no_correct is None else float(s.yes_no_correct) for s in scores)
    for k in ("comprehensiveness", "distractor_citation_rate", "unsupported_sentence_rate", "robustness",
              "nonexistent_citation_rate"):
        v = _mean100(getattr(s, k) for s in scores)
        if v is not None:
            m[k] = v
    m["num_empty_outputs"] = sum(s.n_sentences == 0 for s in scores)
    m["num_first_line_cut"] = sum(s.first_line_cut for s in scores)
    m["num_out_of_range_sentences"] = sum(s.out_of_range_sentences for s in scores)
    m["num_truncated_pairs"] = sum(s.truncated_pairs for s in scores)
    return m


# --------------------------------------------------------------------------------------------------
# The scorer


class AttributionScorer:
    """Scores cited answers with an NLI model.

    >>> scorer = AttributionScorer()                       # doctest: +SKIP
    >>> report = scorer.score(records)                     # ALCE-format dicts  # doctest: +SKIP
    >>> report.metrics["citation_f1"]                      # doctest: +SKIP
    """

    def __init__(self, nli: NLIBackend | NLIConfig | str = "default", config: ScorerConfig | None = None):
        self.config = config or ScorerConfig()
        self.nli: NLIBackend = nli if isinstance(nli, NLIBackend) else load_nli(nli)
        self._cache = None
        if self.config.cache:
            folder = Path(self.config.cache_dir) if self.config.cache_dir else default_cache_dir()
            self._cache = NLICache(folder / "nli_cache.sqlite")

    # -- public API ------------------------------------------------------------------------------

    def score(self, records: Sequence[ScoreRecord | dict], *, sequential: bool = False) -> ScoreReport:
        """Score records (typed, or ALCE dicts validated here). ``sequential`` mimics the reference loop."""
        recs = [r if isinstance(r, ScoreRecord) else parse_record(r, i, allow_empty_docs=self.config.allow_empty_docs)
                for i, r in enumerate(records)]
        t0 = time.perf_counter()
        plans = [_plan(r, self.config) for r in recs]
        if sequential:
            scores, stats = self._run_sequential(plans)
        else:
            scores, stats = self._run_batched(plans)
        stats["seconds"] = time.perf_counter() - t0
        metrics = aggregate(scores)
        self._warn(scores)
        return ScoreReport(metrics=metrics, records=scores, stats=stats)

    def score_file(self, path: str | os.PathLike, **kw) -> ScoreReport:
        """Read (JSON, ``{"data": [...]}`` or JSONL), validate with file/record/field errors, and score."""
        recs = parse_records(read_records(path), path=path, allow_empty_docs=self.config.allow_empty_docs)
        return self.score(recs, **kw)

    def entailment(self, pairs: Sequence[Pair], stats: dict | None = None) -> list[float]:
        """P(entailment) of (premise, hypothesis) pairs through this scorer's backend and cache: duplicates
        asked once, known pairs read from the cache, the rest in one batched call. ``stats`` (optional)
        collects ``unique_pairs``, ``cache_hits``, ``model_pairs`` and ``model_seconds``."""
        stats = {} if stats is None else stats
        for k in ("unique_pairs", "cache_hits", "model_pairs"):
            stats.setdefault(k, 0)
        stats.setdefault("model_seconds", 0.0)
        known: dict[Pair, tuple[float, bool]] = {}
        unique = sorted(set(pairs))
        if unique:
            self._resolve(unique, known, stats)
        return [known[p][0] for p in pairs]

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()

    # -- execution -------------------------------------------------------------------------------

    def _run_sequential(self, plans: list[_RecordPlan]):
        """One forward pass per question, in the order the reference asks them; no cache, no dedup."""
        truncated: dict[Pair, bool] = {}
        calls = 0

        def lookup(pairs: list[Pair]) -> list[float]:
            nonlocal calls
            out = []
            for pair in pairs:
                pred = self.nli.predict([pair])
                calls += 1
                truncated[pair] = bool(pred.truncated[0])
                out.append(float(pred.probs[0]))
            return out

        scores = []
        for plan in plans:
            oracle = _Oracle(lookup)
            score = _judge_record(plan, oracle, self.nli.threshold, self.config)
            score.truncated_pairs = sum(truncated[p] for p in set(oracle.used))
            scores.append(score)
        return scores, {"mode": "sequential", "pairs_requested": calls, "model_pairs": calls}

    def _run_batched(self, plans: list[_RecordPlan]):
        known: dict[Pair, tuple[float, bool]] = {}
        stats = {"mode": "batched", "rounds": 0, "pairs_requested": 0, "unique_pairs": 0, "cache_hits": 0,
                 "model_pairs": 0, "model_seconds": 0.0}

        def lookup(pairs: list[Pair]) -> list[float]:
            missing = {p for p in pairs if p not in known}
            if missing:
                raise _Pending(missing)
            return [known[p][0] for p in pairs]

        scores: list[RecordScore | None] = [None] * len(plans)
        todo = list(range(len(plans)))
        while todo:
            wanted: set[Pair] = set()
            still = []
            for i in todo:
                oracle = _Oracle(lookup)
                try:
                    score = _judge_record(plans[i], oracle, self.nli.threshold, self.config)
                except _Pending as e:
                    wanted |= e.pairs
                    still.append(i)
                    continue
                score.truncated_pairs = sum(known[p][1] for p in set(oracle.used))
                stats["pairs_requested"] += len(oracle.used)
                scores[i] = score
            if wanted:
                stats["rounds"] += 1
                self._resolve(sorted(wanted), known, stats)
            todo = still
        return scores, stats

    def _resolve(self, pairs: list[Pair], known: dict[Pair, tuple[float, bool]], stats: dict) -> None:
        """Fill ``known`` for ``pairs`` from the cache, then from the model in batches."""
        stats["unique_pairs"] += len(pairs)
        keys = [pair_key(self.nli.fingerprint, p, h) for p, h in pairs]
        cached = self._cache.get_many(keys) if self._cache is not None else {}
        stats["cache_hits"] += len(cached)
        todo = [i for i, k in enumerate(keys) if k not in cached]
        for i, k in enumerate(keys):
            if k in cached:
                known[pairs[i]] = cached[k]
        if not todo:
            return
        t0 = time.perf_counter()
        pred = self.nli.predict([pairs[i] for i in todo])
        stats["model_seconds"] += time.perf_counter() - t0
        stats["model_pairs"] += len(todo)
        fresh = []
        for j, i in enumerate(todo):
            value = (float(pred.probs[j]), bool(pred.truncated[j]))
            known[pairs[i]] = value
            fresh.append((keys[i], *value))
        if self._cache is not None:
            self._cache.put_many(fresh)

    @staticmethod
    def _warn(scores: Sequence[RecordScore]) -> None:
        oor = [s.id for s in scores if s.out_of_range_sentences]
        if oor:
            log.warning("%d record(s) cite documents that do not exist (those sentences count as unsupported): "
                        "ids %s%s", len(oor), ", ".join(oor[:5]), " ..." if len(oor) > 5 else "")
        trunc = sum(s.truncated_pairs for s in scores)
        if trunc:
            log.warning("%d premise/hypothesis pair(s) were longer than the NLI model's limit and were "
                        "truncated on the premise side (counted in num_truncated_pairs)", trunc)
