"""scripts/bench_judge_modes.py: every arithmetic mode loads a judge that answers like the fp32 one in shape, and the
int8 / ONNX Runtime modes really swap the model that reads the pairs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import bench_judge_modes  # noqa: E402

PAIRS = [("the tower was built in 1889 in paris", "the tower was built in 1889"),
         ("a cat sat on the mat", "the dog barked"), ("x", "a longer hypothesis than its premise is here")]


def _probs(judge: Path, mode: str) -> tuple[np.ndarray, object]:
    pairs, _, base = bench_judge_modes.load_mode(str(judge), mode)
    return np.asarray(base.predict(PAIRS).probs), base


def test_int8_perchannel_quantises_every_linear_layer_per_row(tiny_cross_encoder):
    import torch

    ref, _ = _probs(tiny_cross_encoder, "float32")
    probs, base = _probs(tiny_cross_encoder, "int8-dynamic-perchannel")
    quantised = [m for m in base.model.modules() if type(m).__name__ == "Linear" and m.__module__.startswith(
        "torch.ao.nn.quantized")]
    assert quantised and not any(isinstance(m, torch.nn.Linear) and type(m) is torch.nn.Linear
                                 for m in base.model.modules())
    assert all(m.weight().qscheme() == torch.per_channel_affine for m in quantised)
    assert probs.shape == ref.shape and np.all((probs >= 0) & (probs <= 1))


def test_onnxruntime_fp32_reads_the_pairs_as_torch_does(tiny_cross_encoder):
    pytest.importorskip("onnxruntime", reason="the ONNX Runtime modes need `pip install onnx onnxruntime`")
    pytest.importorskip("onnx", reason="the ONNX Runtime modes need `pip install onnx onnxruntime`")
    ref, _ = _probs(tiny_cross_encoder, "float32")
    probs, base = _probs(tiny_cross_encoder, "onnxruntime-fp32")
    assert isinstance(base.model, bench_judge_modes.OnnxModel)
    np.testing.assert_allclose(probs, ref, atol=1e-5)
    int8, base8 = _probs(tiny_cross_encoder, "onnxruntime-int8")
    assert isinstance(base8.model, bench_judge_modes.OnnxModel)
    assert int8.shape == ref.shape and np.all((int8 >= 0) & (int8 <= 1))


def test_default_modes_need_no_extra_package():
    assert not any(m.startswith("onnxruntime") for m in bench_judge_modes.DEFAULT_MODES)
    assert set(bench_judge_modes.DEFAULT_MODES) < set(bench_judge_modes.MODES)
