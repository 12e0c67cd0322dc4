"""The round loop on tiny random models: folders, markers, skip, one-piece runs, resume after a kill."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from start.pipeline import run

CONF = Path(__file__).resolve().parent.parent / "conf"


def compose_cfg(tmp: Path, lm: Path, nli: Path, *extra: str) -> dict:
    overrides = [
        f"model.name={lm}", "model.dtype=float32", "model.max_model_len=512", f"scorer.nli.model={nli}",
        f"scorer.eval_nli.model={nli}", f"scorer.rules.cache_dir={tmp / 'cache'}", f"run_dir={tmp / 'run'}",
        "warmup.enabled=false",
        "train_questions=4", "eval_questions=3", "sampler.n=3", "sampler.max_new_tokens=8", "sampler.chunk_size=2",
        "sampler.temperature=1.0", "eval.n_boot=50", "trainer.max_steps=2", "trainer.batch_size=2",
        "trainer.max_length=640", "trainer.lora.r=4", "trainer.lora.alpha=8", "preference.min_margin=0.0",
        "preference.require_citation=false", "preference.min_words=0", "prompt.n_demos=0", "sampler=transformers",
        *extra,
    ]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)


def markers(run_dir: Path) -> dict[str, float]:
    return {str(p.relative_to(run_dir)): p.stat().st_mtime_ns for p in run_dir.rglob("DONE")}


def test_rounds_layout_skip_and_resume(tmp_path, tiny_causal_lm, tiny_cross_encoder):
    cfg = compose_cfg(tmp_path, tiny_causal_lm, tiny_cross_encoder)
    report = run(cfg)
    rd = tmp_path / "run"
    for stage in ("round_0/eval_base", "round_0/eval", *(f"round_{r}/{s}" for r in (1, 2)
                                                          for s in ("sample", "score", "pairs", "train", "eval"))):
        assert (rd / stage / "DONE").is_file() and (rd / stage / "manifest.json").is_file(), stage
    assert (rd / "round_2" / "train" / "model" / "config.json").is_file()
    md = (report / "report.md").read_text()
    assert all(f"| {label} |" in md for label in ("base", "0", "1", "2"))
    assert all(f"| {change} |" in md for change in ("base -> 0", "0 -> 1", "1 -> 2", "0 -> 2"))  # paired
    manifest = json.loads((rd / "round_1" / "sample" / "manifest.json").read_text())
    assert manifest["counts"]["questions"] == 4 and "torch" in manifest["libraries"]
    pairs = [json.loads(x) for x in (rd / "round_1" / "pairs" / "pairs.jsonl").read_text().splitlines()]
    assert pairs and {"prompt", "chosen", "rejected", "signal"} <= set(pairs[0])
    # the evaluation judge scored the held-out answers too, and the report shows its citation metrics
    judged = json.loads((rd / "round_2" / "eval" / "metrics.json").read_text())["eval_judge"]
    assert judged["nli"] == str(tiny_cross_encoder) and set(judged["metrics"]) == {
        "citation_rec", "citation_prec", "citation_f1"}
    assert (rd / "round_2" / "eval" / "score_eval" / "DONE").is_file()
    assert "## Citation metrics from the evaluation judge" in md
    first = markers(rd)
    final = (rd / "round_2" / "eval" / "metrics.json").read_text()

    # a second run skips every stage
    run(cfg)
    assert markers(rd) == first

    # a run killed during round 2 training resumes there and ends with the same results
    shutil.rmtree(rd / "round_2" / "train")
    shutil.rmtree(rd / "round_2" / "eval")
    run(cfg)
    again = markers(rd)
    assert {k for k in again if again[k] != first.get(k)} == {"round_2/train/DONE", "round_2/eval/DONE",
                                                              "round_2/eval/sample/DONE", "round_2/eval/score/DONE",
                                                              "round_2/eval/score_eval/DONE"}
    assert json.loads((rd / "round_2" / "eval" / "metrics.json").read_text()) == json.loads(final)


def test_one_piece_needs_its_inputs(tmp_path, tiny_causal_lm, tiny_cross_encoder):
    cfg = compose_cfg(tmp_path, tiny_causal_lm, tiny_cross_encoder, "round=1", "stage=pairs")
    with pytest.raises(RuntimeError, match=r"round_1/sample is not complete"):
        run(cfg)
    run(compose_cfg(tmp_path, tiny_causal_lm, tiny_cross_encoder, "round=1", "stage=sample"))
    assert (tmp_path / "run" / "round_1" / "sample" / "DONE").is_file()
    assert not (tmp_path / "run" / "round_0" / "eval").exists()  # nothing else ran
    with pytest.raises(ValueError, match="stage must be one of"):
        run(compose_cfg(tmp_path, tiny_causal_lm, tiny_cross_encoder, "stage=everything"))


def test_rejection_sampling_sft_runs_before_dpo(tmp_path, tiny_causal_lm, tiny_cross_encoder):
    cfg = compose_cfg(tmp_path, tiny_causal_lm, tiny_cross_encoder, "rounds=1", "round=1", "eval.base=false",
                      "trainer.rs_sft.enabled=true", "trainer.rs_sft.min_reward=0.0", "sft.max_steps=1",
                      "sft.lora_r=4", "sft.lora_alpha=8", "sft.max_length=640")
    run(cfg)
    rd = tmp_path / "run" / "round_1"
    best = [json.loads(x) for x in (rd / "pairs" / "best.jsonl").read_text().splitlines()]
    assert best and {"prompt", "completion", "reward"} <= set(best[0])
    manifest = json.loads((rd / "train" / "manifest.json").read_text())
    assert manifest["rs_sft"]["rows"] == len(best) and (rd / "train" / "rs_sft" / "model" / "config.json").is_file()
    dpo = json.loads((rd / "train" / "metrics.json").read_text())
    assert dpo["policy"] == str(rd / "train" / "rs_sft" / "model")  # DPO started from the rejection-sampling model
