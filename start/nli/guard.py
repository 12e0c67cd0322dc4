"""The number guard's old home: it moved down into the scorer (:mod:`start.scoring.guard`).

Kept because the bundled judges' ``start_nli.json`` and model cards name ``start.nli.guard.numbers_consistent``.
"""

from start.scoring.guard import extract_quantities, guarded_entailment, numbers_consistent

__all__ = ["extract_quantities", "guarded_entailment", "numbers_consistent"]
