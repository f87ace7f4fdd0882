"""The tiny Qwen3 fixture: a local model directory with Qwen3's architecture and a tokenizer
with Qwen3's real vocabulary and special-token ids, built offline.

The tokenizer is Qwen's own byte-level BPE: the 151,643 ranks of ``qwen.tiktoken`` (shipped
inside the PyPI package ``dashscope``), converted by transformers' ``TikTokenConverter`` with
Qwen's pre-tokenizer regex, then Qwen3's 26 added tokens in order. So ids match Qwen3-8B:
``<|endoftext|>`` 151643, ``<|im_start|>`` 151644, ``<|im_end|>`` 151645, ``<think>`` 151667,
``</think>`` 151668 (the think tags are not "special": ``skip_special_tokens`` keeps them).

The model is a randomly initialised ``Qwen3ForCausalLM`` (2 layers, hidden 64 by default).
It is meant for tests and the CPU demo, never for quality.

Command: ``llamafactory-ext fixture out_dir=PATH [num_layers=2] [hidden_size=64] [seed=0]``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from pathlib import Path

USAGE = "out_dir=PATH [num_layers=2] [hidden_size=64] [seed=0]"

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
FIXTURE_VERSION = 1


@dataclasses.dataclass
class FixtureConfig:
    out_dir: str = dataclasses.field(metadata={"help": "directory to write (created)"})
    num_layers: int = dataclasses.field(default=2, metadata={"help": "decoder layers (2-4)"})
    hidden_size: int = dataclasses.field(default=64, metadata={"help": "hidden size (<= 128)"})
    seed: int = dataclasses.field(default=0, metadata={"help": "init seed"})


def qwen_tiktoken_path() -> Path:
    """``qwen.tiktoken`` inside the installed ``dashscope`` package (located, not imported)."""
    spec = importlib.util.find_spec("dashscope")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the tiny fixture needs the PyPI package 'dashscope' (it ships qwen.tiktoken): pip install dashscope")
    path = Path(list(spec.submodule_search_locations)[0]) / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise RuntimeError(f"qwen.tiktoken not found at {path}")
    return path


def build_tokenizer_json(out_dir: Path) -> None:
    """Write tokenizer.json + tokenizer_config.json with Qwen3's vocabulary and ids."""
    from tokenizers import AddedToken
    from transformers.convert_slow_tokenizer import TikTokenConverter

    tok = TikTokenConverter(vocab_file=str(qwen_tiktoken_path()), pattern=QWEN_PATTERN).converted()
    for content, special in QWEN3_ADDED_TOKENS:
        token = AddedToken(content, special=special, normalized=False)
        if special:
            tok.add_special_tokens([token])
        else:
            tok.add_tokens([token])
    for content, expected in QWEN3_IDS.items():
        got = tok.token_to_id(content)
        if got != expected:  # the whole point of the fixture: fail loudly
            raise RuntimeError(f"tiny tokenizer: {content} got id {got}, Qwen3 has {expected}")
    tok.save(str(out_dir / "tokenizer.json"))
    added = {
        str(151643 + i): {
            "content": c, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False, "special": s,
        }
        for i, (c, s) in enumerate(QWEN3_ADDED_TOKENS)
    }
    config = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


def build_tiny_qwen3(out_dir: str | os.PathLike, num_layers: int = 2, hidden_size: int = 64, seed: int = 0) -> Path:
    """Write the tiny Qwen3 model + tokenizer to ``out_dir`` and return the path.

    Re-uses an existing, complete directory written by the same fixture version and shape.
    """
    if not 1 <= num_layers <= 8:
        raise ValueError("num_layers must be between 1 and 8")
    if hidden_size % 16 or not 16 <= hidden_size <= 512:
        raise ValueError("hidden_size must be a multiple of 16 between 16 and 512")
    out = Path(out_dir)
    stamp = {"fixture_version": FIXTURE_VERSION, "num_layers": num_layers, "hidden_size": hidden_size, "seed": seed}
    stamp_file = out / "tiny_fixture.json"
    if stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        return out

    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    heads = max(2, hidden_size // 16)
    config = Qwen3Config(
        vocab_size=QWEN3_VOCAB_SIZE,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        head_dim=hidden_size // heads,
        max_position_embeddings=4096,
        rope_theta=1_000_000.0,
        tie_word_embeddings=True,
        bos_token_id=QWEN3_IDS["<|endoftext|>"],
        eos_token_id=QWEN3_IDS["<|im_end|>"],
        pad_token_id=QWEN3_IDS["<|endoftext|>"],
        dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=QWEN3_IDS["<|endoftext|>"],
        eos_token_id=[QWEN3_IDS["<|im_end|>"], QWEN3_IDS["<|endoftext|>"]],
        pad_token_id=QWEN3_IDS["<|endoftext|>"],
        do_sample=False,
    )
    model.save_pretrained(out)
    build_tokenizer_json(out)
    stamp_file.write_text(json.dumps(stamp), encoding="utf-8")
    return out


def options_help() -> str:
    from llamafactory_ext.config import describe

    return describe(FixtureConfig)


def main(argv: list[str]) -> int:
    from llamafactory_ext.config import from_argv

    cfg = from_argv(FixtureConfig, argv)
    path = build_tiny_qwen3(cfg.out_dir, cfg.num_layers, cfg.hidden_size, cfg.seed)
    print(f"tiny Qwen3 written to {path}")
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


def _fmt(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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
    return [f"{k}={_fmt(v)}" for k, v in keys.items()]


def cpu_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a ``llamafactory-cli`` subprocess on CPU, offline."""
    env = dict(os.environ if base is None else base)
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
