"""``llamafactory-ext prepare`` as a command: where the data set is registered, which keys each
data set accepts, and one-line errors with exit status 2 for keys it does not have or values
out of range."""

from __future__ import annotations

import json
import subprocess

import pytest

from llamafactory_ext import cli
from llamafactory_ext.data import REGISTRY, get_spec
from llamafactory_ext.data.prepare import options_class, run
from llamafactory_ext.data.samples import SAMPLES_DIR
from tests.helpers import EXT, one_line_error, output_tail, run_cmd

QUIZ = str(SAMPLES_DIR / "multit_quiz.json")
TRACES = str(SAMPLES_DIR / "multit_traces.jsonl")
WIKI = str(SAMPLES_DIR / "wikipedia_it.jsonl")


def opts(name: str, **values):
    return options_class(get_spec(name))(**values)


def prepare(capsys, *args: str) -> subprocess.CompletedProcess:
    """``llamafactory-ext prepare ARGS`` in this process (fast), as a CompletedProcess."""
    rc = cli.main(["prepare", *args])
    out = capsys.readouterr()
    return subprocess.CompletedProcess(["prepare", *args], rc, out.out, out.err)


def files_under(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ---------------------------------------------------------------------------------------------
# registration
# ---------------------------------------------------------------------------------------------
def test_prepare_registers_in_the_working_folders_dataset_info(tmp_path):
    """The data-folder convention: `prepare NAME` writes data/NAME.jsonl and registers it in
    ./dataset_info.json (file_name data/NAME.jsonl), created when absent; `out_dir=` moves the data
    files only, the entry still lands in ./dataset_info.json, relative to its folder."""
    proc = run_cmd([*EXT, "prepare", "multit_nothink", f"source={QUIZ}", "val_size=0.1"], cwd=tmp_path)
    assert proc.returncode == 0, output_tail(proc)
    assert files_under(tmp_path) == ["data", "data/multit_nothink.jsonl", "data/multit_nothink.manifest.json",
                                     "data/multit_nothink_val.jsonl", "dataset_info.json"]
    spec = get_spec("multit_nothink")
    info = json.loads((tmp_path / "dataset_info.json").read_text(encoding="utf-8"))
    assert info == {"multit_nothink": spec.dataset_info_entry("data/multit_nothink.jsonl"),
                    "multit_nothink_val": spec.dataset_info_entry("data/multit_nothink_val.jsonl")}
    assert "added multit_nothink, multit_nothink_val to dataset_info.json" in proc.stdout

    proc = run_cmd([*EXT, "prepare", "wikipedia_it", f"source={WIKI}", "out_dir=some/dir/x"], cwd=tmp_path)
    assert proc.returncode == 0, output_tail(proc)
    assert not list((tmp_path / "some").rglob("dataset_info.json"))
    info = json.loads((tmp_path / "dataset_info.json").read_text(encoding="utf-8"))
    assert list(info) == ["multit_nothink", "multit_nothink_val", "wikipedia_it"]
    assert info["wikipedia_it"] == {"file_name": "some/dir/x/wikipedia_it.jsonl", "columns": {"prompt": "text"}}


def test_registration_adds_entries_and_keeps_the_others(tmp_path, capsys):
    out = tmp_path / "data"
    out.mkdir()
    (out / "dataset_info.json").write_text(json.dumps({"mine": {"file_name": "mine.jsonl"},
                                                       "gsm8k": {"file_name": "elsewhere/gsm8k.jsonl"}}), encoding="utf-8")
    here = str(out / "dataset_info.json")
    run("multit_nothink", opts("multit_nothink", source=QUIZ, out_dir=str(out), dataset_info=here), quiet=True)
    run("wikipedia_it", opts("wikipedia_it", source=WIKI, out_dir=str(out), dataset_info=here), quiet=True)
    info = json.loads((out / "dataset_info.json").read_text(encoding="utf-8"))
    assert list(info) == ["mine", "gsm8k", "multit_nothink", "wikipedia_it"]
    assert info["wikipedia_it"] == {"file_name": "wikipedia_it.jsonl", "columns": {"prompt": "text"}}
    before = (out / "dataset_info.json").read_bytes()
    run("multit_nothink", opts("multit_nothink", source=QUIZ, out_dir=str(out), dataset_info=here), quiet=True)  # untouched
    assert (out / "dataset_info.json").read_bytes() == before
    capsys.readouterr()
    run("gsm8k", opts("gsm8k", source=str(SAMPLES_DIR / "gsm8k_shaped.jsonl"), out_dir=str(out), dataset_info=here), quiet=True)
    assert "entry 'gsm8k' points at 'elsewhere/gsm8k.jsonl'" in capsys.readouterr().err  # told, not overwritten
    assert json.loads((out / "dataset_info.json").read_text())["gsm8k"] == {"file_name": "elsewhere/gsm8k.jsonl"}


def test_dataset_info_path_registers_there_relative_to_its_folder(tmp_path):
    ds = tmp_path / "ds"
    info_path = ds / "dataset_info.json"
    run("multit_think", opts("multit_think", source=QUIZ, traces=TRACES, out_dir=str(ds / "data" / "v2"), dataset_info=str(info_path),
                             val_size=0.2), quiet=True)
    info = json.loads(info_path.read_text(encoding="utf-8"))
    assert {k: v["file_name"] for k, v in info.items()} == {"multit_think": "data/v2/multit_think.jsonl",
                                                            "multit_think_val": "data/v2/multit_think_val.jsonl"}
    assert not (ds / "data" / "v2" / "dataset_info.json").exists() and not (ds / "data" / "dataset_info.json").exists()
    # an out_dir outside PATH's folder: an absolute file name (LLaMA-Factory joins it unchanged)
    elsewhere = tmp_path / "elsewhere"
    run("multit_nothink", opts("multit_nothink", source=QUIZ, out_dir=str(elsewhere), dataset_info=str(info_path)), quiet=True)
    entry = json.loads(info_path.read_text(encoding="utf-8"))["multit_nothink"]["file_name"]
    assert entry == str((elsewhere / "multit_nothink.jsonl").resolve())
    assert not (elsewhere / "dataset_info.json").exists()


def test_register_false_writes_no_dataset_info(tmp_path, capsys):
    out = tmp_path / "a" / "b"
    proc = prepare(capsys, "multit_nothink", f"source={QUIZ}", f"out_dir={out}", "register=false", "val_size=0.1")
    assert proc.returncode == 0, output_tail(proc)
    assert not [p for p in tmp_path.rglob("dataset_info.json")]
    assert sorted(p.name for p in out.iterdir()) == ["multit_nothink.jsonl", "multit_nothink.manifest.json", "multit_nothink_val.jsonl"]
    assert "added" not in proc.stdout


def test_a_broken_dataset_info_is_named(tmp_path, capsys):
    out = tmp_path / "data"
    out.mkdir()
    (out / "dataset_info.json").write_text("{not json", encoding="utf-8")
    proc = prepare(capsys, "multit_nothink", f"source={QUIZ}", f"out_dir={out}", f"dataset_info={out / 'dataset_info.json'}")
    line = one_line_error(proc)
    assert str(out / "dataset_info.json") in line and "register=false" in line
    assert (out / "dataset_info.json").read_text(encoding="utf-8") == "{not json"


# ---------------------------------------------------------------------------------------------
# keys: each data set its own, checked before anything is read
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,key,hint", [
    (["multit_nothink", f"source={QUIZ}", "traces=x.jsonl"], "traces", None),
    (["multit_nothink", f"source={QUIZ}", "mix=all"], "mix", None),
    (["multit_think", f"source={QUIZ}", "min_chars=10"], "min_chars", None),
    (["gsm8k", "traces=x.jsonl"], "traces", None),
    (["gsm8k", "max_rows=5"], "max_rows", None),
    (["wikipedia_it", "dedup=false"], "dedup", None),
    (["multit_nothink", f"source={QUIZ}", "dedupp=false"], "dedupp", "dedup"),
    (["multit_mixed", f"source={QUIZ}", f"traces={TRACES}", "nothink_fractoin=0.5"], "nothink_fractoin", "nothink_fraction"),
    (["wikipedia_it", "min_char=10"], "min_char", "min_chars"),
    (["synth_gsm8k", "val_sise=0.1"], "val_sise", "val_size"),
])
def test_unknown_key_exits_2_naming_it(capsys, tmp_path, args, key, hint):
    line = one_line_error(prepare(capsys, *args, f"out_dir={tmp_path / 'o'}"))
    assert f"unknown key {key!r}" in line
    if hint:
        assert f"did you mean {hint!r}" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args,message", [
    (["wikipedia_it", "min_chars=-1"], "min_chars must be >= 0, got -1"),
    (["wikipedia_it", "max_rows=0"], "max_rows must be >= 1, got 0"),
    (["multit_nothink", f"source={QUIZ}", "val_size=0.7"], "val_size must be < 0.5, got 0.7"),
    (["multit_nothink", f"source={QUIZ}", "val_size=-0.1"], "val_size must be >= 0.0, got -0.1"),
    (["multit_nothink", f"source={QUIZ}", "limit=0"], "limit must be >= 1, got 0"),
    (["multit_mixed", f"source={QUIZ}", f"traces={TRACES}", "nothink_fraction=1.5"], "nothink_fraction must be <= 1.0, got 1.5"),
    (["multit_mixed", f"source={QUIZ}", f"traces={TRACES}", "mix=some"], "mix must be one of 'rest', 'all', got 'some'"),
    (["multit_nothink", f"source={QUIZ}", "on_error=ignore"], "on_error must be one of 'fail', 'skip', got 'ignore'"),
    (["gsm8k", "dedup=maybe"], "dedup must be true or false, got 'maybe'"),
    (["wikipedia_it", "val_size=0.1"], "val_size splits SFT data; wikipedia_it is stage: pt data"),
])
def test_out_of_range_value_exits_2_naming_the_key(capsys, tmp_path, args, message):
    line = one_line_error(prepare(capsys, *args, f"out_dir={tmp_path / 'o'}"))
    assert message in line
    assert not (tmp_path / "o").exists()


def test_out_of_range_through_a_real_process(tmp_path):
    """The same check end to end (exit status and stderr of the real command)."""
    proc = run_cmd([*EXT, "prepare", "multit_nothink", f"source={QUIZ}", "traces=x.jsonl", f"out_dir={tmp_path}"])
    assert "unknown key 'traces'" in one_line_error(proc)


def test_help_lists_each_data_set_and_its_own_keys(capsys):
    proc = prepare(capsys, "multit_mixed", "--help")
    assert proc.returncode == 0
    for key in ("traces", "mix", "nothink_fraction", "dedup", "val_size", "dataset_info", "register"):
        assert f"  {key} " in proc.stdout, key
    assert "  min_chars " not in proc.stdout
    rc = cli.main(["prepare", "--help"])
    text = capsys.readouterr().out
    assert rc == 0
    for name in REGISTRY:  # every registered data set, also ones added later
        assert f"  {name} " in text, name


def test_shared_keys_are_the_same_for_every_data_set(capsys, tmp_path):
    """A shared key with a bad value is refused for every registered data set, naming the key."""
    for name in REGISTRY:
        line = one_line_error(prepare(capsys, name, "limit=0", f"out_dir={tmp_path / name}"))
        assert "limit must be >= 1, got 0" in line, name
        line = one_line_error(prepare(capsys, name, "no_such_key=1", f"out_dir={tmp_path / name}"))
        assert "unknown key 'no_such_key'" in line, name
    assert not list(tmp_path.iterdir())
