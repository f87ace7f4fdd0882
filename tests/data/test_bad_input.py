"""Malformed rows: a clear error naming file, row and field (default), or the row and its reason
in NAME.rejects.jsonl with a count (on_error=skip). Outputs are atomic."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from llamafactory_ext.data.fields import RowError
from llamafactory_ext.data.prepare import run
from llamafactory_ext.data.samples import SAMPLES_DIR
from llamafactory_ext.data.spec import PrepareOptions
from tests.conftest import run_cmd
from tests.data.conftest import read_jsonl, write_jsonl

GOOD = {"question": "Qual è la capitale d'Italia?", "choices": ["Roma", "Milano", "Napoli"], "answer": "A"}

# (line content, field, reason): each becomes line 2 of a small Mult-IT JSONL file
MULTIT_BAD = [
    ({"question": "Senza risposta?", "choices": ["a", "b"]}, "answer", "missing_field"),
    ({"choices": ["a", "b"], "answer": 0}, "question", "missing_field"),
    ({"question": "Fuori?", "choices": ["a", "b", "c"], "answer": "F"}, "answer", "answer_not_in_options"),
    ({"question": "Indice?", "choices": ["a", "b"], "answer": 2}, "answer", "answer_not_in_options"),
    ({"question": "Indice?", "choices": ["a", "b"], "answer": "5"}, "answer", "answer_not_in_options"),
    ({"question": "   ", "choices": ["a", "b"], "answer": "A"}, "question", "empty"),
    ({"question": 42, "choices": ["a", "b"], "answer": "A"}, "question", "wrong_type"),
    ({"question": "Tipo?", "choices": "Roma, Milano", "answer": "A"}, "choices", "wrong_type"),
    ({"question": "Tipo?", "choices": ["a", 3], "answer": "A"}, "choices", "wrong_type"),
    ({"question": "Tipo?", "choices": ["a", "b"], "answer": [0]}, "answer", "wrong_type"),
    ({"question": "Troppe?", "choices": list("abcdef"), "answer": "A"}, "choices", "too_many_options"),
    ({"question": "Una sola?", "choices": ["a"], "answer": "A"}, "choices", "option_count"),
    (b'{"question": "rotto", "choices": ["a", "b"], \n', None, "invalid_json"),
    (b'{"question": "perch\xe9?", "choices": ["a", "b"], "answer": "A"}\n', None, "invalid_utf8"),
    (b'["not", "an", "object"]\n', None, "not_an_object"),
]


@pytest.mark.parametrize("bad,field,reason", MULTIT_BAD, ids=[c[2] + "-" + str(c[1]) for c in MULTIT_BAD])
def test_multit_bad_row_fails_naming_file_line_field(tmp_path, bad, field, reason):
    src = write_jsonl(tmp_path / "quiz.jsonl", [GOOD, bad, GOOD])
    with pytest.raises(RowError) as err:
        run("multit_nothink", PrepareOptions(source=str(src), out_dir=str(tmp_path / "out"), register=False), quiet=True)
    e = err.value
    assert (e.file, e.row, e.field, e.reason) == (str(src), 2, field, reason)
    assert str(src) in str(e) and "line 2" in str(e)
    if field:
        assert f"field '{field}'" in str(e)
    assert not (tmp_path / "out" / "multit_nothink.jsonl").exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == []  # no temp files left behind


def test_skip_writes_every_bad_row_to_rejects_with_counts(tmp_path):
    lines = [GOOD]
    for bad, _, _ in MULTIT_BAD:
        lines += [bad, GOOD]
    src = write_jsonl(tmp_path / "quiz.jsonl", lines)
    out = tmp_path / "out"
    m = run("multit_nothink", PrepareOptions(source=str(src), out_dir=str(out), on_error="skip", register=False), quiet=True)
    assert m["rows"]["read"] == len(lines)
    assert m["rows"]["written"] == len(MULTIT_BAD) + 1 == len(read_jsonl(out / "multit_nothink.jsonl"))
    assert m["rows"]["rejected"] == len(MULTIT_BAD)
    expected = {}
    for _, _, reason in MULTIT_BAD:
        expected[reason] = expected.get(reason, 0) + 1
    assert m["rejected"] == expected
    rejects = read_jsonl(out / "multit_nothink.rejects.jsonl")
    assert [(r["line"], r["field"], r["reason"]) for r in rejects] == [
        (2 + 2 * i, field, reason) for i, (_, field, reason) in enumerate(MULTIT_BAD)
    ]
    assert all(r["file"] == str(src) and r["error"] for r in rejects)
    assert rejects[0]["data"] == MULTIT_BAD[0][0]  # the row itself, to fix and re-run
    assert m["outputs"]["rejects"]["rows"] == len(MULTIT_BAD)


SYNTH_GOOD = {"id": "1", "question": "Tom has 3 apples and buys 4 more. How many?", "solution": "3 + 4 = <<3+4=7>>7\n#### 7", "answer": "7.0"}
SYNTH_BAD = [
    ({"id": "2", "question": "q?", "answer": "7"}, "solution", "missing_field"),
    ({"id": "2", "question": "q?", "solution": "3 + 4 = 7", "answer": None}, "answer", "wrong_type"),
    ({"id": "2", "question": "q?", "solution": "3 + 4 = <<3+4=7>>7\n#### 7", "answer": "8"}, "answer", "answer_mismatch"),
    ({"id": "2", "question": "q?", "solution": "3 + 4 = <<3+4=7>>7\n#### seven", "answer": "7"}, "solution", "bad_final_answer"),
    ({"id": "2", "question": "q?", "solution": "3 + 4 = <<3+4=7>>7\n#### 7", "answer": "n/a"}, "answer", "bad_final_answer"),
    ({"id": "2", "question": "", "solution": "x\n#### 7", "answer": "7"}, "question", "empty"),
    ({"id": "2", "question": "q?", "solution": "3 + 4 = <<3+4=7 and more\n#### 7", "answer": "7"}, "solution", "unbalanced_note"),
]


@pytest.mark.parametrize("bad,field,reason", SYNTH_BAD, ids=[c[2] for c in SYNTH_BAD])
def test_synth_gsm8k_bad_rows(tmp_path, bad, field, reason):
    src = write_jsonl(tmp_path / "synth.jsonl", [SYNTH_GOOD, SYNTH_GOOD, bad])
    with pytest.raises(RowError) as err:
        run("synth_gsm8k", PrepareOptions(source=str(src), out_dir=str(tmp_path / "o"), register=False), quiet=True)
    assert (err.value.row, err.value.field, err.value.reason) == (3, field, reason)


def test_gsm8k_without_final_line_and_parquet_row_numbers(tmp_path):
    import pandas as pd

    rows = [{"question": "a?", "answer": "1 + 1 = <<1+1=2>>2\n#### 2"}] * 3 + [{"question": "b?", "answer": "no final line"}]
    pd.DataFrame(rows).to_parquet(tmp_path / "train.parquet")
    with pytest.raises(RowError, match=r"train.parquet: row 4, field 'answer': has no final '#### N' line"):
        run("gsm8k", PrepareOptions(source=str(tmp_path / "train.parquet"), out_dir=str(tmp_path / "o"), register=False), quiet=True)


def test_bad_trace_row_names_the_traces_file(tmp_path):
    traces = write_jsonl(tmp_path / "traces.jsonl", [
        {"key": "k", "trace": "ok", "correct": True, "reason": "kept"},
        {"key": "k2", "trace": "<think>doppio</think>", "correct": True, "reason": "kept"},
    ])
    with pytest.raises(RowError) as err:
        run("multit_think", PrepareOptions(source=str(SAMPLES_DIR / "multit_quiz.json"), traces=str(traces),
                                           out_dir=str(tmp_path / "o"), register=False), quiet=True)
    assert (err.value.file, err.value.row, err.value.field) == (str(traces), 2, "trace")
    bad_type = write_jsonl(tmp_path / "t2.jsonl", [{"key": "k", "trace": "ok", "correct": "yes", "reason": "kept"}])
    with pytest.raises(RowError, match=r"t2.jsonl: line 1, field 'correct'"):
        run("multit_think", PrepareOptions(source=str(SAMPLES_DIR / "multit_quiz.json"), traces=str(bad_type),
                                           out_dir=str(tmp_path / "o"), register=False), quiet=True)


def test_failed_run_keeps_previous_complete_output(tmp_path):
    out = tmp_path / "data"
    good = write_jsonl(tmp_path / "good.jsonl", [GOOD] * 5)
    run("multit_nothink", PrepareOptions(source=str(good), out_dir=str(out)), quiet=True)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = write_jsonl(tmp_path / "bad.jsonl", [GOOD] * 50 + [{"question": "x"}])
    with pytest.raises(RowError):
        run("multit_nothink", PrepareOptions(source=str(bad), out_dir=str(out)), quiet=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_killed_run_leaves_no_readable_half_file(tmp_path):
    """SIGKILL in the middle of a real `llamafactory-ext prepare` process: NAME.jsonl (the only
    path dataset_info.json names) does not exist; only a hidden temp file is left."""
    big = tmp_path / "big.jsonl"
    row = (json.dumps(SYNTH_GOOD) + "\n").encode()
    with open(big, "wb") as f:
        f.writelines(row.replace(b"How many?", f"How many ({i})?".encode()) for i in range(400_000))
    out = tmp_path / "data"
    from llamafactory_ext.testing import cpu_env

    proc = subprocess.Popen([sys.executable, "-m", "llamafactory_ext.cli", "prepare", "synth_gsm8k", f"source={big}",
                             f"out_dir={out}"], env=cpu_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    tmp_files: list = []
    while time.time() < deadline and proc.poll() is None:
        tmp_files = [p for p in out.glob(".synth_gsm8k.jsonl.tmp-*") if p.stat().st_size > 0] if out.exists() else []
        if tmp_files:
            break
        time.sleep(0.02)
    assert proc.poll() is None and tmp_files, "the run finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "synth_gsm8k.jsonl").exists()
    assert not (out / "synth_gsm8k.manifest.json").exists()
    assert all(p.name.startswith(".") for p in out.iterdir())
    # the next run clears the dead run's temp file and writes complete outputs
    small = write_jsonl(tmp_path / "small.jsonl", [SYNTH_GOOD])
    run("synth_gsm8k", PrepareOptions(source=str(small), out_dir=str(out), register=False), quiet=True)
    assert sorted(p.name for p in out.iterdir()) == ["synth_gsm8k.jsonl", "synth_gsm8k.manifest.json"]


def test_cli_exit_code_message_and_list(tmp_path, ext_cli):
    src = write_jsonl(tmp_path / "quiz.jsonl", [GOOD, {"question": "x?", "choices": ["a", "b"], "answer": "Z"}])
    out = tmp_path / "data"
    proc = run_cmd([*ext_cli, "prepare", "multit_nothink", f"source={src}", f"out_dir={out}"])
    assert proc.returncode == 2, proc.stderr
    assert f"{src}: line 2, field 'answer': 'Z' is not among the options A, B" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_cmd([*ext_cli, "prepare", "multit_nothink", f"source={src}", f"out_dir={out}", "on_error=skip"])
    assert proc.returncode == 0, proc.stderr
    assert "rejected 1 bad rows (answer_not_in_options 1)" in proc.stdout
    assert "wrote 1 to" in proc.stdout
    listing = run_cmd([*ext_cli, "prepare", "--list", f"out_dir={out}"])
    assert listing.returncode == 0, listing.stderr
    lines = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
    assert f"prepared: {out / 'multit_nothink.jsonl'} (1 rows)" in lines["multit_nothink"]
    assert "missing; run: llamafactory-ext prepare synth_gsm8k" in lines["synth_gsm8k"]
    assert "source=PATH/quiz.json traces=PATH/traces.jsonl" in lines["multit_think"]
    unknown = run_cmd([*ext_cli, "prepare", "multit_nothnk"])
    assert unknown.returncode == 2 and "did you mean 'multit_nothink'" in unknown.stderr


def test_nothing_to_write_is_an_error_not_an_empty_file(tmp_path):
    src = write_jsonl(tmp_path / "quiz.jsonl", [{"question": "x?", "choices": ["a", "b"], "answer": "Q"}] * 3)
    out = tmp_path / "data"
    with pytest.raises(Exception, match=r"no rows to write .* rejected \{'answer_not_in_options': 3\}"):
        run("multit_nothink", PrepareOptions(source=str(src), out_dir=str(out), on_error="skip"), quiet=True)
    assert not (out / "multit_nothink.jsonl").exists()
    assert len(read_jsonl(out / "multit_nothink.rejects.jsonl")) == 3
    traces = write_jsonl(tmp_path / "traces.jsonl", [{"key": "other", "trace": "t", "correct": True, "reason": "kept"}])
    with pytest.raises(Exception, match=r"no_trace.*Do the traces come from this source"):
        run("multit_think", PrepareOptions(source=str(SAMPLES_DIR / "multit_quiz.json"), traces=str(traces), out_dir=str(out)), quiet=True)


def test_rejects_keep_rows_with_values_json_cannot_hold(tmp_path):
    import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([
        {"question": "a?", "answer": "1 + 1 = <<1+1=2>>2\n#### 2", "ts": datetime.datetime(2024, 1, 1), "blob": b"\x00\x01"},
        {"question": "", "answer": "x\n#### 1", "ts": datetime.datetime(2024, 1, 2), "blob": b"\xff"},
    ])
    pq.write_table(table, tmp_path / "g.parquet")
    m = run("gsm8k", PrepareOptions(source=str(tmp_path / "g.parquet"), out_dir=str(tmp_path / "o"), on_error="skip"), quiet=True)
    assert m["rows"]["written"] == 1 and m["rejected"] == {"empty": 1}
    rej = read_jsonl(tmp_path / "o" / "gsm8k.rejects.jsonl")
    assert rej[0]["row"] == 2 and rej[0]["field"] == "question" and rej[0]["data"]["blob"] == repr(b"\xff")


def test_several_sources_read_in_turn(tmp_path, ext_cli):
    """Multi-IT-A and Multi-IT-C in one data set: source=[a,b]; errors name the right file."""
    a = tmp_path / "A" / "quiz.json"
    a.parent.mkdir()
    a.write_text(json.dumps([GOOD, GOOD]), encoding="utf-8")
    c = write_jsonl(tmp_path / "C.jsonl", [GOOD, GOOD, GOOD])
    out = tmp_path / "data"
    proc = run_cmd([*ext_cli, "prepare", "multit_nothink", f"source=[{a},{c}]", f"out_dir={out}"])
    assert proc.returncode == 0, proc.stderr
    m = json.loads((out / "multit_nothink.manifest.json").read_text())
    assert m["rows"]["written"] == 5 and m["source"]["kind"] == "multiple"
    assert [p["source"] for p in m["source"]["parts"]] == [str(a), str(c)]
    m = run("multit_nothink", PrepareOptions(source=[str(a), str(c)], out_dir=str(out), limit=3), quiet=True)
    assert m["rows"]["read"] == 3
    bad = write_jsonl(tmp_path / "C_bad.jsonl", [GOOD, {"question": "x?", "choices": ["a"], "answer": "A"}])
    with pytest.raises(RowError, match=r"C_bad.jsonl: line 2, field 'choices'"):
        run("multit_nothink", PrepareOptions(source=[str(a), str(bad)], out_dir=str(out)), quiet=True)
