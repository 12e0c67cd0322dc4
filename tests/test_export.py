"""python -m start.export: a fake finished run (tiny random models saved with save_pretrained) exported, and
the folders loaded back offline with transformers and datasets; refusals and the hub check stop with one line
and leave nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from start.export import ExportError, export, main
from start.io import write_json, write_jsonl
from start.stage import StageRun, write_content_hash

ROOT = Path(__file__).resolve().parent.parent
PAIRS = [{"id": "q1", "prompt": "<user> when was the tower built ? </s> <assistant> ",
          "chosen": "the tower was built in 1889 [1] .", "rejected": "paris is big .", "signal": "attributability",
          "kind": "overall", "margin": 0.5, "chosen_scores": {"attributability": 1.0},
          "rejected_scores": {"attributability": 0.0}}] * 3
WARMUP = [{"id": "t1", "prompt": "<user> question </s> <assistant> ", "completion": "the tower was built [1] .",
           "question": "when was the tower built ?", "docs": [{"title": "tower", "text": "built in 1889",
                                                               "distractor": False}],
           "answer": "the tower was built [1] .", "distractor_positions": [], "uncited_answer": "the tower was built .",
           "claims": ["the tower was built"], "dropped_sentences": [], "n_truncated_docs": 0}] * 2


def _model(src: Path, dst: Path, shift: float) -> Path:
    """A copy of the tiny random model, its weights shifted (each stage's model is told apart by them)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    with torch.no_grad():
        model.lm_head.weight.add_(shift)
    model.save_pretrained(dst)
    AutoTokenizer.from_pretrained(src).save_pretrained(dst)
    write_content_hash(dst)
    return dst


@pytest.fixture
def fake_run(tmp_path, tiny_causal_lm) -> Path:
    run = tmp_path / "runs" / "demo"
    config = {"experiment_name": "demo", "run_dir": str(run), "rounds": 1, "seed": 0, "model": {"name": str(
        tiny_causal_lm)}, "data": {"source": "embedded"}, "train_split": "train", "eval_split": "dev",
        "sampler": {"n": 4, "temperature": 0.7, "top_p": 0.9, "max_new_tokens": 48},
        "trainer": {"beta": 0.1, "learning_rate": 5e-4, "lora": {"r": 16}}, "sft": {"learning_rate": 1e-3},
        "scorer": {"nli": {"model": "default"}}, "preference": {"max_pairs_per_question": 1}}
    write_json(run / "config.json", config)
    stage = StageRun(run / "round_0" / "warmup", "w", config={}, seed=0)
    write_jsonl(run / "round_0" / "warmup" / "data" / "warmup.jsonl", WARMUP)
    write_json(run / "round_0" / "warmup" / "stats.json", {"questions": 3, "examples": 2, "dropped_by_step": {}})
    _model(tiny_causal_lm, run / "round_0" / "warmup" / "model", 0.0)
    stage.finish(counts={})
    stage = StageRun(run / "round_1" / "pairs", "p", config={}, seed=0)
    write_jsonl(run / "round_1" / "pairs" / "pairs.jsonl", PAIRS)
    write_json(run / "round_1" / "pairs" / "stats.json", {"pairs": 3, "questions": 3, "questions_with_pairs": 3})
    stage.finish(counts={})
    stage = StageRun(run / "round_1" / "train", "t", config={}, seed=0)
    _model(tiny_causal_lm, run / "round_1" / "train" / "model", 0.5)
    stage.finish(counts={})
    metric = {"value": 41.5, "low": 30.25, "high": 52.75}
    write_json(run / "report" / "rounds.json", [{"round": "0", "metrics": {"citation_f1": metric}},
                                                {"round": "1", "metrics": {"citation_f1": {**metric, "value": 47.25}}}])
    write_jsonl(run / "round_1" / "eval" / "sample" / "samples.jsonl",
                [{"id": "d1", "prompt": "<user> Answer with citations. ``` </s> <assistant> ", "samples": []}])
    return run


def _head(folder: Path) -> list[float]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))["lm_head.weight"][0, :3].tolist()


def test_the_exported_folders_load_offline(fake_run, tmp_path, monkeypatch):
    import torch
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = export(fake_run, 1, tmp_path / "export")
    model = AutoModelForCausalLM.from_pretrained(out / "model", dtype=torch.float32)
    assert model.lm_head.weight[0, :3].tolist() == pytest.approx(_head(fake_run / "round_1" / "train" / "model"))
    assert _head(out / "model") != pytest.approx(_head(fake_run / "round_0" / "warmup" / "model"))  # round 1's
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    assert tokenizer.apply_chat_template([{"role": "user", "content": "question"}], tokenize=False)
    gen = GenerationConfig.from_pretrained(out / "model")
    assert (gen.do_sample, gen.temperature, gen.top_p, gen.max_new_tokens) == (True, 0.7, 0.9, 48)
    pairs = load_from_disk(str(out / "pairs"))
    assert pairs.to_list() == PAIRS
    warm = load_from_disk(str(out / "warmup"))
    assert warm.to_list() == WARMUP
    card = (out / "model" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\n")
    assert "| **1** (this model) | - | - | 47.2 [30.2, 52.8] |" in card
    assert "````text\n<user> Answer with citations. ``` </s> <assistant> \n````" in card  # fenced safely
    assert "load_from_disk" in (out / "pairs" / "README.md").read_text()
    assert "3 preference pairs" in (out / "pairs" / "README.md").read_text()
    assert "2 attributed answers" in (out / "warmup" / "README.md").read_text()
    names = sorted(p.name for p in (out / "model").iterdir())
    assert ".start-content-hash.json" not in names and "start_config.json" in names
    for f in out.rglob("*"):  # no machine's folder in anything published
        if f.suffix in (".md", ".json"):
            assert str(tmp_path) not in f.read_text(), f
    assert json.loads((out / "export.json").read_text())["from"] == {
        "model": "round_1/train/model", "pairs": "round_1/pairs/pairs.jsonl",
        "warmup": "round_0/warmup/data/warmup.jsonl"}


def test_round_0_is_the_warm_up_model(fake_run, tmp_path):
    old = os.umask(0o022)
    try:
        out = export(fake_run, 0, tmp_path / "export0")
    finally:
        os.umask(old)
    for p in (out, out / "model", out / "model" / "README.md", out / "model" / "model.safetensors"):
        assert p.stat().st_mode & 0o777 in (0o755, 0o644), p  # others may read an export
    assert _head(out / "model") == pytest.approx(_head(fake_run / "round_0" / "warmup" / "model"))
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "model", "warmup"]


def test_what_cannot_be_exported_is_one_line_and_nothing_is_written(fake_run, tmp_path, capsys):
    out = tmp_path / "export"

    def refused(*args: str) -> str:
        assert main([str(fake_run), "--out", str(out), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and not out.exists(), err
        return err

    assert "--round 2: the run has rounds 0..1" in refused("--round", "2")
    (fake_run / "round_1" / "train" / "DONE").rename(fake_run / "round_1" / "train" / "DONE.bak")
    assert "round_1/train is not finished (no DONE marker)" in refused("--round", "1")
    (fake_run / "round_1" / "train" / "DONE.bak").rename(fake_run / "round_1" / "train" / "DONE")
    rows = fake_run / "round_1" / "pairs" / "pairs.jsonl"
    rows.write_text(rows.read_text().replace("1889", "1890"))
    assert refused("--round", "1") == ("error: round_1/pairs changed since it finished (pairs.jsonl); python -m "
                                       f"start.run stage=verify run_dir={fake_run}, then run it again")
    out.mkdir()
    assert main([str(fake_run), "--round", "0", "--out", str(out)]) == 2
    assert "exists; choose another --out or pass --overwrite" in capsys.readouterr().err


def test_an_interrupted_export_leaves_nothing(fake_run, tmp_path, monkeypatch):
    import start.export

    def fail(*args, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(start.export, "_dataset", fail)
    with pytest.raises(OSError):
        export(fake_run, 1, tmp_path / "export")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # no export, no temporary folder


@pytest.mark.parametrize("env, message", [
    ({"HF_HUB_OFFLINE": "1"}, "error: --push-to-hub: HF_HUB_OFFLINE is set"),
    ({"HF_HUB_OFFLINE": "0", "HF_TOKEN": ""}, "error: --push-to-hub: no Hugging Face token"),
    # a closed port on this machine: what a machine without a network gets
    ({"HF_HUB_OFFLINE": "0", "HF_TOKEN": "hf_test", "HF_ENDPOINT": "http://127.0.0.1:9"},
     "error: --push-to-hub: the Hugging Face Hub cannot be reached or refuses the token"),
])
def test_push_to_hub_without_the_hub_stops_before_writing(fake_run, tmp_path, env, message):
    home = tmp_path / "hf-home"  # no token saved on this machine is found
    full = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HOME": str(home), **env}
    if not env.get("HF_TOKEN"):
        full.pop("HF_TOKEN", None)
    res = subprocess.run([sys.executable, "-m", "start.export", str(fake_run), "--round", "1", "--out",
                          str(tmp_path / "export"), "--push-to-hub", "someone/start-demo"], env=full,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    err = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(err) == 1 and err[0].startswith(message) and err[0].endswith("nothing was written"), res.stderr
    assert not (tmp_path / "export").exists()


def test_a_hub_name_must_be_user_slash_name():
    from start.export import check_hub

    with pytest.raises(ExportError, match="is not a repository name"):
        check_hub("just-a-name")
