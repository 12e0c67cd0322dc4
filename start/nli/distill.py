"""Distilling a judge (``python -m start.nli build --teacher DIR [--distill-source SOURCE]``): a small student
learns a larger judge's three-label distribution instead of gold labels.

* :func:`passage_pairs`: (premise, hypothesis) pairs shaped like the scorer's readings of cited passages, built
  from any documents (no labelled data needed);
* :func:`teacher_probs`: the teacher's probabilities for them. The teacher is slow (the MPNet judge labelled
  6,000 such pairs in 34 min on 2 CPU cores), so its answers are kept in the build cache in chunks, each written
  whole: a stopped build resumes labelling at the first missing chunk, and a finished labelling is reused by any
  build with the same teacher weights, pairs and length;
* :func:`teacher_labelled`: held-out pairs labelled with the teacher's decisions, to measure the student by.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from start.nli import data as D

CHUNK = 256  # pairs per cached chunk: about a minute of the MPNet judge on 2 cores


def teacher_label_order(id2label: dict) -> list[int]:
    """For each of ``D.LABELS``, the teacher's output index of that label (names matched case-blind), so a
    teacher with another label order (e.g. a hub NLI model: contradiction, neutral, entailment) lines up."""
    names = {str(name).lower(): int(i) for i, name in id2label.items()}
    missing = [lab for lab in D.LABELS if lab not in names]
    if missing:
        raise ValueError(f"the teacher's labels {dict(id2label)} lack {missing}: a teacher needs the three NLI "
                         f"labels {list(D.LABELS)}")
    return [names[lab] for lab in D.LABELS]


def pairs_digest(pairs: Sequence[D.NLIPair]) -> str:
    h = hashlib.sha256()
    for p in pairs:
        h.update(json.dumps([p.premise, p.hypothesis]).encode())
    return h.hexdigest()[:16]


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def teacher_probs(teacher: Path, pairs: Sequence[D.NLIPair], max_length: int, cache_dir: Path,
                  log: Callable[[str], None], batch_size: int = 16) -> np.ndarray:
    """The teacher's P(label) for every pair, rows in input order, columns in ``D.LABELS`` order.

    Read from ``cache_dir/teacher-<key>/`` where it is there (key: the teacher's weights, the pairs, the length).
    """
    import torch
    from transformers import AutoTokenizer

    from start.nli.config import _weights_digest
    from start.nli.measure import predict_proba
    from start.scoring.nli import read_settings
    from start.scoring.weights import load_classifier

    weights = _weights_digest(teacher)
    if weights is None:
        raise FileNotFoundError(f"teacher {teacher}: not a model folder with weights (a teacher must be a folder)")
    key = hashlib.sha256(json.dumps([weights, pairs_digest(pairs), max_length]).encode()).hexdigest()[:16]
    folder = cache_dir / f"teacher-{key}"
    done = folder / "probs.npy"
    if done.is_file():
        log(f"teacher labels for {len(pairs)} pairs read from {done}")
        return np.load(done)
    folder.mkdir(parents=True, exist_ok=True)
    settings = read_settings(teacher)
    model = load_classifier(teacher, settings, dtype=torch.float32).eval()
    order = teacher_label_order(model.config.id2label)
    tokenizer = AutoTokenizer.from_pretrained(teacher)
    # Chunks of similar length: each chunk's batches pad little, and a chunk is the unit that is saved.
    lengths = [len(p.premise) + len(p.hypothesis) for p in pairs]
    ranked = sorted(range(len(pairs)), key=lambda i: lengths[i])
    chunks = [ranked[s: s + CHUNK] for s in range(0, len(ranked), CHUNK)]
    out = np.zeros((len(pairs), len(D.LABELS)), dtype=np.float32)
    have = sum((folder / f"chunk-{c:05d}.npy").is_file() for c in range(len(chunks)))
    log(f"teacher {teacher}: labelling {len(pairs)} pairs in {len(chunks)} chunks ({have} already done) -> {folder}")
    for c, idx in enumerate(tqdm(chunks, desc="teacher", mininterval=10)):
        path = folder / f"chunk-{c:05d}.npy"
        if path.is_file():
            probs = np.load(path)
        else:
            probs = predict_proba(model, tokenizer, [pairs[i] for i in idx], max_length, batch_size)[:, order]
            _save_npy(path, probs)
        if probs.shape != (len(idx), len(D.LABELS)):
            raise ValueError(f"{path}: holds {probs.shape} labels, expected {(len(idx), len(D.LABELS))}; delete it")
        out[idx] = probs
    _save_npy(done, out)
    for c in range(len(chunks)):
        (folder / f"chunk-{c:05d}.npy").unlink(missing_ok=True)
    return out


def summary(probs: np.ndarray, pairs: Sequence[D.NLIPair]) -> dict:
    """What start_nli.json says of the teacher's labels: its mean distribution and its agreement with the pairs'
    gold labels (the student learns the teacher, including where it differs from them)."""
    gold = np.array([D.LABEL2ID[p.label] for p in pairs])
    return {"pairs": len(pairs),
            "mean_probs": {lab: round(float(probs[:, i].mean()), 4) for i, lab in enumerate(D.LABELS)},
            "argmax_equals_gold": round(float((probs.argmax(1) == gold).mean()), 4) if len(pairs) else None}


# ------------------------------------------------------------------------------- passage-shaped pairs

# a sentence ends at . ! ? before a capital, digit or quote; not after an initial ("C.F. Auer")
_SENT_RE = re.compile(r"(?<![\s.][A-Z]\.)(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
@dataclass(frozen=True)
class Kind:
    """A kind of distillation pair: its share of the pairs, the relation it is built to have (the teacher decides
    the label), and its hypothesis in words (the model card's table)."""

    share: float
    relation: str
    hypothesis: str


KINDS = {
    "own": Kind(0.25, "entailment", "a sentence of one of the premise's passages"),
    "clause": Kind(0.10, "entailment", "that sentence's first clause"),
    "swap": Kind(0.20, "contradiction", "that sentence with one number, year, month or name changed"),
    "other": Kind(0.20, "neutral", "a sentence of a similar passage that is not in the premise"),
    "joint": Kind(0.15, "entailment", 'two sentences of two passages joined with ", and" (both passages given, '
                                      "or one: then built neutral)"),
    "window": Kind(0.10, "entailment", "a sentence, the premise a 40-60-word window of its passage around it"),
}


@dataclass(frozen=True)
class Passage:
    title: str
    sentences: tuple[str, ...]

    def text(self) -> str:
        return f"Title: {self.title}\n" + " ".join(self.sentences)


def split_sentences(text: str, min_words: int = 5, max_words: int = 45) -> tuple[str, ...]:
    """Sentences of a passage that can serve as claims (5-45 words)."""
    return tuple(s.strip() for s in _SENT_RE.split(text.strip())
                 if min_words <= len(s.split()) <= max_words)


def passages_from_records(records: Sequence) -> list[Passage]:
    """The distinct documents of QA records (ALCE's ``docs``), in first-seen order, with >= 2 claim sentences."""
    seen: set[tuple[str, str]] = set()
    out: list[Passage] = []
    for rec in records:
        for doc in rec.docs:
            key = (doc.title, doc.text)
            if key in seen:
                continue
            seen.add(key)
            sents = split_sentences(doc.text)
            if len(sents) >= 2:
                out.append(Passage(doc.title or "", sents))
    return out


def _first_clause(sentence: str) -> str | None:
    for sep in (", and ", ", which ", ", but ", "; ", ", "):
        head, found, _ = sentence.partition(sep)
        if found and len(head.split()) >= 5:
            return head.rstrip(",;") + "."
    return None


def _window(p: Passage, i: int, rng: random.Random) -> str:
    """Sentence ``i`` among its neighbours, about 40-60 words, under the passage's title."""
    lo = hi = i
    words, target = len(p.sentences[i].split()), rng.randint(40, 60)
    while words < target and (lo > 0 or hi < len(p.sentences) - 1):
        if hi < len(p.sentences) - 1 and (lo == 0 or rng.random() < 0.5):
            hi += 1
            words += len(p.sentences[hi].split())
        else:
            lo -= 1
            words += len(p.sentences[lo].split())
    return f"Title: {p.title}\n" + " ".join(p.sentences[lo: hi + 1])


def passage_pairs(passages: Sequence[Passage], n: int, seed: int, max_docs: int = 3) -> list[D.NLIPair]:
    """``n`` (premise, hypothesis) pairs shaped like the scorer's readings of cited passages, from ``passages``
    alone: premises of 1-``max_docs`` passages ("Title: ...\\n text", one per line, in random order) or a window
    of one; hypotheses of the kinds in :data:`KINDS`. The label is the relation a pair was built to have, not a
    judgment: distillation trains on the teacher's. ``group``: the title of the hypothesis's passage (held-out
    splits go by it)."""
    from start.nli.long_pairs import _join_claims as join_claims
    from start.nli.negatives import _entities, _swap_entity, _swap_month, _swap_number

    if len(passages) < 3:
        raise ValueError(f"distillation pairs need >= 3 passages with >= 2 sentences each, got {len(passages)}")
    rng = random.Random(seed)
    names = sorted({e for p in passages for s in p.sentences for e in _entities(s)})
    words = [set(re.findall(r"\w+", p.text().lower())) for p in passages]

    def others(k: int, exclude: set[int]) -> list[int]:
        pool = [j for j in range(len(passages)) if j not in exclude]
        return rng.sample(pool, min(k, len(pool)))

    def near(i: int) -> int:
        """Of a few random passages, the one sharing most words with passage ``i`` (a hard distractor)."""
        cands = others(8, {i})
        return max(cands, key=lambda j: len(words[i] & words[j]))

    def premise(docs: list[int]) -> str:
        rng.shuffle(docs)
        return "\n".join(passages[j].text() for j in docs)

    kinds = list(KINDS)
    weights = [KINDS[k].share for k in kinds]
    out: list[D.NLIPair] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 20 * n:
            raise ValueError(f"could build only {len(out)} of {n} distillation pairs from {len(passages)} passages")
        kind = rng.choices(kinds, weights)[0]
        i = rng.randrange(len(passages))
        p = passages[i]
        s = rng.randrange(len(p.sentences))
        claim = p.sentences[s]
        extra = others(rng.choice((0, 0, 1, 2)), {i})[: max_docs - 1]
        group = p.title or f"passage-{i}"
        if kind == "own":
            prem, hyp = premise([i, *extra]), claim
        elif kind == "clause":
            hyp = _first_clause(claim)
            if hyp is None:
                continue
            prem = premise([i, *extra])
        elif kind == "swap":
            swapped = _swap_number(claim, p.text(), rng)
            hyp = swapped[0] if swapped else (_swap_month(claim, p.text(), rng)
                                              or _swap_entity(claim, p.text(), names, rng))
            if not hyp or hyp == claim:
                continue
            prem = premise([i, *extra])
        elif kind == "other":
            j = near(i)
            q = passages[j]
            hyp, group = rng.choice(q.sentences), q.title or f"passage-{j}"
            prem = premise([i, *[k for k in extra if k != j]])
        elif kind == "joint":
            j = near(i)
            second = rng.choice(passages[j].sentences)
            hyp = join_claims(claim, second)
            both = rng.random() < 0.6
            prem = premise([i, j] if both else [i, *others(1, {i, j})])
            if not both:
                out.append(D.NLIPair(prem, hyp, "neutral", "distill-joint", group))  # half of it is unsupported
                continue
        else:  # window
            prem, hyp = _window(p, s, rng), claim
        out.append(D.NLIPair(prem, hyp, KINDS[kind].relation, f"distill-{kind}", group))
    return out


def teacher_labelled(pairs: Sequence[D.NLIPair], probs: np.ndarray, threshold: float) -> list[D.NLIPair]:
    """The pairs relabelled with the teacher's decision: entailment where its P(entailment) reaches its
    threshold, else the likelier of neutral and contradiction (what a student is measured against)."""
    ent, neu, con = (D.LABEL2ID[k] for k in D.LABELS)
    out = []
    for p, row in zip(pairs, probs, strict=True):
        label = "entailment" if row[ent] >= threshold else ("neutral" if row[neu] >= row[con] else "contradiction")
        out.append(D.NLIPair(p.premise, p.hypothesis, label, p.source, p.group))
    return out
