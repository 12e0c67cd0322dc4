"""Citation prompts: instruction, optional demonstrations, numbered documents, question.

Documents are rendered ``Document [i](Title: ...): text`` (1-based, the numbers the answer cites). The
prompt goes through the model's chat template when it has one. It is length-aware: when instruction,
demonstrations, documents and question do not fit in ``max_model_len - max_new_tokens`` tokens, the
longest documents are shortened (whole words from the end) until it fits, and the number of shortened
documents is returned so callers can count them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from start.text import Document


@dataclass(frozen=True)
class Demo:
    question: str
    docs: tuple[Document, ...]
    answer: str


@dataclass
class PromptConfig:
    instruction: str
    doc_template: str = "Document [{index}](Title: {title}): {text}"
    question_template: str = "Question: {question}"
    answer_prefix: str = "Answer:"
    demos: list[dict] = field(default_factory=list)  # [{question, docs: [{title, text}], answer}]
    n_demos: int = 0  # how many of `demos` to show (0: zero-shot)
    use_chat_template: bool = True
    max_model_len: int = 2048
    max_new_tokens: int = 200

    def __post_init__(self):
        if not self.instruction.strip():
            raise ValueError("prompt.instruction is empty")
        if not 0 <= self.n_demos <= len(self.demos):
            raise ValueError(f"prompt.n_demos={self.n_demos} but only {len(self.demos)} demonstrations are defined")
        if self.max_new_tokens >= self.max_model_len:
            raise ValueError(f"max_new_tokens ({self.max_new_tokens}) must be < max_model_len ({self.max_model_len})")
        for key in ("{index}", "{title}", "{text}"):
            if key not in self.doc_template:
                raise ValueError(f"prompt.doc_template must contain {key}")

    def demonstrations(self) -> list[Demo]:
        return [Demo(d["question"], tuple(Document(x.get("title", ""), x["text"]) for x in d["docs"]), d["answer"])
                for d in self.demos[: self.n_demos]]


@dataclass(frozen=True)
class BuiltPrompt:
    text: str
    n_tokens: int
    n_truncated_docs: int


def render_docs(docs: Sequence[Document], template: str) -> str:
    return "\n".join(template.format(index=i + 1, title=d.title, text=d.text) for i, d in enumerate(docs))


def _example(cfg: PromptConfig, question: str, docs: Sequence[Document], answer: str | None) -> str:
    parts = [render_docs(docs, cfg.doc_template), cfg.question_template.format(question=question)]
    parts.append(f"{cfg.answer_prefix} {answer}" if answer is not None else cfg.answer_prefix)
    return "\n\n".join(p for p in parts if p)


def _render(cfg: PromptConfig, question: str, docs: Sequence[Document], tokenizer) -> str:
    demos = cfg.demonstrations()
    if cfg.use_chat_template and getattr(tokenizer, "chat_template", None):
        # Demonstrations are earlier turns of the conversation (their answers in the assistant's voice),
        # which small chat models imitate far more readily than an example quoted inside one message.
        messages: list[dict[str, str]] = []
        for d in demos:
            messages += [{"role": "user", "content": _ask(cfg, d.question, d.docs)},
                         {"role": "assistant", "content": d.answer}]
        messages.append({"role": "user", "content": _ask(cfg, question, docs)})
        messages[0]["content"] = cfg.instruction.strip() + "\n\n" + messages[0]["content"]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    blocks = [cfg.instruction.strip()] + [_example(cfg, d.question, d.docs, d.answer) for d in demos]
    return "\n\n".join(blocks) + "\n\n" + _example(cfg, question, docs, None)


def _ask(cfg: PromptConfig, question: str, docs: Sequence[Document]) -> str:
    """A user turn: the documents and the question (the answer prefix is left out: the reply is the answer)."""
    return "\n\n".join(p for p in (render_docs(docs, cfg.doc_template), cfg.question_template.format(question=question))
                       if p)


def _n_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def build_prompt(cfg: PromptConfig, question: str, docs: Sequence[Document], tokenizer) -> BuiltPrompt:
    """Render the prompt, shortening the longest documents until it fits the model's context."""
    budget = cfg.max_model_len - cfg.max_new_tokens
    words = [d.text.split() for d in docs]
    truncated: set[int] = set()
    while True:
        current = [Document(d.title, " ".join(w), d.distractor) for d, w in zip(docs, words, strict=True)]
        text = _render(cfg, question, current, tokenizer)
        n = _n_tokens(tokenizer, text)
        if n <= budget:
            return BuiltPrompt(text, n, len(truncated))
        longest = max(range(len(words)), key=lambda i: len(words[i]), default=None)
        if longest is None or not words[longest]:
            raise ValueError(f"the prompt needs {n} tokens even with empty documents; the budget is {budget} "
                             "(raise max_model_len, or shorten the instruction/demonstrations)")
        # Shorten by the overflow (in words, a token is at most a word here) or by a quarter, whichever is more.
        cut = max(n - budget, len(words[longest]) // 4, 1)
        words[longest] = words[longest][: max(0, len(words[longest]) - cut)]
        truncated.add(longest)
