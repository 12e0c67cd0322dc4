"""Training under `accelerate launch` with 2 CPU processes (gloo) matches one process, and only the main
process writes. Each 2-process run starts two interpreters (tens of seconds on 2 cores)."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")
pytest.importorskip("accelerate")

from test_pipeline import loop_doubles  # noqa: E402, F401 (a fixture: the rounds' test doubles)

from start.io import write_jsonl  # noqa: E402
from start.train.dpo import DPOTrainConfig, LoraSettings  # noqa: E402
from start.train.launch import LaunchConfig, run_dpo, run_sft  # noqa: E402
from start.train.sft import MODEL_INFO, SFTSettings  # noqa: E402

CPU_DDP = Path(__file__).resolve().parent.parent / "conf" / "accelerate" / "cpu_ddp.yaml"
# Same global batch and seed: 2 processes x 2 rows see the same rows per step as 1 process x 4 rows, and DDP
# averages their gradients, so the loss curves agree up to float reduction order (measured here: DPO
# identical, SFT within 3e-7).
LOSS_TOL = 1e-5

PAIRS = [{"prompt": "<user> when was the tower built ? </s> <assistant> ",
          "chosen": "the tower was built in 1889 [ 1 ] .", "rejected": "paris is big ."},
         {"prompt": "<user> is paris big ? </s> <assistant> ",
          "chosen": "paris is big [ 2 ] .", "rejected": "it f1 f2 ."},
         {"prompt": "<user> where is the eiffel tower ? </s> <assistant> ",
          "chosen": "the eiffel tower is in paris [ 1 ] .", "rejected": "the tower is big ."},
         {"prompt": "<user> what is in france ? </s> <assistant> ",
          "chosen": "paris is in france [ 1 ] [ 2 ] .", "rejected": "a title of 1925 ."}] * 2
ROWS = [{"prompt": p["prompt"], "completion": p["chosen"]} for p in PAIRS]


def _two_processes() -> LaunchConfig:
    with socket.socket() as s:  # a free rendezvous port: tests elsewhere on the machine may use the default
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return LaunchConfig("accelerate", str(CPU_DDP), ("--num_processes", "2", "--main_process_port", str(port)))


def _main_only(log: str, message: str) -> None:
    lines = [x for x in log.splitlines() if message in x]
    assert lines and all("[rank 0]" in x for x in lines), lines


def _weights(folder: Path):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _assert_close_weights(a: Path, b: Path, tol: float) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    worst = max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa)
    assert worst < tol, worst


def test_dpo_two_processes_match_one(tiny_causal_lm, tmp_path, capfd):
    pairs = tmp_path / "pairs.jsonl"
    write_jsonl(pairs, PAIRS)
    # fp32: the comparison is of the launch machinery, to 1e-5 (bf16 mixed precision rounds the two apart)
    base = dict(max_steps=3, learning_rate=5e-3, max_length=64, save_steps=100, logging_steps=1, seed=3,
                lora=LoraSettings(enabled=True, r=4, alpha=8, dropout=0.0), bf16=False)
    one = run_dpo(str(tiny_causal_lm), pairs, DPOTrainConfig(batch_size=4, **base), tmp_path / "one")
    capfd.readouterr()
    two = run_dpo(str(tiny_causal_lm), pairs, DPOTrainConfig(batch_size=2, **base), tmp_path / "two",
                  launch=_two_processes())
    log = capfd.readouterr().err
    m1, m2 = (json.loads((p.parent / "metrics.json").read_text()) for p in (one, two))
    assert (m1["processes"], m2["processes"]) == (1, 2)
    l1, l2 = ([h["loss"] for h in m["log_history"] if "loss" in h] for m in (m1, m2))
    assert len(l1) == len(l2) == 3
    assert max(abs(a - b) for a, b in zip(l1, l2, strict=True)) < LOSS_TOL, (l1, l2)
    assert l1[0] != l1[-1]  # it trained (the curves are not trivially equal)
    _main_only(log, "merging the weights gathered from 2 process(es)")
    _main_only(log, "wrote the training metrics")
    assert sorted(p.name for p in two.parent.iterdir()) == ["checkpoints", "launch_dpo.json", "metrics.json", "model",
                                                            "tb"]
    assert len(list((two.parent / "tb").glob("events.out.tfevents.*"))) == 1  # the curves: the main process's
    _assert_close_weights(one, two, 1e-4)


def test_sft_two_processes_match_one(tiny_causal_lm, tmp_path, capfd):
    base = dict(max_steps=3, learning_rate=1e-2, grad_accum=1, max_length=64, use_lora=False, lr_scheduler="constant",
                save_steps=100, seed=0, save_dtype="float32", bf16=False)
    one = run_sft(ROWS, str(tiny_causal_lm), SFTSettings(batch_size=4, **base), tmp_path / "one")
    capfd.readouterr()
    two = run_sft(ROWS, str(tiny_causal_lm), SFTSettings(batch_size=2, **base), tmp_path / "two",
                  launch=_two_processes())
    log = capfd.readouterr().err
    m1, m2 = (json.loads((p.parent / "metrics.json").read_text()) for p in (one, two))
    assert (m1["processes"], m2["processes"]) == (1, 2)
    l1, l2 = ([h["loss"] for h in m["loss_curve"]] for m in (m1, m2))
    assert len(l1) == len(l2) == 3
    assert max(abs(a - b) for a, b in zip(l1, l2, strict=True)) < LOSS_TOL, (l1, l2)
    assert l1[0] != l1[-1]
    _main_only(log, "merging the weights gathered from 2 process(es)")
    _main_only(log, "wrote the training metrics")
    assert (two / MODEL_INFO).is_file() and not (two.parent / "model.gathered").exists()
    _assert_close_weights(one, two, 1e-4)


def test_launch_settings_are_validated_and_kept_out_of_the_trainer_settings():
    from start.train.launch import accelerate_command, split_launch

    settings, launch = split_launch({"beta": 0.1, "launcher": "accelerate", "accelerate_config": "x.yaml",
                                     "accelerate_args": ["--num_processes", 8]})
    assert settings == {"beta": 0.1} and launch.accelerate_args == ("--num_processes", "8")
    cmd = accelerate_command("dpo", Path("spec.json"), launch)
    assert cmd[1:] == ["-m", "accelerate.commands.launch", "--config_file", "x.yaml", "--num_processes", "8",
                       "-m", "start.train.launch", "dpo", "spec.json"]
    assert split_launch({"beta": 0.1})[1] == LaunchConfig()
    slurm = LaunchConfig("accelerate", "x.yaml", launch_prefix=["srun", "--ntasks-per-node=1"])
    assert accelerate_command("sft", Path("s.json"), slurm)[:3] == ["srun", "--ntasks-per-node=1", sys.executable]
    with pytest.raises(ValueError, match="accelerate_config"):
        LaunchConfig("accelerate")
    with pytest.raises(ValueError, match="launcher"):
        LaunchConfig("slurm")


def test_a_missing_accelerate_config_is_named(tiny_causal_lm, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        run_dpo(str(tiny_causal_lm), tmp_path / "pairs.jsonl", DPOTrainConfig(), tmp_path / "out",
                launch=LaunchConfig("accelerate", str(tmp_path / "nope.yaml")))


@pytest.mark.parametrize("name, kind", [("single", "NO"), ("cpu_ddp", "MULTI_GPU"), ("ddp", "MULTI_GPU"),
                                        ("zero2", "DEEPSPEED"), ("zero3", "DEEPSPEED"), ("fsdp", "FSDP")])
def test_committed_accelerate_configs_load(name, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    c = load_config_from_file(str(CPU_DDP.parent / f"{name}.yaml"))
    assert c.distributed_type.value == kind
    if kind == "DEEPSPEED":
        assert c.deepspeed_config["zero_stage"] == int(name[-1])
    if name == "zero3":
        assert c.deepspeed_config["zero3_save_16bit_model"]  # the gathered model is what the main process merges
    if kind == "FSDP":
        assert c.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"


@pytest.mark.usefixtures("loop_doubles")
def test_pipeline_runs_dpo_under_accelerate(tmp_path, tiny_causal_lm, tiny_cross_encoder):
    """One `start.run`-style run whose training stage is launched in 2 processes by the pipeline itself."""
    from test_pipeline import compose_cfg

    from start.pipeline import run

    launch = _two_processes()
    args = ",".join(launch.accelerate_args)
    cfg = compose_cfg(tmp_path, tiny_causal_lm, tiny_cross_encoder, "rounds=1", "eval.base=false",
                      "trainer.launcher=accelerate", f"trainer.accelerate_config={CPU_DDP}",
                      f"trainer.accelerate_args=[{args}]")
    run(cfg)
    train = tmp_path / "run" / "round_1" / "train"
    assert json.loads((train / "metrics.json").read_text())["processes"] == 2
    assert (train / "DONE").is_file() and (tmp_path / "run" / "round_1" / "eval" / "DONE").is_file()
    manifest = json.loads((train / "manifest.json").read_text())
    assert manifest["config"]["launch"]["launcher"] == "accelerate"


# ------------------------------------------------------------------------------- data-parallel sampling


def test_shards_re_form_the_single_engine_chunks():
    from start.sampling.parallel import shard_items

    items = list(range(11))
    chunks = [items[i:i + 3] for i in range(0, 11, 3)]
    shards = [shard_items(items, 3, r, 3) for r in range(3)]
    rechunked = [s[i:i + 3] for s in shards for i in range(0, len(s), 3)]
    assert sorted(rechunked) == sorted(chunks) and sorted(sum(shards, [])) == items


def test_backend_parallel_settings_are_validated():
    from start.sampling.backends import BackendConfig

    b = BackendConfig(name="vllm", tensor_parallel_size=2, pipeline_parallel_size=2, data_parallel_size=2,
                      distributed_executor_backend="ray")
    assert b.gpus_per_engine == 4
    assert "data_parallel_size" not in b.fingerprint_fields() and "tensor_parallel_size" in b.fingerprint_fields()
    with pytest.raises(ValueError, match="vLLM"):
        BackendConfig(name="transformers", tensor_parallel_size=2)
    with pytest.raises(ValueError, match="distributed_executor_backend"):
        BackendConfig(name="vllm", distributed_executor_backend="slurm")
    with pytest.raises(ValueError, match="data_parallel_size"):
        BackendConfig(data_parallel_size=0)


def _sample(lm: Path, out: Path, sampler: str, dp: int) -> Path:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from start.config import build_sample_config
    from start.sampling.stage import sample_stage

    overrides = [f"model.name={lm}", "model.dtype=float32", "model.max_model_len=512", f"sampler={sampler}",
                 "sampler.n=2", "sampler.max_new_tokens=6", "sampler.chunk_size=2", "sampler.temperature=1.0",
                 "data.limit=5", "data.max_docs=2", "prompt.n_demos=0", f"sampler.backend.data_parallel_size={dp}",
                 f"out_dir={out / f'{sampler}-dp{dp}'}"]
    with initialize_config_dir(str(CPU_DDP.parents[1]), version_base="1.3"):
        job = build_sample_config(OmegaConf.to_container(compose("sample", overrides=overrides), resolve=True))
    return sample_stage(job.sample, job.data, model=job.model, out_dir=job.out_dir, seed=job.seed)


def test_two_engines_sample_what_one_engine_samples(tiny_causal_lm, tmp_path):
    one, two = (_sample(tiny_causal_lm, tmp_path, "transformers", dp) for dp in (1, 2))
    assert one.read_text() == two.read_text() and len(one.read_text().splitlines()) == 5
    assert not (two.parent / "shards").exists()
    manifest = json.loads((two.parent / "manifest.json").read_text())
    assert manifest["counts"]["rows_written"] == 5


@pytest.mark.slow
def test_two_vllm_engines_sample_what_one_samples(tiny_causal_lm, tmp_path):
    """The same with vLLM's CPU build: two engines in their own processes (~80 s on 2 cores)."""
    pytest.importorskip("vllm", reason="vLLM is not installed (optional extra: `make setup-vllm`)")
    one, two = (_sample(tiny_causal_lm, tmp_path, "vllm", dp) for dp in (1, 2))
    assert one.read_text() == two.read_text() and len(one.read_text().splitlines()) == 5
