"""``prepare`` records the content identity of every file it read (sources, each shard, traces), so
``prepared_with`` tells a later run whether the prepared data set is still current; two ``prepare``
runs into one folder keep every ``dataset_info.json`` entry; a string entry is one line."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import shutil

import pytest

from llamafactory_ext import cli
from llamafactory_ext.data import get_spec
from llamafactory_ext.data.prepare import options_class, output_paths, prepared_with, register, run
from llamafactory_ext.data.samples import SAMPLES_DIR
from llamafactory_ext.io import FolderLock, OutputError

QUIZ = SAMPLES_DIR / "multit_quiz.json"
TRACES = SAMPLES_DIR / "multit_traces.jsonl"


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def mixed(tmp_path):
    """multit_mixed prepared from copies of the samples (a source and a traces file)."""
    src, traces = tmp_path / "quiz.json", tmp_path / "traces.jsonl"
    shutil.copy(QUIZ, src)
    traces.write_text("".join(TRACES.read_text(encoding="utf-8").splitlines(keepends=True)[:4]), encoding="utf-8")
    values = {"source": str(src), "traces": str(traces), "out_dir": str(tmp_path / "data")}
    manifest = run("multit_mixed", options_class(get_spec("multit_mixed"))(**values), quiet=True)
    return {"values": values, "manifest": manifest, "path": output_paths("multit_mixed", tmp_path / "data")["manifest"],
            "src": src, "traces": traces}


def test_the_manifest_records_each_input_by_content(mixed):
    inputs = mixed["manifest"]["inputs"]
    assert set(inputs) == {f"source {mixed['src']}", f"traces {mixed['traces']}"}
    assert inputs[f"source {mixed['src']}"]["digest"] == _sha(mixed["src"])
    assert inputs[f"traces {mixed['traces']}"]["digest"] == _sha(mixed["traces"])
    assert prepared_with(mixed["path"], mixed["values"]) == []  # current: a study may skip it


def test_a_grown_traces_file_is_named(mixed):
    before = _sha(mixed["traces"])
    mixed["traces"].write_text(TRACES.read_text(encoding="utf-8"), encoding="utf-8")  # 4 -> all traces, same path
    assert prepared_with(mixed["path"], mixed["values"]) == [
        f"traces {mixed['traces']}: content changed (sha {before[:6]}… -> {_sha(mixed['traces'])[:6]}…)"]


def test_a_replaced_source_an_option_and_an_edited_output_are_named(mixed, tmp_path):
    rows = json.loads(mixed["src"].read_text(encoding="utf-8"))
    mixed["src"].write_text(json.dumps(rows[:-1], ensure_ascii=False), encoding="utf-8")
    lines = prepared_with(mixed["path"], {**mixed["values"], "mix": "all"})
    assert lines[0] == "option mix: 'rest' -> 'all'"
    assert lines[1].startswith(f"source {mixed['src']}: content changed (sha ")
    out = tmp_path / "data" / "multit_mixed.jsonl"
    out.write_text(out.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert prepared_with(mixed["path"], mixed["values"])[-1] == f"{out}: changed since it was prepared"
    out.unlink()
    assert prepared_with(mixed["path"], mixed["values"])[-1] == f"{out}: missing since it was prepared"
    assert prepared_with(tmp_path / "none.manifest.json", mixed["values"]) == [f"{tmp_path / 'none.manifest.json'}: not prepared yet"]


def test_each_shard_of_a_source_folder_is_an_input(tmp_path):
    shards = tmp_path / "quiz"
    shards.mkdir()
    rows = json.loads(QUIZ.read_text(encoding="utf-8"))
    for i in range(2):
        (shards / f"part-{i}.json").write_text(json.dumps(rows[i * 20:(i + 1) * 20], ensure_ascii=False), encoding="utf-8")
    values = {"source": str(shards), "out_dir": str(tmp_path / "data"), "register": False}
    m = run("multit_nothink", options_class(get_spec("multit_nothink"))(**values), quiet=True)
    assert set(m["inputs"]) == {f"source {shards / 'part-0.json'}", f"source {shards / 'part-1.json'}"}
    (shards / "part-2.json").write_text(json.dumps(rows[40:], ensure_ascii=False), encoding="utf-8")  # a new shard
    assert prepared_with(output_paths("multit_nothink", tmp_path / "data")["manifest"], values) == [
        f"source {shards / 'part-2.json'}: a new input"]


def _register_one(args) -> None:
    folder, i, barrier = args
    spec = dataclasses.replace(get_spec("multit_nothink"), name=f"set{i}")
    barrier.wait()
    register(spec, output_paths(f"set{i}", folder), False, None)


def test_concurrent_registrations_keep_every_entry(tmp_path):
    ctx = multiprocessing.get_context("fork")
    for attempt in range(6):
        folder = tmp_path / f"try{attempt}"
        folder.mkdir()
        barrier = ctx.Barrier(6)
        procs = [ctx.Process(target=_register_one, args=((folder, i, barrier),)) for i in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0] * 6
        assert sorted(json.loads((folder / "dataset_info.json").read_text())) == [f"set{i}" for i in range(6)]
        assert sorted(p.name for p in folder.iterdir()) == ["dataset_info.json"]  # no lock file left behind


def test_a_string_entry_in_dataset_info_is_one_line(tmp_path, capsys):
    out = tmp_path / "data"
    out.mkdir()
    (out / "dataset_info.json").write_text(json.dumps({"multit_nothink": "data/multit_nothink.jsonl"}), encoding="utf-8")
    assert cli.main(["prepare", "multit_nothink", f"source={QUIZ}", f"out_dir={out}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [(f"llamafactory-ext prepare: error: {out / 'dataset_info.json'}: entry 'multit_nothink' is str "
                    "'data/multit_nothink.jsonl', not a mapping (file_name, formatting, columns...); fix or remove it, "
                    "or pass register=false")]


def test_one_prepare_of_a_name_at_a_time_per_out_dir(tmp_path):
    out = tmp_path / "data"
    options = options_class(get_spec("multit_nothink"))(source=str(QUIZ), out_dir=str(out))
    with FolderLock(out, name=".multit_nothink.prepare.lock"), pytest.raises(OutputError, match=r"out_dir .*data \(prepare multit_nothink\) is in use by pid"):
        run("multit_nothink", options, quiet=True)
    run("multit_nothink", options, quiet=True)  # released: it runs
    other = options_class(get_spec("multit_think"))(source=str(QUIZ), traces=str(TRACES), out_dir=str(out))
    with FolderLock(out, name=".multit_nothink.prepare.lock"):
        run("multit_think", other, quiet=True)  # another data set into the same folder is not held up
