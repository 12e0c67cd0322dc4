"""Label-free comprehensiveness from the samples' consensus, and the rounds' score stage that uses it.

The stub NLI (see conftest) entails a hypothesis when all its fact tokens F<n> occur in the premise."""

from __future__ import annotations

import json

import pytest
from conftest import StubNLI

from start.io import read_jsonl, write_jsonl
from start.pipeline import score_stage
from start.scoring import AttributionScorer, ScorerConfig, consensus_comprehensiveness

DOCS = [{"title": f"d{i + 1}", "text": f"Fact F{i + 1} is stated here."} for i in range(3)]
SAMPLES = [
    "F1 is true [1]. F2 is true [2].",
    "F1 is true [1]. F9 is true [1].",
    "F1 is true [2]. F9 is true [3].\nF2 is true [2].",  # the second line is not read
    "F9 is true [1].",
    "F1 and F2 are true [1][2].",
]


def records(samples, qid="q", **gold):
    return [{"id": f"{qid}#{k}", "question": "which facts hold?", "docs": DOCS, "output": s, **gold}
            for k, s in enumerate(samples)]


def scorer(nli=None):
    return AttributionScorer(nli or StubNLI(), ScorerConfig(cache=False))


def test_consensus_claims_need_agreement_and_a_document():
    res = consensus_comprehensiveness(scorer(), records(SAMPLES) + records(["F2 is true [2]."], qid="single"))
    # "F1 is true." is entailed by 3 of the other 4 samples and by d1; "F9 is true." by 2 of 4 others, but
    # no document states F9; "F2 is true." by 1 other (the last sample) only
    assert res.claims == {"q": ["F1 is true."], "single": []}
    assert [res.comprehensiveness[f"q#{k}"] for k in range(5)] == [1.0, 1.0, 1.0, 0.0, 1.0]
    assert res.comprehensiveness["single#0"] is None  # one sample: no other sample to agree with
    assert res.stats["consensus_claims"] == 1 and res.stats["questions_without_consensus"] == 1
    assert res.stats["agreed_claims"] == 2  # F1 and F9 (F9 then fails the document check)


def test_the_share_of_other_samples_decides():
    strict = consensus_comprehensiveness(scorer(), records(SAMPLES), min_share=1.0)
    assert strict.claims == {"q": []} and set(strict.comprehensiveness.values()) == {None}
    loose = consensus_comprehensiveness(scorer(), records(SAMPLES), min_share=0.25)
    # "F1 and F2 are true." is agreed on too, but no single document states both facts
    assert sorted(loose.claims["q"]) == ["F1 is true.", "F2 is true."]
    assert [loose.comprehensiveness[f"q#{k}"] for k in range(5)] == [1.0, 0.5, 0.5, 0.0, 1.0]
    with pytest.raises(ValueError, match="min_share"):
        consensus_comprehensiveness(scorer(), records(SAMPLES), min_share=1.5)


def test_empty_answers_cover_nothing_and_nli_goes_through_the_cache(tmp_path):
    nli = StubNLI()
    sc = AttributionScorer(nli, ScorerConfig(cache_dir=str(tmp_path)))
    recs = records(SAMPLES + [""])
    first = consensus_comprehensiveness(sc, recs)
    assert first.comprehensiveness["q#5"] == 0.0 and first.stats["model_pairs"] > 0
    asked = len(nli.pairs_seen)
    assert len(set(nli.pairs_seen)) == asked  # each pair once
    again = consensus_comprehensiveness(sc, recs)
    assert again.comprehensiveness == first.comprehensiveness and len(nli.pairs_seen) == asked  # all cached
    assert again.stats["cache_hits"] == again.stats["unique_pairs"] > 0
    sc.close()


def _judge():
    from start.config import JudgeConfig
    from start.scoring import NLIConfig

    return JudgeConfig(ScorerConfig(cache=False), NLIConfig())


@pytest.mark.parametrize("gold", [{"qa_pairs": [{"short_answers": ["F2"]}]}, {"claims": ["F2 is true."]},
                                  {"qa_pairs": [{"short_answers": ["F2"]}], "claims": ["F2 is true."]}, {}])
def test_consensus_score_stage_reads_no_gold_answers(tmp_path, gold):
    docs = [{**d, "distractor": i == 2} for i, d in enumerate(DOCS)]  # a data-set label, like the gold answers
    row = {"id": "q", "question": "which facts hold?", "docs": docs, "prompt": "p",
           "samples": [{"text": t, "n_tokens": 5, "finish_reason": "stop"} for t in SAMPLES], **gold}
    write_jsonl(tmp_path / "samples.jsonl", [row])
    nli = StubNLI()
    scores = score_stage(tmp_path / "samples.jsonl", _judge(), tmp_path / "score",
                         scorer=AttributionScorer(nli, ScorerConfig(cache=False)), labels="consensus",
                         consensus_share=0.5)
    rows = read_jsonl(scores)
    assert [r["comprehensiveness"] for r in rows] == [1.0, 1.0, 1.0, 0.0, 1.0]
    assert {r["comprehensiveness_source"] for r in rows} == {"consensus"}
    assert all(r["str_em"] is None and r["claims_nli"] is None for r in rows)  # gold fields never reached it
    assert all(r["distractor_citation_rate"] is None for r in rows)  # nor the distractor marks
    assert json.loads((tmp_path / "score" / "consensus.jsonl").read_text()) == {"id": "q", "claims": ["F1 is true."]}
    manifest = json.loads((tmp_path / "score" / "manifest.json").read_text())
    assert manifest["comprehensiveness"] == "consensus" and manifest["consensus"]["consensus_claims"] == 1
    # the gold variant, as the evaluation runs it, does read them
    gold_scores = read_jsonl(score_stage(tmp_path / "samples.jsonl", _judge(), tmp_path / "gold",
                                         scorer=AttributionScorer(StubNLI(), ScorerConfig(cache=False))))
    expected = None if not gold else "claims" if "claims" in gold else "short_answers"  # claims come first
    assert {r["comprehensiveness_source"] for r in gold_scores} == {expected}
