"""The round loop on tiny random models: folders, markers, skip, one-piece runs, resume after a kill."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from start.config import build_run_config
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
        "preference.min_attributability=0.0",
        "preference.require_citation=false", "preference.min_words=0", "prompt.n_demos=0", "sampler=transformers",
        "rounds=2", "eval.base=true",  # the layout these tests walk (make run's own budget is one round, no base row)
        *extra,
    ]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)


class HashNLI:
    """A deterministic coin per (premise, hypothesis): the tiny random cross-encoder gives every pair the same
    probability, so every sample would score alike and no preference pair could exist."""

    threshold, fingerprint = 0.5, "hash-nli-v1"

    def predict(self, pairs):
        import hashlib

        import numpy as np

        from start.scoring import NLIPrediction

        probs = [hashlib.sha256(f"{p}\0{h}".encode()).digest()[0] / 255 for p, h in pairs]
        return NLIPrediction(np.array(probs), np.zeros(len(pairs), dtype=bool))


@pytest.fixture
def loop_doubles(monkeypatch):
    """The rounds' test doubles: the hash NLI above, and samples that count as complete (the random tiny
    model almost never ends an answer within 8 tokens, and cut samples are never chosen)."""
    import start.preferences
    import start.scoring.scorer

    monkeypatch.setattr(start.scoring.scorer, "load_nli", lambda cfg: HashNLI())
    monkeypatch.setattr(start.preferences, "hit_token_limit", lambda sample, limit: False)


def markers(run_dir: Path) -> dict[str, float]:
    return {str(p.relative_to(run_dir)): p.stat().st_mtime_ns for p in run_dir.rglob("DONE")}


def test_rounds_layout_skip_and_resume(tmp_path, tiny_causal_lm, tiny_cross_encoder, loop_doubles):
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
    # each round samples its own training questions; the rounds' comprehensiveness is label-free
    ids = [json.loads((rd / f"round_{r}" / "questions.json").read_text())["ids"] for r in (1, 2)]
    assert len(ids[0]) == len(ids[1]) == 4 and not set(ids[0]) & set(ids[1])
    assert [x["id"] for x in map(json.loads, (rd / "round_1/sample/samples.jsonl").read_text().splitlines())] == ids[0]
    stats = json.loads((rd / "round_1" / "pairs" / "stats.json").read_text())
    assert stats["comprehensiveness"]["setting"] == "consensus"
    assert set(stats["comprehensiveness"]["sources"]) == {"consensus"}
    assert "## Rounds" in md and "| 1 | 4 (0) | 3 |" in md
    # the evaluation judge scored the held-out answers too, and the report shows its citation metrics
    judged = json.loads((rd / "round_2" / "eval" / "metrics.json").read_text())["eval_judge"]
    assert judged["nli"] == str(tiny_cross_encoder) and set(judged["metrics"]) == {
        "citation_rec", "citation_prec", "citation_f1", "attribution_margin", "nonexistent_citation_rate"}
    assert (rd / "round_2" / "eval" / "score_eval" / "DONE").is_file()
    assert "## Citation metrics from the evaluation judge" in md
    # the evaluation judge's paired changes, its margin's too (from the stored margin columns)
    last = {d["change"]: d for d in json.loads((rd / "report" / "differences.json").read_text())}["0 -> 2"]
    assert {"citation_f1", "attribution_margin"} <= set(last["eval_judge"]["metrics"])
    assert "attribution_margin" in last["metrics"] and set(json.loads(
        (rd / "round_2" / "eval" / "margin_columns.json").read_text())) == {"reward", "eval"}
    assert "Round 0 -> 2 (paired" in md and "under the evaluation judge" in md
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

    # other bootstrap settings re-run only the evaluations' statistics; their sampling and scoring stay
    run(compose_cfg(tmp_path, tiny_causal_lm, tiny_cross_encoder, "eval.n_boot=40"))
    after = markers(rd)
    assert {k for k in after if after[k] != again[k]} == {f"round_{r}/{e}/DONE" for r in (0, 1, 2)
                                                         for e in ("eval",)} | {"round_0/eval_base/DONE",
                                                                                     "round_0/baselines/DONE"}
    assert (rd / "round_2" / "eval" / "score" / "scores.jsonl").is_file()


def test_a_round_with_document_orders_trains_position_proof_pairs(tmp_path, tiny_causal_lm, tiny_cross_encoder,
                                                                    loop_doubles):
    cfg = compose_cfg(tmp_path, tiny_causal_lm, tiny_cross_encoder, "rounds=1", "eval.base=false",
                      "sampler.n=4", "sampler.doc_orders=3", "preference.permutations=2", "data.max_docs=3")
    report = run(cfg)
    rd = tmp_path / "run" / "round_1"
    rows = [json.loads(x) for x in (rd / "sample" / "samples.jsonl").read_text().splitlines()]
    assert all(len(r["orders"]) == 3 and [s["order"] for s in r["samples"]] == [0, 1, 2, 0] for r in rows)
    held_out = [json.loads(x) for x in (tmp_path / "run" / "round_0" / "eval" / "sample" / "samples.jsonl")
                .read_text().splitlines()]
    assert "orders" not in held_out[0]  # the evaluation keeps one order per question (eval.sampler.doc_orders)
    pairs = [json.loads(x) for x in (rd / "pairs" / "pairs.jsonl").read_text().splitlines()]
    stats = json.loads((rd / "pairs" / "stats.json").read_text())
    assert pairs and stats["pairs"] == len(pairs) == 2 * stats["distinct_pairs"] and stats["permutations"] == 2
    by_id = {r["id"]: r for r in rows}
    for p in pairs:  # each copy's prompt shows the documents in its own shared order
        assert p["prompt"] == by_id[p["id"]]["prompts"][by_id[p["id"]]["orders"].index(p["order"])]
    assert sum(stats["cited_positions"]["chosen"]) >= 0 and len(stats["cited_positions"]["rejected"]) == 3
    assert (rd / "train" / "DONE").is_file() and json.loads((rd / "train" / "metrics.json").read_text())["pairs"] == \
        len(pairs)
    assert "| 1 | 4 (0) | 4 |" in (report / "report.md").read_text()


def test_one_piece_needs_its_inputs(tmp_path, tiny_causal_lm, tiny_cross_encoder):
    cfg = compose_cfg(tmp_path, tiny_causal_lm, tiny_cross_encoder, "round=1", "stage=pairs")
    with pytest.raises(RuntimeError, match=r"round_1/sample is not complete"):
        run(cfg)
    run(compose_cfg(tmp_path, tiny_causal_lm, tiny_cross_encoder, "round=1", "stage=sample"))
    assert (tmp_path / "run" / "round_1" / "sample" / "DONE").is_file()
    assert not (tmp_path / "run" / "round_0" / "eval").exists()  # nothing else ran
    with pytest.raises(ValueError, match="stage: must be one of"):
        run(compose_cfg(tmp_path, tiny_causal_lm, tiny_cross_encoder, "stage=everything"))


def test_stages_take_typed_sections_and_never_the_raw_dict(tmp_path, tiny_causal_lm, tiny_cross_encoder,
                                                           loop_doubles):
    import inspect

    from start.pipeline import baselines_stage, eval_stage, pairs_stage, score_stage, train_stage
    from start.sampling.stage import sample_stage
    from start.warmup.stage import warmup_stage

    sections = {score_stage: "JudgeConfig", pairs_stage: "PreferenceConfig", train_stage: "TrainConfig",
                eval_stage: "EvalConfig", baselines_stage: "EvalConfig", sample_stage: "SampleConfig",
                warmup_stage: "WarmupStageConfig"}
    for stage, section in sections.items():
        annotations = [str(p.annotation) for p in inspect.signature(stage).parameters.values()]
        assert section in annotations and not {"dict", "dict[str, Any]"} & set(annotations), stage.__name__
    # the whole evaluation of round 0 from a built configuration whose raw dict is gone
    cfg = build_run_config(compose_cfg(tmp_path, tiny_causal_lm, tiny_cross_encoder, "round=0", "stage=eval"))
    run(replace(cfg, raw={}))
    for stage in ("baselines", "eval_base", "eval"):
        assert (tmp_path / "run" / "round_0" / stage / "DONE").is_file(), stage
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == {}


def test_rejection_sampling_sft_runs_before_dpo(tmp_path, tiny_causal_lm, tiny_cross_encoder, loop_doubles):
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


def test_round_questions_are_seeded_disjoint_slices_that_wrap():
    from start.pipeline import round_questions

    pool = [f"q{i}" for i in range(10)]
    slices = round_questions(pool, 4, 3, seed=7)
    assert [len(s["ids"]) for s in slices] == [4, 4, 4] and all(s["pool"] == 10 for s in slices)
    assert not set(slices[0]["ids"]) & set(slices[1]["ids"])  # disjoint while the pool lasts
    assert [s["reused"] for s in slices] == [0, 0, 2]  # round 3 wraps around the shuffled pool
    assert set(slices[0]["ids"] + slices[1]["ids"] + slices[2]["ids"]) == set(pool)
    assert round_questions(pool, 4, 3, seed=7) == slices
    assert round_questions(pool, 4, 3, seed=8)[0]["ids"] != slices[0]["ids"]
    everything = round_questions(pool, None, 2, seed=7)
    assert sorted(everything[0]["ids"]) == sorted(pool) and everything[1]["reused"] == 10
    with pytest.raises(ValueError, match="train_questions"):
        round_questions(pool, 0, 2, seed=7)


def test_a_round_without_pairs_passes_the_policy_through(tmp_path, tiny_causal_lm, tiny_cross_encoder):
    from start.io import write_jsonl
    from start.pipeline import train_stage, trained_policy

    cfg = compose_cfg(tmp_path, tiny_causal_lm, tiny_cross_encoder)
    write_jsonl(tmp_path / "pairs" / "pairs.jsonl", [])
    out = train_stage(str(tiny_causal_lm), tmp_path / "pairs" / "pairs.jsonl", build_run_config(cfg).trainer,
                      tmp_path / "train", seed=0)
    assert out == tiny_causal_lm == trained_policy(tmp_path / "train")
    manifest = json.loads((tmp_path / "train" / "manifest.json").read_text())
    assert manifest["counts"]["pairs"] == 0 and manifest["dpo"] == "skipped: no preference pairs"
    assert not (tmp_path / "train" / "model").exists()


def test_rejection_sampling_only_trains_no_dpo(tmp_path, tiny_causal_lm, tiny_cross_encoder):
    from start.io import write_jsonl
    from start.pipeline import train_stage, trained_policy

    cfg = compose_cfg(tmp_path, tiny_causal_lm, tiny_cross_encoder, "trainer.rs_sft.enabled=true",
                      "trainer.rs_sft.only=true", "trainer.rs_sft.min_reward=0.0", "sft.max_steps=1", "sft.lora_r=4",
                      "sft.lora_alpha=8", "sft.max_length=640")
    pair = {"id": "q", "prompt": "<user> the tower </s> <assistant>", "chosen": "it was built in 1889 .",
            "rejected": "paris .", "signal": "attributability", "kind": "overall", "margin": 0.5,
            "chosen_scores": {}, "rejected_scores": {}}
    write_jsonl(tmp_path / "pairs" / "pairs.jsonl", [pair])
    write_jsonl(tmp_path / "pairs" / "best.jsonl", [{"id": "q", "prompt": pair["prompt"], "completion": pair["chosen"],
                                                     "reward": 0.8}])
    out = train_stage(str(tiny_causal_lm), tmp_path / "pairs" / "pairs.jsonl", build_run_config(cfg).trainer,
                      tmp_path / "train", seed=0)
    assert out == tmp_path / "train" / "rs_sft" / "model" == trained_policy(tmp_path / "train")
    manifest = json.loads((tmp_path / "train" / "manifest.json").read_text())
    assert manifest["dpo"] == "skipped: trainer.rs_sft.only" and manifest["rs_sft"]["rows"] == 1
    assert not (tmp_path / "train" / "model").exists() and (out / "config.json").is_file()


def test_a_slice_of_named_questions_is_loaded_in_its_order():
    from start.sampling.stage import DataConfig, load_questions

    pool = [r.id for r in load_questions(DataConfig("embedded", "train", limit=5))]
    picked = load_questions(DataConfig("embedded", "train", limit=2, ids=pool[::-2]))
    assert [r.id for r in picked] == pool[::-2]  # ids win over limit
    assert load_questions(DataConfig("embedded", "train", limit=5).only(pool[::-2])) == picked
    with pytest.raises(ValueError, match="data.ids: 1 id"):
        load_questions(DataConfig("embedded", "train", ids=[pool[0], "no-such-question"]))
