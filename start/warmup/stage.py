"""The warm-up stage: the policy model writes its own attributed training data, then learns from it (SFT).

Layout of the stage folder (``runs/<exp>/round_0/warmup/``)::

    steps/1_answer.jsonl ... 6_verify.jsonl   each step's surviving items (+ <step>.json: fingerprint, stats)
    data/warmup.jsonl                         SFT rows: prompt, completion, question, docs, answer, ...
    stats.json                                per-step counts of what was dropped and why
    checkpoints/  metrics.json  model/        SFT (start.train.sft)
    manifest.json  DONE

A step whose file and fingerprint (its settings chained with the previous step's) are present is not run
again, so an interrupted stage resumes at the first unfinished step; SFT resumes from its last checkpoint.
"""

from __future__ import annotations

import gc
import json
import logging
import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from start.data import load_source
from start.data.records import QARecord
from start.io import read_jsonl, write_json, write_jsonl
from start.models import resolve_model
from start.sampling.backends import Generator, make_generator
from start.sampling.prompt import PromptConfig, build_prompt
from start.sampling.sampler import derive_seed, document_orders
from start.scoring import AttributionScorer, NLIBackend, ScorerConfig, load_nli
from start.scoring.nli import nli_fingerprint
from start.scoring.nli import resolve_model as resolve_nli_model
from start.stage import StageRun, fingerprint, is_done, model_fingerprint
from start.text import renumber_citations
from start.train.launch import run_sft
from start.warmup.config import WarmupConfig, WarmupStageConfig
from start.warmup.relabel import MemoNLI, check_documents, relabel, verify
from start.warmup.steps import (
    StepStats,
    WarmupItem,
    decompose_claims,
    generate_answers,
    generate_documents,
    group_claims,
)

log = logging.getLogger(__name__)
DATA_FILE = Path("data") / "warmup.jsonl"


def load_training_questions(source: str, split: str | None, limit: int | None) -> list[QARecord]:
    """Questions of ``split`` from ``source`` (their documents are not used: the model writes its own)."""
    return load_source(source, split, limit)


def _read_items(path: Path) -> list[WarmupItem]:
    return [WarmupItem.from_dict(row) for row in read_jsonl(path)]


class _StepRunner:
    """Runs steps in order, each skipped when its output exists for the same chained fingerprint."""

    def __init__(self, folder: Path, root_fp: str):
        self.folder, self.fp = folder, root_fp
        self.stats: list[dict[str, Any]] = []

    def run(self, name: str, settings: Any, fn: Callable[[list[WarmupItem]], tuple[list[WarmupItem], StepStats]],
            items: list[WarmupItem]) -> list[WarmupItem]:
        fp = fingerprint({"previous": self.fp, "settings": settings})
        path, meta_path = self.folder / f"{name}.jsonl", self.folder / f"{name}.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        if meta.get("fingerprint") == fp and path.is_file():
            out, stats = _read_items(path), meta["stats"]
            log.info("warm-up step %s: already done (%d items), skipping", name, len(out))
        else:
            out, st = fn(items)
            stats = st.to_dict()
            write_jsonl(path, (it.to_dict() for it in out))
            write_json(meta_path, {"fingerprint": fp, "stats": stats})  # written last: marks the step complete
            log.info("warm-up step %s: %d in, %d out; dropped %s; %s", name, stats["in"], stats["out"],
                     stats["dropped"] or "nothing", stats["counts"])
        self.fp = fp
        self.stats.append(stats)
        return out


def sft_row(item: WarmupItem, prompt_cfg: PromptConfig, tokenizer,
            order: Sequence[int] | None = None) -> dict[str, Any]:
    """One training row: the sampler's prompt over the generated documents -> the cited answer; with ``order``
    (indices into the item's documents) the documents are shown in that order and the citations renumbered."""
    wdocs = list(item.docs) if order is None else [item.docs[i] for i in order]
    answer = item.cited_answer
    if order is not None:
        answer = renumber_citations(answer, {i + 1: k + 1 for k, i in enumerate(order)})
    built = build_prompt(prompt_cfg, item.question, [d.to_document() for d in wdocs], tokenizer)
    return {"id": item.id, "prompt": built.text, "completion": answer, "question": item.question,
            "docs": [{"title": d.title, "text": d.text, "distractor": d.distractor} for d in wdocs],
            "answer": answer, "distractor_positions": [k for k, d in enumerate(wdocs) if d.distractor],
            "uncited_answer": item.answer, "claims": list(item.claims),
            "dropped_sentences": list(item.dropped_sentences), "n_truncated_docs": built.n_truncated_docs,
            **({"order": list(order)} if order is not None else {})}


def sft_rows(items: Sequence[WarmupItem], prompt_cfg: PromptConfig, tokenizer, doc_orders: int,
             seed: int) -> list[dict[str, Any]]:
    """Every example once, or under ``doc_orders`` orders of its documents (the rotations of a seeded
    permutation: each document at each position once), so the SFT data carry no position habit."""
    if doc_orders <= 1:
        return [sft_row(it, prompt_cfg, tokenizer) for it in items]
    return [sft_row(it, prompt_cfg, tokenizer, order) for it in items
            for order in dict.fromkeys(document_orders(it.id, len(it.docs), min(doc_orders, len(it.docs)), seed))]


def _generation_steps(steps: _StepRunner, items: list[WarmupItem], warm: WarmupConfig,
                      get_lm: Callable[[], Generator], seed: int) -> list[WarmupItem]:
    """Steps 1-4, the ones that ask the policy model for text."""
    p = warm.prompts
    items = steps.run("1_answer", [asdict(warm.answer), p.answer],
                      lambda xs: generate_answers(xs, get_lm(), p, warm.answer, seed), items)
    items = steps.run("2_claims", [asdict(warm.claims), p.claims],
                      lambda xs: decompose_claims(xs, get_lm(), p, warm.claims, seed), items)
    items = steps.run("3_grouping", asdict(warm.grouping), lambda xs: group_claims(xs, warm.grouping, seed), items)
    return steps.run("4_documents", [asdict(warm.documents), p.document],
                     lambda xs: generate_documents(xs, get_lm(), p, warm.documents, seed), items)


def _generation_child(cfg: WarmupStageConfig, out: str, steps_fp: str) -> None:
    """The generation steps in a child process (the parent's stage fingerprint chains them: ``steps_fp``)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    questions = load_training_questions(cfg.source, cfg.split, cfg.settings.limit)
    lm: list[Generator] = []

    def get_lm() -> Generator:
        if not lm:
            lm.append(make_generator(resolve_model(cfg.model), cfg.backend, seed=cfg.seed))
        return lm[0]

    _generation_steps(_StepRunner(Path(out) / "steps", steps_fp), [WarmupItem(q.id, q.question) for q in questions],
                      cfg.settings, get_lm, cfg.seed)


def warmup_stage(cfg: WarmupStageConfig, out_dir: str | Path, *, generator: Generator | None = None,
                 nli: NLIBackend | None = None, isolate: bool = True, tb_dir: str | Path | None = None) -> Path:
    """Run (or skip, or resume) the warm-up; return the SFT model folder.

    ``cfg`` is the warm-up's typed section (``start.config.build_run_config(raw).warmup``, or
    ``start.config.build_warmup_config`` for ``python -m start.warmup_cli``). ``generator`` / ``nli`` replace the
    models built from it (tests pass stubs); ``cfg.model`` is still the SFT base.
    With the vLLM backend the generation steps run in a child process (``isolate``), so that the engine's
    memory is free again before the NLI checks and SFT. The SFT's TensorBoard curves (``sft.report_to``) go to
    ``tb_dir``, else ``<out_dir>/tb``.
    """
    out = Path(out_dir)
    seed, warm, sft, prompt_cfg, backend = cfg.seed, cfg.settings, cfg.sft, cfg.prompt, cfg.backend
    model_spec, source, split = cfg.model, cfg.source, cfg.split
    questions = load_training_questions(source, split, warm.limit)
    if not questions:
        raise ValueError(f"no training questions in split {split!r} of {source!r}")
    ids = [(q.id, q.question) for q in questions]
    model_path = resolve_model(model_spec)
    # the weights by content (policy and judge), not by name or path
    judge_fp = (nli_fingerprint(nli) if nli is not None  # a bundled judge's name resolves to its folder
                else model_fingerprint(resolve_nli_model(cfg.nli.model)))
    fp = fingerprint({"model": model_fingerprint(model_path), "warmup": warm.to_dict(), "trainer": asdict(sft),
                      "prompt": asdict(prompt_cfg), "backend": backend.fingerprint_fields(), "seed": seed,
                      "questions": ids, "generator": type(generator).__name__ if generator else None,
                      "nli": judge_fp})
    model_dir = out / "model"
    if is_done(out, fp):
        log.info("warm-up already complete in %s; skipping", out)
        return model_dir
    run = StageRun(out, fp, config=asdict(cfg), seed=seed, inputs={"questions": fingerprint(ids)})
    log.info("warm-up on %d questions of %s (split %s) with %s", len(questions), source, split, model_spec)

    lm: dict[str, Generator] = {"generator": generator} if generator is not None else {}

    def get_lm() -> Generator:
        if "generator" not in lm:
            lm["generator"] = make_generator(model_path, backend, seed=seed)
        return lm["generator"]

    judge: dict[str, MemoNLI] = {}

    def get_nli() -> MemoNLI:
        if "nli" not in judge:
            judge["nli"] = MemoNLI(nli if nli is not None else load_nli(cfg.nli))
        return judge["nli"]

    steps = _StepRunner(out / "steps", fingerprint({"stage": fp}))
    items = [WarmupItem(q.id, q.question) for q in questions]
    if generator is None and backend.name == "vllm" and isolate:
        # vLLM in a child process (as sampling does): the engine's memory -- weights, KV cache, compiled
        # kernels -- goes back to the system when the generation steps end, before NLI and SFT need it
        ctx = multiprocessing.get_context("spawn")
        child = ctx.Process(target=_generation_child, args=(cfg, str(out), steps.fp))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise RuntimeError(f"warm-up generation in a child process failed (exit code {child.exitcode})")
    items = _generation_steps(steps, items, warm, get_lm, seed)  # what the child wrote is read back
    lm.clear()  # the generator is not needed any more: free its memory before NLI and training
    gc.collect()
    items = steps.run("5_check_documents", warm.nli, lambda xs: check_documents(xs, get_nli()), items)
    items = steps.run("6_relabel", asdict(warm.relabel), lambda xs: relabel(xs, get_nli(), warm.relabel), items)
    if warm.verify:
        scorer_cfg = ScorerConfig(cache=False, support_check=False)
        items = steps.run("7_verify", asdict(scorer_cfg),
                          lambda xs: verify(xs, AttributionScorer(get_nli(), scorer_cfg)), items)

    stats = {"questions": len(questions), "examples": len(items), "steps": steps.stats,
             "dropped_by_step": {s["step"]: s["dropped"] for s in steps.stats if s["dropped"]}}
    if judge:
        stats["nli"] = {"backend_calls": judge["nli"].calls, "unique_pairs": judge["nli"].pairs_asked}
    write_json(out / "stats.json", stats)
    log.info("warm-up data: %d of %d questions became training examples; dropped: %s", len(items),
             len(questions), stats["dropped_by_step"] or "none")
    if not items:
        raise RuntimeError(f"the warm-up produced no training example (see {out / 'stats.json'}); "
                           "try more questions, other prompts, or a larger model")

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    rows = sft_rows(items, prompt_cfg, tokenizer, warm.doc_orders, seed)
    write_jsonl(out / DATA_FILE, rows)
    if warm.doc_orders > 1:
        log.info("warm-up SFT data: %d examples under up to %d document orders each: %d rows", len(items),
                 warm.doc_orders, len(rows))
    judge.clear()  # the NLI model is not needed for training
    gc.collect()

    trained = run_sft(out / DATA_FILE, model_path, sft, out, seed=derive_seed(seed, "warmup:sft"), launch=cfg.launch,
                      log_dir=tb_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    run.finish(counts={"questions": len(questions), "examples": len(items),
                       "steps": {s["step"]: s["out"] for s in steps.stats}},
               extra={"model": model_spec, "sft_model": str(trained), "sft_global_step": metrics["global_step"],
                      "sft_final_loss": metrics["loss_curve"][-1]["loss"] if metrics["loss_curve"] else None})
    return trained
