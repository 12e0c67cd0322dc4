"""Reading inputs, clear errors for bad ones, and the `python -m start.score` command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from start.io import InputError, read_records, write_json
from start.score import main
from start.scoring import parse_records

GOOD = {"id": "q1", "question": "When was the tower built?",
        "docs": [{"title": "paris", "text": "the tower was built in 1889 ."}, {"title": "f1", "text": "f1 f2"}],
        "output": "the tower was built in 1889 [1]. f1 [2].",
        "qa_pairs": [{"short_answers": ["1889"]}]}


def test_reads_list_data_object_and_jsonl(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([GOOD, GOOD]))
    (tmp_path / "b.json").write_text(json.dumps({"args": {}, "data": [GOOD]}))
    (tmp_path / "c.jsonl").write_text(json.dumps(GOOD) + "\n\n" + json.dumps(GOOD) + "\n")
    (tmp_path / "d.jsonl").write_text(json.dumps(GOOD) + "\n")
    assert [len(read_records(tmp_path / f)) for f in ("a.json", "b.json", "c.jsonl", "d.jsonl")] == [2, 1, 2, 1]


@pytest.mark.parametrize("content, message", [
    (b'[{"question": "q",\n "docs": [}]', r"bad\.json: line 2: malformed JSON"),
    (b'{"question": "q"}\n{"question": oops}\n', r"bad\.json: line 2: malformed JSON line"),
    (b'[{"question": "caf\xe9"}]', r"bad\.json: line 1: not valid UTF-8"),
    (b"   ", r"bad\.json: the file is empty"),
    (b"[1, 2]", r"bad\.json: record 0: expected a JSON object"),
])
def test_malformed_files_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_records(path)


@pytest.mark.parametrize("change, message", [
    ({"docs": None}, r"record 0 \(id=q1\): field 'docs': expected a list"),
    ({"docs": []}, r"record 0 \(id=q1\): field 'docs': is empty"),
    ({"docs": [{"title": "t", "text": "  "}]}, r"field 'docs\[0\]\.text': is empty"),
    ({"docs": [{"title": "t"}]}, r"field 'docs\[0\]\.text': is missing"),
    ({"output": 3}, r"field 'output': expected a string"),
    ({"qa_pairs": [{"question": "x"}]}, r"field 'qa_pairs\[0\]\.short_answers': is missing"),
    ({"answers": []}, r"field 'answers': expected a non-empty list"),
])
def test_bad_records_name_record_and_field(change, message):
    with pytest.raises(InputError, match=message):
        parse_records([{**GOOD, **change}], path="in.json")


@pytest.mark.parametrize("missing", ["docs", "output", "question"])
def test_missing_fields(missing):
    rec = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(InputError, match=rf"record 1 \(id=q1\): field '{missing}': is missing"):
        parse_records([GOOD, rec], path="in.json")


def test_empty_docs_allowed_on_request():
    (rec,) = parse_records([{**GOOD, "docs": []}], allow_empty_docs=True)
    assert rec.docs == ()


def test_cli_scores_and_writes_metrics_and_detail(tmp_path, tiny_cross_encoder, capsys):
    src = tmp_path / "results.json"
    write_json(src, {"data": [GOOD, {**GOOD, "id": "q2", "output": "f1 [9].\nsecond line"}]})
    code = main([str(src), "--nli", str(tiny_cross_encoder), "--cache-dir", str(tmp_path / "cache"),
                 "--no-progress"])
    assert code == 0
    metrics = json.loads((tmp_path / "results.score.json").read_text())
    for key in ("citation_rec", "citation_prec", "citation_f1", "str_em", "str_hit", "length"):
        assert 0 <= metrics[key] <= 100
    assert metrics["num_examples"] == 2 and metrics["num_out_of_range_sentences"] == 1
    assert metrics["num_first_line_cut"] == 1 and metrics["str_em"] == 50.0
    detail = [json.loads(x) for x in (tmp_path / "results.score.detail.jsonl").read_text().splitlines()]
    assert [d["id"] for d in detail] == ["q1", "q2"]
    assert detail[1]["sentences"][0]["status"] == "out_of_range"
    assert "citation_rec" in capsys.readouterr().out  # the summary table


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    src = tmp_path / "results.json"
    write_json(src, [GOOD, {**GOOD, "docs": []}])
    assert main([str(src), "--nli", "unused"]) == 2
    assert "record 1 (id=q1): field 'docs': is empty" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_module_entry_point_reports_errors(tmp_path):
    src = tmp_path / "x.json"
    src.write_text("{not json")
    proc = subprocess.run([sys.executable, "-m", "start.score", str(src)], capture_output=True, text=True)
    assert proc.returncode == 2 and "x.json: line 1: malformed JSON" in proc.stderr


def test_jsonl_strings_may_hold_unicode_line_separators(tmp_path):
    # a model may write U+2028 / U+2029 / U+0085 inside an answer; JSON Lines end at "\n" only
    from start.io import read_jsonl, write_jsonl

    rows = [{"id": "a", "question": "q?", "docs": [{"title": "t", "text": "x"}], "output": "one\u2028two\u2029three"},
            {"id": "b", "question": "q?", "docs": [{"title": "t", "text": "x"}], "output": "four\x85five"}]
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, rows)
    assert read_jsonl(path) == rows
    assert read_records(path) == rows
