"""Fine-grained preference pairs from scored samples.

Every sample of a question gets three signals in [0, 1] from the attribution scorer:
``attributability`` (citation F1), ``comprehensiveness`` (share of the required information covered) and
``robustness`` (1 - mean of the distractor-citation and unsupported-sentence rates). Its reward is their
weighted mean over the signals that exist for the question (weights in config).

Guards against reward hacking make a sample *ineligible as chosen* (it can still be rejected):
* ``empty``: no sentence at all;
* ``too_short``: fewer than ``min_words`` words (an answer can be perfectly cited by saying nothing);
* ``cites_everything``: every sentence cites every document (when there are >= ``cite_all_min_docs``
  documents), which games citation recall;
* ``no_citation``: the answer cites nothing (optional, on by default: START teaches attribution).

Pairs per question, each tagged with the signal that separates it:
1. ``overall``: chosen = the eligible sample with the highest reward, rejected = the lowest-reward
   sample, kept when the reward margin is >= ``min_margin``; tagged with the signal whose difference
   contributes most to the margin.
2. ``fine-grained``: for each signal, the pair with the largest difference in that signal (>=
   ``signal_margin``) among pairs whose *other* signals are within ``close_tolerance`` of each other --
   the pairs that teach one skill at a time. The chosen side must be eligible.
Identical texts never form a pair, and a (chosen, rejected) pair is kept once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import permutations

SIGNALS = ("attributability", "comprehensiveness", "robustness")


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

    def __post_init__(self):
        unknown = set(self.weights) - set(SIGNALS)
        if unknown:
            raise ValueError(f"preference.weights has unknown signals {sorted(unknown)}; known: {SIGNALS}")
        if any(w < 0 for w in self.weights.values()) or not any(self.weights.values()):
            raise ValueError("preference.weights must be >= 0 and not all 0")
        for name in ("min_margin", "signal_margin", "close_tolerance"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"preference.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_pairs_per_question < 1:
            raise ValueError("preference.max_pairs_per_question must be >= 1")


@dataclass(frozen=True)
class ScoredSample:
    text: str
    signals: dict[str, float | None]  # SIGNALS -> value in [0, 1], None when not measurable
    n_words: int
    n_sentences: int
    n_docs: int
    cites_everything: bool
    has_citation: bool


@dataclass(frozen=True)
class QuestionSamples:
    id: str
    prompt: str
    samples: tuple[ScoredSample, ...]


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
    if s.n_words < cfg.min_words:
        return "too_short"
    if s.cites_everything and s.n_docs >= cfg.cite_all_min_docs:
        return "cites_everything"
    if cfg.require_citation and not s.has_citation:
        return "no_citation"
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
    margin: float  # reward margin
    chosen_scores: dict
    rejected_scores: dict

    def to_row(self) -> dict:
        return dict(self.__dict__)


def _pairs_for_question(q: QuestionSamples, cfg: PreferenceConfig) -> tuple[list[Pair], str | None]:
    """The pairs of one question, or none and the reason."""
    smp = q.samples
    rewards = [reward(x, cfg) for x in smp]
    eligible = {i for i, x in enumerate(smp) if ineligibility(x, cfg) is None}
    if len({x.text for x in smp}) < 2:
        return [], "identical_samples"
    if not eligible:
        return [], "no_eligible_chosen"
    kept: list[Pair] = []
    seen: set[tuple[str, str]] = set()

    def add(i: int, j: int, signal: str, kind: str) -> None:
        key = (smp[i].text, smp[j].text)
        if key in seen or key[0] == key[1] or len(kept) >= cfg.max_pairs_per_question:
            return
        seen.add(key)
        kept.append(Pair(q.id, q.prompt, smp[i].text, smp[j].text, signal, kind, rewards[i] - rewards[j],
                         {**smp[i].signals, "reward": rewards[i]}, {**smp[j].signals, "reward": rewards[j]}))

    best = max(eligible, key=lambda i: (rewards[i], -i))
    worst = min((i for i in range(len(smp)) if smp[i].text != smp[best].text), key=lambda i: (rewards[i], i))
    if rewards[best] - rewards[worst] >= cfg.min_margin:
        contrib = {k: cfg.weights.get(k, 0.0) * (_sig(smp[best], k) - _sig(smp[worst], k)) for k in SIGNALS}
        add(best, worst, max(contrib, key=contrib.get), "overall")
    if cfg.fine_grained:
        for k in SIGNALS:
            others = [o for o in SIGNALS if o != k]
            candidates = [
                (i, j) for i, j in permutations(range(len(smp)), 2)
                if i in eligible and smp[i].signals.get(k) is not None and smp[j].signals.get(k) is not None
                and _sig(smp[i], k) - _sig(smp[j], k) >= cfg.signal_margin
                and all(abs(_sig(smp[i], o) - _sig(smp[j], o)) <= cfg.close_tolerance for o in others)
                and (smp[i].text, smp[j].text) not in seen  # prefer a pair not kept yet
            ]
            if candidates:
                i, j = max(candidates, key=lambda p: (_sig(smp[p[0]], k) - _sig(smp[p[1]], k), -p[0]))
                add(i, j, k, "fine_grained")
    return kept, None if kept else "margin_below_threshold"


def build_pairs(questions: Sequence[QuestionSamples], cfg: PreferenceConfig) -> tuple[list[Pair], dict]:
    """Preference pairs and statistics (pairs by kind and signal, margins, why questions gave no pair)."""
    pairs: list[Pair] = []
    dropped: Counter = Counter()
    ineligible: Counter = Counter(w for q in questions for x in q.samples if (w := ineligibility(x, cfg)))
    for q in questions:
        kept, why = _pairs_for_question(q, cfg)
        pairs += kept
        if why:
            dropped[why] += 1
    margins = [p.margin for p in pairs]
    stats = {
        "questions": len(questions), "pairs": len(pairs),
        "questions_with_pairs": len({p.id for p in pairs}),
        "by_kind": dict(Counter(p.kind for p in pairs)), "by_signal": dict(Counter(p.signal for p in pairs)),
        "margin_mean": sum(margins) / len(margins) if margins else None,
        "margin_min": min(margins) if margins else None,
        "questions_dropped": dict(dropped), "samples_ineligible_as_chosen": dict(ineligible),
    }
    return pairs, stats


def best_samples(questions: Sequence[QuestionSamples], cfg: PreferenceConfig) -> list[dict]:
    """Each question's best eligible sample (highest reward) as a prompt/completion row with its reward:
    the data of the optional rejection-sampling SFT before DPO. Questions without an eligible sample give none.
    """
    rows = []
    for q in questions:
        eligible = [x for x in q.samples if ineligibility(x, cfg) is None]
        if eligible:
            best = max(eligible, key=lambda x: reward(x, cfg))  # the first of equals
            rows.append({"id": q.id, "prompt": q.prompt, "completion": best.text, "reward": reward(best, cfg)})
    return rows


def signals_of(score) -> dict[str, float | None]:
    """The three signals of a :class:`start.scoring.RecordScore` (attributability 0 for an empty answer)."""
    return {"attributability": score.citation_f1 if score.citation_f1 is not None else 0.0,
            "comprehensiveness": score.comprehensiveness, "robustness": score.robustness}


def question_samples(rows: Sequence[dict], scores: dict) -> list[QuestionSamples]:
    """Join sampled rows (``samples.jsonl``) with per-sample scores keyed ``<row id>#<k>``."""
    out = []
    for r in rows:
        n_docs = len(r["docs"])
        items = []
        for k, s in enumerate(r["samples"]):
            sc = scores[f"{r['id']}#{k}"]
            everything = bool(sc.sentences) and all(len(set(x.used)) >= n_docs for x in sc.sentences)
            items.append(ScoredSample(text=s["text"], signals=signals_of(sc), n_words=sc.length,
                                      n_sentences=sc.n_sentences, n_docs=n_docs, cites_everything=everything,
                                      has_citation=any(x.citations for x in sc.sentences)))
        out.append(QuestionSamples(r["id"], r["prompt"], tuple(items)))
    return out
