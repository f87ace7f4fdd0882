"""The source layer: every local format, row numbering, and errors that name file, line and field."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time

import pytest

from llamafactory_ext import cli
from llamafactory_ext.data import get_spec
from llamafactory_ext.data.fields import RowError
from llamafactory_ext.data.multit import item_key, parse_multit_row
from llamafactory_ext.data.prepare import options_class, run
from llamafactory_ext.data.samples import SAMPLES_DIR
from llamafactory_ext.data.sources import (
    SourceError,
    iter_rows,
    looks_like_hub_id,
    open_source,
)
from tests.helpers import one_line_error, write_jsonl

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


# ---------------------------------------------------------------------------------------------
# a UTF-8 byte order mark (Windows editors write one) is not part of the data
# ---------------------------------------------------------------------------------------------
BOM = b"\xef\xbb\xbf"
QUIZ = [{"question": f"Perché {i}?", "choices": ["sì", "no", "forse"], "answer": "ABC"[i % 3]} for i in range(4)]


def _quiz_files(folder, prefix: bytes) -> dict[str, object]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    files["json"] = folder / "quiz.json"
    files["json"].write_bytes(prefix + json.dumps(QUIZ, ensure_ascii=False, indent=1).encode("utf-8"))
    files["jsonl"] = folder / "quiz.jsonl"
    files["jsonl"].write_bytes(prefix + b"".join((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8") for r in QUIZ))
    files["lines.json"] = folder / "lines.json"  # JSON lines saved as .json
    files["lines.json"].write_bytes(prefix + b"".join((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8") for r in QUIZ))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["question", "choices", "answer"])
    writer.writeheader()
    writer.writerows({**r, "choices": json.dumps(r["choices"], ensure_ascii=False)} for r in QUIZ)
    files["csv"] = folder / "quiz.csv"
    files["csv"].write_bytes(prefix + buf.getvalue().encode("utf-8"))
    return files


@pytest.mark.parametrize("kind", ["json", "jsonl", "lines.json", "csv"])
def test_bom_file_converts_exactly_like_the_same_file_without_it(tmp_path, kind):
    plain, bom = _quiz_files(tmp_path / "plain", b"")[kind], _quiz_files(tmp_path / "bom", BOM)[kind]
    assert bom.read_bytes().startswith(BOM) and not plain.read_bytes().startswith(BOM)
    rows = [r for _, r in iter_rows(plain)]
    assert [r for _, r in iter_rows(bom)] == rows and "question" in rows[0]
    outs = []
    for path, sub in ((plain, "p"), (bom, "b")):
        m = run("multit_nothink", options_class(get_spec("multit_nothink"))(source=str(path), out_dir=str(tmp_path / sub), register=False),
                quiet=True)
        assert m["rows"]["written"] == len(QUIZ) and m["rejected"] == {}
        outs.append((tmp_path / sub / "multit_nothink.jsonl").read_bytes())
    assert outs[0] == outs[1]
    assert [n for n, _ in iter_rows(bom)] == [n for n, _ in iter_rows(plain)] == [1, 2, 3, 4]


def test_bom_in_dataset_info_and_traces(tmp_path):
    """The side files are read through the same layer: a BOM in them is fine too."""
    quiz = _quiz_files(tmp_path / "q", b"")["json"]
    traces = tmp_path / "traces.jsonl"
    traces.write_bytes(BOM + b"".join(
        (json.dumps({"key": item_key(parse_multit_row(r, 0)), "trace": f"Penso {i}.", "correct": True, "reason": "kept"}) + "\n").encode()
        for i, r in enumerate(QUIZ)))
    out = tmp_path / "out"
    out.mkdir()
    (out / "dataset_info.json").write_bytes(BOM + json.dumps({"other": {"file_name": "other.jsonl"}}).encode())
    m = run("multit_think", options_class(get_spec("multit_think"))(source=str(quiz), traces=str(traces), out_dir=str(out),
                                                                    dataset_info=str(out / "dataset_info.json")), quiet=True)
    assert m["rows"]["written"] == len(QUIZ) and m["rejected"] == {}
    info = json.loads((out / "dataset_info.json").read_text(encoding="utf-8"))
    assert set(info) == {"other", "multit_think"} and info["multit_think"]["file_name"] == "multit_think.jsonl"


# ---------------------------------------------------------------------------------------------
# a mistyped path is "not found" at once, never tried as a Hub id
# ---------------------------------------------------------------------------------------------
MISTYPED = ["data/quiz.json", "Multi-IT-A/quiz", "Multi-IT-A/quiz.json", "./x", "./quiz", "~/x.json", "~/x", "../x", "/no/such/quiz"]


@pytest.fixture
def no_hub(tmp_path, monkeypatch):
    """cwd with a ``Multi-IT-A/`` folder, HOME empty, and a ``datasets.load_dataset`` that records every call."""
    import datasets

    (tmp_path / "Multi-IT-A").mkdir()
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append(a) or iter([]))
    return calls


@pytest.mark.parametrize("source", MISTYPED)
def test_mistyped_path_is_not_found_at_once(no_hub, source, tmp_path):
    with pytest.raises(SourceError, match="source file not found"):
        open_source(source)
    started = time.monotonic()
    with pytest.raises(SourceError, match="not found") as err:
        run("multit_nothink", options_class(get_spec("multit_nothink"))(source=source, out_dir=str(tmp_path / "o")), quiet=True)
    assert time.monotonic() - started < 5  # no Hub round trip
    assert source.lstrip("./~") in str(err.value)
    assert no_hub == []
    assert not (tmp_path / "o").exists()


def test_mistyped_path_cli_one_line(no_hub, capsys):
    for source in ("data/quiz.json", "Multi-IT-A/quiz", "~/x.json"):
        rc = cli.main(["prepare", "multit_nothink", f"source={source}", "limit=5"])
        out = capsys.readouterr()
        assert "source file not found" in one_line_error(subprocess.CompletedProcess([], rc, out.out, out.err))
        assert source.lstrip("~") in out.err
    # the same traces= typo is just as quick
    rc = cli.main(["prepare", "multit_think", f"source={SAMPLES_DIR / 'multit_quiz.json'}", "traces=out/traces.jsonl"])
    assert rc == 2 and "not found" in capsys.readouterr().err
    assert no_hub == []


def test_hub_ids_are_still_hub_ids(no_hub):
    for source in ("openai/gsm8k", "Crisp-Unimib/ITALIC", "wikimedia/wikipedia", "Multi-IT-C/quiz"):  # no Multi-IT-C/ folder here
        assert open_source(source).kind == "hub", source
    assert not looks_like_hub_id("Multi-IT-A/quiz") and looks_like_hub_id("Multi-IT-C/quiz")
    assert not any(looks_like_hub_id(s) for s in MISTYPED)
