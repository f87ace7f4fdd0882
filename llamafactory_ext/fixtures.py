"""Tiny offline models with real token ids: a randomly initialised Qwen3 or LLaMA-3 (2 layers,
hidden 64 by default) and its architecture's own tokenizer, for tests and the CPU demo, never for
quality. One writer serves both architectures; what differs is an :class:`Arch` entry.

``arch=qwen3`` (default): Qwen's own byte-level BPE, the 151,643 ranks of ``qwen.tiktoken``
(shipped inside the PyPI package ``dashscope``), converted by transformers' ``TikTokenConverter``
with Qwen's pre-tokenizer regex, then Qwen3's 26 added tokens in order. So ids match Qwen3-8B:
``<|endoftext|>`` 151643, ``<|im_start|>`` 151644, ``<|im_end|>`` 151645, ``<think>`` 151667,
``</think>`` 151668 (the think tags are not "special": ``skip_special_tokens`` keeps them). The
model is a ``Qwen3ForCausalLM`` with tied embeddings.

``arch=llama3``: a ``LlamaForCausalLM`` with LLaMA-3-8B's shape rules (grouped-query attention,
untied output layer, rope theta 500,000) and Meta's own BPE: the 128,000 ranks of
``llama_models/llama3/tokenizer.model`` (shipped inside the PyPI package ``llama-models``), converted
with Llama-3's pre-tokenizer pattern (read from ``llama_models.llama3.tokenizer.Tokenizer.pat_str``),
then Llama-3's 256 special tokens in order, so ids match Meta-Llama-3-8B(-Instruct):
``<|begin_of_text|>`` 128000, ``<|end_of_text|>`` 128001, ``<|start_header_id|>`` 128006,
``<|end_header_id|>`` 128007, ``<|eot_id|>`` 128009, reserved tokens up to 128255; 128,256 embedding
rows. The special tokens carry Llama-3's names (``<|reserved_special_token_0..250|>`` around the named
ones), as in the Meta-Llama-3-8B(-Instruct) and LLaMAntino-3-ANITA tokenizers; ``llama-models``
0.3.0 names the same ids the Llama-3.1 way (``<|eom_id|>`` 128008, ``<|python_tag|>`` 128010, ...)
and agrees on every id named above. As with the real model, LLaMA-Factory's ``llama3`` template
adds its stop word ``<|eom_id|>`` as a new token (id 128256, never in the data). The tokenizer is
the Instruct one: Meta's chat template, ``eos_token`` ``<|eot_id|>``, BOS added by the
post-processor, no pad token.

``vocab=small`` builds the model of the demo and of the CPU training tests instead: the same BPE,
cut down to the tokens the shipped texts use (the demo's questions and traces, the samples of every
data set, the template's words) plus the 256 byte tokens, so any text still encodes, then the added
tokens. The shipped texts tokenize into exactly the same token strings as with the full vocabulary,
but ids are renumbered and the output layer has a few thousand rows instead of 151,936 / 128,256:
a CPU training step is ~20 times cheaper. Only the full vocabulary has the real ids.

A model folder is written whole or not at all (built beside ``out_dir``, then renamed into place)
and stamped (``tiny_fixture.json``, written last): a folder with the same stamp is reused, one
with another stamp is rebuilt, and a folder the fixture did not write is never touched.

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
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from llamafactory_ext.config import ConfigError, UserError, describe, from_argv, option
from llamafactory_ext.io import atomic_build_dir, atomic_write_bytes, atomic_write_json

USAGE = "out_dir=PATH [arch=qwen3|llama3] [vocab=full|small] [num_layers=2] [hidden_size=64] [seed=0]"
STAMP = "tiny_fixture.json"

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


class FixtureError(UserError, ValueError):
    """A fixture that cannot be written as asked (bad shape, an out_dir it must not touch)."""


@dataclasses.dataclass
class FixtureConfig:
    out_dir: str = option(None, "directory to write (created)")
    num_layers: int = option(2, "decoder layers", ge=1, le=8)
    hidden_size: int = option(64, "hidden size (a multiple of 16)", ge=16, le=512)
    seed: int = option(0, "init seed")
    vocab: Literal["full", "small", "qwen3", "llama3"] = option(
        "full", "full: the architecture's real vocabulary and ids (qwen3 / llama3: the same) | small: its BPE cut to the shipped texts")
    arch: Literal["qwen3", "llama3"] = option("qwen3", "qwen3: tiny Qwen3 (Qwen3's ids) | llama3: tiny LLaMA-3 (Llama-3's ids)")


# ---------------------------------------------------------------------------------------------
# the texts a small vocabulary must keep
# ---------------------------------------------------------------------------------------------
def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


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


def llama3_texts() -> list[str]:
    """What the small LLaMA-3 vocabulary must tokenize exactly as the full one: the shipped texts
    and the words of the ``llama3`` template and of the lm-eval okapi prompts."""
    return shipped_texts() + ["system", "user", "assistant", "\n\n", "Question: ", "\nAnswer:", *(f" {c}" for c in "ABCDE")]


# ---------------------------------------------------------------------------------------------
# the two architectures
# ---------------------------------------------------------------------------------------------
def _package_file(package: str, rel: str, hint: str) -> Path:
    """A data file inside an installed package (located, not imported)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the tiny fixture needs the PyPI package {package.replace('_', '-')!r} ({hint})")
    path = Path(next(iter(spec.submodule_search_locations))) / rel
    if not path.is_file():
        raise RuntimeError(f"{rel} not found at {path}")
    return path


def qwen_tiktoken_path() -> Path:
    """``qwen.tiktoken`` inside the installed ``dashscope`` package."""
    return _package_file("dashscope", "resources/qwen.tiktoken", "it ships qwen.tiktoken: pip install dashscope")


def llama3_tokenizer_path() -> Path:
    """Meta's ``tokenizer.model`` inside the installed ``llama-models`` package."""
    return _package_file("llama_models", "llama3/tokenizer.model",
                         "it ships Meta's llama3/tokenizer.model: pip install llama-models==0.3.0")


def llama3_pattern() -> str:
    """Llama-3's pre-tokenizer regex, as Meta's own tokenizer code declares it."""
    from llama_models.llama3.tokenizer import Tokenizer

    return Tokenizer.pat_str


def _llama3_post_processor(tok: Any, first: int) -> None:
    """As Meta-Llama-3-8B's tokenizer.json: BOS first, added by the post-processor."""
    from tokenizers import processors

    bos = "<|begin_of_text|>"
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
                                      special_tokens=[(bos, first)]),
    ])


def _qwen3_model(rows: int, first: int, layers: int, hidden: int, full: bool) -> tuple[type, Any, Any]:
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    endoftext, im_end = first, first + 2
    heads = max(2, hidden // (16 if full else 32))
    config = Qwen3Config(
        vocab_size=rows, hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=max(1, heads // 2), head_dim=hidden // heads,
        max_position_embeddings=4096, rope_theta=1_000_000.0, tie_word_embeddings=True,
        bos_token_id=endoftext, eos_token_id=im_end, pad_token_id=endoftext, dtype="float32",
    )
    gen = GenerationConfig(bos_token_id=endoftext, eos_token_id=[im_end, endoftext], pad_token_id=endoftext, do_sample=False)
    return Qwen3ForCausalLM, config, gen


def _llama3_model(rows: int, first: int, layers: int, hidden: int, full: bool) -> tuple[type, Any, Any]:
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    bos, eos, eot = first, first + 1, first + 9  # <|begin_of_text|>, <|end_of_text|>, <|eot_id|>
    heads = max(2, hidden // 16)
    config = LlamaConfig(
        vocab_size=rows, hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=max(1, heads // 2), head_dim=hidden // heads,
        max_position_embeddings=8192, rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=False,
        bos_token_id=bos, eos_token_id=eot, dtype="float32",
    )
    return LlamaForCausalLM, config, GenerationConfig(bos_token_id=bos, eos_token_id=[eos, eot], do_sample=False)


@dataclasses.dataclass(frozen=True)
class Arch:
    """What one architecture's fixture is made of; the writer (:func:`build_tiny`) is shared."""

    name: str
    label: str
    ranks_file: Callable[[], Path]       # the tiktoken BPE file
    pattern: Callable[[], str]           # its pre-tokenizer regex
    added: tuple[tuple[str, bool], ...]  # tokens after the BPE ranks, in id order: (content, special)
    ids: dict[str, int]                  # the real model's ids, checked on the full vocabulary
    rows: int                            # embedding rows of the real model
    texts: Callable[[], list[str]]       # what a small vocabulary must tokenize as the full one
    tokenizer_config: dict[str, Any]     # tokenizer_config.json besides added_tokens_decoder
    model: Callable[[int, int, int, int, bool], tuple[type, Any, Any]]  # (rows, first id, layers, hidden, full)
    version: int
    post_processor: Callable[[Any, int], None] | None = None


QWEN3 = Arch(
    name="qwen3", label="Qwen3", ranks_file=qwen_tiktoken_path, pattern=lambda: QWEN_PATTERN,
    added=tuple(QWEN3_ADDED_TOKENS), ids=QWEN3_IDS, rows=QWEN3_VOCAB_SIZE, texts=shipped_texts,
    tokenizer_config={
        "add_bos_token": False, "add_prefix_space": False, "bos_token": None, "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>", "errors": "replace", "model_max_length": 131072, "pad_token": "<|endoftext|>",
        "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None,
    },
    model=_qwen3_model, version=FIXTURE_VERSION,
)
LLAMA3 = Arch(
    name="llama3", label="LLaMA-3", ranks_file=llama3_tokenizer_path, pattern=llama3_pattern,
    added=tuple((t, True) for t in LLAMA3_SPECIAL_TOKENS), ids=LLAMA3_IDS, rows=LLAMA3_VOCAB_SIZE, texts=llama3_texts,
    tokenizer_config={
        "bos_token": "<|begin_of_text|>", "chat_template": LLAMA3_CHAT_TEMPLATE, "clean_up_tokenization_spaces": True,
        "eos_token": "<|eot_id|>", "model_input_names": ["input_ids", "attention_mask"], "model_max_length": 8192,
        "tokenizer_class": "PreTrainedTokenizerFast",
    },
    model=_llama3_model, version=LLAMA3_FIXTURE_VERSION, post_processor=_llama3_post_processor,
)
ARCHS = {a.name: a for a in (QWEN3, LLAMA3)}


# ---------------------------------------------------------------------------------------------
# tokenizer
# ---------------------------------------------------------------------------------------------
def read_ranks(path: Path) -> dict[bytes, int]:
    """A tiktoken BPE file (``base64-token rank`` per line) as {token bytes: rank}."""
    ranks = {}
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    return ranks


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


def subset_ranks(texts: Iterable[str], arch: Arch = QWEN3) -> list[bytes]:
    """The BPE tokens of ``arch`` the texts need (tokenized exactly as the full vocabulary does),
    every token they are merged from, and the 256 single bytes; in the BPE's rank order."""
    import re

    import tiktoken

    ranks = read_ranks(arch.ranks_file())
    enc = tiktoken.Encoding("bpe-subset", pat_str=arch.pattern(), mergeable_ranks=ranks, special_tokens={})
    specials = re.compile("|".join(re.escape(t) for t, _ in arch.added))
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


def build_tokenizer_json(out_dir: str | os.PathLike, tokens: list[bytes] | None = None, arch: Arch = QWEN3) -> int:
    """Write tokenizer.json + tokenizer_config.json of ``arch``: its real vocabulary and ids, or
    (``tokens``) a subset of its BPE renumbered from 0. Returns the id of the first added token."""
    from tokenizers import AddedToken
    from transformers.convert_slow_tokenizer import TikTokenConverter

    out = Path(out_dir)
    tok = TikTokenConverter(vocab_file=_vocab_file(arch.ranks_file(), tokens, arch.name), pattern=arch.pattern()).converted()
    first = tok.get_vocab_size()
    for content, special in arch.added:
        token = AddedToken(content, special=special, normalized=False)
        tok.add_special_tokens([token]) if special else tok.add_tokens([token])
    if tokens is None:  # the whole point of the full vocabulary: the real model's ids, or a loud failure
        for content, expected in arch.ids.items():
            if tok.token_to_id(content) != expected:
                raise RuntimeError(f"tiny tokenizer: {content} got id {tok.token_to_id(content)}, {arch.label} has {expected}")
    if arch.post_processor is not None:
        arch.post_processor(tok, first)
    tok.save(str(out / "tokenizer.json"))
    added = {str(first + i): {"content": c, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": s}
             for i, (c, s) in enumerate(arch.added)}
    atomic_write_json(out / "tokenizer_config.json", {"added_tokens_decoder": added, **arch.tokenizer_config})
    return first


# ---------------------------------------------------------------------------------------------
# the model folder
# ---------------------------------------------------------------------------------------------
def _reusable(out: Path, stamp: dict[str, Any]) -> bool:
    """True when ``out`` already holds this very fixture. A fixture of another shape is removed
    (it is rebuilt); a file, or a folder with files the fixture did not write, is refused."""
    if out.exists() and not out.is_dir():
        raise FixtureError(f"out_dir {out} is an existing file, not a folder: choose another path")
    try:
        old = json.loads((out / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = None
    if old == stamp:
        return True
    if old is None and out.is_dir() and any(out.iterdir()):
        raise FixtureError(f"out_dir {out} holds files the fixture did not write (no {STAMP}): "
                           "choose a new or empty folder")
    if old is not None:
        shutil.rmtree(out)
    return False


def build_tiny(arch: Arch, out_dir: str | os.PathLike, num_layers: int = 2, hidden_size: int = 64, seed: int = 0,
               vocab: str = "full") -> Path:
    """Write the tiny model + tokenizer of ``arch`` to ``out_dir`` and return the path (``vocab``:
    ``full``, the real ids, or ``small``, the BPE cut to ``arch.texts()``)."""
    if vocab not in ("full", "small"):
        raise FixtureError("vocab must be 'full' or 'small'")
    if not 1 <= num_layers <= 8:
        raise FixtureError("num_layers must be between 1 and 8")
    if hidden_size % 16 or not 16 <= hidden_size <= 512:
        raise FixtureError("hidden_size must be a multiple of 16 between 16 and 512")
    out = Path(out_dir)
    stamp = {"arch": arch.name, "fixture_version": arch.version, "num_layers": num_layers, "hidden_size": hidden_size,
             "seed": seed, "vocab": vocab}
    if _reusable(out, stamp):
        return out

    def build(tmp: Path) -> None:
        import torch

        full = vocab == "full"
        first = build_tokenizer_json(tmp, None if full else subset_ranks(arch.texts(), arch), arch)
        rows = arch.rows if full else (first + len(arch.added) + 63) // 64 * 64  # padded to a multiple of 64
        model_class, config, generation = arch.model(rows, first, num_layers, hidden_size, full)
        torch.manual_seed(seed)
        model = model_class(config)
        model.generation_config = generation
        model.save_pretrained(tmp)
        atomic_write_json(tmp / STAMP, stamp)  # last: a folder with a stamp is complete

    return atomic_build_dir(out, build)


def build_tiny_qwen3(out_dir: str | os.PathLike, num_layers: int = 2, hidden_size: int = 64, seed: int = 0,
                     vocab: str = "full") -> Path:
    """The tiny Qwen3 (``vocab``: ``full`` / ``qwen3``, Qwen3's ids, or ``small``)."""
    return build_tiny(QWEN3, out_dir, num_layers, hidden_size, seed, "full" if vocab == "qwen3" else vocab)


def build_tiny_llama3(out_dir: str | os.PathLike, num_layers: int = 2, hidden_size: int = 64, seed: int = 0,
                      vocab: str = "full") -> Path:
    """The tiny LLaMA-3 (``vocab``: ``full``, Llama-3's 128,256 ids, or ``small``)."""
    return build_tiny(LLAMA3, out_dir, num_layers, hidden_size, seed, vocab)


# ---------------------------------------------------------------------------------------------
# command
# ---------------------------------------------------------------------------------------------
def options_help() -> str:
    return describe(FixtureConfig)


def main(argv: list[str]) -> int:
    cfg = from_argv(FixtureConfig, argv)
    if not cfg.out_dir:
        raise ConfigError("fixture needs out_dir=PATH")
    if cfg.vocab in ARCHS and cfg.vocab != cfg.arch:
        raise ConfigError(f"vocab={cfg.vocab} is the full vocabulary of arch={cfg.vocab}, not of arch={cfg.arch}: "
                          "use vocab=full or vocab=small")
    arch = ARCHS[cfg.arch]
    vocab = "small" if cfg.vocab == "small" else "full"
    path = build_tiny(arch, cfg.out_dir, cfg.num_layers, cfg.hidden_size, cfg.seed, vocab)
    kind = f"full vocabulary, {arch.label} ids" if vocab == "full" else "small vocabulary"
    print(f"tiny {arch.label} ({kind}) written to {path}")
    return 0
