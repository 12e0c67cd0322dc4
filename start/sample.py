"""``python -m start.sample [hydra overrides]``: sample N cited answers per question.

Examples::

    python -m start.sample                                   # SmolLM2-135M, embedded dev split, transformers
    python -m start.sample sampler=vllm sampler.n=8 data.split=train
    python -m start.sample model.name=/models/my-7b data.source=asqa_eval_gtr_top100.json sampler=vllm
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("start.sample")


@hydra.main(config_path="../conf", config_name="sample", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from start.config import check_sample_config, validated_or_exit
    from start.sampling.stage import sample_stage

    job = validated_or_exit(OmegaConf.to_container(cfg, resolve=True), check_sample_config)
    log.info("config:\n%s", OmegaConf.to_yaml(cfg, resolve=True))
    path = sample_stage(job.sample, job.data, model=job.model, out_dir=job.out_dir, seed=job.seed)
    log.info("samples: %s", path)


if __name__ == "__main__":
    main()
