"""Typed warm-up settings, built from the ``warmup`` config group and validated on construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from start.sampling.backends import SamplingConfig

if TYPE_CHECKING:
    from start.sampling.backends import BackendConfig
    from start.sampling.prompt import PromptConfig
    from start.scoring import NLIConfig
    from start.train.launch import LaunchConfig
    from start.train.sft import SFTSettings


@dataclass
class LMStep:
    """Decoding settings of one step that asks the model for text (one sample per prompt)."""

    max_new_tokens: int = 128
    temperature: float = 0.7  # 0: greedy
    top_p: float = 0.95

    def sampling(self, seed: int) -> SamplingConfig:
        return SamplingConfig(n=1, temperature=self.temperature, top_p=self.top_p,
                              max_new_tokens=self.max_new_tokens, seed=seed)

    def __post_init__(self):
        self.sampling(0)  # SamplingConfig validates the decoding values


@dataclass
class AnswerStep(LMStep):
    min_sentences: int = 1  # fewer complete sentences: the answer is dropped ("too_few_sentences")
    max_sentences: int = 5  # longer answers are cut to their first sentences
    candidates: int = 1  # answers sampled per question; the first one that passes the checks is kept
    require_topic: bool = True  # the answer must name the question's topic (its rarest content word)

    def sampling(self, seed: int) -> SamplingConfig:
        return replace(super().sampling(seed), n=self.candidates)

    def __post_init__(self):
        if self.candidates < 1:
            raise ValueError(f"warmup.answer.candidates must be >= 1, got {self.candidates}")
        super().__post_init__()
        if not 1 <= self.min_sentences <= self.max_sentences:
            raise ValueError(f"warmup.answer needs 1 <= min_sentences <= max_sentences, got "
                             f"{self.min_sentences}, {self.max_sentences}")


@dataclass
class ClaimStep(LMStep):
    temperature: float = 0.0
    min_words: int = 3  # shorter lines are not claims (headers, fragments)
    max_claims: int = 8

    def __post_init__(self):
        super().__post_init__()
        if self.min_words < 1 or self.max_claims < 1:
            raise ValueError("warmup.claims.min_words and max_claims must be >= 1")


@dataclass
class GroupStep:
    max_claims_per_doc: int = 3  # group sizes are drawn uniformly from 1..max

    def __post_init__(self):
        if self.max_claims_per_doc < 1:
            raise ValueError(f"warmup.grouping.max_claims_per_doc must be >= 1, got {self.max_claims_per_doc}")


@dataclass
class DocumentStep(LMStep):
    n_distractors: int = 2  # documents of other questions shuffled in
    title: Literal["generated", "question"] = "generated"  # "generated": the model's `Title:` line if any
    min_words: int = 3  # shorter document texts are discarded ("empty_document")

    def __post_init__(self):
        super().__post_init__()
        if self.n_distractors < 0:
            raise ValueError(f"warmup.documents.n_distractors must be >= 0, got {self.n_distractors}")
        if self.title not in ("generated", "question"):
            raise ValueError(f"warmup.documents.title must be 'generated' or 'question', got {self.title!r}")


@dataclass
class RelabelStep:
    max_citations: int = 3  # largest document combination tried for one sentence (scorer counts <= 3)
    unsupported: Literal["drop_sentence", "drop_example"] = "drop_sentence"
    min_sentences: int = 1  # an example keeping fewer supported sentences is discarded

    def __post_init__(self):
        if not 1 <= self.max_citations <= 3:
            raise ValueError(f"warmup.relabel.max_citations must be 1..3 (the scorer reads at most 3), got "
                             f"{self.max_citations}")
        if self.unsupported not in ("drop_sentence", "drop_example"):
            raise ValueError(f"warmup.relabel.unsupported must be drop_sentence or drop_example, got "
                             f"{self.unsupported!r}")
        if self.min_sentences < 1:
            raise ValueError(f"warmup.relabel.min_sentences must be >= 1, got {self.min_sentences}")


@dataclass
class WarmupPrompts:
    """User messages of the three generation steps (rendered through the chat template)."""

    answer: str  # {question}
    claims: str  # {question}, {answer}
    document: str  # {question}, {claims} (a bulleted list)
    use_chat_template: bool = True
    plain_cue: str = "Response:"  # ends a prompt when the model has no chat template

    def __post_init__(self):
        for name, keys in (("answer", ("{question}",)), ("claims", ("{answer}",)), ("document", ("{claims}",))):
            for key in keys:
                if key not in getattr(self, name):
                    raise ValueError(f"warmup.prompts.{name} must contain {key}")


@dataclass
class WarmupConfig:
    prompts: WarmupPrompts
    split: str | None = None  # split of the training source the model writes its own data for (None: train_split)
    limit: int | None = None  # first N questions (debugging / small runs)
    answer: AnswerStep = field(default_factory=AnswerStep)
    claims: ClaimStep = field(default_factory=ClaimStep)
    grouping: GroupStep = field(default_factory=GroupStep)
    documents: DocumentStep = field(default_factory=DocumentStep)
    relabel: RelabelStep = field(default_factory=RelabelStep)
    nli: dict = field(default_factory=lambda: {"model": "default"})  # start.scoring.NLIConfig fields
    verify: bool = True  # re-score every kept example with the AttributionScorer
    enabled: bool = True  # false: the loop starts from the base model (policy 0 = base)
    # each example trained under this many orders of its documents (a Latin square, citations renumbered), so
    # the SFT data cite every position alike (1: the order the example was written in)
    doc_orders: int = 1

    def __post_init__(self):
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"warmup.limit must be >= 1 or null, got {self.limit}")
        if self.doc_orders < 1:
            raise ValueError(f"warmup.doc_orders must be >= 1, got {self.doc_orders}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WarmupConfig:
        d = dict(d)
        if "prompts" not in d:
            raise ValueError("warmup.prompts is missing (see conf/warmup/default.yaml)")
        parts = {"prompts": WarmupPrompts, "answer": AnswerStep, "claims": ClaimStep, "grouping": GroupStep,
                 "documents": DocumentStep, "relabel": RelabelStep}
        for key, typ in parts.items():
            if key in d and not isinstance(d[key], typ):
                d[key] = typ(**d[key])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WarmupStageConfig:
    """Everything the warm-up stage reads, built once at the entry (``start.config``)."""

    settings: WarmupConfig
    nli: NLIConfig  # the judge of steps 5-7 (``warmup.nli``)
    sft: SFTSettings  # the ``sft`` section
    launch: LaunchConfig  # how SFT runs (in this process or under ``accelerate launch``)
    prompt: PromptConfig  # the run's citation prompt: the SFT rows are the prompts the policy is sampled with
    backend: BackendConfig  # the engine that writes the data
    model: str  # the policy model (a built-in name, a folder or a hub name), also the SFT base
    source: str  # the training questions: ``train_source``, else ``data.source``
    split: str | None  # ``warmup.split``, else the run's ``train_split`` -- never the held-out questions
    seed: int

    @property
    def enabled(self) -> bool:
        return self.settings.enabled
