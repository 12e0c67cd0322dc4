"""START's loop, stage by stage, on disk (layout of ../shared/STYLE.md)::

    runs/<experiment>/
      round_0/warmup/            synthetic attributed data + SFT model (policy 0)
      round_0/eval_base/ eval/   the base model and policy 0 on the held-out split
      round_r/sample/ score/ pairs/ train/ eval/     r = 1..R
      report/                    table and plots across rounds

Each stage writes a manifest and a ``DONE`` marker last, and is skipped when the marker records the same
fingerprint (its settings + the fingerprints of its inputs). Fingerprints chain, so changing anything
upstream re-runs exactly what depends on it; an interrupted stage resumes (sampling by chunk, training
from its last checkpoint). Seeds: one ``seed``; each stage derives its own from it, the round and its name.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

from start.io import read_jsonl, write_json, write_jsonl
from start.sampling.sampler import derive_seed, expand_for_scoring
from start.stage import MARKER, StageRun, file_hash, fingerprint, is_done

log = logging.getLogger(__name__)
STAGES = ("warmup", "sample", "score", "pairs", "train", "eval", "report")
ROUND_STAGES = ("sample", "score", "pairs", "train", "eval")
NEEDS = {"sample": set(), "score": {"sample"}, "pairs": {"sample", "score"}, "train": {"pairs"}, "eval": {"train"}}
BEST_FILE = "best.jsonl"  # each question's best eligible sample (rejection-sampling SFT data)
OUTPUTS = {"sample": "samples.jsonl", "score": "scores.jsonl", "pairs": "pairs.jsonl", "train": "model",
           "eval": "metrics.json"}


def _stage_fp(folder: Path) -> str:
    return json.loads((folder / MARKER).read_text())["fingerprint"]


def _with_data(cfg: dict, which: str) -> dict:
    """The config with ``data`` pointing at the training or the held-out questions."""
    c = copy.deepcopy(cfg)
    c["data"]["split"], c["data"]["limit"] = cfg[f"{which}_split"], cfg.get(f"{which}_questions")
    if cfg.get(f"{which}_source"):
        c["data"]["source"] = cfg[f"{which}_source"]
    return c


# ------------------------------------------------------------------------------------------- stages


def score_stage(samples: Path, cfg: dict, out: Path, *, scorer=None) -> Path:
    """Score every sample (one ALCE record per sample) -> ``scores.jsonl`` + ``metrics.json``."""
    from start.scoring import AttributionScorer, NLIConfig, ScorerConfig

    sc = cfg["scorer"]
    fp = fingerprint({"scorer": sc, "samples": file_hash(samples)})
    if is_done(out, fp):
        log.info("scores already complete in %s; skipping", out)
        return out / "scores.jsonl"
    run = StageRun(out, fp, config=sc, seed=0, inputs={"samples": file_hash(samples)})
    scorer = scorer or AttributionScorer(NLIConfig(**sc["nli"]), ScorerConfig(**sc["rules"]))
    records = expand_for_scoring(read_jsonl(samples))
    report = scorer.score(records)
    write_jsonl(out / "scores.jsonl", (r.to_dict() for r in report.records))
    write_json(out / "metrics.json", report.metrics)
    run.finish(counts={"samples": len(records), **{k: report.stats[k] for k in ("unique_pairs", "cache_hits")}},
               extra={"metrics": report.metrics})
    return out / "scores.jsonl"


def pairs_stage(samples: Path, scores: Path, cfg: dict, out: Path) -> Path:
    """Fine-grained preference pairs -> ``pairs.jsonl`` (a ``datasets`` JSON file) + ``stats.json``."""
    from start.preferences import PreferenceConfig, best_samples, build_pairs, question_samples
    from start.scoring import RecordScore

    pc = PreferenceConfig(**cfg["preference"])
    fp = fingerprint({"preference": cfg["preference"], "scores": file_hash(scores)})
    if is_done(out, fp):
        log.info("pairs already complete in %s; skipping", out)
        return out / "pairs.jsonl"
    run = StageRun(out, fp, config=cfg["preference"], seed=0, inputs={"scores": file_hash(scores)})
    by_id = {d["id"]: RecordScore.from_dict(d) for d in read_jsonl(scores)}
    questions = question_samples(read_jsonl(samples), by_id)
    pairs, stats = build_pairs(questions, pc)
    write_jsonl(out / "pairs.jsonl", (p.to_row() for p in pairs))
    write_jsonl(out / BEST_FILE, best_samples(questions, pc))
    write_json(out / "stats.json", stats)
    log.info("preference pairs: %d from %d questions (%s); dropped: %s", stats["pairs"], stats["questions"],
             stats["by_signal"], stats["questions_dropped"])
    run.finish(counts={"pairs": len(pairs), "questions": stats["questions"]}, extra={"stats": stats})
    return out / "pairs.jsonl"


def train_stage(policy: str, pairs: Path, cfg: dict, out: Path, seed: int) -> Path:
    """DPO from ``policy`` with ``policy`` as reference -> ``model/``.

    With ``trainer.rs_sft.enabled``, the policy is first fine-tuned (SFT settings ``sft`` updated by
    ``trainer.rs_sft.settings``) on each question's best sample whose reward is >= ``rs_sft.min_reward``
    (``best.jsonl`` next to the pairs), and DPO starts from that model and uses it as the reference.
    """
    from start.train.dpo import DPOTrainConfig, train_dpo

    trainer = dict(cfg["trainer"])
    rs = trainer.pop("rs_sft", None) or {}
    tc = DPOTrainConfig(**{**trainer, "seed": seed})
    inputs = {"pairs": file_hash(pairs), "policy": policy}
    if rs.get("enabled"):
        inputs["best"] = file_hash(pairs.parent / BEST_FILE)
    fp = fingerprint({"trainer": cfg["trainer"], "seed": seed, **inputs,
                      "sft": cfg["sft"] if rs.get("enabled") else None})
    if is_done(out, fp):
        log.info("training already complete in %s; skipping", out)
        return out / "model"
    run = StageRun(out, fp, config=cfg["trainer"], seed=seed, inputs=inputs)
    if not read_jsonl(pairs):
        raise RuntimeError(f"{pairs}: no preference pairs; lower preference.min_margin or sample more answers")
    start_from, extra = policy, {}
    if rs.get("enabled"):
        start_from, extra["rs_sft"] = _rejection_sampling_sft(policy, pairs.parent / BEST_FILE, cfg, rs, out, seed)
    model = train_dpo(start_from, pairs, tc, out)
    metrics = json.loads((out / "metrics.json").read_text())
    run.finish(counts={"pairs": metrics["pairs"]}, extra={"train": metrics["train"], **extra})
    return model


def _rejection_sampling_sft(policy: str, best: Path, cfg: dict, rs: dict, out: Path, seed: int) -> tuple[str, dict]:
    """SFT of ``policy`` on the best samples with reward >= ``rs.min_reward``; the new model and a summary."""
    from start.train.sft import SFTSettings, train_sft

    rows = [r for r in read_jsonl(best) if r["reward"] >= float(rs.get("min_reward", 0.0))]
    if not rows:
        log.warning("rejection-sampling SFT: no sample reaches reward %s; DPO starts from the policy",
                    rs.get("min_reward"))
        return policy, {"rows": 0}
    settings = SFTSettings(**{**cfg["sft"], **(rs.get("settings") or {})})
    log.info("rejection-sampling SFT on %d best samples before DPO", len(rows))
    model = train_sft(rows, policy, settings, out / "rs_sft", seed=seed)
    return str(model), {"rows": len(rows), "model": str(model)}


def _eval_judge_cfg(cfg: dict) -> dict | None:
    """The config that scores with the evaluation judge (``scorer.eval_nli``), None when it is off."""
    if not cfg["scorer"].get("eval_nli"):
        return None
    c = copy.deepcopy(cfg)
    c["scorer"]["nli"] = c["scorer"].pop("eval_nli")
    return c


def eval_stage(policy: str, cfg: dict, out: Path, seed: int, upstream: str, *, scorer=None,
               eval_scorer=None) -> Path:
    """Sample the held-out split (eval sampler settings), score, bootstrap -> ``metrics.json``. With
    ``scorer.eval_nli`` the samples are scored by that judge too (``score_eval/``) and its citation metrics
    are stored beside the reward judge's (``eval_judge``): a policy fitted to the reward judge's mistakes
    shows up as a gap between the two."""
    from start.evaluate import bootstrap, per_question
    from start.sampling.stage import sample_stage
    from start.scoring import RecordScore

    ecfg = _with_data(cfg, "eval")
    ecfg["sampler"] = {**ecfg["sampler"], **cfg["eval"]["sampler"]}
    samples = sample_stage(ecfg, model=policy, out_dir=out / "sample", seed=seed, inputs={"policy": upstream})
    scores = score_stage(samples, cfg, out / "score", scorer=scorer)
    judge_cfg = _eval_judge_cfg(cfg)
    inputs = {"scores": file_hash(scores)}
    if judge_cfg is not None:
        inputs["eval_judge_scores"] = file_hash(score_stage(samples, judge_cfg, out / "score_eval", scorer=eval_scorer))
    fp = fingerprint({**inputs, "n_boot": cfg["eval"]["n_boot"], "seed": seed})
    if is_done(out, fp):
        return out / "metrics.json"
    run = StageRun(out, fp, config=cfg["eval"], seed=seed, inputs=inputs)
    records = [RecordScore.from_dict(d) for d in read_jsonl(scores)]
    cols = per_question(records, lambda i: i.rsplit("#", 1)[0])
    metrics = bootstrap(cols, n_boot=cfg["eval"]["n_boot"], seed=seed)
    result = {"policy": policy, "questions": len(cols["length"]), "metrics": metrics}
    if judge_cfg is not None:
        judged = [RecordScore.from_dict(d) for d in read_jsonl(out / "score_eval" / "scores.jsonl")]
        jcols = per_question(judged, lambda i: i.rsplit("#", 1)[0])
        jcols = {k: v for k, v in jcols.items() if k.startswith("citation_")}
        result["eval_judge"] = {"nli": judge_cfg["scorer"]["nli"].get("model"),
                                "metrics": bootstrap(jcols, n_boot=cfg["eval"]["n_boot"], seed=seed)}
    write_json(out / "metrics.json", result)
    run.finish(counts={"questions": len(cols["length"]), "samples": len(records)})
    return out / "metrics.json"


# ------------------------------------------------------------------------------------------- the loop


def _policy_0(cfg: dict, run_dir: Path, base: str) -> tuple[str, str]:
    """Policy 0 and its fingerprint: the warm-up SFT model, or the base model when warm-up is off."""
    if not cfg["warmup"].get("enabled", True):
        return base, fingerprint({"base": base})
    from start.warmup.stage import warmup_stage

    folder = run_dir / "round_0" / "warmup"
    model = warmup_stage(cfg, folder)
    return str(model), _stage_fp(folder)


def _existing(folder: Path, output: str, r: int, stage: str) -> Path:
    """The output of a stage outside the selection: it must be complete already."""
    if not (folder / MARKER).exists():
        raise RuntimeError(f"{folder} is not complete; run it first (round={r} stage={stage}, or no selection)")
    return folder / output


def run(cfg: dict[str, Any]) -> Path:
    """Warm-up and ``cfg.rounds`` rounds, or only ``round`` and/or ``stage``; returns the report folder.

    Stages outside the selection are not run; the ones a selected stage needs must be complete.
    """
    run_dir = Path(cfg["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", cfg)
    only_round, only_stage = cfg.get("round"), cfg.get("stage")
    if only_stage is not None and only_stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {only_stage!r}")
    if only_round is not None and not 0 <= int(only_round) <= int(cfg["rounds"]):
        raise ValueError(f"round must be in 0..{cfg['rounds']}, got {only_round}")
    seed, base = int(cfg["seed"]), cfg["model"]["name"]
    eval_seed = derive_seed(seed, "eval")  # the same held-out samples' randomness in every round

    def active(r: int, stage: str) -> bool:
        return (only_round is None or only_round == r) and (only_stage is None or only_stage == stage)

    from start.scoring import AttributionScorer, NLIConfig, ScorerConfig

    scorer = AttributionScorer(NLIConfig(**cfg["scorer"]["nli"]), ScorerConfig(**cfg["scorer"]["rules"]))
    judge_cfg = _eval_judge_cfg(cfg)
    judge = None if judge_cfg is None else AttributionScorer(NLIConfig(**judge_cfg["scorer"]["nli"]),
                                                             ScorerConfig(**cfg["scorer"]["rules"]))
    try:
        r0 = run_dir / "round_0"
        if cfg["eval"].get("base", True) and active(0, "eval"):
            eval_stage(base, cfg, r0 / "eval_base", eval_seed, fingerprint({"base": base}), scorer=scorer,
                       eval_scorer=judge)
        if not cfg["warmup"].get("enabled", True):
            policy, policy_fp = base, fingerprint({"base": base})
        elif active(0, "warmup"):
            policy, policy_fp = _policy_0(cfg, run_dir, base)
        elif only_round != 0 or only_stage == "eval":
            policy, policy_fp = str(_existing(r0 / "warmup", "model", 0, "warmup")), _stage_fp(r0 / "warmup")
        if active(0, "eval"):
            eval_stage(policy, cfg, r0 / "eval", eval_seed, policy_fp, scorer=scorer, eval_scorer=judge)
        last = int(cfg["rounds"]) if only_round is None else int(only_round)
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
                elif st == "sample" and st in runs:
                    from start.sampling.stage import sample_stage

                    out[st] = sample_stage(_with_data(cfg, "train"), model=policy, out_dir=rd / "sample",
                                           seed=derive_seed(seed, f"sample{r}"), inputs={"policy": policy_fp})
                elif st == "score" and st in runs:
                    out[st] = score_stage(out["sample"], cfg, rd / "score", scorer=scorer)
                elif st == "pairs" and st in runs:
                    out[st] = pairs_stage(out["sample"], out["score"], cfg, rd / "pairs")
                elif st == "train" and st in runs:
                    out[st] = train_stage(policy, out["pairs"], cfg, rd / "train", derive_seed(seed, f"train{r}"))
                elif st == "eval" and st in runs:
                    eval_stage(str(out["train"]), cfg, rd / "eval", eval_seed, _stage_fp(rd / "train"),
                               scorer=scorer, eval_scorer=judge)
                if st == "train" and "train" in out:
                    policy, policy_fp = str(out["train"]), _stage_fp(rd / "train")
    finally:
        scorer.close()
        if judge is not None:
            judge.close()
    from start.evaluate import write_report

    return write_report(run_dir, title=f"START: {cfg.get('experiment_name', 'run')}")
