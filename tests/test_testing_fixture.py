import json

from llamafactory_ext.testing import QWEN3_IDS


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
    from llamafactory_ext.testing import build_tiny_qwen3

    before = (tiny_model / "model.safetensors").stat().st_mtime_ns
    build_tiny_qwen3(tiny_model)
    assert (tiny_model / "model.safetensors").stat().st_mtime_ns == before
