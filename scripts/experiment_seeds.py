"""The START experiment: the loop over several seeds, and the paper's ablation rows on one seed.

    python scripts/experiment_seeds.py [--seeds 0 1 2] [--ablation-seed 0] [--rs-sft] [--try NAME:OVERRIDES]
                                       [--tiny] [--dry-run] [--no-run] [--final-split test]
                                       [--runs runs/seeds] [--out bench] [hydra overrides ...]

Every run is a normal ``python -m start.run`` in its own run folder under ``--runs``, so re-running this
script skips every finished stage and resumes an interrupted one. Runs:

* ``seed<S>`` for every seed: the full method (warm-up, rounds with overall and fine-grained pairs); the
  seed changes sampling, warm-up grouping and the rounds' question slices;
* ``overall-seed<A>``: rounds with overall pairs only (``preference.fine_grained=false``);
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


def plan_runs(seeds: list[int], ablation_seed: int, runs: Path, overrides: list[str], *, rs_sft: bool = False,
              tiny: bool = False, tried: list[tuple[str, list[str]]] = ()) -> list[dict]:
    """The runs to do, in order: name, run folder and the ``start.run`` overrides of each. ``tried``: settings
    tried on the ablation seed (tuning only: never evaluated on the final split)."""
    base = [*(TINY if tiny else ()), *overrides]
    order = [ablation_seed] + [s for s in seeds if s != ablation_seed] if ablation_seed in seeds else seeds
    out = [{"name": f"seed{s}", "seed": s, "row": "full method" if s == ablation_seed else None, "extra": []}
           for s in order]
    out.append({"name": f"overall-seed{ablation_seed}", "seed": ablation_seed, "row": "overall pairs only",
                "extra": ["preference.fine_grained=false"]})
    if rs_sft:
        out.append({"name": f"rs-sft-seed{ablation_seed}", "seed": ablation_seed,
                    "row": "rejection-sampling SFT only",
                    "extra": ["trainer.rs_sft.enabled=true", "trainer.rs_sft.only=true"]})
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
    """Copy the full method's finished ``round_0`` into an ablation run of the same seed that has none yet."""
    full = next((r for r in runs if r["row"] == "full method" and r["seed"] == run["seed"]), None)
    if full is None or run is full or run["row"] is None:
        return False
    src, dst = Path(full["run_dir"]) / "round_0", Path(run["run_dir"]) / "round_0"
    if dst.exists() or not (src / "eval" / "metrics.json").is_file():
        return False
    _copy(src, dst)
    return True


def split_runs(runs: list[dict], split: str) -> list[dict]:
    """The evaluation of every finished run on another split (the test split, once, with the frozen config):
    a run folder ``<name>-<split>`` holding hard links to the run's trained models (``round_0/warmup``, each
    round's ``train``), evaluated at round 0 and at the last round; the base model is not re-evaluated."""
    out = []
    for r in runs:
        if r.get("tried"):
            continue
        src = Path(r["run_dir"])
        cfg = json.loads((src / "config.json").read_text())
        last, dst = int(cfg["rounds"]), src.with_name(f"{src.name}-{split}")
        models = [Path("round_0") / "warmup", *(Path(f"round_{k}") / "train" for k in range(1, last + 1))]
        common = [o for o in r["overrides"] if not o.startswith(("run_dir=", "experiment_name="))]
        common += [f"run_dir={dst}", f"experiment_name={r['name']}-{split}", f"eval_split={split}",
                   "eval_questions=null", "stage=eval"]
        out.append({**r, "name": f"{r['name']}-{split}", "run_dir": dst, "source": src, "models": models,
                    "commands": [[*common, "round=0", "eval.base=false"], [*common, f"round={last}"]]})
    return out


def link_models(run: dict) -> None:
    """Hard-link the source run's finished model stages into the split's run folder (once)."""
    for m in run["models"]:
        if not (run["run_dir"] / m).exists():
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


def habits(evaluation: Path) -> dict | None:
    """What the evaluated answers do (start.shortcuts.answer_habits), read from their text."""
    from start.io import read_jsonl
    from start.sampling.sampler import expand_for_scoring
    from start.shortcuts import answer_habits

    samples, scores = evaluation / "sample" / "samples.jsonl", evaluation / "score" / "scores.jsonl"
    if not (samples.is_file() and scores.is_file()):
        return None
    return answer_habits(expand_for_scoring(read_jsonl(samples)), read_jsonl(scores))


@functools.cache
def margin_change_of(run_dir: Path, last: int) -> list[float] | None:
    """Round 0 -> ``last`` paired change of the attribution margin (start.shortcuts.margin_change), re-scored
    with the run's own reward judge; None when either evaluation did not keep its samples."""
    from start.evaluate import per_question
    from start.io import read_jsonl
    from start.sampling.sampler import expand_for_scoring
    from start.scoring import AttributionScorer, NLIConfig, RecordScore, ScorerConfig
    from start.shortcuts import margin_change

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
    """One finished run's report: base, warm-up (round 0), every round, round 0 -> last round."""
    report = run_dir / "report"
    if not (report / "rounds.json").is_file():
        raise FileNotFoundError(f"{run_dir}: no report/rounds.json; the run has not finished")
    evals = {str(r["round"]): r for r in json.loads((report / "rounds.json").read_text())}
    diffs = {d["change"]: d for d in json.loads((report / "differences.json").read_text())} \
        if (report / "differences.json").is_file() else {}
    training = _training(run_dir)
    rounds = sorted(int(k) for k in evals if k.isdigit() and int(k) >= 1)
    last = rounds[-1] if rounds else None
    change = diffs.get(f"0 -> {last}", {}).get("metrics", {})
    return {
        "run_dir": _rel(run_dir),
        "base": _pick(evals["base"]["metrics"]) if "base" in evals else None,
        "warmup": _pick(evals["0"]["metrics"]) if "0" in evals else None,
        "rounds": [{"round": r, **_pick(evals[str(r)]["metrics"]),
                    "empty_answers": evals[str(r)].get("empty_answers")} for r in rounds],
        "round0_to_last": {**{k: _triple(change, k) for k in CHANGE if k in change},
                           **({"attribution_margin": margin_change_of(Path(run_dir), last)} if last else {})},
        "habits": {"warmup": habits(run_dir / "round_0" / "eval"),
                   "last": habits(run_dir / f"round_{last}" / "eval") if last else None},
        "training": training,
    }


def _last_scores(run_dir: Path) -> Path:
    evals = sorted(run_dir.glob("round_*/eval/score/scores.jsonl"), key=lambda p: int(p.parts[-4].split("_")[1]))
    if not evals:
        raise FileNotFoundError(f"{run_dir}: no evaluation")
    return evals[-1]


def _warmup_scores(run_dir: Path) -> Path:
    return run_dir / "round_0" / "eval" / "score" / "scores.jsonl"


def _n_boot(run_dir: Path) -> int:
    cfg = run_dir / "config.json"
    return int(json.loads(cfg.read_text())["eval"]["n_boot"]) if cfg.is_file() else 1000


def ablation(rows: list[tuple[str, Path, str]], full: str = "full method") -> dict:
    """Ablation rows: (row name, run folder, "warmup" or "last") -> each row's evaluation and the paired
    difference full method minus the row, on the same held-out questions."""
    from start.evaluate import bootstrap, eval_columns, paired_difference

    cols, folders = {}, {}
    out = []
    for name, run_dir, which in rows:
        folders[name] = run_dir
        scores = _warmup_scores(run_dir) if which == "warmup" else _last_scores(run_dir)
        qids, cols[name] = eval_columns(scores)
        evaluation = scores.parent.parent
        metrics = evaluation / "metrics.json"  # the run's own intervals; recomputed only when it is missing
        m = json.loads(metrics.read_text())["metrics"] if metrics.is_file() else \
            bootstrap(cols[name], n_boot=_n_boot(run_dir), seed=0)
        out.append({"row": name, "run_dir": _rel(run_dir), "evaluation": _rel(evaluation), "questions": len(qids),
                    "metrics": _pick(m), "qids": qids})
        if which == "last":
            last = int(evaluation.parent.name.split("_")[1])
            out[-1]["margin_round0_to_last"] = margin_change_of(Path(run_dir), last)
    ref = next((r for r in out if r["row"] == full), None)
    for r in out:
        if ref is not None and r is not ref:
            if r["qids"] != ref["qids"]:
                raise ValueError(f"ablation row {r['row']!r} was evaluated on other questions than {full!r}")
            d = paired_difference(cols[r["row"]], cols[full], n_boot=_n_boot(folders[full]), seed=0)
            r["full_minus_row"] = {k: _triple(d, k) for k in CHANGE if k in d}
    for r in out:
        del r["qids"]
    return {"rows": out}


def _cell(v: list[float] | None) -> str:
    return "-" if v is None else f"{v[0]:.1f} [{v[1]:.1f}, {v[2]:.1f}]"


def _habit(h: dict | None, key: str) -> str:
    if not h or h.get(key, 0.0) is None:
        return "-"
    if key == "[1]":
        return f"{100 * h.get('cited_position_share', {}).get('1', 0.0):.0f}%"
    return f"{100 * h[key]:.0f}%" if key.endswith("_share") else f"{h[key]:.1f}"


def markdown(seeds: list[dict], abl: dict) -> str:
    lines = ["## START over seeds", "", "Held-out citation F1 / comprehensiveness (95% intervals over questions); "
             "round 0 -> last: paired difference on the same questions.", "",
             "| seed | base F1 | warm-up F1 | " + " | ".join(f"round {r['round']} F1" for r in seeds[0]["rounds"])
             + " | F1 round 0 -> last | attribution margin round 0 -> last | comprehensiveness round 0 -> last "
             "| pairs per round |",
             "|---|" + "---:|" * (5 + len(seeds[0]["rounds"])) + "---|"] if seeds else ["## START over seeds", ""]
    for s in seeds:
        pairs = ", ".join(str(t.get("pairs", "-")) for t in s["training"])
        lines.append(f"| {s['seed']} | {_cell((s['base'] or {}).get('citation_f1'))} | "
                     f"{_cell((s['warmup'] or {}).get('citation_f1'))} | "
                     + " | ".join(_cell(r.get("citation_f1")) for r in s["rounds"])
                     + f" | {_cell(s['round0_to_last'].get('citation_f1'))} | "
                     f"{_cell(s['round0_to_last'].get('attribution_margin'))} | "
                     f"{_cell(s['round0_to_last'].get('comprehensiveness'))} | {pairs} |")
    lines += ["", "What the answers do, round 0 -> last round (read from the text): words, citations per sentence, "
              "answers citing every document, cited sentences copied from a document, and the share of copied and of "
              "own-words cited sentences that their citations support (a rise only in copying is the copy shortcut), "
              "share of citations to [1].",
              "", "| seed | words | citations / sentence | cite all | copied | copied supported | own supported | "
              "cites [1] |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in seeds:
        h = s.get("habits") or {}
        cells = [" -> ".join(_habit(h.get(w), k) for w in ("warmup", "last"))
                 for k in ("words", "citations_per_sentence", "cite_all_share", "copied_sentence_share",
                           "copied_supported_share", "own_supported_share", "[1]")]
        lines.append(f"| {s['seed']} | " + " | ".join(cells) + " |")
    lines += ["", "## Ablation", "", "Attribution margin: citation F1 minus that of the same answers re-cited with the "
              "best constant position [k] (a position habit has none); its change from round 0 is paired.", "",
              "| row | citation F1 | attribution margin | margin round 0 -> last | comprehensiveness | str_em "
              "| full method - row: F1 | full method - row: comprehensiveness |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in abl.get("rows", []):
        m, d = r["metrics"], r.get("full_minus_row") or {}
        cells = [m.get("citation_f1"), m.get("attribution_margin"), r.get("margin_round0_to_last"),
                 m.get("comprehensiveness"), m.get("str_em"), d.get("citation_f1"), d.get("comprehensiveness")]
        lines.append(f"| {r['row']} | " + " | ".join(_cell(c) for c in cells) + " |")
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
    rows = [("warm-up only", full["run_dir"], "warmup")]
    rows += [(r["row"], r["run_dir"], "last") for r in runs
             if r["row"] and r["row"] != "full method" and not r.get("tried")]
    rows.insert(2 if len(rows) > 1 else 1, ("full method", full["run_dir"], "last"))
    abl = {"seed": ablation_seed, "command": " ".join(argv), **ablation(rows)}
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
                + markdown(seeds, abl))
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
    parser.add_argument("--runs", type=Path, default=Path("runs") / "seeds")
    parser.add_argument("--out", type=Path, default=Path("bench"))
    args, overrides = parser.parse_known_args(argv)
    unknown = [o for o in overrides if o.startswith("--")]
    if unknown:
        parser.error(f"unknown options {unknown} (Hydra overrides are key=value)")
    a_seed = args.seeds[0] if args.ablation_seed is None else args.ablation_seed
    try:
        tried = parse_tried(args.tried)
    except ValueError as e:
        parser.error(str(e))
    runs = plan_runs(args.seeds, a_seed, args.runs, overrides, rs_sft=args.rs_sft, tiny=args.tiny, tried=tried)
    for r in runs:
        cmd = [sys.executable, "-m", "start.run", *r["overrides"]]
        print(f"[{r['name']}]", " ".join(cmd[1:]), flush=True)
        if not (args.dry_run or args.no_run):
            if share_warmup(r, runs):
                print(f"[{r['name']}] starts from a copy of the full method's round_0", flush=True)
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
