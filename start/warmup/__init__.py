"""Warm-up: the policy model writes its own attributed training data, then is fine-tuned on it.

    from start.warmup import warmup_stage
    model_dir = warmup_stage(cfg, "runs/exp/round_0/warmup")   # cfg: start.config.build_run_config(raw).warmup

Steps (each a pure function over :class:`WarmupItem`, the model behind the sampler's ``Generator``):
:func:`generate_answers`, :func:`decompose_claims`, :func:`group_claims`, :func:`generate_documents`,
then :func:`check_documents`, :func:`relabel` and :func:`verify` with an NLI backend.
"""

from start.warmup.chat import render_user_message
from start.warmup.config import WarmupConfig, WarmupPrompts, WarmupStageConfig
from start.warmup.relabel import MemoNLI, check_documents, insert_citations, relabel, to_alce, verify
from start.warmup.stage import sft_row, warmup_stage
from start.warmup.steps import (
    StepStats,
    WarmDoc,
    WarmupItem,
    clean_answer,
    decompose_claims,
    generate_answers,
    generate_documents,
    group_claims,
    group_indices,
    on_topic,
    parse_claims,
    parse_document,
    topic_words,
)

__all__ = [
    "MemoNLI", "StepStats", "WarmDoc", "WarmupConfig", "WarmupItem", "WarmupPrompts", "WarmupStageConfig",
    "check_documents", "clean_answer", "decompose_claims", "generate_answers", "generate_documents", "group_claims",
    "group_indices", "insert_citations", "on_topic", "parse_claims", "parse_document", "relabel", "render_user_message",
    "sft_row", "to_alce", "topic_words", "verify", "warmup_stage",
]
