"""Held-out evaluation: metrics with 95% bootstrap intervals, paired differences between rounds, and the round
report (tables and plots).

The statistics (per-question means, bootstrap intervals, paired differences; empty answers count 0 in the citation
metrics, and evaluations count them) are :mod:`start.stats`; they stay importable from here.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from start.io import atomic_open, write_json
from start.report_html import write_report_html
from start.stats import bootstrap as bootstrap  # re-exported: scripts and older code import it from here
from start.stats import paired_difference, per_question

log = logging.getLogger(__name__)

REPORT_METRICS = ("citation_rec", "citation_prec", "citation_f1", "attribution_margin", "str_em", "comprehensiveness",
                  "length")
BASELINES = Path("round_0") / "baselines" / "metrics.json"  # the constant baselines of the run (pipeline)
MARGIN_FILE = "margin_columns.json"  # an evaluation's per-question columns of its attribution margin, per judge
N_EXAMPLES = 3  # held-out questions whose answers the report shows in every round



def eval_columns(scores: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    from start.scoring import RecordScore

    records = [RecordScore.from_dict(json.loads(line)) for line in scores.read_text(encoding="utf-8").split("\n")
               if line.strip()]
    records.sort(key=lambda r: (r.id.rsplit("#", 1)[0], int(r.id.rsplit("#", 1)[1]) if "#" in r.id else 0))
    qids = list(dict.fromkeys(r.id.rsplit("#", 1)[0] for r in records))  # per_question's row order
    return qids, per_question(records, lambda i: i.rsplit("#", 1)[0])


def round_differences(run_dir: Path, n_boot: int = 1000, seed: int = 0) -> list[tuple[str, dict]]:
    """Paired differences between evaluations on the same held-out questions: each round vs the one before,
    and the last round vs round 0 (the effect of the self-improvement rounds). Per step: the reward judge's
    metrics (``metrics``) and, when the evaluations have them, the evaluation judge's citation metrics
    (``eval_judge``); each with the paired change of the attribution margin from the stored margin columns."""
    folders = {"base": run_dir / "round_0" / "eval_base"}
    folders.update({p.parts[-2].split("_")[1]: p for p in
                    (q.parent for q in run_dir.glob("round_*/eval/metrics.json"))})
    done = [(k, f) for k, f in folders.items() if (f / "score" / "scores.jsonl").is_file()]
    done.sort(key=lambda kv: -1 if kv[0] == "base" else int(kv[0]))
    labels = [k for k, _ in done]
    steps = list(zip(labels, labels[1:], strict=False))
    if "0" in labels and labels[-1] not in ("0", "base") and ("0", labels[-1]) not in steps:
        steps.append(("0", labels[-1]))
    where = dict(done)
    out = []
    for a, b in steps:
        (qa, ca), (qb, cb) = eval_columns(where[a] / "score" / "scores.jsonl"), eval_columns(
            where[b] / "score" / "scores.jsonl")
        if qa != qb:
            log.warning("rounds %s and %s were evaluated on different questions: no paired difference", a, b)
            continue
        step = {"questions": len(qa), "metrics": paired_difference(ca, cb, n_boot=n_boot, seed=seed)}
        _add_margin_change(step["metrics"], where[a], where[b], "reward", n_boot, seed)
        judged = [where[x] / "score_eval" / "scores.jsonl" for x in (a, b)]
        if all(j.is_file() for j in judged):
            (_, ja), (_, jb) = eval_columns(judged[0]), eval_columns(judged[1])
            keep = ("citation_rec", "citation_prec")
            metrics = paired_difference({k: ja[k] for k in keep}, {k: jb[k] for k in keep}, n_boot=n_boot, seed=seed)
            _add_margin_change(metrics, where[a], where[b], "eval", n_boot, seed)
            step["eval_judge"] = {"metrics": metrics}
        out.append((f"{a} -> {b}", step))
    return out


def report_differences(run_dir: str | Path) -> list[tuple[str, dict]]:
    """The paired differences the run's report computed (``report/differences.json``: its ``eval.n_boot`` and
    seed), so every table of a run shows the same intervals; recomputed with the defaults when there is none."""
    stored = Path(run_dir) / "report" / "differences.json"
    if not stored.is_file():
        return round_differences(Path(run_dir))
    return [(d["change"], {k: v for k, v in d.items() if k != "change"}) for d in json.loads(stored.read_text())]


def _add_margin_change(metrics: dict, before: Path, after: Path, judge: str, n_boot: int, seed: int) -> None:
    """``metrics["attribution_margin"]``: the paired margin change of ``judge`` ("reward" or "eval") between two
    evaluations, from their stored margin columns (nothing when either has none)."""
    from start.shortcuts import MarginColumns, paired_margin_change

    sides = []
    for folder in (before, after):
        path = folder / MARGIN_FILE
        stored = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        if judge not in stored:
            return
        sides.append(MarginColumns.from_dict(stored[judge]))
    if sides[0].qids == sides[1].qids and sides[0].constant and sides[1].constant:
        metrics["attribution_margin"] = paired_margin_change(*sides, n_boot=n_boot, seed=seed)


# ---------------------------------------------------------------------------------------------- report


def collect_rounds(run_dir: Path) -> list[tuple[str, dict]]:
    """(label, eval metrics) for every completed evaluation: ``base`` (before warm-up), then rounds 0..R."""
    out = []
    base = run_dir / "round_0" / "eval_base" / "metrics.json"
    if base.is_file():
        out.append(("base", json.loads(base.read_text())))
    for d in sorted(run_dir.glob("round_*/eval/metrics.json"), key=lambda p: int(p.parts[-3].split("_")[1])):
        out.append((d.parts[-3].split("_")[1], json.loads(d.read_text())))
    return out


def markdown_table(rounds: list[tuple[str, dict]], metrics: Sequence[str] = REPORT_METRICS) -> str:
    head = "| round | " + " | ".join(metrics) + " |"
    lines = [head, "|---|" + "---:|" * len(metrics)]
    for r, m in rounds:
        cells = []
        for k in metrics:
            v = m["metrics"].get(k)
            cells.append("-" if v is None else f"{v['value']:.1f} [{v['low']:.1f}, {v['high']:.1f}]")
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def round_training(run_dir: str | Path) -> list[dict]:
    """What each round trained on: its training questions (and how many an earlier round had), samples per
    question, preference pairs by kind, questions with a pair, and where comprehensiveness came from."""
    run_dir = Path(run_dir)
    out = []
    for rd in sorted(run_dir.glob("round_*"), key=lambda p: int(p.name.split("_")[1])):
        if rd.name == "round_0":
            continue
        row: dict = {"round": int(rd.name.split("_")[1])}
        if (rd / "questions.json").is_file():
            q = json.loads((rd / "questions.json").read_text())
            row.update(questions=len(q["ids"]), pool=q["pool"], reused=q["reused"])
        sample = rd / "sample" / "manifest.json"
        if sample.is_file():
            counts = json.loads(sample.read_text()).get("counts", {})
            row.update(questions=counts.get("questions", row.get("questions")),
                       samples_per_question=counts.get("samples_per_question"))
        stats = rd / "pairs" / "stats.json"
        if stats.is_file():
            st = json.loads(stats.read_text())
            mode = (st.get("comprehensiveness") or {}).get("setting", "gold_answers")  # older runs: gold answers
            row.update(pairs=st["pairs"], by_kind=st.get("by_kind", {}),
                       questions_with_pairs=st["questions_with_pairs"], comprehensiveness=mode,
                       distinct_pairs=st.get("distinct_pairs", st["pairs"]), permutations=st.get("permutations", 1),
                       cited_positions=st.get("cited_positions"))
        out.append(row)
    return out


def _training_table(rows: list[dict]) -> str:
    lines = ["| round | questions (reused) | samples / question | pairs (overall / fine-grained) | distinct pairs x "
             "document orders | questions with pairs | comprehensiveness | cited positions: chosen / rejected |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for t in rows:
        kinds = t.get("by_kind", {})
        cited = t.get("cited_positions") or {}
        positions = " / ".join(_shares(cited[side]) for side in ("chosen", "rejected")) if cited else "-"
        lines.append(f"| {t['round']} | {t.get('questions', '-')} ({t.get('reused', '-')}) | "
                     f"{t.get('samples_per_question', '-')} | {t.get('pairs', '-')} ({kinds.get('overall', 0)} / "
                     f"{kinds.get('fine_grained', 0)}) | {t.get('distinct_pairs', '-')} x {t.get('permutations', 1)} | "
                     f"{t.get('questions_with_pairs', '-')} | {t.get('comprehensiveness', '-')} | {positions} |")
    return "\n".join(lines)


def _shares(counts: Sequence[int]) -> str:
    """Counts per position as percentages: "[1] 40% [2] 35% [3] 25%"."""
    total = sum(counts)
    return " ".join(f"[{k}] {100 * c / total:.0f}%" for k, c in enumerate(counts, 1)) if total else "none"


def _cell(v: dict | None, sign: bool = False) -> str:
    if v is None:
        return "-"
    f = "{:+.1f}" if sign else "{:.1f}"
    return f"{f.format(v['value'])} [{v['low']:.1f}, {v['high']:.1f}]"


def headline(run_dir: str | Path, rounds: list[tuple[str, dict]] | None = None,
             diffs: list[tuple[str, dict]] | None = None) -> str:
    """The table the main job prints (and the README shows): per evaluation, citation F1 under the reward judge
    and under the evaluation judge, the evaluation judge's attribution margin over the best constant position,
    comprehensiveness, correctness, the share of citations to each position, citations of documents that do
    not exist and words; then the paired change from round 0 to the last round."""
    run_dir = Path(run_dir)
    rounds = collect_rounds(run_dir) if rounds is None else rounds
    diffs = report_differences(run_dir) if diffs is None else diffs
    n = max((len(m.get("habits", {}).get("cited_position_share", {})) for _, m in rounds), default=0)
    n = max([n, *(int(k) for _, m in rounds for k in m.get("habits", {}).get("cited_position_share", {}))])
    lines = ["| round | citation F1 (reward judge) | citation F1 (evaluation judge) | attribution margin "
             "(evaluation judge) | comprehensiveness | str_em | cites " + " / ".join(f"[{k}]" for k in range(1, n + 1))
             + " | nonexistent citations | words |", "|---|" + "---:|" * 8]
    for label, m in rounds + baseline_row(run_dir):
        judge = (m.get("eval_judge") or {}).get("metrics", {})
        share = m.get("habits", {}).get("cited_position_share")
        positions = " / ".join(f"{100 * share.get(str(k), 0.0):.0f}%" for k in range(1, n + 1)) if share else "-"
        missing, length = m["metrics"].get("nonexistent_citation_rate"), m["metrics"].get("length")
        missing = "-" if missing is None else "{:.1f}%".format(missing["value"])
        length = "-" if length is None else "{:.1f}".format(length["value"])
        lines.append(f"| {label} | {_cell(m['metrics'].get('citation_f1'))} | {_cell(judge.get('citation_f1'))} | "
                     f"{_cell(judge.get('attribution_margin'))} | {_cell(m['metrics'].get('comprehensiveness'))} | "
                     f"{_cell(m['metrics'].get('str_em'))} | {positions} | {missing} | {length} |")
    last = next(((c, d) for c, d in reversed(diffs) if c.startswith("0 -> ")), None)
    if last is not None:
        change, d = last
        judge = d.get("eval_judge", {}).get("metrics", {})
        lines += ["", f"Round {change} (paired, the same held-out questions, 95% intervals): citation F1 "
                  f"{_cell(judge.get('citation_f1'), True)} and attribution margin "
                  f"{_cell(judge.get('attribution_margin'), True)} under the evaluation judge; citation F1 "
                  f"{_cell(d['metrics'].get('citation_f1'), True)} and margin "
                  f"{_cell(d['metrics'].get('attribution_margin'), True)} under the reward judge."]
    return "\n".join(lines)


def gold_positions(folder: Path) -> list[float]:
    """Share of an evaluation's gold documents (not marked distractor, in questions that mark distractors) at
    each prompt position: what a policy citing the right documents cites."""
    counts: dict[int, int] = defaultdict(int)
    for r in _samples(folder):
        docs = r.get("docs") or []
        if any(d.get("distractor") for d in docs):
            for i, d in enumerate(docs, 1):
                counts[i] += not d.get("distractor")
    total = sum(counts.values())
    return [counts[i] / total for i in range(1, max(counts, default=0) + 1)] if total else []


def aggregation_section(rounds: list[tuple[str, dict]]) -> list[str]:
    """Markdown: aggregating information across sources (start.shortcuts.source_aggregation), per evaluation."""
    rows = []
    for label, m in rounds:
        for judge, agg in (("reward", m.get("aggregation")), ("evaluation", (m.get("eval_judge") or {}).get(
                "aggregation"))):
            if agg and agg.get("answers"):
                rows.append(f"| {label} | {judge} | {agg['questions']} | {100 * agg['multi_source_share']:.0f}% | "
                            f"{agg['gold_reached']:.2f} of {agg['gold_needed']:.2f} |")
    if not rows:
        return []
    return ["", "## Aggregating information across sources", "", "Held-out questions that need two or more "
            "documents: the share of answers whose supported sentences cite two or more distinct documents, and "
            "how many distinct gold documents their supported citations reach (of how many the question has).", "",
            "| round | judge | questions | answers citing >= 2 documents | gold documents reached |",
            "|---|---|---:|---:|---:|", *rows]


def write_report(run_dir: str | Path, title: str = "START report", *, n_boot: int = 1000, seed: int = 0) -> Path:
    """``report/`` with a Markdown and an HTML table across rounds and one plot per metric; paired
    differences with ``n_boot`` replicates; what each round trained on."""
    run_dir = Path(run_dir)
    rounds = collect_rounds(run_dir)
    folder = run_dir / "report"
    folder.mkdir(parents=True, exist_ok=True)
    baseline = baseline_row(run_dir)
    table = markdown_table(rounds + baseline)
    plots = _plots(rounds, folder)
    empties = ", ".join(f"{r} {m['empty_answers']}/{m['samples']}" for r, m in rounds if "empty_answers" in m)
    diffs = round_differences(run_dir, n_boot=n_boot, seed=seed)
    md = [f"# {title}", "", f"Run folder: `{run_dir}`. Values are means over held-out questions with 95% "
          "bootstrap intervals (questions resampled); empty answers count 0 in the citation metrics"
          + (f" (empty answers: {empties})" if empties else "") + ". `attribution_margin`: citation F1 as "
          "written minus the best of the same answers re-cited with one fixed position [k] (a position "
          "habit has a margin near 0). The best constant baseline is the best of: the reference answer "
          "citing a fixed [k], citing every document, copying each document's first sentence with its "
          "citation (`start.shortcuts`). The evaluation judge (`scorer.eval_nli`) never gives rewards.",
          "", headline(run_dir, rounds, diffs), "", "## Every metric (reward judge)", "", table, ""]
    md += [f"![{p.stem}]({p.name})" for p in plots]
    training = round_training(run_dir)
    if training:
        md += ["", "## Rounds", "", "Training questions per round (seeded slices, disjoint while the training "
               "pool lasts; reused: questions an earlier round had), samples per question, preference pairs and "
               "where the rounds' comprehensiveness came from (consensus: label-free; gold_answers: the data set's "
               "gold answers).", "", _training_table(training)]
    evals = eval_folders(run_dir)
    md += cited_positions_section(evals, folder)
    md += examples_section(evals)
    judged = [(r, m["eval_judge"]) for r, m in rounds if m.get("eval_judge")]
    if judged:
        md += ["", "## Citation metrics from the evaluation judge", "",
               f"The same held-out answers judged by `{judged[0][1]['nli']}` (`scorer.eval_nli`), a judge "
               "the rewards never came from: a policy that fits the reward judge's mistakes scores lower here.",
               "", markdown_table(judged, ("citation_rec", "citation_prec", "citation_f1", "attribution_margin"))]
    md += aggregation_section(rounds)
    if diffs:
        md += ["", "## Paired differences", "", "Change between evaluations on the same questions, with 95% "
               "intervals from resampling questions jointly (an interval above 0 is a rise); the attribution "
               "margin's change recomputes both margins on the same resampled questions.", "",
               markdown_table(diffs, [*REPORT_METRICS, "nonexistent_citation_rate"]).replace(
                   "| round |", "| change |", 1)]
        judged_diffs = [(c, d["eval_judge"]) for c, d in diffs if "eval_judge" in d]
        if judged_diffs:
            md += ["", "Under the evaluation judge:", "",
                   markdown_table(judged_diffs, ("citation_rec", "citation_prec", "citation_f1",
                                                 "attribution_margin")).replace("| round |", "| change |", 1)]
    stages = stage_summary(run_dir)
    if stages:
        md += ["", "## Stages", "", "| stage | wall time (s) | counts |", "|---|---:|---|"]
        md += [f"| {s['stage']} | {s['seconds']:.0f} | {_counts(s['counts'])} |" for s in stages]
        md += [f"| total | {sum(s['seconds'] for s in stages):.0f} | |"]
    with atomic_open(folder / "report.md") as f:
        f.write("\n".join(md) + "\n")
    write_json(folder / "rounds.json", [{"round": r, **m} for r, m in rounds])
    write_json(folder / "stages.json", stages)
    write_json(folder / "differences.json", [{"change": c, **m} for c, m in diffs])
    write_json(folder / "training.json", training)
    write_report_html(run_dir, folder, title)  # the dashboard and answer browser, from the files above
    return folder


def baseline_row(run_dir: Path) -> list[tuple[str, dict]]:
    """The report row of the run's best constant baseline (none before the baselines stage ran)."""
    path = run_dir / BASELINES
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    return [(f"best constant baseline ({data['best']})", data["baselines"][data["best"]])]


def eval_folders(run_dir: Path) -> list[tuple[str, Path]]:
    """(label, folder) of every evaluation with scores: ``base``, then rounds 0..R."""
    out = [("base", run_dir / "round_0" / "eval_base")]
    out += sorted(((p.parts[-2].split("_")[1], p) for p in run_dir.glob("round_*/eval")), key=lambda x: int(x[0]))
    return [(label, f) for label, f in out if (f / "score" / "scores.jsonl").is_file()]


def _scores(folder: Path) -> list:
    from start.scoring import RecordScore

    return [RecordScore.from_dict(json.loads(line)) for line in
            (folder / "score" / "scores.jsonl").read_text(encoding="utf-8").split("\n") if line.strip()]


def _samples(folder: Path) -> list[dict]:
    path = folder / "sample" / "samples.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def cited_positions_section(evals: list[tuple[str, Path]], folder: Path) -> list[str]:
    """Markdown (table + plot) of how often each document position is cited, per evaluation."""
    from start.shortcuts import cited_positions

    if not evals:
        return []
    n = max((len(r["docs"]) for _, f in evals for r in _samples(f)), default=0)
    if n == 0:
        return []
    counts = {label: cited_positions(_scores(f), n) for label, f in evals}
    gold = gold_positions(evals[0][1])
    md = ["", "## Cited positions", "", "Share of the citations of held-out answers that point at each document "
          "position (a policy with a position habit piles up on one column), beside the share of the gold documents "
          "at each position (what citing the right documents gives).", "",
          "| round | " + " | ".join(f"[{k}]" for k in range(1, n + 1)) + " | citations |",
          "|---|" + "---:|" * (n + 1)]
    if gold:
        md.append("| gold documents | " + " | ".join(f"{100 * x:.0f}%" for x in (gold + [0.0] * n)[:n]) + " | - |")
    for label, c in counts.items():
        total = sum(c)
        md.append(f"| {label} | " + " | ".join(f"{100 * x / total:.0f}%" if total else "-" for x in c)
                  + f" | {total} |")
    plot = _positions_plot(counts, folder)
    if plot:
        md += ["", f"![{plot.stem}]({plot.name})"]
    return md


def examples_section(evals: list[tuple[str, Path]]) -> list[str]:
    """The first answer to the same held-out questions in every evaluation, with each sentence's support
    and each citation's relevance (from the scorer's per-sentence detail)."""
    if not evals:
        return []
    rows = {r["id"]: r for r in _samples(evals[0][1])}
    # Questions with claims (long-form, several documents) first, in the evaluation's order.
    chosen = sorted(rows, key=lambda q: (not rows[q].get("claims"), list(rows).index(q)))[:N_EXAMPLES]
    if not chosen:
        return []
    md = ["", "## Example answers", "", "Sample 0 of the same held-out questions in every round. A sentence is "
          "marked supported (✓) when its citations entail it, unsupported (✗) otherwise; each citation "
          "is marked relevant (+) or not (-), and `d` when it points at a distractor document."]
    scored = {label: {s.id: s for s in _scores(f)} for label, f in evals}
    for q in chosen:
        row = rows[q]
        docs = ", ".join(f"[{i}] {d['title']}{' (distractor)' if d.get('distractor') else ''}"
                         for i, d in enumerate(row["docs"], 1))
        md += ["", f"**{row['question']}** (`{q}`)  ", f"Documents: {docs}"]
        for label, by_id in scored.items():
            s = by_id.get(f"{q}#0")
            md.append(f"- *{label}*: " + (_render_answer(s, row["docs"]) if s else "(not evaluated)"))
    return md


def _render_answer(score, docs: Sequence[dict]) -> str:
    if not score.sentences:
        return "(empty answer)"
    parts = []
    for sent in score.sentences:
        marks = []
        for j, c in enumerate(sent.citations):
            used = j < len(sent.used) and sent.status == "ok"
            rel = "+" if used and sent.relevant and sent.relevant[j] else "-"
            dis = "d" if 1 <= c <= len(docs) and docs[c - 1].get("distractor") else ""
            marks.append(f"[{c}{rel}{dis}]")
        parts.append(f"{'✓' if sent.supported else '✗'} {sent.target} {''.join(marks) or '(no citation)'}")
        parts[-1] = parts[-1].replace("|", "\\|")
    return " / ".join(parts)


def stage_summary(run_dir: str | Path) -> list[dict]:
    """Every finished stage of a run (manifest path order): its wall time and counts. Stages do not
    overlap (an evaluation's sampling and scoring have their own manifests), so the times add up."""
    run_dir = Path(run_dir)
    out = []
    for path in sorted(run_dir.rglob("manifest.json")):
        m = json.loads(path.read_text(encoding="utf-8"))
        if "wall_seconds" in m:
            out.append({"stage": str(path.parent.relative_to(run_dir)), "seconds": float(m["wall_seconds"]),
                        "counts": m.get("counts") or {}})
    return out


def _counts(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items() if not isinstance(v, (dict, list)))


def _positions_plot(counts: dict[str, list[int]], folder: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    n = max(len(c) for c in counts.values())
    width = 0.8 / max(1, len(counts))
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for j, (label, c) in enumerate(counts.items()):
        total = sum(c) or 1
        ax.bar(np.arange(1, n + 1) + (j - (len(counts) - 1) / 2) * width, [100 * x / total for x in c],
               width=width, label=label)
    ax.set_xticks(range(1, n + 1), [f"[{k}]" for k in range(1, n + 1)])
    ax.set_xlabel("cited document position")
    ax.set_ylabel("% of citations")
    ax.legend(title="round", fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    path = folder / "cited_positions.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plots(rounds: list[tuple[str, dict]], folder: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plots are optional (extra "plots")
        log.warning("matplotlib is not installed (extra 'plots'): the report has no plots")
        return []
    out = []
    xs = [r for r, _ in rounds]
    for k in REPORT_METRICS:
        pts = [(r, m["metrics"][k]) for r, m in rounds if k in m["metrics"]]
        if not pts:
            continue
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        v = np.array([p["value"] for _, p in pts])
        lo = v - np.array([p["low"] for _, p in pts])
        hi = np.array([p["high"] for _, p in pts]) - v
        ax.errorbar([r for r, _ in pts], v, yerr=np.vstack([lo, hi]), marker="o", capsize=4)
        ax.set_xlabel("round")
        ax.set_ylabel(k)
        ax.set_xticks(xs)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = folder / f"{k}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        out.append(path)
    return out
