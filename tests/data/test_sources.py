"""The source layer: every local format, row numbering, and errors that name file, line and field."""

from __future__ import annotations

import json

import pytest

from llamafactory_ext.data.fields import RowError
from llamafactory_ext.data.sources import SourceError, iter_rows, open_source
from tests.data.conftest import write_jsonl

ROWS = [{"question": f"Domanda {i}?", "choices": ["sì", "no"], "answer": i % 2} for i in range(5)]


def test_jsonl_json_parquet_csv_give_the_same_rows(tmp_path):
    import pandas as pd

    jsonl = write_jsonl(tmp_path / "q.jsonl", ROWS)
    as_json = tmp_path / "q.json"
    as_json.write_text(json.dumps(ROWS, ensure_ascii=False), encoding="utf-8")
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"version": 1, "data": ROWS}), encoding="utf-8")
    pd.DataFrame(ROWS).to_parquet(tmp_path / "q.parquet")
    pd.DataFrame([{**r, "choices": json.dumps(r["choices"])} for r in ROWS]).to_csv(tmp_path / "q.csv", index=False)
    for name in ("q.jsonl", "q.json", "wrapped.json", "q.parquet"):
        got = list(iter_rows(tmp_path / name))
        assert [n for n, _ in got] == [1, 2, 3, 4, 5], name
        assert [r for _, r in got] == ROWS, name
    csv_rows = [r for _, r in iter_rows(tmp_path / "q.csv")]
    assert [r["choices"] for r in csv_rows] == [["sì", "no"]] * 5  # JSON cells decoded
    assert [r["answer"] for r in csv_rows] == ["0", "1", "0", "1", "0"]  # CSV cells are strings
    assert jsonl.exists()


def test_jsonl_numbers_are_editor_lines_and_hash_is_recorded(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [ROWS[0], b"\n", ROWS[1]])
    src = open_source(path)
    assert [n for n, _ in src.rows()] == [1, 3]
    import hashlib

    assert src.fingerprint()["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_invalid_json_line_names_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [ROWS[0], ROWS[1], b'{"question": "x", "choices": [\n'])
    with pytest.raises(RowError) as err:
        list(iter_rows(path))
    assert err.value.row == 3 and err.value.reason == "invalid_json"
    assert str(path) in str(err.value) and "line 3" in str(err.value)


def test_invalid_utf8_line_names_file_line_and_byte(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [ROWS[0], b'{"question": "caff\xe8", "choices": ["a", "b"], "answer": 0}\n'])
    with pytest.raises(RowError) as err:
        list(iter_rows(path))
    msg = str(err.value)
    assert err.value.reason == "invalid_utf8" and "line 2" in msg and "0xe8" in msg and str(path) in msg


def test_non_object_row_and_skip_callback(tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", [ROWS[0], b"[1, 2]\n", b"not json\n", ROWS[1]])
    bad = []
    rows = list(iter_rows(path, on_bad=lambda e, raw: bad.append((e.row, e.reason, raw))))
    assert [n for n, _ in rows] == [1, 4]
    assert [(n, r) for n, r, _ in bad] == [(2, "not_an_object"), (3, "invalid_json")]
    assert bad[1][2] == "not json"


def test_json_array_errors(tmp_path):
    broken = tmp_path / "quiz.json"
    broken.write_text('[\n {"question": "a"},\n {"question": \n]', encoding="utf-8")
    with pytest.raises(RowError) as err:
        list(iter_rows(broken))
    assert "line 4" in str(err.value) and "quiz.json" in str(err.value)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'[\n{"question": "perch' + b"\xe9" + b'"}\n]')
    with pytest.raises(RowError, match=r"line 2.*UTF-8"):
        list(iter_rows(latin))
    lines = tmp_path / "lines.json"  # JSON lines saved as .json: read as JSONL
    lines.write_text("\n".join(json.dumps(r) for r in ROWS), encoding="utf-8")
    assert len(list(iter_rows(lines))) == 5


def test_limit_counts_rows_read(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", ROWS)
    assert [n for n, _ in iter_rows(path, limit=2)] == [1, 2]


def test_missing_file_and_unknown_type(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        open_source(tmp_path / "nope.jsonl")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(SourceError, match="unknown file type"):
        open_source(tmp_path / "x.txt")
    hub = open_source("openai/gsm8k", hub_config="main", split="train")
    assert hub.kind == "hub" and hub.unit == "row"


def test_directory_resolves_split_file(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", ROWS)
    write_jsonl(tmp_path / "test.jsonl", ROWS[:2])
    assert len(list(iter_rows(tmp_path, split="test"))) == 2
    with pytest.raises(SourceError, match="validation"):
        open_source(tmp_path, split="validation")
