"""Prompt construction, generation backends and the resumable sampling stage."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from start.sampling.backends import BackendConfig, Generation, SamplingConfig, TransformersGenerator
from start.sampling.prompt import PromptConfig, build_prompt
from start.sampling.sampler import SampleInput, expand_for_scoring, run_sampling
from start.text import Document

DOCS = (Document("Eiffel Tower", "the tower was built in 1889 ."), Document("Paris", "paris is big ."))
DEMO = {"question": "is paris big ?", "docs": [{"title": "Paris", "text": "paris is big ."}],
        "answer": "paris is big [1] ."}


def cfg(**kw) -> PromptConfig:
    return PromptConfig(instruction="answer and cite", **{"max_model_len": 512, "max_new_tokens": 16, **kw})


class WordTokenizer:
    """Counts words as tokens; no chat template (plain prompt path)."""

    chat_template = None

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}


def test_prompt_has_numbered_documents_question_and_demo():
    p = build_prompt(cfg(demos=[DEMO], n_demos=1), "when was the tower built ?", DOCS, WordTokenizer())
    assert "Document [1](Title: Eiffel Tower): the tower was built in 1889 ." in p.text
    assert "Document [2](Title: Paris): paris is big ." in p.text
    assert p.text.index("answer and cite") < p.text.index("is paris big") < p.text.index("when was the tower")
    assert p.text.rstrip().endswith("Answer:") and p.n_truncated_docs == 0
    zero_shot = build_prompt(cfg(demos=[DEMO]), "when ?", DOCS, WordTokenizer())
    assert "is paris big" not in zero_shot.text


def test_prompt_uses_the_chat_template(tiny_causal_lm):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_causal_lm)
    p = build_prompt(cfg(), "when was the tower built ?", DOCS, tok)
    assert p.text.startswith("<user> answer and cite") and p.text.endswith("<assistant> ")
    plain = build_prompt(cfg(use_chat_template=False), "when ?", DOCS, tok)
    assert "<user>" not in plain.text
    # a demonstration is an earlier exchange, its answer in the assistant's turn
    shot = build_prompt(cfg(demos=[DEMO], n_demos=1), "when was the tower built ?", DOCS, tok).text
    assert shot.startswith("<user> answer and cite") and shot.count("<user>") == 2
    assert "<assistant> paris is big [1] . </s>" in shot and shot.endswith("<assistant> ")


def test_long_documents_are_shortened_to_fit():
    long_docs = (Document("A", "word " * 400), Document("B", "short text ."))
    p = build_prompt(cfg(max_model_len=200, max_new_tokens=50), "q ?", long_docs, WordTokenizer())
    assert p.n_tokens <= 150 and p.n_truncated_docs == 1 and "short text ." in p.text
    with pytest.raises(ValueError, match="even with empty documents"):
        build_prompt(cfg(max_model_len=20, max_new_tokens=15), "q ?", long_docs, WordTokenizer())


def test_prompt_config_is_validated():
    with pytest.raises(ValueError, match="n_demos"):
        cfg(n_demos=2)
    with pytest.raises(ValueError, match="max_new_tokens"):
        cfg(max_model_len=10, max_new_tokens=10)


def test_transformers_backend_is_seeded_and_returns_n_samples(tiny_causal_lm):
    gen = TransformersGenerator(str(tiny_causal_lm), BackendConfig(dtype="float32", batch_size=2))
    params = SamplingConfig(n=3, temperature=1.0, max_new_tokens=8, seed=0)
    prompts = ["<user> the tower </s> <assistant>", "<user> paris </s> <assistant>", "<user> f1 </s> <assistant>"]
    a = gen.generate(prompts, params, seeds=[1, 2, 3])
    b = gen.generate(prompts, params, seeds=[1, 2, 3])
    c = gen.generate(prompts, params, seeds=[9, 9, 9])
    assert [len(r) for r in a] == [3, 3, 3]
    assert a == b and a != c
    for row in a:
        for s in row:
            assert 1 <= s.n_tokens <= 8 and s.token_logprob_sum < 0 and math.isfinite(s.token_logprob_sum)
            assert s.finish_reason == "stop" or (s.finish_reason == "length" and s.n_tokens == 8)
    assert any(s.finish_reason == "length" for row in a for s in row)  # a random model rarely stops by itself


class ScriptedGenerator:
    """Deterministic texts from the seed; optionally dies after some calls (a killed run)."""

    tokenizer = WordTokenizer()

    def __init__(self, die_after: int | None = None):
        self.calls, self.die_after = 0, die_after

    def generate(self, prompts, params, seeds):
        if self.die_after is not None and self.calls >= self.die_after:
            raise KeyboardInterrupt("killed")
        self.calls += 1
        return [[Generation(f"claim {s % 97} [{1 + (s + k) % 3}].", -1.0 - k, 5) for k in range(params.n)]
                for s in seeds]


def items(n=10):
    return [SampleInput(f"q{i}", f"question {i} ?", DOCS, {"qa_pairs": [{"short_answers": ["1889"]}]})
            for i in range(n)]


def test_backend_dtype_auto_is_float32_on_the_cpu_and_names_are_checked(tiny_causal_lm, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert BackendConfig().torch_dtype() == "float32"
    assert BackendConfig(dtype="bfloat16").torch_dtype() == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert BackendConfig().torch_dtype() == "bfloat16"
    with pytest.raises(ValueError, match="model.dtype"):
        BackendConfig(dtype="fp8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    gen = TransformersGenerator(str(tiny_causal_lm), BackendConfig(batch_size=2))
    assert gen.model.dtype == torch.float32


def test_sampling_rows_and_citation_parsing(tmp_path):
    out = tmp_path / "samples.jsonl"
    summary = run_sampling(items(4), ScriptedGenerator(), cfg(), SamplingConfig(n=2), out, chunk_size=3)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q0", "q1", "q2", "q3"] and summary.rows_written == 4
    s = rows[0]["samples"][0]
    assert set(s) == {"text", "citations", "token_logprob_sum", "n_tokens", "finish_reason"}
    # citation [3] is out of range for 2 documents and is not counted as valid
    for r in rows:
        for smp in r["samples"]:
            assert smp["citations"] == [c for c in [int(smp["text"].split("[")[1][0])] if c <= 2]
    assert rows[0]["qa_pairs"] == [{"short_answers": ["1889"]}] and "Document [1]" in rows[0]["prompt"]
    flat = expand_for_scoring(rows)
    assert len(flat) == 8 and flat[1]["id"] == "q0#1" and flat[1]["output"] == rows[0]["samples"][1]["text"]


def test_killed_run_resumes_with_identical_output(tmp_path):
    params = SamplingConfig(n=2, seed=5)
    full = tmp_path / "full.jsonl"
    run_sampling(items(), ScriptedGenerator(), cfg(), params, full, chunk_size=3)
    part = tmp_path / "part.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_sampling(items(), ScriptedGenerator(die_after=2), cfg(), params, part, chunk_size=3)
    assert len(part.read_text().splitlines()) == 6
    with open(part, "a") as f:
        f.write('{"id": "q6", "question": "que')  # a torn write
    gen = ScriptedGenerator()
    summary = run_sampling(items(), gen, cfg(), params, part, chunk_size=3)
    assert summary.rows_skipped == 6 and summary.rows_written == 4 and gen.calls == 2
    assert part.read_text() == full.read_text()


def test_rows_of_an_incomplete_chunk_are_regenerated(tmp_path):
    params = SamplingConfig(n=1, seed=1)
    full, part = tmp_path / "full.jsonl", tmp_path / "part.jsonl"
    run_sampling(items(6), ScriptedGenerator(), cfg(), params, full, chunk_size=3)
    lines = full.read_text().splitlines(keepends=True)
    part.write_text("".join(lines[:4]))  # chunk 2 only partly on disk
    summary = run_sampling(items(6), ScriptedGenerator(), cfg(), params, part, chunk_size=3)
    assert summary.rows_skipped == 3 and part.read_text() == full.read_text()


THREE = (*DOCS, Document("Seine", "the seine flows through paris ."))


class CiteFirstGenerator:
    """A policy that always cites [1] (the document shown first), whatever the documents; records its calls."""

    tokenizer = WordTokenizer()

    def __init__(self):
        self.calls = []

    def generate(self, prompts, params, seeds, counts=None):
        counts = counts or [params.n] * len(prompts)
        self.calls.append(list(counts))
        return [[Generation(f"it is so {s % 7}-{k} [1].", -1.0, 5) for k in range(c)]
                for s, c in zip(seeds, counts, strict=True)]


def test_samples_drawn_under_several_document_orders(tmp_path):
    from start.sampling.sampler import document_orders, sample_docs

    qs = [SampleInput(f"q{i}", f"question {i} ?", THREE, {}) for i in range(4)]
    out = tmp_path / "samples.jsonl"
    gen = CiteFirstGenerator()
    run_sampling(qs, gen, cfg(), SamplingConfig(n=5, seed=3), out, chunk_size=2, doc_orders=3)
    assert gen.calls == [[2, 2, 1] * 2] * 2  # per question: 3 orders, sample s under order s % 3
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    for r in rows:
        assert r["orders"] == [list(o) for o in document_orders(r["id"], 3, 3, 3)]
        # a Latin square: every document at every position once
        assert all(sorted(column) == [0, 1, 2] for column in zip(*r["orders"], strict=True))
        assert [s["order"] for s in r["samples"]] == [0, 1, 2, 0, 1]
        assert len(r["prompts"]) == 3 and r["prompt"] == r["prompts"][0]
        for s in r["samples"]:  # each prompt shows the documents in its order
            first = r["docs"][r["orders"][s["order"]][0]]["title"]
            assert f"Document [1](Title: {first})" in r["prompts"][s["order"]]
    # scored in the order each sample saw: "[1]" is a different document in each order
    flat = expand_for_scoring(rows)
    cited_first = {tuple(d["title"] for d in rec["docs"])[0] for rec in flat if rec["id"].startswith("q0#")}
    assert cited_first == {"Eiffel Tower", "Paris", "Seine"}
    assert [d["title"] for d in sample_docs(rows[0], rows[0]["samples"][1])] == [
        THREE[i].title for i in rows[0]["orders"][1]]
    # one order (the default) writes today's rows and asks for n samples per prompt
    plain = CiteFirstGenerator()
    run_sampling(qs, plain, cfg(), SamplingConfig(n=5, seed=3), tmp_path / "one.jsonl", chunk_size=2)
    one = [json.loads(x) for x in (tmp_path / "one.jsonl").read_text().splitlines()]
    assert plain.calls == [[5, 5]] * 2 and "orders" not in one[0] and "order" not in one[0]["samples"][0]


def test_a_killed_run_with_document_orders_resumes_identically(tmp_path):
    qs = [SampleInput(f"q{i}", f"question {i} ?", THREE, {}) for i in range(6)]
    params = SamplingConfig(n=4, seed=1)
    full, part = tmp_path / "full.jsonl", tmp_path / "part.jsonl"
    run_sampling(qs, CiteFirstGenerator(), cfg(), params, full, chunk_size=2, doc_orders=4)
    lines = full.read_text().splitlines(keepends=True)
    part.write_text("".join(lines[:3]))  # the second chunk only half written
    run_sampling(qs, CiteFirstGenerator(), cfg(), params, part, chunk_size=2, doc_orders=4)
    assert part.read_text() == full.read_text()


def test_transformers_backend_draws_a_count_per_prompt(tiny_causal_lm):
    gen = TransformersGenerator(str(tiny_causal_lm), BackendConfig(dtype="float32", batch_size=4))
    params = SamplingConfig(n=3, temperature=1.0, max_new_tokens=4, seed=0)
    out = gen.generate(["<user> a </s> <assistant>", "<user> b </s> <assistant>"], params, seeds=[1, 2],
                       counts=[2, 1])
    assert [len(r) for r in out] == [2, 1]
    same = gen.generate(["<user> a </s> <assistant>"] * 2, params, seeds=[1, 2], counts=[2, 2])
    assert [len(r) for r in same] == [2, 2]


VLLM_SCRIPT = """
import json, sys
from start.sampling.backends import BackendConfig, SamplingConfig, VLLMGenerator
gen = VLLMGenerator(sys.argv[1], BackendConfig(name="vllm", dtype="float32", max_model_len=256))
params = SamplingConfig(n=2, temperature=1.0, max_new_tokens=6)
runs = [gen.generate(["<user> the tower </s> <assistant>"] * 2, params, seeds=[1, 2]) for _ in range(2)]
print(json.dumps([[[[g.text, g.token_logprob_sum, g.n_tokens] for g in row] for row in run] for run in runs]))
"""


def test_vllm_backend_on_the_cpu_build(tiny_causal_lm):
    pytest.importorskip("vllm", reason="vLLM is not installed (optional extra: `make setup-vllm`)")
    # A fresh interpreter: vLLM patches kernels across sys.modules at start-up and trips over objects
    # other tests' imports leave there; a separate process is also how the pipeline runs it.
    proc = subprocess.run([sys.executable, "-c", VLLM_SCRIPT, str(tiny_causal_lm)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = json.loads(proc.stdout.strip().splitlines()[-1])
    assert a == b  # same per-request seeds, same samples
    assert len(a) == 2 and len(a[0]) == 2 and a[0] != a[1]  # n per prompt; different seeds differ
    assert all(1 <= n <= 6 and lp < 0 for row in a for _, lp, n in row)
