"""Benchmark: how well each bundled NLI judge agrees with people on citation judgments -> bench/judge.{json,md}.

For each judge (the scorer with the model's stored settings: reader, number guard, threshold):
* accuracy and Cohen's kappa vs the people for sentence recall and citation precision (>= 1) on ALCE's
  human-judged development sentences (``--human``), beside the reference judge's labels stored in the file
  (TRUE-11B in ALCE);
* held-out VitaminC entailment AUC (as measured by the model's build on its test split, read from
  ``start_nli.json``; never re-tuned);
* the hand-written probe set (``tests/data/nli_probe.jsonl``), run through the judge as the scorer runs it;
* speed: model forward pairs/s at batch 32 on the development set's (cited document, sentence) pairs, and the
  scorer's end-to-end wall time on the whole development set (every reader window included).

usage: python scripts/bench_judge.py [--human FILE] [--judge NAME=MODEL ...] [--out bench/judge.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_HUMAN = ROOT.parent / "shared" / "data" / "alce-human-dev" / "sentences.jsonl"


def probe(backend, rows: list[dict]) -> dict:
    pred = backend.predict([(r["premise"], r["hypothesis"]) for r in rows])
    ok = [(p >= backend.threshold) == r["entailed"] for p, r in zip(pred.probs, rows, strict=True)]
    kinds: dict[str, list[int]] = {}
    for r, o in zip(rows, ok, strict=True):
        kinds.setdefault(r["kind"], []).append(int(o))
    return {"n": len(rows), "accuracy": round(sum(ok) / len(ok), 4),
            "by_kind": {k: f"{sum(v)}/{len(v)}" for k, v in sorted(kinds.items())}}


def speed(backend, pairs: list[tuple[str, str]], batch_size: int = 32) -> dict:
    import numpy as np
    import torch

    from start.scoring.nli import base_backend

    model = base_backend(backend)
    ids, types, _ = model._encode(pairs)
    order = np.argsort([len(x) for x in ids], kind="stable")
    batches = []
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        feats = [{"input_ids": ids[i]} | ({"token_type_ids": types[i]} if types else {}) for i in idx]
        batches.append(model.tokenizer.pad(feats, return_tensors="pt"))
    with torch.inference_mode():
        model.model(**batches[0])  # warm-up
        t0 = time.perf_counter()
        for b in batches:
            model.model(**b)
        dt = time.perf_counter() - t0
    return {"pairs_per_s": round(len(pairs) / dt, 1), "pairs": len(pairs), "batch_size": batch_size,
            "mean_tokens": round(float(np.mean([len(x) for x in ids])), 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--human", type=Path, default=Path(os.environ.get("START_HUMAN_DEV", DEFAULT_HUMAN)))
    ap.add_argument("--judge", action="append", default=None,
                    help="NAME=MODEL (repeatable); default: old=minilm new=default")
    ap.add_argument("--probe", type=Path, default=ROOT / "tests" / "data" / "nli_probe.jsonl")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "judge.json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--render-only", action="store_true", help="re-write the .md from an existing .json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.render_only:
        _write(args.out.with_suffix(".md"), render(json.loads(args.out.read_text())))
        return 0
    if not args.human.is_file():
        ap.error(f"{args.human} not found: pass --human FILE or set START_HUMAN_DEV")
    import torch

    from start.nli.agreement import agreement, judge_labels, load_human, to_records
    from start.nli.train import load_probe
    from start.scoring import AttributionScorer, NLIConfig, ScorerConfig
    from start.scoring.nli import load_nli, resolve_model
    from start.text import remove_citations

    torch.set_num_threads(args.threads)
    rows = load_human(args.human)
    probe_rows = load_probe(args.probe)
    judges = dict(j.split("=", 1) for j in (args.judge or ["old=minilm", "new=default"]))
    out = {"human_file": args.human.name, "sentences_with_citations": len(rows),
           "reference": {"name": "TRUE (T5-11B), labels stored by ALCE"},
           "judges": {},
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, {args.threads} torch threads, "
                      f"torch {torch.__version__}"}
    single = [(f"Title: {t}\n{x}", remove_citations(r.sentence).strip()) for r in rows for (t, x) in r.docs]
    for name, model in judges.items():
        backend = load_nli(NLIConfig(model=model, progress=False))
        settings = Path(resolve_model(model)) / "start_nli.json"
        meta = json.loads(settings.read_text()) if settings.is_file() else {}
        scorer = AttributionScorer(backend, ScorerConfig(sentence_mode="sentences", cache=False, support_check=False))
        t0 = time.perf_counter()
        report = scorer.score(to_records(rows))
        wall = time.perf_counter() - t0
        test = meta.get("metrics", {}).get("test", {})
        out["judges"][name] = {
            "model": model,
            "fingerprint": backend.fingerprint,
            "settings": {k: meta.get(k) for k in ("threshold", "number_guard", "premise_window_words",
                                                  "premise_windows", "premise_whole", "max_length", "ensemble")},
            "agreement": agreement(rows, *judge_labels(rows, report)),
            "vitaminc_auc": test.get("vitaminc_fact_verification", {}).get("entail_auc"),
            "long_premise_auc": meta.get("metrics", {}).get("test_long", {}).get("all", {}).get("entail_auc"),
            "probe": probe(backend, probe_rows),
            "speed": {**speed(backend, single), "scorer_dev_seconds": round(wall, 1),
                      "scorer_model_inputs": report.stats.get("model_pairs")},
        }
        out["reference"].update(out["judges"][name]["agreement"].pop("reference", {}))  # same sentences each time
        out["reference"]["sentences"] = out["judges"][name]["agreement"]["sentences"]
        out["reference"]["citations"] = out["judges"][name]["agreement"]["citations"]
        print(name, json.dumps(out["judges"][name]["agreement"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    os.replace(tmp, args.out)
    _write(args.out.with_suffix(".md"), render(out))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _ensemble(ens: dict | None) -> str:
    if not ens:
        return ""
    return f", P(entailment) averaged with `{ens['model']}` (weight {ens['weight']})"


def render(out: dict) -> str:
    ref = out["reference"]
    lines = [
        "# Judge benchmark: agreement with people on citation judgments",
        "",
        f"ALCE's human citation judgments, development half (`{out['human_file']}`, ASQA answers by "
        f"gpt-3.5-turbo): {ref.get('sentences', '?')} cited sentences, {ref.get('citations', '?')} citations. "
        "Accuracy / Cohen's kappa against the people. Precision: a citation is precise for people when its score "
        "is >= 1. Thresholds, premise reader and guard of each judge are its stored settings (`start_nli.json`); "
        "for the new judge they were chosen on this same development set (`python -m start.nli calibrate`), so "
        "its numbers here are optimistic by construction; a held-out set of other questions is kept aside.",
        "",
        "| judge | recall acc | recall kappa | precision acc | precision kappa | VitaminC AUC | probe | "
        "pairs/s (batch 32) | scorer on dev (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if "recall" in ref:
        lines.append(f"| {ref['name']} | {ref['recall']['acc']:.3f} | {ref['recall']['kappa']:.3f} | "
                     f"{ref['precision']['acc']:.3f} | {ref['precision']['kappa']:.3f} | - | - | - | - |")
    for name, j in out["judges"].items():
        a, sp = j["agreement"], j["speed"]
        auc = "n/a" if j["vitaminc_auc"] is None else f"{j['vitaminc_auc']:.3f}"
        lines.append(f"| {name} (`{j['model']}`) | {a['recall']['acc']:.3f} | {a['recall']['kappa']:.3f} | "
                     f"{a['precision']['acc']:.3f} | {a['precision']['kappa']:.3f} | {auc} | "
                     f"{j['probe']['accuracy']:.1%} | {sp['pairs_per_s']} | {sp['scorer_dev_seconds']} |")
    lines += ["", "Settings per judge:", ""]
    for name, j in out["judges"].items():
        s = j["settings"]
        lines.append(f"- {name}: threshold {s['threshold']}, number guard {s['number_guard']}, premise windows "
                     f"{s['premise_window_words']} words ({s['premise_windows'] or 'text'}"
                     f"{', plus the whole premise' if s['premise_whole'] else ''}), max length {s['max_length']}"
                     f"{_ensemble(s.get('ensemble'))}; "
                     f"probe by kind {j['probe']['by_kind']}; held-out long-premise AUC {j['long_premise_auc']}")
    n_pairs = next(iter(out["judges"].values()))["speed"]["pairs"]
    lines += ["", f"Speed: model forward passes over the development set's {n_pairs} "
              "(cited document, sentence) pairs, sorted by length, batch 32 (for an averaged judge: its own model "
              "only); the scorer column is the end-to-end time for the whole development set with the judge's "
              f"premise reader and partner model. Machine: {out['machine']} "
              "(shared with other work: rough figures).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
