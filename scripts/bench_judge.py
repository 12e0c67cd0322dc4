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


# The bundled judges: the first one, the MiniLM passage judge (its stored rule), and the default (MPNet) passage
# judge with its fixed rule and with its learned aggregator (the settings line of each says which of the two is
# the default judge's rule: the aggregator's "enabled").
JUDGES = ("old=minilm", "minilm-long=minilm-long", "fixed=default:aggregator=false",
          "aggregator=default:aggregator=true")


def parse_judge(spec: str) -> tuple[str, str, dict]:
    """``NAME=MODEL[:FIELD=VALUE,...]`` -> (name, model, NLIConfig fields); values read as JSON where they parse."""
    name, _, rest = spec.partition("=")
    model, _, fields = rest.partition(":")
    if not name or not model:
        raise ValueError(f"--judge {spec!r}: expected NAME=MODEL[:FIELD=VALUE,...]")
    kw = {}
    for item in filter(None, fields.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--judge {spec!r}: {item!r} is not FIELD=VALUE")
        try:
            kw[key] = json.loads(value)
        except json.JSONDecodeError:
            kw[key] = value
    return name, model, kw


def held_out(meta: dict, uses_aggregator: bool) -> dict | None:
    """The judge's leave-one-question-out agreement as recorded with its settings (None: not recorded). The
    fixed rule's is recorded beside the aggregator's (same readings, threshold re-chosen per fold)."""
    rep = meta.get("aggregator_calibration")
    if not rep:
        return None
    cv = rep["cv"] if uses_aggregator else rep["fixed_rule"]["cv"]
    return {k: cv["agreement"][k] for k in ("recall", "precision")}


def search_spread(meta: dict) -> dict | None:
    """How the held-out kappas spread over the aggregator feature sets tried (the stored one is the best)."""
    rep = meta.get("aggregator_calibration") or {}
    if not rep.get("search"):
        return None
    import numpy as np

    out = {"sets": len(rep["search"]), "chosen": rep["chosen"],
           "nested": {k: rep["nested"]["agreement"][k] for k in ("recall", "precision")} if rep.get("nested") else None}
    for k in ("recall", "precision"):
        v = [s["cv"][k]["kappa"] for s in rep["search"].values()]
        out[k] = {"median": round(float(np.median(v)), 3), "min": min(v), "max": max(v)}
    return out


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
                    help="NAME=MODEL[:FIELD=VALUE,...] with NLIConfig fields (repeatable); default: "
                         + " ".join(JUDGES))
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
    from start.nli.measure import load_probe
    from start.scoring import AttributionScorer, NLIConfig, ScorerConfig
    from start.scoring.learned import AggregatedNLI
    from start.scoring.nli import load_nli, resolve_model
    from start.text import remove_citations

    torch.set_num_threads(args.threads)
    rows = load_human(args.human)
    probe_rows = load_probe(args.probe)
    try:
        judges = [parse_judge(j) for j in (args.judge or JUDGES)]
    except ValueError as err:
        ap.error(str(err))
    out = {"human_file": args.human.name, "sentences_with_citations": len(rows),
           "reference": {"name": "TRUE (T5-11B), labels stored by ALCE"},
           "judges": {},
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, {args.threads} torch threads, "
                      f"torch {torch.__version__}"}
    single = [(f"Title: {t}\n{x}", remove_citations(r.sentence).strip()) for r in rows for (t, x) in r.docs]
    for name, model, kw in judges:
        backend = load_nli(NLIConfig(model=model, progress=False, **kw))
        settings = Path(resolve_model(model)) / "start_nli.json"
        meta = json.loads(settings.read_text()) if settings.is_file() else {}
        scorer = AttributionScorer(backend, ScorerConfig(sentence_mode="sentences", cache=False, support_check=False))
        t0 = time.perf_counter()
        report = scorer.score(to_records(rows))
        wall = time.perf_counter() - t0
        test = meta.get("metrics", {}).get("test", {})
        uses_aggregator = isinstance(backend, AggregatedNLI)
        out["judges"][name] = {
            "model": model,
            "card": _card(Path(resolve_model(model))),
            "overrides": kw,
            "fingerprint": backend.fingerprint,
            "settings": {k: meta.get(k) for k in ("threshold", "number_guard", "premise_window_words",
                                                  "premise_windows", "premise_whole", "max_length", "ensemble")}
            | ({"aggregator": meta["aggregator"]} if uses_aggregator else {}),
            "is_default_rule": model == "default" and uses_aggregator == bool((meta.get("aggregator") or {})
                                                                             .get("enabled", True)),
            "threshold": backend.threshold,
            "tuned_on_this_set": bool(meta.get("human_calibration")) or uses_aggregator,
            "agreement": agreement(rows, *judge_labels(rows, report)),
            "agreement_cv": held_out(meta, uses_aggregator),
            "aggregator_search": search_spread(meta) if uses_aggregator else None,
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


def _card(folder: Path) -> str | None:
    """The judge's model card as a path relative to the project (None: no card, or a folder elsewhere)."""
    card = folder.resolve() / "README.md"
    return card.relative_to(ROOT).as_posix() if card.is_file() and card.is_relative_to(ROOT) else None


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _ensemble(ens: dict | None) -> str:
    if not ens:
        return ""
    return f", P(entailment) averaged with `{ens['model']}` (weight {ens['weight']})"


def _settings_line(name: str, j: dict) -> str:
    s = j["settings"]
    agg = s.get("aggregator")
    if agg:
        reader = (f"learned aggregator (logistic regression over {len(agg['features'])} features of the whole "
                  f"premise and its {agg['window_words']}-word document windows, read by this model and "
                  f"`{agg['partner']}`, the number guard and lexical coverage), threshold {j['threshold']}")
    else:
        reader = (f"threshold {s['threshold']}, number guard {s['number_guard']}, premise windows "
                  f"{s['premise_window_words']} words ({s['premise_windows'] or 'text'}"
                  f"{', plus the whole premise' if s['premise_whole'] else ''}){_ensemble(s.get('ensemble'))}")
    over = f" (overrides: {j['overrides']})" if j.get("overrides") else ""
    if j["model"] == "default":
        over += "; **the default judge's rule**" if j.get("is_default_rule") else "; not the default judge's rule"
    return (f"- {name}{over}: {reader}, max length {s['max_length']}; probe by kind {j['probe']['by_kind']}; "
            f"held-out long-premise AUC {j['long_premise_auc']}")


def _pair(m: dict | None, key: str) -> str:
    return "- | -" if m is None else f"{m[key]['acc']:.3f} | {m[key]['kappa']:.3f}"


def render(out: dict) -> str:
    ref = out["reference"]
    lines = [
        "# Judge benchmark: agreement with people on citation judgments",
        "",
        f"ALCE's human citation judgments, development half (`{out['human_file']}`, ASQA answers by "
        f"gpt-3.5-turbo): {ref.get('sentences', '?')} cited sentences of 50 questions, {ref.get('citations', '?')} "
        "citations. Accuracy / Cohen's kappa against the people. Precision: a citation is precise for people when "
        "its score is >= 1. Each judge runs with its stored settings (`start_nli.json`).",
        "",
        "Two numbers per judge. **In-sample**: the judge as stored, on this set. The passage judge's settings "
        "were chosen on this same set (`fixed`: reader, guard, ensemble, threshold by `python -m start.nli "
        "calibrate`; `aggregator`: its regression fitted and its feature set chosen by `python -m start.nli "
        "aggregate`), so in-sample is optimistic by construction. **Held-out (leave-one-question-out)**: for each "
        "of the 50 questions, the threshold (and the aggregator's regression) is fitted on the other 49 and the "
        "held-out question's sentences are judged with it; agreement over all held-out judgments (recorded in "
        "`start_nli.json`; for `fixed` only its threshold is re-chosen, its reader was also picked on this set). "
        "TRUE and `old` were not tuned here: held-out = in-sample. A further set of other questions is kept aside "
        "for the final measurement.",
        "",
        "| judge | recall acc | recall kappa | precision acc | precision kappa | held-out recall acc | "
        "held-out recall kappa | held-out precision acc | held-out precision kappa | VitaminC AUC | probe | "
        "pairs/s (batch 32) | scorer on dev (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if "recall" in ref:
        lines.append(f"| {ref['name']} | {_pair(ref, 'recall')} | {_pair(ref, 'precision')} | "
                     f"{_pair(ref, 'recall')} | {_pair(ref, 'precision')} | - | - | - | - |")
    for name, j in out["judges"].items():
        a, sp = j["agreement"], j["speed"]
        cv = j.get("agreement_cv") or (None if j.get("tuned_on_this_set", True) else a)
        auc = "n/a" if j["vitaminc_auc"] is None else f"{j['vitaminc_auc']:.3f}"
        lines.append(f"| {name} (`{j['model']}`) | {_pair(a, 'recall')} | {_pair(a, 'precision')} | "
                     f"{_pair(cv, 'recall')} | {_pair(cv, 'precision')} | {auc} | "
                     f"{j['probe']['accuracy']:.1%} | {sp['pairs_per_s']} | {sp['scorer_dev_seconds']} |")
        nested = (j.get("aggregator_search") or {}).get("nested")
        if nested:
            lines.append(f"| {name}, feature set also chosen held-out (nested) | | | | | {_pair(nested, 'recall')} | "
                         f"{_pair(nested, 'precision')} | | | | |")
    for name, j in out["judges"].items():
        sp = j.get("aggregator_search")
        if sp:
            lines += ["", f"`{name}`'s feature set (`{sp['chosen']}`) was chosen among {sp['sets']} sets by this same "
                      "held-out agreement, so its held-out number is somewhat optimistic too; over all sets tried the "
                      f"held-out recall kappa has median {sp['recall']['median']:.3f} (range {sp['recall']['min']:.3f}"
                      f"-{sp['recall']['max']:.3f}), precision kappa median {sp['precision']['median']:.3f} (range "
                      f"{sp['precision']['min']:.3f}-{sp['precision']['max']:.3f})"
                      + (f"; the model card (`{j['card']}`) lists every set." if j.get("card") else ".")
                      + ("" if not sp.get("nested") else
                         " Nested (the set too chosen for each held-out question on the other 49 only, in-sample "
                         f"there): recall {_pair(sp['nested'], 'recall').replace(' | ', ' / ')}, precision "
                         f"{_pair(sp['nested'], 'precision').replace(' | ', ' / ')} (acc / kappa): the honest "
                         "number for the whole procedure.")]
    lines += ["", "Settings per judge:", ""]
    lines += [_settings_line(name, j) for name, j in out["judges"].items()]
    n_pairs = next(iter(out["judges"].values()))["speed"]["pairs"]
    lines += ["", f"Speed: model forward passes over the development set's {n_pairs} "
              "(cited document, sentence) pairs, sorted by length, batch 32 (for an averaged or aggregated judge: "
              "its own model only); the scorer column is the end-to-end time for the whole development set with "
              "the judge's premise readings and partner model. Machine: "
              f"{out['machine']} (shared with other work: rough figures).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
