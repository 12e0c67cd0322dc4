"""report.html: the dashboard's plots, every held-out answer in the browser, and model text that stays text.

A fake run folder (two held-out questions, three evaluations, one DPO round) whose answers and documents carry
markup and script; the fast tests read the page as text, the slow one opens it in headless Chromium and clicks.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from start.evaluate import write_report
from start.io import write_json, write_jsonl
from start.scoring import RecordScore
from start.scoring.scorer import SentenceScore

EVIL = "</script><script>window.__xss=1</script><img src=x onerror='window.__xss=2'>"
DOCS = [{"title": "Tower <i>", "text": "The tower was built in 1889 & stands in Paris </script>."},
        {"title": "Bridge", "text": "A bridge unrelated to the question.", "distractor": True}]
ROUNDS = {"base": "round_0/eval_base", "0": "round_0/eval", "1": "round_1/eval"}


def _metric(v: float) -> dict:
    return {"value": v, "low": v - 5, "high": v + 5}


def _score(sid: str, supported: bool) -> dict:
    sentences = [SentenceScore("It was built in 1889 [1].", "It was built in 1889.", [1], "ok", [1], True, 0.9,
                               [True], True),
                 SentenceScore(f"It is {EVIL}\u2028 in Paris [1][2].", "x", [1, 2], "ok", [1, 2], supported, 0.2,
                               [True, False] if supported else None, False)]
    rec = RecordScore(sid, 2, 1.0, 0.75, 0.86, 3, None, None, 0.5, 0.0 if supported else 0.5, 1.0, 12,
                      sentences=sentences)
    return rec.to_dict()


@pytest.fixture
def fake_run(tmp_path) -> Path:
    run = tmp_path / "run"
    write_json(run / "round_0" / "baselines" / "metrics.json",
               {"questions": 2, "best": "cite-all",
                "baselines": {"[1]": {"metrics": {"citation_f1": _metric(20.0)}},
                              "cite-all": {"metrics": {"citation_f1": _metric(35.0), "length": _metric(9.0)}},
                              "<b>bold</b>": {"metrics": {"citation_f1": _metric(10.0)}}}})
    for i, (label, folder) in enumerate(ROUNDS.items()):
        f = run / folder
        metrics = {k: _metric(30.0 + 10 * i) for k in ("citation_rec", "citation_prec", "citation_f1", "str_em")}
        write_json(f / "metrics.json", {"questions": 2, "samples": 4, "empty_answers": 0, "metrics": metrics,
                                        "eval_judge": {"nli": "/some/where/judge-b",
                                                       "metrics": {"citation_f1": _metric(25.0 + 5 * i)}}})
        rows = [{"id": f"q{j}", "question": f"When was tower {j} built? <u>{label}</u>", "docs": DOCS, "prompt": "p",
                 "samples": [{"text": f"answer {k} of round {label} {EVIL}", "citations": [1]} for k in range(2)]}
                for j in range(2)]
        write_jsonl(f / "sample" / "samples.jsonl", rows)
        write_jsonl(f / "score" / "scores.jsonl", [_score(f"q{j}#{k}", k == 0) for j in range(2) for k in range(2)])
        write_jsonl(f / "score_eval" / "scores.jsonl", [_score(f"q{j}#{k}", False) for j in range(2) for k in range(2)])
    history = [{"loss": 0.69 - 0.05 * s, "learning_rate": 1e-4, "rewards/chosen": 0.1 * s,
                "rewards/rejected": -0.1 * s, "rewards/margins": 0.2 * s, "rewards/accuracies": 0.5, "step": s}
               for s in range(1, 4)]
    write_json(run / "round_1" / "train" / "metrics.json", {"log_history": history + [{"train_loss": 0.6, "step": 3}]})
    return run


def _page(run: Path) -> str:
    write_report(run, title="START <test>")
    return (run / "report" / "report.html").read_text(encoding="utf-8")


def _embedded(page: str) -> dict:
    m = re.search(r"<script type='application/json' id=answers>(.*?)</script>", page, re.S)
    return json.loads(m.group(1))


def test_model_text_is_data_never_markup(fake_run):
    page = _page(fake_run)
    assert "<img" not in page and "__xss=1</script>" not in page and "<u>" not in page and "<i>" not in page
    assert page.count("<script") == 2 and page.count("</script>") == 2  # the data and the page's own script
    assert "\u2028" not in page  # it would end a script line in older engines
    assert "<title>START &lt;test&gt;</title>" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page  # a baseline's name in the dashboard
    data = _embedded(page)
    texts = [a[3] for a in data["answers"]]
    assert f"answer 1 of round 0 {EVIL}" in texts  # exactly what the model wrote, read back by JSON.parse
    assert any(EVIL + "\u2028" in s[0] for a in data["answers"] for s in a[4])
    assert DOCS[0]["text"] in [d[1] for d in data["docs"]]


def test_every_held_out_answer_of_every_round_with_its_verdicts(fake_run):
    data = _embedded(_page(fake_run))
    assert data["rounds"] == list(ROUNDS)
    assert len(data["answers"]) == 3 * 2 * 2  # evaluations x questions x samples
    assert len(data["docs"]) == 2 and [q["d"] for q in data["questions"]] == [[0, 1], [0, 1]]  # stored once
    first = next(a for a in data["answers"] if a[1] == 2 and a[2] == 0)
    (_, cites, status, used, supported, relevant, judged), (_, c2, _, _, s2, r2, j2) = first[4]
    assert (cites, status, used, supported, relevant, judged) == ([1], "ok", [1], True, [True], True)
    assert (c2, s2, r2, j2) == ([1, 2], True, [True, False], False)  # the evaluation judge disagrees
    assert data["docs"][1][2] is True  # the distractor is marked


def test_the_dashboard_draws_metrics_baselines_judges_changes_and_curves(fake_run):
    page = _page(fake_run)
    dashboard = page.split("<section id=browser>")[0]
    titles = re.findall(r"<svg [^>]*><title>([^<]*)</title>", dashboard)
    for t in ("citation F1", "citation recall", "exact match (str_em)", "DPO loss", "reward margin",
              "reward accuracy", "learning rate", "rewards: chosen (solid), rejected (dashed)", "citation_f1"):
        assert t in titles, (t, titles)
    f1 = dashboard.split("<title>citation F1</title>")[1].split("</svg>")[0]
    assert f1.count('stroke-dasharray="4 3"') == 3  # the three constant baselines
    assert "cite-all" in f1 and "judge-b" in dashboard
    judges = dashboard.split("Reward judge and evaluation judge")[1].split("<h2>")[0]
    assert "reward judge" in judges and "evaluation judge" in judges
    assert "0 -&gt; 1" in dashboard or "0 -> 1" in dashboard  # a paired change
    assert "<title>1, [1]: 66.7%</title>" in dashboard and "<title>1, [2]: 33.3%</title>" in dashboard  # positions
    curves = json.loads((fake_run / "report" / "dpo_curves.json").read_text())
    loss = next(c for c in curves if c["key"] == "loss")
    assert loss["round"] == "round 1" and loss["steps"] == [1.0, 2.0, 3.0]
    assert loss["values"] == pytest.approx([0.64, 0.59, 0.54])


def test_the_page_fetches_nothing(fake_run):
    page = _page(fake_run)
    assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?(https?:)?//""", page)
    assert not re.search(r"<(link|iframe|object|embed)\b", page)


def test_an_empty_run_still_gets_a_page(tmp_path):
    write_report(tmp_path)
    page = (tmp_path / "report" / "report.html").read_text()
    assert "Answer browser" in page and _embedded(page)["answers"] == []


# ------------------------------------------------------------------------------------------- in a browser

BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,900")


def headless_chromium():
    """A Selenium driver for Debian's chromium (offline: no driver download, no network)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for flag in (*BROWSER_FLAGS, f"--user-data-dir={tempfile.mkdtemp(prefix='start-chromium-')}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=opts)


@pytest.mark.slow
def test_in_a_browser_a_citation_shows_its_passage_and_filters_work(fake_run):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _page(fake_run)
    browser = headless_chromium()
    try:
        browser.get((fake_run / "report" / "report.html").as_uri())
        assert browser.find_element(By.ID, "count").text == "12 answer(s) to 2 question(s)"
        assert browser.execute_script("return window.__xss") is None
        assert not browser.find_elements(By.TAG_NAME, "img")
        answer = browser.find_elements(By.CSS_SELECTOR, ".ans")[0]
        assert EVIL in answer.text  # shown as text
        cites = answer.find_elements(By.CSS_SELECTOR, "button.cite")
        passage = browser.find_element(By.ID, "passage")
        assert not passage.is_displayed()
        cites[0].click()
        assert passage.is_displayed()
        assert browser.find_element(By.ID, "passage-text").text == DOCS[0]["text"]
        assert browser.find_element(By.ID, "passage-head").text == "[1] Tower <i>"
        distractor = next(c for c in cites if c.text.startswith("[2]"))
        distractor.click()
        assert browser.find_element(By.ID, "passage-head").text == "[2] Bridge distractor"
        assert browser.find_element(By.ID, "passage-text").text == DOCS[1]["text"]
        browser.find_element(By.ID, "passage-close").click()
        assert not passage.is_displayed()
        Select(browser.find_element(By.ID, "f-round")).select_by_visible_text("round 1")
        assert browser.find_element(By.ID, "count").text == "4 answer(s) to 2 question(s)"
        Select(browser.find_element(By.ID, "f-verdict")).select_by_value("all")
        assert browser.find_element(By.ID, "count").text == "2 answer(s) to 2 question(s)"
        Select(browser.find_element(By.ID, "f-judge")).select_by_value("eval")  # that judge supports none
        assert browser.find_element(By.ID, "count").text == "0 answer(s) to 0 question(s)"
        Select(browser.find_element(By.ID, "f-verdict")).select_by_value("")
        Select(browser.find_element(By.ID, "f-pos")).select_by_value("none")
        assert browser.find_element(By.ID, "count").text == "0 answer(s) to 0 question(s)"
        Select(browser.find_element(By.ID, "f-pos")).select_by_value("2")
        assert browser.find_element(By.ID, "count").text == "4 answer(s) to 2 question(s)"
    finally:
        browser.quit()
