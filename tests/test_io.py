"""io.py on its own: the one place for atomic writes, resumable JSONL, folder locks and setting
files aside (the commands' own tests exercise it through eval, distill, sweep and the demo)."""

from __future__ import annotations

import json

import pytest

from llamafactory_ext.io import (
    FolderLock,
    OutputError,
    ResumableJsonl,
    ResumeError,
    atomic_build_dir,
    atomic_write_json,
    set_aside,
)


def test_atomic_write_leaves_no_temp_file_and_replaces_whole(tmp_path):
    target = tmp_path / "sub" / "r.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]


def test_a_folder_is_published_whole_or_not_at_all(tmp_path):
    target = tmp_path / "tok"

    def broken(tmp):
        (tmp / "half.json").write_text("{")
        raise RuntimeError("killed half way")

    with pytest.raises(RuntimeError):
        atomic_build_dir(target, broken)
    assert list(tmp_path.iterdir()) == []  # no folder, no temp folder

    atomic_build_dir(target, lambda tmp: (tmp / "a.json").write_text("first"))
    atomic_build_dir(target, lambda tmp: (tmp / "a.json").write_text("second"))  # lost the race
    assert (target / "a.json").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["tok"]


def test_set_aside_keeps_what_was_set_aside_before_unless_told_to_replace(tmp_path):
    for text in ("one", "two"):
        (tmp_path / "checkpoint-2").write_text(text)
        set_aside(tmp_path / "checkpoint-2", "torn-checkpoint-2")
    assert (tmp_path / "torn-checkpoint-2").read_text() == "one"
    assert (tmp_path / "torn-checkpoint-2.1").read_text() == "two"
    for text in ("old", "new"):
        (tmp_path / "train.log").write_text(text)
        set_aside(tmp_path / "train.log", "train.prev.log", replace=True)
    assert (tmp_path / "train.prev.log").read_text() == "new"
    assert not (tmp_path / "train.log").exists()


def test_resumable_jsonl_cuts_a_torn_line_and_refuses_other_settings(tmp_path):
    path = tmp_path / "predictions.jsonl"
    with ResumableJsonl(path, {"dtype": "float32"}) as out:
        assert out.open() == []
        out.append({"id": 1})
        out.append({"id": 2})
    with open(path, "ab") as fh:
        fh.write(b'{"id": 3, "out')  # a killed write
    with ResumableJsonl(path, {"dtype": "float32"}) as out:
        assert [r["id"] for r in out.open()] == [1, 2] and out.repaired == 1
        out.append({"id": 3})
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == [1, 2, 3]

    with pytest.raises(ResumeError, match=r"dtype: 'float32' -> 'bfloat16'.*overwrite=true"):
        ResumableJsonl(path, {"dtype": "bfloat16"}).open()
    with ResumableJsonl(path, {"dtype": "bfloat16"}, overwrite=True) as out:
        assert out.open() == []


def test_a_second_run_into_a_locked_folder_fails_at_once(tmp_path):
    with FolderLock(tmp_path / "out"), pytest.raises(OutputError, match=r"output_dir .*out is in use by pid \d+"):
        FolderLock(tmp_path / "out").__enter__()
    with FolderLock(tmp_path / "out"):  # released
        pass


def test_old_outputs_are_discarded_before_the_new_settings_are_recorded(tmp_path):
    from llamafactory_ext.io import check_settings

    record = tmp_path / "run.settings.json"
    assert check_settings(record, {"lr": 1}, has_outputs=False) == "new"
    seen = []
    status = check_settings(record, {"lr": 2}, overwrite=True,
                            discard=lambda: seen.append(json.loads(record.read_text())))  # a crash here keeps lr 1
    assert status == "overwrite" and seen == [{"lr": 1}] and json.loads(record.read_text()) == {"lr": 2}
    assert check_settings(record, {"lr": 2}, discard=lambda: seen.append("again")) == "same" and len(seen) == 1


def test_settings_diff_names_the_leaf_keys_that_changed():
    from llamafactory_ext.io import settings_diff

    old = {"engine": {"device": "cpu", "dtype": "float32", "batch": 8}, "train": ["a=1", "lr=1", "x"], "extra": ["p", "q"],
           "gone": None, "seed": 1}
    new = {"engine": {"device": "cuda", "dtype": "float32"}, "train": ["a=1", "lr=2", "x"], "extra": ["p", "r", "s"],
           "seed": 1, "added": 3}
    assert settings_diff(old, new) == [
        "added: (unset) -> 3",
        "engine.batch: 8 -> (unset)",
        "engine.device: 'cpu' -> 'cuda'",
        "extra: removed 'q', added 'r', added 's'",
        "train[1]: 'lr=1' -> 'lr=2'",
    ]  # "gone": None and a missing key are the same setting (records written before a key existed)
    long = "/tmp/" + "x" * 200
    (line,) = settings_diff({"source": long + "/a.jsonl"}, {"source": long + "/b.jsonl"})
    before, after = line.removeprefix("source: ").split(" -> ")
    assert before.startswith("'/tmp/xx") and "…" in before and len(line) < 220
    assert before.endswith("/a.jsonl'") and after.endswith("/b.jsonl'")  # long values keep their ends


def test_settings_diff_renders_a_content_identity_as_a_content_change():
    from llamafactory_ext.io import settings_diff

    a = {"kind": "model", "path": "saves/x", "digest": "3f2a9c" + "0" * 58,
         "files": {"config.json": {"kind": "file", "size": 10, "digest": "c1"}, "model.safetensors": {"kind": "weights", "size": 5, "header": "h1", "digest": "w1"}}}
    b = {**a, "digest": "9b41e0" + "1" * 58,
         "files": {"config.json": {"kind": "file", "size": 12, "digest": "c2"}, "model.safetensors": {"kind": "weights", "size": 5, "header": "h2", "digest": "w2"},
                   "tokenizer.json": {"kind": "file", "size": 1, "digest": "t"}}}
    assert settings_diff({"model": a}, {"model": b}) == [
        ("model: content changed (sha 3f2a9c… -> 9b41e0…; config.json size 10 -> 12; model.safetensors header changed; "
         "tokenizer.json added)")]
    assert settings_diff({"model": a}, {"model": {**a, "path": "elsewhere/x"}}) == []  # moved, same bytes
    assert settings_diff({"source_sha256": "ab12cd34"}, {"source_sha256": "ef56ab78"}) == [
        "source_sha256: content changed (sha ab12cd… -> ef56ab…)"]


def test_a_waiting_lock_gets_the_folder_once_the_holder_lets_go(tmp_path):
    import threading

    got = []
    holder = FolderLock(tmp_path, name=".info.lock").__enter__()

    def second() -> None:
        with FolderLock(tmp_path, name=".info.lock", wait=60):
            got.append(True)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(0.3)
    assert got == [] and thread.is_alive()  # still waiting while held
    holder.__exit__(None, None, None)
    thread.join(60)
    assert got == [True]
