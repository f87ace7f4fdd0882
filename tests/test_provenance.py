"""provenance.py on real files and a real tiny model folder: identities are stable, follow every
change of a weight block, a header, a config or a tokenizer, read a Hugging Face cache snapshot's
commit, and a resume check refuses other inputs in one line naming each change."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from llamafactory_ext import provenance as pv


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fresh(path) -> dict:
    pv._MEMO.clear()  # computed again, not served from the memo
    return pv.identify(path)


@pytest.fixture
def model(small_model, tmp_path) -> Path:
    return Path(shutil.copytree(small_model, tmp_path / "saves" / "x"))


def _rewrite(path: Path, edit) -> None:
    data = bytearray(path.read_bytes())
    edit(data)
    path.write_bytes(bytes(data))


def _tensor_start(path: Path) -> int:
    n = int.from_bytes(path.read_bytes()[:8], "little")
    return 8 + n


def test_a_model_identity_is_stable_and_covers_weights_configs_and_tokenizer(model):
    first = _fresh(model)
    assert first["kind"] == "model" and first == _fresh(model) == pv.identify(model)
    assert set(first["files"]) >= {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                                   "tokenizer_config.json"}
    assert first["files"]["config.json"]["digest"] == _sha(model / "config.json")  # small files: whole sha256
    seen = {first["digest"]}
    edits = {
        "model.safetensors": lambda d: d.__setitem__(_tensor_start(model / "model.safetensors") + 100, d[_tensor_start(model / "model.safetensors") + 100] ^ 1),
        "config.json": lambda d: d.extend(b" "),
        "tokenizer_config.json": lambda d: d.extend(b"\n"),
        "generation_config.json": lambda d: d.extend(b"\n"),
    }
    for name, edit in edits.items():
        _rewrite(model / name, edit)
        now = pv.identify(model)  # the memo must not hide the edit
        assert now["digest"] not in seen, name
        changed = [k for k in now["files"] if now["files"][k]["digest"] != first["files"][k]["digest"]]
        assert name in changed
        seen.add(now["digest"])


def test_a_changed_safetensors_header_is_named(model):
    from safetensors.numpy import load_file, save_file

    weights = model / "model.safetensors"
    before = pv.identify(model)
    save_file(load_file(weights), weights, metadata={"format": "pt", "note": "edited"})  # same tensors, other header
    change = pv.identity_change(before, pv.identify(model))
    assert change.startswith(f"content changed (sha {before['digest'][:6]}… -> ") and "model.safetensors header changed" in change


def test_what_from_pretrained_does_not_read_leaves_a_model_unchanged(model):
    before = pv.identify(model)
    (model / "checkpoint-5").mkdir()
    (model / "checkpoint-5" / "model.safetensors").write_bytes(b"other")
    for name in ("README.md", "trainer_state.json", "training_args.bin", "trainer_log.jsonl", "training_loss.png", ".lock",
                 "trial.json", "provenance.json", "tracking.json", "train.log"):
        (model / name).write_text("log")
    assert pv.identify(model)["digest"] == before["digest"]


def test_an_adapter_is_the_same_whatever_order_peft_wrote_its_module_sets_in(tmp_path):
    """PEFT keeps target_modules as a set and writes it in the process's hash order: two identical
    trainings differ in that order only. Any other change of adapter_config.json is a change."""
    def adapter(name: str, **cfg) -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "adapter_model.safetensors").write_bytes(b"same weights")
        (d / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8, **cfg}, indent=2))
        return d

    one = pv.identify(adapter("a", target_modules=["q_proj", "v_proj", "down_proj"], exclude_modules=["x", "y"]))
    two = pv.identify(adapter("b", target_modules=["down_proj", "q_proj", "v_proj"], exclude_modules=["y", "x"]))
    assert one["kind"] == "model" and one["digest"] == two["digest"]
    for name, cfg in {"c": {"target_modules": ["q_proj", "v_proj"]},                      # one module fewer
                      "d": {"target_modules": ["q_proj", "v_proj", "down_proj"], "r": 16},   # another rank
                      "e": {"target_modules": "all-linear"}}.items():                       # a string, not a set
        assert pv.identify(adapter(name, **cfg))["digest"] != one["digest"], name
    # a file that is not a JSON object is hashed as bytes, never refused
    (tmp_path / "a" / "adapter_config.json").write_text("[not json")
    assert pv.identify(tmp_path / "a")["digest"] != one["digest"]
    # the file alone keeps its byte sha256 (prepare's manifests and file_sha256 compare bytes)
    config = tmp_path / "b" / "adapter_config.json"
    assert pv.file_sha256(config) == hashlib.sha256(config.read_bytes()).hexdigest()


def _big_safetensors(path: Path, mib: int = 40) -> dict:
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    tensors = {f"layer.{i}.weight": rng.standard_normal((256, 1024), dtype=np.float32) for i in range(mib)}  # 1 MiB each
    save_file(tensors, path)
    return tensors


def test_a_large_weight_file_is_sampled_and_what_the_sample_misses(tmp_path):
    path = tmp_path / "model.safetensors"
    _big_safetensors(path)
    size, block, start = path.stat().st_size, 1 << 20, _tensor_start(path)
    first = pv.identify(path)
    assert first["kind"] == "weights" and first["size"] == size
    assert first["sampled_bytes"] < size // 2  # the whole file is not read
    # spans read, by the documented rule: first / last MiB, 16 evenly spaced MiB, first 4 KiB of each tensor
    blocks = [(0, block), (size - block, block)] + [((i + 1) * (size - block) // 17, block) for i in range(16)]
    tensor_heads = [start + k * block for k in range(40)]
    spans = blocks + [(t, 4096) for t in tensor_heads]
    unsampled = next(o for o in range(start + 8192, size - block, 4096) if not any(a <= o < a + n for a, n in spans))
    head_only = next(t + 10 for t in tensor_heads if not any(a <= t + 10 < a + n for a, n in blocks))  # seen by its tensor head
    for offset, seen in ((head_only, True), (size - 100, True), (unsampled, False)):
        _rewrite(path, lambda d, o=offset: d.__setitem__(o, d[o] ^ 0xFF))
        changed = pv.identify(path)["digest"] != first["digest"]
        assert changed is seen, offset
        _rewrite(path, lambda d, o=offset: d.__setitem__(o, d[o] ^ 0xFF))  # undo
    _rewrite(path, lambda d: d.__setitem__(unsampled, d[unsampled] ^ 0xFF))
    assert pv.identify(path, full=True)["digest"] == _sha(path) != pv.identify(tmp_path / "model.safetensors", full=False)["digest"]


def test_the_memo_does_not_hide_a_rewrite_with_the_same_size_and_mtime(tmp_path):
    path = tmp_path / "traces.jsonl"
    path.write_text('{"key": "q1", "trace": "a"}\n')
    first = pv.identify(path)
    assert first["digest"] == _sha(path)
    st = path.stat()
    path.write_text('{"key": "q1", "trace": "b"}\n')  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the old mtime: the ctime still moves
    assert pv.identify(path)["digest"] == _sha(path) != first["digest"]
    with open(path, "a") as fh:
        fh.write('{"key": "q2", "trace": "c"}\n')
    assert pv.identify(path)["digest"] == _sha(path)


def _hub_cache(root: Path, model: Path, repo: str = "org/tiny") -> tuple[Path, str]:
    """A Hugging Face cache laid out as huggingface_hub lays it out: blobs named by content, snapshot links."""
    folder = root / f"models--{repo.replace('/', '--')}"
    commit = hashlib.sha1(b"a commit").hexdigest()
    snap = folder / "snapshots" / commit
    (folder / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    for p in model.iterdir():
        blob = _sha(p)
        shutil.copy(p, folder / "blobs" / blob)
        (snap / p.name).symlink_to(Path("..", "..", "blobs", blob))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    return snap, commit


def test_a_hub_snapshot_gives_its_commit_and_blob_ids_without_reading(model, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    before_download = pv.identify("org/tiny")  # not cached yet: id and revision only
    snap, commit = _hub_cache(tmp_path / "hub", model)
    ident = pv.identify(snap)
    assert (ident["repo"], ident["commit"]) == ("org/tiny", commit)
    assert all(f["kind"] == "blob" for f in ident["files"].values())
    plain = pv.identify(model)  # blobs of LFS files are named by their sha256: same digests as hashing the copy
    assert {k: v["digest"] for k, v in ident["files"].items()} == {k: v["digest"] for k, v in plain["files"].items()}
    assert pv.hub_snapshot(snap / "config.json") == ("org/tiny", commit, snap)
    hub = pv.identify("org/tiny")
    assert (hub["kind"], hub["id"], hub["revision"], hub["commit"]) == ("hub", "org/tiny", "main", commit)
    assert hub["files"] == ident["files"]
    assert before_download["commit"] is None and pv.identity_change(before_download, hub) is None  # downloaded since
    (snap.parent.parent / "refs" / "main").write_text("f" * 40)  # main moved to another commit
    snap.rename(snap.parent / ("f" * 40))
    assert f"commit {commit[:6]}… -> ffffff…" in pv.identity_change(hub, pv.identify("org/tiny"))
    other = pv.identify("org/other")  # not cached: the id and revision alone
    assert (other["kind"], other["commit"], other["files"]) == ("hub", None, {})


def test_a_source_folder_and_a_glob_cover_every_file_they_hold(tmp_path):
    src = tmp_path / "italic"
    src.mkdir()
    (src / "italic.jsonl").write_text('{"q": 1}\n')
    (src / "5_shots.jsonl").write_text('{"q": 0}\n')
    (src / ".cache").mkdir()
    (src / ".cache" / "x").write_text("ignored")
    ident = pv.identify(src)
    assert ident["kind"] == "folder" and set(ident["files"]) == {"italic.jsonl", "5_shots.jsonl"}
    (src / "5_shots.jsonl").write_text('{"q": 2}\n')
    assert pv.identity_change(ident, pv.identify(src)).endswith("; 5_shots.jsonl content changed)")
    shards = pv.identify(str(src / "*.jsonl"))
    assert shards["kind"] == "glob" and len(shards["files"]) == 2
    assert pv.identify(tmp_path / "nope.jsonl") == {"kind": "missing", "path": str(tmp_path / "nope.jsonl"), "digest": None}


def test_diff_lines_name_each_change(tmp_path, monkeypatch, model):
    monkeypatch.chdir(tmp_path)
    data = Path("data/multit_mixed.jsonl")
    data.parent.mkdir()
    data.write_text('{"messages": []}\n')
    recipe = {"learning_rate": 0.0001, "lora_rank": 24, "dataset": "multit_mixed"}
    old = pv.collect(inputs={"data/multit_mixed.jsonl": str(data), "model": "saves/x"},
                     configs={"recipe recipes/v3_mixed.yaml": recipe}, template="qwen3")
    sha_before, config_size = _sha(data), (model / "config.json").stat().st_size
    data.write_text('{"messages": [1]}\n')
    _rewrite(model / "config.json", lambda d: d.extend(b" "))
    new = pv.collect(inputs={"data/multit_mixed.jsonl": str(data), "model": "saves/x"},
                     configs={"recipe recipes/v3_mixed.yaml": {**recipe, "learning_rate": 0.0002, "lora_rank": 64}},
                     template="qwen3")
    new.versions = {**new.versions, "transformers": "5.7.0"}
    lines = pv.diff(old, new)
    assert lines[0] == f"data/multit_mixed.jsonl: content changed (sha {sha_before[:6]}… -> {_sha(data)[:6]}…)"
    assert lines[1].startswith("model saves/x: content changed (sha ") and lines[1].endswith(f"; config.json size {config_size} -> {config_size + 1})")
    assert lines[2:] == ["recipe recipes/v3_mixed.yaml: learning_rate 0.0001 -> 0.0002",
                         "recipe recipes/v3_mixed.yaml: lora_rank 24 -> 64",
                         f"transformers: {old.versions['transformers']} -> 5.7.0"]
    assert pv.diff(old, pv.Provenance.from_json(json.loads(json.dumps(old.to_json())))) == []  # a JSON round trip


def test_check_resumes_on_the_same_inputs_and_refuses_others_in_one_line(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text("a\n")
    out = tmp_path / "out"

    def prov() -> pv.Provenance:
        return pv.collect(inputs={"traces": data}, configs={"eval": {"max_new_tokens": 8}})

    assert pv.check(out, prov(), has_outputs=False) == "new"
    assert json.loads((out / "provenance.json").read_text())["inputs"]["traces"]["digest"] == _sha(data)
    assert pv.check(out, prov()) == "same" and pv.changes(out, prov()) == []
    before = _sha(data)
    data.write_text("b\n")
    assert pv.changes(out, prov()) == [f"traces {data}: content changed (sha {before[:6]}… -> {_sha(data)[:6]}…)"]
    with pytest.raises(pv.StaleInputs) as err:
        pv.check(out, prov(), what="predictions in out")
    message = str(err.value)
    assert "\n" not in message and message.startswith("predictions in out were made with other inputs (")
    assert f"traces {data}: content changed" in message and "overwrite=true" in message
    gone = []
    assert pv.check(out, prov(), overwrite=True, discard=lambda: gone.append(json.loads((out / "provenance.json").read_text()))) == "overwrite"
    assert gone[0]["inputs"]["traces"]["digest"] != _sha(data) == pv.Provenance.read(out).inputs["traces"]["digest"]


def test_provenance_json_is_written_atomically(tmp_path, monkeypatch):
    first = pv.collect(configs={"eval": {"a": 1}})
    first.write(tmp_path)

    def killed(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        pv.collect(configs={"eval": {"a": 2}}).write(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["provenance.json"]  # no temp file left
    assert pv.Provenance.read(tmp_path).configs == {"eval": {"a": 1}}


def test_content_key_follows_bytes_not_paths(tmp_path):
    a = tmp_path / "a.jsonl"
    a.write_text("x\n")
    b = tmp_path / "moved.jsonl"
    shutil.copy(a, b)
    key = pv.content_key({"cutoff_len": 512}, pv.identify(a))
    assert key == pv.content_key({"cutoff_len": 512}, pv.identify(b))
    assert key != pv.content_key({"cutoff_len": 1024}, pv.identify(a))
    b.write_text("y\n")
    assert key != pv.content_key({"cutoff_len": 512}, pv.identify(b))


def test_recipe_inputs_resolve_datasets_as_llamafactory_does(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "dataset_info.json").write_text(json.dumps({
        "mine": {"file_name": "data/mine.jsonl"}, "hub": {"hf_hub_url": "org/set"}, "other": {"file_name": "o.jsonl"}}))
    recipe = {"model_name_or_path": "Qwen/Qwen3-8B", "adapter_name_or_path": "saves/a,saves/b", "dataset": "mine, hub",
              "eval_dataset": ["other"], "dataset_dir": "."}
    assert pv.recipe_inputs(recipe, tmp_path) == {
        "model": "Qwen/Qwen3-8B", "adapter 1": "saves/a", "adapter 2": "saves/b",
        "dataset_info": str(tmp_path / "dataset_info.json"),
        "dataset mine": str(tmp_path / "data/mine.jsonl"), "dataset hub": "org/set", "dataset other": str(tmp_path / "o.jsonl")}


def test_versions_are_the_installed_ones():
    import peft
    import transformers

    v = pv.versions()
    assert v["transformers"] == transformers.__version__ and v["peft"] == peft.__version__
    assert set(v) == {"llamafactory", "transformers", "peft", "torch", "llamafactory-ext"}
