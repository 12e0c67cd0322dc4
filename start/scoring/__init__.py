"""The attribution scorer, usable as a library without any training code::

    from start.scoring import AttributionScorer
    report = AttributionScorer().score(records)   # records: ALCE-format dicts
    print(report.metrics["citation_f1"])
"""

from start.scoring.consensus import ConsensusResult, consensus_comprehensiveness
from start.scoring.nli import NLIBackend, NLIConfig, NLIPrediction, load_nli
from start.scoring.records import ScoreRecord, parse_record, parse_records
from start.scoring.scorer import AttributionScorer, RecordScore, ScorerConfig, ScoreReport, SentenceScore, aggregate

__all__ = [
    "AttributionScorer", "ConsensusResult", "NLIBackend", "NLIConfig", "NLIPrediction", "RecordScore",
    "ScoreRecord", "ScoreReport", "ScorerConfig", "SentenceScore", "aggregate", "consensus_comprehensiveness",
    "load_nli", "parse_record", "parse_records",
]
