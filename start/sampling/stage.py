"""The sampling stage as the pipeline runs it: config in, ``samples.jsonl`` + manifest + marker out."""

from __future__ import annotations

import logging
import multiprocessing
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from start.data import (
    RetrievalConfig,
    Retriever,
    load_embedded_corpus,
    load_source,
    qa_record_to_dict,
    retrieve_docs,
)
from start.data.records import QARecord, limit_docs, shuffle_docs
from start.io import read_records
from start.models import resolve_model
from start.sampling.backends import BackendConfig, SamplingConfig, make_generator
from start.sampling.prompt import PromptConfig
from start.sampling.sampler import SampleInput, run_sampling
from start.stage import StageRun, announce_finished, announce_started, fingerprint, is_done, model_fingerprint
from start.text import Document

log = logging.getLogger(__name__)
GOLD_FIELDS = ("qa_pairs", "answer", "claims", "answers")


@dataclass(frozen=True)
class DataConfig:
    """Which questions a stage reads and where their documents come from (the ``data`` config group, with the
    run's ``train_*`` / ``eval_*`` choice of source, split and number of questions applied)."""

    source: str  # "embedded", a local ALCE JSON/JSONL file, or a Hugging Face dataset name
    split: str | None = None
    limit: int | None = None  # the first N questions (null: all)
    ids: tuple[str, ...] | None = None  # these questions, in this order (a round's slice); limit is then ignored
    max_docs: int | None = None  # at most N documents per question (gold ones kept when the data names them)
    corpus: str | None = "embedded"  # passages for questions without documents ("embedded", a file, or None)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    shuffle_docs: bool = True  # each question's documents in a seeded random order

    def __post_init__(self):
        if isinstance(self.retrieval, dict):
            object.__setattr__(self, "retrieval", RetrievalConfig(**self.retrieval))
        if self.ids is not None:
            object.__setattr__(self, "ids", tuple(self.ids))

    def only(self, ids) -> DataConfig:
        """These questions of the same source and split, in this order."""
        return replace(self, ids=tuple(ids), limit=None)


@dataclass(frozen=True)
class SampleConfig:
    """How answers are sampled: the engine, the decoding settings, the citation prompt, rows per chunk."""

    backend: BackendConfig
    params: SamplingConfig  # its seed is the stage's (sample_stage sets it)
    prompt: PromptConfig
    chunk_size: int = 8
    # each question's samples drawn under this many orders of its documents (start.sampling.sampler.run_sampling;
    # at most one per sample): with preference.permutations, no document position can explain a preference
    doc_orders: int = 1  # checked at the edge (start.config)


def load_questions(data: DataConfig) -> list[QARecord]:
    """Questions of ``data.split`` from ``data.source``; those without documents get BM25 passages.

    ``data.ids`` (set by the pipeline for a round's slice) keeps those questions, in that order.
    """
    limit, ids = data.limit, data.ids
    records = load_source(data.source, data.split, None if limit is None or ids else int(limit))
    if ids:
        by_id = {r.id: r for r in records}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise ValueError(f"data.ids: {len(missing)} id(s) not in {data.source} split {data.split}: "
                             f"{', '.join(missing[:5])}")
        records = [by_id[i] for i in ids]
    if any(not r.docs for r in records):
        if data.corpus is None:
            raise ValueError(f"{sum(not r.docs for r in records)} question(s) have no documents and data.corpus "
                             "is null; give a corpus to retrieve from")
        if data.corpus == "embedded":
            passages = [p.to_document() for p in load_embedded_corpus()]
        else:
            passages = [Document(str(r.get("title", "")), str(r["text"])) for r in read_records(data.corpus)]
        retriever = Retriever.build(passages, data.retrieval)
        records = retrieve_docs(records, passages, retriever)
    # A seeded random order per question (gold and distractors alike): no position shortcut to the evidence.
    if data.max_docs:
        records = [limit_docs(r, int(data.max_docs), shuffle=data.shuffle_docs) for r in records]
    elif data.shuffle_docs:
        records = [shuffle_docs(r) for r in records]
    return records


def to_sample_input(rec: QARecord) -> SampleInput:
    full = qa_record_to_dict(rec)
    return SampleInput(rec.id, rec.question, rec.docs, {k: full[k] for k in GOLD_FIELDS if k in full})


def _child(section: SampleConfig, data: DataConfig, model: str, out: str, seed: int,
           inputs: dict[str, str] | None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sample_stage(section, data, model=model, out_dir=out, seed=seed, inputs=inputs, isolate=False)


def sample_stage(section: SampleConfig, data: DataConfig, *, model: str, out_dir: str | Path, seed: int,
                 inputs: dict[str, str] | None = None, isolate: bool = True) -> Path:
    """Run (or skip, or resume) sampling ``data``'s questions from ``model`` into ``out_dir``.

    The fingerprint names the model by the content of its folder, so new weights behind the same path
    make the stage run again (and a retrained but identical model does not); ``inputs`` (upstream stages'
    fingerprints) are recorded in the manifest.
    """
    out = Path(out_dir)
    backend, chunk_size, prompt = section.backend, section.chunk_size, section.prompt
    params = replace(section.params, seed=seed)
    records = load_questions(data)
    # the questions with their (retrieved, limited) documents and the weights, by content: another source
    # file, corpus, retrieval or max_docs setting, or a retrained model behind the same path, runs again
    fp = fingerprint({"model": model_fingerprint(resolve_model(model)), "backend": backend.fingerprint_fields(),
                      "params": asdict(params), "prompt": asdict(prompt), "chunk_size": chunk_size,
                      **({"doc_orders": section.doc_orders} if section.doc_orders > 1 else {}),
                      "questions": fingerprint([qa_record_to_dict(r) for r in records])})
    if is_done(out, fp):
        log.info("sampling already complete in %s; skipping", out)
        return out / "samples.jsonl"
    if backend.name == "vllm" and isolate and backend.data_parallel_size == 1:
        # vLLM patches kernels across every loaded module when an engine starts and owns process-wide state;
        # a fresh interpreter per stage keeps it away from what other stages imported and frees its memory.
        announce_started(out)  # the child's own log lines go to the log file only
        ctx = multiprocessing.get_context("spawn")
        child = ctx.Process(target=_child, args=(section, data, model, str(out), seed, inputs))
        child.start()
        child.join()
        if child.exitcode != 0 or not is_done(out, fp, announce=False):
            raise RuntimeError(f"sampling in a child process failed (exit code {child.exitcode}); see the log above")
        announce_finished(out)
        return out / "samples.jsonl"
    run = StageRun(out, fp, config={"model": model, "sample": asdict(section), "data": asdict(data)}, seed=seed,
                   inputs=inputs or {})
    items = [to_sample_input(r) for r in records]
    if backend.data_parallel_size > 1:  # one engine per GPU group, each in a fresh process
        from start.sampling.parallel import run_data_parallel

        summary = run_data_parallel(items, resolve_model(model), backend, prompt, params, out / "samples.jsonl",
                                    chunk_size=chunk_size, seed=seed, doc_orders=section.doc_orders)
    else:
        generator = make_generator(resolve_model(model), backend, seed=seed)
        summary = run_sampling(items, generator, prompt, params, out / "samples.jsonl", chunk_size=chunk_size,
                               doc_orders=section.doc_orders)
    log.info("sampled %d questions (%d resumed); %.1f%% of samples have a valid citation", summary.rows_written,
             summary.rows_skipped, 100 * summary.share_with_citation)
    run.finish(counts={"questions": len(records), "samples_per_question": params.n,
                       "rows_written": summary.rows_written, "rows_resumed": summary.rows_skipped,
                       "truncated_docs": summary.truncated_docs},
               extra={"model": model, "share_with_citation_this_run": summary.share_with_citation})
    return out / "samples.jsonl"
