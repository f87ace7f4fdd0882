import json

from llamafactory_ext.fixtures import QWEN3_IDS


def test_tokenizer_has_qwen3_ids(tiny_tokenizer):
    for token, idx in QWEN3_IDS.items():
        assert tiny_tokenizer.convert_tokens_to_ids(token) == idx
    assert tiny_tokenizer.eos_token == "<|im_end|>" and tiny_tokenizer.pad_token_id == 151643
    # Qwen's real BPE: "\n\n" is one token (271), "user" is 872, digits are split.
    assert tiny_tokenizer.encode("user\n\n", add_special_tokens=False) == [872, 271]
    assert len(tiny_tokenizer.encode("2024", add_special_tokens=False)) == 4


def test_think_tags_survive_skip_special_tokens(tiny_tokenizer):
    ids = tiny_tokenizer.encode("<|im_start|><think>\nx\n</think>\n\nB<|im_end|>", add_special_tokens=False)
    assert 151667 in ids and 151668 in ids
    assert tiny_tokenizer.decode(ids, skip_special_tokens=True) == "<think>\nx\n</think>\n\nB"


def test_model_is_tiny_qwen3(tiny_model):
    cfg = json.loads((tiny_model / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen3ForCausalLM"] and cfg["model_type"] == "qwen3"
    assert 2 <= cfg["num_hidden_layers"] <= 4 and cfg["hidden_size"] <= 128
    assert cfg["vocab_size"] >= 151669


def test_fixture_is_reused(tiny_model):
    from llamafactory_ext.fixtures import build_tiny_qwen3

    before = (tiny_model / "model.safetensors").stat().st_mtime_ns
    build_tiny_qwen3(tiny_model)
    assert (tiny_model / "model.safetensors").stat().st_mtime_ns == before


def test_fixture_refuses_a_file_and_a_folder_it_did_not_write(tmp_path, capsys):
    """``out_dir=`` an existing file, or a model folder the fixture did not write: one line, exit 2,
    nothing touched (before, the file was a traceback and the folder was written over)."""
    from llamafactory_ext.cli import main

    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine", encoding="utf-8")
    assert main(["fixture", f"out_dir={a_file}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and f"out_dir {a_file} is an existing file" in err
    assert a_file.read_text(encoding="utf-8") == "mine"

    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "qwen3"}', encoding="utf-8")
    assert main(["fixture", f"out_dir={model}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"out_dir {model} holds files the fixture did not write" in err
    assert [p.name for p in model.iterdir()] == ["config.json"]


def test_a_failed_build_leaves_no_folder(tmp_path):
    """The folder appears whole or not at all: a build that fails after the tokenizer was written
    leaves neither ``out_dir`` nor a temp folder beside it."""
    import dataclasses

    import pytest

    from llamafactory_ext import fixtures

    def broken_model(*_):
        raise RuntimeError("killed while writing the weights")

    arch = dataclasses.replace(fixtures.QWEN3, model=broken_model)
    with pytest.raises(RuntimeError, match="killed"):
        fixtures.build_tiny(arch, tmp_path / "tiny")
    assert list(tmp_path.iterdir()) == []


def test_another_shape_is_rebuilt(tmp_path):
    from llamafactory_ext.fixtures import STAMP, build_tiny_qwen3

    out = build_tiny_qwen3(tmp_path / "tiny", num_layers=1, hidden_size=32)
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 1
    build_tiny_qwen3(out, num_layers=2, hidden_size=32)
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 2
    assert json.loads((out / STAMP).read_text())["num_layers"] == 2
