"""The tiny Qwen3 fixture: a local model directory with Qwen3's architecture and a tokenizer
with Qwen3's real vocabulary and special-token ids, built offline.

The tokenizer is Qwen's own byte-level BPE: the 151,643 ranks of ``qwen.tiktoken`` (shipped
inside the PyPI package ``dashscope``), converted by transformers' ``TikTokenConverter`` with
Qwen's pre-tokenizer regex, then Qwen3's 26 added tokens in order. So ids match Qwen3-8B:
``<|endoftext|>`` 151643, ``<|im_start|>`` 151644, ``<|im_end|>`` 151645, ``<think>`` 151667,
``</think>`` 151668 (the think tags are not "special": ``skip_special_tokens`` keeps them).

The model is a randomly initialised ``Qwen3ForCausalLM`` (2 layers, hidden 64 by default).
It is meant for tests and the CPU demo, never for quality.

``vocab=small`` builds the model of the demo and of the CPU training tests instead: Qwen's same
byte-level BPE, cut down to the tokens the shipped texts use (the demo's questions and traces, the
samples of every data set, the chat template's words) plus the 256 byte tokens, so any text still
encodes, then Qwen3's 26 added tokens. The shipped texts tokenize into exactly the same token
strings as with the full vocabulary, but ids are renumbered and the output layer has a few
thousand rows instead of 151,936: a CPU training step is ~20 times cheaper.

``arch=llama3`` builds the tiny LLaMA-3 instead (the ANITA recipes and the lm-eval suite): a randomly
initialised ``LlamaForCausalLM`` with LLaMA-3-8B's shape rules (grouped-query attention, untied output
layer, rope theta 500,000) and Meta's own BPE: the 128,000 ranks of ``llama_models/llama3/tokenizer.model``
(shipped inside the PyPI package ``llama-models``), converted with Llama-3's pre-tokenizer pattern
(read from ``llama_models.llama3.tokenizer.Tokenizer.pat_str``), then Llama-3's 256 special tokens in
order, so ids match Meta-Llama-3-8B(-Instruct): ``<|begin_of_text|>`` 128000, ``<|end_of_text|>``
128001, ``<|start_header_id|>`` 128006, ``<|end_header_id|>`` 128007, ``<|eot_id|>`` 128009, reserved
tokens up to 128255; 128,256 embedding rows. The special tokens carry Llama-3's names
(``<|reserved_special_token_0..250|>`` around the named ones), as in the Meta-Llama-3-8B(-Instruct)
and LLaMAntino-3-ANITA tokenizers; ``llama-models`` 0.3.0 names the same ids the Llama-3.1 way
(``<|eom_id|>`` 128008, ``<|python_tag|>`` 128010, ...) and agrees on every id named above. As with the
real model, LLaMA-Factory's ``llama3`` template adds its stop word ``<|eom_id|>`` as a new token
(id 128256, never in the data). The tokenizer is the Instruct one: Meta's chat template, ``eos_token``
``<|eot_id|>``, BOS added by the post-processor, no pad token. ``arch=llama3 vocab=small`` cuts the BPE
to the shipped texts (as for Qwen) and renumbers: the special tokens then follow the kept ranks, so
only the full vocabulary has Llama-3's exact ids.

Command: ``llamafactory-ext fixture out_dir=PATH [arch=qwen3|llama3] [vocab=full|small] [num_layers=2]
[hidden_size=64] [seed=0]`` (``vocab=qwen3`` / ``vocab=llama3`` are accepted for ``full``).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib.util
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from llamafactory_ext.config import option
from llamafactory_ext.io import atomic_write_bytes

USAGE = "out_dir=PATH [arch=qwen3|llama3] [vocab=full|small] [num_layers=2] [hidden_size=64] [seed=0]"

# Qwen2/Qwen3 pre-tokenizer (tokenizer.json of Qwen/Qwen3-8B): digits are split one by one.
QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Qwen3's added tokens, ids 151643..151668, in order; False = not special.
QWEN3_ADDED_TOKENS: list[tuple[str, bool]] = [
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
    ("<|object_ref_start|>", True), ("<|object_ref_end|>", True), ("<|box_start|>", True),
    ("<|box_end|>", True), ("<|quad_start|>", True), ("<|quad_end|>", True),
    ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False),
    ("</tool_call>", False), ("<|fim_prefix|>", True), ("<|fim_middle|>", True),
    ("<|fim_suffix|>", True), ("<|fim_pad|>", True), ("<|repo_name|>", True),
    ("<|file_sep|>", True), ("<tool_response>", False), ("</tool_response>", False),
    ("<think>", False), ("</think>", False),
]
QWEN3_IDS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<think>": 151667, "</think>": 151668}
QWEN3_VOCAB_SIZE = 151936  # embedding rows of Qwen3-8B (padded past the 151,669 tokens)
FIXTURE_VERSION = 2


@dataclasses.dataclass
class FixtureConfig:
    out_dir: str = option(None, "directory to write (created)")
    num_layers: int = option(2, "decoder layers", ge=1, le=8)
    hidden_size: int = option(64, "hidden size (a multiple of 16)", ge=16, le=512)
    seed: int = option(0, "init seed")
    vocab: Literal["full", "small", "qwen3", "llama3"] = option(
        "full", "full: the architecture's real vocabulary and ids (qwen3 / llama3: the same) | small: its BPE cut to the shipped texts")
    arch: Literal["qwen3", "llama3"] = option("qwen3", "qwen3: tiny Qwen3 (Qwen3's ids) | llama3: tiny LLaMA-3 (Llama-3's ids)")


def qwen_tiktoken_path() -> Path:
    """``qwen.tiktoken`` inside the installed ``dashscope`` package (located, not imported)."""
    spec = importlib.util.find_spec("dashscope")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the tiny fixture needs the PyPI package 'dashscope' (it ships qwen.tiktoken): pip install dashscope")
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise RuntimeError(f"qwen.tiktoken not found at {path}")
    return path


def _read_ranks(path: Path) -> dict[bytes, int]:
    """A tiktoken BPE file (``base64-token rank`` per line) as {token bytes: rank}."""
    ranks = {}
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _ranks() -> dict[bytes, int]:
    return _read_ranks(qwen_tiktoken_path())


def _bpe_parts(token: bytes, ranks: dict[bytes, int]) -> list[bytes]:
    """The pieces byte-level BPE merges into ``token`` (merges ranked below it, in rank order)."""
    pieces = [bytes([b]) for b in token]
    limit = ranks[token]
    while len(pieces) > 2:
        best = min((ranks.get(pieces[i] + pieces[i + 1], limit), i) for i in range(len(pieces) - 1))
        if best[0] >= limit:
            break
        pieces[best[1]:best[1] + 2] = [pieces[best[1]] + pieces[best[1] + 1]]
    return pieces


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def shipped_texts() -> list[str]:
    """Every text the demo trains or evaluates on (as the qwen3 template lays it out) and every
    string of the shipped samples."""
    from llamafactory_ext.shipped import resource

    texts = demo_texts()
    for path in sorted(resource("samples").iterdir()):
        raw = path.read_text(encoding="utf-8")
        rows = json.loads(raw) if path.suffix == ".json" else [json.loads(line) for line in raw.splitlines() if line.strip()]
        texts += _strings(rows)
    return texts + ["The answer is ", "Risposta: ", " ".join("0123456789")]


def demo_texts() -> list[str]:
    """Every text the demo trains or evaluates on, as the qwen3 template lays it out."""
    from llamafactory_ext.data.mcq import SYSTEM_PROMPT, build_messages
    from llamafactory_ext.data.multit import parse_multit_row
    from llamafactory_ext.shipped import resource
    from llamafactory_ext.thinking import EMPTY_THINK, format_thinking

    texts = [SYSTEM_PROMPT, "system\n", "user\n", "assistant\n", "\n", EMPTY_THINK, *"ABCDE"]
    for name in ("warmup_quiz.json", "eval_quiz.json"):
        for i, row in enumerate(json.loads(resource(f"demo/{name}").read_text(encoding="utf-8"))):
            texts += [m["content"] for m in build_messages(parse_multit_row(row, i))]
    with open(resource("demo/traces.jsonl"), encoding="utf-8") as fh:
        texts += [format_thinking(json.loads(line)["trace"], "A") for line in fh if line.strip()]
    return texts


def subset_ranks(texts: Iterable[str], ranks: dict[bytes, int] | None = None, pattern: str = QWEN_PATTERN,
                 special_tokens: Iterable[str] | None = None) -> list[bytes]:
    """Qwen's BPE tokens the texts need (tokenized exactly as the full vocabulary does), every
    token they are merged from, and the 256 single bytes; in Qwen's rank order. ``ranks``,
    ``pattern`` and ``special_tokens`` pick another BPE (Llama-3's: :func:`llama3_subset_ranks`)."""
    import re

    import tiktoken

    ranks = _ranks() if ranks is None else ranks
    enc = tiktoken.Encoding("bpe-subset", pat_str=pattern, mergeable_ranks=ranks, special_tokens={})
    names = [t for t, _ in QWEN3_ADDED_TOKENS] if special_tokens is None else list(special_tokens)
    specials = re.compile("|".join(re.escape(t) for t in names))
    by_rank = {r: t for t, r in ranks.items()}
    keep = {ranks[bytes([b])] for b in range(256)}
    stack = [tid for text in texts for piece in specials.split(text) if piece for tid in enc.encode_ordinary(piece)]
    while stack:
        tid = stack.pop()
        if tid in keep:
            continue
        keep.add(tid)
        stack += [ranks[p] for p in _bpe_parts(by_rank[tid], ranks) if len(by_rank[tid]) > 1]
    return [by_rank[r] for r in sorted(keep)]


def _vocab_file(full: Path, tokens: list[bytes] | None, name: str) -> str:
    """The full tiktoken file, or one holding ``tokens`` renumbered from 0. The subset file is named
    by its content: tiktoken caches files by their path."""
    if tokens is None:
        return str(full)
    data = b"".join(base64.b64encode(t) + b" " + str(i).encode() + b"\n" for i, t in enumerate(tokens))
    path = Path(tempfile.gettempdir()) / f"{name}-subset-{hashlib.sha256(data).hexdigest()[:16]}.tiktoken"
    atomic_write_bytes(path, data)
    return str(path)


def _check_ids(tok: Any, ids: dict[str, int], model: str) -> None:
    """The whole point of the full-vocabulary fixture: the real model's ids, or a loud failure."""
    for content, expected in ids.items():
        if tok.token_to_id(content) != expected:
            raise RuntimeError(f"tiny tokenizer: {content} got id {tok.token_to_id(content)}, {model} has {expected}")


def build_tokenizer_json(out_dir: Path, tokens: list[bytes] | None = None) -> int:
    """Write tokenizer.json + tokenizer_config.json: Qwen3's vocabulary and ids, or (``tokens``) a
    subset of Qwen's BPE renumbered from 0. Returns the id of the first added token."""
    from tokenizers import AddedToken
    from transformers.convert_slow_tokenizer import TikTokenConverter

    tok = TikTokenConverter(vocab_file=_vocab_file(qwen_tiktoken_path(), tokens, "qwen"), pattern=QWEN_PATTERN).converted()
    first = tok.get_vocab_size()
    for content, special in QWEN3_ADDED_TOKENS:
        token = AddedToken(content, special=special, normalized=False)
        tok.add_special_tokens([token]) if special else tok.add_tokens([token])
    if tokens is None:
        _check_ids(tok, QWEN3_IDS, "Qwen3")
    tok.save(str(out_dir / "tokenizer.json"))
    added = {str(first + i): {"content": c, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": s}
             for i, (c, s) in enumerate(QWEN3_ADDED_TOKENS)}
    config = {
        "add_bos_token": False, "add_prefix_space": False, "added_tokens_decoder": added, "bos_token": None,
        "clean_up_tokenization_spaces": False, "eos_token": "<|im_end|>", "errors": "replace", "model_max_length": 131072,
        "pad_token": "<|endoftext|>", "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return first


def build_tiny_qwen3(out_dir: str | os.PathLike, num_layers: int = 2, hidden_size: int = 64, seed: int = 0,
                     vocab: str = "qwen3") -> Path:
    """Write the tiny Qwen3 model + tokenizer to ``out_dir`` and return the path.

    Re-uses an existing, complete directory written by the same fixture version and shape.
    """
    if not 1 <= num_layers <= 8:
        raise ValueError("num_layers must be between 1 and 8")
    if hidden_size % 16 or not 16 <= hidden_size <= 512:
        raise ValueError("hidden_size must be a multiple of 16 between 16 and 512")
    out = Path(out_dir)
    stamp = {"fixture_version": FIXTURE_VERSION, "num_layers": num_layers, "hidden_size": hidden_size, "seed": seed, "vocab": vocab}
    stamp_file = out / "tiny_fixture.json"
    if stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        return out

    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    first = build_tokenizer_json(out, subset_ranks(shipped_texts()) if vocab == "small" else None)
    ids = {"<|endoftext|>": first, "<|im_end|>": first + 2}
    rows = QWEN3_VOCAB_SIZE if vocab == "qwen3" else (first + len(QWEN3_ADDED_TOKENS) + 63) // 64 * 64
    heads = max(2, hidden_size // (16 if vocab == "qwen3" else 32))
    config = Qwen3Config(
        vocab_size=rows, hidden_size=hidden_size, intermediate_size=hidden_size * 2, num_hidden_layers=num_layers,
        num_attention_heads=heads, num_key_value_heads=max(1, heads // 2), head_dim=hidden_size // heads,
        max_position_embeddings=4096, rope_theta=1_000_000.0, tie_word_embeddings=True,
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"], dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"], eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"], do_sample=False,
    )
    model.save_pretrained(out)
    stamp_file.write_text(json.dumps(stamp), encoding="utf-8")
    return out


# ---------------------------------------------------------------------------------------
# The tiny LLaMA-3 (arch=llama3): Meta's BPE from the PyPI package llama-models.
# ---------------------------------------------------------------------------------------
# Llama-3's 256 special tokens, ids 128000..128255, in order, with the names of the
# Meta-Llama-3-8B(-Instruct) tokenizer (llama-models 0.3.0 names some the Llama-3.1 way).
LLAMA3_SPECIAL_TOKENS: list[str] = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
    "<|reserved_special_token_2|>", "<|reserved_special_token_3|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|reserved_special_token_4|>", "<|eot_id|>",
    *(f"<|reserved_special_token_{i}|>" for i in range(5, 251)),
]
LLAMA3_IDS = {"<|begin_of_text|>": 128000, "<|end_of_text|>": 128001, "<|start_header_id|>": 128006,
              "<|end_header_id|>": 128007, "<|eot_id|>": 128009}
LLAMA3_VOCAB_SIZE = 128256  # embedding rows of Meta-Llama-3-8B: 128,000 ranks + 256 special tokens
LLAMA3_FIXTURE_VERSION = 1
# Meta-Llama-3-8B-Instruct's chat template (tokenizer_config.json), as LLaMA-Factory's `llama3` template lays it out
LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


def llama3_tokenizer_path() -> Path:
    """Meta's ``tokenizer.model`` inside the installed ``llama-models`` package (located, not imported)."""
    spec = importlib.util.find_spec("llama_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the tiny LLaMA-3 fixture needs the PyPI package 'llama-models' (it ships Meta's "
                           "llama3/tokenizer.model): pip install llama-models==0.3.0")
    path = Path(next(iter(spec.submodule_search_locations))) / "llama3" / "tokenizer.model"
    if not path.is_file():
        raise RuntimeError(f"Llama-3's tokenizer.model not found at {path}")
    return path


def llama3_pattern() -> str:
    """Llama-3's pre-tokenizer regex, as Meta's own tokenizer code declares it."""
    from llama_models.llama3.tokenizer import Tokenizer

    return Tokenizer.pat_str


def llama3_texts() -> list[str]:
    """What the small LLaMA-3 vocabulary must tokenize exactly as the full one: the shipped texts
    and the words of the ``llama3`` template and of the lm-eval okapi prompts."""
    return shipped_texts() + ["system", "user", "assistant", "\n\n", "Question: ", "\nAnswer:", *(f" {c}" for c in "ABCDE")]


def llama3_subset_ranks(texts: Iterable[str]) -> list[bytes]:
    """Llama-3's BPE tokens the texts need, what they merge from and the 256 bytes, in rank order."""
    return subset_ranks(texts, ranks=_read_ranks(llama3_tokenizer_path()), pattern=llama3_pattern(),
                        special_tokens=LLAMA3_SPECIAL_TOKENS)


def build_llama3_tokenizer_json(out_dir: Path, tokens: list[bytes] | None = None) -> int:
    """Write tokenizer.json + tokenizer_config.json of a LLaMA-3-8B-Instruct tokenizer: Meta's BPE
    and Llama-3's ids, or (``tokens``) a subset of it renumbered from 0. Returns the id of
    ``<|begin_of_text|>`` (the first special token)."""
    from tokenizers import AddedToken, processors
    from transformers.convert_slow_tokenizer import TikTokenConverter

    tok = TikTokenConverter(vocab_file=_vocab_file(llama3_tokenizer_path(), tokens, "llama3"), pattern=llama3_pattern()).converted()
    first = tok.get_vocab_size()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in LLAMA3_SPECIAL_TOKENS])
    if tokens is None:
        _check_ids(tok, LLAMA3_IDS, "Llama-3")
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.Sequence([  # as Meta-Llama-3-8B's tokenizer.json: BOS first
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
                                      special_tokens=[(bos, first)]),
    ])
    tok.save(str(out_dir / "tokenizer.json"))
    added = {str(first + i): {"content": c, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
             for i, c in enumerate(LLAMA3_SPECIAL_TOKENS)}
    config = {
        "added_tokens_decoder": added, "bos_token": bos, "chat_template": LLAMA3_CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": True, "eos_token": "<|eot_id|>",
        "model_input_names": ["input_ids", "attention_mask"], "model_max_length": 8192,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return first


def build_tiny_llama3(out_dir: str | os.PathLike, num_layers: int = 2, hidden_size: int = 64, seed: int = 0,
                      vocab: str = "full") -> Path:
    """Write the tiny LLaMA-3 model + tokenizer to ``out_dir`` and return the path (``vocab``: ``full``,
    Llama-3's 128,256 ids, or ``small``, Meta's BPE cut to :func:`llama3_texts`).

    Re-uses an existing, complete directory written by the same fixture version and shape.
    """
    if vocab not in ("full", "small"):
        raise ValueError("vocab must be 'full' or 'small'")
    if not 1 <= num_layers <= 8:
        raise ValueError("num_layers must be between 1 and 8")
    if hidden_size % 16 or not 16 <= hidden_size <= 512:
        raise ValueError("hidden_size must be a multiple of 16 between 16 and 512")
    out = Path(out_dir)
    stamp = {"arch": "llama3", "fixture_version": LLAMA3_FIXTURE_VERSION, "num_layers": num_layers,
             "hidden_size": hidden_size, "seed": seed, "vocab": vocab}
    stamp_file = out / "tiny_fixture.json"
    if stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        return out

    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    first = build_llama3_tokenizer_json(out, llama3_subset_ranks(llama3_texts()) if vocab == "small" else None)
    bos, eot, eos = first, first + 9, first + 1  # <|begin_of_text|>, <|eot_id|>, <|end_of_text|>
    # full: Llama-3's 128,256 rows; small: the kept ranks + 256 specials, padded to a multiple of 64
    rows = LLAMA3_VOCAB_SIZE if vocab == "full" else (first + len(LLAMA3_SPECIAL_TOKENS) + 63) // 64 * 64
    heads = max(2, hidden_size // 16)
    config = LlamaConfig(
        vocab_size=rows, hidden_size=hidden_size, intermediate_size=hidden_size * 2, num_hidden_layers=num_layers,
        num_attention_heads=heads, num_key_value_heads=max(1, heads // 2), head_dim=hidden_size // heads,
        max_position_embeddings=8192, rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=False,
        bos_token_id=bos, eos_token_id=eot, dtype="float32",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=bos, eos_token_id=[eos, eot], do_sample=False)
    model.save_pretrained(out)
    stamp_file.write_text(json.dumps(stamp), encoding="utf-8")
    return out


def options_help() -> str:
    from llamafactory_ext.config import describe

    return describe(FixtureConfig)


def main(argv: list[str]) -> int:
    from llamafactory_ext.config import from_argv

    cfg = from_argv(FixtureConfig, argv)
    if not cfg.out_dir:
        from llamafactory_ext.config import ConfigError

        raise ConfigError("fixture needs out_dir=PATH")
    full = {"qwen3": "qwen3", "llama3": "full"}[cfg.arch]
    if cfg.vocab in ("qwen3", "llama3") and cfg.vocab != cfg.arch:
        from llamafactory_ext.config import ConfigError

        raise ConfigError(f"vocab={cfg.vocab} is the full vocabulary of arch={cfg.vocab}, not of arch={cfg.arch}: use vocab=full or vocab=small")
    vocab = "small" if cfg.vocab == "small" else full
    if cfg.arch == "llama3":
        path = build_tiny_llama3(cfg.out_dir, cfg.num_layers, cfg.hidden_size, cfg.seed, vocab)
        print(f"tiny LLaMA-3 ({'full: Llama-3 ids' if vocab == 'full' else 'small'} vocabulary) written to {path}")
    else:
        path = build_tiny_qwen3(cfg.out_dir, cfg.num_layers, cfg.hidden_size, cfg.seed, vocab)
        print(f"tiny Qwen3 ({vocab} vocabulary) written to {path}")
    return 0


# ---------------------------------------------------------------------------------------
# Running a recipe on the tiny model on CPU. This is THE list of overrides a shipped recipe
# may need to run on CPU with the tiny fixture (tests, demo, sweeps share it). Keep it short:
# a recipe that needs more than this is a bug in the recipe.
# ---------------------------------------------------------------------------------------
CPU_OVERRIDES: dict[str, object] = {
    "bf16": False,                 # no bf16 kernels on the CI CPU
    "fp16": False,
    "quantization_bit": None,      # bitsandbytes needs CUDA
    "deepspeed": None,             # ZeRO needs a GPU + torchrun
    "flash_attn": "auto",          # flash-attn 2 is a GPU extra
    "optim": "adamw_torch",        # 8-bit AdamW is bitsandbytes (CUDA)
    "report_to": "none",
}


def tiny_train_overrides(
    model_dir: str | os.PathLike,
    dataset_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    max_steps: int = 2,
) -> list[str]:
    """``key=value`` overrides that run a shipped recipe on the tiny model on CPU."""
    keys: dict[str, object] = {
        "model_name_or_path": str(model_dir),
        "dataset_dir": str(dataset_dir),
        "output_dir": str(output_dir),
        "max_steps": max_steps,
        **CPU_OVERRIDES,
    }
    from llamafactory_ext.config import overrides_of

    return overrides_of(keys)


def cpu_env(base: dict[str, str] | None = None, threads: int | None = None) -> dict[str, str]:
    """Environment for a ``llamafactory-cli`` subprocess on CPU, offline.

    ``threads``: OpenMP / MKL threads per process. One thread per process is what lets two
    processes share a 2-core machine: with two threads each, every parallel region waits for a
    descheduled thread and a tiny model's step gets ~5 times slower (measured: 0.2 s -> 1 s)."""
    env = dict(os.environ if base is None else base)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.update(
        {
            "CUDA_VISIBLE_DEVICES": "",
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "TOKENIZERS_PARALLELISM": "false",
            "WANDB_DISABLED": "true",
            "DISABLE_VERSION_CHECK": "1",
        }
    )
    env.pop("FORCE_TORCHRUN", None)
    return env


def llamafactory_cli() -> str:
    """Path of the ``llamafactory-cli`` next to the running interpreter (the venv's)."""
    import shutil
    import sys

    candidate = Path(sys.executable).parent / "llamafactory-cli"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("llamafactory-cli")
    if not found:
        raise RuntimeError("llamafactory-cli not found: install llamafactory==0.9.5")
    return found
