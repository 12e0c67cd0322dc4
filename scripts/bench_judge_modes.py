"""Benchmark: a judge's arithmetic modes against fp32, on ALCE's human citation judgments (development half).

    python scripts/bench_judge_modes.py [--judge default] [--modes float32 bfloat16 int8-dynamic]
                                        [--human FILE] [--out bench/judge_modes.json] [--write-judge]

For every mode the judge scores every cited sentence of the human file (exact readings: every window and the
whole premise, so probabilities are comparable) and the script records:

* the model's speed on the distinct (reading, hypothesis) inputs the scorer sent it (pairs/s, forward passes
  only, the same token-budget batches in every mode);
* the share of the scorer's (premise, hypothesis) decisions (P >= threshold, after the maximum over readings)
  and of the readings' decisions that agree with fp32's;
* the scorer's agreement with people (accuracy / Cohen's kappa for sentence recall and citation precision) and
  its change from fp32.

A mode is **accepted** when its decisions agree with fp32's on >= 99% of the pairs and both kappas move by
< 0.01. ``--write-judge`` stores the fastest accepted mode, with these measurements, as the judge's
``cpu_dtype`` block in its ``start_nli.json``: ``NLIConfig(dtype="auto")`` then runs the judge in it on CPUs
with bf16 instructions (``start.scoring.nli.judge_dtype``). Modes: ``float32``, ``bfloat16`` (weights and
activations in bf16), ``bfloat16+fp32band`` (bf16, and every pair whose probability lands within ``BAND`` of the
threshold read again in fp32: fp32's decisions wherever the bf16 error is smaller than the band),
``int8-dynamic`` (PyTorch dynamic quantisation of the linear layers: int8 weights, activations quantised per
batch), ``int8-dynamic-perchannel`` (the same with one weight scale per output row), ``onnxruntime-fp32`` and
``onnxruntime-int8`` (the judge exported to ONNX and run by ONNX Runtime, as it is and with ONNX Runtime's dynamic
int8 quantisation, per output row; these two need ``pip install onnx onnxruntime``).
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
DEFAULT_HUMAN = ROOT.parent / "shared" / "data" / "alce-human-dev" / "sentences.jsonl"
MODES = ("float32", "bfloat16", "bfloat16+fp32band", "int8-dynamic", "int8-dynamic-perchannel", "onnxruntime-fp32",
         "onnxruntime-int8")
DEFAULT_MODES = MODES[:5]  # the ONNX Runtime modes need an extra package: ask for them by name
BAND = 0.05  # the guard band of "bfloat16+fp32band": about twice the largest bf16 error measured on this set
MIN_AGREEMENT, MAX_KAPPA_CHANGE = 0.99, 0.01


class Recorder:
    """An NLI backend that passes requests on and remembers every pair and probability it answered."""

    def __init__(self, inner):
        self.inner, self.threshold, self.fingerprint = inner, inner.threshold, inner.fingerprint
        self.seen: dict[tuple[str, str], float] = {}

    def predict(self, pairs):
        pred = self.inner.predict(pairs)
        self.seen.update(zip(pairs, pred.probs.tolist(), strict=True))
        return pred


class OnnxModel:
    """The judge's sequence classifier exported to ONNX and run by ONNX Runtime on the CPU, called like the torch
    model (``model(**batch).logits``); ``int8``: ONNX Runtime's dynamic int8 quantisation, one scale per row."""

    def __init__(self, session, config, inputs: list[str]):
        import torch

        self.session, self.config, self.inputs = session, config, inputs
        self.device, self.dtype = torch.device("cpu"), torch.float32

    @classmethod
    def export(cls, backend, *, int8: bool) -> OnnxModel:
        import tempfile

        import torch
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise SystemExit(f"the onnxruntime modes need ONNX Runtime: pip install onnx onnxruntime ({e})") from e

        example = dict(backend.tokenizer("a premise", "a hypothesis", return_tensors="pt"))
        names = list(example)  # input_ids, attention_mask and, for BERT-like judges, token_type_ids

        class Logits(torch.nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, *tensors):
                return self.model(**dict(zip(names, tensors, strict=True))).logits

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        with tempfile.TemporaryDirectory(prefix="judge-onnx-") as tmp:  # the session holds the graph in memory
            path = Path(tmp) / "judge.onnx"
            torch.onnx.export(Logits(backend.model).eval(), tuple(example.values()), str(path), input_names=names,
                              output_names=["logits"], opset_version=17, dynamo=False,
                              dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, "logits": {0: "batch"}})
            if int8:
                from onnxruntime.quantization import QuantType, quantize_dynamic

                quantize_dynamic(str(path), str(path.with_name("judge-int8.onnx")), weight_type=QuantType.QInt8,
                                 per_channel=True)
                path = path.with_name("judge-int8.onnx")
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return cls(session, backend.model.config, names)

    def eval(self) -> OnnxModel:
        return self

    def __call__(self, **batch):
        import types

        import torch

        feeds = {n: batch[n].numpy() for n in self.inputs}
        return types.SimpleNamespace(logits=torch.from_numpy(self.session.run(None, feeds)[0]))


def load_mode(judge: str, mode: str):
    """The judge with exact readings in ``mode``; its model backend wrapped to record the readings."""
    import torch

    from start.scoring.nli import NLIConfig, PremiseWindowNLI, base_backend, load_nli

    dtype = "bfloat16" if mode.startswith("bfloat16") else "float32"
    band = BAND if mode == "bfloat16+fp32band" else 0.0
    top = load_nli(NLIConfig(model=judge, dtype=dtype, fp32_band=band, lazy=False, progress=False))
    base = base_backend(top)
    if mode.startswith("int8-dynamic"):
        from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

        qconfig = per_channel_dynamic_qconfig if mode.endswith("perchannel") else default_dynamic_qconfig
        base.model = torch.ao.quantization.quantize_dynamic(base.model, {torch.nn.Linear: qconfig}, dtype=torch.qint8)
    elif mode.startswith("onnxruntime"):
        base.model = OnnxModel.export(base, int8=mode.endswith("int8"))
    reader = top
    while not isinstance(reader, PremiseWindowNLI) and hasattr(reader, "inner"):
        reader = reader.inner
    readings = None
    if isinstance(reader, PremiseWindowNLI):
        readings = reader.inner = Recorder(reader.inner)
    pairs = Recorder(top)
    return pairs, readings, base


def run_mode(judge: str, mode: str, rows, records) -> dict:
    import numpy as np

    from start.nli.agreement import agreement, judge_labels
    from start.scoring import AttributionScorer, ScorerConfig

    pairs, readings, base = load_mode(judge, mode)
    scorer = AttributionScorer(pairs, ScorerConfig(sentence_mode="sentences", cache=False))
    t0 = time.perf_counter()
    report = scorer.score(records)
    scorer_s = time.perf_counter() - t0
    rec, cites = judge_labels(rows, report)
    inputs = list((readings or pairs).seen)
    t0 = time.perf_counter()
    base.predict(inputs)
    model_s = time.perf_counter() - t0
    tokens = float(np.mean([len(x) for x in base._encode(inputs)[0]])) if inputs else 0.0
    return {"scorer_seconds": round(scorer_s, 1), "model_seconds": round(model_s, 1),
            "model_pairs_per_s": round(len(inputs) / model_s, 2) if model_s else None,
            "model_inputs": len(inputs), "mean_tokens": round(tokens, 1),
            "agreement": agreement(rows, rec, cites), "threshold": pairs.threshold,
            "_pairs": pairs.seen, "_readings": readings.seen if readings else None}


def cached_mode(args, mode: str, rows, records) -> dict:
    """:func:`run_mode`, remembered in the cache (keyed by the judge's weights, settings and the human file), so
    an interrupted benchmark does not score a finished mode again."""
    import hashlib
    import pickle

    from start.io import cache_root
    from start.scoring.nli import SETTINGS_FILE, resolve_model
    from start.stage import file_hash, model_fingerprint

    folder = Path(resolve_model(args.judge))
    key = hashlib.sha256(json.dumps([model_fingerprint(folder), file_hash(folder / SETTINGS_FILE), file_hash(
        args.human), mode, args.threads]).encode()).hexdigest()[:16]
    path = cache_root() / "bench_judge_modes" / f"{key}.pkl"
    if path.is_file():
        return pickle.loads(path.read_bytes())
    result = run_mode(args.judge, mode, rows, records)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(result))
    tmp.replace(path)
    return result


def compare(ref: dict, other: dict) -> dict:
    """Decision agreement and kappa change of ``other`` against ``ref`` (fp32)."""
    thr = ref["threshold"]

    def agree(a: dict, b: dict) -> dict:
        common = a.keys() & b.keys()
        same = sum((a[k] >= thr) == (b[k] >= thr) for k in common)
        return {"n": len(common), "agree": round(same / len(common), 4) if common else None,
                "max_abs_prob_change": round(max((abs(a[k] - b[k]) for k in common), default=0.0), 4)}

    out = {"pairs": agree(ref["_pairs"], other["_pairs"])}
    if ref["_readings"] is not None and other["_readings"] is not None:
        out["readings"] = agree(ref["_readings"], other["_readings"])
    out["kappa_change"] = {k: round(other["agreement"][k]["kappa"] - ref["agreement"][k]["kappa"], 4)
                           for k in ("recall", "precision")}
    out["speed_up"] = round(ref["model_seconds"] / other["model_seconds"], 2) if other["model_seconds"] else None
    out["accepted"] = (out["pairs"]["agree"] is not None and out["pairs"]["agree"] >= MIN_AGREEMENT
                       and all(abs(v) < MAX_KAPPA_CHANGE for v in out["kappa_change"].values()))
    return out


def render(doc: dict) -> str:
    lines = [f"# Arithmetic modes of the judge `{doc['judge']}`", "",
             f"{doc['sentences']} cited sentences of `{doc['human_file']}`; {doc['machine']}. Decisions: P >= "
             f"{doc['threshold']}. Accepted: the scorer's pair decisions agree with fp32 on >= "
             f"{MIN_AGREEMENT:.0%} and both kappas (vs people) move by < {MAX_KAPPA_CHANGE}.", "",
             "| mode | model pairs/s | speed-up | scorer (s) | pair decisions = fp32 | reading decisions = fp32 "
             "| max prob change | recall kappa (change) | precision kappa (change) | accepted |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for mode, m in doc["modes"].items():
        c = m.get("vs_float32") or {}
        kc = c.get("kappa_change", {})
        ag = m["agreement"]
        lines.append(
            f"| {mode} | {m['model_pairs_per_s']} | {c.get('speed_up', 1.0)}x | {m['scorer_seconds']} | "
            f"{c.get('pairs', {}).get('agree', '-')} | {c.get('readings', {}).get('agree', '-')} | "
            f"{c.get('pairs', {}).get('max_abs_prob_change', '-')} | "
            f"{ag['recall']['kappa']:.3f} ({kc.get('recall', 0):+.3f}) | "
            f"{ag['precision']['kappa']:.3f} ({kc.get('precision', 0):+.3f}) | "
            f"{'reference' if mode == 'float32' else ('yes' if c.get('accepted') else 'no')} |")
    if doc.get("chosen"):
        lines += ["", f"Stored as the judge's CPU arithmetic (`cpu_dtype` in its start_nli.json): **{doc['chosen']}**."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--judge", default="default", help="a bundled judge's name or a judge folder")
    ap.add_argument("--modes", nargs="+", default=list(DEFAULT_MODES), choices=MODES)
    ap.add_argument("--human", type=Path, default=Path(os.environ.get("START_HUMAN_DEV", DEFAULT_HUMAN)))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "judge_modes.json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write-judge", action="store_true",
                    help="store the fastest accepted mode as the judge's cpu_dtype (start_nli.json)")
    args = ap.parse_args(argv)
    if not args.human.is_file():
        ap.error(f"{args.human} not found: pass --human FILE or set START_HUMAN_DEV")
    logging.basicConfig(level=logging.WARNING)
    import torch

    from start.io import project_relative, write_json
    from start.nli.agreement import load_human, to_records
    from start.scoring.nli import SETTINGS_FILE, cpu_has_bf16, resolve_model

    torch.set_num_threads(args.threads)
    rows = load_human(args.human)
    records = to_records(rows)
    modes = ["float32"] + [m for m in args.modes if m != "float32"]
    results = {}
    for mode in modes:
        print(f"{mode}: scoring {len(records)} sentences", flush=True)
        results[mode] = cached_mode(args, mode, rows, records)
        if mode != "float32":
            results[mode]["vs_float32"] = compare(results["float32"], results[mode])
        print(f"{mode}: model {results[mode]['model_seconds']} s, scorer {results[mode]['scorer_seconds']} s, "
              f"{json.dumps(results[mode].get('vs_float32', {}))}", flush=True)
    accepted = [m for m in modes if m != "float32" and results[m]["vs_float32"]["accepted"]]
    chosen = min(accepted, key=lambda m: results[m]["model_seconds"]) if accepted else None
    doc = {"judge": args.judge, "human_file": project_relative(args.human, parts=2), "sentences": len(records),
           "threshold": results["float32"]["threshold"],
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, {args.threads} torch threads, torch "
                      f"{torch.__version__}, bf16 instructions: {cpu_has_bf16()}",
           "modes": {m: {k: v for k, v in r.items() if not k.startswith("_")} for m, r in results.items()},
           "chosen": chosen}
    write_json(args.out, doc)
    args.out.with_suffix(".md").write_text(render(doc))
    print(render(doc))
    if args.write_judge:
        settings_path = Path(resolve_model(args.judge)) / SETTINGS_FILE
        settings = json.loads(settings_path.read_text())
        if chosen in (None, "bfloat16", "bfloat16+fp32band"):
            c = results[chosen]["vs_float32"] if chosen else None
            settings["cpu_dtype"] = None if chosen is None else {
                "dtype": "bfloat16", "fp32_band": BAND if chosen.endswith("band") else 0.0, "accepted": True,
                "max_abs_prob_change_bf16": results.get("bfloat16", {}).get("vs_float32", {}).get(
                    "pairs", {}).get("max_abs_prob_change"),
                "pair_decision_agreement": c["pairs"]["agree"],
                "reading_decision_agreement": c.get("readings", {}).get("agree"),
                "kappa_change": c["kappa_change"], "model_speed_up": c["speed_up"],
                "measured_on": f"{project_relative(args.human, parts=2)} ({len(records)} sentences)",
                "command": "python scripts/bench_judge_modes.py --write-judge"}
            write_json(settings_path, settings)
            print(f"wrote cpu_dtype={chosen} into {project_relative(settings_path)}")
        else:
            print(f"{chosen} is accepted but only bf16 modes can be stored as a judge's CPU arithmetic",
                  file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
