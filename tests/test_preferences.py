"""Preference pairs from fine-grained signals, with the reward-hacking guards."""

from __future__ import annotations

import pytest

from start.preferences import PreferenceConfig, QuestionSamples, ScoredSample, best_samples, build_pairs, reward


def s(text, a=0.5, c=0.5, r=0.5, words=12, sents=2, docs=5, everything=False, cited=True):
    return ScoredSample(text, {"attributability": a, "comprehensiveness": c, "robustness": r}, words, sents, docs,
                        everything, cited)


def q(*samples, qid="q"):
    return QuestionSamples(qid, "prompt", tuple(samples))


CFG = PreferenceConfig(weights={"attributability": 1.0, "comprehensiveness": 1.0, "robustness": 1.0})


def test_reward_is_the_weighted_mean_of_available_signals():
    assert reward(s("x", a=1.0, c=0.0, r=0.5), CFG) == pytest.approx(0.5)
    only_a = ScoredSample("x", {"attributability": 0.8, "comprehensiveness": None, "robustness": None}, 9, 1, 3,
                          False, True)
    assert reward(only_a, CFG) == pytest.approx(0.8)
    assert reward(s("x", a=1, c=1, r=1, sents=0), CFG) == 0.0
    weighted = PreferenceConfig(weights={"attributability": 3.0, "comprehensiveness": 1.0})
    assert reward(s("x", a=1.0, c=0.0, r=0.0), weighted) == pytest.approx(0.75)


def test_overall_pair_best_vs_worst_tagged_by_the_biggest_contribution():
    pairs, stats = build_pairs([q(s("good", a=1.0, c=0.8), s("mid", a=0.6, c=0.6), s("bad", a=0.0, c=0.6))],
                               PreferenceConfig(weights=CFG.weights, fine_grained=False))
    (p,) = pairs
    assert (p.chosen, p.rejected, p.kind, p.signal) == ("good", "bad", "overall", "attributability")
    assert p.margin == pytest.approx((1.8 + 0.5) / 3 - (0.0 + 0.6 + 0.5) / 3)
    assert stats["pairs"] == 1 and stats["by_signal"] == {"attributability": 1}


def test_fine_grained_pair_differs_in_one_signal_only():
    cfg = PreferenceConfig(weights=CFG.weights, min_margin=0.9)  # no overall pair
    pairs, _ = build_pairs([q(s("covers", a=0.8, c=1.0), s("misses", a=0.8, c=0.2), s("other", a=0.1, c=0.9, r=0.0))],
                           cfg)
    assert [(p.chosen, p.rejected, p.signal, p.kind) for p in pairs] == [
        ("covers", "misses", "comprehensiveness", "fine_grained")]


def test_guards_keep_hacks_from_being_chosen():
    cfg = PreferenceConfig(weights=CFG.weights, fine_grained=False)
    hacks = [s("cite all", a=1.0, c=1.0, r=1.0, everything=True), s("short", a=1.0, c=1.0, r=1.0, words=3),
             s("uncited", a=1.0, c=1.0, r=1.0, cited=False)]
    pairs, stats = build_pairs([q(*hacks, s("honest", a=0.7, c=0.7, r=0.7), s("poor", a=0.1, c=0.1, r=0.1))], cfg)
    assert [(p.chosen, p.rejected) for p in pairs] == [("honest", "poor")]
    assert stats["samples_ineligible_as_chosen"] == {"cites_everything": 1, "too_short": 1, "no_citation": 1}
    # with only hacks, the question gives no pair
    _, stats = build_pairs([q(*hacks)], cfg)
    assert stats["questions_dropped"] == {"no_eligible_chosen": 1}


def test_cites_everything_is_allowed_with_few_documents():
    pairs, _ = build_pairs([q(s("both", a=1.0, docs=2, everything=True), s("none", a=0.0))],
                           PreferenceConfig(weights=CFG.weights, fine_grained=False))
    assert pairs[0].chosen == "both"


def test_drops_are_counted_with_reasons():
    cfg = PreferenceConfig(weights=CFG.weights)
    _, stats = build_pairs([q(s("same"), s("same"), qid="a"), q(s("x", a=0.5), s("y", a=0.55), qid="b")], cfg)
    assert stats["questions_dropped"] == {"identical_samples": 1, "margin_below_threshold": 1}
    assert stats["pairs"] == 0 and stats["margin_mean"] is None


def test_at_most_max_pairs_and_no_duplicates():
    cfg = PreferenceConfig(weights=CFG.weights, max_pairs_per_question=2, signal_margin=0.1, close_tolerance=1.0)
    pairs, _ = build_pairs([q(s("a", a=1.0, c=1.0, r=1.0), s("b", a=0.0, c=0.0, r=0.0), s("c", a=0.5, c=0.2))], cfg)
    assert len(pairs) == 2 and len({(p.chosen, p.rejected) for p in pairs}) == 2


def test_config_is_validated():
    with pytest.raises(ValueError, match="unknown signals"):
        PreferenceConfig(weights={"fluency": 1.0})
    with pytest.raises(ValueError, match="min_margin"):
        PreferenceConfig(min_margin=2.0)


def test_best_samples_are_the_best_eligible_answers():
    hack = s("cite all", a=1.0, c=1.0, r=1.0, everything=True)
    rows = best_samples([q(hack, s("honest", a=0.7), s("poor", a=0.1), qid="a"), q(hack, qid="b")], CFG)
    assert [(r["id"], r["prompt"], r["completion"]) for r in rows] == [("a", "prompt", "honest")]
    assert rows[0]["reward"] == pytest.approx((0.7 + 0.5 + 0.5) / 3)
