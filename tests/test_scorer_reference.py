"""The batched scorer against a short re-implementation of ALCE's reference citation loop.

The loop below is written from the metric's definition (ALCE ``compute_autoais``), one NLI call per pair,
without any of the scorer's code: per sentence, the citations ``[n`` (the first three) must jointly entail
the sentence with its citations removed (recall); in a supported sentence with several citations, a
citation is irrelevant when it alone does not entail the sentence and the others still do (precision). It
runs on 150 random records with the stub judge (a hypothesis is entailed when every fact token ``F<n>`` it
states occurs in the premise), and per-record recall/precision, the data-set metrics and the set of NLI pairs
must all agree.
"""

from __future__ import annotations

import random
import re

import pytest
from conftest import StubNLI

from start.scoring import AttributionScorer, ScorerConfig

WORDS = ("alpha", "beta", "gamma", "delta", "tower", "river", "built", "named")


def reference_loop(record: dict, nli, at_most: int = 3) -> tuple[float, float, int]:
    """(recall, precision, citations counted) of one record, the way the reference computes them."""
    from start.text import sent_tokenize  # NLTK punkt, the splitter the reference uses

    def doc(i: int) -> str:
        return f"Title: {record['docs'][i]['title']}\n{record['docs'][i]['text']}"

    def entails(premise: str, hypothesis: str) -> bool:
        return nli.predict([(premise, hypothesis)]).probs[0] >= nli.threshold

    sents = sent_tokenize(record["output"].split("\n")[0])
    entail = entail_prec = total = 0
    for sent in sents:
        target = re.sub(r"\s*\[\d+\]", "", sent).strip()
        ref = [int(m[1:]) - 1 for m in re.findall(r"\[\d+", sent)]
        if not ref or any(r < 0 or r >= len(record["docs"]) for r in ref):
            joint = False
        else:
            ref = ref[:at_most]
            total += len(ref)
            joint = entails("\n".join(doc(r) for r in ref), target)
        entail += joint
        if joint and len(ref) > 1:
            for r in ref:
                if entails(doc(r), target):
                    entail_prec += 1
                    continue
                rest = list(ref)
                rest.remove(r)
                if not entails("\n".join(doc(x) for x in rest), target):
                    entail_prec += 1
        else:
            entail_prec += joint
    return entail / len(sents), (entail_prec / total if total else 0.0), total


def random_record(rng: random.Random, i: int) -> dict:
    n_docs = rng.randint(1, 5)
    docs = [{"title": rng.choice(WORDS), "text": " ".join(rng.sample(WORDS, 2) + [f"F{f}" for f in
                                                                                 rng.sample(range(8), 3)]) + "."}
            for _ in range(n_docs)]
    sentences = []
    for _ in range(rng.randint(1, 4)):
        facts = " and ".join(f"F{f}" for f in rng.sample(range(8), rng.randint(1, 2)))
        cites = "".join(f"[{rng.randint(1, n_docs + 1)}]" for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4])))
        sentences.append(f"The {rng.choice(WORDS)} states {facts}{cites}.")
    return {"id": f"r{i}", "question": "What holds?", "docs": docs, "output": " ".join(sentences)}


def test_batched_scorer_equals_the_reference_loop_on_random_records():
    rng = random.Random(13)
    records = [random_record(rng, i) for i in range(150)]
    reference_nli = StubNLI()
    expected = [reference_loop(r, reference_nli) for r in records]

    nli = StubNLI()
    report = AttributionScorer(nli, ScorerConfig(cache=False, support_check=False)).score(records)
    for rec, got, (rec_ref, prec_ref, total) in zip(records, report.records, expected, strict=True):
        assert got.citation_rec == pytest.approx(rec_ref), rec["output"]
        assert got.citation_prec == pytest.approx(prec_ref), rec["output"]
        assert got.n_citations == total
    r = 100 * sum(e[0] for e in expected) / len(expected)
    p = 100 * sum(e[1] for e in expected) / len(expected)
    assert report.metrics["citation_rec"] == pytest.approx(r)
    assert report.metrics["citation_prec"] == pytest.approx(p)
    assert report.metrics["citation_f1"] == pytest.approx(2 * r * p / (r + p))
    # the same questions asked of the judge, each distinct pair once
    assert set(nli.pairs_seen) == set(reference_nli.pairs_seen)
    assert len(nli.pairs_seen) == len(set(nli.pairs_seen))
    # the random records exercise every branch: unsupported, supported, multi-citation with an irrelevant one
    assert 0 < r < 100 and 0 < p < 100
    assert any(0 < e[1] < 1 and e[2] > 1 for e in expected)
