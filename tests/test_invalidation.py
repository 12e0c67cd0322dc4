"""Change one setting after a complete run: exactly the stages that depend on it run again.

One tiny run (random citing Llama, random NLI judge whose probabilities spread over [0, 1], transformers
backend, questions from local files), then eight changes applied one after the other. After each, the
stages whose ``DONE`` marker was rewritten are compared with the stages the change feeds into; every other
stage must have been skipped (marker untouched). A stage runs again when its fingerprint changed: its
settings, or the content of what it reads (questions and documents, model weights, scores, pairs).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import build_cross_encoder
from test_pipeline import compose_cfg

from start.io import write_jsonl
from start.pipeline import run
from start.stage import model_fingerprint

R0 = {"round_0/eval_base/sample", "round_0/eval_base/score", "round_0/eval_base",
      "round_0/eval/sample", "round_0/eval/score", "round_0/eval", "round_0/baselines"}
EVAL1 = {"round_1/eval/sample", "round_1/eval/score", "round_1/eval"}
ROUND1 = {"round_1/sample", "round_1/score", "round_1/pairs", "round_1/train"} | EVAL1
ROUND2 = {s.replace("round_1", "round_2") for s in ROUND1}


def _markers(run_dir: Path) -> dict[str, int]:
    return {str(p.parent.relative_to(run_dir)): p.stat().st_mtime_ns for p in run_dir.rglob("DONE")}


def _training_rows(round_dir: Path) -> list[tuple]:
    rows = [json.loads(x) for x in (round_dir / "pairs" / "pairs.jsonl").read_text().splitlines()]
    return [(r["prompt"], r["chosen"], r["rejected"]) for r in rows]


def _model_hash(round_dir: Path) -> str:
    return model_fingerprint(round_dir / "train" / "model")


TEXTS = ("the tower was built in 1889 .", "paris is in france .", "the eiffel tower is big .", "f1 f2 f3 .",
         "it was built in paris .", "the tower is in france .", "paris is big .")


def questions(prefix: str, n: int, docs: int = 3) -> list[dict]:
    """ALCE records in the tiny models' words (documents the judge can read, short answers to match)."""
    return [{"id": f"{prefix}{i}", "question": f"question : when was the tower {i} built ?",
             "docs": [{"title": "tower", "text": TEXTS[(i + k) % len(TEXTS)]} for k in range(docs)],
             "qa_pairs": [{"short_answers": ["1889"]}]} for i in range(n)]


@pytest.fixture
def setup(tmp_path, citing_causal_lm, monkeypatch):
    import start.preferences

    # samples of 10 tokens are mostly cut, and cut samples are never chosen: count them complete, so that
    # every round has preference pairs to train on
    monkeypatch.setattr(start.preferences, "hit_token_limit", lambda sample, limit: False)
    nli = build_cross_encoder(tmp_path / "nli", seed=0, init_range=0.5)
    write_jsonl(tmp_path / "train.jsonl", questions("t", 4))
    write_jsonl(tmp_path / "dev.jsonl", questions("d", 3))
    settings = {"data.max_docs": 3, "sampler.n": 3, "preference.min_margin": 0.0, "trainer.learning_rate": 2e-2,
                "preference.min_attributability": 0.0,
                "eval.n_boot": 50, "rounds": 1}
    base = [f"train_source={tmp_path / 'train.jsonl'}", f"eval_source={tmp_path / 'dev.jsonl'}", "train_split=null",
            "eval_split=null", "sampler.max_new_tokens=10", "+scorer.nli.threshold=0.25", "scorer.eval_nli=null",
            "trainer.lora.enabled=false"]

    def go() -> set[str]:
        before = _markers(tmp_path / "run")
        cfg = compose_cfg(tmp_path, citing_causal_lm, nli, *base, *(f"{k}={v}" for k, v in settings.items()))
        run(cfg)
        after = _markers(tmp_path / "run")
        return {k for k, t in after.items() if before.get(k) != t}

    return tmp_path, nli, settings, go


def test_a_changed_setting_reruns_exactly_what_depends_on_it(setup):
    tmp, nli, settings, go = setup
    assert go() == R0 | ROUND1  # the first run: everything
    metrics = json.loads((tmp / "run" / "round_0" / "eval_base" / "metrics.json").read_text())["metrics"]
    assert metrics["citation_rec"]["value"] > 0 and metrics["citation_prec"]["value"] > 0  # real citations
    assert go() == set()  # nothing changed: everything skipped

    def change(key, value, expected):
        settings[key] = value
        assert go() == expected, key

    # the bootstrap only: the evaluations' own samples and scores stay
    change("eval.n_boot", 60, {"round_0/eval_base", "round_0/eval", "round_1/eval", "round_0/baselines"})
    # other pairs file: training runs again; what reads the model runs again only when the weights changed
    # (the same (prompt, chosen, rejected) rows under other labels train the same weights)
    r1 = tmp / "run" / "round_1"
    pairs, weights = _training_rows(r1), _model_hash(r1)
    settings["preference.min_margin"] = 0.6
    changed = go()
    same_rows = _training_rows(r1) == pairs
    assert (_model_hash(r1) == weights) == same_rows
    assert changed == {"round_1/pairs", "round_1/train"} | (set() if same_rows else EVAL1)
    change("trainer.learning_rate", 3e-2, {"round_1/train"} | EVAL1)
    # the training samples (not the evaluations': they have their own sampler.n)
    change("sampler.n", 2, ROUND1)
    # the source file of the training questions edited in place: a document's text in every question
    rows = [json.loads(x) for x in (tmp / "train.jsonl").read_text().splitlines()]
    for row in rows:
        row["docs"][0]["text"] = "the eiffel tower was built in paris ."
    write_jsonl(tmp / "train.jsonl", rows)
    assert go() == ROUND1
    # the NLI judge rebuilt at the same path: every score, and what reads scores; no sampling of round 0/1
    shutil.rmtree(nli)
    build_cross_encoder(nli, seed=1, init_range=0.5)
    assert go() == (R0 - {"round_0/eval_base/sample", "round_0/eval/sample"}) | ROUND1 - {"round_1/sample"}
    # fewer documents per question: every prompt changes; training runs again when its pairs file changed
    # (with min_margin 0.6 a round may have no pair at all, before and after)
    pairs_file = (tmp / "run" / "round_1" / "pairs" / "pairs.jsonl").read_bytes()
    settings["data.max_docs"] = 2
    changed = go()
    same_pairs = (tmp / "run" / "round_1" / "pairs" / "pairs.jsonl").read_bytes() == pairs_file
    assert changed == R0 | ROUND1 - ({"round_1/train"} if same_pairs else set())
    # one more round: only its stages
    change("rounds", 2, ROUND2)
