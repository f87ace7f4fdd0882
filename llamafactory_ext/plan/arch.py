"""The base model's numbers, read from its ``config.json`` alone (never the weights).

``model_name_or_path`` may be a local directory, a ``config.json`` file, a Hub id found in the
local Hugging Face cache, or one of the Hub ids whose config facts ship with the project
(``resources/model_configs``), so the planner works offline.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from llamafactory_ext.config import UserError
from llamafactory_ext.plan import hybrid as hybrid_mod
from llamafactory_ext.plan.hybrid import COMPOSITE_TYPES, HYBRID_TYPES, Hybrid

RESOURCES = Path(__file__).resolve().parent.parent / "resources" / "model_configs"
SUPPORTED_TYPES = ("llama", "mistral", "qwen2", "qwen3", *HYBRID_TYPES)
PROJ_ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
PROJ_MLP = ("gate_proj", "up_proj", "down_proj")
PROJECTIONS = PROJ_ATTN + PROJ_MLP


class PlanError(UserError):
    """The recipe or model config cannot be planned (message names the file / key)."""


class ModelNotFound(PlanError):
    """``model_name_or_path`` names no config.json this machine has (the message says what to pass)."""


@dataclasses.dataclass(frozen=True)
class Arch:
    """The numbers of a decoder-only llama-like model that the plan needs."""

    model_type: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    attn_bias: bool  # bias on q/k/v (qwen2; llama's attention_bias also puts one on o_proj)
    o_bias: bool
    mlp_bias: bool
    qk_norm: bool  # qwen3: RMSNorm on q and k (head_dim weights each)
    dtype: str
    source: str
    max_positions: int | None = None  # longest sequence the config supports (rope scaling included)
    max_positions_from: str = ""  # how max_positions was read
    hybrid: Hybrid | None = None  # qwen3_5 / qwen3_5_moe / qwen3_next: layer kinds, experts, vision tower

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def linears(self) -> dict[str, tuple[int, int, bool]]:
        """Projection name -> (in_features, out_features, has_bias) of one llama-like decoder layer."""
        h, i = self.hidden, self.intermediate
        return {
            "q_proj": (h, self.q_dim, self.attn_bias),
            "k_proj": (h, self.kv_dim, self.attn_bias),
            "v_proj": (h, self.kv_dim, self.attn_bias),
            "o_proj": (self.q_dim, h, self.o_bias),
            "gate_proj": (h, i, self.mlp_bias),
            "up_proj": (h, i, self.mlp_bias),
            "down_proj": (i, h, self.mlp_bias),
        }

    def layer_linears(self, i: int) -> dict[str, tuple[int, int, bool]]:
        """The Linear layers of decoder layer ``i`` (they differ from layer to layer in hybrid models)."""
        if self.hybrid is None:
            return self.linears()
        return hybrid_mod.layer_linears(self.hybrid, i, self.hidden, self.intermediate, self.heads, self.kv_heads,
                                        self.head_dim, self.attn_bias)

    def linear_names(self) -> list[str]:
        """Every Linear name of the decoder layers (LoRA ``all``, LLaMA-Factory's find_all_linear_modules)."""
        return list(PROJECTIONS) if self.hybrid is None else hybrid_mod.linear_names(self.hybrid)

    def layer_norm_params(self) -> int:
        return 2 * self.hidden + (2 * self.head_dim if self.qk_norm else 0)

    def layer_linear_params(self, i: int = 0) -> int:
        return sum(a * b + (b if bias else 0) for a, b, bias in self.layer_linears(i).values())

    def layer_params(self, i: int = 0) -> int:
        if self.hybrid is None:
            return self.layer_linear_params() + self.layer_norm_params()
        return self.layer_linear_params(i) + hybrid_mod.layer_other_params(self.hybrid, i, self.hidden, self.head_dim)

    def decoder_linear_params(self) -> int:
        """Parameters inside the decoder layers' Linear modules (what bitsandbytes quantizes)."""
        return sum(self.layer_linear_params(i) for i in range(self.layers))

    def decoder_params(self) -> int:
        return sum(self.layer_params(i) for i in range(self.layers))

    def embed_params(self) -> int:
        return self.vocab * self.hidden

    def vision_params(self) -> int:
        """The vision tower and merger of a vision-language model (0 for a text model)."""
        return 0 if self.hybrid is None else self.hybrid.vision_tower + self.hybrid.vision_merger

    def total_params(self) -> int:
        lm_head = 0 if self.tied else self.vocab * self.hidden
        return self.decoder_params() + self.embed_params() + lm_head + self.hidden + self.vision_params()  # + final norm


def max_positions(cfg: dict[str, Any]) -> tuple[int | None, str]:
    """The longest sequence a config supports: ``max_position_embeddings``, or, when the config
    already carries RoPE scaling (``rope_scaling`` / transformers 5's ``rope_parameters`` with a
    ``factor`` and ``original_max_position_embeddings``), their product if larger."""
    mpe = cfg.get("max_position_embeddings")
    mpe = mpe if isinstance(mpe, int) and mpe > 0 else None
    rope = cfg.get("rope_scaling") or cfg.get("rope_parameters")
    if isinstance(rope, dict) and rope.get("factor") and rope.get("original_max_position_embeddings"):
        try:
            scaled = int(float(rope["original_max_position_embeddings"]) * float(rope["factor"]))
        except (TypeError, ValueError):
            scaled = 0
        if scaled > (mpe or 0):
            kind = rope.get("rope_type") or rope.get("type") or "rope"
            return scaled, (f"{kind} scaling in config.json: original_max_position_embeddings "
                            f"{rope['original_max_position_embeddings']} x factor {rope['factor']}")
    return mpe, "max_position_embeddings in config.json" if mpe else ""


def arch_from_config(cfg: dict[str, Any], source: str) -> Arch:
    model_type = cfg.get("model_type")
    if model_type not in SUPPORTED_TYPES:
        raise PlanError(
            f"{source}: model_type {model_type!r} is not supported by the planner "
            f"(supported: {', '.join(SUPPORTED_TYPES)}: llama-like and the hybrid Qwen3.5 / Qwen3-Next models)"
        )
    moe_only = model_type in ("qwen3_5_moe", "qwen3_5_moe_text")  # no dense MLP, no intermediate_size
    need = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size") + (() if moe_only else ("intermediate_size",))
    for key in need:
        if not isinstance(cfg.get(key), int) or cfg[key] <= 0:
            raise PlanError(f"{source}: config field {key!r} must be a positive integer, got {cfg.get(key)!r}")
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    attn_bias = bool(cfg.get("attention_bias", False)) or model_type == "qwen2"
    o_bias = bool(cfg.get("attention_bias", False)) and model_type in ("llama", "mistral")
    dtype = cfg.get("torch_dtype") or cfg.get("dtype") or "float32"
    longest, longest_from = max_positions(cfg)
    hybrid = None
    if model_type in HYBRID_TYPES:
        if problem := hybrid_mod.layer_types_problem(cfg):
            raise PlanError(f"config.json: {problem}")
        hybrid = hybrid_mod.hybrid_from_config(cfg, model_type, cfg.get("vision_config"))
    return Arch(
        model_type=model_type,
        hidden=cfg["hidden_size"],
        intermediate=int(cfg.get("intermediate_size") or 0),
        layers=cfg["num_hidden_layers"],
        heads=heads,
        kv_heads=kv,
        head_dim=head_dim,
        vocab=cfg["vocab_size"],
        tied=bool(cfg.get("tie_word_embeddings", model_type not in ("llama", "mistral", "qwen3", *HYBRID_TYPES))),
        attn_bias=attn_bias,
        o_bias=o_bias,
        mlp_bias=bool(cfg.get("mlp_bias", False)),
        qk_norm=model_type == "qwen3" or hybrid is not None,
        dtype=str(dtype),
        source=source,
        max_positions=longest,
        max_positions_from=longest_from,
        hybrid=hybrid,
    )


def shipped_configs() -> dict[str, str]:
    index = json.loads((RESOURCES / "index.json").read_text(encoding="utf-8"))
    return {k: v for k, v in index.items() if not k.startswith("_")}


def _hf_cache_config(model_id: str) -> Path | None:
    home = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache", "huggingface")), "hub"
    )
    snaps = Path(home) / ("models--" + model_id.replace("/", "--")) / "snapshots"
    if snaps.is_dir():
        for snap in sorted(snaps.iterdir()):
            if (snap / "config.json").is_file():
                return snap / "config.json"
    return None


def _not_found(model: str, shipped: dict[str, str]) -> str:
    """What to pass instead: a Hub id gets the one-file download; a path the id of the model it starts from."""
    known = ", ".join(sorted(shipped))
    looks_local = model.startswith((".", "/", "~")) or model.count("/") != 1 or Path(model.split("/")[0]).is_dir()
    hub = (f"if it is a Hub id, fetch only its config: `huggingface-cli download {model} config.json --local-dir DIR` "
           f"and pass model_name_or_path=DIR; ")
    return (f"model_name_or_path {model!r}: no config.json here (not a local folder, not in the local Hugging Face "
            f"cache, no shipped facts). {'' if looks_local else hub}if it is a folder a recipe writes (a merge, a full "
            f"fine-tune), pass the model it starts from instead, e.g. model_name_or_path=Qwen/Qwen3-8B (shipped facts: {known})")


def config_file(model_name_or_path: str) -> Path:
    """Local dir -> its config.json; Hub id -> local HF cache, else the shipped facts; else an error."""
    path = Path(model_name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise PlanError(f"model_name_or_path {model_name_or_path}: no config.json in that directory")
        return path / "config.json"
    if path.is_file() and path.name.endswith(".json"):
        return path
    cached = _hf_cache_config(model_name_or_path)
    if cached is not None:
        return cached
    shipped = shipped_configs()
    name = shipped.get(model_name_or_path)
    if name is None:
        raise ModelNotFound(_not_found(model_name_or_path, shipped))
    return RESOURCES / name


def load_model_config(model_name_or_path: str) -> tuple[dict[str, Any], str]:
    """The text model's config.json as a dict (a multimodal config's ``text_config``), and its file."""
    cfg_file = config_file(model_name_or_path)
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PlanError(f"{cfg_file}: cannot read config.json: {exc}") from exc
    if not isinstance(cfg, dict):
        raise PlanError(f"{cfg_file}: config.json must hold a JSON object")
    if "text_config" in cfg and "hidden_size" not in cfg:
        top = cfg
        cfg = {**top["text_config"], "tie_word_embeddings": top.get("tie_word_embeddings", False)}
        if top.get("model_type") in COMPOSITE_TYPES:  # planned as the class LLaMA-Factory loads: tower included
            cfg.update(model_type=top["model_type"], vision_config=top.get("vision_config") or {})
    return cfg, str(cfg_file)


def load_arch(model_name_or_path: str) -> Arch:
    cfg, source = load_model_config(model_name_or_path)
    return arch_from_config(cfg, source)
