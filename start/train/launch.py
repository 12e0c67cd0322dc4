"""Run a training stage in this process (the default) or under ``accelerate launch`` (DDP, DeepSpeed, FSDP).

``python -m start.train.launch sft|dpo SPEC.json`` is the module entry point ``accelerate launch`` starts in
every process; the spec names the inputs, the settings and the output folder, so the trainers run unchanged.
The pipeline chooses with four keys of the ``trainer`` / ``sft`` config sections::

    launcher: inprocess | accelerate
    accelerate_config: conf/accelerate/zero3.yaml     # a file of conf/accelerate/ or your own
    accelerate_args: [--num_processes, "8"]           # further `accelerate launch` flags
    launch_prefix: [srun, --ntasks-per-node, "1"]    # run that command on every node (multi-node)

These keys decide how a stage runs, not what it computes, so they are left out of the stage fingerprints; so does
``report_to``, where the training curves go: ``tensorboard`` (the default: offline event files, in a run under
``runs/<experiment>/tb/round_N``), ``wandb``, ``mlflow``, any other name transformers knows, a list of them, or
``none``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from start.io import write_json, write_jsonl

log = logging.getLogger(__name__)
LAUNCHERS = ("inprocess", "accelerate")
LAUNCH_KEYS = ("launcher", "accelerate_config", "accelerate_args", "launch_prefix", "report_to")
# loggers the configuration check knows, and the packages one of which each needs
LOGGER_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "mlflow": ("mlflow",),
                   "comet_ml": ("comet_ml",), "clearml": ("clearml",), "dvclive": ("dvclive",),
                   "trackio": ("trackio",), "swanlab": ("swanlab",), "neptune": ("neptune",)}
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LaunchConfig:
    launcher: str = "inprocess"
    accelerate_config: str | None = None  # an `accelerate config` YAML (relative paths: to the working folder)
    accelerate_args: tuple[str, ...] = field(default_factory=tuple)
    # words before the command, e.g. [srun, --overlap, --ntasks-per-node, 1]: the same
    # `accelerate launch` on every node of a Slurm allocation (README, "Scaling out")
    launch_prefix: tuple[str, ...] = field(default_factory=tuple)
    report_to: str | tuple[str, ...] = ("tensorboard",)  # where the training curves go ("none": nowhere)

    def __post_init__(self):
        if self.launcher not in LAUNCHERS:
            raise ValueError(f"trainer.launcher must be one of {LAUNCHERS}, got {self.launcher!r}")
        if self.launcher == "accelerate" and not self.accelerate_config:
            raise ValueError("trainer.launcher=accelerate needs trainer.accelerate_config (e.g. "
                             "conf/accelerate/ddp.yaml)")
        for name in ("accelerate_args", "launch_prefix"):
            object.__setattr__(self, name, tuple(str(a) for a in getattr(self, name) or ()))
        names = (self.report_to,) if isinstance(self.report_to, str) else tuple(self.report_to or ())
        object.__setattr__(self, "report_to", tuple(str(n) for n in names if str(n) not in ("none", "")))


def split_launch(section: dict[str, Any]) -> tuple[dict[str, Any], LaunchConfig]:
    """A trainer config section without its launch keys, and those keys as a :class:`LaunchConfig`."""
    settings = {k: v for k, v in section.items() if k not in LAUNCH_KEYS}
    return settings, LaunchConfig(**{k: section[k] for k in LAUNCH_KEYS if section.get(k) is not None})


def accelerate_command(kind: str, spec: Path, launch: LaunchConfig) -> list[str]:
    """The ``accelerate launch`` command line that runs ``kind`` training from ``spec`` in every process."""
    return [*launch.launch_prefix, sys.executable, "-m", "accelerate.commands.launch",
            "--config_file", str(launch.accelerate_config),
            *launch.accelerate_args, "-m", "start.train.launch", kind, str(spec)]


def _launch(kind: str, spec: dict[str, Any], out: Path, launch: LaunchConfig) -> None:
    config = Path(str(launch.accelerate_config))
    if not config.is_file():
        raise FileNotFoundError(f"trainer.accelerate_config: {config} does not exist (relative paths are read from "
                                f"{Path.cwd()}; the project ships conf/accelerate/*.yaml)")
    out.mkdir(parents=True, exist_ok=True)
    spec_path = out / f"launch_{kind}.json"
    write_json(spec_path, spec)
    cmd = accelerate_command(kind, spec_path, launch)
    env = dict(os.environ)
    # the launched processes import this very `start` package, installed or not
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    log.info("launching %s training: %s", kind, shlex.join(cmd))
    code = subprocess.run(cmd, env=env, check=False).returncode
    if code != 0:
        raise RuntimeError(f"{kind} training under accelerate failed with exit status {code}; command: "
                           f"{shlex.join(cmd)} (see the log above)")


def run_sft(data: str | os.PathLike | Sequence[dict], model: str, settings, out_dir: str | os.PathLike, *,
            seed: int = 0, launch: LaunchConfig | None = None, log_dir: str | os.PathLike | None = None) -> Path:
    """:func:`start.train.sft.train_sft`, in this process or under ``accelerate launch``; the curves go to
    ``launch.report_to`` (TensorBoard: ``log_dir``)."""
    from start.train.sft import MODEL_INFO, train_sft

    launch = launch or LaunchConfig()
    log_dir = None if log_dir is None else str(log_dir)
    if launch.launcher == "inprocess":
        return train_sft(data, model, settings, out_dir, seed=seed, report_to=launch.report_to, log_dir=log_dir)
    out = Path(out_dir)
    if not isinstance(data, str | os.PathLike):
        out.mkdir(parents=True, exist_ok=True)
        write_jsonl(out / "sft_rows.jsonl", data)
        data = out / "sft_rows.jsonl"
    _launch("sft", {"data": str(data), "model": model, "settings": asdict(settings), "out": str(out),
                    "seed": seed, "report_to": list(launch.report_to), "log_dir": log_dir}, out, launch)
    if not (out / "model" / MODEL_INFO).is_file():
        raise RuntimeError(f"SFT under accelerate finished but {out / 'model'} holds no complete model")
    return out / "model"


def run_dpo(policy: str, pairs: str | os.PathLike, cfg, out_dir: str | os.PathLike, *,
            launch: LaunchConfig | None = None, log_dir: str | os.PathLike | None = None) -> Path:
    """:func:`start.train.dpo.train_dpo`, in this process or under ``accelerate launch``; the curves go to
    ``launch.report_to`` (TensorBoard: ``log_dir``)."""
    from start.train.dpo import train_dpo

    launch = launch or LaunchConfig()
    log_dir = None if log_dir is None else str(log_dir)
    if launch.launcher == "inprocess":
        return train_dpo(policy, pairs, cfg, out_dir, report_to=launch.report_to, log_dir=log_dir)
    out = Path(out_dir)
    _launch("dpo", {"policy": policy, "pairs": str(pairs), "config": asdict(cfg), "out": str(out),
                    "report_to": list(launch.report_to), "log_dir": log_dir}, out, launch)
    if not (out / "model" / "config.json").is_file() or not (out / "metrics.json").is_file():
        raise RuntimeError(f"DPO under accelerate finished but {out} holds no model / metrics.json")
    return out / "model"


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m start.train.launch",
                                description="One training stage from a JSON spec (what `accelerate launch` runs).")
    p.add_argument("kind", choices=["sft", "dpo"])
    p.add_argument("spec", type=Path, help="JSON written by start.train.launch.run_sft / run_dpo")
    args = p.parse_args(argv)
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(level=logging.INFO,
                        format=f"%(asctime)s %(levelname)s [rank {rank}] %(name)s: %(message)s")
    spec = json.loads(args.spec.read_text())
    if args.kind == "sft":
        from start.train.sft import SFTSettings, train_sft

        train_sft(spec["data"], spec["model"], SFTSettings(**spec["settings"]), spec["out"], seed=int(spec["seed"]),
                  report_to=spec.get("report_to", ()), log_dir=spec.get("log_dir"))
    else:
        from start.train.dpo import DPOTrainConfig, train_dpo

        train_dpo(spec["policy"], spec["pairs"], DPOTrainConfig(**spec["config"]), spec["out"],
                  report_to=spec.get("report_to", ()), log_dir=spec.get("log_dir"))


if __name__ == "__main__":
    main()
