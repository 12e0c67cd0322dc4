"""Warm-up steps 1-4: the policy model writes an answer, splits it into claims, and writes documents.

Every step is a pure function ``(items, ...) -> (items, StepStats)`` over :class:`WarmupItem`; the model
sits behind the sampler's :class:`~start.sampling.backends.Generator` interface and each step sends all
its prompts in ONE ``generate`` call. Randomness (grouping, distractors, shuffling) comes from RNGs seeded
per question from the stage seed, so results do not depend on the order or number of other questions --
except the distractor pool, which is, by design, the other questions' documents.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from start.sampling.backends import Generator
from start.sampling.sampler import derive_seed
from start.text import Document, normalize_answer, remove_citations, sent_tokenize
from start.warmup.chat import render_user_message
from start.warmup.config import AnswerStep, ClaimStep, DocumentStep, GroupStep, WarmupPrompts

# --------------------------------------------------------------------------------------------- types


@dataclass(frozen=True)
class WarmDoc:
    """A generated document: the claims it was written to state, and the question it was written for."""

    title: str
    text: str
    claims: tuple[str, ...]  # what the document must entail (checked before relabelling)
    source: str  # id of the question it was generated for
    distractor: bool = False  # True in another question's document list

    def to_document(self) -> Document:
        return Document(self.title, self.text, self.distractor)

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "text": self.text, "claims": list(self.claims), "source": self.source,
                "distractor": self.distractor}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WarmDoc:
        return cls(d["title"], d["text"], tuple(d["claims"]), d["source"], bool(d.get("distractor", False)))


@dataclass(frozen=True)
class WarmupItem:
    """One question on its way to a training example; each step fills in its fields."""

    id: str
    question: str
    answer: str = ""  # step 1: the model's answer, one line, no citations
    claims: tuple[str, ...] = ()  # step 2: atomic claims
    groups: tuple[tuple[int, ...], ...] = ()  # step 3: claim indices per document
    docs: tuple[WarmDoc, ...] = ()  # step 4: own documents and distractors, in prompt order
    cited_answer: str = ""  # step 5: supported sentences with citations
    dropped_sentences: tuple[str, ...] = ()  # step 5: answer sentences no document supports

    @property
    def distractor_positions(self) -> list[int]:
        """0-based positions of the distractor documents in :attr:`docs`."""
        return [i for i, d in enumerate(self.docs) if d.distractor]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "question": self.question, "answer": self.answer, "claims": list(self.claims),
                "groups": [list(g) for g in self.groups], "docs": [d.to_dict() for d in self.docs],
                "distractor_positions": self.distractor_positions, "cited_answer": self.cited_answer,
                "dropped_sentences": list(self.dropped_sentences)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WarmupItem:
        return cls(id=d["id"], question=d["question"], answer=d.get("answer", ""),
                   claims=tuple(d.get("claims", ())), groups=tuple(tuple(g) for g in d.get("groups", ())),
                   docs=tuple(WarmDoc.from_dict(x) for x in d.get("docs", ())),
                   cited_answer=d.get("cited_answer", ""), dropped_sentences=tuple(d.get("dropped_sentences", ())))


@dataclass
class StepStats:
    """What a step received, kept and dropped (by reason); ``counts`` holds other tallies."""

    step: str
    n_in: int = 0
    n_out: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> questions dropped
    counts: Counter = field(default_factory=Counter)  # reason -> sub-items (claims, documents, sentences)

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "in": self.n_in, "out": self.n_out, "dropped": dict(self.dropped),
                "counts": dict(self.counts)}


LMStepLike = AnswerStep | ClaimStep | DocumentStep


def _generate(generator: Generator, prompts: list[str], step: LMStepLike, seed: int, keys: list[str]) -> list[str]:
    """One ``generate`` call for the whole step; one sample per prompt, seeded per key."""
    if not prompts:
        return []
    out = generator.generate(prompts, step.sampling(seed), [derive_seed(seed, k) for k in keys])
    return [g[0].text if g else "" for g in out]

# ------------------------------------------------------------------------------------ step 1: answer

_WS = re.compile(r"\s+")


def _one_line(text: str) -> str:
    return _WS.sub(" ", text).strip()


def clean_answer(text: str, max_sentences: int) -> list[str]:
    """The answer's complete sentences (citation marks removed, at most ``max_sentences``).

    A last sentence without final punctuation was cut by the token limit and is left out.

    >>> clean_answer("Paris is in France [1]. It has the Eiffel", 5)
    ['Paris is in France.']
    """
    text = _one_line(remove_citations(text, "lenient"))
    sentences = [s.strip() for s in sent_tokenize(text) if s.strip()] if text else []
    if sentences and not sentences[-1].rstrip("\"')]").endswith((".", "!", "?")):
        sentences = sentences[:-1]
    return sentences[:max_sentences]


# Function words and question words that never name a question's topic.
_STOPWORDS = frozenset("""
a an and are as at be been by can could did do does for from had has have how in into is it its many much
of on or that the their there these this to was were what when where which who whom whose why will with
would about after before between during under over than then also name named called give list tell
""".split())
_WORD = re.compile(r"[a-z0-9]+")


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 2}


def topic_words(questions: Sequence[str]) -> list[frozenset[str]]:
    """Per question, its topic: the content words that are rarest across ``questions``.

    Words every question of a template shares ("atomic", "number") are common; the subject ("actinium")
    is rare, so an answer that never names it is about something else. A question without content words
    gets an empty topic (no check).

    >>> topic_words(["What is the atomic number of gold?", "What is the atomic number of iron?"])
    [frozenset({'gold'}), frozenset({'iron'})]
    """
    words = [_content_words(q) for q in questions]
    df = Counter(w for ws in words for w in ws)
    out = []
    for ws in words:
        rarest = min((df[w] for w in ws), default=0)
        out.append(frozenset(w for w in ws if df[w] == rarest))
    return out


def on_topic(answer: str, topic: frozenset[str]) -> bool:
    """Whether ``answer`` names at least one topic word (always true for an empty topic)."""
    return not topic or bool(topic & set(_WORD.findall(answer.lower())))


def generate_answers(items: Sequence[WarmupItem], generator: Generator, prompts: WarmupPrompts,
                     cfg: AnswerStep, seed: int) -> tuple[list[WarmupItem], StepStats]:
    """Step 1: an informative answer per question, written without documents and without citations.

    ``cfg.candidates`` answers are sampled per question and the first usable one is kept: it has at least
    ``min_sentences`` complete sentences and (``require_topic``) names the question's topic, so answers about
    something else ("Aminoacioxidant." for a question on actinium) never become training data. A dropped
    question is counted under the reason of its first candidate.
    """
    stats = StepStats("answer", n_in=len(items))
    texts = [render_user_message(generator.tokenizer, prompts.answer.format(question=it.question),
                                 use_chat_template=prompts.use_chat_template, plain_cue=prompts.plain_cue)
             for it in items]
    if not texts:
        return [], stats
    seeds = [derive_seed(seed, f"warmup:answer:{it.id}") for it in items]
    outputs = generator.generate(texts, cfg.sampling(seed), seeds)
    topics = topic_words([it.question for it in items]) if cfg.require_topic else [frozenset()] * len(items)
    kept = []
    for it, candidates, topic in zip(items, outputs, topics, strict=True):
        reasons = []
        for cand in candidates:
            sentences = clean_answer(cand.text, cfg.max_sentences)
            if not cand.text.strip():
                reasons.append("empty_answer")
            elif len(sentences) < cfg.min_sentences:
                reasons.append("too_few_sentences")
            elif not on_topic(" ".join(sentences), topic):
                reasons.append("off_topic")
            else:
                kept.append(replace(it, answer=" ".join(sentences)))
                break
        else:
            stats.dropped[reasons[0] if reasons else "empty_answer"] += 1
        stats.counts.update(f"candidate_{r}" for r in reasons)
    stats.n_out = len(kept)
    return kept, stats


# ------------------------------------------------------------------------------------ step 2: claims

# A list marker at the start of a line: "1.", "1)", "(1)", "-", "*", "•", "Claim 1:", "Fact 2 -".
_MARKER = re.compile(r"^\s*(?:(?:claim|fact)\s*\d+\s*[:.)-]|\(?\d{1,2}[.)](?=\s)|[-*•·–])\s*", re.IGNORECASE)
# Inline numbering on one line ("1. A. 2. B."): split before " <n>. " when the numbers count up from 1.
_INLINE = re.compile(r"\s(?=\d{1,2}[.)]\s)")


def _split_inline(line: str) -> list[str]:
    if not re.match(r"^\s*\(?1[.)]\s", line):
        return [line]
    parts = _INLINE.split(line)
    numbers = [re.match(r"\s*\(?(\d+)", p) for p in parts]
    if all(numbers) and [int(m.group(1)) for m in numbers] == list(range(1, len(parts) + 1)):
        return parts
    return [line]


def parse_claims(text: str, *, min_words: int = 3, max_claims: int | None = None) -> tuple[list[str], Counter]:
    """Claims from a model's list (numbered, bulleted or one per line); also the tallies of what was cut.

    Header lines (ending in ":"), lines under ``min_words`` words and duplicates (after ALCE normalisation)
    are dropped; each claim ends with a period.

    >>> parse_claims("Here are the facts:\\n1. Paris is in France.\\n2) paris is in France\\n- It is big")
    (['Paris is in France.', 'It is big.'], Counter({'header': 1, 'duplicate': 1}))
    """
    counts: Counter = Counter()
    claims: list[str] = []
    seen: set[str] = set()
    lines = [part for line in text.splitlines() for part in _split_inline(line)]
    for line in lines:
        if not line.strip():
            continue
        body = _one_line(remove_citations(_MARKER.sub("", line, count=1), "lenient")).strip("\"'` ")
        if not body:
            counts["empty"] += 1
            continue
        if body.endswith(":"):
            counts["header"] += 1
            continue
        if len(body.split()) < min_words:
            counts["too_short"] += 1
            continue
        if body[-1] not in ".!?":
            body += "."
        key = normalize_answer(body)
        if key in seen:
            counts["duplicate"] += 1
            continue
        seen.add(key)
        claims.append(body)
    if max_claims is not None and len(claims) > max_claims:
        counts["over_max"] += len(claims) - max_claims
        claims = claims[:max_claims]
    return claims, counts


def decompose_claims(items: Sequence[WarmupItem], generator: Generator, prompts: WarmupPrompts,
                     cfg: ClaimStep, seed: int) -> tuple[list[WarmupItem], StepStats]:
    """Step 2: the model lists the atomic claims (one fact each) of its own answer."""
    stats = StepStats("claims", n_in=len(items))
    texts = [render_user_message(generator.tokenizer, prompts.claims.format(question=it.question, answer=it.answer),
                                 use_chat_template=prompts.use_chat_template, plain_cue=prompts.plain_cue)
             for it in items]
    outputs = _generate(generator, texts, cfg, seed, [f"warmup:claims:{it.id}" for it in items])
    kept = []
    for it, raw in zip(items, outputs, strict=True):
        claims, counts = parse_claims(raw, min_words=cfg.min_words, max_claims=cfg.max_claims)
        stats.counts.update({f"claims_{k}": v for k, v in counts.items()})
        stats.counts["claims_kept"] += len(claims)
        if not claims:
            stats.dropped["no_claims"] += 1
            continue
        kept.append(replace(it, claims=tuple(claims)))
    stats.n_out = len(kept)
    return kept, stats


# ----------------------------------------------------------------------------------- step 3: grouping


def group_indices(n: int, max_size: int, rng: random.Random) -> list[tuple[int, ...]]:
    """Partition ``range(n)`` into shuffled groups of 1..max_size elements (sorted within a group).

    >>> group_indices(5, 3, random.Random(0))
    [(0, 1, 2), (3, 4)]
    """
    order = list(range(n))
    rng.shuffle(order)
    groups = []
    while order:
        size = rng.randint(1, min(max_size, len(order)))
        groups.append(tuple(sorted(order[:size])))
        order = order[size:]
    return groups


def group_claims(items: Sequence[WarmupItem], cfg: GroupStep, seed: int) -> tuple[list[WarmupItem], StepStats]:
    """Step 3: claims into sets of 1..max (one set per document), with an RNG seeded per question.

    Claims of one answer sentence land in different sets (so the sentence needs several documents) and
    sets join claims of different sentences (so one document supports several sentences).
    """
    stats = StepStats("grouping", n_in=len(items))
    out = []
    for it in items:
        groups = group_indices(len(it.claims), cfg.max_claims_per_doc,
                               random.Random(derive_seed(seed, f"warmup:group:{it.id}")))
        stats.counts.update(f"groups_of_{len(g)}" for g in groups)
        out.append(replace(it, groups=tuple(groups)))
    stats.n_out = len(out)
    return out, stats


# ---------------------------------------------------------------------------------- step 4: documents

_TITLE = re.compile(r"^\s*#*\s*title\s*:\s*(.*?)\s*$", re.IGNORECASE)
_TEXT = re.compile(r"^\s*(?:text|document|content|paragraph|facts?)\s*:\s*", re.IGNORECASE)
_ECHO = re.compile(r"^\s*(?:topic|question)\s*:", re.IGNORECASE)  # the prompt repeated back
MAX_TITLE_WORDS = 12


def question_topic(question: str) -> str:
    """A fallback title: the question without its final question mark."""
    return question.strip().rstrip("?").strip()


def parse_document(text: str) -> tuple[str | None, str]:
    """A generated document's ``Title:`` line (if usable) and its body as one paragraph.

    Lines that repeat the prompt (``Topic:``, ``Question:``) are left out, list markers are removed, a last
    sentence cut by the token limit is dropped, and a title that is empty, itself says "title:", or runs
    over 12 words counts as missing.

    >>> parse_document("Title: Paris\\nText: Paris is the capital\\nof France.")
    ('Paris', 'Paris is the capital of France.')
    """
    title, body = None, []
    for line in text.replace("**", "").splitlines():  # markdown bold around "Title:" and in the text
        m = _TITLE.match(line)
        if m and title is None and not body:
            title = m.group(1).strip().strip("\"'").strip()
            continue
        if _ECHO.match(line):
            continue
        body.append(_MARKER.sub("", _TEXT.sub("", line, count=1), count=1))
    if title is not None and (not title or "title" in title.lower() or len(title.split()) > MAX_TITLE_WORDS):
        title = None
    text = _one_line(remove_citations(" ".join(body), "lenient"))
    sentences = sent_tokenize(text) if text else []
    if len(sentences) > 1 and not sentences[-1].rstrip("\"')]").endswith((".", "!", "?")):
        text = " ".join(sentences[:-1])  # the last sentence was cut by the token limit
    return title, text


def _claim_list(claims: Sequence[str]) -> str:
    return "\n".join(f"- {c}" for c in claims)


def generate_documents(items: Sequence[WarmupItem], generator: Generator, prompts: WarmupPrompts,
                       cfg: DocumentStep, seed: int) -> tuple[list[WarmupItem], StepStats]:
    """Step 4: a short document per claim set, then distractors (other questions' documents) shuffled in.

    Positions of the distractors are recorded on the documents (``distractor=True``); see
    :attr:`WarmupItem.distractor_positions`.
    """
    stats = StepStats("documents", n_in=len(items))
    jobs = [(it, g) for it in items for g in it.groups]
    texts = [render_user_message(
        generator.tokenizer,
        prompts.document.format(question=it.question, claims=_claim_list([it.claims[i] for i in g])),
        use_chat_template=prompts.use_chat_template, plain_cue=prompts.plain_cue) for it, g in jobs]
    outputs = _generate(generator, texts, cfg, seed,
                        [f"warmup:doc:{it.id}:{k}" for it in items for k in range(len(it.groups))])
    own: dict[str, list[WarmDoc]] = {it.id: [] for it in items}
    for (it, g), raw in zip(jobs, outputs, strict=True):
        title, body = parse_document(raw)
        if len(body.split()) < cfg.min_words:
            stats.counts["empty_document"] += 1
            continue
        if cfg.title == "question" or not title:
            stats.counts["title_from_question"] += 1
            title = question_topic(it.question)
        own[it.id].append(WarmDoc(title, body, tuple(it.claims[i] for i in g), it.id))
        stats.counts["documents"] += 1
    out = []
    for it in items:
        if not own[it.id]:
            stats.dropped["no_documents"] += 1
            continue
        rng = random.Random(derive_seed(seed, f"warmup:distract:{it.id}"))
        pool = [replace(d, distractor=True) for other in items if other.id != it.id for d in own[other.id]]
        distractors = rng.sample(pool, min(cfg.n_distractors, len(pool)))
        if len(distractors) < cfg.n_distractors:
            stats.counts["distractor_shortfall"] += cfg.n_distractors - len(distractors)
        docs = own[it.id] + distractors
        rng.shuffle(docs)
        stats.counts["distractors"] += len(distractors)
        out.append(replace(it, docs=tuple(docs)))
    stats.n_out = len(out)
    return out, stats
