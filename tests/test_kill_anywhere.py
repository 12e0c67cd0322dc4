"""Kill the loop anywhere, restart it, get the same run folder (slow: ``pytest -m slow tests/test_kill_anywhere.py``).

The tiny loop (random citing Llama, random NLI judge, two rounds, checkpoints every DPO step) runs once
without interruption in a subprocess. A second copy is started, SIGKILLed and restarted ten times: kill k
waits until the run has completed a seeded random number of stages (the targets spread over all of them,
and at least one more than when it was restarted), then a seeded random 0-0.4 s more, so
kills land inside sampling, scoring, pair building, training (between and during checkpoints) and
evaluation, and at stage boundaries. After a last, uninterrupted restart, both folders must hold the same
files with the same content: samples, scores and pairs row by row, metrics, reports, model weights (by
hash), manifests' fingerprints and counts. Only wall times, timestamps, the run's own paths and counts of
work an earlier attempt had already done (rows resumed, NLI cache hits) may differ.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_invalidation import questions
from test_pipeline import compose_cfg

from start.io import write_json, write_jsonl

ROOT = Path(__file__).resolve().parent.parent
CHILD = "import json, sys; from start.pipeline import run; run(json.load(open(sys.argv[1])))"
# wall times and timestamps, and what depends on how often a stage was started: rows written by the last
# attempt vs resumed from an earlier one, NLI answers found in the cache an earlier attempt filled
VOLATILE = ("runtime", "per_second", "wall_seconds", "finished", "total_flos", "libraries", "seconds",
            "rows_written", "rows_resumed", "cache_hits", "_this_run")


def _config(tmp: Path, lm: Path, nli: Path, name: str) -> Path:
    cfg = compose_cfg(tmp, lm, nli, f"train_source={tmp / 'train.jsonl'}", f"eval_source={tmp / 'dev.jsonl'}",
                      "train_split=null", "eval_split=null", "sampler.max_new_tokens=10", "+scorer.nli.threshold=0.25",
                      "trainer.lora.enabled=false", "trainer.learning_rate=2e-2", "trainer.max_steps=4",
                      "trainer.save_steps=1", "rounds=2", f"run_dir={tmp / name}",
                      f"scorer.rules.cache_dir={tmp / ('cache-' + name)}")
    path = tmp / f"{name}.json"
    write_json(path, cfg)
    return path


def _start(cfg: Path, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "START_CACHE_DIR": str(cache)}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(cfg)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _having(run_dir: Path, name: str) -> set[str]:
    """Folders (relative) holding a file ``name``; os.walk skips folders renamed away while it looks."""
    return {str(Path(root).relative_to(run_dir)) for root, _, files in os.walk(run_dir) if name in files}


def _done(run_dir: Path) -> set[str]:
    return _having(run_dir, "DONE")


def _scrub(obj, run_dir: str):
    """A JSON value without the volatile keys, the run's own paths (its folder, its NLI cache) replaced."""
    if isinstance(obj, dict):
        return {k: _scrub(v, run_dir) for k, v in obj.items() if not any(x in k for x in VOLATILE)}
    if isinstance(obj, list):
        return [_scrub(v, run_dir) for v in obj]
    if isinstance(obj, str):
        name = Path(run_dir).name
        return obj.replace(run_dir, "<run>").replace(f"cache-{name}", "cache-<run>")
    return obj


def snapshot(run_dir: Path) -> dict[str, object]:
    """Every file of a run folder -> what must be identical between two runs."""
    out: dict[str, object] = {}
    for f in sorted(run_dir.rglob("*")):
        rel = f.relative_to(run_dir).as_posix()
        if not f.is_file() or "/checkpoints/" in f"/{rel}" or f.name.startswith(".") or rel.startswith("tb/"):
            continue  # checkpoints are training's scratch space; dot files are bookkeeping (owner, hash stamps);
            # TensorBoard's event files are named and stamped by the wall clock (their values: dpo_curves.json)
        if f.suffix in (".safetensors", ".png"):
            out[rel] = hashlib.sha256(f.read_bytes()).hexdigest() if f.suffix == ".safetensors" else "png"
        elif f.suffix == ".jsonl":
            out[rel] = [_scrub(json.loads(x), str(run_dir)) for x in f.read_text().splitlines()]
        elif f.suffix == ".json" or f.name == "DONE":
            data = _scrub(json.loads(f.read_text()), str(run_dir))
            out[rel] = {k: data.get(k) for k in ("fingerprint", "counts", "inputs")} if f.name in (
                "manifest.json", "DONE") else data
        elif f.name == "report.md":
            out[rel] = f.read_text().split("## Stages")[0].replace(str(run_dir), "<run>")
        elif f.name == "report.html":  # names the run folder
            out[rel] = f.read_text().replace(f"<code>{run_dir.name}</code>", "<code><run></code>")
        else:
            out[rel] = f.read_bytes()
    return out


@pytest.mark.slow
def test_killed_ten_times_anywhere_ends_like_an_uninterrupted_run(tmp_path, citing_causal_lm, sharp_cross_encoder):
    write_jsonl(tmp_path / "train.jsonl", questions("t", 6))
    write_jsonl(tmp_path / "dev.jsonl", questions("d", 4))
    # the uninterrupted run
    t0 = time.monotonic()
    child = _start(_config(tmp_path, citing_causal_lm, sharp_cross_encoder, "straight"), tmp_path / "home-a")
    assert child.wait(timeout=1800) == 0, child.stderr.read()[-3000:]
    straight_seconds = time.monotonic() - t0
    stages = sorted(_done(tmp_path / "straight"))
    assert len(stages) == 25  # round 0: the baselines and two evaluations of 4 stages each; 8 per round

    # the same run, killed ten times
    cfg = _config(tmp_path, citing_causal_lm, sharp_cross_encoder, "killed")
    run_dir, rng = tmp_path / "killed", random.Random(20261201)
    targets = sorted(rng.sample(range(len(stages) - 4), 10))  # headroom: each kill needs one more stage
    log = []
    for target in targets:
        child = _start(cfg, tmp_path / "home-b")
        # at least one more stage finished since the restart, so every kill lands further on
        target = max(target, len(_done(run_dir)) + 1)
        while len(_done(run_dir)) < target and child.poll() is None:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))  # into the next stage: most take 0.1 to 2 s here
        if child.poll() is not None:
            log.append((target, "finished before the kill"))
            break
        child.send_signal(signal.SIGKILL)
        child.wait()
        complete = len(_done(run_dir))
        # the stages that had started (their folder is owned) but not finished when the kill came
        started = _having(run_dir, ".fingerprint")
        log.append((complete, ", ".join(sorted(started - _done(run_dir))) or "between stages / report"))
    child = _start(cfg, tmp_path / "home-b")
    assert child.wait(timeout=1800) == 0, child.stderr.read()[-3000:]
    print(f"\nuninterrupted: {straight_seconds:.0f} s; kills (stages complete: stages killed while running):")
    for target, where in log:
        print(f"  after {target:2d} stages: {where}")

    assert len([x for x in log if x[1] != "finished before the kill"]) == 10
    a, b = snapshot(tmp_path / "straight"), snapshot(run_dir)
    assert sorted(a) == sorted(b)
    different = [k for k in a if a[k] != b[k]]
    assert not different, different
    rounds = json.loads((run_dir / "report" / "rounds.json").read_text())
    assert any(r["metrics"]["citation_rec"]["value"] > 0 for r in rounds)  # the compared metrics are not all 0
    assert any(r["metrics"]["citation_prec"]["value"] > 0 for r in rounds)
