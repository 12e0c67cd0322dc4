"""``python -m start.run [overrides]``: START's main job -- warm-up, then R rounds of self-improvement.

Examples::

    python -m start.run                                     # embedded default (SmolLM2-135M, CPU)
    python -m start.run experiment=cpu_large                # a larger CPU experiment
    python -m start.run experiment=gpu_7b                   # a GPU user's run (7B model, vLLM, ALCE data)
    python -m start.run round=2 stage=eval                  # one piece (earlier stages must be complete)
    python -m start.run debug=tiny                          # a few questions, tiny budgets

The whole configuration is built into typed sections and checked first (start/config.py): a bad setting is
one line on stderr naming it, exit status 2, nothing written; each stage then receives its own section. One run
at a time per run folder (start/lock.py): a second one stops with one line naming the first, exit status 3.
``stage=verify`` re-hashes every finished stage's outputs against its manifest and names the stages whose files
changed (exit status 1); those run again on the next run. A full disk ends the run with one line saying so. The
terminal shows one line per stage (running / done / skipped) and the final table; everything else -- the
resolved configuration, libraries' logs and warnings, progress bars, vLLM's engine output -- goes to
``<run_dir>/run.log``. The resolved configuration is saved in the run folder; every stage is resumable
(see start/pipeline.py).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import TextIO

import hydra
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("start.run")
LOG_FILE = "run.log"


class _Terminal(logging.Filter):
    """What the terminal shows: one line per stage (``start.stage``), this command's own lines, the one-off
    conversion of a built-in model, and every warning or error of the project's code; libraries' chatter
    stays in the log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name in ("start.stage", "start.run", "start.models"):  # stages; a one-off model conversion
            return True
        return record.levelno >= logging.WARNING and record.name.startswith("start")


class _StageLines(logging.StreamHandler):
    """On an interactive terminal a stage is one line: "running" is rewritten in place by "done"."""

    def __init__(self, stream: TextIO):
        super().__init__(stream)
        self.open_line = False
        self.interactive = stream.isatty()

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "stage_event", None)
        text = self.format(record)
        if self.open_line:
            text = ("\r\033[K" if event == "end" else "\n") + text
        self.open_line = self.interactive and event == "start"
        self.stream.write(text if self.open_line else text + "\n")
        self.flush()


def route_output(run_dir: Path) -> tuple[TextIO, Path]:
    """Send everything written to stdout/stderr -- libraries' logs and warnings, progress bars, vLLM's
    engine dumps, child processes (they inherit the descriptors) -- to ``<run_dir>/run.log``; return a
    stream to the terminal and the log's path. Stage lines go to both."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOG_FILE
    sys.stdout.flush()
    sys.stderr.flush()
    terminal = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, sys.stdout.fileno())
    os.dup2(fd, sys.stderr.fileno())
    os.close(fd)
    logging.captureWarnings(True)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    to_terminal = _StageLines(terminal)
    to_terminal.setFormatter(logging.Formatter("%(asctime)s  %(message)s", "%H:%M:%S"))
    to_terminal.addFilter(_Terminal())
    root.addHandler(to_terminal)
    return terminal, path


def error_line(e: BaseException, log_path: Path) -> str:
    """What the terminal shows when a run fails: the error's first line; a full disk says what to do."""
    from start.io import is_disk_full

    if is_disk_full(e):
        return (f"\nerror: the disk is full: {e.filename or 'an output'} could not be written; free some space and "
                f"run the same command again (finished stages are kept, the interrupted one resumes; details: "
                f"{log_path})")
    return f"\nerror: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}\n(details: {log_path})"


def verify_command(run_cfg) -> int:
    """``stage=verify``: one line per stage that changed (or could not be checked), a summary; exit status 1
    when a stage changed (it runs again on the next run), else 0."""
    from start.pipeline import verify

    checks = verify(run_cfg)
    changed = [c for c in checks if c.status == "changed"]
    for c in checks:
        if c.status == "changed":
            print(f"changed     {c.stage}: {', '.join(c.changed)} -> runs again on the next run")
        elif c.status == "unrecorded":
            print(f"unchecked   {c.stage}: finished before output hashes were recorded")
    ok = sum(c.status == "ok" for c in checks)
    print(f"verify {run_cfg.run_dir}: {len(checks)} finished stage(s), {ok} intact, {len(changed)} changed"
          + (f" ({', '.join(c.stage for c in changed)})" if changed else ""))
    return 1 if changed else 0


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from start.config import check_run_config, validated_or_exit
    from start.lock import RunLocked, run_lock

    run_cfg = validated_or_exit(OmegaConf.to_container(cfg, resolve=True), check_run_config)
    try:
        with run_lock(run_cfg.run_dir):  # before anything is written to the folder, the log included
            if run_cfg.stage == "verify":
                code = verify_command(run_cfg)
                if code:
                    raise SystemExit(code)
                return
            _run(cfg, run_cfg)
    except RunLocked as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(3) from None


def _run(cfg: DictConfig, run_cfg) -> None:
    terminal, log_path = route_output(run_cfg.run_dir)
    from start.evaluate import headline
    from start.pipeline import run

    log.info("START %s -> %s (details: %s)", run_cfg.experiment_name, run_cfg.run_dir, log_path)
    logging.getLogger("start.config").info("config:\n%s", OmegaConf.to_yaml(cfg, resolve=True))
    t0 = time.monotonic()
    try:
        report = run(run_cfg)
    except Exception as e:  # the traceback goes to the log (Hydra prints it to stderr); one line here
        print(error_line(e, log_path), file=terminal)
        raise
    log.info("finished in %.0f s", time.monotonic() - t0)
    print(f"\nreport: {report / 'report.md'}\n\n{headline(report.parent)}", file=terminal)


if __name__ == "__main__":
    main()
