"""START's loop, stage by stage, on disk (layout of ../shared/STYLE.md)::

    runs/<experiment>/
      round_0/warmup/            synthetic attributed data + SFT model (policy 0)
      round_0/eval_base/ eval/   the base model and policy 0 on the held-out split
      round_r/sample/ score/ pairs/ train/ eval/     r = 1..R
      round_r/questions.json     the round's training questions (a seeded slice, disjoint across rounds)
      report/                    table and plots across rounds; report.html: dashboard and answer browser
      tb/round_r/                TensorBoard curves of each round's training (round 0: the warm-up SFT)

Each stage writes a manifest and a ``DONE`` marker last, and is skipped when the marker records the same
fingerprint (its settings + the fingerprints of its inputs). Fingerprints chain, so changing anything
upstream re-runs exactly what depends on it; an interrupted stage resumes (sampling by chunk, training
from its last checkpoint). Seeds: one ``seed``; each stage derives its own from it, the round and its name.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from start.io import read_jsonl, write_json, write_jsonl
from start.sampling.sampler import derive_seed, expand_for_scoring
from start.stage import MARKER, StageRun, file_hash, fingerprint, is_done, model_fingerprint

if TYPE_CHECKING:
    from start.config import EvalConfig, JudgeConfig, RunConfig, TrainConfig
    from start.preferences import PreferenceConfig
    from start.sampling.stage import DataConfig
    from start.scoring import NLIConfig

log = logging.getLogger(__name__)
ROUND_STAGES = ("sample", "score", "pairs", "train", "eval")
NEEDS = {"sample": set(), "score": {"sample"}, "pairs": {"sample", "score"}, "train": {"pairs"}, "eval": {"train"}}
BEST_FILE = "best.jsonl"  # each question's best eligible sample (rejection-sampling SFT data)
PASSTHROUGH = "passthrough.json"  # a training stage that trained nothing names the policy it passed on
TB_DIR = "tb"  # the run's TensorBoard event files, one folder per round
OUTPUTS = {"sample": "samples.jsonl", "score": "scores.jsonl", "pairs": "pairs.jsonl", "train": "model",
           "eval": "metrics.json"}


def tb_folder(run_dir: Path, r: int) -> Path:
    """Where round ``r``'s training curves go when ``report_to`` names TensorBoard (round 0: the warm-up SFT):
    ``tensorboard --logdir runs/<experiment>/tb`` shows every round side by side."""
    return run_dir / TB_DIR / f"round_{r}"


def _stage_fp(folder: Path) -> str:
    return json.loads((folder / MARKER).read_text())["fingerprint"]


def _train_pool(data: DataConfig) -> list[str]:
    """The ids of every training question (``train_split`` of ``train_source`` or ``data.source``)."""
    from start.data import load_source

    return [r.id for r in load_source(data.source, data.split, None)]


def round_questions(pool: Sequence[str], per_round: int | None, rounds: int, seed: int) -> list[dict]:
    """Each round's training questions: a seeded shuffle of the pool cut into consecutive slices of
    ``per_round`` (null: the whole pool), so rounds see disjoint questions while the pool lasts; after that
    the slices wrap around the shuffled pool. Per round: ``round``, ``ids``, ``pool`` (its size), ``offset``
    (where the slice starts in the shuffled pool) and ``reused`` (ids an earlier round already had)."""
    if not pool:
        raise ValueError("the training split has no questions")
    if len(set(pool)) != len(pool):
        raise ValueError("training question ids must be unique")
    n = len(pool) if per_round is None else int(per_round)
    if n < 1:
        raise ValueError(f"train_questions must be >= 1 or null, got {per_round}")
    order = list(pool)
    random.Random(seed).shuffle(order)
    n = min(n, len(order))
    seen: set[str] = set()
    out = []
    for r in range(1, rounds + 1):
        offset = (r - 1) * n % len(order)
        ids = [order[(offset + k) % len(order)] for k in range(n)]
        out.append({"round": r, "ids": ids, "pool": len(order), "offset": offset,
                    "reused": sum(i in seen for i in ids)})
        seen.update(ids)
    return out


# ------------------------------------------------------------------------------------------- stages


def score_stage(samples: Path, judge: JudgeConfig, out: Path, *, scorer=None, labels: str = "gold_answers",
                consensus_share: float = 0.5) -> Path:
    """Score every sample (one ALCE record per sample) -> ``scores.jsonl`` + ``metrics.json``.

    ``labels`` says where comprehensiveness comes from: ``gold_answers`` (the data set's gold fields, as
    the evaluation uses them) or ``consensus`` (label-free, for the rounds: the gold fields are removed
    before scoring and comprehensiveness is the share of the question's consensus claims -- entailed by at
    least ``consensus_share`` of the other samples -- an answer covers, ``start.scoring.consensus``; the
    claims go to ``consensus.jsonl``). ``scorer`` (else one built from ``judge``) does the scoring.
    """
    from start.sampling.stage import GOLD_FIELDS
    from start.scoring import aggregate, consensus_comprehensiveness

    if labels not in ("gold_answers", "consensus"):
        raise ValueError(f"labels must be 'gold_answers' or 'consensus', got {labels!r}")
    share = float(consensus_share) if labels == "consensus" else None
    label_settings = {"labels": labels, "consensus_share": share} if labels == "consensus" else {}
    settings = {"scorer": asdict(judge)} | label_settings
    scorer = scorer or judge.scorer()
    fp = fingerprint({**judge_fingerprint(judge, scorer), "samples": file_hash(samples), **label_settings})
    if is_done(out, fp):
        log.info("scores already complete in %s; skipping", out)
        return out / "scores.jsonl"
    run = StageRun(out, fp, config=settings, seed=0, inputs={"samples": file_hash(samples),
                                                             "nli": scorer.nli.fingerprint})
    records = expand_for_scoring(read_jsonl(samples))
    extra = {"comprehensiveness": labels}
    if labels == "consensus":  # no gold answers, and no data-set marks of which documents are distractors:
        # robustness is then the share of sentences some document supports
        records = [{**{k: v for k, v in r.items() if k not in GOLD_FIELDS},
                    "docs": [{k: v for k, v in d.items() if k != "distractor"} for d in r["docs"]]} for r in records]
    report = scorer.score(records)
    if labels == "consensus":
        cons = consensus_comprehensiveness(scorer, records, min_share=share)
        for r in report.records:
            r.comprehensiveness, r.comprehensiveness_source = cons.comprehensiveness[r.id], "consensus"
        report.metrics = aggregate(report.records)
        write_jsonl(out / "consensus.jsonl", ({"id": q, "claims": c} for q, c in cons.claims.items()))
        extra["consensus"] = cons.stats
        log.info("consensus claims: %d of %d candidates (%d questions without any)", cons.stats["consensus_claims"],
                 cons.stats["candidate_claims"], cons.stats["questions_without_consensus"])
    write_jsonl(out / "scores.jsonl", (r.to_dict() for r in report.records))
    write_json(out / "metrics.json", report.metrics)
    run.finish(counts={"samples": len(records), **{k: report.stats[k] for k in ("unique_pairs", "cache_hits")}},
               extra={"metrics": report.metrics, **extra})
    return out / "scores.jsonl"


def judge_fingerprint(judge: JudgeConfig, scorer) -> dict:
    """What decides a scorer's verdicts: its rules and its NLI judge (weights, settings, threshold)."""
    from start.scoring.nli import nli_fingerprint

    return {"rules": judge.rules_fingerprint(), "nli": nli_fingerprint(scorer.nli)}


def pairs_stage(samples: Path, scores: Path, pc: PreferenceConfig, out: Path, *, first_line_only: bool,
                max_new_tokens: int, citation_format: str = "alce") -> Path:
    """Fine-grained preference pairs -> ``pairs.jsonl`` (a ``datasets`` JSON file) + ``stats.json``.

    Each sample's text is cut as the scorer read it (``first_line_only``, ``citation_format``: ``scorer.rules``),
    so the pairs train exactly the scored text (renumbered for a shared document order when the samples saw
    several); samples that hit ``max_new_tokens`` (the sampler's) are never chosen. The stats record how often
    the chosen and the rejected sides cite each position.
    """
    from start.preferences import best_samples, build_pairs, question_samples
    from start.scoring import RecordScore

    inputs = {"samples": file_hash(samples), "scores": file_hash(scores)}
    fp = fingerprint({"preference": asdict(pc), "first_line_only": first_line_only, "max_new_tokens": max_new_tokens,
                      **({"citation_format": citation_format} if citation_format != "alce" else {}), **inputs})
    if is_done(out, fp):
        log.info("pairs already complete in %s; skipping", out)
        return out / "pairs.jsonl"
    run = StageRun(out, fp, config=asdict(pc), seed=0, inputs=inputs)
    by_id = {d["id"]: RecordScore.from_dict(d) for d in read_jsonl(scores)}
    questions = question_samples(read_jsonl(samples), by_id, first_line_only=first_line_only,
                                 max_new_tokens=max_new_tokens, citation_format=citation_format)
    pairs, stats = build_pairs(questions, pc)
    sources = Counter(str(s.comprehensiveness_source) for s in by_id.values())
    stats["comprehensiveness"] = {"setting": pc.comprehensiveness, "sources": dict(sources)}
    write_jsonl(out / "pairs.jsonl", (p.to_row() for p in pairs))
    write_jsonl(out / BEST_FILE, best_samples(questions, pc))
    write_json(out / "stats.json", stats)
    log.info("preference pairs: %d (%d distinct x up to %d document orders) from %d questions (%s); dropped: %s; "
             "cited positions chosen %s / rejected %s", stats["pairs"], stats["distinct_pairs"], stats["permutations"],
             stats["questions"], stats["by_signal"], stats["questions_dropped"], stats["cited_positions"]["chosen"],
             stats["cited_positions"]["rejected"])
    run.finish(counts={"pairs": len(pairs), "questions": stats["questions"]}, extra={"stats": stats})
    return out / "pairs.jsonl"


def train_stage(policy: str, pairs: Path, cfg: TrainConfig, out: Path, seed: int, *, tb_dir: Path | None = None
                ) -> Path:
    """DPO from ``policy`` with ``policy`` as reference -> ``model/``; returns the new policy.

    With ``cfg.rs_sft.enabled``, the policy is first fine-tuned (``cfg.rs_sft.settings``: the SFT settings
    updated by ``trainer.rs_sft.settings``) on each question's best sample whose reward is >= ``min_reward``
    (``best.jsonl`` next to the pairs), and DPO starts from that model and uses it as the reference;
    ``rs_sft.only`` stops there (no DPO: the rejection-sampling ablation). A round without preference pairs
    trains no DPO either: the policy passes through unchanged (``passthrough.json`` names it). TensorBoard
    curves (``trainer.report_to``) go to ``tb_dir`` (the SFT's to ``tb_dir/rs_sft``), else ``out/tb``.
    """
    from start.models import resolve_model
    from start.train.launch import run_dpo

    policy = resolve_model(policy)
    rs = cfg.rs_sft
    inputs = {"pairs": file_hash(pairs), "policy": model_fingerprint(policy)}  # the weights, not the path
    if rs.enabled:
        inputs["best"] = file_hash(pairs.parent / BEST_FILE)
    # the launch settings say how it runs, not what it computes: not fingerprinted
    fp = fingerprint({"dpo": asdict(cfg.dpo), "rs_sft": asdict(rs), "seed": seed, **inputs})
    if is_done(out, fp):
        log.info("training already complete in %s; skipping", out)
        return trained_policy(out)
    run = StageRun(out, fp, config=asdict(cfg), seed=seed, inputs=inputs)
    n_pairs = len(read_jsonl(pairs))
    start_from, extra = policy, {}
    if rs.enabled:
        start_from, extra["rs_sft"] = _rejection_sampling_sft(policy, pairs.parent / BEST_FILE, cfg, out, seed,
                                                              tb_dir=tb_dir / "rs_sft" if tb_dir else None)
    if not n_pairs or rs.enabled and rs.only:
        why = "trainer.rs_sft.only" if n_pairs else "no preference pairs"
        log.warning("round without DPO (%s): the policy is %s", why, start_from)
        write_json(out / PASSTHROUGH, {"policy": start_from, "why": why})
        run.finish(counts={"pairs": n_pairs}, extra={"dpo": f"skipped: {why}", **extra})
        return Path(start_from)
    model = run_dpo(start_from, pairs, replace(cfg.dpo, seed=seed), out, launch=cfg.launch, log_dir=tb_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    run.finish(counts={"pairs": metrics["pairs"]}, extra={"train": metrics["train"], **extra})
    return model


def trained_policy(folder: Path) -> Path:
    """The policy a finished training stage left: its ``model/``, or the one it passed through."""
    passed = folder / PASSTHROUGH
    return Path(json.loads(passed.read_text())["policy"]) if passed.is_file() else folder / "model"


def _rejection_sampling_sft(policy: str, best: Path, cfg: TrainConfig, out: Path, seed: int, *,
                            tb_dir: Path | None = None) -> tuple[str, dict]:
    """SFT of ``policy`` on the best samples with reward >= ``rs_sft.min_reward``; the new model and a summary."""
    from start.train.launch import run_sft

    rs = cfg.rs_sft
    rows = [r for r in read_jsonl(best) if r["reward"] >= rs.min_reward]
    if not rows:
        log.warning("rejection-sampling SFT: no sample reaches reward %s; DPO starts from the policy", rs.min_reward)
        return policy, {"rows": 0}
    log.info("rejection-sampling SFT on %d best samples before DPO", len(rows))
    model = run_sft(rows, policy, rs.settings, out / "rs_sft", seed=seed, launch=cfg.sft_launch, log_dir=tb_dir)
    return str(model), {"rows": len(rows), "model": str(model)}


@contextmanager
def _using(scorer, judge: JudgeConfig | None, needed: object = True):
    """The given scorer, or one built from ``judge`` and closed afterwards (None when not ``needed``)."""
    if scorer is not None or not needed or judge is None:
        yield scorer
        return
    own = judge.scorer()
    try:
        yield own
    finally:
        own.close()


def eval_stage(policy: str, ev: EvalConfig, out: Path, seed: int, upstream: str, *, scorer=None,
               eval_scorer=None) -> Path:
    """Sample the held-out questions (``ev.sample``), score, bootstrap, attribution margin (the answers
    re-cited with each constant position, :mod:`start.shortcuts`) -> ``metrics.json``. With an evaluation
    judge (``scorer.eval_nli``) the samples are scored by that judge too (``score_eval/``) and its citation
    metrics and attribution margin are stored beside the reward judge's (``eval_judge``): a policy fitted to the
    reward judge's mistakes shows up as a gap between the two."""
    from start.sampling.stage import sample_stage

    samples = sample_stage(ev.sample, ev.data, model=policy, out_dir=out / "sample", seed=seed,
                           inputs={"policy": upstream})
    scores = score_stage(samples, ev.judge, out / "score", scorer=scorer)
    judged = (None if ev.eval_judge is None
              else score_stage(samples, ev.eval_judge, out / "score_eval", scorer=eval_scorer))
    with _using(scorer, ev.judge) as sc, _using(eval_scorer if judged else None, ev.eval_judge, judged) as jsc:
        return _eval_statistics(policy, ev, out, seed, samples, scores, sc, judged, jsc)


def _eval_statistics(policy: str, ev: EvalConfig, out: Path, seed: int, samples: Path, scores: Path, sc,
                     judged: Path | None, jsc) -> Path:
    """The evaluation's own step: bootstrap intervals, the attribution margin (re-scored by ``sc``, and by the
    evaluation judge ``jsc``), what the answers do (start.shortcuts.answer_habits, source_aggregation) and the
    evaluation judge's citation metrics. The margin's per-question columns go to ``margin_columns.json`` so
    paired margin changes between rounds need no re-scoring."""
    from start.evaluate import MARGIN_FILE
    from start.scoring import RecordScore
    from start.shortcuts import MarginColumns, answer_habits, attribution_margin, constant_columns, source_aggregation
    from start.stats import bootstrap, per_question

    inputs = {"scores": file_hash(scores)} | ({"eval_judge_scores": file_hash(judged)} if judged else {})
    fp = fingerprint({**inputs, "n_boot": ev.n_boot, "seed": seed, "judge": judge_fingerprint(ev.judge, sc),
                      **({"eval_judge": judge_fingerprint(ev.eval_judge, jsc)} if judged else {}), "margin": 2})
    if is_done(out, fp):
        return out / "metrics.json"
    run = StageRun(out, fp, config={"n_boot": ev.n_boot, "sampler": asdict(ev.sample.params)}, seed=seed,
                   inputs=inputs)
    answers = expand_for_scoring(read_jsonl(samples))
    qids = list(dict.fromkeys(r["id"].rsplit("#", 1)[0] for r in answers))
    columns, result_judges = {}, {}
    for name, path, scorer in (("reward", scores, sc), ("eval", judged, jsc)):
        if path is None:
            continue
        rows = read_jsonl(path)
        records = [RecordScore.from_dict(d) for d in rows]
        cols = per_question(records, lambda i: i.rsplit("#", 1)[0])
        metrics = bootstrap(cols if name == "reward" else {k: v for k, v in cols.items() if k.startswith("citation_")
                                                           or k == "nonexistent_citation_rate"},
                            n_boot=ev.n_boot, seed=seed)
        constant = constant_columns(answers, scorer)
        margin = attribution_margin(answers, cols, scorer, n_boot=ev.n_boot, seed=seed, constant=constant)
        metrics["attribution_margin"] = {k: margin[k] for k in ("value", "low", "high")}
        columns[name] = MarginColumns(qids, {k: cols[k] for k in ("citation_rec", "citation_prec")}, constant).to_dict()
        result_judges[name] = {"metrics": metrics, "records": records,
                               "constant_citation": {k: margin[k] for k in ("best_constant", "constant_f1")},
                               "habits": answer_habits(answers, rows), "aggregation": source_aggregation(answers, rows)}
    reward = result_judges["reward"]
    records = reward.pop("records")
    empty = sum(r.n_sentences == 0 for r in records)  # they count 0 in the citation metrics
    result = {"policy": policy, "questions": len(qids), "samples": len(records), "empty_answers": empty,
              "metrics": reward["metrics"], "constant_citation": reward["constant_citation"],
              "habits": reward["habits"], "aggregation": reward["aggregation"]}
    if "eval" in result_judges:
        judge = result_judges["eval"]
        judge.pop("records")
        result["eval_judge"] = {"nli": ev.eval_judge.nli.model, **judge}
    write_json(out / MARGIN_FILE, columns)
    write_json(out / "metrics.json", result)
    run.finish(counts={"questions": len(qids), "samples": len(records), "empty_answers": empty})
    return out / "metrics.json"


def baselines_stage(ev: EvalConfig, out: Path, *, scorer=None) -> Path:
    """The constant baselines (cite a fixed position, cite all, copy first sentences) on the held-out
    prompts, scored once per run -> ``metrics.json`` (the report's "best constant baseline" row)."""
    from start.data import qa_record_to_dict
    from start.sampling.stage import load_questions
    from start.shortcuts import best_baseline, constant_baselines

    rows = [qa_record_to_dict(r) for r in load_questions(ev.data)]
    with _using(scorer, ev.judge) as sc:
        fp = fingerprint({"rows": rows, "judge": judge_fingerprint(ev.judge, sc), "n_boot": ev.n_boot})
        if is_done(out, fp):
            return out / "metrics.json"
        run = StageRun(out, fp, config={"n_boot": ev.n_boot}, seed=0, inputs={"questions": fingerprint(rows)})
        baselines = constant_baselines(rows, sc, n_boot=ev.n_boot)
    best = best_baseline(baselines)
    write_json(out / "metrics.json", {"questions": len(rows), "best": best, "baselines": baselines})
    run.finish(counts={"questions": len(rows), "baselines": len(baselines)}, extra={"best": best})
    return out / "metrics.json"


# ------------------------------------------------------------------------------------------- the loop


def _same_judge(a: NLIConfig, b: NLIConfig) -> bool:
    """Two NLI configs that load the same judge (batch size, progress bars and replicas aside)."""
    def loads(c: NLIConfig) -> dict:
        return {k: v for k, v in asdict(c).items() if k not in ("batch_size", "progress", "devices")}

    return loads(a) == loads(b)


def _policy_0(cfg: RunConfig, scorer=None) -> tuple[str, str]:
    """Policy 0 and its fingerprint: the warm-up SFT model, or the base model when warm-up is off.

    The warm-up borrows the scorer's NLI model when both name the same judge: one copy in memory, not two.
    """
    if not cfg.warmup.enabled:
        return cfg.model, fingerprint({"base": cfg.model})
    from start.warmup.stage import warmup_stage

    folder = cfg.run_dir / "round_0" / "warmup"
    shared = scorer is not None and _same_judge(cfg.warmup.nli, cfg.scorer.nli)
    model = warmup_stage(cfg.warmup, folder, nli=scorer.nli if shared else None, tb_dir=tb_folder(cfg.run_dir, 0))
    return str(model), _stage_fp(folder)


def _existing(folder: Path, output: str, r: int, stage: str) -> Path:
    """The output of a stage outside the selection: it must be complete already."""
    if not (folder / MARKER).exists():
        raise RuntimeError(f"{folder} is not complete; run it first (round={r} stage={stage}, or no selection)")
    return folder / output


def run(cfg: RunConfig | dict[str, Any]) -> Path:
    """Warm-up and ``cfg.rounds`` rounds, or only ``round`` and/or ``stage``; returns the report folder.

    ``cfg`` is the typed configuration (:func:`start.config.check_run_config`), or the resolved dict, which
    is then built and checked here, before anything is written (a bad setting: start.config.ConfigError).
    Stages outside the selection are not run; the ones a selected stage needs must be complete.
    """
    from start.config import check_run_config
    from start.lock import run_lock

    if isinstance(cfg, dict):
        cfg = check_run_config(cfg)
    with run_lock(cfg.run_dir):  # one run per folder (start.lock); python -m start.run holds it already
        if cfg.stage == "verify":
            for c in verify(cfg):
                if c.status == "changed":
                    log.warning("%s: changed since it finished (%s); it runs again on the next run", c.stage,
                                ", ".join(c.changed))
            return cfg.run_dir / "report"
        return _run_locked(cfg)


def verify(cfg: RunConfig) -> list:
    """``stage=verify``: every finished stage (of ``cfg.round``, else all) re-hashed against its manifest; a
    stage whose files changed loses its marker and runs again on the next run (start.stage.verify_run)."""
    from start.lock import run_lock
    from start.stage import verify_run

    with run_lock(cfg.run_dir):
        return verify_run(cfg.run_dir, cfg.round)


def _run_locked(cfg: RunConfig) -> Path:
    from start.config import config_problems

    run_dir = cfg.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", cfg.raw)
    for problem in config_problems(cfg):
        log.warning("config: %s", problem)
    only_round, only_stage = cfg.round, cfg.stage
    seed, base = cfg.seed, cfg.model
    eval_seed = derive_seed(seed, "eval")  # the same held-out samples' randomness in every round

    def active(r: int, stage: str) -> bool:
        return (only_round is None or only_round == r) and (only_stage is None or only_stage == stage)

    scorer = cfg.scorer.scorer()
    judge = None if cfg.eval.eval_judge is None else cfg.eval.eval_judge.scorer()
    try:
        r0 = run_dir / "round_0"
        if active(0, "eval"):
            baselines_stage(cfg.eval, r0 / "baselines", scorer=scorer)
        if cfg.eval.base and active(0, "eval"):
            eval_stage(base, cfg.eval, r0 / "eval_base", eval_seed, fingerprint({"base": base}), scorer=scorer,
                       eval_scorer=judge)
        if not cfg.warmup.enabled:
            policy, policy_fp = base, fingerprint({"base": base})
        elif active(0, "warmup"):
            policy, policy_fp = _policy_0(cfg, scorer)
        elif only_round != 0 or only_stage == "eval":
            policy, policy_fp = str(_existing(r0 / "warmup", "model", 0, "warmup")), _stage_fp(r0 / "warmup")
        if active(0, "eval"):
            eval_stage(policy, cfg.eval, r0 / "eval", eval_seed, policy_fp, scorer=scorer, eval_scorer=judge)
        last = cfg.rounds if only_round is None else only_round
        slices = None  # each round's training questions, computed when a round samples
        for r in range(1, last + 1):
            rd = run_dir / f"round_{r}"
            runs = {st for st in ROUND_STAGES if active(r, st)}
            loads = set().union(*(NEEDS[st] for st in runs)) - runs
            if r < last and "train" not in runs:
                loads.add("train")  # later rounds start from this round's policy
            out: dict[str, Path] = {}
            for st in ROUND_STAGES:
                if st in loads:
                    out[st] = _existing(rd / st, OUTPUTS[st], r, st)
                    if st == "train":
                        out[st] = trained_policy(rd / st)
                elif st == "sample" and st in runs:
                    from start.sampling.stage import sample_stage

                    if slices is None:
                        slices = round_questions(_train_pool(cfg.train_data), cfg.train_data.limit, cfg.rounds,
                                                 derive_seed(seed, "train-questions"))
                    write_json(rd / "questions.json", slices[r - 1])
                    if slices[r - 1]["reused"]:
                        log.warning("round %d: the training pool (%d questions) is used up; %d of its %d questions "
                                    "were sampled in an earlier round", r, slices[r - 1]["pool"],
                                    slices[r - 1]["reused"], len(slices[r - 1]["ids"]))
                    out[st] = sample_stage(cfg.sample, cfg.train_data.only(slices[r - 1]["ids"]), model=policy,
                                           out_dir=rd / "sample", seed=derive_seed(seed, f"sample{r}"),
                                           inputs={"policy": policy_fp})
                elif st == "score" and st in runs:
                    out[st] = score_stage(out["sample"], cfg.scorer, rd / "score", scorer=scorer,
                                          labels=cfg.preference.comprehensiveness,
                                          consensus_share=cfg.preference.consensus_share)
                elif st == "pairs" and st in runs:
                    out[st] = pairs_stage(out["sample"], out["score"], cfg.preference, rd / "pairs",
                                          first_line_only=cfg.scorer.rules.first_line_only,
                                          max_new_tokens=cfg.sample.params.max_new_tokens,
                                          citation_format=cfg.scorer.rules.citation_format)
                elif st == "train" and st in runs:
                    out[st] = train_stage(policy, out["pairs"], cfg.trainer, rd / "train",
                                          derive_seed(seed, f"train{r}"), tb_dir=tb_folder(run_dir, r))
                elif st == "eval" and st in runs:
                    eval_stage(str(out["train"]), cfg.eval, rd / "eval", eval_seed, _stage_fp(rd / "train"),
                               scorer=scorer, eval_scorer=judge)
                if st == "train" and "train" in out:
                    policy, policy_fp = str(out["train"]), _stage_fp(rd / "train")
    finally:
        scorer.close()
        if judge is not None:
            judge.close()
    from start.evaluate import write_report

    return write_report(run_dir, title=f"START: {cfg.experiment_name}", n_boot=cfg.eval.n_boot, seed=eval_seed)
