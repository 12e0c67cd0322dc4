"""start/stage.py (fingerprints, content hashes, markers, clearing), the start.run and start.sample commands,
and start/nli/measure.py's metrics and batching."""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from start.stage import HASH_FILE, MARKER, StageRun, content_hash, fingerprint, is_done, model_fingerprint
from start.stage import write_content_hash as stamp

ROOT = Path(__file__).resolve().parent.parent


def _folder(tmp: Path, name: str = "model") -> Path:
    folder = tmp / name
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "sub" / "weights.bin").write_bytes(b"\x00\x01")
    return folder


def test_fingerprint_ignores_key_order_and_sees_values():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2}) != fingerprint({"a": "1"})


def test_content_hash_follows_bytes_and_names_not_times(tmp_path):
    folder = _folder(tmp_path)
    first = content_hash(folder)
    os.utime(folder / "config.json", (1, 1))
    assert content_hash(folder) == first
    (folder / "sub" / "weights.bin").write_bytes(b"\x00\x02")
    assert content_hash(folder) != first
    (folder / "sub" / "weights.bin").write_bytes(b"\x00\x01")
    (folder / "sub" / "weights.bin").rename(folder / "sub" / "other.bin")
    assert content_hash(folder) != first


def test_model_fingerprint_reads_the_stamp_and_recomputes_a_stale_one(tmp_path, monkeypatch):
    monkeypatch.setenv("START_CACHE_DIR", str(tmp_path / "cache"))
    folder = _folder(tmp_path)
    digest = stamp(folder)
    assert json.loads((folder / HASH_FILE).read_text())["hash"] == digest == model_fingerprint(folder)
    # the stamp is trusted while sizes and times hold (a forged hash proves it is read, not recomputed)
    data = json.loads((folder / HASH_FILE).read_text())
    (folder / HASH_FILE).write_text(json.dumps({**data, "hash": "forged"}))
    assert model_fingerprint(folder) == "forged"
    # new weights behind the same path: the stamp is stale, the hash is computed again
    time.sleep(0.01)
    (folder / "sub" / "weights.bin").write_bytes(b"\x07\x07")
    assert model_fingerprint(folder) == content_hash(folder) != digest


def test_model_fingerprint_of_a_user_folder_is_cached_outside_it(tmp_path, monkeypatch):
    monkeypatch.setenv("START_CACHE_DIR", str(tmp_path / "cache"))
    folder = _folder(tmp_path, "user-model")
    before = sorted(p.name for p in folder.iterdir())
    digest = model_fingerprint(folder)
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written into the user's folder
    assert len(list((tmp_path / "cache" / "content-hashes").glob("*.json"))) == 1
    assert model_fingerprint(folder) == digest
    assert model_fingerprint("org/hub-model") == "name:org/hub-model"


def test_stage_run_clears_its_own_files_only_and_writes_marker_last(tmp_path):
    out = tmp_path / "eval"
    run = StageRun(out, "fp1", config={}, seed=0)
    (out / "metrics.json").write_text("{}")
    sub = StageRun(out / "sample", "sub-fp", config={}, seed=0)
    (out / "sample" / "samples.jsonl").write_text("row\n")
    sub.finish(counts={"questions": 1})
    run.finish(counts={"questions": 1})
    assert is_done(out, "fp1") and not is_done(out, "fp2")
    # other settings: the stage's own outputs go, its sub-stage keeps its outputs and marker
    StageRun(out, "fp2", config={}, seed=0)
    assert not (out / "metrics.json").exists() and not (out / MARKER).exists()
    assert (out / "sample" / "samples.jsonl").is_file() and is_done(out / "sample", "sub-fp")
    # the same settings again (a resumed run): partial outputs stay
    (out / "partial.jsonl").write_text("x\n")
    StageRun(out, "fp2", config={}, seed=0)
    assert (out / "partial.jsonl").is_file()
    manifest = json.loads((out / "sample" / "manifest.json").read_text())
    assert manifest["fingerprint"] == "sub-fp" and manifest["counts"] == {"questions": 1}


# ------------------------------------------------------------------------------------ the commands


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "START_CACHE_DIR": str(cwd / "cache")}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_start_sample_writes_samples_and_skips_a_finished_run(tmp_path, tiny_causal_lm):
    args = ["start.sample", f"model.name={tiny_causal_lm}", "model.dtype=float32", "model.max_model_len=512",
            "data.limit=3", "sampler.n=2", "sampler.max_new_tokens=6", "prompt.n_demos=0", f"out_dir={tmp_path / 's'}"]
    res = _run(args, tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [json.loads(x) for x in (tmp_path / "s" / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(len(r["samples"]) == 2 for r in rows)
    done = (tmp_path / "s" / MARKER).stat().st_mtime_ns
    assert _run(args, tmp_path).returncode == 0
    assert (tmp_path / "s" / MARKER).stat().st_mtime_ns == done


def test_start_run_terminal_shows_stages_and_table_and_the_log_holds_the_rest(tmp_path, citing_causal_lm,
                                                                               sharp_cross_encoder):
    from test_invalidation import questions

    from start.io import write_jsonl

    write_jsonl(tmp_path / "train.jsonl", questions("t", 3))
    write_jsonl(tmp_path / "dev.jsonl", questions("d", 2))
    res = _run(["start.run", f"model.name={citing_causal_lm}", "model.dtype=float32", "model.max_model_len=512",
                f"scorer.nli.model={sharp_cross_encoder}", "warmup.enabled=false",
                f"train_source={tmp_path}/train.jsonl", f"eval_source={tmp_path}/dev.jsonl", "train_split=null",
                "eval_split=null", "sampler=transformers",
                "sampler.max_new_tokens=6", "trainer.max_steps=1", "trainer.lora.r=4", "trainer.lora.alpha=8",
                "preference.min_margin=0", "preference.require_citation=false", "preference.min_words=0",
                "eval.n_boot=20", "rounds=1", "eval.base=true", "run_dir=run"], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    stage_lines = [x for x in lines if " done in " in x]
    # every stage once: the constant baselines, 2 x 4 round-0 evaluation stages (sample, score, evaluation
    # judge's score, statistics), 4 round stages, 4 eval
    assert len(stage_lines) == 17
    assert any("round_1/train" in x for x in stage_lines)
    # the headline table and the paired change from round 0 to the last round, under both judges
    assert "| round | citation F1 (reward judge) | citation F1 (evaluation judge)" in res.stdout
    assert "| 1 |" in res.stdout and "Round 0 -> 1 (paired" in res.stdout
    noise = ("Loading weights", "it/s", "Warning", "config:")
    assert not [x for x in lines if any(n in x for n in noise)], lines
    assert res.stderr == ""
    log_text = (tmp_path / "run" / "run.log").read_text()
    assert "config:" in log_text and "Loading weights" in log_text


def test_terminal_filter():
    from start.run import _Terminal

    def rec(name, level):
        return logging.LogRecord(name, level, __file__, 1, "m", None, None)

    keep = _Terminal().filter
    assert keep(rec("start.stage", logging.INFO)) and keep(rec("start.run", logging.INFO))
    assert keep(rec("start.scoring.scorer", logging.WARNING))
    assert not keep(rec("start.sampling.sampler", logging.INFO))
    assert not keep(rec("transformers.modeling_utils", logging.WARNING))


# ---------------------------------------------------------------------------- start/nli/measure.py


def test_roc_auc_is_the_share_of_correctly_ordered_pairs():
    from start.nli.measure import roc_auc

    rng = np.random.default_rng(3)
    scores = rng.integers(0, 6, 40).astype(float)  # many ties
    positive = rng.random(40) < 0.4
    pos, neg = scores[positive], scores[~positive]
    brute = np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)])
    assert roc_auc(scores, positive) == pytest.approx(brute)
    assert np.isnan(roc_auc(scores, np.zeros(40, dtype=bool)))


def test_best_threshold_maximises_accuracy():
    from start.nli.measure import best_threshold

    rng = np.random.default_rng(5)
    p = rng.random(60)
    positive = (p + rng.normal(0, 0.2, 60)) > 0.6
    t, acc = best_threshold(p, positive)
    grid = max(float(((p >= x) == positive).mean()) for x in np.linspace(0, 1, 2001))
    assert acc == pytest.approx(float(((p >= t) == positive).mean()))
    assert acc >= grid - 1e-12


def test_bucketed_batches_partition_the_rows_and_group_similar_lengths():
    from start.nli.measure import bucketed_batches, collate

    lengths = [random.Random(i).randint(3, 90) for i in range(301)]
    batches = bucketed_batches(lengths, 8, random.Random(0), chunk=4)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(301)) and all(1 <= len(b) <= 8 for b in batches)
    assert batches == bucketed_batches(lengths, 8, random.Random(0), chunk=4)  # seeded
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    assert spread < 35  # vs ~68 for random batches of 8 over lengths 3..90
    batch = collate([{"input_ids": [5, 6, 7], "token_type_ids": [0, 0, 1]}, {"input_ids": [5], "token_type_ids": [0]}],
                    pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
