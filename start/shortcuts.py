"""Position shortcuts: what an answer scores by citing a fixed position, and how far a policy is above that.

* **Constant baselines** on held-out prompts, scored by the project's scorer: the reference answer with
  every sentence citing one fixed position ``[k]`` (one baseline per k), the same answer citing every
  document in every sentence (``cite-all``), and an answer copying the first sentence of each document
  with that document's citation (``copy-first-sentence``). The ``[k]`` baselines have the right content
  and only the position habit as attribution: a trained model that merely learned "cite [3]" scores like
  the best of them.
* **Attribution margin** of a policy: its own held-out answers re-cited with each constant position
  (:func:`recite`: every citation mark replaced by ``[k]``, a sentence without citation gets ``[k]``),
  scored again; margin = citation F1 as written minus the best of those, with a 95% bootstrap interval
  over questions (both sides recomputed in every replicate). A policy that learned attribution has a
  large margin; one that learned a position habit has a margin near 0.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from start.stats import bootstrap, per_question, point_estimates
from start.text import clean_output, remove_citations, sent_tokenize

CITE_ALL, COPY_FIRST = "cite-all", "copy-first-sentence"
_END = re.compile(r"[.!?]+[\"')\]]*\s*$")


def cite_sentence(sentence: str, marks: str) -> str:
    """The sentence without its citation marks, with ``marks`` before its final punctuation.

    >>> cite_sentence("Radium was found in 1898 [2][3].", "[1]")
    'Radium was found in 1898 [1].'
    >>> cite_sentence("No period", "[2]")
    'No period [2]'
    """
    body = remove_citations(sentence).strip()
    m = _END.search(body)
    if m is None:
        return f"{body} {marks}"
    return f"{body[:m.start()].rstrip()} {marks}{body[m.start():].rstrip()}"


def recite(text: str, k: int) -> str:
    """An answer with every sentence citing only document ``k`` (first line only, as the scorer reads it).

    >>> recite("A is 1 [1][2]. B is 2. C is 3 [3].", 2)
    'A is 1 [2]. B is 2 [2]. C is 3 [2].'
    """
    first, _ = clean_output(text)
    return " ".join(cite_sentence(s, f"[{k}]") for s in sent_tokenize(first) if s.strip())


def _reference(row: dict[str, Any]) -> str:
    ans = row.get("answer")
    if isinstance(ans, str) and ans.strip() and ans.strip().lower().rstrip(".") not in {"yes", "no"}:
        return ans
    return " ".join(row.get("claims") or ())


def baseline_outputs(row: dict[str, Any]) -> dict[str, str]:
    """Constant-baseline answers to one ALCE-format question (``docs`` and a reference ``answer``)."""
    n = len(row["docs"])
    sentences = [s for s in sent_tokenize(_reference(row)) if s.strip()]
    out = {f"[{k}]": " ".join(cite_sentence(s, f"[{k}]") for s in sentences) for k in range(1, n + 1)}
    out[CITE_ALL] = " ".join(cite_sentence(s, "".join(f"[{k}]" for k in range(1, n + 1))) for s in sentences)
    firsts = [(i, sent_tokenize(d["text"])) for i, d in enumerate(row["docs"], 1)]
    out[COPY_FIRST] = " ".join(cite_sentence(ss[0], f"[{i}]") for i, ss in firsts if ss)
    return out


def _question_of(record_id: str) -> str:
    return record_id.rsplit("#", 1)[0]


def constant_baselines(rows: Sequence[dict[str, Any]], scorer, *, n_boot: int = 1000,
                       seed: int = 0) -> dict[str, dict[str, Any]]:
    """Score every constant baseline on ``rows`` (ALCE-format questions, one answer each):
    name -> {"metrics": {metric: {value, low, high}}} as the evaluation writes them."""
    outputs = [baseline_outputs(r) for r in rows]
    names = list(dict.fromkeys(name for o in outputs for name in o))
    records = [{**r, "id": f"{r['id']}#{name}", "output": o[name]}
               for name in names for r, o in zip(rows, outputs, strict=True) if name in o]
    scored = scorer.score(records).records
    out = {}
    for name in names:
        mine = [s for s in scored if s.id.rsplit("#", 1)[1] == name]
        out[name] = {"metrics": bootstrap(per_question(mine, _question_of), n_boot=n_boot, seed=seed)}
    return out


def best_baseline(baselines: dict[str, dict[str, Any]]) -> str:
    """The name of the baseline with the highest citation F1 (first one on ties)."""
    return max(baselines, key=lambda k: baselines[k]["metrics"].get("citation_f1", {}).get("value", 0.0))


def _f1(cols: dict[str, np.ndarray], idx: np.ndarray) -> float:
    return point_estimates({k: cols[k] for k in ("citation_rec", "citation_prec")}, idx).get("citation_f1", 0.0)


def constant_columns(samples: Sequence[dict[str, Any]], scorer) -> dict[int, dict[str, np.ndarray]]:
    """Per-question citation columns of the same answers re-cited with each constant position ``[k]``.

    ``samples`` are the scorer's records of an evaluation (one per sample, id ``<question>#<k>``); the rows
    follow the order of their first appearance, as :func:`start.stats.per_question` orders them.
    """
    n_docs = max((len(r["docs"]) for r in samples), default=0)
    out = {}
    for k in range(1, n_docs + 1):
        # Only the citation metrics are needed: no gold fields, so no comprehensiveness pairs are judged.
        report = scorer.score([{"id": r["id"], "question": r["question"], "docs": r["docs"],
                                "output": recite(r["output"], k)} for r in samples])
        out[k] = per_question(report.records, _question_of)
    return out


def _margin(written: dict[str, np.ndarray], constant: dict[int, dict[str, np.ndarray]], idx: np.ndarray) -> float:
    return _f1(written, idx) - max(_f1(c, idx) for c in constant.values())


def attribution_margin(samples: Sequence[dict[str, Any]], written: dict[str, np.ndarray], scorer, *,
                       n_boot: int = 1000, seed: int = 0,
                       constant: dict[int, dict[str, np.ndarray]] | None = None) -> dict[str, Any]:
    """The policy's citation F1 as written minus the best constant position's, on the same answers.

    ``samples`` are the scorer's records of the evaluation (one per sample, id ``<question>#<k>``, in
    the order ``written`` was computed from); ``written`` their per-question columns
    (:func:`start.stats.per_question`); ``constant`` the same answers re-cited at each position
    (:func:`constant_columns`; computed with ``scorer`` when not given). Returns {value, low, high,
    best_constant, constant_f1}.
    """
    constant = constant_columns(samples, scorer) if constant is None else constant
    n = len(written["citation_rec"])
    if not constant or n == 0:
        return {"value": 0.0, "low": 0.0, "high": 0.0, "best_constant": None, "constant_f1": {}}
    everyone = np.arange(n)
    constant_f1 = {k: _f1(c, everyone) for k, c in constant.items()}
    best = max(constant_f1, key=constant_f1.get)
    rng = np.random.default_rng(seed)
    reps = [_margin(written, constant, rng.integers(0, n, n)) for _ in range(n_boot)]
    value = _f1(written, everyone) - constant_f1[best]
    low, high = (float(np.percentile(reps, q)) for q in (2.5, 97.5)) if reps else (value, value)
    return {"value": value, "low": low, "high": high, "best_constant": f"[{best}]",
            "constant_f1": {f"[{k}]": v for k, v in constant_f1.items()}}


def margin_change(before: tuple[Sequence[dict[str, Any]], dict[str, np.ndarray]],
                  after: tuple[Sequence[dict[str, Any]], dict[str, np.ndarray]], scorer, *,
                  n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Paired change of the attribution margin from one evaluation to another of the same questions.

    Each side is ``(samples, written)`` as :func:`attribution_margin` takes them; both sides' answers are
    re-cited at every position and scored with ``scorer`` (:func:`paired_margin_change` does the rest).
    """
    sides = []
    for samples, written in (before, after):
        qids = list(dict.fromkeys(_question_of(r["id"]) for r in samples))
        if len(qids) != len(written["citation_rec"]):
            raise ValueError(f"{len(qids)} questions in the samples but {len(written['citation_rec'])} in the scores")
        sides.append(MarginColumns(qids, written, constant_columns(samples, scorer)))
    return paired_margin_change(*sides, n_boot=n_boot, seed=seed)


@dataclass(frozen=True)
class MarginColumns:
    """What an evaluation's attribution margin is computed from, per question (rows in ``qids`` order): the
    citation columns of the answers as written, and of the same answers re-cited at each position ``k``."""

    qids: list[str]
    written: dict[str, np.ndarray]
    constant: dict[int, dict[str, np.ndarray]]

    def to_dict(self) -> dict:
        return {"qids": self.qids, "written": {k: v.tolist() for k, v in self.written.items()},
                "constant": {str(k): {m: v.tolist() for m, v in c.items()} for k, c in self.constant.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> MarginColumns:
        def cols(x: dict) -> dict[str, np.ndarray]:
            return {k: np.array(v, dtype=float) for k, v in x.items()}

        return cls(list(d["qids"]), cols(d["written"]), {int(k): cols(c) for k, c in d["constant"].items()})


def paired_margin_change(before: MarginColumns, after: MarginColumns, *, n_boot: int = 1000,
                         seed: int = 0) -> dict[str, float]:
    """Paired change of the attribution margin between two evaluations of the same questions: both margins are
    recomputed on the same resampled questions in every replicate (each side's best constant position chosen
    again), so a rise in citation F1 that a position habit explains shows as a change near 0.
    Returns {value, low, high}."""
    if before.qids != after.qids:
        raise ValueError("margin_change needs the same questions, in the same order, in both evaluations")
    if not before.constant or not after.constant:
        raise ValueError("margin_change needs answers with documents in both evaluations")
    n = len(before.qids)
    everyone = np.arange(n)
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        reps.append(_margin(after.written, after.constant, idx) - _margin(before.written, before.constant, idx))
    value = _margin(after.written, after.constant, everyone) - _margin(before.written, before.constant, everyone)
    low, high = (float(np.percentile(reps, q)) for q in (2.5, 97.5)) if reps else (value, value)
    return {"value": value, "low": low, "high": high}


def gold_position_share(records: Sequence[Any], n_positions: int) -> list[float]:
    """Share of gold documents at positions 1..n over ``records`` (:class:`QARecord` with ``doc_ids`` and
    ``gold_doc_ids`` in ``meta``)."""
    counts: Counter[int] = Counter()
    for r in records:
        ids = r.meta.get("doc_ids") or []
        gold = set(map(str, r.meta.get("gold_doc_ids") or ()))
        counts.update(i for i, d in enumerate(ids, 1) if d in gold)
    total = sum(counts.values())
    return [counts[i] / total if total else 0.0 for i in range(1, n_positions + 1)]


def cited_positions(scores: Sequence[Any], n_positions: int) -> list[int]:
    """How often each position 1..n is cited by the sentences of scored answers (valid citations only)."""
    counts: Counter[int] = Counter(c for s in scores for sent in s.sentences for c in sent.citations
                                   if 1 <= c <= n_positions)
    return [counts[i] for i in range(1, n_positions + 1)]


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", remove_citations(text).lower())


def longest_shared_run(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest run of consecutive words that ``a`` and ``b`` share."""
    best, prev = 0, [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def answer_habits(records: Sequence[dict[str, Any]], scores: Sequence[dict[str, Any]], *,
                  copy_share: float = 0.8) -> dict[str, Any]:
    """What answers do, read from their text rather than their scores: mean words and sentences, citations
    per sentence, the share of answers citing nothing and citing every document, the share of cited
    sentences copied from a document (a run of at least ``copy_share`` of the sentence's words appears in
    one document), the share of copied and of own-words cited sentences whose citations support them, and
    the share of citations going to each position. A citation F1 that rises only through copied sentences
    is the copy-a-document shortcut, not better attribution of what the model writes. ``records`` are the
    scored samples (``id``, ``docs``) and ``scores`` the scorer's rows (``id``, ``length``, ``sentences``
    with ``text``, ``citations``, ``supported``)."""
    docs = {r["id"]: [_words(d.get("text", "")) for d in r.get("docs") or []] for r in records}
    n = len(scores)
    if not n:
        return {"answers": 0}
    cites, cited_sents, copied, no_cite, cite_all = [], 0, 0, 0, 0
    supported = {"copied": 0, "own": 0}
    positions: Counter[int] = Counter()
    for s in scores:
        ds = docs.get(s["id"], [])
        used: set[int] = set()
        for sent in s.get("sentences") or []:
            valid = [c for c in sent.get("citations") or [] if 1 <= c <= len(ds)]
            cites.append(len(valid))
            used.update(valid)
            positions.update(valid)
            if valid:
                cited_sents += 1
                w = _words(sent.get("text", ""))
                kind = "copied" if w and max(longest_shared_run(w, d) for d in ds) >= copy_share * len(w) else "own"
                copied += kind == "copied"
                supported[kind] += bool(sent.get("supported"))
        no_cite += not used
        cite_all += len(ds) >= 2 and used == set(range(1, len(ds) + 1))
    total = sum(positions.values())
    return {"answers": n,
            "words": float(np.mean([s.get("length", 0) for s in scores])),
            "sentences": float(np.mean([s.get("n_sentences", 0) for s in scores])),
            "citations_per_sentence": float(np.mean(cites)) if cites else 0.0,
            "no_citation_share": no_cite / n, "cite_all_share": cite_all / n,
            "copied_sentence_share": copied / cited_sents if cited_sents else 0.0,
            "copied_supported_share": supported["copied"] / copied if copied else None,
            "own_supported_share": supported["own"] / (cited_sents - copied) if cited_sents > copied else None,
            "cited_position_share": {str(k): positions[k] / total for k in sorted(positions)} if total else {}}


def source_aggregation(records: Sequence[dict[str, Any]], scores: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Aggregating information across sources, on the questions that need two or more documents: those whose
    record marks its distractors (``"distractor": true``) and has at least two other, gold, documents. Per
    answer, the distinct documents its supported sentences cite. Returns the number of such questions and
    answers, ``multi_source_share`` (answers whose supported sentences cite >= 2 distinct documents),
    ``gold_reached`` (mean number of distinct gold documents those citations reach) and ``gold_needed``
    (mean number of gold documents); None values when no question needs two documents.
    ``records`` are the scored samples (``id``, ``docs`` in the order the answer saw) and ``scores`` the
    scorer's rows (``id``, ``sentences`` with ``supported`` and ``used``)."""
    gold = {}
    for r in records:
        docs = r.get("docs") or []
        if any(d.get("distractor") for d in docs):
            ids = {i for i, d in enumerate(docs, 1) if not d.get("distractor")}
            if len(ids) >= 2:
                gold[r["id"]] = ids
    multi, reached, needed, questions = [], [], [], set()
    for s in scores:
        if s["id"] not in gold:
            continue
        cited = {c for sent in s.get("sentences") or [] if sent.get("supported") for c in sent.get("used") or []}
        multi.append(len(cited) >= 2)
        reached.append(len(cited & gold[s["id"]]))
        needed.append(len(gold[s["id"]]))
        questions.add(_question_of(s["id"]))
    if not multi:
        return {"questions": 0, "answers": 0, "multi_source_share": None, "gold_reached": None, "gold_needed": None}
    return {"questions": len(questions), "answers": len(multi), "multi_source_share": float(np.mean(multi)),
            "gold_reached": float(np.mean(reached)), "gold_needed": float(np.mean(needed))}
