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

from llamafactory_ext.data import get_spec
from llamafactory_ext.data.fields import RowError
from llamafactory_ext.data.prepare import options_class, run
from llamafactory_ext.data.samples import SAMPLES_DIR
from tests.helpers import one_line_error, output_tail, read_jsonl, run_cmd, write_jsonl


def opts(name: str, **values):
    """Options of data set ``name`` (shared keys + its own), as ``prepare NAME key=value`` builds them."""
    return options_class(get_spec(name))(**values)


def quiz_row(i: int) -> dict:
    """A good Mult-IT row; a different question for each ``i`` (repeated questions are dropped)."""
    return {"question": f"Domanda numero {i}: qual è la capitale d'Italia?", "choices": ["Roma", "Milano", "Napoli"], "answer": "A"}


GOOD = {"question": "Qual è la capitale d'Italia?", "choices": ["Roma", "Milano", "Napoli"], "answer": "A"}

# (line content, field, reason): each becomes line 2 of a small Mult-IT JSONL file
MULTIT_BAD = [
    ({"question": "Senza risposta?", "choices": ["a", "b"]}, "answer", "missing_field"),
    ({"choices": ["a", "b"], "answer": 0}, "question", "missing_field"),
    ({"question": "Fuori?", "choices": ["a", "b", "c"], "answer": "F"}, "answer", "answer_not_in_options"),
    ({"question": "Indice?", "choices": ["a", "b"], "answer": 2}, "answer", "answer_not_in_options"),
    ({"question": "Indice?", "choices": ["a", "b"], "answer": "5"}, "answer", "answer_not_in_options"),
    ({"question": "Apice?", "choices": ["a", "b"], "answer": "²"}, "answer", "answer_not_in_options"),  # a digit int() cannot read
    (b'{"question": "rotta \\ud800?", "choices": ["a", "b"], "answer": "A"}\n', "question", "lone_surrogate"),
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
        run("multit_nothink", opts("multit_nothink", source=str(src), out_dir=str(tmp_path / "out"), register=False), quiet=True)
    e = err.value
    assert (e.file, e.row, e.field, e.reason) == (str(src), 2, field, reason)
    assert str(src) in str(e) and "line 2" in str(e)
    if field:
        assert f"field '{field}'" in str(e)
    assert not (tmp_path / "out" / "multit_nothink.jsonl").exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == []  # no temp files left behind


def test_skip_writes_every_bad_row_to_rejects_with_counts(tmp_path):
    lines = [quiz_row(0)]
    for i, (bad, _, _) in enumerate(MULTIT_BAD, 1):
        lines += [bad, quiz_row(i)]
    src = write_jsonl(tmp_path / "quiz.jsonl", lines)
    out = tmp_path / "out"
    m = run("multit_nothink", opts("multit_nothink", source=str(src), out_dir=str(out), on_error="skip", register=False), quiet=True)
    assert m["rows"]["read"] == len(lines)
    assert m["rows"]["written"] == len(MULTIT_BAD) + 1 == len(read_jsonl(out / "multit_nothink.jsonl"))
    assert m["rows"]["rejected"] == len(MULTIT_BAD) and m["dropped"] == {}
    assert m["rejected_by_file"] == {str(src): len(MULTIT_BAD)}
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
        run("synth_gsm8k", opts("synth_gsm8k", source=str(src), out_dir=str(tmp_path / "o"), register=False), quiet=True)
    assert (err.value.row, err.value.field, err.value.reason) == (3, field, reason)


def test_gsm8k_without_final_line_and_parquet_row_numbers(tmp_path):
    import pandas as pd

    rows = [{"question": "a?", "answer": "1 + 1 = <<1+1=2>>2\n#### 2"}] * 3 + [{"question": "b?", "answer": "no final line"}]
    pd.DataFrame(rows).to_parquet(tmp_path / "train.parquet")
    with pytest.raises(RowError, match=r"train.parquet: row 4, field 'answer': has no final '#### N' line"):
        run("gsm8k", opts("gsm8k", source=str(tmp_path / "train.parquet"), out_dir=str(tmp_path / "o"), register=False), quiet=True)


def test_failed_run_keeps_previous_complete_output(tmp_path):
    out = tmp_path / "data"
    good = write_jsonl(tmp_path / "good.jsonl", [quiz_row(i) for i in range(5)])
    run("multit_nothink", opts("multit_nothink", source=str(good), out_dir=str(out)), quiet=True)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["dataset_info.json", "multit_nothink.jsonl", "multit_nothink.manifest.json"]
    bad = write_jsonl(tmp_path / "bad.jsonl", [quiz_row(i) for i in range(50)] + [{"question": "x"}])
    with pytest.raises(RowError):
        run("multit_nothink", opts("multit_nothink", source=str(bad), out_dir=str(out)), quiet=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_killed_run_leaves_no_readable_half_file(tmp_path):
    """SIGKILL in the middle of a real `llamafactory-ext prepare` process: NAME.jsonl (the only
    path dataset_info.json names) does not exist; only a hidden temp file is left."""
    big = tmp_path / "big.jsonl"
    row = (json.dumps(SYNTH_GOOD) + "\n").encode()
    with open(big, "wb") as f:
        f.writelines(row.replace(b"How many?", f"How many ({i})?".encode()) for i in range(400_000))
    out = tmp_path / "data"
    from llamafactory_ext.runtime import cpu_env

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
    run("synth_gsm8k", opts("synth_gsm8k", source=str(small), out_dir=str(out), register=False), quiet=True)
    assert sorted(p.name for p in out.iterdir()) == ["synth_gsm8k.jsonl", "synth_gsm8k.manifest.json"]


def test_cli_exit_code_message_and_list(tmp_path, ext_cli):
    src = write_jsonl(tmp_path / "quiz.jsonl", [GOOD, {"question": "x?", "choices": ["a", "b"], "answer": "Z"}])
    out = tmp_path / "data"
    proc = run_cmd([*ext_cli, "prepare", "multit_nothink", f"source={src}", f"out_dir={out}"])
    assert f"{src}: line 2, field 'answer': 'Z' is not among the options A, B" in one_line_error(proc)
    assert not out.exists() or not list(out.iterdir())
    proc = run_cmd([*ext_cli, "prepare", "multit_nothink", f"source={src}", f"out_dir={out}", "on_error=skip"])
    assert proc.returncode == 0, proc.stderr
    assert f"rejected 1 bad rows (answer_not_in_options 1; by file: quiz.jsonl 1): {out / 'multit_nothink.rejects.jsonl'}" in proc.stdout
    assert "wrote 1 to" in proc.stdout
    listing = run_cmd([*ext_cli, "prepare", "--list", f"out_dir={out}"])
    assert listing.returncode == 0, listing.stderr
    lines = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
    assert f"prepared: {out / 'multit_nothink.jsonl'} (1 rows)" in lines["multit_nothink"]
    assert "missing; run: llamafactory-ext prepare synth_gsm8k" in lines["synth_gsm8k"]
    assert "missing; run: llamafactory-ext prepare multit_think source=PATH traces=PATH" in lines["multit_think"]
    assert "did you mean 'multit_nothink'" in one_line_error(run_cmd([*ext_cli, "prepare", "multit_nothnk"]))


def test_nothing_to_write_is_an_error_not_an_empty_file(tmp_path):
    src = write_jsonl(tmp_path / "quiz.jsonl", [{"question": "x?", "choices": ["a", "b"], "answer": "Q"}] * 3)
    out = tmp_path / "data"
    with pytest.raises(Exception, match=r"no rows to write .* rejected \{'answer_not_in_options': 3\}"):
        run("multit_nothink", opts("multit_nothink", source=str(src), out_dir=str(out), on_error="skip"), quiet=True)
    assert not (out / "multit_nothink.jsonl").exists()
    assert len(read_jsonl(out / "multit_nothink.rejects.jsonl")) == 3
    traces = write_jsonl(tmp_path / "traces.jsonl", [{"key": "other", "trace": "t", "correct": True, "reason": "kept"}])
    with pytest.raises(Exception, match=r"no_trace.*Do the traces come from this source"):
        run("multit_think", opts("multit_think", source=str(SAMPLES_DIR / "multit_quiz.json"), traces=str(traces), out_dir=str(out)), quiet=True)


def test_rejects_keep_rows_with_values_json_cannot_hold(tmp_path):
    import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([
        {"question": "a?", "answer": "1 + 1 = <<1+1=2>>2\n#### 2", "ts": datetime.datetime(2024, 1, 1), "blob": b"\x00\x01"},
        {"question": "", "answer": "x\n#### 1", "ts": datetime.datetime(2024, 1, 2), "blob": b"\xff"},
    ])
    pq.write_table(table, tmp_path / "g.parquet")
    m = run("gsm8k", opts("gsm8k", source=str(tmp_path / "g.parquet"), out_dir=str(tmp_path / "o"), on_error="skip"), quiet=True)
    assert m["rows"]["written"] == 1 and m["rejected"] == {"empty": 1}
    rej = read_jsonl(tmp_path / "o" / "gsm8k.rejects.jsonl")
    assert rej[0]["row"] == 2 and rej[0]["field"] == "question" and rej[0]["data"]["blob"] == repr(b"\xff")


def test_several_sources_read_in_turn(tmp_path, ext_cli):
    """Multi-IT-A and Multi-IT-C in one data set: source=[a,b]; errors name the right file."""
    a = tmp_path / "A" / "quiz.json"
    a.parent.mkdir()
    a.write_text(json.dumps([quiz_row(0), quiz_row(1)]), encoding="utf-8")
    c = write_jsonl(tmp_path / "C.jsonl", [quiz_row(2), quiz_row(3), quiz_row(1)])  # quiz_row(1): also in A
    out = tmp_path / "data"
    proc = run_cmd([*ext_cli, "prepare", "multit_nothink", f"source=[{a},{c}]", f"out_dir={out}"])
    assert proc.returncode == 0, output_tail(proc)
    m = json.loads((out / "multit_nothink.manifest.json").read_text())
    assert m["rows"]["read"] == 5 and m["rows"]["written"] == 4 and m["dropped"] == {"duplicate_question": 1}
    assert m["source"]["kind"] == "multiple" and [p["source"] for p in m["source"]["parts"]] == [str(a), str(c)]
    rows = read_jsonl(out / "multit_nothink.jsonl")
    assert [r["messages"][1]["content"].split("\n")[2] for r in rows] == [quiz_row(i)["question"] for i in range(4)]
    m = run("multit_nothink", opts("multit_nothink", source=[str(a), str(c)], out_dir=str(out), limit=3), quiet=True)
    assert m["rows"]["read"] == 3 and m["rows"]["written"] == 3
    bad = write_jsonl(tmp_path / "C_bad.jsonl", [quiz_row(5), {"question": "x?", "choices": ["a"], "answer": "A"}])
    with pytest.raises(RowError, match=r"C_bad.jsonl: line 2, field 'choices'"):
        run("multit_nothink", opts("multit_nothink", source=[str(a), str(bad)], out_dir=str(out)), quiet=True)


def test_a_lone_surrogate_in_a_json_array_is_one_line_naming_file_row_and_field(tmp_path, ext_cli):
    src = tmp_path / "quiz.json"
    src.write_text('[{"question": "Buona?", "choices": ["a", "b"], "answer": "A"},\n'
                   ' {"question": "Rotta?", "choices": ["a", "\\ud800b"], "answer": "A"}]', encoding="utf-8")
    with pytest.raises(RowError) as err:
        run("multit_nothink", opts("multit_nothink", source=str(src), out_dir=str(tmp_path / "o"), register=False), quiet=True)
    assert (err.value.row, err.value.field, err.value.reason) == (2, "choices", "lone_surrogate")
    assert "lone surrogate \\ud800 at choices[1]" in str(err.value)
    m = run("multit_nothink", opts("multit_nothink", source=str(src), out_dir=str(tmp_path / "o"), on_error="skip", register=False),
            quiet=True)
    assert m["rows"]["written"] == 1 and m["rejected"] == {"lone_surrogate": 1}
    assert read_jsonl(tmp_path / "o" / "multit_nothink.rejects.jsonl")[0]["data"] == json.dumps(
        {"question": "Rotta?", "choices": ["a", "\ud800b"], "answer": "A"})
    csv_src = tmp_path / "quiz.csv"
    csv_src.write_text('question,choices,answer\nRotta?,"[""a"", ""\\udc00""]",A\n', encoding="utf-8")
    with pytest.raises(RowError, match=r"quiz.csv: row 1, field 'choices': holds a lone surrogate \\udc00"):
        run("multit_nothink", opts("multit_nothink", source=str(csv_src), out_dir=str(tmp_path / "o"), register=False), quiet=True)
    line = one_line_error(run_cmd([*ext_cli, "prepare", "multit_nothink", f"source={src}", f"out_dir={tmp_path / 'o2'}"]))
    assert f"{src}: row 2, field 'choices': holds a lone surrogate" in line
