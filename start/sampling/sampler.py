"""The sampling stage: N cited answers per question, written as resumable JSON Lines.

Rows: ``{id, question, docs, prompt, n_truncated_docs, samples: [{text, citations, token_logprob_sum,
n_tokens, finish_reason}]}`` (``finish_reason``: "stop", or "length" when generation hit ``max_new_tokens``)
plus the record's gold fields (``qa_pairs``, ``answer``, ``claims``, ``answers``) so the scorer can read the
file directly. Sampled under several document orders (``doc_orders``), a row also has ``orders`` and
``prompts`` and each sample its ``order`` (:func:`run_sampling`); :func:`expand_for_scoring` gives each
sample's record its documents in the order it saw. Questions are processed in fixed chunks (in input order); a
chunk's rows are appended with one write and an fsync, and its seed is derived from the stage seed and the
chunk's first id. An interrupted run therefore resumes at the first incomplete chunk and produces the same
rows as an uninterrupted one: a torn last line is cut off, rows of an incomplete chunk are dropped and the
chunk is generated again with the same seed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
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


def document_orders(qid: str, n_docs: int, count: int, seed: int = 0) -> list[tuple[int, ...]]:
    """``count`` orders of a question's ``n_docs`` documents (tuples of indices into its document list): the
    rotations of a seeded permutation, then those of another one (not a rotation of an earlier one while such
    permutations remain), and so on. Each full block of ``n_docs`` rotations is a Latin square -- every
    document at every position exactly once -- so samples spread over a block's orders see each document
    equally often at each position.

    >>> document_orders("q", 3, 4, 0)  # a Latin square (every index at every position once), then a new block
    [(0, 2, 1), (2, 1, 0), (1, 0, 2), (0, 1, 2)]
    """
    out: list[tuple[int, ...]] = []
    rng = random.Random(f"orders/{seed}/{qid}")
    while len(out) < count:
        for _ in range(100):  # a block of new orders while there are any (3 documents have 2 blocks' worth)
            perm = list(range(n_docs))
            rng.shuffle(perm)
            block = [tuple(perm[r:] + perm[:r]) for r in range(n_docs)]
            if not set(block) & set(out):
                break
        out += block[: count - len(out)]
    return out


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


@dataclass(frozen=True)
class _Request:
    """One prompt sent to the generator: a question's documents in one order, and how many samples it draws."""

    item: int  # index in the chunk
    order: int  # index into the question's orders
    docs: tuple[Document, ...]
    count: int
    seed: int


def _requests(chunk: Sequence[SampleInput], n: int, doc_orders: int, seed: int) -> tuple[list[_Request], dict]:
    """The chunk's generator requests and each question's orders (none with one order: today's rows)."""
    requests, orders = [], {}
    for i, it in enumerate(chunk):
        k = min(doc_orders, n) if len(it.docs) > 1 else 1
        if k <= 1:
            requests.append(_Request(i, 0, it.docs, n, derive_seed(seed, it.id)))
            continue
        orders[it.id] = document_orders(it.id, len(it.docs), k, seed)
        for j, order in enumerate(orders[it.id]):  # sample s is drawn under order s % k
            requests.append(_Request(i, j, tuple(it.docs[d] for d in order), len(range(j, n, k)),
                                     derive_seed(seed, f"{it.id}/order{j}")))
    return requests, orders


def run_sampling(items: Sequence[SampleInput], generator: Generator, prompt_cfg: PromptConfig,
                 params: SamplingConfig, out_path: str | os.PathLike, *, chunk_size: int = 8,
                 doc_orders: int = 1) -> SamplingSummary:
    """Sample ``params.n`` answers per question into ``out_path`` (resumable by chunk, module docstring).

    ``doc_orders`` > 1: a question's samples are drawn under that many orders of its documents (at most one per
    sample; :func:`document_orders`), sample ``s`` under order ``s % doc_orders``. The row then also holds
    ``orders`` (each a list of indices into ``docs``) and ``prompts`` (one per order), and each sample its
    ``order``; its citations refer to the documents in that order.
    """
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
            requests, orders = _requests(chunk, params.n, doc_orders, params.seed)
            prompts = [build_prompt(prompt_cfg, chunk[r.item].question, r.docs, generator.tokenizer)
                       for r in requests]
            counts = [r.count for r in requests]
            more = {} if set(counts) == {params.n} else {"counts": counts}  # one order per question: as before
            gens = generator.generate([p.text for p in prompts], params, [r.seed for r in requests], **more)
            drawn: dict[int, list] = {}  # item -> [(order, prompt, generations)]
            for r, p, g in zip(requests, prompts, gens, strict=True):
                drawn.setdefault(r.item, []).append((r.order, p, g))
            lines = []
            for i, it in enumerate(chunk):
                per_order = drawn[i]
                k = len(per_order)
                # sample s of the question is the (s // k)-th draw of order s % k
                samples = [{"text": g.text, "citations": _valid_citations(g.text, len(it.docs)),
                            "token_logprob_sum": g.token_logprob_sum, "n_tokens": g.n_tokens,
                            "finish_reason": g.finish_reason, **({"order": s % k} if it.id in orders else {})}
                           for s in range(params.n) for g in [per_order[s % k][2][s // k]]]
                with_cite += sum(bool(x["citations"]) for x in samples)
                n_samples += len(samples)
                cut = sum(p.n_truncated_docs for _, p, _ in per_order)
                truncated += cut
                row = {"id": it.id, "question": it.question,
                       "docs": [{"title": d.title, "text": d.text, **({"distractor": True} if d.distractor else {})}
                                for d in it.docs],
                       "prompt": per_order[0][1].text, "n_truncated_docs": cut, "samples": samples, **it.gold}
                if it.id in orders:
                    row["orders"] = [list(o) for o in orders[it.id]]
                    row["prompts"] = [p.text for _, p, _ in per_order]
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
        base = {k: v for k, v in r.items() if k not in ("samples", "prompt", "prompts", "orders", "n_truncated_docs")}
        for k, s in enumerate(r["samples"]):
            docs = sample_docs(r, s)
            out.append({**base, **({"docs": docs} if docs is not r["docs"] else {}), "id": f"{r['id']}#{k}",
                        "output": s["text"]})
    return out


def sample_docs(row: dict, sample: dict) -> list[dict]:
    """The documents in the order a sample saw them (its citations' numbering): ``row["docs"]`` itself, or
    reordered by the sample's ``order`` when the question was sampled under several orders."""
    if "order" not in sample or "orders" not in row:
        return row["docs"]
    return [row["docs"][d] for d in row["orders"][sample["order"]]]
