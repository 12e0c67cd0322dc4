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

import glob
from pathlib import Path

FORMAT = "int8-rowwise-v1"
INT8_FILE = "model-int8.safetensors"
SCALE_SUFFIX = ".__int8_scale"
MAX_PART_BYTES = 45_000_000  # a bundled file stays under 50 MB (see "Files in parts" below)
PART_SUFFIX = ".part"


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


def save_int8(model, folder: str | Path, *, max_part_bytes: int | None = MAX_PART_BYTES) -> Path:
    """Write ``model``'s config and its weights as int8 rows (:data:`INT8_FILE`) into ``folder``; a file over
    ``max_part_bytes`` is stored in parts (:func:`split_file`). Returns the (logical) weights file's path."""
    from safetensors.torch import save_file

    folder = Path(folder)
    model.config.save_pretrained(folder)
    path = folder / INT8_FILE
    save_file(quantize_state(model.state_dict()), str(path), metadata={"format": "pt", "start_weights": FORMAT})
    if max_part_bytes is not None and path.stat().st_size > max_part_bytes:
        split_file(path, max_part_bytes)
    return path


def read_int8(path: str | Path, dtype=None) -> dict:
    """The float state dict stored in an int8 file (whole, or in parts); refuses files of another format, naming
    the file."""
    from safetensors.torch import load

    path = Path(path)
    data = read_weights(path)
    found = _metadata(data, path).get("start_weights")
    if found != FORMAT:
        raise ValueError(f"{path}: not an int8 judge file (metadata start_weights={found!r}, expected {FORMAT!r})")
    return dequantize_state(load(data), dtype)


def _metadata(data: bytes, path: Path) -> dict:
    """The ``__metadata__`` of safetensors bytes (an 8-byte little-endian header size, then a JSON header)."""
    import json

    try:
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + size])
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a safetensors file ({err})") from None
    return header.get("__metadata__") or {}


# --------------------------------------------------------------------------------------------------
# Files in parts: a weights file larger than a public Git host accepts (GitHub refuses files over 100 MiB)
# is stored as consecutive byte ranges ``<name>.01.part``, ``<name>.02.part``, ...; readers join them, and
# hashes cover the joined bytes under the file's own name, so a judge's fingerprint does not depend on
# whether its weights are whole or in parts.

def parts_of(path: str | Path) -> list[Path]:
    """The files holding ``path``'s bytes, in order: ``[path]`` when it exists whole, else its parts ([] for
    neither)."""
    path = Path(path)
    if path.is_file():
        return [path]
    return sorted(path.parent.glob(f"{glob.escape(path.name)}.[0-9][0-9]{PART_SUFFIX}"))


def logical_files(folder: str | Path, suffixes: tuple[str, ...]) -> dict[str, list[Path]]:
    """A folder's files with these suffixes by name, each with the files holding its bytes (parts joined under
    the name of the file they were split from), sorted by name."""
    out: dict[str, list[Path]] = {}
    for f in sorted(Path(folder).iterdir()):
        if f.name.endswith(PART_SUFFIX):
            whole = f.name[: -len(PART_SUFFIX)].rsplit(".", 1)[0]
            if Path(whole).suffix in suffixes:
                out.setdefault(whole, parts_of(f.parent / whole))
        elif f.is_file() and f.suffix in suffixes:
            out[f.name] = [f]
    return dict(sorted(out.items()))


def read_weights(path: str | Path) -> bytes:
    """The bytes of a file stored whole or in parts."""
    files = parts_of(path)
    if not files:
        raise FileNotFoundError(f"{path} is missing (neither the file nor its {Path(path).name}.NN{PART_SUFFIX} parts)")
    return b"".join(f.read_bytes() for f in files)


def split_file(path: str | Path, max_part_bytes: int = MAX_PART_BYTES) -> list[Path]:
    """Replace ``path`` by parts of at most ``max_part_bytes`` bytes (each written to a temporary name, then
    renamed; the whole file is removed last). Returns the parts."""
    path = Path(path)
    data = path.read_bytes()
    n = -(-len(data) // max_part_bytes)
    if n > 99:
        raise ValueError(f"{path}: {n} parts of {max_part_bytes} bytes; at most 99")
    parts = []
    for k in range(n):
        part = path.with_name(f"{path.name}.{k + 1:02d}{PART_SUFFIX}")
        tmp = part.with_name(part.name + ".tmp")
        tmp.write_bytes(data[k * max_part_bytes:(k + 1) * max_part_bytes])
        tmp.replace(part)
        parts.append(part)
    path.unlink()
    return parts


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
    if not parts_of(weights):
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
