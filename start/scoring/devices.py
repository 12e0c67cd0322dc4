"""Where a model runs: a torch device and dtype from a setting ("auto", "cpu", "cuda:1"; "auto", "float32", ...).

The judge (:mod:`start.scoring.nli`) and the policy's sampler (:mod:`start.sampling.backends`) read their
``device`` and ``dtype`` settings the same way. torch is imported only when a setting is resolved.
"""

from __future__ import annotations


def resolve_device(spec: str):
    """``spec`` as a torch device; "auto" is CUDA when available, else the CPU."""
    import torch

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def resolve_dtype(spec: str, device):
    """``spec`` as a torch dtype; "auto" is bf16 on CUDA and fp32 elsewhere (CPUs without bf16 instructions
    run bf16 several times slower)."""
    import torch

    if spec == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, spec)
