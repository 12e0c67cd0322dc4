"""Offline NLI cross-encoder (entailment / neutral / contradiction) for the attribution scorer.

Importing this package is cheap: torch and transformers are only imported by `start.nli.train` and
`start.nli.measure`.
Build the embedded default model with ``python -m start.nli build --out start/assets/nli-minilm --seed 13``.
"""

from start.scoring.guard import numbers_consistent

DEFAULT_MODEL_DIR = "start/assets/nli-minilm"
LABELS = ("entailment", "neutral", "contradiction")

__all__ = ["DEFAULT_MODEL_DIR", "LABELS", "numbers_consistent"]
