"""``python -m start.run [overrides]``: START's main job -- warm-up, then R rounds of self-improvement.

Examples::

    python -m start.run                                     # embedded default (SmolLM2-135M, CPU)
    python -m start.run experiment=cpu_large                # a larger CPU experiment
    python -m start.run experiment=gpu_7b                   # a GPU user's run (7B model, vLLM, ALCE data)
    python -m start.run round=2 stage=eval                  # one piece (earlier stages must be complete)
    python -m start.run debug=tiny                          # a few questions, tiny budgets

The whole configuration is checked first (start/config.py): a bad setting is one line on stderr naming it,
exit status 2, nothing written. The resolved configuration is saved in the run folder; every stage is
resumable (see start/pipeline.py).
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("start.run")


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from start.config import ConfigError, check_run_config

    resolved = OmegaConf.to_container(cfg, resolve=True)
    try:
        check_run_config(resolved)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    from start.evaluate import collect_rounds, markdown_table
    from start.pipeline import run

    log.info("config:\n%s", OmegaConf.to_yaml(cfg, resolve=True))
    report = run(resolved)
    print(f"\nreport: {report / 'report.md'}\n")
    print(markdown_table(collect_rounds(report.parent)))


if __name__ == "__main__":
    main()
