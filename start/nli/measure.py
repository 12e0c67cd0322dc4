"""Running and measuring a judge being built: tokenised batches (shared with training), 3-label probabilities,
ROC AUC, the accuracy-maximising threshold, held-out metrics with and without the number guard, the probe set
and inference speed.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from start.nli import data as D
from start.scoring.guard import numbers_consistent


def encode(tokenizer, pairs: Sequence[D.NLIPair], max_length: int) -> list[dict[str, list[int]]]:
    """Tokenise (premise, hypothesis); only the premise is truncated, so the claim is never cut."""
    enc = tokenizer(
        [p.premise for p in pairs],
        [p.hypothesis for p in pairs],
        truncation="only_first",
        max_length=max_length,
    )
    # Encoders without segment ids (MPNet, RoBERTa-style) get none: collate then sends none to the model.
    types = enc.get("token_type_ids")
    return [{"input_ids": enc["input_ids"][i]} | ({"token_type_ids": types[i]} if types is not None else {})
            for i in range(len(pairs))]


def bucketed_batches(lengths: Sequence[int], batch_size: int, rng: random.Random, chunk: int = 64) -> list[list[int]]:
    """Shuffle, then sort by length inside windows of ``chunk`` batches and shuffle the batches: batches hold
    pairs of similar length (little padding) while the order stays random."""
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    batches = []
    window = batch_size * chunk
    for start in range(0, len(idx), window):
        part = sorted(idx[start : start + window], key=lambda i: lengths[i])
        batches.extend(part[j : j + batch_size] for j in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def collate(features: Sequence[dict[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    n = max(len(f["input_ids"]) for f in features)
    ids = torch.full((len(features), n), pad_id, dtype=torch.long)
    tt = torch.zeros((len(features), n), dtype=torch.long)
    mask = torch.zeros((len(features), n), dtype=torch.long)
    for i, f in enumerate(features):
        k = len(f["input_ids"])
        ids[i, :k] = torch.tensor(f["input_ids"])
        if "token_type_ids" in f:
            tt[i, :k] = torch.tensor(f["token_type_ids"])
        mask[i, :k] = 1
    out = {"input_ids": ids, "attention_mask": mask}
    return out | ({"token_type_ids": tt} if "token_type_ids" in features[0] else {})


@torch.inference_mode()
def predict_proba(
    model,
    tokenizer,
    pairs: Sequence[D.NLIPair],
    max_length: int,
    batch_size: int = 64,
    desc: str | None = None,
) -> np.ndarray:
    """Softmax over the 3 labels, rows in input order (batches are length-sorted internally)."""
    feats = encode(tokenizer, pairs, max_length)
    order = sorted(range(len(feats)), key=lambda i: len(feats[i]["input_ids"]))
    out = np.zeros((len(feats), len(D.LABELS)), dtype=np.float32)
    model.eval()
    for s in tqdm(range(0, len(order), batch_size), desc=desc, disable=desc is None, mininterval=5):
        idx = order[s : s + batch_size]
        logits = model(**collate([feats[i] for i in idx], tokenizer.pad_token_id)).logits.float()
        out[idx] = torch.softmax(logits, dim=-1).numpy()
    return out


# ------------------------------------------------------------------------------------------- metrics


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    pos = positive.astype(bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def best_threshold(p_entail: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """Threshold on P(entailment) maximising binary accuracy (midpoints between sorted scores)."""
    s = np.sort(np.unique(p_entail))
    cands = np.concatenate([[0.0], (s[:-1] + s[1:]) / 2, [1.0]]) if len(s) > 1 else np.array([0.5])
    best_t, best_acc = 0.5, -1.0
    for t in cands:
        acc = float(((p_entail >= t) == positive).mean())
        # ties: prefer the threshold closest to 0.5 (more stable than an extreme one)
        if acc > best_acc + 1e-12 or (abs(acc - best_acc) <= 1e-12 and abs(t - 0.5) < abs(best_t - 0.5)):
            best_t, best_acc = float(t), acc
    return best_t, best_acc


def _r(x: float) -> float | None:
    """Round for JSON; NaN (e.g. AUC of a one-class subset) becomes null."""
    return None if math.isnan(x) else round(x, 4)


def evaluate(pairs: Sequence[D.NLIPair], probs: np.ndarray, threshold: float) -> dict:
    """3-way accuracy, binary entailment AUC and accuracy at ``threshold``, model-only and with the guard,
    overall and per source."""
    gold = np.array([D.LABEL2ID[p.label] for p in pairs])
    pos = gold == D.LABEL2ID["entailment"]
    p_ent = probs[:, D.LABEL2ID["entailment"]]
    guard = np.array([numbers_consistent(p.premise, p.hypothesis) for p in pairs])

    def block(mask: np.ndarray) -> dict:
        g, pr, pe, gu, ps = gold[mask], probs[mask], p_ent[mask], guard[mask], pos[mask]
        pred_bin = pe >= threshold
        pred_guard = pred_bin & gu
        # Guarded P(entail): set to 0 where the guard fires (for the AUC of the combined system).
        return {
            "n": int(mask.sum()),
            "accuracy_3way": round(float((pr.argmax(1) == g).mean()), 4),
            "entail_auc": _r(roc_auc(pe, ps)),
            "entail_accuracy_at_threshold": round(float((pred_bin == ps).mean()), 4),
            "entail_auc_with_guard": _r(roc_auc(np.where(gu, pe, 0.0), ps)),
            "entail_accuracy_with_guard": round(float((pred_guard == ps).mean()), 4),
            "entailed_fraction": round(float(ps.mean()), 4),
        }

    out = {"all": block(np.ones(len(pairs), dtype=bool))}
    sources = np.array([p.source for p in pairs])
    for s in sorted(set(sources)):
        out[s] = block(sources == s)
    return out


def load_probe(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                row = json.loads(line)
                missing = {"premise", "hypothesis", "entailed", "kind"} - set(row)
                if missing:
                    raise ValueError(f"{path}:{n}: probe row lacks {sorted(missing)}")
                rows.append(row)
    return rows


def evaluate_probe(model, tokenizer, rows: list[dict], threshold: float, max_length: int) -> dict:
    pairs = [D.NLIPair(r["premise"], r["hypothesis"], "entailment", "probe", "probe") for r in rows]
    p_ent = predict_proba(model, tokenizer, pairs, max_length)[:, D.LABEL2ID["entailment"]]
    model_ok, guard_ok, by_kind = [], [], {}
    failures = []
    for r, pe in zip(rows, p_ent, strict=True):
        m = bool(pe >= threshold)
        g = m and numbers_consistent(r["premise"], r["hypothesis"])
        model_ok.append(m == r["entailed"])
        guard_ok.append(g == r["entailed"])
        k = by_kind.setdefault(r["kind"], {"n": 0, "model_correct": 0, "guard_correct": 0})
        k["n"] += 1
        k["model_correct"] += int(m == r["entailed"])
        k["guard_correct"] += int(g == r["entailed"])
        if m != r["entailed"]:
            failures.append({"hypothesis": r["hypothesis"], "entailed": r["entailed"], "p_entail": round(float(pe), 4)})
    return {
        "n": len(rows),
        "accuracy_model_only": round(float(np.mean(model_ok)), 4),
        "accuracy_with_guard": round(float(np.mean(guard_ok)), 4),
        "by_kind": by_kind,
        "model_only_failures": failures,
    }


def measure_speed(model, tokenizer, pairs: Sequence[D.NLIPair], max_length: int, batch_size: int = 32) -> dict:
    """fp32 PyTorch inference, batches in the given (unsorted) order with dynamic padding."""
    feats = encode(tokenizer, pairs, max_length)
    batches = [collate(feats[i : i + batch_size], tokenizer.pad_token_id) for i in range(0, len(feats), batch_size)]
    model.eval()
    with torch.inference_mode():
        model(**batches[0])  # warm-up
        t0 = time.perf_counter()
        for b in batches:
            model(**b)
        dt = time.perf_counter() - t0
    return {
        "pairs_per_s": round(len(feats) / dt, 1),
        "batch_size": batch_size,
        "n_pairs": len(feats),
        "mean_tokens": round(float(np.mean([len(f["input_ids"]) for f in feats])), 1),
        "dtype": "float32",
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "note": "held-out VitaminC pairs in file order, dynamic padding; machine shared with other work",
    }
