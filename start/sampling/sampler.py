"""The sampling stage: N cited answers per question, written as resumable JSON Lines.

Rows: ``{id, question, docs, prompt, n_truncated_docs, samples: [{text, citations, token_logprob_sum,
n_tokens, finish_reason}]}`` (``finish_reason``: "stop", or "length" when generation hit
``max_new_tokens``) plus the record's gold fields (``qa_pairs``, ``answer``, ``claims``, ``answers``) so
the scorer can read the file directly. Questions are processed in fixed chunks (in input order); a chunk's
rows are appended with one write and an fsync, and its seed is derived from the stage seed and the
chunk's first id. An interrupted run therefore resumes at the first incomplete chunk and produces the
same rows as an uninterrupted one: a torn last line is cut off, rows of an incomplete chunk are dropped
and the chunk is generated again with the same seed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from start.io import atomic_open, naming_full_disk
from start.sampling.backends import Generator, SamplingConfig
from start.sampling.prompt import PromptConfig, build_prompt
from start.text import Document, parse_citations

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleInput:
    """What the sampler needs of a question (the data loader's records convert to this)."""

    id: str
    question: str
    docs: tuple[Document, ...]
    gold: dict  # ALCE gold fields copied to the output rows


@dataclass
class SamplingSummary:
    rows_written: int
    rows_skipped: int  # already present (resume)
    chunks: int
    truncated_docs: int
    share_with_citation: float  # samples with at least one valid citation, over this run's rows


def derive_seed(seed: int, key: str) -> int:
    """A 31-bit seed from the stage seed and a stable key (an id), independent of ordering."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:4], "little") & 0x7FFFFFFF


def _read_done(path: Path) -> list[dict]:
    """Rows already written; a torn trailing line (killed mid-write) is cut off the file."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    end = raw.rfind(b"\n") + 1
    if end != len(raw):
        log.warning("%s: dropping a torn last line (%d bytes) left by an interrupted run", path, len(raw) - end)
        with open(path, "r+b") as f:
            f.truncate(end)
    return [json.loads(line) for line in raw[:end].decode("utf-8").split("\n") if line.strip()]


def _valid_citations(text: str, n_docs: int) -> list[int]:
    return [c for c in dict.fromkeys(parse_citations(text)) if 1 <= c <= n_docs]


def run_sampling(items: Sequence[SampleInput], generator: Generator, prompt_cfg: PromptConfig,
                 params: SamplingConfig, out_path: str | os.PathLike, *, chunk_size: int = 8) -> SamplingSummary:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        raise ValueError("sampler input has duplicate ids; ids must be unique and stable")
    chunks = [items[i:i + chunk_size] for i in range(0, len(items), chunk_size)]
    done_rows = _read_done(out_path)
    done = {r["id"] for r in done_rows}
    complete = {i for i, ch in enumerate(chunks) if all(it.id in done for it in ch)}
    keep_ids = {it.id for i in complete for it in chunks[i]}
    if len(keep_ids) != len(done):
        # rows of incomplete chunks (or of ids no longer in the input) are regenerated / dropped
        log.warning("%s: %d row(s) belong to incomplete chunks or unknown ids; rewriting without them",
                    out_path, len(done) - len(keep_ids))
        with atomic_open(out_path) as f:
            for r in done_rows:
                if r["id"] in keep_ids:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
    skipped = len(keep_ids)
    written = truncated = with_cite = n_samples = 0
    todo = [i for i in range(len(chunks)) if i not in complete]
    log.info("sampling %d questions x %d samples (%d already done) into %s", len(items) - skipped, params.n,
             skipped, out_path)
    with open(out_path, "a", encoding="utf-8") as f, tqdm(total=len(items) - skipped, desc="sampling",
                                                          unit="q") as bar:
        for ci in todo:
            chunk = chunks[ci]
            prompts = [build_prompt(prompt_cfg, it.question, it.docs, generator.tokenizer) for it in chunk]
            seeds = [derive_seed(params.seed, it.id) for it in chunk]
            gens = generator.generate([p.text for p in prompts], params, seeds)
            lines = []
            for it, p, g in zip(chunk, prompts, gens, strict=True):
                samples = [{"text": s.text, "citations": _valid_citations(s.text, len(it.docs)),
                            "token_logprob_sum": s.token_logprob_sum, "n_tokens": s.n_tokens,
                            "finish_reason": s.finish_reason} for s in g]
                with_cite += sum(bool(s["citations"]) for s in samples)
                n_samples += len(samples)
                truncated += p.n_truncated_docs
                row = {"id": it.id, "question": it.question,
                       "docs": [{"title": d.title, "text": d.text, **({"distractor": True} if d.distractor else {})}
                                for d in it.docs],
                       "prompt": p.text, "n_truncated_docs": p.n_truncated_docs, "samples": samples, **it.gold}
                lines.append(json.dumps(row, ensure_ascii=False) + "\n")
            with naming_full_disk(out_path):
                f.write("".join(lines))  # one write per chunk
                f.flush()
                os.fsync(f.fileno())
            written += len(chunk)
            bar.update(len(chunk))
    if truncated:
        log.warning("%d document(s) were shortened to fit the model's context (max_model_len=%d)", truncated,
                    prompt_cfg.max_model_len)
    return SamplingSummary(written, skipped, len(todo), truncated, with_cite / n_samples if n_samples else 0.0)


def expand_for_scoring(rows: Sequence[dict]) -> list[dict]:
    """One ALCE-format record per sample (``id`` = ``<row id>#<k>``), ready for the attribution scorer."""
    out = []
    for r in rows:
        base = {k: v for k, v in r.items() if k not in ("samples", "prompt", "n_truncated_docs")}
        for k, s in enumerate(r["samples"]):
            out.append({**base, "id": f"{r['id']}#{k}", "output": s["text"]})
    return out
