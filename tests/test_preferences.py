"""Preference pairs from fine-grained signals, with the reward-hacking guards."""

from __future__ import annotations

import pytest

from start.preferences import (
    PreferenceConfig,
    QuestionSamples,
    ScoredSample,
    best_samples,
    build_pairs,
    ineligibility,
    reward,
)
from start.text import parse_citations


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
    assert stats["samples_ineligible_as_chosen"] == {"cites_everything": 1, "too_short": 1, "no_citation": 1,
                                                     "below_min_attributability": 1}  # "poor"
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


# -- samples scored by the real scorer (stub NLI: a sentence is entailed when its F<n> facts are in the premise)

def scored_questions(*questions, first_line_only=True, max_new_tokens=None, distractors=()):
    """``questions``: (docs, [sample text or (text, finish_reason, n_tokens)], gold fields) -> QuestionSamples
    built through ``question_samples`` from the scorer's RecordScores."""
    from conftest import StubNLI

    from start.preferences import question_samples
    from start.sampling.sampler import expand_for_scoring
    from start.scoring import AttributionScorer, ScorerConfig

    rows = []
    for k, (docs, samples, gold) in enumerate(questions):
        smp = []
        for x in samples:
            text, reason, n = (x, "stop", 10) if isinstance(x, str) else x
            smp.append({"text": text, "n_tokens": n} | ({"finish_reason": reason} if reason else {}))
        rows.append({"id": f"q{k}", "question": "which facts hold?", "prompt": f"prompt {k}", "samples": smp,
                     "docs": [{"title": f"d{i + 1}", "text": f"Fact {t} is stated here."}
                              | ({"distractor": True} if i + 1 in distractors else {}) for i, t in enumerate(docs)],
                     **gold})
    scorer = AttributionScorer(StubNLI(), ScorerConfig(cache=False, first_line_only=first_line_only))
    report = scorer.score(expand_for_scoring(rows))
    return question_samples(rows, {r.id: r for r in report.records}, first_line_only=first_line_only,
                            max_new_tokens=max_new_tokens)


DOCS3, DOCS5 = ("F1", "F2", "F3"), ("F1", "F2", "F3", "F4", "F5")


@pytest.mark.parametrize("docs", [DOCS3, DOCS5])
def test_cites_everything_counts_every_in_range_citation(docs):
    all_ids = "".join(f"[{i + 1}]" for i in range(len(docs)))
    (qs,) = scored_questions((docs, [f"F1 and F2 and F3 all hold true {all_ids}.",
                                     "F1 and F2 and F3 all hold true [1][2][3].",
                                     f"F1 holds in this text {all_ids}[9]."], {}))
    everything = [x.cites_everything for x in qs.samples]
    # with 5 documents only the first sample cites them all (the scorer uses 3 of them); the third's [9] is ignored
    assert everything == ([True, True, True] if len(docs) == 3 else [True, False, True])
    assert ineligibility(qs.samples[0], PreferenceConfig()) == "cites_everything"


def test_out_of_range_citations_are_not_citations():
    (qs,) = scored_questions((DOCS3, ["F1 holds in this text [7].", "F1 holds in this text [1].", "F1 holds."], {}))
    assert [x.has_citation for x in qs.samples] == [False, True, False]
    assert ineligibility(qs.samples[0], PreferenceConfig()) == "no_citation"


def test_trained_text_is_the_scored_text():
    two_lines = "F1 holds in this text [1].\nF7 is made up and [2] never checked"
    (qs,) = scored_questions((DOCS3, [two_lines, "F1 holds in this text [2]."], {}))
    assert qs.samples[0].text == "F1 holds in this text [1]." and qs.samples[0].signals["attributability"] == 1.0
    pairs, _ = build_pairs([qs], PreferenceConfig(fine_grained=False))
    assert [(p.chosen, p.rejected) for p in pairs] == [("F1 holds in this text [1].", "F1 holds in this text [2].")]
    (whole,) = scored_questions((DOCS3, [two_lines], {}), first_line_only=False)
    assert whole.samples[0].text == two_lines


def test_samples_cut_at_max_new_tokens_are_never_chosen():
    cut = ("F1 holds in this text [1] and then it", "length", 16)
    old_row_cut = ("F1 holds in this text [1]. F2 holds", None, 16)  # no finish_reason: n_tokens decides
    later_line_cut = ("F1 holds in this text [1].\nF2 holds and then", "length", 16)
    (qs,) = scored_questions((DOCS3, [cut, old_row_cut, later_line_cut, "F1 holds in this text [3]."], {}),
                             max_new_tokens=16)
    cfg = PreferenceConfig(fine_grained=False)
    assert [ineligibility(x, cfg) for x in qs.samples] == ["cut_at_max_tokens", "cut_at_max_tokens", None,
                                                           "below_min_attributability"]
    pairs, stats = build_pairs([qs], cfg)
    assert [p.chosen for p in pairs] == ["F1 holds in this text [1]."]  # the complete first line of the third
    assert stats["samples_ineligible_as_chosen"]["cut_at_max_tokens"] == 2


def test_no_pair_prefers_a_less_attributable_answer():
    gold = {"qa_pairs": [{"short_answers": ["F2"]}]}
    # "F2 [1]" is correct but its citation supports nothing; "F1 [1]" is attributable but wrong
    half = "The answer is F1 as stated [1]. It is F3 too [1]."  # attributability 0.5, comprehensiveness 0
    (qs,) = scored_questions((DOCS3, ["The answer is F2 as stated [1].", "The answer is F1 as stated [1].",
                                      "The answer is F2 as stated [2].", half], gold))
    assert [x.signals["attributability"] for x in qs.samples] == [0.0, 1.0, 1.0, 0.5]
    assert [x.signals["comprehensiveness"] for x in qs.samples] == [1.0, 0.0, 1.0, 0.0]
    cfg = PreferenceConfig(weights={"attributability": 1.0, "comprehensiveness": 1.0}, min_margin=0.0,
                           signal_margin=0.5, close_tolerance=1.0, min_attributability=0.0)
    # the first answer's reward (0.5) beats the last one's (0.25), but it is less attributable
    assert reward(qs.samples[0], cfg) > reward(qs.samples[3], cfg)
    pairs, _ = build_pairs([qs], PreferenceConfig(**{**cfg.__dict__, "max_pairs_per_question": 10}))
    assert pairs and all(p.chosen != "The answer is F2 as stated [1]." for p in pairs)
    assert ("The answer is F2 as stated [2].", "The answer is F2 as stated [1].") in [(p.chosen, p.rejected)
                                                                                        for p in pairs]


def _random_answer(rng, n_docs):
    sents = []
    for _ in range(rng.randint(0, 3)):
        facts = " and ".join(f"F{rng.randint(1, 7)}" for _ in range(rng.randint(1, 2)))
        cites = "".join(f"[{rng.randint(1, n_docs + 2)}]" for _ in range(rng.choice([0, 1, 1, 2, 3, 5])))
        sents.append(f"{facts} holds in this text {cites}.")
    return " ".join(sents)


@pytest.mark.parametrize("seed", range(4))
def test_every_pair_keeps_the_invariants(seed):
    import random

    rng = random.Random(seed)
    golds = [{}, {"qa_pairs": [{"short_answers": ["F1"]}, {"short_answers": ["F3"]}]},
             {"claims": ["F2 holds.", "F4 holds."]}, {"qa_pairs": [{"short_answers": ["F2"]}], "claims": ["F1 x."]}]
    questions = []
    for k in range(12):
        docs = DOCS3 if k % 2 else DOCS5
        samples = [(_random_answer(rng, len(docs)), rng.choice(["stop", "stop", "length"]), 10) for _ in range(5)]
        questions.append((docs, samples, golds[k % len(golds)]))
    qs = scored_questions(*questions, distractors=(4, 5) if seed % 2 else ())  # marked as in the new data set
    if seed % 2:
        assert any(x.signals["robustness"] not in (None, 0.0, 1.0) for q in qs for x in q.samples)
    for cfg in (PreferenceConfig(), PreferenceConfig(min_margin=0.0, signal_margin=0.0, close_tolerance=1.0,
                                                     min_attributability=0.0, max_pairs_per_question=6,
                                                     require_citation=False, min_words=0),
                PreferenceConfig(weights={"comprehensiveness": 1.0, "robustness": 1.0}, min_margin=0.0,
                                 signal_margin=0.0, close_tolerance=1.0, min_attributability=0.3)):
        pairs, stats = build_pairs(qs, cfg)
        by_text = {(q.id, x.text): x for q in qs for x in q.samples}
        keys = [(p.id, frozenset((p.chosen, p.rejected))) for p in pairs]
        assert len(keys) == len(set(keys))  # (A, B) and (B, A) never both
        for p in pairs:
            chosen, rejected = by_text[(p.id, p.chosen)], by_text[(p.id, p.rejected)]
            assert ineligibility(chosen, cfg) is None and not chosen.cut_at_limit
            a_c, a_r = chosen.signals["attributability"], rejected.signals["attributability"]
            assert a_c >= a_r and a_c >= cfg.min_attributability
            assert reward(chosen, cfg) > reward(rejected, cfg) and p.margin > 0
        assert stats["pairs"] == len(pairs)
    assert build_pairs(qs, PreferenceConfig(min_margin=0.0, signal_margin=0.0, close_tolerance=1.0,
                                            min_attributability=0.0))[0]  # the loose setting does give pairs


def test_pair_floor_table_rebuilds_a_rounds_pairs_per_floor(tmp_path):
    """scripts/pair_floors.py: a finished round's samples and scores re-paired under several floors."""
    import json
    import sys
    from dataclasses import asdict
    from pathlib import Path

    from conftest import StubNLI

    from start.io import write_json, write_jsonl
    from start.sampling.sampler import expand_for_scoring
    from start.scoring import AttributionScorer, ScorerConfig

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import pair_floors

    gold = {"qa_pairs": [{"short_answers": ["F2"]}]}
    # (attributability, comprehensiveness): (1, 1), (0, 1), (0, 0)
    texts = ["The answer is F2 as stated [2].", "The answer is F2 as stated [1].", "The answer is F1 as stated [3]."]
    rows = [{"id": "q0", "question": "which?", "prompt": "p", "docs": [{"title": f"d{i}", "text": f"Fact {t} is "
             "stated here."} for i, t in enumerate(DOCS3, 1)], "samples": [{"text": t, "n_tokens": 9,
                                                                          "finish_reason": "stop"} for t in texts],
             **gold}]
    report = AttributionScorer(StubNLI(), ScorerConfig(cache=False)).score(expand_for_scoring(rows))
    rd = tmp_path / "run" / "round_1"
    write_jsonl(rd / "sample" / "samples.jsonl", rows)
    write_jsonl(rd / "score" / "scores.jsonl", [r.to_dict() for r in report.records])
    pc = PreferenceConfig(weights={"attributability": 1.0, "comprehensiveness": 1.0}, min_margin=0.0,
                          max_pairs_per_question=5)
    write_json(rd / "pairs" / "manifest.json", {"config": asdict(pc)})
    write_json(rd.parent / "config.json", {"scorer": {"rules": {"first_line_only": True}},
                                           "sampler": {"max_new_tokens": 96}})
    table = pair_floors.floor_table(rd, [0.0, 0.6, 1.0])
    assert [t["floor"] for t in table] == [0.0, 0.6, 1.0]
    counts = [t["pairs"] for t in table]
    # floor 0 keeps a comprehensiveness pair whose chosen answer's citation supports nothing
    assert counts == [3, 2, 2] and table[0]["chosen_unsupported_share"] == pytest.approx(1 / 3)
    for t in table[1:]:  # above a floor every chosen answer is attributable
        assert t["chosen_attributability"] >= t["floor"] and t["chosen_unsupported_share"] == 0.0
    assert pair_floors.main([str(rd), "--floors", "0.5", "--out", str(tmp_path / "f.json")]) == 0
    assert json.loads((tmp_path / "f.json").read_text())["rounds"][0]["floors"][0]["floor"] == 0.5


# -- position-proof pairs: samples drawn under several document orders (sampler.doc_orders)

def ordered_questions(n_questions=4, per_order=2, n_docs=3):
    """Questions whose samples come from a policy that always cites [1]: "F1 holds in this text [1]." under
    every order of the documents F1 (the one that supports it), F2, F3 -- right only when F1 is shown first."""
    from conftest import StubNLI

    from start.preferences import question_samples
    from start.sampling.sampler import document_orders, expand_for_scoring
    from start.scoring import AttributionScorer, ScorerConfig

    rows = []
    for k in range(n_questions):
        orders = document_orders(f"q{k}", n_docs, n_docs, 0)
        rows.append({"id": f"q{k}", "question": "which facts hold?", "prompt": f"prompt {k}/0",
                     "docs": [{"title": f"d{i + 1}", "text": f"Fact F{i + 1} is stated here."} for i in range(n_docs)],
                     "orders": [list(o) for o in orders], "prompts": [f"prompt {k}/{j}" for j in range(n_docs)],
                     "samples": [{"text": "F1 holds in this text [1].", "n_tokens": 8, "finish_reason": "stop",
                                  "order": j % n_docs} for j in range(per_order * n_docs)]})
    report = AttributionScorer(StubNLI(), ScorerConfig(cache=False)).score(expand_for_scoring(rows))
    return rows, question_samples(rows, {r.id: r for r in report.records})


def test_pairs_from_a_cite_first_policy_cite_every_position_equally_often():
    rows, qs = ordered_questions()
    # scored in the order each sample saw: [1] supports it only where F1 was shown first
    for r, q in zip(rows, qs, strict=True):
        assert [x.signals["attributability"] for x in q.samples] == [
            float(r["orders"][s["order"]][0] == 0) for s in r["samples"]]
    cfg = PreferenceConfig(fine_grained=False, permutations=3)
    pairs, stats = build_pairs(qs, cfg)
    assert stats["distinct_pairs"] == len(qs) and stats["pairs"] == 3 * len(qs) and stats["permutations"] == 3
    # the pairs carry no position: both sides cite every position equally often
    assert stats["cited_positions"] == {"chosen": [4, 4, 4], "rejected": [4, 4, 4]}
    by_id = {r["id"]: r for r in rows}
    for p in pairs:
        r = by_id[p.id]
        j = r["orders"].index(p.order)
        assert p.prompt == r["prompts"][j]  # the prompt that shows the documents in the pair's order
        (chosen,), (rejected,) = parse_citations(p.chosen), parse_citations(p.rejected)
        assert p.order[chosen - 1] == 0 and p.order[rejected - 1] != 0  # renumbered: F1's position there
        assert p.chosen.startswith("F1 holds in this text [")
    # one shared order per pair: each pair keeps its content, under one seeded order
    one, stats1 = build_pairs(qs, PreferenceConfig(fine_grained=False, permutations=1))
    assert len(one) == len(qs) and sum(stats1["cited_positions"]["chosen"]) == len(qs)
    assert {p.order[parse_citations(p.chosen)[0] - 1] for p in one} == {0}


def test_same_words_citing_another_document_is_another_answer():
    _, qs = ordered_questions(n_questions=1, per_order=1)
    # three identical texts, three different answers (each cites the document shown first to it)
    assert len({x.text for x in qs[0].samples}) == 1
    pairs, stats = build_pairs(qs, PreferenceConfig(fine_grained=False))
    assert len(pairs) == 1 and "identical_samples" not in stats["questions_dropped"]
    # the best sample trains with the prompt it was sampled with
    (best,) = best_samples(qs, PreferenceConfig())
    winner = next(x for x in qs[0].samples if x.signals["attributability"] == 1.0)
    assert best["prompt"] == qs[0].prompts[winner.order] and best["completion"] == winner.text


def test_an_answer_citing_a_missing_document_is_never_chosen():
    (qs,) = scored_questions((DOCS3, ["F1 holds in this text [1]. F2 holds in this text [2][4].",
                                      "F1 holds in this text [3]."], {}))
    assert qs.samples[0].cites_missing and qs.samples[0].signals["attributability"] > 0.5
    assert ineligibility(qs.samples[0], PreferenceConfig()) == "cites_missing_document"
    pairs, stats = build_pairs([qs], PreferenceConfig(min_attributability=0.0))
    assert all(p.chosen != qs.samples[0].text for p in pairs)
    assert stats["samples_ineligible_as_chosen"]["cites_missing_document"] == 1


def test_a_signal_with_weight_zero_is_off():
    # without attributability: no floor of its own is implied, and the chosen side may be less attributable
    cfg = PreferenceConfig(weights={"attributability": 0.0, "comprehensiveness": 1.0, "robustness": 0.0},
                           min_attributability=0.0)
    pairs, stats = build_pairs([q(s("covers", a=0.2, c=1.0), s("misses", a=0.9, c=0.1))], cfg)
    assert [(p.chosen, p.signal) for p in pairs] == [("covers", "comprehensiveness")] * 1
    assert set(stats["by_signal"]) == {"comprehensiveness"}
    assert reward(s("x", a=0.0, c=0.5, r=1.0), cfg) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="permutations"):
        PreferenceConfig(permutations=0)
