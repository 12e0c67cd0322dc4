"""Fine-grained preference pairs from scored samples.

Every sample of a question gets three signals in [0, 1] from the attribution scorer:
``attributability`` (citation F1), ``comprehensiveness`` (share of the required information covered: by
default the claims the question's own samples agree on, ``start.scoring.consensus``; with
``comprehensiveness: gold_answers`` the data set's gold answers) and ``robustness`` (1 - mean of the
distractor-citation and unsupported-sentence rates). Its reward is their weighted mean over the signals
that exist for the question (weights in config).

What is scored is what is trained: a sample's text is cut the way the scorer reads it (its first line with
``first_line_only``, as ``start.text.clean_output`` does), and that text is both the reward's input and the
DPO completion.

Guards make a sample *ineligible as chosen* (it can still be rejected):
* ``empty``: no sentence at all;
* ``cut_at_max_tokens``: generation stopped at ``max_new_tokens`` inside the trained text (TRL would append
  an end-of-sequence token and teach the model to stop mid-sentence); a sample that hit the limit on a
  later line, which the scorer and the trainer never see, is not cut;
* ``too_short``: fewer than ``min_words`` words (an answer can be perfectly cited by saying nothing);
* ``cites_everything``: every sentence cites every document (when there are >= ``cite_all_min_docs``
  documents), which games citation recall; all in-range citations count, not only the ones scored;
* ``no_citation``: the answer cites no existing document (optional, on by default: START teaches
  attribution);
* ``cites_missing_document``: some sentence cites a document that does not exist (``[4]`` with three
  documents): never rewarded, so the policy learns not to invent sources;
* ``below_min_attributability``: its attributability is below ``min_attributability``.

Pairs per question, each tagged with the signal that separates it. In every pair the chosen side is
eligible, its attributability is >= the rejected side's and its reward is strictly higher, so no pair
rewards an answer for being less attributable than the one it beats:
1. ``overall``: chosen = the eligible sample with the highest reward, rejected = the lowest-reward
   sample it may be preferred to, kept when the reward margin is >= ``min_margin``; tagged with the
   signal whose difference contributes most to the margin.
2. ``fine-grained``: for each signal, the pair with the largest difference in that signal (>=
   ``signal_margin``) among pairs whose *other* signals are within ``close_tolerance`` of each other --
   the pairs that teach one skill at a time.
Identical answers never form a pair, and two answers form at most one pair (in either order).

A signal whose weight is 0 is off: it is not in the reward, has no fine-grained pairs, and with
``attributability`` off the chosen side need not be the more attributable one (the ablation rows).

**Position-proof pairs.** When a question's samples were drawn under several orders of its documents
(``sampler.doc_orders``, :func:`start.sampling.sampler.run_sampling`), each sample was scored in the order it
saw. A pair's two texts are then re-expressed in one shared prompt order -- their citations renumbered to
the positions their documents have there -- and the pair is emitted under ``permutations`` shared orders
taken from the question's sampled ones, starting with a seeded rotation of its first Latin-square block:
with ``permutations`` equal to the number of documents, every document sits at every position once across
a pair's copies, so the chosen and the rejected side cite each position equally often and no position can
explain a preference. Answers are compared by what they cite, not by their numbers: two samples with the
same words citing different documents are different answers.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import permutations

from start.text import clean_output, parse_citations, renumber_citations

SIGNALS = ("attributability", "comprehensiveness", "robustness")
COMPREHENSIVENESS = ("consensus", "gold_answers")


@dataclass
class PreferenceConfig:
    weights: dict[str, float] = field(default_factory=lambda: {"attributability": 1.0, "comprehensiveness": 0.5,
                                                               "robustness": 0.5})
    min_margin: float = 0.2  # reward margin for the overall pair
    signal_margin: float = 0.25  # difference in the separating signal for a fine-grained pair
    close_tolerance: float = 0.1  # other signals must be this close for a fine-grained pair
    fine_grained: bool = True
    max_pairs_per_question: int = 3
    min_words: int = 5
    cite_all_min_docs: int = 3
    require_citation: bool = True
    min_attributability: float = 0.5  # floor on the chosen side's attributability (citation F1)
    # where the rounds' comprehensiveness comes from: "consensus" (label-free: claims the question's samples
    # agree on and a document entails) or "gold_answers" (the data set's gold answers: human labels)
    comprehensiveness: str = "consensus"
    consensus_share: float = 0.5  # a consensus claim is entailed by at least this share of the other samples
    # shared document orders each pair is emitted under, when the samples were drawn under several orders
    # (module docstring); the number of documents makes every position equally cited on both sides
    permutations: int = 1

    def __post_init__(self):
        unknown = set(self.weights) - set(SIGNALS)
        if unknown:
            raise ValueError(f"preference.weights has unknown signals {sorted(unknown)}; known: {SIGNALS}")
        if any(w < 0 for w in self.weights.values()) or not any(self.weights.values()):
            raise ValueError("preference.weights must be >= 0 and not all 0")
        for name in ("min_margin", "signal_margin", "close_tolerance", "min_attributability", "consensus_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"preference.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_pairs_per_question < 1:
            raise ValueError("preference.max_pairs_per_question must be >= 1")
        if self.permutations < 1:
            raise ValueError(f"preference.permutations must be >= 1, got {self.permutations}")
        if self.comprehensiveness not in COMPREHENSIVENESS:
            raise ValueError(f"preference.comprehensiveness must be one of {COMPREHENSIVENESS}, "
                             f"got {self.comprehensiveness!r}")


@dataclass(frozen=True)
class ScoredSample:
    text: str  # what the scorer scored, and what is trained
    signals: dict[str, float | None]  # SIGNALS -> value in [0, 1], None when not measurable
    n_words: int
    n_sentences: int
    n_docs: int
    cites_everything: bool  # every sentence cites every document (in-range citations, all of them)
    has_citation: bool  # some sentence cites an existing document
    cut_at_limit: bool = False  # generation hit max_new_tokens inside ``text``
    cites_missing: bool = False  # some sentence cites a document that does not exist
    order: int | None = None  # the document order it was drawn under (index into QuestionSamples.orders)


@dataclass(frozen=True)
class QuestionSamples:
    id: str
    prompt: str
    samples: tuple[ScoredSample, ...]
    # several document orders (sampler.doc_orders): each a tuple of indices into the question's documents, and
    # the prompt that shows them in that order; a sample's ``order`` says which one it saw
    orders: tuple[tuple[int, ...], ...] = ()
    prompts: tuple[str, ...] = ()
    citation_format: str = "alce"

    def in_order(self, s: ScoredSample, target: int | None) -> str:
        """``s``'s text with its citations renumbered for the documents in order ``target`` (None: the
        question's document list itself); documents that do not exist keep their numbers."""
        if s.order is None or (target is not None and target == s.order):
            return s.text
        seen = self.orders[s.order]
        where = {d: k + 1 for k, d in enumerate(self.orders[target])} if target is not None else \
            {d: d + 1 for d in seen}
        return renumber_citations(s.text, {k + 1: where[d] for k, d in enumerate(seen)}, self.citation_format)

    def prompt_of(self, order: int | None) -> str:
        return self.prompt if order is None else self.prompts[order]


def reward(s: ScoredSample, cfg: PreferenceConfig) -> float:
    """Weighted mean of the available signals (0 for an empty answer)."""
    if s.n_sentences == 0:
        return 0.0
    parts = [(cfg.weights.get(k, 0.0), v) for k, v in s.signals.items() if v is not None and cfg.weights.get(k)]
    total = sum(w for w, _ in parts)
    return sum(w * v for w, v in parts) / total if total else 0.0


def ineligibility(s: ScoredSample, cfg: PreferenceConfig) -> str | None:
    """Why a sample may not be chosen, or None."""
    if s.n_sentences == 0:
        return "empty"
    if s.cut_at_limit:
        return "cut_at_max_tokens"
    if s.n_words < cfg.min_words:
        return "too_short"
    if s.cites_everything and s.n_docs >= cfg.cite_all_min_docs:
        return "cites_everything"
    if cfg.require_citation and not s.has_citation:
        return "no_citation"
    if s.cites_missing:
        return "cites_missing_document"
    if _sig(s, "attributability") < cfg.min_attributability:
        return "below_min_attributability"
    return None


def _sig(s: ScoredSample, k: str) -> float:
    v = s.signals.get(k)
    return 0.0 if v is None else v


@dataclass
class Pair:
    id: str
    prompt: str
    chosen: str
    rejected: str
    signal: str  # which signal separates the pair
    kind: str  # "overall" or "fine_grained"
    margin: float  # reward margin (> 0)
    chosen_scores: dict
    rejected_scores: dict
    order: list[int] | None = None  # the shared document order of prompt, chosen and rejected (sampled orders)

    def to_row(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "order" or v is not None}


def _pairs_for_question(q: QuestionSamples, cfg: PreferenceConfig) -> tuple[list[Pair], int, str | None]:
    """The pairs of one question (each under its shared orders), how many distinct pairs that is, or none and
    the reason."""
    smp = q.samples
    rewards = [reward(x, cfg) for x in smp]
    eligible = {i for i, x in enumerate(smp) if ineligibility(x, cfg) is None}
    answer = [q.in_order(x, None) for x in smp]  # what each sample says and cites, whatever order it saw
    if len(set(answer)) < 2:
        return [], 0, "identical_samples"
    if not eligible:
        return [], 0, "no_eligible_chosen"
    kept: list[tuple[int, int, str, str]] = []
    seen: set[frozenset[str]] = set()
    dominance = cfg.weights.get("attributability", 0) > 0

    def may_prefer(i: int, j: int) -> bool:
        return (i in eligible and answer[i] != answer[j] and rewards[i] > rewards[j]
                and (not dominance or _sig(smp[i], "attributability") >= _sig(smp[j], "attributability")))

    def add(i: int, j: int, signal: str, kind: str) -> None:
        key = frozenset((answer[i], answer[j]))
        if key in seen or len(kept) >= cfg.max_pairs_per_question:
            return
        seen.add(key)
        kept.append((i, j, signal, kind))

    best = max(eligible, key=lambda i: (rewards[i], -i))
    below = [j for j in range(len(smp)) if may_prefer(best, j)]
    if below:
        worst = min(below, key=lambda j: (rewards[j], j))
        if rewards[best] - rewards[worst] >= cfg.min_margin:
            contrib = {k: cfg.weights.get(k, 0.0) * (_sig(smp[best], k) - _sig(smp[worst], k)) for k in SIGNALS}
            add(best, worst, max(contrib, key=contrib.get), "overall")
    if cfg.fine_grained:
        for k in (x for x in SIGNALS if cfg.weights.get(x, 0) > 0):
            others = [o for o in SIGNALS if o != k]
            candidates = [
                (i, j) for i, j in permutations(range(len(smp)), 2)
                if may_prefer(i, j) and smp[i].signals.get(k) is not None and smp[j].signals.get(k) is not None
                and _sig(smp[i], k) - _sig(smp[j], k) >= cfg.signal_margin
                and all(abs(_sig(smp[i], o) - _sig(smp[j], o)) <= cfg.close_tolerance for o in others)
                and frozenset((answer[i], answer[j])) not in seen  # prefer a pair not kept yet
            ]
            if candidates:
                i, j = max(candidates, key=lambda p: (_sig(smp[p[0]], k) - _sig(smp[p[1]], k), -p[0]))
                add(i, j, k, "fine_grained")
    pairs = []
    for t, (i, j, signal, kind) in enumerate(kept):
        for o in shared_orders(q, t, cfg.permutations):
            pairs.append(Pair(q.id, q.prompt_of(o), q.in_order(smp[i], o), q.in_order(smp[j], o), signal, kind,
                              rewards[i] - rewards[j], {**smp[i].signals, "reward": rewards[i]},
                              {**smp[j].signals, "reward": rewards[j]},
                              None if o is None else list(q.orders[o])))
    return pairs, len(kept), None if kept else "margin_below_threshold"


def shared_orders(q: QuestionSamples, t: int, permutations: int) -> list[int | None]:
    """The sampled orders (indices into ``q.orders``) the question's ``t``-th pair is emitted under: its first
    Latin-square block (``start.sampling.sampler.document_orders``) from a seeded rotation on, then the other
    sampled orders, ``permutations`` of them; ``[None]`` when the question was sampled in one order."""
    if not q.orders:
        return [None]
    block = min(len(q.orders[0]), len(q.orders))
    start = int.from_bytes(hashlib.sha256(f"{q.id}/{t}".encode()).digest()[:4], "little") % block
    ranked = [*range(start, block), *range(start), *range(block, len(q.orders))]
    return ranked[:permutations]


def build_pairs(questions: Sequence[QuestionSamples], cfg: PreferenceConfig) -> tuple[list[Pair], dict]:
    """Preference pairs and statistics (pairs by kind and signal, margins, why questions gave no pair)."""
    pairs: list[Pair] = []
    distinct = 0
    dropped: Counter = Counter()
    ineligible: Counter = Counter(w for q in questions for x in q.samples if (w := ineligibility(x, cfg)))
    for q in questions:
        kept, n, why = _pairs_for_question(q, cfg)
        pairs += kept
        distinct += n
        if why:
            dropped[why] += 1
    margins = [p.margin for p in pairs]
    chosen_attr = [p.chosen_scores.get("attributability") or 0.0 for p in pairs]
    stats = {
        "questions": len(questions), "samples": sum(len(q.samples) for q in questions), "pairs": len(pairs),
        "distinct_pairs": distinct,
        "permutations": cfg.permutations if any(q.orders for q in questions) else 1,
        "questions_with_pairs": len({p.id for p in pairs}),
        "cited_positions": cited_position_counts(pairs, questions),
        "by_kind": dict(Counter(p.kind for p in pairs)), "by_signal": dict(Counter(p.signal for p in pairs)),
        "margin_mean": sum(margins) / len(margins) if margins else None,
        "margin_min": min(margins) if margins else None,
        "chosen_attributability_mean": sum(chosen_attr) / len(chosen_attr) if chosen_attr else None,
        "min_attributability": cfg.min_attributability,
        "questions_dropped": dict(dropped), "samples_ineligible_as_chosen": dict(ineligible),
    }
    return pairs, stats


def cited_position_counts(pairs: Sequence[Pair], questions: Sequence[QuestionSamples]) -> dict[str, list[int]]:
    """How often the chosen and the rejected sides of the pairs cite each document position (existing documents
    only): a position the chosen side cites far more often than the rejected one is a habit the pairs teach."""
    by_id = {q.id: q for q in questions}
    n_docs = {q.id: max((x.n_docs for x in q.samples), default=0) for q in questions}
    n = max(n_docs.values(), default=0)
    out = {"chosen": [0] * n, "rejected": [0] * n}
    for p in pairs:
        for side, text in (("chosen", p.chosen), ("rejected", p.rejected)):
            for c in parse_citations(text, by_id[p.id].citation_format):
                if 1 <= c <= n_docs[p.id]:
                    out[side][c - 1] += 1
    return out


def best_samples(questions: Sequence[QuestionSamples], cfg: PreferenceConfig) -> list[dict]:
    """Each question's best eligible sample (highest reward) as a prompt/completion row with its reward:
    the data of the optional rejection-sampling SFT before DPO. Questions without an eligible sample give none.
    """
    rows = []
    for q in questions:
        eligible = [x for x in q.samples if ineligibility(x, cfg) is None]
        if eligible:
            best = max(eligible, key=lambda x: reward(x, cfg))  # the first of equals
            rows.append({"id": q.id, "prompt": q.prompt_of(best.order), "completion": best.text,
                         "reward": reward(best, cfg)})
    return rows


def signals_of(score) -> dict[str, float | None]:
    """The three signals of a :class:`start.scoring.RecordScore` (attributability 0 for an empty answer)."""
    return {"attributability": score.citation_f1 if score.citation_f1 is not None else 0.0,
            "comprehensiveness": score.comprehensiveness, "robustness": score.robustness}


def hit_token_limit(sample: dict, max_new_tokens: int | None) -> bool:
    """Whether generation of a sampled answer stopped at the token limit: its ``finish_reason`` when the
    sampler recorded one, else (rows of older runs) its token count against ``max_new_tokens``."""
    if "finish_reason" in sample:
        return sample["finish_reason"] == "length"
    return max_new_tokens is not None and int(sample.get("n_tokens", 0)) >= max_new_tokens


def question_samples(rows: Sequence[dict], scores: dict, *, first_line_only: bool = True,
                     max_new_tokens: int | None = None, citation_format: str = "alce") -> list[QuestionSamples]:
    """Join sampled rows (``samples.jsonl``) with per-sample scores keyed ``<row id>#<k>``.

    ``first_line_only`` and ``citation_format`` must be the scorer's settings: each sample's text is cut the
    way the scorer read it, so the trained text is the scored text.
    """
    out = []
    for r in rows:
        n_docs = len(r["docs"])
        items = []
        for k, s in enumerate(r["samples"]):
            key = f"{r['id']}#{k}"
            if key not in scores:
                raise KeyError(f"no score for sample {key}: the scores do not belong to these samples")
            sc = scores[key]
            text, line_cut = clean_output(s["text"], first_line_only=first_line_only)
            cited = [{c for c in x.citations if 1 <= c <= n_docs} for x in sc.sentences]
            items.append(ScoredSample(
                text=text, signals=signals_of(sc), n_words=sc.length, n_sentences=sc.n_sentences, n_docs=n_docs,
                cites_everything=bool(cited) and all(len(c) >= n_docs for c in cited),
                has_citation=any(cited), cut_at_limit=hit_token_limit(s, max_new_tokens) and not line_cut,
                cites_missing=sc.out_of_range_sentences > 0, order=s.get("order") if "orders" in r else None))
        orders = tuple(tuple(o) for o in r.get("orders") or ())
        out.append(QuestionSamples(r["id"], r["prompt"], tuple(items), orders, tuple(r.get("prompts") or ()),
                                   citation_format))
    return out
