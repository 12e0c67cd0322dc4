"""Building the embedded default data set (``make data``): corpus and questions about the chemical elements,
derived deterministically from the SQLite database bundled in the PyPI package ``mendeleev``
(:mod:`start.data.builder.elements`).

Questions (``train/dev/test.jsonl``, ALCE layout) come from templates with several phrasings each
(:mod:`start.data.builder.questions`); their ELI5-style claims are each entailed by a gold passage under the
bundled NLI model, checked when building (:func:`verify_claims`). Each record holds 5 documents: its gold
passages and distractors from its own split (BM25 hits for the question plus passages from elements of the same
series), none of which contains a gold short answer and each marked ``"distractor": true``, in a seeded random
order; ``gold_doc_ids`` names the gold passages. Elements, not questions, are split between train, dev and test,
so test questions (and their distractors) are about elements never seen in training.

Quality gates (a question failing one is dropped and counted): every alias of every short answer occurs in
the gold passages (ALCE normalisation); no alias occurs in the question itself (ALCE's answer check is a
substring test, which a question echo would pass); a multi-passage question is not answerable from one of
its gold passages (by its short answers, and by its claims); at least two claims survive the NLI check and
every gold passage entails one of them; a discovery-year question is dropped when the element's prose
names another discovery year.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from start.data.builder.elements import Element, _db_fingerprint, element_passages, mendeleev_db_path, read_elements
from start.data.builder.questions import (
    COMPARISON_TEMPLATES,
    ELEMENTS_PER_QUESTION,
    LONG_TEMPLATES,
    PAIR_TEMPLATES,
    PHRASINGS,
    SINGLE_TEMPLATES,
    TWO_DOC_TEMPLATES,
    _comparable,
    _comparison,
    _element_facts,
    _Facts,
    _single,
)
from start.data.embedded import SPLITS
from start.data.records import Passage
from start.data.retrieval import RetrievalConfig, Retriever
from start.io import write_json, write_jsonl
from start.text import normalize_answer

# Comparisons per element of a split, the scarcest first (which_first needs three datable discoveries).
DEFAULT_COMPARISONS: tuple[tuple[str, float], ...] = (
    ("which_first", 0.4), ("compare_discovery", 0.4), ("compare_uses", 0.4), ("compare_year", 0.3),
    ("compare_number", 0.5))


@dataclass(frozen=True)
class BuildConfig:
    """Settings of the embedded data build (the defaults made the committed files)."""

    seed: int = 0  # every random choice derives from it (and from the question id)
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)  # train/dev/test share of elements
    singles_per_element: int = 2  # single-passage short questions per element
    pair_prob: float = 0.5  # chance of a two-passage question about one element (a fact + a use)
    long_prob: float = 1.0  # chance of a long-form discovery + uses question about one element
    comparisons: tuple[tuple[str, float], ...] = DEFAULT_COMPARISONS  # (template, questions per element)
    max_comparisons_per_element: int = 4  # an element appears in at most this many comparisons
    n_docs: int = 5  # documents per question (gold + distractors)
    bm25_distractors: int = 2  # of the distractors, how many are BM25 hits (the rest: same-series passages)
    claim_margin: float = 0.05  # a claim is kept when P(entailment) >= NLI threshold + margin
    max_words: int = 100  # passage length limit
    elements: tuple[int, ...] | None = None  # restrict to these atomic numbers (tests)
    db_path: str | None = None  # None: the installed mendeleev package's database

    def __post_init__(self) -> None:
        if len(self.split_fractions) != 3 or any(x < 0 for x in self.split_fractions) or not math.isclose(
                sum(self.split_fractions), 1.0):
            raise ValueError(f"split_fractions must be three non-negative shares summing to 1, "
                             f"got {self.split_fractions}")
        if self.singles_per_element < 0 or not 0 <= self.pair_prob <= 1 or not 0 <= self.long_prob <= 1:
            raise ValueError("singles_per_element must be >= 0, pair_prob and long_prob in [0, 1]")
        for kind, rate in self.comparisons:
            if kind not in COMPARISON_TEMPLATES or rate < 0:
                raise ValueError(f"comparisons: unknown template {kind!r} or negative rate {rate} "
                                 f"(templates: {COMPARISON_TEMPLATES})")
        if self.max_comparisons_per_element < 0 or not 0 <= self.claim_margin < 1:
            raise ValueError("max_comparisons_per_element must be >= 0 and claim_margin in [0, 1)")
        if self.n_docs < 2 or not 0 <= self.bm25_distractors <= self.n_docs:
            raise ValueError(f"n_docs must be >= 2 and bm25_distractors in [0, n_docs], got {self.n_docs}, "
                             f"{self.bm25_distractors}")
        if self.max_words < 20:
            raise ValueError(f"max_words must be >= 20, got {self.max_words}")


@dataclass
class EmbeddedData:
    corpus: list[Passage]
    splits: dict[str, list[dict[str, Any]]]
    stats: dict[str, Any] = field(default_factory=dict)


def _rng(seed: int, *parts: object) -> random.Random:
    # String seeds are hashed with SHA-512 by `random`, so this is stable across processes and platforms.
    return random.Random("/".join([str(seed), *map(str, parts)]))


def split_elements(numbers: Sequence[int], fractions: Sequence[float], seed: int) -> dict[str, list[int]]:
    """Shuffle the elements with the seed and cut them into train/dev/test by the given shares."""
    order = sorted(numbers)
    _rng(seed, "split").shuffle(order)
    n_train = round(fractions[0] * len(order))
    n_dev = round(fractions[1] * len(order))
    return {"train": sorted(order[:n_train]), "dev": sorted(order[n_train:n_train + n_dev]),
            "test": sorted(order[n_train + n_dev:])}


def _contains_word_seq(haystack_norm: str, needle: str) -> bool:
    n = normalize_answer(needle)
    return bool(n) and re.search(rf"(?<!\w){re.escape(n)}(?!\w)", haystack_norm) is not None


def _check(item: dict[str, Any], question: str, two_doc: bool) -> str | None:
    """Why a candidate question fails a quality gate, or None."""
    gold_norm = [normalize_answer(p.text) for p in item["gold"]]
    union = " ".join(gold_norm)
    q_norm = normalize_answer(question)
    for qa in item["qa_pairs"]:
        if not qa["short_answers"]:
            return "no_short_answer"
        for alias in qa["short_answers"]:
            a = normalize_answer(alias)
            if not a or a not in union:
                return "answer_not_in_gold"
            if a in q_norm:
                return "answer_in_question"
    if two_doc:
        for g in gold_norm:
            if all(any(normalize_answer(a) in g for a in qa["short_answers"]) for qa in item["qa_pairs"]):
                return "answerable_from_one_doc"
    return None


def _pick(kinds: Sequence[str], f: _Facts, rng: random.Random, limit: int,
          drops: Counter[str]) -> list[dict[str, Any]]:
    """Up to ``limit`` questions about one element: templates in a seeded order, skipping those that do
    not apply to it and counting those that fail a quality gate."""
    order = list(kinds)
    rng.shuffle(order)
    out: list[dict[str, Any]] = []
    for kind in order:
        if len(out) == limit:
            break
        q = rng.choice(PHRASINGS[kind]).format(name=f.el.name.lower(), Name=f.el.name, number=f.el.number,
                                               symbol=f.el.symbol)
        item = _single(kind, f, q)
        if item is None:
            continue
        item.update(template=kind, question=q, entities=[f.el.name], id=f"{kind}-{f.el.slug}")
        reason = _check(item, q, two_doc=kind in TWO_DOC_TEMPLATES)
        if reason:
            drops[reason] += 1
            continue
        out.append(item)
    return out


def _comparisons(cfg: BuildConfig, split: str, numbers: Sequence[int], facts: dict[int, _Facts],
                 drops: Counter[str]) -> list[dict[str, Any]]:
    """Questions about two or three elements of one split (so test elements never appear in training)."""
    crng = _rng(cfg.seed, "comparisons", split)
    used: Counter[int] = Counter()
    out = []
    for kind, rate in cfg.comparisons:
        target = round(rate * len(numbers))
        combos = list(itertools.combinations(numbers, ELEMENTS_PER_QUESTION.get(kind, 2)))
        crng.shuffle(combos)
        for combo in combos:
            if target == 0:
                break
            if any(used[z] >= cfg.max_comparisons_per_element for z in combo):
                continue  # spread the comparisons over the split's elements
            fs = [facts[z] for z in combo]
            crng.shuffle(fs)
            if not _comparable(kind, fs):
                continue
            names = [x.el.name.lower() for x in fs]
            q = crng.choice(PHRASINGS[kind]).format(**dict(zip("abc", names, strict=False)))
            item = _comparison(kind, fs)
            item.update(template=kind, question=q, entities=[x.el.name for x in fs],
                        id="-".join([kind, *(x.el.slug for x in fs)]))
            reason = _check(item, q, two_doc=True)
            if reason:
                drops[reason] += 1
                continue
            out.append(item)
            used.update(combo)
            target -= 1
    return out


def verify_claims(items: Sequence[dict[str, Any]], nli: Any, margin: float, drops: Counter[str],
                  claim_counts: Counter[str]) -> list[dict[str, Any]]:
    """Keep the claims a gold passage entails under ``nli`` (P >= threshold + margin), in one batch.

    A question with claims is dropped when fewer than two survive, when one of its gold passages
    entails none of them (the question would not need it) or when one gold passage entails all of them
    (it would need only one). Survivors get ``claim_docs``: per claim, the gold passages entailing it.
    """
    premise = {p.id: p.to_document().for_nli() for it in items for p in it["gold"]}
    pairs = sorted({(premise[p.id], c) for it in items for p in it["gold"] for c in it.get("claims", ())})
    probs = nli.predict(pairs).probs if pairs else []
    entailed = {pair: float(pr) >= nli.threshold + margin for pair, pr in zip(pairs, probs, strict=True)}
    out = []
    for it in items:
        if not it.get("claims"):
            out.append(it)
            continue
        gold = [p.id for p in it["gold"]]
        support = [[g for g in gold if entailed[(premise[g], c)]] for c in it["claims"]]
        keep = [(c, s) for c, s in zip(it["claims"], support, strict=True) if s]
        claim_counts["candidates"] += len(it["claims"])
        claim_counts["not_entailed"] += len(it["claims"]) - len(keep)
        if len(keep) < 2:
            drops["too_few_entailed_claims"] += 1
        elif any(not any(g in s for _, s in keep) for g in gold):
            drops["gold_doc_without_claim"] += 1
        elif any(all(g in s for _, s in keep) for g in gold):
            drops["claims_from_one_doc"] += 1
        else:
            claim_counts["kept"] += len(keep)
            out.append({**it, "claims": [c for c, _ in keep], "claim_docs": [s for _, s in keep]})
    return out


def build_embedded(cfg: BuildConfig | None = None, nli: Any = None) -> EmbeddedData:
    """Build corpus and questions in memory (no files written).

    ``nli`` judges the claims (an :class:`start.scoring.NLIBackend`; None: the bundled offline model).
    """
    cfg = cfg or BuildConfig()
    db = Path(cfg.db_path) if cfg.db_path else mendeleev_db_path()
    elements = read_elements(db)
    if cfg.elements is not None:
        wanted = set(cfg.elements)
        elements = [e for e in elements if e.number in wanted]
    if not elements:
        raise ValueError("no elements selected")
    by_number = {e.number: e for e in elements}
    per_element = {e.number: element_passages(e, cfg.max_words) for e in elements}
    corpus = [p for e in elements for p in per_element[e.number]]
    names = [e.name for e in read_elements(db)]  # all names, also outside a subset: same terms either way
    facts = {z: _element_facts(by_number[z], ps, names) for z, ps in per_element.items()}
    split_of = split_elements(list(by_number), cfg.split_fractions, cfg.seed)

    drops: Counter[str] = Counter()
    candidates: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for split, numbers in split_of.items():
        for z in numbers:
            f = facts[z]
            rng = _rng(cfg.seed, "templates", z)
            singles = _pick(SINGLE_TEMPLATES, f, rng, cfg.singles_per_element, drops)
            pair = _pick(PAIR_TEMPLATES, f, rng, 1, drops) if rng.random() < cfg.pair_prob else []
            long = _pick(LONG_TEMPLATES, f, rng, 1, drops) if rng.random() < cfg.long_prob else []
            candidates[split] += singles + pair + long
        candidates[split] += _comparisons(cfg, split, numbers, facts, drops)

    if nli is None and any(it.get("claims") for items in candidates.values() for it in items):
        from start.scoring.nli import NLIConfig, load_nli

        nli = load_nli(NLIConfig(model="minilm", progress=True))
    claim_counts: Counter[str] = Counter()
    for split in SPLITS:
        candidates[split] = verify_claims(candidates[split], nli, cfg.claim_margin, drops, claim_counts)

    retriever = Retriever.build([p.to_document() for p in corpus],
                                # rank_bm25 scores in float64 in a fixed order: distractor choice is
                                # reproducible across processes (bm25s sums float32 in hash-seeded order).
                                RetrievalConfig(backend="rank_bm25", use_cache=False))
    element_of = {p.id: p.id.rsplit("-", 1)[0] for p in corpus}
    series_of = {e.slug: e.series for e in elements}
    corpus_norm = [normalize_answer(p.text) for p in corpus]
    splits: dict[str, list[dict[str, Any]]] = {}
    shortfall = 0
    for split in SPLITS:
        items = candidates[split]
        # Distractors come from the split's own elements: no held-out passage is seen in training prompts.
        local = {by_number[z].slug for z in split_of[split]}
        pool = [i for i, p in enumerate(corpus) if element_of[p.id] in local]
        in_pool = set(pool)
        hits = retriever.search([it["question"] for it in items], k=len(corpus)) if items else []
        rows = []
        for item, h in zip(items, hits, strict=True):
            row = _assemble(item, [x for x in h if x[0] in in_pool], pool, corpus, corpus_norm, element_of,
                            series_of, cfg)
            shortfall += cfg.n_docs - len(row["docs"])
            rows.append(row)
        rows.sort(key=lambda r: r["id"])
        _rng(cfg.seed, "order", split).shuffle(rows)  # seeded order: the first N questions are a random sample
        splits[split] = rows

    conflicts = [f.el.name for f in facts.values() if f.el.year and not f.el.ancient and not f.year_ok]
    stats = _stats(splits, split_of, by_number, corpus, drops, conflicts)
    stats["claims"] = dict(sorted(claim_counts.items()))
    stats["distractor_shortfall"] = shortfall
    stats["nli"] = getattr(nli, "fingerprint", None)
    return EmbeddedData(corpus=corpus, splits=splits, stats=stats)


def _assemble(item: dict[str, Any], hits: Sequence[tuple[int, float]], pool: Sequence[int],
              corpus: Sequence[Passage], corpus_norm: Sequence[str], element_of: dict[str, str],
              series_of: dict[str, str | None], cfg: BuildConfig) -> dict[str, Any]:
    """Gold passages plus distractors (from ``pool``, free of every gold alias and marked ``distractor``),
    in a seeded random order."""
    rng = _rng(cfg.seed, "docs", item["id"])
    gold_ids = [p.id for p in item["gold"]]
    aliases = [a for qa in item["qa_pairs"] for a in qa["short_answers"]]

    def usable(i: int) -> bool:
        return corpus[i].id not in gold_ids and not any(_contains_word_seq(corpus_norm[i], a) for a in aliases)

    need = cfg.n_docs - len(gold_ids)
    chosen: list[int] = []
    # BM25 hits, ranked by score rounded to 1e-6 (float noise must not reorder near-ties), then index.
    for i, _ in sorted(hits, key=lambda h: (-round(h[1], 6), h[0])):
        if len(chosen) == min(cfg.bm25_distractors, need):
            break
        if usable(i):
            chosen.append(i)
    gold_series = {series_of.get(element_of[g]) for g in gold_ids}
    same = [i for i in pool if series_of.get(element_of[corpus[i].id]) in gold_series]
    rest = [i for i in pool if i not in same]
    for candidates in (same, rest):
        candidates = [i for i in candidates if i not in chosen and usable(i)]
        rng.shuffle(candidates)
        chosen += candidates[:max(0, need - len(chosen))]
    docs = [{"id": p.id, "title": p.title, "text": p.text} for p in item["gold"]]
    docs += [{"id": corpus[i].id, "title": corpus[i].title, "text": corpus[i].text, "distractor": True}
             for i in chosen]
    rng.shuffle(docs)
    row: dict[str, Any] = {
        "id": item["id"], "question": item["question"], "docs": docs,
        "qa_pairs": item["qa_pairs"], "answer": item["answer"], "gold_doc_ids": gold_ids,
        "template": item["template"], "entities": item["entities"],
    }
    if item.get("claims"):
        row["claims"], row["claim_docs"] = item["claims"], item["claim_docs"]
    if "answer_entity" in item:
        row["answer_entity"] = item["answer_entity"]
    return row


def needs_multi_doc(row: dict[str, Any]) -> bool:
    """Whether a question needs two or more documents and has two or more claims (a long-form question)."""
    return len(row.get("gold_doc_ids") or ()) >= 2 and len(row.get("claims") or ()) >= 2


def _stats(splits: dict[str, list[dict[str, Any]]], split_of: dict[str, list[int]],
           by_number: dict[int, Element], corpus: Sequence[Passage], drops: Counter[str],
           year_conflicts: list[str]) -> dict[str, Any]:
    all_rows = [r for s in SPLITS for r in splits[s]]
    two = sum(len(r["gold_doc_ids"]) >= 2 for r in all_rows)
    words = [len(p.text.split()) for p in corpus]

    def share(n: int, rows: Sequence[Any]) -> float:
        return round(n / len(rows), 4) if rows else 0.0

    return {
        "questions": {s: len(splits[s]) for s in SPLITS} | {"total": len(all_rows)},
        "elements": {s: len(split_of[s]) for s in SPLITS},
        "test_elements": [by_number[z].name for z in split_of["test"]],
        "two_doc_questions": two,
        "two_doc_share": share(two, all_rows),
        "needs_docs": {s: dict(sorted(Counter(len(r["gold_doc_ids"]) for r in splits[s]).items()))
                       for s in SPLITS},
        "multi_doc_claims_share": {s: share(sum(map(needs_multi_doc, splits[s])), splits[s]) for s in SPLITS},
        "templates": dict(sorted(Counter(r["template"] for r in all_rows).items())),
        "templates_by_split": {s: dict(sorted(Counter(r["template"] for r in splits[s]).items())) for s in SPLITS},
        "dropped": dict(sorted(drops.items())),
        "year_conflicts": year_conflicts,
        "corpus": {"passages": len(corpus), "words_mean": round(sum(words) / len(words), 1),
                   "words_max": max(words)},
    }


def write_embedded(data: EmbeddedData, out_dir: str | Path, *, source: dict[str, Any] | None = None,
                   config: BuildConfig | None = None) -> dict[str, Any]:
    """Write corpus, splits and a manifest (no timestamps: identical inputs give identical bytes)."""
    out = Path(out_dir)
    write_jsonl(out / "corpus.jsonl", (asdict(p) for p in data.corpus))
    for split in SPLITS:
        write_jsonl(out / f"{split}.jsonl", data.splits[split])
    files = {name: hashlib.sha256((out / name).read_bytes()).hexdigest()
             for name in ["corpus.jsonl", *(f"{s}.jsonl" for s in SPLITS)]}
    manifest = {"source": source or {}, "config": asdict(config) if config else None, **data.stats,
                "files": files}
    write_json(out / "manifest.json", manifest)
    return manifest


def source_info(db_path: str | Path | None = None) -> dict[str, Any]:
    path = Path(db_path) if db_path else mendeleev_db_path()
    try:
        version = metadata.version("mendeleev")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {"package": "mendeleev", "version": version, "licence": "MIT", "database": path.name,
            "database_sha256": _db_fingerprint(path)}
