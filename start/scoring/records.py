"""Typed view of ALCE-format records, validated at the edge.

Accepted fields (ALCE result format): ``question``, ``docs`` (list of ``{title, text}``; ``sent`` is read
in place of ``text`` for QA-extracted documents, as in the reference), ``output``, and, when present,
``qa_pairs[].short_answers`` (ASQA), ``claims`` (ELI5), ``answers`` (QAMPARI, a list of alias lists),
``answer`` (a yes/no answer for StrategyQA-style data, else a reference long answer). A document may carry
``"distractor": true`` (START's warm-up data marks the documents added to mislead).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from start.io import InputError
from start.text import Document

_YES, _NO = {"yes", "true"}, {"no", "false"}


@dataclass(frozen=True)
class ScoreRecord:
    """One answer to score, with whatever gold information its data set provides."""

    id: str
    question: str
    docs: tuple[Document, ...]
    output: str
    short_answers: tuple[tuple[str, ...], ...] | None = None  # ASQA: aliases per sub-question
    claims: tuple[str, ...] | None = None  # ELI5: sub-claims the answer should entail
    answers: tuple[tuple[str, ...], ...] | None = None  # QAMPARI: aliases per gold answer
    yes_no: bool | None = None  # StrategyQA-style gold answer
    reference_answer: str | None = None  # a long gold answer (fallback for comprehensiveness)


def _as_str(value: Any, path, i: int, rid: str | None, field: str, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise InputError(path, f"expected a string, got {type(value).__name__}", record=i, record_id=rid,
                         field=field)
    if not allow_empty and not value.strip():
        raise InputError(path, "is empty", record=i, record_id=rid, field=field)
    return value


def _str_list(value: Any, path, i: int, rid: str | None, field: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise InputError(path, f"expected a list of strings, got {type(value).__name__}", record=i,
                         record_id=rid, field=field)
    return tuple(_as_str(v, path, i, rid, f"{field}[{j}]") for j, v in enumerate(value))


def parse_record(raw: dict[str, Any], i: int, *, path: str | os.PathLike = "<input>",
                 allow_empty_docs: bool = False) -> ScoreRecord:
    """Validate one raw record and convert it; raise :class:`InputError` naming the bad field."""
    rid = str(raw["id"]) if "id" in raw else None
    for field in ("question", "docs", "output"):
        if field not in raw:
            raise InputError(path, "is missing", record=i, record_id=rid, field=field)
    question = _as_str(raw["question"], path, i, rid, "question")
    output = _as_str(raw["output"], path, i, rid, "output")
    raw_docs = raw["docs"]
    if not isinstance(raw_docs, list):
        raise InputError(path, f"expected a list of documents, got {type(raw_docs).__name__}", record=i,
                         record_id=rid, field="docs")
    if not raw_docs and not allow_empty_docs:
        raise InputError(path, "is empty: citation metrics need the documents the answer cites "
                         "(allow_empty_docs / --allow-empty-docs scores such answers as unsupported)",
                         record=i, record_id=rid, field="docs")
    docs = []
    for j, d in enumerate(raw_docs):
        f = f"docs[{j}]"
        if not isinstance(d, dict):
            raise InputError(path, f"expected an object, got {type(d).__name__}", record=i, record_id=rid,
                             field=f)
        body_key = "sent" if "sent" in d else "text"
        if body_key not in d:
            raise InputError(path, "is missing", record=i, record_id=rid, field=f"{f}.text")
        body = _as_str(d[body_key], path, i, rid, f"{f}.{body_key}", allow_empty=False)
        title = _as_str(d.get("title", ""), path, i, rid, f"{f}.title")
        docs.append(Document(title=title, text=body, distractor=bool(d.get("distractor", False))))

    short_answers = None
    if raw.get("qa_pairs") is not None:
        pairs = raw["qa_pairs"]
        if not isinstance(pairs, list) or not pairs:
            raise InputError(path, "expected a non-empty list", record=i, record_id=rid, field="qa_pairs")
        short_answers = []
        for j, qa in enumerate(pairs):
            if not isinstance(qa, dict) or "short_answers" not in qa:
                raise InputError(path, "is missing", record=i, record_id=rid,
                                 field=f"qa_pairs[{j}].short_answers")
            short_answers.append(_str_list(qa["short_answers"], path, i, rid, f"qa_pairs[{j}].short_answers"))
        short_answers = tuple(short_answers)

    claims = None
    if raw.get("claims") is not None:
        claims = _str_list(raw["claims"], path, i, rid, "claims")
        if not claims:
            raise InputError(path, "is an empty list", record=i, record_id=rid, field="claims")

    answers = None
    if raw.get("answers") is not None:
        if not isinstance(raw["answers"], list) or not raw["answers"]:
            raise InputError(path, "expected a non-empty list", record=i, record_id=rid, field="answers")
        answers = tuple(_str_list(a, path, i, rid, f"answers[{j}]") for j, a in enumerate(raw["answers"]))

    yes_no, reference_answer = None, None
    ans = raw.get("answer")
    if isinstance(ans, bool):
        yes_no = ans
    elif isinstance(ans, str) and ans.strip():
        low = ans.strip().lower().rstrip(".")
        if low in _YES | _NO:
            yes_no = low in _YES
        else:
            reference_answer = ans
    elif ans is not None:
        raise InputError(path, f"expected a string or a boolean, got {type(ans).__name__}", record=i,
                         record_id=rid, field="answer")
    return ScoreRecord(id=rid if rid is not None else str(i), question=question, docs=tuple(docs),
                       output=output, short_answers=short_answers, claims=claims, answers=answers,
                       yes_no=yes_no, reference_answer=reference_answer)


def parse_records(raws: Sequence[dict[str, Any]], *, path: str | os.PathLike = "<input>",
                  allow_empty_docs: bool = False) -> list[ScoreRecord]:
    """Validate and convert every record of a file."""
    return [parse_record(r, i, path=path, allow_empty_docs=allow_empty_docs) for i, r in enumerate(raws)]
