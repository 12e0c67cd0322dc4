"""Every branch of citation recall / precision and the other metrics, on hand-made cases.

The stub NLI (see conftest) entails a hypothesis when all its fact tokens F<n> occur in the premise, so
each expected number below can be checked by reading the documents and the sentence.
"""

from __future__ import annotations

import random

import pytest
from conftest import StubNLI

from start.scoring import AttributionScorer, ScorerConfig
from start.text import parse_citations, remove_citations


def rec(output, docs=("F1", "F2", "F3"), **kw):
    return {"question": "q", "docs": [{"title": f"d{i + 1}", "text": t} for i, t in enumerate(docs)],
            "output": output, **kw}


def score(records, nli=None, **cfg):
    scorer = AttributionScorer(nli or StubNLI(), ScorerConfig(cache=False, **cfg))
    return scorer.score(records)


def one(output, docs=("F1", "F2", "F3"), nli=None, **kw):
    cfg = {k: kw.pop(k) for k in list(kw) if k in ScorerConfig.__dataclass_fields__}
    return score([rec(output, docs, **kw)], nli, **cfg).records[0]


# -- citation parsing -----------------------------------------------------------------------------

@pytest.mark.parametrize("sentence, alce, lenient", [
    ("Built in 1889 [1][2].", [1, 2], [1, 2]),
    ("Built in 1889 [1, 2].", [1], [1, 2]),
    ("Built in 1889 [12].", [12], [12]),
    ("Built in 1889.", [], []),
    ("Built [3] in 1889 [1].", [3, 1], [3, 1]),
])
def test_parse_citations(sentence, alce, lenient):
    assert parse_citations(sentence) == alce
    assert parse_citations(sentence, "lenient") == lenient


def test_remove_citations_matches_reference_rule():
    assert remove_citations("Built in 1889 [1][3].") == "Built in 1889."
    # The reference only strips "[n"; a comma list leaves its tail behind. Lenient removes it whole.
    assert remove_citations("Built in 1889 [1, 3].") == "Built in 1889, 3."
    assert remove_citations("Built in 1889 [1, 3].", "lenient") == "Built in 1889."


# -- citation recall and precision ------------------------------------------------------------------

def test_single_correct_citation():
    r = one("It states F1 [1].")
    assert (r.citation_rec, r.citation_prec, r.citation_f1) == (1.0, 1.0, 1.0)
    assert r.sentences[0].relevant == [True]


def test_single_wrong_citation():
    r = one("It states F1 [2].")
    assert (r.citation_rec, r.citation_prec, r.citation_f1) == (0.0, 0.0, 0.0)
    assert r.n_citations == 1 and r.sentences[0].relevant is None


def test_joint_support_needs_both_citations():
    nli = StubNLI()
    r = one("F1 and F2 hold [1][2].", nli=nli)
    assert (r.citation_rec, r.citation_prec) == (1.0, 1.0)
    assert r.sentences[0].relevant == [True, True]
    # each single document fails, so the leave-one-out check ran for both
    assert ("Title: d2\nF2", "F1 and F2 hold.") in nli.pairs_seen
    assert ("Title: d1\nF1", "F1 and F2 hold.") in nli.pairs_seen


def test_irrelevant_citation_is_detected():
    r = one("F1 holds [1][2].")
    # d1 alone entails; d2 alone does not and d1 (the rest) still does -> d2 irrelevant
    assert r.citation_rec == 1.0 and r.citation_prec == 0.5
    assert r.sentences[0].relevant == [True, False]
    assert r.citation_f1 == pytest.approx(2 / 3)


def test_redundant_citations_are_both_relevant():
    r = one("F1 holds [1][2].", docs=("F1", "F1 F2"))
    assert r.sentences[0].relevant == [True, True] and r.citation_prec == 1.0


def test_unsupported_multi_citation_skips_precision_checks():
    nli = StubNLI()
    r = one("F4 holds [1][2].", nli=nli)
    assert (r.citation_rec, r.citation_prec, r.n_citations) == (0.0, 0.0, 2)
    assert ("Title: d1\nF1", "F4 holds.") in nli.pairs_seen  # asked only by the support check
    assert len([p for p in nli.pairs_seen if p[1] == "F4 holds."]) == 1 + 3  # joint + 3 single docs


def test_comma_list_follows_reference_unless_lenient():
    strict = one("F1 and F2 hold [1, 2].")
    assert strict.sentences[0].citations == [1] and strict.citation_rec == 0.0
    lenient = one("F1 and F2 hold [1, 2].", citation_format="lenient")
    assert lenient.sentences[0].citations == [1, 2] and lenient.citation_rec == 1.0


def test_two_digit_citation_ids():
    assert one("F1 holds [12].").sentences[0].status == "out_of_range"
    docs = tuple(f"F{i}" for i in range(1, 13))
    r = one("F12 holds [12].", docs=docs)
    assert r.sentences[0].status == "ok" and r.citation_rec == 1.0


def test_citation_after_the_period_belongs_to_the_next_sentence():
    # nltk puts "[1]" at the start of the second sentence, exactly as in the reference.
    r = one("F1 holds. [1] F2 holds [2].")
    assert [s.text for s in r.sentences] == ["F1 holds.", "[1] F2 holds [2]."]
    assert [s.status for s in r.sentences] == ["no_citation", "ok"]
    assert r.sentences[1].relevant == [False, True]
    assert (r.citation_rec, r.citation_prec) == (0.5, 0.5)


def test_no_citations_scores_zero():
    r = one("F1 holds. F2 holds.")
    assert (r.citation_rec, r.citation_prec, r.n_citations) == (0.0, 0.0, 0)


def test_all_citations_out_of_range():
    r = one("F1 holds [4]. F2 holds [5].")
    assert (r.citation_rec, r.citation_prec, r.out_of_range_sentences) == (0.0, 0.0, 2)
    assert r.n_citations == 0  # out-of-range sentences add no citations, as in the reference


def test_one_bad_id_makes_the_sentence_unsupported():
    r = one("F1 holds [1][9].")
    assert r.sentences[0].status == "out_of_range" and r.citation_rec == 0.0


def test_citation_zero_is_out_of_range():
    assert one("F3 holds [0].").sentences[0].status == "out_of_range"


def test_at_most_three_citations_are_used():
    r = one("F1 F2 F3 F4 hold [1][2][3][4].", docs=("F1", "F2", "F3", "F4"))
    assert r.sentences[0].used == [1, 2, 3] and r.n_citations == 3
    assert r.citation_rec == 0.0  # F4 is in the fourth document, which is not read
    r = one("F1 F2 F3 F4 hold [1][2][3][4].", docs=("F1", "F2", "F3", "F4"), at_most_citations=4)
    assert r.citation_rec == 1.0


def test_duplicate_citation():
    r = one("F1 holds [1][1].")
    assert r.sentences[0].used == [1, 1] and r.citation_prec == 1.0


def test_empty_output_is_left_out_of_the_means():
    rep = score([rec("F1 holds [1]."), rec("")])
    assert rep.records[1].n_sentences == 0 and rep.records[1].citation_rec is None
    assert rep.metrics["citation_rec"] == 100.0 and rep.metrics["num_empty_outputs"] == 1


def test_first_line_only():
    r = one("F1 holds [1].\nF4 holds [2].")
    assert r.n_sentences == 1 and r.citation_rec == 1.0 and r.first_line_cut
    r = one("F1 holds [1].\nF4 holds [2].", first_line_only=False)
    assert r.n_sentences == 2 and r.citation_rec == 0.5 and not r.first_line_cut


def test_dataset_aggregates():
    rep = score([rec("F1 holds [1]."), rec("F1 holds [1][2]."), rec("F1 holds [3].")])
    m = rep.metrics
    assert m["citation_rec"] == pytest.approx(100 * 2 / 3)
    assert m["citation_prec"] == pytest.approx(100 * (1 + 0.5 + 0) / 3)
    r, p = m["citation_rec"], m["citation_prec"]
    assert m["citation_f1"] == pytest.approx(2 * r * p / (r + p))
    assert m["num_examples"] == 3 and m["length"] == pytest.approx(2.0)  # "F1 holds." after citation removal


# -- correctness, comprehensiveness, robustness -----------------------------------------------------

def test_asqa_str_em_and_hit():
    qa = [{"short_answers": ["Paris"]}, {"short_answers": ["1889", "eighteen"]}]
    r = one("The tower in Paris holds F1 [1].", qa_pairs=qa)
    assert (r.str_em, r.str_hit, r.comprehensiveness) == (0.5, 0.0, 0.5)
    r = one("The tower, built in 1889 in Paris [1].", qa_pairs=qa)
    assert (r.str_em, r.str_hit) == (1.0, 1.0)


def test_qampari_sentences_and_list_metrics():
    rep = score([{**rec("Mercury [1], Venus [2], Pluto.", docs=("F1 Mercury", "F1 Venus")),
                  "question": "Planets F1?", "answers": [["Mercury"], ["Venus"], ["Mars"]]}])
    r = rep.records[0]
    assert [s.target for s in r.sentences] == ["Planets F1? Mercury", "Planets F1? Venus", "Planets F1? Pluto"]
    assert r.citation_rec == pytest.approx(2 / 3)
    assert r.qampari["prec"] == pytest.approx(2 / 3) and r.qampari["rec"] == pytest.approx(2 / 3)
    assert r.comprehensiveness == pytest.approx(2 / 3)
    assert rep.metrics["qampari_f1"] == pytest.approx(100 * 2 / 3)


def test_eli5_claims_nli():
    r = one("F1 and F2 hold [1][2].", claims=["F1", "F3"])
    assert r.claims_nli == 0.5 and r.comprehensiveness == 0.5 and r.comprehensiveness_source == "claims"


def test_yes_no_accuracy():
    assert one("Yes, because F1 holds [1].", answer=True).yes_no_correct is True
    assert one("No. F1 holds [1].", answer="yes").yes_no_correct is False
    assert one("Maybe. F1 holds [1].", answer="no").yes_no_correct is False


def test_reference_answer_gives_comprehensiveness():
    r = one("F1 holds [1].", answer="F1 is true. F3 is true.")
    assert r.comprehensiveness == 0.5 and r.comprehensiveness_source == "reference_answer"


def test_distractor_citation_rate():
    docs = [{"title": "d1", "text": "F1"}, {"title": "d2", "text": "F2", "distractor": True}]
    rep = score([{"question": "q", "docs": docs, "output": "F1 holds [1]. F2 holds [2]."}])
    assert rep.records[0].distractor_citation_rate == 0.5
    assert rep.metrics["distractor_citation_rate"] == 50.0


def test_unsupported_sentence_rate():
    r = one("F1 holds [2]. F5 holds [1].")  # the first is miscited (d1 supports it), the second invented
    assert r.sentences[0].any_doc_support is True and r.sentences[1].any_doc_support is False
    assert r.unsupported_sentence_rate == 0.5 and r.robustness == 0.5


# -- execution modes --------------------------------------------------------------------------------

def _random_record(rng: random.Random) -> dict:
    n_docs = rng.randint(1, 4)
    docs = [" ".join(f"F{rng.randint(1, 6)}" for _ in range(rng.randint(1, 2))) for _ in range(n_docs)]
    sents = []
    for _ in range(rng.randint(0, 4)):
        facts = " ".join(f"F{rng.randint(1, 6)}" for _ in range(rng.randint(1, 2)))
        cites = "".join(f"[{rng.randint(0, n_docs + 1)}]" for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4])))
        sents.append(f"{facts} hold {cites}.")
    return rec(" ".join(sents), tuple(docs), claims=[f"F{rng.randint(1, 6)}"])


def test_batched_and_sequential_agree_and_ask_the_same_pairs():
    rng = random.Random(7)
    records = [_random_record(rng) for _ in range(120)]
    seq_nli, bat_nli = StubNLI(), StubNLI()
    bat = AttributionScorer(bat_nli, ScorerConfig(cache=False)).score(records, sequential=False)
    seq = AttributionScorer(seq_nli, ScorerConfig(cache=False)).score(records, sequential=True)
    assert [r.to_dict() for r in seq.records] == [r.to_dict() for r in bat.records]
    assert seq.metrics == bat.metrics
    assert set(seq_nli.pairs_seen) == set(bat_nli.pairs_seen)
    assert all(len(c) == 1 for c in seq_nli.calls)  # one pair per model call
    assert len(bat_nli.calls) <= 4  # recall+claims, singles, leave-one-out, support check rounds
    assert len(bat_nli.pairs_seen) == len(set(bat_nli.pairs_seen))  # deduplicated


def test_cache_makes_rescoring_free(tmp_path):
    records = [rec("F1 holds [1][2]. F3 holds [3]."), rec("F2 holds [1].")]
    cfg = ScorerConfig(cache_dir=str(tmp_path))
    first = AttributionScorer(StubNLI(), cfg).score(records)
    nli = StubNLI()
    second = AttributionScorer(nli, cfg).score(records)
    assert first.stats["model_pairs"] > 0 and second.stats["model_pairs"] == 0
    assert second.stats["cache_hits"] == first.stats["unique_pairs"] and nli.calls == []
    assert first.metrics == second.metrics
    other = AttributionScorer(StubNLI(fingerprint="another-model"), cfg).score(records)
    assert other.stats["cache_hits"] == 0  # keys include the model fingerprint
