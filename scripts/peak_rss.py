"""Peak resident memory of a command and all its child processes together: ``python scripts/peak_rss.py -- CMD``.

``/usr/bin/time -v`` reports the largest single process (its "Maximum resident set size"), not what a
process and its children (vLLM's engine in its own process, next to the pipeline) hold at the same time.
This samples the whole process tree every ``--every`` seconds and prints the peak of the sum and of each
process, the command's exit status and its wall time. Output of the command is passed through.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import psutil


def tree_rss(root: psutil.Process) -> dict[int, int]:
    """pid -> resident bytes of ``root`` and every descendant that is alive now."""
    out = {}
    for p in [root, *root.children(recursive=True)]:
        try:
            out[p.pid] = p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--every", type=float, default=0.5, help="sampling interval in seconds")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    args = p.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        p.error("give the command after --")
    t0 = time.monotonic()
    child = subprocess.Popen(cmd)
    root = psutil.Process(child.pid)
    peak_total, peak_each = 0, 0
    while child.poll() is None:
        rss = tree_rss(root)
        peak_total = max(peak_total, sum(rss.values()))
        peak_each = max([peak_each, *rss.values()])
        time.sleep(args.every)
    gib = 1024 ** 3
    print(f"peak RSS, all processes together: {peak_total / gib:.2f} GiB; largest single process: "
          f"{peak_each / gib:.2f} GiB; exit status {child.returncode}; {time.monotonic() - t0:.0f} s",
          file=sys.stderr)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
