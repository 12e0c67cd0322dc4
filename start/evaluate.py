"""Held-out evaluation with 95% bootstrap intervals, and the round report (table + plots).

A question's value of a metric is the mean over its samples; the data-set value is the mean over
questions (``citation_f1`` is the harmonic mean of the data-set recall and precision, as in the scorer).
Intervals resample questions with replacement (``n_boot`` times, seeded) and take the 2.5th and 97.5th
percentiles of each statistic, recomputing ``citation_f1`` inside every replicate.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from start.io import atomic_open, write_json

log = logging.getLogger(__name__)

# per-record attribute -> reported metric (0-100 except length)
PER_RECORD = {"citation_rec": "citation_rec", "citation_prec": "citation_prec", "str_em": "str_em",
              "str_hit": "str_hit", "claims_nli": "claims_nli", "comprehensiveness": "comprehensiveness",
              "robustness": "robustness", "length": "length"}
REPORT_METRICS = ("citation_rec", "citation_prec", "citation_f1", "str_em", "comprehensiveness", "length")


def per_question(records: Sequence, question_of) -> dict[str, np.ndarray]:
    """Matrix of per-question means: metric -> array over questions (NaN where not measurable)."""
    groups: dict[str, list] = defaultdict(list)
    for r in records:
        groups[question_of(r.id)].append(r)
    out: dict[str, list[float]] = {m: [] for m in PER_RECORD}
    for rs in groups.values():
        for attr, name in PER_RECORD.items():
            vals = [getattr(r, attr) for r in rs]
            vals = [float(v) for v in vals if v is not None]
            out[name].append(float(np.mean(vals)) if vals else np.nan)
    return {k: np.array(v) for k, v in out.items()}


def _stats(cols: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, float]:
    res = {}
    for name, col in cols.items():
        vals = col[idx]
        vals = vals[~np.isnan(vals)]
        if vals.size:
            res[name] = float(vals.mean()) * (1 if name == "length" else 100)
    if "citation_rec" in res and "citation_prec" in res:
        r, p = res["citation_rec"], res["citation_prec"]
        res["citation_f1"] = 0.0 if r + p == 0 else 2 * r * p / (r + p)
    return res


def bootstrap(cols: dict[str, np.ndarray], n_boot: int = 1000, seed: int = 0) -> dict[str, dict[str, float]]:
    """Point estimates and 95% percentile intervals: metric -> {value, low, high}."""
    n = len(next(iter(cols.values())))
    point = _stats(cols, np.arange(n))
    rng = np.random.default_rng(seed)
    reps: dict[str, list[float]] = defaultdict(list)
    for _ in range(n_boot):
        for k, v in _stats(cols, rng.integers(0, n, n)).items():
            reps[k].append(v)
    return {k: {"value": v, "low": float(np.percentile(reps[k], 2.5)), "high": float(np.percentile(reps[k], 97.5))}
            for k, v in point.items()}


def paired_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray], n_boot: int = 1000,
                      seed: int = 0) -> dict[str, dict[str, float]]:
    """``b - a`` per metric on the same questions (rows aligned), with a 95% interval from resampling
    questions jointly: tighter than comparing two separate intervals, and the right test of "did it rise"."""
    n = len(next(iter(a.values())))
    point_a, point_b = _stats(a, np.arange(n)), _stats(b, np.arange(n))
    rng = np.random.default_rng(seed)
    reps: dict[str, list[float]] = defaultdict(list)
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        sa, sb = _stats(a, idx), _stats(b, idx)
        for k in sa.keys() & sb.keys():
            reps[k].append(sb[k] - sa[k])
    return {k: {"value": point_b[k] - point_a[k], "low": float(np.percentile(reps[k], 2.5)),
                "high": float(np.percentile(reps[k], 97.5))} for k in point_a.keys() & point_b.keys() if reps[k]}


def _eval_columns(scores: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    from start.scoring import RecordScore

    records = [RecordScore.from_dict(json.loads(line)) for line in scores.read_text(encoding="utf-8").splitlines()
               if line.strip()]
    records.sort(key=lambda r: r.id)
    qids = sorted({r.id.rsplit("#", 1)[0] for r in records})
    return qids, per_question(records, lambda i: i.rsplit("#", 1)[0])


def round_differences(run_dir: Path, n_boot: int = 1000) -> list[tuple[str, dict]]:
    """Paired differences between evaluations on the same held-out questions: each round vs the one before,
    and the last round vs round 0 (the effect of the self-improvement rounds)."""
    folders = {"base": run_dir / "round_0" / "eval_base"}
    folders.update({p.parts[-2].split("_")[1]: p for p in
                    (q.parent for q in run_dir.glob("round_*/eval/metrics.json"))})
    done = [(k, f / "score" / "scores.jsonl") for k, f in folders.items() if (f / "score" / "scores.jsonl").is_file()]
    done.sort(key=lambda kv: -1 if kv[0] == "base" else int(kv[0]))
    labels = [k for k, _ in done]
    steps = list(zip(labels, labels[1:], strict=False))
    if "0" in labels and labels[-1] not in ("0", "base") and ("0", labels[-1]) not in steps:
        steps.append(("0", labels[-1]))
    cols = dict(done)
    out = []
    for a, b in steps:
        (qa, ca), (qb, cb) = _eval_columns(cols[a]), _eval_columns(cols[b])
        if qa != qb:
            log.warning("rounds %s and %s were evaluated on different questions: no paired difference", a, b)
            continue
        out.append((f"{a} -> {b}", {"metrics": paired_difference(ca, cb, n_boot=n_boot)}))
    return out


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


def write_report(run_dir: str | Path, title: str = "START report") -> Path:
    """``report/`` with a Markdown and an HTML table across rounds and one plot per metric."""
    run_dir = Path(run_dir)
    rounds = collect_rounds(run_dir)
    folder = run_dir / "report"
    folder.mkdir(parents=True, exist_ok=True)
    table = markdown_table(rounds)
    plots = _plots(rounds, folder)
    md = [f"# {title}", "", f"Run folder: `{run_dir}`. Values are means over held-out questions with 95% "
          "bootstrap intervals (questions resampled).", "", table, ""]
    md += [f"![{p.stem}]({p.name})" for p in plots]
    judged = [(r, m["eval_judge"]) for r, m in rounds if m.get("eval_judge")]
    if judged:
        md += ["", "## Citation metrics from the evaluation judge", "",
               f"The same held-out answers judged by `{judged[0][1]['nli']}` (`scorer.eval_nli`), a judge "
               "the rewards never came from: a policy that fits the reward judge's mistakes scores lower here.",
               "", markdown_table(judged, ("citation_rec", "citation_prec", "citation_f1"))]
    diffs = round_differences(run_dir)
    if diffs:
        md += ["", "## Paired differences", "", "Change between evaluations on the same questions, with 95% "
               "intervals from resampling questions jointly (an interval above 0 is a rise).", "",
               markdown_table(diffs).replace("| round |", "| change |", 1)]
    stages = stage_summary(run_dir)
    if stages:
        md += ["", "## Stages", "", "| stage | wall time (s) | counts |", "|---|---:|---|"]
        md += [f"| {s['stage']} | {s['seconds']:.0f} | {_counts(s['counts'])} |" for s in stages]
        md += [f"| total | {sum(s['seconds'] for s in stages):.0f} | |"]
    with atomic_open(folder / "report.md") as f:
        f.write("\n".join(md) + "\n")
    rows = "".join(
        f"<tr><td>{r}</td>" + "".join(
            f"<td>{m['metrics'][k]['value']:.1f} <small>[{m['metrics'][k]['low']:.1f}, "
            f"{m['metrics'][k]['high']:.1f}]</small></td>" if k in m["metrics"] else "<td>-</td>"
            for k in REPORT_METRICS) + "</tr>" for r, m in rounds)
    html = (f"<!doctype html><meta charset='utf-8'><title>{title}</title><h1>{title}</h1>"
            "<table border=1 cellpadding=4><tr><th>round</th>" + "".join(f"<th>{k}</th>" for k in REPORT_METRICS)
            + f"</tr>{rows}</table>" + "".join(f"<p><img src='{p.name}'></p>" for p in plots))
    with atomic_open(folder / "report.html") as f:
        f.write(html)
    write_json(folder / "rounds.json", [{"round": r, **m} for r, m in rounds])
    write_json(folder / "stages.json", stages)
    write_json(folder / "differences.json", [{"change": c, **m} for c, m in diffs])
    return folder


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
