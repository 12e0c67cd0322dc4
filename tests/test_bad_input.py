"""Bad settings are caught before anything is written: one line naming the setting, exit status 2 (CLIs).

The table runs :func:`start.pipeline.run` (which checks the whole configuration first) on the default
configuration with one bad override each, and asserts the message and that the run folder was not created.
A few cases go through the real command lines (``start.run``, ``start.sample``, ``start.score``) to check
the exit status and that the error is one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from start.config import ConfigError
from start.pipeline import run

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"


@pytest.fixture
def files(tmp_path):
    """Paths the table refers to: an empty file, a model-less folder, questions without documents."""
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "not_a_model").mkdir()
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "nodocs.jsonl").write_text(json.dumps({"id": "q1", "question": "Who?"}) + "\n")
    return tmp_path


# (overrides, expected message); {tmp}: the fixture folder, {lm}: a tiny local model
CASES = [
    (["stage=everything"], r"^stage: must be one of warmup, sample, .* got 'everything'$"),
    (["rounds=2", "round=5"], r"^round: must be in 0\.\.2 \(rounds=2\) or null, got 5$"),
    (["rounds=-1"], r"^rounds: must be a whole number >= 0, got -1$"),
    (["run_dir=''"], r"^run_dir: is empty$"),
    (["model.name=/no/such/model"], r"^model\.name: no such model folder: /no/such/model$"),
    (["model.name={tmp}/a_file"], r"^model\.name: .*a_file is a file, not a model folder$"),
    (["model.name={tmp}/not_a_model"], r"^model\.name: .*not_a_model is a folder without config\.json"),
    (["model.name=someone/unknown-model"], r"^model\.name: 'someone/unknown-model' is no local folder .*HF_HUB_OFF"),
    (["scorer.nli.model=/missing"], r"^scorer\.nli\.model: no such model folder: /missing$"),
    (["warmup.nli.model=/missing"], r"^warmup\.nli\.model: no such model folder: /missing$"),
    (["data.source={tmp}/empty.jsonl"], r"^data\.source: .*empty\.jsonl: the file is empty$"),
    (["data.source={tmp}/missing.jsonl"], r"^data\.source: .*missing\.jsonl: no such file$"),
    (["train_source={tmp}/nodocs.jsonl", "train_split=null", "data.corpus=null"],
     r"^data\.corpus: 1 question\(s\) of .*nodocs\.jsonl have no documents and data\.corpus is null"),
    (["train_source={tmp}/nodocs.jsonl", "train_split=null", "data.corpus={tmp}/nocorpus.jsonl"],
     r"^data\.corpus: no such file: .*nocorpus\.jsonl$"),
    (["data.split=nosuchsplit", "eval_split=nosuchsplit"], r"^data\.source: .*nosuchsplit"),
    (["preference.max_pairs_per_question=0"], r"^preference\.max_pairs_per_question: is 0: no preference pair"),
    (["preference.min_margin=2"], r"^preference\.min_margin: must be in \[0, 1\], got 2"),
    (["sampler.n=0"], r"^sampler\.n: must be >= 1, got 0$"),
    # a value of the wrong type names its setting and the type the field asks for (every section, nested too)
    (["sampler.n=abc"], r"^sampler\.n: expected an integer, got 'abc'$"),
    (["sampler.temperature=hot"], r"^sampler\.temperature: expected a number, got 'hot'$"),
    (["eval.sampler.top_p=[1]"], r"^eval\.sampler\.top_p: expected a number, got \[1\]$"),
    (["trainer.lora.r=x"], r"^trainer\.lora\.r: expected an integer, got 'x'$"),
    (["trainer.precompute_ref_log_probs=maybe"], r"^trainer\.precompute_ref_log_probs: expected true or false, got"),
    (["trainer.launcher=3"], r"^trainer\.launcher: expected a string, got 3$"),
    (["sft.seed=abc"], r"^sft\.seed: expected an integer or null, got 'abc'$"),
    (["scorer.nli.batch_size=big"], r"^scorer\.nli\.batch_size: expected an integer, got 'big'$"),
    (["warmup.answer.candidates=two"], r"^warmup\.answer\.candidates: expected an integer, got 'two'$"),
    (["warmup.documents.title=foo"], r"^warmup\.documents\.title: expected one of 'generated', 'question', got 'foo'$"),
    (["sampler.top_p=0"], r"^sampler\.top_p: must be in \(0, 1\], got 0"),
    (["sampler.chunk_size=0"], r"^sampler\.chunk_size: must be a whole number >= 1, got 0$"),
    (["sampler.backend.name=tgi"], r"^sampler\.backend: backend\.name must be 'transformers' or 'vllm', got 'tgi'$"),
    (["eval.sampler.temperature=-1"], r"^eval\.sampler: sampler\.temperature must be >= 0, got -1"),
    (["trainer.beta=0"], r"^trainer\.beta: must be > 0, got 0"),
    (["trainer.learning_rate=-1"], r"^trainer\.learning_rate: must be > 0, got -1"),
    (["trainer.lora.r=0"], r"^trainer: invalid LoRA settings r=0"),
    (["sft.save_dtype=int8"], r"^sft: trainer\.save_dtype must be one of"),
    (["eval.n_boot=0"], r"^eval\.n_boot: must be a whole number >= 1, got 0$"),
    (["train_questions=0"], r"^train_questions: must be a whole number >= 1 or null, got 0$"),
    (["data.max_docs=0"], r"^max_docs: must be a whole number >= 1 or null, got 0$"),
    (["scorer.rules.citation_format=markdown"],
     r"^scorer\.rules\.citation_format: expected one of 'alce', 'lenient', got 'markdown'$"),
    (["scorer.nli.batch_size=0"], r"^scorer\.nli: batch_size must be >= 1, got 0$"),
    (["warmup.limit=0"], r"^warmup\.limit: must be >= 1 or null, got 0$"),
    (["data.retrieval.k=0"], r"^data\.retrieval: k must be a positive integer, got 0$"),
    (["model.max_model_len=8"], r"^model\.max_model_len: must be a whole number >= 16, got 8$"),
    (["sampler.max_new_tokens=4096"], r"^prompt: max_new_tokens \(4096\) must be < max_model_len \(2048\)$"),
    (["model.name={lm}", "model.max_model_len=40", "sampler.max_new_tokens=16"],
     r"^model\.max_model_len: question .*: the prompt needs \d+ tokens even with empty documents; the budget is 24"),
]


def compose_default(tmp: Path, overrides: list[str]) -> dict:
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"run_dir={tmp / 'run'}", *overrides])
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize("overrides, message", CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_setting_is_one_line_naming_it_and_nothing_is_written(files, tiny_causal_lm, overrides, message,
                                                                  monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = compose_default(files, [o.format(tmp=files, lm=tiny_causal_lm) for o in overrides])
    with pytest.raises(ConfigError) as err:
        run(cfg)
    text = str(err.value)
    assert "\n" not in text
    import re

    assert re.search(message.format(tmp=files), text), text
    assert not (files / "run").exists()


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("args, message", [
    (["start.run", "stage=everything"], "error: stage: must be one of"),
    (["start.run", "scorer.nli.model=/missing"], "error: scorer.nli.model: no such model folder: /missing"),
    (["start.sample", "sampler.n=0"], "error: sampler.n: must be >= 1, got 0"),
    (["start.run", "sampler.n=abc"], "error: sampler.n: expected an integer, got 'abc'"),
])
def test_hydra_commands_exit_2_with_one_line(tmp_path, args, message):
    out = tmp_path / "out"
    key = "run_dir" if args[0] == "start.run" else "out_dir"
    res = _cli([*args, f"{key}={out}"], tmp_path)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == message or res.stderr.strip().startswith(message), res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no run folder, no outputs, no Hydra folder


def test_score_with_a_missing_nli_model_is_a_clean_error(tmp_path):
    records = tmp_path / "x.json"
    records.write_text(json.dumps([{"id": "q", "question": "q?", "docs": [{"title": "t", "text": "x"}],
                                    "output": "x [1]."}]))
    res = _cli(["start.score", str(records), "--nli", "/missing"], tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip() == "error: --nli: no such model folder: /missing"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]
    res = _cli(["start.score", str(records), "--nli", str(tmp_path)], tmp_path)  # a folder, not a model
    assert res.returncode == 2 and res.stderr.strip().startswith("error: --nli: ")
    assert len(res.stderr.strip().splitlines()) == 1


def test_a_folder_given_to_the_scorer_is_named_a_folder(tmp_path):
    res = _cli(["start.score", str(tmp_path)], tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: {tmp_path}: is a directory, not a file of records (name the JSON or " \
                                 "JSONL file in it)"


@pytest.mark.parametrize("overrides", [[], ["debug=tiny"], ["experiment=cpu_large"], ["sampler=transformers"]])
def test_the_shipped_configurations_pass(tmp_path, overrides):
    from start.config import check_run_config

    check_run_config(compose_default(tmp_path, overrides))
    assert not (tmp_path / "run").exists()
