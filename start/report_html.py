"""``report/report.html``: the run at a glance, then every held-out answer of every round.

The page reads only what the run and :func:`start.evaluate.write_report` already wrote: ``report/rounds.json``,
``differences.json``, ``training.json``, ``round_0/baselines/metrics.json``, each round's ``train/metrics.json``
(the trainer's log history: the DPO curves) and ``round_0/warmup/metrics.json`` (the warm-up SFT's loss), and
each evaluation's ``sample/samples.jsonl``, ``score/scores.jsonl`` and ``score_eval/scores.jsonl``.

* **Dashboard**: the held-out metrics as a grid of small plots (95% intervals as bars, every constant baseline
  as a dashed line), the cited positions, the reward judge's and the evaluation judge's citation metrics side by
  side, the paired changes between evaluations with their intervals, the DPO curves of every round and what each
  round trained on.
* **Answer browser**: every sampled answer to every held-out question in every evaluation. Each scored
  sentence is marked supported or unsupported (by the reward judge or, switched, the evaluation judge); hovering
  or clicking a citation shows the cited passage, with distractors marked; filters by round, verdict, cited
  position and text.

One self-contained file: CSS, script and data inline, nothing fetched when it is viewed. Model text reaches the
page only as JSON (``<``, ``>``, ``&`` and line separators escaped, :func:`embed_json`) that the script puts into
the page as text (``textContent``), never as markup; names in the dashboard are HTML-escaped.
"""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from typing import Any

from start.io import atomic_open
from start.svgplot import PALETTE, Chart, HLine, Point, Series, bar_chart, interval_chart, line_chart

# (metric, label) of the dashboard's grid, in order
METRICS = (("citation_f1", "citation F1"), ("citation_rec", "citation recall"), ("citation_prec", "citation precision"),
           ("attribution_margin", "attribution margin"), ("str_em", "exact match (str_em)"),
           ("comprehensiveness", "comprehensiveness"), ("length", "length (words)"))
JUDGED = (("citation_f1", "citation F1"), ("citation_rec", "citation recall"), ("citation_prec", "citation precision"))
CHANGES = ("citation_f1", "citation_rec", "citation_prec", "str_em", "comprehensiveness", "length")
# (panel title, [(log-history key, dashed)]) of the DPO curves; one colour per round
CURVES = (("DPO loss", [("loss", False)]),
          ("rewards: chosen (solid), rejected (dashed)", [("rewards/chosen", False), ("rewards/rejected", True)]),
          ("reward margin", [("rewards/margins", False)]),
          ("reward accuracy", [("rewards/accuracies", False)]),
          ("learning rate", [("learning_rate", False)]))


def _read_json(path: Path, default: Any = None) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else default


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def embed_json(obj: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``</script>``, no markup, no line separator
    can end the element or the script early (each is written as a ``\\u`` escape JSON reads back)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    for ch, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


# ------------------------------------------------------------------------------------------- dashboard


def metric_charts(rounds: list[dict], baselines: dict | None) -> list[str]:
    """One small plot per metric across evaluations, every constant baseline as a dashed line."""
    out = []
    best = (baselines or {}).get("best")
    for key, label in METRICS:
        pts = [Point(str(r["round"]), m["value"], m["low"], m["high"]) for r in rounds
               if (m := r.get("metrics", {}).get(key))]
        if not pts:
            continue
        lines = [HLine(b["metrics"][key]["value"], name, strong=name == best)
                 for name, b in ((baselines or {}).get("baselines") or {}).items() if key in b.get("metrics", {})]
        out.append(line_chart(Chart(label, [Series("policy", pts)], lines)))
    return out


def judge_charts(rounds: list[dict]) -> list[str]:
    """The citation metrics from the reward judge and from the evaluation judge, one plot per metric."""
    judged = [r for r in rounds if r.get("eval_judge")]
    if not judged:
        return []
    out = []
    for key, label in JUDGED:
        reward = [Point(str(r["round"]), m["value"], m["low"], m["high"]) for r in judged
                  if (m := r["metrics"].get(key))]
        other = [Point(str(r["round"]), m["value"], m["low"], m["high"]) for r in judged
                 if (m := r["eval_judge"]["metrics"].get(key))]
        out.append(line_chart(Chart(label, [Series("reward judge", reward), Series("evaluation judge", other)])))
    return out


def change_charts(differences: list[dict]) -> list[str]:
    """The paired changes between evaluations (rows) with their 95% intervals, one plot per metric."""
    out = []
    for key in CHANGES:
        rows = [(d["change"], m["value"], m["low"], m["high"]) for d in differences
                if (m := d.get("metrics", {}).get(key))]
        if rows:
            out.append(interval_chart(key, rows))
    return out


def training_curves(run_dir: Path) -> tuple[list[str], list[dict]]:
    """The DPO curves of every round (from each round's ``train/metrics.json`` log history) and the warm-up
    SFT's loss; also the curves' points (for ``report/dpo_curves.json``)."""
    histories = []
    for path in sorted(run_dir.glob("round_*/train/metrics.json"), key=lambda p: int(p.parts[-3].split("_")[1])):
        data = _read_json(path, {})
        rows = [h for h in data.get("log_history", []) if "loss" in h and "step" in h]
        if rows:
            histories.append((path.parts[-3].replace("_", " "), rows))
    charts, points = [], []
    for title, keys in CURVES:
        series = []
        for i, (name, rows) in enumerate(histories):
            for key, dashed in keys:
                pts = [Point(float(h["step"]), float(h[key])) for h in rows
                       if isinstance(h.get(key), int | float) and math.isfinite(h[key])]
                if pts:
                    series.append(Series(name, pts, color=_color(i), dashed=dashed, markers=len(pts) < 30))
                    points.append({"round": name, "key": key, "steps": [p.x for p in pts],
                                   "values": [p.y for p in pts]})
        if series:
            charts.append(line_chart(Chart(title, series)))
    warm = _read_json(run_dir / "round_0" / "warmup" / "metrics.json", {})
    curve = [c for c in warm.get("loss_curve", []) if "step" in c and "loss" in c]
    if curve:
        pts = [Point(float(c["step"]), float(c["loss"])) for c in curve]
        charts.append(line_chart(Chart("warm-up SFT loss", [Series("round 0", pts, markers=len(pts) < 30)])))
    return charts, points


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def positions_chart(answers: dict) -> str:
    """The share of each evaluation's citations that point at each document position (a position habit piles
    up on one bar), from the answers' scored sentences (valid citations only, as the Markdown report counts)."""
    n = max((len(q["d"]) for q in answers["questions"]), default=0)
    if n == 0:
        return ""
    series = []
    for r, label in enumerate(answers["rounds"]):
        counts = [0] * n
        for a in answers["answers"]:
            if a[1] != r:
                continue
            docs = len(a[7]) if a[7] else len(answers["questions"][a[0]]["d"])
            for sent in a[4]:
                for c in sent[1]:
                    if 1 <= c <= min(n, docs):
                        counts[c - 1] += 1
        total = sum(counts)
        if total:
            series.append((label, [100 * c / total for c in counts]))
    if not series:
        return ""
    return bar_chart("cited positions (% of citations)", [f"[{k}]" for k in range(1, n + 1)], series, unit="%")


def _table(rows: list[list[str]], head: list[str]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def summary_table(rounds: list[dict], baselines: dict | None) -> str:
    keys = [k for k, _ in METRICS]
    rows = []
    for r in rounds:
        rows.append([str(r["round"])] + [_cell(r.get("metrics", {}).get(k)) for k in keys])
    if baselines and baselines.get("best") in (baselines.get("baselines") or {}):
        b = baselines["baselines"][baselines["best"]]
        rows.append([f"best constant baseline ({baselines['best']})"] + [_cell(b["metrics"].get(k)) for k in keys])
    return _table(rows, ["round", *(label for _, label in METRICS)])


def _cell(m: dict | None) -> str:
    return "-" if not m else f"{m['value']:.1f} [{m['low']:.1f}, {m['high']:.1f}]"


def training_table(training: list[dict]) -> str:
    rows = [[str(t["round"]), f"{t.get('questions', '-')} ({t.get('reused', '-')})",
             *(str(t.get(k, "-")) for k in ("samples_per_question", "pairs", "questions_with_pairs",
                                             "comprehensiveness"))] for t in training]
    return _table(rows, ["round", "questions (reused)", "samples / question", "pairs", "questions with pairs",
                         "comprehensiveness"])


# ------------------------------------------------------------------------------------------- answers


def _evaluations(run_dir: Path) -> list[tuple[str, Path]]:
    out = [("base", run_dir / "round_0" / "eval_base")]
    out += sorted(((p.parent.name.split("_")[1], p) for p in run_dir.glob("round_*/eval")), key=lambda x: int(x[0]))
    return [(label, f) for label, f in out if (f / "sample" / "samples.jsonl").is_file()]


def _sentences(score: dict | None, judged: dict | None) -> list[list]:
    """[text, citations, status, used, supported, relevant, supported by the evaluation judge] per sentence."""
    if not score:
        return []
    other = (judged or {}).get("sentences") or []
    return [[s["text"], s["citations"], s["status"], s["used"], bool(s["supported"]), s.get("relevant"),
             bool(other[i]["supported"]) if i < len(other) else None] for i, s in enumerate(score["sentences"])]


def answer_data(run_dir: Path) -> dict:
    """Every held-out answer of every evaluation with the scorer's per-sentence verdicts, compactly: documents
    are stored once and referred to by index."""
    docs: list[list] = []
    doc_index: dict[tuple, int] = {}
    questions: list[dict] = []
    q_index: dict[str, int] = {}
    answers: list[list] = []
    labels = []
    for r, (label, folder) in enumerate(_evaluations(run_dir)):
        labels.append(label)
        scores = {s["id"]: s for s in _read_jsonl(folder / "score" / "scores.jsonl")}
        judged = {s["id"]: s for s in _read_jsonl(folder / "score_eval" / "scores.jsonl")}
        for row in _read_jsonl(folder / "sample" / "samples.jsonl"):
            ids = []
            for d in row.get("docs", []):
                key = (d.get("title", ""), d.get("text", ""), bool(d.get("distractor")))
                if key not in doc_index:
                    doc_index[key] = len(docs)
                    docs.append(list(key))
                ids.append(doc_index[key])
            if row["id"] not in q_index:
                q_index[row["id"]] = len(questions)
                questions.append({"id": row["id"], "q": row.get("question", ""), "d": ids})
            qi = q_index[row["id"]]
            own = None if questions[qi]["d"] == ids else ids  # the same question with other documents
            for k, sample in enumerate(row.get("samples", [])):
                sid = f"{row['id']}#{k}"
                score = scores.get(sid)
                answers.append([qi, r, k, sample.get("text", ""), _sentences(score, judged.get(sid)),
                                None if score is None else score.get("citation_f1"),
                                bool(score and score.get("first_line_cut")), own])
    return {"rounds": labels, "docs": docs, "questions": questions, "answers": answers,
            "fields": ["question", "round", "sample", "text", "sentences", "citation_f1", "first_line_cut", "docs"]}


# ------------------------------------------------------------------------------------------- the page


def render(title: str, run_name: str, dashboard: dict[str, Any], answers: dict) -> str:
    """The whole page (pure: the collected data in, the HTML out)."""
    d = dashboard
    sections = [f"<header><h1>{escape(title)}</h1><p class=sub>run folder <code>{escape(run_name)}</code> &middot; "
                f"{escape(d['summary'])}</p><nav><a href='#dashboard'>dashboard</a> <a href='#browser'>answer "
                "browser</a></nav></header>", "<main><section id=dashboard>"]
    grid = d["metric_charts"] + ([d["positions_chart"]] if d.get("positions_chart") else [])
    if grid:
        sections.append("<h2>Held-out metrics by round</h2><p class=note>Means over held-out questions with 95% "
                        "bootstrap intervals (bars); dashed lines: the constant baselines (the best one darker), "
                        "which cite a fixed position, every document, or copy each document's first sentence. Cited "
                        "positions: the share of each evaluation's citations per document position (a position "
                        "habit piles up on one; documents are in a seeded random order).</p>"
                        f"<div class=grid>{''.join(grid)}</div>")
    if d["judge_charts"]:
        sections.append(f"<h2>Reward judge and evaluation judge</h2><p class=note>The same answers judged by the "
                        f"judge the rewards came from and by <code>{escape(d['eval_judge'])}</code>, which they never "
                        "came from: a policy that fits the reward judge's mistakes shows a gap.</p>"
                        f"<div class=grid>{''.join(d['judge_charts'])}</div>")
    if d["change_charts"]:
        sections.append("<h2>Paired changes</h2><p class=note>Change between two evaluations on the same questions "
                        "with its 95% interval (questions resampled jointly); green: the interval lies above 0, red: "
                        f"below.</p><div class=grid>{''.join(d['change_charts'])}</div>")
    if d["curve_charts"]:
        sections.append("<h2>Training</h2><p class=note>The trainer's logged values per round (the same values "
                        "TensorBoard shows: <code>tensorboard --logdir tb</code> in the run folder; x: the "
                        "optimiser step).</p>"
                        f"<div class=grid>{''.join(d['curve_charts'])}</div>")
    if d["training_table"]:
        sections.append(f"<h3>What each round trained on</h3>{d['training_table']}")
    sections.append(f"<details><summary>The table</summary>{d['summary_table']}</details></section>")
    sections.append(BROWSER_HTML)
    return ("<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
            "content='width=device-width, initial-scale=1'>"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{''.join(sections)}</main>"
            f"<script type='application/json' id=answers>{embed_json(answers)}</script><script>{SCRIPT}</script>"
            "</body></html>")


def dashboard_data(run_dir: Path, folder: Path) -> dict[str, Any]:
    rounds = _read_json(folder / "rounds.json", [])
    baselines = _read_json(run_dir / "round_0" / "baselines" / "metrics.json")
    differences = _read_json(folder / "differences.json", [])
    training = _read_json(folder / "training.json", [])
    curves, points = training_curves(run_dir)
    judged = [r["eval_judge"]["nli"] for r in rounds if r.get("eval_judge")]
    questions = max((r.get("questions", 0) for r in rounds), default=0)
    summary = f"{len(rounds)} evaluation(s) ({', '.join(str(r['round']) for r in rounds) or 'none yet'})"
    if questions:
        summary += f" on {questions} held-out questions"
    return {"summary": summary, "metric_charts": metric_charts(rounds, baselines), "judge_charts": judge_charts(rounds),
            "eval_judge": Path(judged[0]).name if judged else "", "change_charts": change_charts(differences),
            "curve_charts": curves, "curve_points": points,
            "training_table": training_table(training) if training else "",
            "summary_table": summary_table(rounds, baselines)}


def write_report_html(run_dir: str | Path, folder: str | Path, title: str = "START report") -> Path:
    """Write ``folder/report.html`` (and ``folder/dpo_curves.json``, the curves' points) from the run folder's
    files; returns the page's path."""
    run_dir, folder = Path(run_dir), Path(folder)
    dashboard, answers = dashboard_data(run_dir, folder), answer_data(run_dir)
    dashboard["positions_chart"] = positions_chart(answers)
    page = render(title, run_dir.name, dashboard, answers)
    with atomic_open(folder / "dpo_curves.json") as f:
        json.dump(dashboard["curve_points"], f)
    with atomic_open(folder / "report.html") as f:
        f.write(page)
    return folder / "report.html"


BROWSER_HTML = """
<section id=browser><h2>Answer browser</h2>
<p class=note>Every sampled answer to every held-out question. Sentences: <span class='sent sup'>supported</span>
by their citations, <span class='sent uns'>unsupported</span>, <span class='sent nc'>no valid citation</span>.
Hover or click a citation to see the passage it cites (<span class=dis>distractor</span> marks a document added to
mislead; <b>+</b>/<b>&minus;</b>: the judge found the citation relevant or not).</p>
<form id=filters onsubmit='return false'>
<label>round <select id=f-round><option value=''>all</option></select></label>
<label>verdict <select id=f-verdict><option value=''>any</option><option value=all>every sentence supported</option>
<option value=some>some sentence unsupported</option><option value=none>no valid citation</option>
<option value=empty>empty answer</option></select></label>
<label>cites <select id=f-pos><option value=''>any position</option></select></label>
<label>judge <select id=f-judge><option value=reward>reward judge</option><option value=eval>evaluation judge</option>
</select></label>
<label>text <input id=f-text type=search placeholder='question, id or answer'></label>
<span id=count></span></form>
<div id=questions></div><button id=more type=button>show more questions</button>
<div id=passage role=dialog hidden><button id=passage-close type=button aria-label=close>&times;</button>
<div id=passage-head></div><div id=passage-text></div><div id=passage-note></div></div>
</section>"""

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#fff;border-bottom:1px solid #ddd;padding:10px 24px}header h1{font-size:20px;margin:0}
.sub{margin:2px 0;color:#555}nav a{margin-right:14px}main{padding:0 24px 40px}
h2{font-size:16px;margin:22px 0 4px}h3{font-size:14px;margin:16px 0 4px}
.note{color:#555;margin:2px 0 8px;max-width:70em}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(275px,1fr));gap:8px}
.chart{background:#fff;border:1px solid #e3e3e3;border-radius:4px}
table{border-collapse:collapse;background:#fff;font-size:12px}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
td:first-child,th:first-child{text-align:left}details{margin-top:14px}
#filters{position:sticky;top:0;background:#fafafa;padding:8px 0;z-index:2;display:flex;flex-wrap:wrap;gap:10px;
align-items:center;border-bottom:1px solid #ddd}#filters label{font-size:13px}#count{color:#555;font-size:13px}
.q{background:#fff;border:1px solid #e3e3e3;border-radius:4px;margin:10px 0;padding:8px 12px}
.qh{font-weight:600}.qid{color:#888;font-weight:400;font-size:12px;margin-left:6px}
.docs{font-size:12px;color:#444;margin:4px 0}.docs li{margin:1px 0}
.rnd{display:grid;grid-template-columns:70px 1fr;gap:4px 8px;margin-top:4px}
.rl{color:#666;font-size:12px;padding-top:2px}
.ans{margin:2px 0;padding:2px 0;border-top:1px dotted #eee}.ak{color:#999;font-size:11px;margin-right:4px}
.sent{padding:1px 2px;border-radius:3px}.sup{background:#e3f4e3}.uns{background:#fbe3e3}.nc{background:#eee}
.cite{font:inherit;font-size:12px;border:1px solid #88a;background:#eef;border-radius:3px;padding:0 3px;margin:0 1px;
cursor:pointer}.cite.rel{border-color:#2a2}.cite.irr{border-color:#c44}.cite.oor{border-style:dashed}
.dis{color:#b35c00;font-weight:600;font-size:11px}.f1{color:#888;font-size:11px;margin-left:6px}
#passage{position:fixed;z-index:5;max-width:440px;background:#fff;border:1px solid #888;border-radius:4px;
box-shadow:0 3px 12px rgba(0,0,0,.2);padding:8px 12px;font-size:13px}#passage-head{font-weight:600;margin-right:16px}
#passage-note{color:#555;font-size:12px;margin-top:4px}#passage-close{position:absolute;right:4px;top:2px;border:0;
background:none;font-size:16px;cursor:pointer}#more{margin:10px 0}
"""

SCRIPT = r"""
(function(){
const D = JSON.parse(document.getElementById('answers').textContent);
const $ = id => document.getElementById(id);
const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text; return e; };
const PAGE = 20; let shown = PAGE, pinned = null;
const byQ = new Map();
D.answers.forEach(a => { if (!byQ.has(a[0])) byQ.set(a[0], []); byQ.get(a[0]).push(a); });
D.rounds.forEach((r, i) => $('f-round').append(new Option(r === 'base' ? 'base model' : 'round ' + r, i)));
const maxDocs = Math.max(0, ...D.questions.map(q => q.d.length));
for (let k = 1; k <= maxDocs; k++) $('f-pos').append(new Option('[' + k + ']', k));
$('f-pos').append(new Option('nothing', 'none'));
function cited(a) { const s = new Set(); a[4].forEach(x => x[1].forEach(c => s.add(c))); return s; }
function verdict(a, judge) {
  if (!a[4].length) return 'empty';
  const ok = a[4].filter(x => x[2] === 'ok');
  if (!ok.length) return 'none';
  const sup = x => judge === 'eval' && x[6] !== null ? x[6] : x[4];
  return a[4].every(x => x[2] === 'ok' && sup(x)) ? 'all' : 'some';
}
function keep(a) {
  const r = $('f-round').value, v = $('f-verdict').value, p = $('f-pos').value, t = $('f-text').value.toLowerCase();
  if (r !== '' && a[1] !== +r) return false;
  if (v && verdict(a, $('f-judge').value) !== v) return false;
  if (p === 'none' && cited(a).size) return false;
  if (p && p !== 'none' && !cited(a).has(+p)) return false;
  if (t) { const q = D.questions[a[0]]; if (!(q.q + ' ' + q.id + ' ' + a[3]).toLowerCase().includes(t)) return false; }
  return true;
}
function docsOf(a) { return (a[7] || D.questions[a[0]].d).map(i => D.docs[i]); }
function showPassage(btn, pin) {
  const doc = btn._doc, box = $('passage');
  $('passage-head').textContent = '[' + btn._n + '] ' + (doc ? (doc[0] || '(no title)') : 'no such document');
  if (doc && doc[2]) { const m = el('span', 'dis', ' distractor'); $('passage-head').append(m); }
  $('passage-text').textContent = doc ? doc[1] : 'The answer cites a position beyond its ' + btn._ndocs + ' documents.';
  $('passage-note').textContent = btn._note;
  box.hidden = false;
  const r = btn.getBoundingClientRect();
  box.style.left = Math.max(4, Math.min(r.left, window.innerWidth - box.offsetWidth - 8)) + 'px';
  const below = r.bottom + 6;
  const above = Math.max(4, r.top - box.offsetHeight - 6);
  box.style.top = (below + box.offsetHeight > window.innerHeight ? above : below) + 'px';
  if (pin) pinned = btn;
}
function hidePassage() { if (!pinned) $('passage').hidden = true; }
$('passage-close').onclick = () => { pinned = null; $('passage').hidden = true; };
function sentence(s, a, judge) {
  const docs = docsOf(a), [text, cites, status, used, sup, rel, evalSup] = s;
  const ok = judge === 'eval' && evalSup !== null ? evalSup : sup;
  const span = el('span', 'sent ' + (status !== 'ok' ? 'nc' : ok ? 'sup' : 'uns'));
  const who = judge === 'eval' && evalSup !== null ? 'evaluation judge' : 'reward judge';
  span.title = status === 'ok' ? (ok ? 'supported' : 'unsupported') + ' (' + who + ')'
    : status === 'no_citation' ? 'no citation' : 'cites beyond the documents';
  const re = /\[(\d+(?:\s*,\s*\d+)*)\]/g; let last = 0, m;
  while ((m = re.exec(text)) !== null) {
    span.append(document.createTextNode(text.slice(last, m.index)));
    m[1].split(',').map(x => +x.trim()).forEach(n => {
      const b = el('button', 'cite', '[' + n + ']'); b.type = 'button';
      b._n = n; b._doc = docs[n - 1]; b._ndocs = docs.length;
      const j = used.indexOf(n);
      let note = '';
      if (!b._doc) { b.classList.add('oor'); note = 'out of range'; }
      else if (j < 0) note = status === 'ok' ? 'not checked (beyond the citations that count)' : '';
      else if (!sup || !rel) note = 'the sentence is not supported by its citations (reward judge)';
      else { const r = rel[j]; b.classList.add(r ? 'rel' : 'irr'); b.textContent += r ? '+' : '\u2212';
             note = r ? 'relevant: needed for the support (reward judge)'
                      : 'not needed for the support (reward judge)'; }
      b._note = note;
      b.onmouseenter = () => { if (!pinned) showPassage(b, false); };
      b.onmouseleave = hidePassage;
      b.onclick = ev => { ev.stopPropagation(); pinned = null; showPassage(b, true); };
      span.append(b);
    });
    last = re.lastIndex;
  }
  span.append(document.createTextNode(text.slice(last)));
  return span;
}
function answer(a, judge) {
  const div = el('div', 'ans'); div.append(el('span', 'ak', '#' + a[2]));
  if (!a[4].length) div.append(el('i', '', a[3].trim() ? '(nothing scored: ' + a[3] + ')' : '(empty answer)'));
  a[4].forEach((s, i) => { if (i) div.append(document.createTextNode(' ')); div.append(sentence(s, a, judge)); });
  if (a[6]) div.append(el('span', 'f1', '(only the first line is scored)'));
  if (a[5] !== null && a[5] !== undefined) div.append(el('span', 'f1', 'citation F1 ' + (100 * a[5]).toFixed(0)));
  return div;
}
function render() {
  const judge = $('f-judge').value, box = $('questions'); box.textContent = '';
  const groups = [];
  byQ.forEach((list, qi) => { const kept = list.filter(keep); if (kept.length) groups.push([qi, kept]); });
  const total = groups.reduce((n, g) => n + g[1].length, 0);
  $('count').textContent = total + ' answer(s) to ' + groups.length + ' question(s)';
  groups.slice(0, shown).forEach(([qi, list]) => {
    const q = D.questions[qi], card = el('div', 'q'), head = el('div', 'qh', q.q);
    head.append(el('span', 'qid', q.id)); card.append(head);
    const det = el('details', 'docs'); det.append(el('summary', '', q.d.length + ' documents'));
    const ol = el('ol'); q.d.forEach(i => { const li = el('li', '', D.docs[i][0] + ': ' + D.docs[i][1]);
      if (D.docs[i][2]) li.append(el('span', 'dis', ' distractor')); ol.append(li); });
    det.append(ol); card.append(det);
    const grid = el('div', 'rnd');
    D.rounds.forEach((r, ri) => {
      const mine = list.filter(a => a[1] === ri); if (!mine.length) return;
      grid.append(el('div', 'rl', r === 'base' ? 'base model' : 'round ' + r));
      const cell = el('div'); mine.forEach(a => cell.append(answer(a, judge))); grid.append(cell);
    });
    card.append(grid); box.append(card);
  });
  $('more').hidden = groups.length <= shown;
}
['f-round', 'f-verdict', 'f-pos', 'f-judge'].forEach(id => $(id).onchange = () => { shown = PAGE; render(); });
$('f-text').oninput = () => { shown = PAGE; render(); };
$('more').onclick = () => { shown += PAGE; render(); };
document.addEventListener('click', ev => { if (!$('passage').contains(ev.target)) { pinned = null;
  $('passage').hidden = true; } });
render();
})();
"""
