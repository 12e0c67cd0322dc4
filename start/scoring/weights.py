"""Judge weights stored as int8, one scale per matrix row, and read back as float.

A base-size judge (MPNet, 110M parameters) is 219 MB in fp16; stored weight-only int8 it is about 110 MB.
Every float matrix (the embeddings, the linear layers, the head) is kept as int8 rows ``q`` with one fp16
scale per row, ``w ~= q * scale`` (symmetric, ``scale = max|row| / 127``); vectors (biases, LayerNorm) are
kept in fp16. Loading multiplies back, so the model runs in float
as usual: only the rounding of the stored weights differs from fp16.

The file is a plain safetensors file whose metadata names the format (``start_weights``); a judge folder says
it uses it in ``start_nli.json`` (``"weights_dtype": "int8"``). Plain ``from_pretrained`` cannot read it:
:func:`load_classifier` does, for either kind of folder.
"""

from __future__ import annotations

from pathlib import Path

FORMAT = "int8-rowwise-v1"
INT8_FILE = "model-int8.safetensors"
SCALE_SUFFIX = ".__int8_scale"


def quantize_state(state: dict) -> dict:
    """A float state dict -> tensors to store: int8 rows plus fp16 scales for matrices, fp16 for vectors."""
    import torch

    out = {}
    for name, t in state.items():
        if name.endswith(SCALE_SUFFIX):
            raise ValueError(f"{name}: a weight name may not end with {SCALE_SUFFIX!r}")
        t = t.detach().to("cpu")
        if not t.is_floating_point():
            out[name] = t.contiguous()
            continue
        if t.dim() != 2:
            out[name] = t.to(torch.float16).contiguous()
            continue
        w = t.to(torch.float32)
        scale = w.abs().amax(dim=1, keepdim=True) / 127.0
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        # the scale is stored in fp16: quantise against the rounded scale so the stored pair is self-consistent
        scale = scale.to(torch.float16).to(torch.float32)
        out[name] = torch.clamp(torch.round(w / scale), -127, 127).to(torch.int8).contiguous()
        out[name + SCALE_SUFFIX] = scale.squeeze(1).to(torch.float16).contiguous()
    return out


def dequantize_state(stored: dict, dtype=None) -> dict:
    """Stored tensors -> a float state dict (``dtype``, default float32)."""
    import torch

    dtype = dtype or torch.float32
    out = {}
    for name, t in stored.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        if t.dtype == torch.int8:
            scale = stored.get(name + SCALE_SUFFIX)
            if scale is None:
                raise ValueError(f"int8 weight {name} has no {name + SCALE_SUFFIX}")
            out[name] = (t.to(torch.float32) * scale.to(torch.float32).unsqueeze(1)).to(dtype)
        elif t.is_floating_point():
            out[name] = t.to(dtype)
        else:
            out[name] = t
    return out


def save_int8(model, folder: str | Path) -> Path:
    """Write ``model``'s config and its weights as int8 rows (:data:`INT8_FILE`) into ``folder``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    model.config.save_pretrained(folder)
    path = folder / INT8_FILE
    save_file(quantize_state(model.state_dict()), str(path), metadata={"format": "pt", "start_weights": FORMAT})
    return path


def read_int8(path: str | Path, dtype=None) -> dict:
    """The float state dict stored in an int8 file; refuses files of another format, naming the file."""
    from safetensors import safe_open

    path = Path(path)
    with safe_open(str(path), framework="pt") as f:
        found = (f.metadata() or {}).get("start_weights")
        if found != FORMAT:
            raise ValueError(f"{path}: not an int8 judge file (metadata start_weights={found!r}, expected {FORMAT!r})")
        stored = {k: f.get_tensor(k) for k in f.keys()}
    return dequantize_state(stored, dtype)


def is_int8_folder(settings: dict) -> bool:
    """Whether a judge folder's ``start_nli.json`` settings say its weights are int8 rows."""
    return settings.get("weights_dtype") == "int8"


def load_classifier(path: str | Path, settings: dict | None = None, *, dtype=None, **kwargs):
    """A sequence classifier from a folder: int8 rows when ``settings`` say so, else ``from_pretrained``."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    settings = settings or {}
    if not is_int8_folder(settings):
        return AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype, **kwargs)
    placement = sorted(set(kwargs) - {"local_files_only"})
    if placement:
        raise ValueError(f"{path}: int8 judge weights are loaded whole on one device; {', '.join(placement)} "
                         "cannot be passed for them")
    weights = Path(path) / settings.get("weights_file", INT8_FILE)
    if not weights.is_file():
        raise FileNotFoundError(f"{Path(path) / 'start_nli.json'} says the weights are int8, but {weights} is missing")
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_config(config)
    state = read_int8(weights)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # buffers the model rebuilds itself (position ids) may be absent; any missing weight is an error
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(f"{weights}: does not fit {config.model_type} (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]})")
    return model.to(dtype or torch.float32).eval()
