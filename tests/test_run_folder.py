"""Run folders that defend themselves: one run at a time (start/lock.py), finished stages re-hashed against
their manifests (``stage=verify``, start/stage.py), and a full disk that ends a run with one line and leaves a
folder the next run resumes."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_invalidation import questions
from test_pipeline import compose_cfg

from start.io import write_json, write_jsonl
from start.lock import LOCK_FILE, RunLocked, run_lock
from start.stage import MARKER, OWNER, StageRun, check_stage, output_hashes, verify_run, write_content_hash

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def _holder(run_dir: Path) -> subprocess.Popen:
    """Another process that takes the run folder's lock and keeps it (until killed)."""
    code = f"import sys, time\nfrom start.lock import run_lock\nwith run_lock({str(run_dir)!r}):\n" \
           "    print('locked', flush=True)\n    time.sleep(120)\n"
    proc = subprocess.Popen([sys.executable, "-c", code], env=_env(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


# ------------------------------------------------------------------------------------------- the lock


def test_a_second_run_on_the_same_folder_stops_at_once_naming_the_first(tmp_path):
    run_dir = tmp_path / "run"
    holder = _holder(run_dir)
    try:
        t0 = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "start.run", f"run_dir={run_dir}"], cwd=tmp_path, env=_env(),
                             capture_output=True, text=True, timeout=300)
        took = time.monotonic() - t0
    finally:
        holder.kill()
        holder.wait()
    assert res.returncode == 3, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and res.stdout == "", res.stderr
    today = time.strftime("%Y-%m-%d")
    assert lines[0].startswith(f"error: {run_dir} is in use by another run: pid {holder.pid} on host ")
    assert f"started {today} " in lines[0] and f"kill {holder.pid}" in lines[0]
    assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_FILE]  # no log, no config: nothing written
    assert took < 120


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path, caplog):
    run_dir = tmp_path / "run"
    holder = _holder(run_dir)
    with pytest.raises(RunLocked, match=f"pid {holder.pid} on host"):
        with run_lock(run_dir):
            pass
    holder.send_signal(signal.SIGKILL)  # no clean-up: the lock file stays, naming the dead process
    holder.wait()
    assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == holder.pid
    with caplog.at_level(logging.WARNING, logger="start.lock"), run_lock(run_dir) as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
        with run_lock(run_dir):  # re-entrant within the process (start.run, then start.pipeline.run)
            pass
        assert path.is_file()
    assert f"taking over the lock left by pid {holder.pid} on host" in caplog.text
    assert "that process no longer runs" in caplog.text
    assert not (run_dir / LOCK_FILE).exists()  # released: removed


def test_a_held_lock_refuses_another_process(tmp_path):
    run_dir = tmp_path / "run"
    code = f"from start.lock import run_lock\nwith run_lock({str(run_dir)!r}):\n    pass\n"
    with run_lock(run_dir):
        res = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
        assert res.returncode != 0 and f"pid {os.getpid()} on host" in res.stderr and "RunLocked" in res.stderr
    res = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


# ------------------------------------------------------------------------------------------- verification


def _finished_stage(folder: Path, fp: str = "fp1") -> Path:
    """A finished stage with a file, a model folder, checkpoints and a sub-stage of its own."""
    run = StageRun(folder, fp, config={}, seed=0)
    write_jsonl(folder / "rows.jsonl", [{"id": 1}, {"id": 2}])
    (folder / "model").mkdir()
    (folder / "model" / "weights.bin").write_bytes(b"\x00" * 64)
    write_content_hash(folder / "model")
    (folder / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    (folder / "checkpoints" / "checkpoint-1" / "state.bin").write_bytes(b"x")
    sub = StageRun(folder / "sample", "fp-sub", config={}, seed=0)
    write_jsonl(folder / "sample" / "samples.jsonl", [{"id": "q"}])
    sub.finish(counts={})
    run.finish(counts={})
    return folder


def test_outputs_are_recorded_at_finish_without_bookkeeping_checkpoints_or_sub_stages(tmp_path):
    folder = _finished_stage(tmp_path / "run" / "round_1" / "train")
    recorded = json.loads((folder / "manifest.json").read_text())["outputs"]
    assert sorted(recorded) == ["model/", "rows.jsonl"]
    assert recorded == output_hashes(folder, trust_stamps=False)
    assert sorted(json.loads((folder / "sample" / "manifest.json").read_text())["outputs"]) == ["samples.jsonl"]


def test_verify_names_each_changed_stage_and_it_runs_again(tmp_path):
    run_dir = tmp_path / "run"
    train = _finished_stage(run_dir / "round_1" / "train")
    other = _finished_stage(run_dir / "round_1" / "pairs")
    assert [c.status for c in verify_run(run_dir, progress=False)] == ["ok"] * 4
    # outside the outputs: a checkpoint and a sub-stage's own files are not the stage's
    (train / "checkpoints" / "checkpoint-1" / "state.bin").write_bytes(b"y")
    assert check_stage(train, run_dir).status == "ok"
    # an edited row, a damaged weight file (same size and time: only the bytes tell), a deleted output
    (train / "rows.jsonl").write_text('{"id": 1}\n{"id": 3}\n')
    st = (train / "model" / "weights.bin").stat()
    (train / "model" / "weights.bin").write_bytes(b"\x01" * 64)
    os.utime(train / "model" / "weights.bin", ns=(st.st_atime_ns, st.st_mtime_ns))
    (other / "sample" / "samples.jsonl").unlink()
    checks = {c.stage: c for c in verify_run(run_dir, progress=False)}
    assert checks["round_1/train"].status == "changed"
    assert checks["round_1/train"].changed == ("model/", "rows.jsonl")
    assert checks["round_1/pairs/sample"].changed == ("samples.jsonl (missing)",)
    assert checks["round_1/pairs"].status == "ok" and checks["round_1/train/sample"].status == "ok"
    assert not (train / MARKER).exists() and (train / "sample" / MARKER).exists()
    # the next run of the stage, with the same settings, starts over instead of resuming the damaged files
    StageRun(train, "fp1", config={}, seed=0)
    assert sorted(p.name for p in train.iterdir()) == [OWNER, "sample"]
    # a stage finished before output hashes were recorded is said to be unchecked, and left alone
    manifest = json.loads((other / "manifest.json").read_text())
    del manifest["outputs"]
    write_json(other / "manifest.json", manifest)
    assert check_stage(other, run_dir).status == "unrecorded" and (other / MARKER).exists()


def test_start_run_stage_verify_names_the_changed_stage_and_exits_1(tmp_path):
    run_dir = tmp_path / "run"
    _finished_stage(run_dir / "round_1" / "train")

    def verify():
        return subprocess.run([sys.executable, "-m", "start.run", "stage=verify", f"run_dir={run_dir}"],
                              cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)

    res = verify()
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == f"verify {run_dir}: 2 finished stage(s), 2 intact, 0 changed"
    (run_dir / "round_1" / "train" / "rows.jsonl").write_text("edited\n")
    res = verify()
    assert res.returncode == 1
    out = res.stdout.strip().splitlines()
    assert out == ["changed     round_1/train: rows.jsonl -> runs again on the next run",
                   f"verify {run_dir}: 2 finished stage(s), 1 intact, 1 changed (round_1/train)"]
    assert verify().returncode == 0  # no longer finished: nothing left to find


# ------------------------------------------------------------------------------------------- on real runs


@pytest.fixture
def tiny_run(tmp_path, citing_causal_lm, sharp_cross_encoder, monkeypatch):
    """A one-round run's configuration on tiny models (questions from local files); ``cfg(run_dir)``."""
    import start.preferences

    monkeypatch.setattr(start.preferences, "hit_token_limit", lambda sample, limit: False)
    write_jsonl(tmp_path / "train.jsonl", questions("t", 3))
    write_jsonl(tmp_path / "dev.jsonl", questions("d", 2))

    def cfg(name: str, *extra: str) -> dict:
        return compose_cfg(tmp_path / name, citing_causal_lm, sharp_cross_encoder,
                           f"train_source={tmp_path / 'train.jsonl'}", f"eval_source={tmp_path / 'dev.jsonl'}",
                           "train_split=null", "eval_split=null", "sampler.max_new_tokens=8", "rounds=1",
                           "scorer.eval_nli=null", "eval.base=false", "eval.n_boot=20", "trainer.max_steps=1",
                           *extra)

    return cfg


def _rows(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_an_edited_output_is_found_and_its_stage_alone_runs_again(tiny_run, tmp_path):
    from start.pipeline import run

    cfg = tiny_run("a")
    run(cfg)
    run_dir = Path(cfg["run_dir"])
    assert list((run_dir / "tb" / "round_1").glob("events.out.tfevents.*"))  # trainer.report_to: tensorboard
    pairs = run_dir / "round_1" / "pairs" / "pairs.jsonl"
    original = pairs.read_text()
    markers = {p.parent: p.stat().st_mtime_ns for p in run_dir.rglob(MARKER)}
    pairs.write_text(original.replace('"chosen": "', '"chosen": "EDITED ', 1))
    run({**cfg, "stage": "verify"})
    assert not (run_dir / "round_1" / "pairs" / MARKER).exists()
    run(cfg)
    assert pairs.read_text() == original  # made again, not resumed from the edited file
    rewritten = {f for f, t in markers.items() if (f / MARKER).stat().st_mtime_ns != t}
    assert rewritten == {run_dir / "round_1" / "pairs"}  # the same pairs: training and evaluation skipped


def _full_disk_code(match: str) -> str:
    """Python that makes every ``fsync`` of a file whose path contains ``match`` fail with ENOSPC."""
    return textwrap.dedent(f"""
        import errno, os
        _fsync = os.fsync
        def fsync(fd):
            if {match!r} in os.readlink(f"/proc/self/fd/{{fd}}"):
                raise OSError(errno.ENOSPC, "No space left on device")
            return _fsync(fd)
        os.fsync = fsync
    """)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds the failing file through /proc")
def test_a_full_disk_ends_the_command_with_one_line(tmp_path):
    code = _full_disk_code("config.json") + "import runpy, sys\n" \
        f"sys.argv = ['start.run', 'run_dir={tmp_path / 'run'}']\nrunpy.run_module('start.run', run_name='__main__')\n"
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode != 0
    last = res.stdout.strip().splitlines()[-1]
    assert last == (f"error: the disk is full: {tmp_path / 'run' / 'config.json'} could not be written; free some "
                    "space and run the same command again (finished stages are kept, the interrupted one resumes; "
                    f"details: {tmp_path / 'run' / 'run.log'})")
    assert not list((tmp_path / "run").glob(".*.tmp")) and not (tmp_path / "run" / LOCK_FILE).exists()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds the failing file through /proc")
@pytest.mark.parametrize("where", ["round_1/sample/samples.jsonl", "round_1/score/.scores.jsonl"])
def test_after_a_full_disk_the_folder_resumes_to_the_uninterrupted_result(tiny_run, tmp_path, monkeypatch, where):
    from start.pipeline import run

    reference = tiny_run("reference")
    run(reference)
    cfg = tiny_run("full")
    real = os.fsync

    def full(fd):
        if where in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as err:
        run(cfg)
    run_dir = Path(cfg["run_dir"])
    assert err.value.errno == errno.ENOSPC and err.value.filename.endswith(where.split("/")[-1].lstrip("."))
    assert not [p for p in run_dir.rglob("*.tmp")]  # no half-written file left
    assert (run_dir / "round_0" / "eval" / MARKER).is_file() and not (run_dir / "round_1" / "score" / MARKER).exists()
    monkeypatch.setattr(os, "fsync", real)  # space freed
    run(cfg)
    ref_dir = Path(reference["run_dir"])
    for name in ("round_1/sample/samples.jsonl", "round_1/score/scores.jsonl", "round_1/pairs/pairs.jsonl",
                 "round_1/eval/score/scores.jsonl"):
        assert _rows(run_dir / name) == _rows(ref_dir / name), name
    metrics = [json.loads((d / "round_1" / "eval" / "metrics.json").read_text())["metrics"] for d in (run_dir, ref_dir)]
    assert metrics[0] == metrics[1]
