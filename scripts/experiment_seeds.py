"""The START experiment: the loop over several seeds, and the paper's ablation rows on one seed.

    python scripts/experiment_seeds.py [--seeds 0 1 2] [--ablation-seed 0] [--rs-sft] [--try NAME:OVERRIDES]
                                       [--tiny] [--dry-run] [--no-run] [--final-split test]
                                       [--no-ablations | --rows PREFIX ...]
                                       [--runs runs/seeds] [--out bench] [hydra overrides ...]

Every run is a normal ``python -m start.run`` in its own run folder under ``--runs``, so re-running this
script skips every finished stage and resumes an interrupted one. Runs:

* ``seed<S>`` for every seed: the full method (warm-up, rounds with overall and fine-grained pairs); the
  seed changes sampling, warm-up grouping and the rounds' question slices;
* the paper's ablation rows on seed ``A`` (:data:`ABLATIONS`): ``overall-seed<A>`` (overall pairs only,
  ``preference.fine_grained=false``), ``no-warmup-seed<A>`` (the rounds from the base model),
  ``no-attributability-seed<A>``, ``no-comprehensiveness-seed<A>``, ``no-robustness-seed<A>`` (that signal's
  weight 0: out of the reward, no fine-grained pairs on it); ``--no-ablations`` keeps only the first, ``--rows
  PREFIX ...`` only the named ones (``--rows`` alone: none, the seeds only);
* ``rounds<N>-seed<A>`` (``--more-rounds N``): the full method continued to N rounds from a copy of its
  finished rounds, so "1 round", ..., "N rounds" are one line of training;
* ``rs-sft-seed<A>`` (``--rs-sft``): rejection-sampling SFT on each question's best sample, no DPO;
* ``try-<NAME>-seed<A>`` (``--try NAME:OVERRIDES``): the full method with other settings (floor, weights, DPO
  beta, samples per question, ...), for tuning: reported on the tuning split only, never on ``--final-split``.

"Warm-up only" is round 0 of ``seed<A>`` (the same warm-up with the same seed), and "full method" is
``seed<A>`` itself. The ablation runs start from a copy of ``seed<A>``'s finished ``round_0`` (warm-up and
its evaluations); their stages' fingerprints decide whether the copy is reused, so a warm-up that depended
on a setting the row changes would be re-run. Extra arguments are Hydra overrides for every run (e.g.
``rounds=3``); ``--tiny`` adds ``debug=tiny sampler=transformers`` (minutes, for checking the harness).

Then it writes ``<out>/start_seeds.json`` (per seed: ``seed``, ``base``, ``warmup``, ``rounds`` with
citation_rec / citation_prec / citation_f1 / comprehensiveness / str_em as [value, low, high] 95%
intervals, ``round0_to_last`` paired differences, and what each round trained on),
``<out>/start_ablation.json`` (the rows, each row's last evaluation, and the paired difference of the
full method minus each other row on the same held-out questions) and ``<out>/start_seeds.md`` (both
tables). ``--dry-run`` prints the commands and runs nothing; ``--no-run`` only aggregates (with ``--final-split``: the
split's finished evaluations too).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("citation_rec", "citation_prec", "citation_f1", "attribution_margin", "comprehensiveness", "str_em")
CHANGE = ("citation_f1", "comprehensiveness")
TINY = ("debug=tiny", "sampler=transformers")


def parse_tried(specs: list[str]) -> list[tuple[str, list[str]]]:
    """``--try NAME:OVERRIDE [OVERRIDE ...]`` -> (name, overrides); names are unique words, overrides key=value."""
    out = []
    for spec in specs:
        name, sep, rest = spec.partition(":")
        overrides = rest.split()
        if not sep or not name.replace("-", "").replace("_", "").replace(".", "").isalnum() or not overrides \
                or not all("=" in o for o in overrides):
            raise ValueError(f"--try {spec!r}: expected NAME:key=value [key=value ...] (NAME: letters, digits, "
                             "'-', '_', '.')")
        if name in {n for n, _ in out}:
            raise ValueError(f"--try {spec!r}: the name {name!r} is given twice")
        out.append((name, overrides))
    return out


# The paper's ablation rows on the ablation seed: (run name prefix, row, overrides); each starts from the full
# method's round 0 unless it changes round 0 itself (``own_round0``).
ABLATIONS = (
    ("overall", "overall pairs only", ["preference.fine_grained=false"], False),
    ("no-warmup", "without warm-up", ["warmup.enabled=false"], True),
    ("no-attributability", "without attributability",
     ["preference.weights.attributability=0", "preference.min_attributability=0"], False),
    ("no-comprehensiveness", "without comprehensiveness", ["preference.weights.comprehensiveness=0"], False),
    ("no-robustness", "without robustness", ["preference.weights.robustness=0"], False),
)


def plan_runs(seeds: list[int], ablation_seed: int, runs: Path, overrides: list[str], *, rs_sft: bool = False,
              tiny: bool = False, tried: list[tuple[str, list[str]]] = (), ablations: bool | tuple[str, ...] = True,
              more_rounds: int | None = None) -> list[dict]:
    """The runs to do, in order: name, run folder and the ``start.run`` overrides of each. ``tried``: settings tried on
    the ablation seed (tuning only: never evaluated on the final split). ``ablations``: the paper's rows
    (:data:`ABLATIONS`); False: only "overall pairs only"; a tuple of run-name prefixes: those rows.
    ``more_rounds``: the full method continued to that many rounds (``rounds<N>-seed<A>``, from a copy of the full
    method's finished rounds), so the rows "1 round", "2 rounds", ... come from one line of training."""
    base = [*(TINY if tiny else ()), *overrides]
    order = [ablation_seed] + [s for s in seeds if s != ablation_seed] if ablation_seed in seeds else seeds
    out = [{"name": f"seed{s}", "seed": s, "row": "full method" if s == ablation_seed else None, "extra": []}
           for s in order]
    if not isinstance(ablations, bool):
        unknown = set(ablations) - {a[0] for a in ABLATIONS}
        if unknown:
            raise ValueError(f"unknown ablation rows {sorted(unknown)}; known: {[a[0] for a in ABLATIONS]}")
    rows = ABLATIONS if ablations is True else ABLATIONS[:1] if ablations is False else \
        [a for a in ABLATIONS if a[0] in ablations]
    for prefix, row, extra, own in rows:
        out.append({"name": f"{prefix}-seed{ablation_seed}", "seed": ablation_seed, "row": row, "extra": list(extra),
                    **({"own_round0": True} if own else {})})
    if rs_sft:
        out.append({"name": f"rs-sft-seed{ablation_seed}", "seed": ablation_seed,
                    "row": "rejection-sampling SFT only",
                    "extra": ["trainer.rs_sft.enabled=true", "trainer.rs_sft.only=true"]})
    if more_rounds:
        out.append({"name": f"rounds{more_rounds}-seed{ablation_seed}", "seed": ablation_seed,
                    "row": f"{more_rounds} rounds", "extra": [f"rounds={more_rounds}"], "continues": True})
    for name, extra in tried:
        out.append({"name": f"try-{name}-seed{ablation_seed}", "seed": ablation_seed, "row": f"tried: {name}",
                    "tried": True, "extra": list(extra)})
    for r in out:
        r["run_dir"] = runs / r["name"]
        r["overrides"] = [*base, *r["extra"], f"seed={r['seed']}", f"run_dir={r['run_dir']}",
                          f"experiment_name={r['name']}"]
    return out


def _copy(src: Path, dst: Path, *, link: bool = False) -> None:
    """``src`` copied (or hard-linked, for models that are only read) to ``dst`` through a temporary folder."""
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, tmp, copy_function=os.link if link else shutil.copy2)
    tmp.rename(dst)


def share_warmup(run: dict, runs: list[dict]) -> bool:
    """Copy the full method's finished ``round_0`` into an ablation run of the same seed that has none yet (not
    into a row that changes round 0 itself); a run that continues the full method gets its finished rounds too
    (trained models hard-linked)."""
    full = next((r for r in runs if r["row"] == "full method" and r["seed"] == run["seed"]), None)
    if full is None or run is full or run["row"] is None or run.get("own_round0"):
        return False
    src, dst = Path(full["run_dir"]), Path(run["run_dir"])
    if (dst / "round_0").exists() or not (src / "round_0" / "eval" / "metrics.json").is_file():
        return False
    if run.get("continues"):
        if not (src / "report" / "rounds.json").is_file():
            return False  # the full method has not finished
        for rd in sorted(src.glob("round_[1-9]*")):
            _copy_round(rd, dst / rd.name)
    _copy(src / "round_0", dst / "round_0")
    return True


def _copy_round(src: Path, dst: Path) -> None:
    """A finished round folder: trained models hard-linked, everything else copied."""
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("model"))
    for model in src.rglob("model"):
        if model.is_dir():
            shutil.copytree(model, tmp / model.relative_to(src), copy_function=os.link)
    tmp.rename(dst)


def split_runs(runs: list[dict], split: str) -> list[dict]:
    """The evaluation of every finished run on another split (the test split, once, with the frozen config):
    a run folder ``<name>-<split>`` holding hard links to the run's trained models (``round_0/warmup``, each
    round's ``train``), evaluated at round 0 and at the last round (the full method also at every round when a
    rounds row continues it); the base model is not re-evaluated."""
    out = []
    every_round = any(r.get("continues") for r in runs)
    for r in runs:
        src = Path(r["run_dir"])
        if r.get("tried") or (r["row"] not in (None, "full method") and not (src / "config.json").is_file()):
            continue  # a tuning run, or an ablation row not run (the seeds themselves must have been)
        cfg = json.loads((src / "config.json").read_text())
        last, dst = int(cfg["rounds"]), src.with_name(f"{src.name}-{split}")
        models = [Path("round_0") / "warmup", *(Path(f"round_{k}") / "train" for k in range(1, last + 1))]
        common = [o for o in r["overrides"] if not o.startswith(("run_dir=", "experiment_name="))]
        common += [f"run_dir={dst}", f"experiment_name={r['name']}-{split}", f"eval_split={split}",
                   "eval_questions=null", "stage=eval"]
        middle = range(1, last) if every_round and r["row"] == "full method" else ()
        out.append({**r, "name": f"{r['name']}-{split}", "run_dir": dst, "source": src, "models": models,
                    "commands": [[*common, "round=0", "eval.base=false"],
                                 *([*common, f"round={k}"] for k in middle), [*common, f"round={last}"]]})
    return out


def link_models(run: dict) -> None:
    """Hard-link the source run's finished model stages into the split's run folder (once)."""
    for m in run["models"]:  # a run without warm-up has no round_0/warmup
        if not (run["run_dir"] / m).exists() and (run["source"] / m).exists():
            _copy(run["source"] / m, run["run_dir"] / m, link=True)


def _triple(m: dict, k: str) -> list[float] | None:
    return [m[k]["value"], m[k]["low"], m[k]["high"]] if k in m else None


def _pick(metrics: dict) -> dict:
    return {k: _triple(metrics, k) for k in METRICS if k in metrics}


def _rel(path: Path) -> str:
    """A path as committed files hold it: relative to the project root when it is inside."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def habits(evaluation: Path, judge: str = "reward") -> dict | None:
    """What the evaluated answers do (start.shortcuts.answer_habits), read from their text; ``judge`` "eval"
    takes the evaluation judge's verdicts on which sentences are supported (None when it did not judge)."""
    from start.io import read_jsonl
    from start.sampling.sampler import expand_for_scoring
    from start.shortcuts import answer_habits

    samples = evaluation / "sample" / "samples.jsonl"
    scores = evaluation / ("score_eval" if judge == "eval" else "score") / "scores.jsonl"
    if not (samples.is_file() and scores.is_file()):
        return None
    return answer_habits(expand_for_scoring(read_jsonl(samples)), read_jsonl(scores))


def evaluation_detail(evaluation: Path) -> dict:
    """Per evaluation: the share of citations to each position beside the gold documents' share there, and
    aggregation across sources (start.shortcuts.source_aggregation) -- under the evaluation judge when the
    evaluation has one -- and its own-words / copied habits."""
    from start.evaluate import gold_positions

    metrics = json.loads((evaluation / "metrics.json").read_text()) if (evaluation / "metrics.json").is_file() else {}
    judge = "eval" if (evaluation / "score_eval" / "scores.jsonl").is_file() else "reward"
    h = habits(evaluation, judge)
    stored = (metrics.get("eval_judge") or {}) if judge == "eval" else metrics
    aggregation = stored.get("aggregation")
    if aggregation is None and h is not None:
        from start.io import read_jsonl
        from start.sampling.sampler import expand_for_scoring
        from start.shortcuts import source_aggregation

        folder = "score_eval" if judge == "eval" else "score"
        aggregation = source_aggregation(expand_for_scoring(read_jsonl(evaluation / "sample" / "samples.jsonl")),
                                         read_jsonl(evaluation / folder / "scores.jsonl"))
    gold = gold_positions(evaluation)
    return {"judge": judge, "cited_position_share": (h or {}).get("cited_position_share"),
            "gold_position_share": {str(k): v for k, v in enumerate(gold, 1)} if gold else None,
            "aggregation": aggregation, "habits": h}


def position_gap(detail: dict) -> float | None:
    """The largest distance, in points, between the share of citations to a position and the gold documents'
    share there (None when either is unknown)."""
    cited, gold = detail.get("cited_position_share"), detail.get("gold_position_share")
    if not cited or not gold:
        return None
    return 100 * max(abs(cited.get(k, 0.0) - gold.get(k, 0.0)) for k in set(cited) | set(gold))


@functools.cache
def margin_change_of(run_dir: Path, last: int) -> list[float] | None:
    """Round 0 -> ``last`` paired change of the attribution margin (start.shortcuts.margin_change), re-scored
    with the run's own reward judge; None when either evaluation did not keep its samples."""
    from start.io import read_jsonl
    from start.sampling.sampler import expand_for_scoring
    from start.scoring import AttributionScorer, NLIConfig, RecordScore, ScorerConfig
    from start.shortcuts import margin_change
    from start.stats import per_question

    evals = [run_dir / "round_0" / "eval", run_dir / f"round_{last}" / "eval"]
    if not all((e / "sample" / "samples.jsonl").is_file() and (e / "score" / "scores.jsonl").is_file() for e in evals):
        return None
    cfg = json.loads((run_dir / "config.json").read_text())
    scorer = AttributionScorer(NLIConfig(**cfg["scorer"]["nli"]), ScorerConfig(**cfg["scorer"]["rules"]))
    sides = [(expand_for_scoring(read_jsonl(e / "sample" / "samples.jsonl")),
              per_question([RecordScore.from_dict(d) for d in read_jsonl(e / "score" / "scores.jsonl")],
                           lambda i: i.rsplit("#", 1)[0])) for e in evals]
    d = margin_change(*sides, scorer, n_boot=_n_boot(run_dir), seed=0)
    return [d["value"], d["low"], d["high"]]


def _training(run_dir: Path) -> list[dict]:
    """What each round of a run trained on (its report's training.json; [] for a run that trained nothing)."""
    path = Path(run_dir) / "report" / "training.json"
    return json.loads(path.read_text()) if path.is_file() else []


def summarize_run(run_dir: Path) -> dict:
    """One finished run's report: base, warm-up (round 0), every round, round 0 -> last round (the reward
    judge's and the evaluation judge's paired changes, the attribution margin's included), and per evaluated
    round the cited positions beside the gold ones, aggregation across sources and habits."""
    report = run_dir / "report"
    if not (report / "rounds.json").is_file():
        raise FileNotFoundError(f"{run_dir}: no report/rounds.json; the run has not finished")
    evals = {str(r["round"]): r for r in json.loads((report / "rounds.json").read_text())}
    diffs = _differences(run_dir)
    training = _training(run_dir)
    rounds = sorted(int(k) for k in evals if k.isdigit() and int(k) >= 1)
    last = rounds[-1] if rounds else None
    step = diffs.get(f"0 -> {last}", {})
    change, judged = step.get("metrics", {}), step.get("eval_judge", {}).get("metrics", {})
    margin = _triple(change, "attribution_margin") if "attribution_margin" in change else (
        margin_change_of(Path(run_dir), last) if last else None)
    detail = {k: evaluation_detail(run_dir / f"round_{k}" / "eval") for k in ([0, *rounds] if "0" in evals else rounds)}
    return {
        "run_dir": _rel(run_dir),
        "base": _pick(evals["base"]["metrics"]) if "base" in evals else None,
        "warmup": _pick(evals["0"]["metrics"]) if "0" in evals else None,
        "rounds": [{"round": r, **_pick(evals[str(r)]["metrics"]),
                    "eval_judge": _pick((evals[str(r)].get("eval_judge") or {}).get("metrics", {})),
                    "empty_answers": evals[str(r)].get("empty_answers")} for r in rounds],
        "round0_to_last": {**{k: _triple(change, k) for k in CHANGE if k in change},
                           **({"attribution_margin": margin} if last else {}),
                           **({"eval_citation_f1": _triple(judged, "citation_f1"),
                               "eval_attribution_margin": _triple(judged, "attribution_margin")} if judged else {})},
        "evaluations": {str(k): {**v, "position_gap": position_gap(v)} for k, v in detail.items()},
        "habits": {"warmup": habits(run_dir / "round_0" / "eval"),
                   "last": habits(run_dir / f"round_{last}" / "eval") if last else None},
        "training": training,
    }


def _last_scores(run_dir: Path, which: str = "last") -> Path:
    """The scores of a run's last evaluation (``which`` "last") or of round N's (``"round:N"``)."""
    evals = sorted(run_dir.glob("round_*/eval/score/scores.jsonl"), key=lambda p: int(p.parts[-4].split("_")[1]))
    if which.startswith("round:"):
        evals = [e for e in evals if e.parts[-4] == f"round_{which.split(':')[1]}"]
    if not evals:
        raise FileNotFoundError(f"{run_dir}: no evaluation ({which})")
    return evals[-1]


def _differences(run_dir: Path) -> dict:
    path = run_dir / "report" / "differences.json"
    return {d["change"]: d for d in json.loads(path.read_text())} if path.is_file() else {}


def _warmup_scores(run_dir: Path) -> Path:
    return run_dir / "round_0" / "eval" / "score" / "scores.jsonl"


def _n_boot(run_dir: Path) -> int:
    cfg = run_dir / "config.json"
    return int(json.loads(cfg.read_text())["eval"]["n_boot"]) if cfg.is_file() else 1000


def ablation(rows: list[tuple[str, Path, str]], full: str = "full method") -> dict:
    """Ablation rows: (row name, run folder, "warmup" or "last") -> each row's evaluation and the paired
    difference full method minus the row, on the same held-out questions."""
    from start.evaluate import eval_columns
    from start.stats import bootstrap, paired_difference

    cols, folders = {}, {}
    out = []
    for name, run_dir, which in rows:
        folders[name] = run_dir
        scores = _warmup_scores(run_dir) if which == "warmup" else _last_scores(run_dir, which)
        qids, cols[name] = eval_columns(scores)
        evaluation = scores.parent.parent
        metrics = evaluation / "metrics.json"  # the run's own intervals; recomputed only when it is missing
        m = json.loads(metrics.read_text())["metrics"] if metrics.is_file() else \
            bootstrap(cols[name], n_boot=_n_boot(run_dir), seed=0)
        stored = json.loads(metrics.read_text()) if metrics.is_file() else {}
        out.append({"row": name, "run_dir": _rel(run_dir), "evaluation": _rel(evaluation), "questions": len(qids),
                    "metrics": _pick(m), "eval_judge": _pick((stored.get("eval_judge") or {}).get("metrics", {})),
                    "qids": qids, "_evaluation": evaluation})
        if which != "warmup":
            last = int(evaluation.parent.name.split("_")[1])
            step = _differences(Path(run_dir)).get(f"0 -> {last}", {})
            margin = step.get("metrics", {}).get("attribution_margin")
            out[-1]["margin_round0_to_last"] = _triple({"m": margin}, "m") if margin else \
                margin_change_of(Path(run_dir), last)
            judged = step.get("eval_judge", {}).get("metrics", {})
            out[-1]["eval_round0_to_last"] = {k: _triple(judged, k) for k in ("citation_f1", "attribution_margin")
                                              if k in judged}
            out[-1]["detail"] = evaluation_detail(evaluation)
    ref = next((r for r in out if r["row"] == full), None)
    for r in out:
        if ref is not None and r is not ref:
            if r["qids"] != ref["qids"]:
                raise ValueError(f"ablation row {r['row']!r} was evaluated on other questions than {full!r}")
            d = paired_difference(cols[r["row"]], cols[full], n_boot=_n_boot(folders[full]), seed=0)
            r["full_minus_row"] = {k: _triple(d, k) for k in CHANGE if k in d}
            judged = [x["_evaluation"] / "score_eval" / "scores.jsonl" for x in (r, ref)]
            if all(j.is_file() for j in judged):
                (_, a), (_, b) = eval_columns(judged[0]), eval_columns(judged[1])
                keep = ("citation_rec", "citation_prec")
                d = paired_difference({k: a[k] for k in keep}, {k: b[k] for k in keep}, n_boot=_n_boot(folders[full]),
                                      seed=0)
                r["full_minus_row"]["eval_citation_f1"] = _triple(d, "citation_f1")
    for r in out:
        del r["qids"], r["_evaluation"]
    return {"rows": out}


def _cell(v: list[float] | None) -> str:
    return "-" if v is None else f"{v[0]:.1f} [{v[1]:.1f}, {v[2]:.1f}]"


def _habit(h: dict | None, key: str) -> str:
    if not h or h.get(key, 0.0) is None:
        return "-"
    if key == "[1]":
        return f"{100 * h.get('cited_position_share', {}).get('1', 0.0):.0f}%"
    return f"{100 * h[key]:.0f}%" if key.endswith("_share") else f"{h[key]:.1f}"


def _share(d: dict | None, k: str) -> str:
    return "-" if not d or d.get(k) is None else f"{100 * d[k]:.0f}%"


def _positions(detail: dict) -> str:
    cited, gold = detail.get("cited_position_share"), detail.get("gold_position_share")
    if not cited:
        return "-"
    keys = sorted(set(cited) | set(gold or {}), key=int)
    out = " ".join(f"{100 * cited.get(k, 0.0):.0f}" for k in keys)
    return out + (f" (gold {' '.join(f'{100 * gold.get(k, 0.0):.0f}' for k in keys)})" if gold else "")


def markdown(seeds: list[dict], abl: dict) -> str:
    lines = ["## START over seeds", ""]
    if seeds:
        lines += ["Held-out citation F1 (95% intervals over questions); round 0 -> last: paired difference on the same "
                  "questions. The attribution margin is citation F1 minus that of the same answers re-cited with the "
                  "best constant position [k]; the evaluation judge never gave rewards.", "",
                  "| seed | warm-up F1 | " + " | ".join(f"round {r['round']} F1" for r in seeds[0]["rounds"])
                  + " | F1 round 0 -> last | margin round 0 -> last | evaluation judge: F1 round 0 -> last | "
                  "evaluation judge: margin round 0 -> last | comprehensiveness round 0 -> last | pairs per round |",
                  "|---|" + "---:|" * (6 + len(seeds[0]["rounds"])) + "---|"]
    for s in seeds:
        pairs = ", ".join(str(t.get("pairs", "-")) for t in s["training"])
        ch = s["round0_to_last"]
        lines.append(f"| {s['seed']} | {_cell((s['warmup'] or {}).get('citation_f1'))} | "
                     + " | ".join(_cell(r.get("citation_f1")) for r in s["rounds"])
                     + f" | {_cell(ch.get('citation_f1'))} | {_cell(ch.get('attribution_margin'))} | "
                     f"{_cell(ch.get('eval_citation_f1'))} | {_cell(ch.get('eval_attribution_margin'))} | "
                     f"{_cell(ch.get('comprehensiveness'))} | {pairs} |")
    if seeds and any(s.get("evaluations") for s in seeds):
        lines += ["", "Per evaluation (the evaluation judge's verdicts where it judged): the share of citations to "
                  "each position, % (the gold documents' share there); the largest gap to gold, points; own-words "
                  "(not copied) cited sentences that are supported; copied cited sentences; answers to questions "
                  "that need >= 2 documents whose supported sentences cite >= 2 documents, and the gold documents "
                  "they reach.", "",
                  "| seed | round | cited positions (gold) | largest gap | own-words supported | copied | "
                  "cite >= 2 documents | gold documents reached |", "|---|---|---|---:|---:|---:|---:|---:|"]
        for s in seeds:
            for k, e in sorted(s.get("evaluations", {}).items(), key=lambda kv: int(kv[0])):
                h, agg = e.get("habits") or {}, e.get("aggregation") or {}
                gap = e.get("position_gap")
                reached = "-" if agg.get("gold_reached") is None else \
                    f"{agg['gold_reached']:.2f} of {agg['gold_needed']:.2f}"
                lines.append(f"| {s['seed']} | {k} | {_positions(e)} | {'-' if gap is None else f'{gap:.0f}'} | "
                             f"{_share(h, 'own_supported_share')} | {_share(h, 'copied_sentence_share')} | "
                             f"{_share(agg, 'multi_source_share')} | {reached} |")
    lines += ["", "What the answers do, round 0 -> last round (read from the text; the reward judge's verdicts): "
              "words, citations per sentence, answers citing every document, cited sentences copied from a document, "
              "and the share of copied and of own-words cited sentences that their citations support (a rise only "
              "in copying is the copy shortcut), share of citations to [1].",
              "", "| seed | words | citations / sentence | cite all | copied | copied supported | own supported | "
              "cites [1] |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in seeds:
        h = s.get("habits") or {}
        cells = [" -> ".join(_habit(h.get(w), k) for w in ("warmup", "last"))
                 for k in ("words", "citations_per_sentence", "cite_all_share", "copied_sentence_share",
                           "copied_supported_share", "own_supported_share", "[1]")]
        lines.append(f"| {s['seed']} | " + " | ".join(cells) + " |")
    lines += ["", "## Ablation", "", "Each row's last evaluation (\"1 round\", ...: the full method's own earlier "
              "rounds); full method - row is paired on the same questions. Attribution margin: citation F1 minus "
              "that of the same answers re-cited with the best constant position [k]; its change from round 0 is "
              "paired.", "",
              "| row | citation F1 | evaluation judge F1 | margin round 0 -> last | evaluation judge: margin round 0 "
              "-> last | comprehensiveness | str_em | full method - row: F1 | full method - row: evaluation judge F1 "
              "| full method - row: comprehensiveness |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in abl.get("rows", []):
        m, d, j = r["metrics"], r.get("full_minus_row") or {}, r.get("eval_round0_to_last") or {}
        cells = [m.get("citation_f1"), (r.get("eval_judge") or {}).get("citation_f1"), r.get("margin_round0_to_last"),
                 j.get("attribution_margin"), m.get("comprehensiveness"), m.get("str_em"), d.get("citation_f1"),
                 d.get("eval_citation_f1"), d.get("comprehensiveness")]
        lines.append(f"| {r['row']} | " + " | ".join(_cell(c) for c in cells) + " |")
    if abl.get("not_finished"):
        lines += ["", f"Not run yet: {', '.join(abl['not_finished'])}."]
    if abl.get("tried"):
        lines += ["", "## Settings tried (ablation seed, tuning split only)", "",
                  "Each row is the full method with the named overrides, from the same warm-up; full method - row is "
                  "paired on the same questions.", "",
                  "| setting | overrides | citation F1 | margin round 0 -> last | comprehensiveness "
                  "| full method - row: F1 | full method - row: comprehensiveness | pairs per round | words | copied "
                  "| own supported | cites [1] |", "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
        for r in abl["tried"]:
            m, d, h = r["metrics"], r.get("full_minus_row") or {}, r.get("habits")
            pairs = ", ".join(str(t.get("pairs", "-")) for t in r.get("training", []))
            lines.append(f"| {r['row'].removeprefix('tried: ')} | `{' '.join(r['overrides'])}` | "
                         + " | ".join(_cell(c) for c in (m.get("citation_f1"), r.get("margin_round0_to_last"),
                                                          m.get("comprehensiveness"), d.get("citation_f1"),
                                                          d.get("comprehensiveness")))
                         + f" | {pairs} | " + " | ".join(_habit(h, k) for k in
                                                       ("words", "copied_sentence_share", "own_supported_share",
                                                        "[1]"))
                         + " |")
    return "\n".join(lines) + "\n"


def targets(seeds: list[dict], abl: dict) -> dict:
    """Where the experiment stands against the START-effect issue's targets (evaluation judge where it judged):
    the margin change's interval above 0 in >= 2 seeds; in every seed and evaluated round, citations to each
    position within 15 points of the gold documents' share; own-words cited sentences supported more often
    after the rounds; the full method >= "overall pairs only" on citation F1 and above it on comprehensiveness."""
    def lower(s: dict, k: str) -> float | None:
        v = s["round0_to_last"].get(k)
        return None if v is None else v[1]

    margin = {s["seed"]: lower(s, "eval_attribution_margin") for s in seeds}
    gaps = {s["seed"]: {k: e.get("position_gap") for k, e in s.get("evaluations", {}).items()} for s in seeds}
    own = {}
    for s in seeds:
        ev = s.get("evaluations", {})
        keys = sorted(ev, key=int)
        first, last = (((ev[k].get("habits") or {}).get("own_supported_share")) for k in (keys[0], keys[-1])) \
            if len(keys) > 1 else (None, None)
        own[s["seed"]] = [first, last]
    rows = {r["row"]: r for r in abl.get("rows", [])}
    overall = (rows.get("overall pairs only") or {}).get("full_minus_row", {})
    return {
        "eval_margin_interval_above_0": {"seeds": [k for k, v in margin.items() if v is not None and v > 0],
                                         "needed": 2, "lower_bounds": margin},
        "position_within_15_points": {"max_gap_points": {k: max((x for x in g.values() if x is not None), default=None)
                                                         for k, g in gaps.items()}, "per_round": gaps},
        "own_words_supported_rises": {k: {"round0": a, "last": b, "rises": None if a is None or b is None else b > a}
                                      for k, (a, b) in own.items()},
        "full_vs_overall": {"citation_f1": overall.get("citation_f1"),
                            "eval_citation_f1": overall.get("eval_citation_f1"),
                            "comprehensiveness": overall.get("comprehensiveness")},
    }


def targets_markdown(t: dict) -> str:
    """The targets of the START-effect issue, met or missed, in words."""
    m = t["eval_margin_interval_above_0"]
    bounds = ", ".join(f"{k}: {v:+.1f}" for k, v in m["lower_bounds"].items() if v is not None) or "-"
    lines = ["", "## Targets", "",
             f"- Evaluation judge's margin change, interval above 0: seeds {m['seeds'] or 'none'} (needed: "
             f"{m['needed']}); lower bounds {bounds}."]
    gaps = ", ".join(f"seed {k}: {'-' if v is None else f'{v:.0f}'}"
                     for k, v in t["position_within_15_points"]["max_gap_points"].items())
    lines.append("- Largest gap between the share of citations to a position and the gold documents' share, any "
                 f"evaluated round: {gaps} points (target <= 15).")
    own = t["own_words_supported_rises"]
    lines.append("- Own-words cited sentences supported, round 0 -> last: " + ", ".join(
        f"seed {k}: {_share(v, 'round0')} -> {_share(v, 'last')}" for k, v in own.items()) + ".")
    f = t["full_vs_overall"]
    lines.append(f"- Full method - overall pairs only: citation F1 {_cell(f.get('citation_f1'))} (evaluation judge "
                 f"{_cell(f.get('eval_citation_f1'))}), comprehensiveness {_cell(f.get('comprehensiveness'))}.")
    return "\n".join(lines) + "\n"


def code_version() -> str:
    """The commit the runs' code came from (``+changes`` when the work tree differs from it)."""
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    return f"{head}+changes" if head and git("status", "--porcelain", "--untracked-files=no") else head or "unknown"


def aggregate(runs: list[dict], out: Path, ablation_seed: int, argv: list[str], split: str | None = None
              ) -> tuple[dict, dict]:
    """Write ``start_seeds.json``, ``start_ablation.json`` and ``start_seeds.md`` from finished runs (with
    ``split``: ``start_seeds_<split>.json`` ... from the runs' evaluation on that split)."""
    from start.io import atomic_open, write_json

    seeds = [{"seed": r["seed"], **summarize_run(r["run_dir"])} for r in runs if r["name"].startswith("seed")]
    for s, r in zip(seeds, (r for r in runs if r["name"].startswith("seed")), strict=True):
        if r.get("source"):  # a final-split evaluation: the rounds trained in the source run
            s["training"] = _training(r["source"])
    seeds.sort(key=lambda s: s["seed"])
    rises = [s["seed"] for s in seeds if (s["round0_to_last"].get("citation_f1") or [0, 0, 0])[1] > 0]
    seeds_doc = {"command": " ".join(argv), "code": code_version(), "split": split or "eval_split", "seeds": seeds,
                 "seeds_with_citation_f1_rise": rises}
    full = next(r for r in runs if r["row"] == "full method")
    finished = [r for r in runs if r["row"] and r["row"] != "full method" and not r.get("tried")
                and (Path(r["run_dir"]) / "report" / "rounds.json").is_file()]
    rows = [("warm-up only", full["run_dir"], "warmup")]
    continuing = [r for r in finished if r.get("continues")]
    if continuing:  # the rounds rows: the full method's own earlier rounds, then its continuation
        last = int(json.loads((Path(full["run_dir"]) / "config.json").read_text())["rounds"])
        rows += [(f"{k} round{'s' if k > 1 else ''}", full["run_dir"], f"round:{k}") for k in range(1, last)]
    rows.append(("full method", full["run_dir"], "last"))
    rows += [(r["row"], r["run_dir"], "last") for r in continuing]
    rows += [(r["row"], r["run_dir"], "last") for r in finished if not r.get("continues")]
    abl = {"seed": ablation_seed, "command": " ".join(argv), **ablation(rows),
           "not_finished": [r["row"] for r in runs if r["row"] and r["row"] != "full method" and not r.get("tried")
                            and r not in finished]}
    seeds_doc["targets"] = targets(seeds, abl)
    tried = [r for r in runs if r.get("tried")]
    if tried:
        abl["tried"] = ablation([("full method", full["run_dir"], "last"),
                                 *((r["row"], r["run_dir"], "last") for r in tried)])["rows"][1:]
        for r, row in zip(tried, abl["tried"], strict=True):
            row["overrides"] = r["extra"]
            run = summarize_run(Path(r["run_dir"]))
            row["habits"], row["training"] = run["habits"]["last"], run["training"]
    out.mkdir(parents=True, exist_ok=True)
    tag = f"_{split}" if split else ""
    write_json(out / f"start_seeds{tag}.json", seeds_doc)
    write_json(out / f"start_ablation{tag}.json", abl)
    title = f"on the {split} split (evaluated once, frozen config)" if split else "on the tuning split"
    with atomic_open(out / f"start_seeds{tag}.md") as f:
        f.write(f"# START: seeds and ablation {title}\n\nCommand: `{seeds_doc['command']}` (code "
                f"{seeds_doc['code']})\n\n"
                + markdown(seeds, abl) + targets_markdown(seeds_doc["targets"]))
    return seeds_doc, abl


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ablation-seed", type=int, default=None, help="default: the first seed")
    parser.add_argument("--rs-sft", action="store_true", help="add the rejection-sampling-SFT-only row")
    parser.add_argument("--tiny", action="store_true", help="debug=tiny sampler=transformers: check the harness")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--no-run", action="store_true", help="only aggregate finished runs")
    parser.add_argument("--final-split", default=None, metavar="SPLIT",
                        help="after the runs: evaluate every run's round 0 and last round on SPLIT (e.g. test), once")
    parser.add_argument("--try", dest="tried", action="append", default=[], metavar="NAME:OVERRIDES",
                        help="a setting tried on the ablation seed, e.g. 'floor0:preference.min_attributability=0' "
                             "(repeatable; several overrides separated by spaces; tuning split only)")
    parser.add_argument("--rows", nargs="*", default=None, metavar="PREFIX",
                        help=f"only these ablation rows ({', '.join(a[0] for a in ABLATIONS)}); none when empty")
    parser.add_argument("--no-ablations", action="store_true",
                        help="only the 'overall pairs only' row (not without warm-up / without each signal)")
    parser.add_argument("--more-rounds", type=int, default=None, metavar="N",
                        help="continue the full method to N rounds (rows '1 round', ..., 'N rounds')")
    parser.add_argument("--runs", type=Path, default=Path("runs") / "seeds")
    parser.add_argument("--out", type=Path, default=Path("bench"))
    args, overrides = parser.parse_known_args(argv)
    unknown = [o for o in overrides if o.startswith("--")]
    if unknown:
        parser.error(f"unknown options {unknown} (Hydra overrides are key=value)")
    a_seed = args.seeds[0] if args.ablation_seed is None else args.ablation_seed
    if args.rows is not None and args.no_ablations:
        parser.error("--rows and --no-ablations: give one")
    try:
        tried = parse_tried(args.tried)
        runs = plan_runs(args.seeds, a_seed, args.runs, overrides, rs_sft=args.rs_sft, tiny=args.tiny, tried=tried,
                         ablations=tuple(args.rows) if args.rows is not None else not args.no_ablations,
                         more_rounds=args.more_rounds)
    except ValueError as e:
        parser.error(str(e))
    for r in runs:
        cmd = [sys.executable, "-m", "start.run", *r["overrides"]]
        print(f"[{r['name']}]", " ".join(cmd[1:]), flush=True)
        if not (args.dry_run or args.no_run):
            if share_warmup(r, runs):
                print(f"[{r['name']}] starts from a copy of the full method's finished rounds", flush=True)
            done = subprocess.run(cmd, cwd=ROOT, env=os.environ.copy())
            if done.returncode:
                print(f"run {r['name']} failed (exit {done.returncode}); re-run this script to resume it",
                      file=sys.stderr)
                return done.returncode
    if args.dry_run:
        return 0
    command = ["scripts/experiment_seeds.py", *argv]
    seeds_doc, _ = aggregate(runs, args.out, a_seed, command)
    print((args.out / "start_seeds.md").read_text())
    print(f"citation F1 rose from round 0 to the last round (paired 95% interval above 0) in seeds "
          f"{seeds_doc['seeds_with_citation_f1_rise'] or 'none'} of {[s['seed'] for s in seeds_doc['seeds']]}")
    if args.final_split:
        finals = split_runs(runs, args.final_split)
        for r in [] if args.no_run else finals:
            if share_warmup(r, finals):
                print(f"[{r['name']}] starts from a copy of the full method's round_0", flush=True)
            link_models(r)
            for overrides in r["commands"]:
                cmd = [sys.executable, "-m", "start.run", *overrides]
                print(f"[{r['name']}]", " ".join(cmd[1:]), flush=True)
                done = subprocess.run(cmd, cwd=ROOT, env=os.environ.copy())
                if done.returncode:
                    print(f"{r['name']} failed (exit {done.returncode}); re-run this script to resume it",
                          file=sys.stderr)
                    return done.returncode
        final_doc, _ = aggregate(finals, args.out, a_seed, command, split=args.final_split)
        print((args.out / f"start_seeds_{args.final_split}.md").read_text())
        print(f"on {args.final_split}: citation F1 rose in seeds {final_doc['seeds_with_citation_f1_rise'] or 'none'}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
