"""The tiny LLaMA-3 fixture (``llamafactory-ext fixture arch=llama3``): Llama-3's real token ids,
checked against Meta's own tokenizer code (``llama_models``), and LLaMA-Factory's ``llama3``
template encoding a chat with them; the small-vocabulary variant keeps the shipped texts' tokens."""

from __future__ import annotations

import json

import pytest

from llamafactory_ext.fixtures import LLAMA3_IDS, LLAMA3_SPECIAL_TOKENS, LLAMA3_VOCAB_SIZE

BOT, SHI, EHI, EOT = 128000, 128006, 128007, 128009  # Llama-3: begin_of_text, start/end_header_id, eot_id
CHAT = [{"role": "system", "content": "Sei un assistente utile."}, {"role": "user", "content": "Qual è la capitale d'Italia?"},
        {"role": "assistant", "content": "Roma."}]


@pytest.fixture(scope="module")
def tok(tiny_llama3):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_llama3))


@pytest.fixture(scope="module")
def meta():
    """Meta's own Llama-3 tokenizer (tiktoken over the same tokenizer.model)."""
    from llama_models.llama3.tokenizer import Tokenizer

    return Tokenizer.get_instance()


def test_special_token_ids_are_llama3s(tok, meta):
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")}
    assert ids == {"<|begin_of_text|>": BOT, "<|start_header_id|>": SHI, "<|end_header_id|>": EHI, "<|eot_id|>": EOT}
    # the same ids in Meta's own tokenizer code, and every id the fixture names
    assert {t: meta.special_tokens[t] for t in ids} == ids
    assert {t: meta.special_tokens[t] for t in LLAMA3_IDS} == LLAMA3_IDS
    assert len(tok) == LLAMA3_VOCAB_SIZE == meta.n_words
    assert tok.convert_ids_to_tokens(128255) == LLAMA3_SPECIAL_TOKENS[-1] == "<|reserved_special_token_250|>"
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|begin_of_text|>", "<|eot_id|>", None)  # as Meta-Llama-3-8B-Instruct


@pytest.mark.parametrize("text", ["Ciao, come stai? La capitale d'Italia è Roma.", "Question: 12345 + 678 =\nAnswer:",
                                  "perché più ÈÉ  \n\n\t日本語 🙂 l'anno 2024"])
def test_bpe_matches_metas_tiktoken(tok, meta, text):
    assert tok.encode(text, add_special_tokens=False) == meta.encode(text, bos=False, eos=False)
    assert tok(text).input_ids == meta.encode(text, bos=True, eos=False)  # BOS from the post-processor, as Llama-3's


def test_llamafactory_llama3_template_encodes_a_chat_with_them(tok):
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments

    template = get_template_and_fix_tokenizer(tok, DataArguments(template="llama3"))
    prompt, response = template.encode_oneturn(tok, CHAT[1:], system=CHAT[0]["content"])
    def word(text: str) -> list[int]:
        return tok.encode(text, add_special_tokens=False)

    expected = ([BOT, SHI, *word("system"), EHI, *word("\n\n" + CHAT[0]["content"]), EOT,
                 SHI, *word("user"), EHI, *word("\n\n" + CHAT[1]["content"]), EOT, SHI, *word("assistant"), EHI, *word("\n\n")])
    assert prompt == expected
    assert response == [*word("Roma."), EOT]
    assert word("system") == [9125] and word("user") == [882] and word("assistant") == [78191] and word("\n\n") == [271]
    # the fixture's own chat template (Meta's) gives the same prompt as LLaMA-Factory's template
    own = tok.apply_chat_template(CHAT[:2], add_generation_prompt=True, tokenize=False)
    assert tok.encode(own, add_special_tokens=False) == prompt
    assert tok.eos_token_id == EOT  # llama3 replaces EOS with its first stop word: the same token


def test_model_is_tiny_llama3(tiny_llama3):
    cfg = json.loads((tiny_llama3 / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["model_type"] == "llama"
    assert cfg["vocab_size"] == LLAMA3_VOCAB_SIZE and cfg["tie_word_embeddings"] is False
    assert cfg["num_key_value_heads"] < cfg["num_attention_heads"]  # grouped-query attention, as LLaMA-3-8B
    assert (cfg["bos_token_id"], cfg["eos_token_id"]) == (BOT, EOT)
    assert cfg["hidden_size"] <= 64 and cfg["num_hidden_layers"] <= 2
    gen = json.loads((tiny_llama3 / "generation_config.json").read_text())
    assert gen["eos_token_id"] == [128001, EOT]


def test_small_vocabulary_keeps_the_shipped_texts_tokens(small_llama3, tok):
    from transformers import AutoTokenizer

    from llamafactory_ext.fixtures import llama3_texts

    small = AutoTokenizer.from_pretrained(str(small_llama3))
    cfg = json.loads((small_llama3 / "config.json").read_text())
    assert len(small) <= cfg["vocab_size"] < 4096  # a few thousand rows instead of 128,256
    first = small.convert_tokens_to_ids("<|begin_of_text|>")
    assert [small.convert_tokens_to_ids(t) for t in LLAMA3_SPECIAL_TOKENS] == list(range(first, first + 256))
    assert (cfg["bos_token_id"], cfg["eos_token_id"]) == (first, first + 9)
    texts = llama3_texts()
    assert len(texts) > 100
    for text in texts[::7]:
        full = tok.convert_ids_to_tokens(tok.encode(text, add_special_tokens=False))
        assert small.convert_ids_to_tokens(small.encode(text, add_special_tokens=False)) == full
    # a text outside the shipped ones still encodes (byte tokens) and decodes back
    odd = "Zanzibar xylofono 9876"
    assert small.decode(small.encode(odd, add_special_tokens=False)) == odd


def test_fixture_command_reuses_and_checks_its_keys(small_llama3, capsys):
    from llamafactory_ext.config import ConfigError
    from llamafactory_ext.fixtures import main

    before = (small_llama3 / "model.safetensors").stat().st_mtime_ns
    assert main(["arch=llama3", "vocab=small", f"out_dir={small_llama3}"]) == 0
    assert "tiny LLaMA-3 (small vocabulary)" in capsys.readouterr().out
    assert (small_llama3 / "model.safetensors").stat().st_mtime_ns == before  # same stamp: reused, not rebuilt
    with pytest.raises(ConfigError, match="vocab=qwen3 is the full vocabulary of arch=qwen3"):
        main(["arch=llama3", "vocab=qwen3", f"out_dir={small_llama3}"])
    with pytest.raises(ConfigError, match="arch must be one of"):
        main(["arch=llama2", f"out_dir={small_llama3}"])
