"""``python -m start.warmup_cli [hydra overrides]``: run the warm-up stage by hand.

Composes ``conf/sample.yaml`` (model, data, prompt, sampler groups) with ``warmup=default`` and
``trainer@sft=sft``. Examples::

    python -m start.warmup_cli warmup.limit=8 sft.max_steps=20 out_dir=runs/manual/round_0/warmup
    python -m start.warmup_cli model.name=/models/my-1b sampler=vllm
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
log = logging.getLogger("start.warmup")


def main(argv: list[str] | None = None) -> Path:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from start.warmup.stage import warmup_stage

    overrides = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in overrides):
        print(__doc__)
        raise SystemExit(0)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="sample", overrides=["+warmup=default", "+trainer@sft=sft",
                                                       "out_dir=runs/manual/round_0/warmup", *overrides])
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] %(message)s")
    log.info("config:\n%s", OmegaConf.to_yaml(cfg, resolve=True))
    from start.config import check_warmup_config, validated_or_exit

    section = validated_or_exit(OmegaConf.to_container(cfg, resolve=True), check_warmup_config)
    model_dir = warmup_stage(section, cfg.out_dir)
    log.info("warm-up model: %s", model_dir)
    return model_dir


if __name__ == "__main__":
    main()
