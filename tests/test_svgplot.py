"""The report's inline SVG charts: axes that span the data, escaped labels, baselines drawn once per height."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from start.svgplot import Chart, HLine, Point, Series, interval_chart, line_chart, nice_ticks


@pytest.mark.parametrize("low, high", [(0, 100), (-5.2, 0.3), (0.55, 0.7), (3, 3), (-0.2, 0.1), (1e-5, 2e-5)])
def test_ticks_are_round_and_span_the_data(low, high):
    ticks = nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high and 2 <= len(ticks) <= 12
    steps = {round(b - a, 12) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(steps) == 1  # evenly spaced


def test_a_line_chart_is_valid_svg_with_escaped_labels_and_merged_baselines():
    svg = line_chart(Chart("F1 <b>", [Series("policy & co", [Point("base", 10, 5, 15), Point("1", 30, 20, 40)])],
                           [HLine(20, "[1]"), HLine(20, "cite-all", strong=True), HLine(50, "</svg>")]))
    root = ET.fromstring(svg)  # well-formed: every label escaped
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "F1 <b>" in texts and "[1], cite-all" in texts and "</svg>" in texts
    lines = [e for e in root.iter("{http://www.w3.org/2000/svg}line") if e.get("stroke-dasharray")]
    assert len(lines) == 2  # two heights, three baselines
    tips = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert "1 policy & co: 30 [20, 40]" in tips


def test_an_interval_chart_colours_intervals_that_exclude_zero():
    svg = interval_chart("change", [("0 -> 1", 5, 1, 9), ("1 -> 2", -3, -6, -1), ("0 -> 2", 1, -2, 4)])
    root = ET.fromstring(svg)
    colours = [e.get("stroke") for e in root.iter("{http://www.w3.org/2000/svg}line") if e.get("stroke-width") == "2.2"]
    assert colours == ["#2ca02c", "#d62728", "#777"]
