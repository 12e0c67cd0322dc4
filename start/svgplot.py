"""Small inline SVG charts for the HTML report: a line chart with intervals and reference lines, an interval
(forest) chart and a grouped bar chart. Pure functions from numbers to an ``<svg>`` string; every label is
escaped, so names that come from a run (rounds, baselines, judges) cannot become markup. Hovering a point shows
its value (``<title>``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
MARGIN = {"left": 38, "right": 8, "top": 24, "bottom": 22}


@dataclass(frozen=True)
class Point:
    x: float | str  # a number, or a category (a round's label)
    y: float
    low: float | None = None  # an interval around y (drawn as a bar)
    high: float | None = None


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[Point]
    color: str | None = None  # None: the palette, in order
    dashed: bool = False
    markers: bool = True


@dataclass(frozen=True)
class HLine:
    """A constant drawn across the chart (a baseline), labelled at its right end."""

    y: float
    label: str
    strong: bool = False


@dataclass(frozen=True)
class Chart:
    title: str
    series: Sequence[Series]
    hlines: Sequence[HLine] = field(default_factory=tuple)
    width: int = 270
    height: int = 170
    x_label: str = ""


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v:.2g}"


def nice_ticks(low: float, high: float, n: int = 4) -> list[float]:
    """About ``n`` round numbers spanning [low, high]."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0]
    if high - low < 1e-12:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    ticks = [round(math.floor(low / step) * step, 10)]
    while ticks[-1] < high - 1e-9 * step and len(ticks) < 12:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _text(x: float, y: float, s: str, *, anchor: str = "middle", size: int = 10, cls: str = "",
          fill: str = "#333") -> str:
    c = f' class="{cls}"' if cls else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{c}>'
            f"{escape(s)}</text>")


def _merged(lines: Sequence[HLine]) -> list[HLine]:
    """Reference lines at the same height drawn once, their labels joined."""
    out: dict[float, HLine] = {}
    for hl in lines:
        key = round(hl.y, 9)
        old = out.get(key)
        out[key] = hl if old is None else HLine(hl.y, f"{old.label}, {hl.label}", old.strong or hl.strong)
    return list(out.values())


def line_chart(chart: Chart) -> str:
    """Series over shared x values (numbers, or categories in their first-seen order), intervals as bars,
    ``hlines`` dashed across; the y axis spans everything drawn."""
    w, h, m = chart.width, chart.height, MARGIN
    pts = [p for s in chart.series for p in s.points]
    cats: list[str] = []
    for p in pts:
        if isinstance(p.x, str) and p.x not in cats:
            cats.append(p.x)
    xs = [p.x for p in pts if not isinstance(p.x, str)]
    whole_x = all(float(x).is_integer() for x in xs)  # steps: no tick at 1.5
    x_lo, x_hi = (0.0, max(1, len(cats) - 1)) if cats else (min(xs, default=0.0), max(xs, default=1.0))
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    ys = [v for p in pts for v in (p.y, p.low, p.high) if v is not None and math.isfinite(v)]
    ys += [hl.y for hl in chart.hlines if math.isfinite(hl.y)]
    ticks = nice_ticks(min(ys, default=0.0), max(ys, default=1.0))
    y_lo, y_hi = ticks[0], ticks[-1]
    pad_x = 0.5 if cats else 0.0
    names = list(dict.fromkeys(s.name for s in chart.series))  # the legend: one entry per name
    top = m["top"] + (10 if len(names) > 1 else 0)
    pw, ph = w - m["left"] - m["right"], h - top - m["bottom"]

    def sx(x) -> float:
        v = cats.index(x) if isinstance(x, str) else x
        return m["left"] + (v - x_lo + pad_x) / (x_hi - x_lo + 2 * pad_x) * pw

    def sy(y: float) -> float:
        return top + (1 - (y - y_lo) / ((y_hi - y_lo) or 1)) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{w}" height="{h}" '
           f'viewBox="0 0 {w} {h}" role="img"><title>{escape(chart.title)}</title>',
           _text(m["left"], 13, chart.title, anchor="start", size=11, cls="ct", fill="#111")]
    for t in ticks:
        out.append(f'<line x1="{m["left"]}" x2="{w - m["right"]}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#eee"/>')
        out.append(_text(m["left"] - 4, sy(t) + 3, _fmt(t), anchor="end", size=9, fill="#666"))
    if cats:
        for c in cats:
            out.append(_text(sx(c), h - 8, c, size=9, fill="#666"))
    else:
        for t in nice_ticks(x_lo, x_hi, 4):
            if x_lo <= t <= x_hi and (not whole_x or float(t).is_integer()):
                out.append(_text(sx(t), h - 8, _fmt(t), size=9, fill="#666"))
    if chart.x_label:
        out.append(_text(w - m["right"], h - 8, chart.x_label, anchor="end", size=9, fill="#999"))
    label_ys: list[float] = []  # labels placed so far: a close one moves down out of the way
    for hl in sorted(_merged(chart.hlines), key=lambda hl: -hl.y):
        y = sy(hl.y)
        color = "#555" if hl.strong else "#aaa"
        out.append(f'<line x1="{m["left"]}" x2="{w - m["right"]}" y1="{y:.1f}" y2="{y:.1f}" stroke="{color}" '
                   f'stroke-dasharray="4 3" stroke-width="{1.4 if hl.strong else 1}"><title>'
                   f'{escape(hl.label)}: {_fmt(hl.y)}</title></line>')
        ly = y - 3
        if label_ys and ly < label_ys[-1] + 9:
            ly = label_ys[-1] + 9
        label_ys.append(ly)
        out.append(_text(w - m["right"] - 2, ly, hl.label, anchor="end", size=8, fill=color))
    legend_x = m["left"] + 4
    colors: dict[str, str] = {}
    for i, s in enumerate(chart.series):
        color = s.color or PALETTE[i % len(PALETTE)]
        ordered = sorted(s.points, key=lambda p: cats.index(p.x) if isinstance(p.x, str) else p.x)
        if len(ordered) > 1:
            path = " ".join(f"{sx(p.x):.1f},{sy(p.y):.1f}" for p in ordered)
            dash = ' stroke-dasharray="5 3"' if s.dashed else ""
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.6"{dash}/>')
        for p in ordered:
            tip = f"{s.name}: {_fmt(p.y)}" + (f" [{_fmt(p.low)}, {_fmt(p.high)}]" if p.low is not None else "")
            tip = (f"{p.x} " if isinstance(p.x, str) else f"step {_fmt(p.x)} ") + tip
            if p.low is not None and p.high is not None:
                out.append(f'<line x1="{sx(p.x):.1f}" x2="{sx(p.x):.1f}" y1="{sy(p.low):.1f}" y2="{sy(p.high):.1f}" '
                           f'stroke="{color}" stroke-width="1.2" opacity="0.7"/>')
            if s.markers or len(ordered) == 1:
                out.append(f'<circle cx="{sx(p.x):.1f}" cy="{sy(p.y):.1f}" r="2.8" fill="{color}">'
                           f"<title>{escape(tip)}</title></circle>")
        if len(names) > 1 and s.name not in colors:
            colors[s.name] = color
            out.append(f'<rect x="{legend_x}" y="{m["top"] - 1}" width="8" height="3" fill="{color}"/>')
            out.append(_text(legend_x + 10, m["top"] + 3, s.name, anchor="start", size=8, fill=color))
            legend_x += 16 + 5.2 * len(s.name)
    out.append("</svg>")
    return "".join(out)


def interval_chart(title: str, rows: Sequence[tuple[str, float, float, float]], *, width: int = 270,
                   row_height: int = 18) -> str:
    """One row per (label, value, low, high): the interval as a bar, the value as a dot, 0 as a line; a row
    whose interval lies wholly above or below 0 is drawn in colour."""
    m = {"left": 70, "right": 10, "top": 22, "bottom": 18}
    h = m["top"] + m["bottom"] + row_height * max(1, len(rows))
    lo = min([0.0, *(r[2] for r in rows)])
    hi = max([0.0, *(r[3] for r in rows)])
    ticks = nice_ticks(lo, hi, 4)
    lo, hi = ticks[0], ticks[-1]
    pw = width - m["left"] - m["right"]

    def sx(v: float) -> float:
        return m["left"] + (v - lo) / ((hi - lo) or 1) * pw

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{h}" '
           f'viewBox="0 0 {width} {h}" role="img"><title>{escape(title)}</title>',
           _text(4, 13, title, anchor="start", size=11, cls="ct", fill="#111")]
    for t in ticks:
        out.append(f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{m["top"]}" y2="{h - m["bottom"]}" stroke="#eee"/>')
        out.append(_text(sx(t), h - 5, _fmt(t), size=9, fill="#666"))
    out.append(f'<line x1="{sx(0):.1f}" x2="{sx(0):.1f}" y1="{m["top"]}" y2="{h - m["bottom"]}" stroke="#888"/>')
    for i, (label, v, low, high) in enumerate(rows):
        y = m["top"] + row_height * (i + 0.5)
        color = PALETTE[2] if low > 0 else PALETTE[1] if high < 0 else "#777"
        tip = f"{label}: {v:+.1f} [{low:+.1f}, {high:+.1f}]"
        out.append(_text(m["left"] - 4, y + 3, label, anchor="end", size=9))
        out.append(f'<line x1="{sx(low):.1f}" x2="{sx(high):.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{color}" '
                   f'stroke-width="2.2"/>')
        out.append(f'<circle cx="{sx(v):.1f}" cy="{y:.1f}" r="3" fill="{color}"><title>{escape(tip)}</title></circle>')
    out.append("</svg>")
    return "".join(out)


def bar_chart(title: str, categories: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], *,
              width: int = 270, height: int = 170, unit: str = "") -> str:
    """Grouped bars: per category, one bar per series (its values in category order), a legend when several."""
    m = dict(MARGIN, top=MARGIN["top"] + (10 if len(series) > 1 else 0))
    values = [v for _, vs in series for v in vs]
    ticks = nice_ticks(0.0, max(values, default=1.0) or 1.0)
    top = ticks[-1] or 1.0
    pw, ph = width - m["left"] - m["right"], height - m["top"] - m["bottom"]
    group = pw / max(1, len(categories))
    bar = group * 0.8 / max(1, len(series))

    def sy(v: float) -> float:
        return m["top"] + (1 - v / top) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img"><title>{escape(title)}</title>',
           _text(m["left"], 13, title, anchor="start", size=11, cls="ct", fill="#111")]
    for t in ticks:
        out.append(f'<line x1="{m["left"]}" x2="{width - m["right"]}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" '
                   'stroke="#eee"/>')
        out.append(_text(m["left"] - 4, sy(t) + 3, _fmt(t) + unit, anchor="end", size=9, fill="#666"))
    legend_x = m["left"] + 4
    for j, (name, vs) in enumerate(series):
        color = PALETTE[j % len(PALETTE)]
        for i, v in enumerate(vs):
            x = m["left"] + group * (i + 0.1) + bar * j
            out.append(f'<rect x="{x:.1f}" y="{sy(v):.1f}" width="{bar:.1f}" height="{sy(0) - sy(v):.1f}" '
                       f'fill="{color}"><title>{escape(f"{name}, {categories[i]}: {_fmt(v)}{unit}")}</title></rect>')
        if len(series) > 1:
            out.append(f'<rect x="{legend_x}" y="{MARGIN["top"] - 1}" width="8" height="3" fill="{color}"/>')
            out.append(_text(legend_x + 10, MARGIN["top"] + 3, name, anchor="start", size=8, fill=color))
            legend_x += 16 + 5.2 * len(name)
    for i, c in enumerate(categories):
        out.append(_text(m["left"] + group * (i + 0.5), height - 8, c, size=9, fill="#666"))
    out.append("</svg>")
    return "".join(out)
