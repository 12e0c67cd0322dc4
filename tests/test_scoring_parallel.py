"""Scoring spread over processes or devices gives the numbers one device gives; a seq2seq judge loads in
bf16 with a device map."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from start.scoring.nli import NLIConfig, load_nli

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo_answers.json"
NLI_DIR = ROOT / "start" / "assets" / "nli-minilm"
PAIRS = [("the tower was built in 1889 .", "the tower was built in 1889 ."),
         ("paris is in france . the tower is big .", "the tower is in paris ."),
         ("it was built in 1925 .", "the tower was built in 1889 ."),
         ("the eiffel tower is in paris , france .", "paris is big ."),
         ("title : the tower . the tower was built in 1889 in paris .", "the tower is big .")] * 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not (NLI_DIR / "config.json").is_file(), reason="the bundled NLI model is missing")
def test_two_processes_score_byte_identically_to_one(tmp_path):
    """`accelerate launch` with 2 CPU processes (gloo): rank 0 scores, both ranks run NLI batches."""
    from start.score import main

    opts = ["--no-cache", "--batch-size", "4", "--device", "cpu", "--no-progress"]
    assert main([str(DEMO), "--out", str(tmp_path / "one.json"), *opts]) == 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "accelerate.commands.launch",
           "--config_file", str(ROOT / "conf" / "accelerate" / "cpu_ddp.yaml"), "--num_processes", "2",
           "--main_process_port", str(_free_port()), "-m", "start.score_parallel", str(DEMO),
           "--out", str(tmp_path / "two.json"), *opts]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "two.json").read_bytes() == (tmp_path / "one.json").read_bytes()
    assert (tmp_path / "two.detail.jsonl").read_bytes() == (tmp_path / "one.detail.jsonl").read_bytes()
    served = [x for x in done.stderr.splitlines() if "served" in x and "NLI requests" in x]
    assert len(served) == 1 and "[rank 1]" in served[0] and " 0 NLI requests" not in served[0], served
    assert not list(tmp_path.glob("*two*.tmp*"))  # one writer: nothing half-written left behind


def test_device_replicas_give_one_device_numbers(tiny_cross_encoder):
    from start.scoring.parallel import DeviceReplicasNLI

    one = load_nli(NLIConfig(model=str(tiny_cross_encoder), device="cpu", batch_size=2, progress=False))
    two = load_nli(NLIConfig(model=str(tiny_cross_encoder), devices=["cpu", "cpu"], batch_size=2, progress=False))
    assert isinstance(two, DeviceReplicasNLI) and two.replicas[0].model is not two.replicas[1].model
    assert two.fingerprint == one.fingerprint  # the cache is shared with single-device runs
    a, b = one.predict(PAIRS), two.predict(PAIRS)
    assert a.probs.tobytes() == b.probs.tobytes() and (a.truncated == b.truncated).all()
    with pytest.raises(ValueError, match="device_map"):
        NLIConfig(devices=["cuda:0", "cuda:1"], extra={"device_map": "auto"})


def test_seq2seq_judge_loads_in_bf16_with_a_device_map(tiny_t5_nli):
    """What TRUE T5-11B on several GPUs uses (`extra.device_map=auto`, bf16); here the map has one device."""
    full = load_nli(NLIConfig(model=str(tiny_t5_nli), device="cpu", dtype="float32", progress=False))
    mapped = load_nli(NLIConfig(model=str(tiny_t5_nli), dtype="bfloat16", progress=False,
                                extra={"device_map": "auto"}))
    import torch

    assert mapped.model.dtype == torch.bfloat16
    assert {p.device.type for p in mapped.model.parameters()} == {"cuda" if torch.cuda.is_available() else "cpu"}
    a, b = full.predict(PAIRS), mapped.predict(PAIRS)
    assert np.abs(a.probs - b.probs).max() < 0.02  # bf16 rounding only
    # other arithmetic, other probabilities: the cache keeps them apart (the device map itself changes nothing)
    assert mapped.fingerprint != full.fingerprint
    again = load_nli(NLIConfig(model=str(tiny_t5_nli), dtype="bfloat16", progress=False))
    assert again.fingerprint == mapped.fingerprint

