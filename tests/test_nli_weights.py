"""Int8 judge weights (start.scoring.weights): what is stored, how close it reads back, how judges load it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from start.scoring import weights as W


def test_matrices_become_int8_rows_within_half_a_step():
    import torch

    torch.manual_seed(0)
    w = torch.randn(6, 40) * torch.tensor([1e-3, 0.1, 1.0, 5.0, 30.0, 0.0]).unsqueeze(1)
    state = {"m": w, "bias": torch.randn(40), "ids": torch.arange(5)}
    stored = W.quantize_state(state)
    assert stored["m"].dtype == torch.int8 and stored["m" + W.SCALE_SUFFIX].dtype == torch.float16
    assert stored["bias"].dtype == torch.float16 and stored["ids"].dtype == torch.int64
    back = W.dequantize_state(stored)
    assert set(back) == {"m", "bias", "ids"} and back["m"].dtype == torch.float32
    step = stored["m" + W.SCALE_SUFFIX].float().unsqueeze(1)
    assert bool(((back["m"] - w).abs() <= step / 2 + 1e-7).all())  # rounding only, scale per row
    assert bool((back["m"][5] == 0).all())  # an all-zero row stays zero
    assert int(stored["m"].abs().max()) <= 127
    assert torch.equal(back["ids"], state["ids"])


def test_a_scale_name_cannot_be_a_weight_name():
    import torch

    with pytest.raises(ValueError, match="may not end"):
        W.quantize_state({"x" + W.SCALE_SUFFIX: torch.zeros(2, 2)})


def _int8_judge(src, dst):
    """Copy a cross-encoder folder and store its weights as int8 rows, as `start.nli build --weights int8` does."""
    import torch
    from transformers import AutoModelForSequenceClassification

    shutil.copytree(src, dst)
    model = AutoModelForSequenceClassification.from_pretrained(src, dtype=torch.float32)
    for f in dst.glob("model*.safetensors"):
        f.unlink()
    path = W.save_int8(model, dst)
    (dst / "start_nli.json").write_text(json.dumps({"weights_dtype": "int8", "weights_file": path.name,
                                                   "threshold": 0.5}))
    return model


def test_int8_judge_reads_back_close_to_the_float_model(tiny_cross_encoder, tmp_path):
    import torch

    model = _int8_judge(tiny_cross_encoder, tmp_path / "int8")
    settings = json.loads((tmp_path / "int8" / "start_nli.json").read_text())
    back = W.load_classifier(tmp_path / "int8", settings)
    assert type(back) is type(model) and back.config.id2label == model.config.id2label
    ids = torch.randint(1, model.config.vocab_size, (4, 12))
    with torch.inference_mode():
        want = torch.softmax(model(input_ids=ids).logits, -1)
        got = torch.softmax(back(input_ids=ids).logits, -1)
    assert float((want - got).abs().max()) < 0.02
    assert not torch.equal(want, got)  # it really went through int8


def test_load_nli_runs_an_int8_judge(tiny_cross_encoder, tmp_path):
    from start.scoring.nli import NLIConfig, load_nli

    _int8_judge(tiny_cross_encoder, tmp_path / "int8")
    pairs = [("alpha beta gamma", "beta"), ("delta", "alpha gamma")]
    cfg = dict(progress=False, premise_window_words=0, number_guard=False, ensemble=False)
    full = load_nli(NLIConfig(model=str(tiny_cross_encoder), **cfg))
    int8 = load_nli(NLIConfig(model=str(tmp_path / "int8"), **cfg))
    assert np.allclose(full.predict(pairs).probs, int8.predict(pairs).probs, atol=0.02)
    assert full.fingerprint != int8.fingerprint


def test_int8_folder_errors_name_the_file(tiny_cross_encoder, tmp_path):
    from safetensors.torch import save_file

    _int8_judge(tiny_cross_encoder, tmp_path / "int8")
    settings = json.loads((tmp_path / "int8" / "start_nli.json").read_text())
    weights = tmp_path / "int8" / W.INT8_FILE
    with pytest.raises(ValueError, match="device_map"):
        W.load_classifier(tmp_path / "int8", settings, device_map="auto")
    save_file(W.read_int8(weights), str(weights), metadata={"format": "pt"})  # float tensors, no format tag
    with pytest.raises(ValueError, match=f"{weights}: not an int8 judge file"):
        W.load_classifier(tmp_path / "int8", settings)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="start_nli.json says the weights are int8"):
        W.load_classifier(tmp_path / "int8", settings)


def test_weights_in_parts_load_and_fingerprint_like_the_whole_file(tiny_cross_encoder, tmp_path):
    """Bundled files stay under 50 MB: a big weights file is stored in parts, read and hashed as the whole."""
    from start.scoring.nli import NLIConfig, load_nli

    _int8_judge(tiny_cross_encoder, tmp_path / "whole")
    whole_file = tmp_path / "whole" / W.INT8_FILE
    size = whole_file.stat().st_size
    shutil.copytree(tmp_path / "whole", tmp_path / "parts")
    parts = W.split_file(tmp_path / "parts" / W.INT8_FILE, max_part_bytes=size // 3 + 1)
    assert len(parts) == 3 and not (tmp_path / "parts" / W.INT8_FILE).exists()
    assert all(p.stat().st_size <= size // 3 + 1 for p in parts) and parts[0].name == W.INT8_FILE + ".01.part"
    assert W.read_weights(tmp_path / "parts" / W.INT8_FILE) == whole_file.read_bytes()
    a, b = (load_nli(NLIConfig(model=str(tmp_path / f), progress=False)) for f in ("whole", "parts"))
    assert a.fingerprint == b.fingerprint  # caches and stage fingerprints do not change
    pairs = [("Title: x\nthe tower was built in 1889", "built in 1889"), ("paris is big", "paris is small")]
    assert np.allclose(a.predict(pairs).probs, b.predict(pairs).probs)
    # a missing part is an error naming the file, not a silent half model
    parts[1].unlink()
    with pytest.raises(ValueError, match="safetensors"):
        W.read_int8(tmp_path / "parts" / W.INT8_FILE)
    for p in tmp_path.joinpath("parts").glob("*.part"):
        p.unlink()
    with pytest.raises(FileNotFoundError, match="is missing"):
        W.read_weights(tmp_path / "parts" / W.INT8_FILE)


def test_save_int8_splits_only_a_file_over_the_limit(tiny_cross_encoder, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_cross_encoder, dtype=torch.float32)
    path = W.save_int8(model, tmp_path / "small")
    assert path.is_file() and not list((tmp_path / "small").glob("*.part"))
    path = W.save_int8(model, tmp_path / "big", max_part_bytes=path.stat().st_size // 2 - 1)
    assert not path.exists() and len(W.parts_of(path)) == 3
    assert W.read_int8(path).keys() == W.read_int8(tmp_path / "small" / W.INT8_FILE).keys()


def test_no_bundled_file_is_over_50_mb():
    from start.scoring.nli import ASSETS_DIR

    big = [str(f.relative_to(ASSETS_DIR)) for f in ASSETS_DIR.rglob("*") if f.is_file() and f.stat().st_size > 50e6]
    assert not big
