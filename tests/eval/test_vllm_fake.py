"""backend=vllm against a FAKE ``vllm`` module injected into ``sys.modules`` (this is not vLLM).

vLLM needs a GPU, so it is not installed here. The fake has vLLM's call signatures (docs:
``LLM(model=..., tokenizer=..., enable_lora=..., max_lora_rank=..., ...)``,
``LLM.generate(prompts, sampling_params, *, use_tqdm, lora_request)`` with
``vllm.inputs.TokensPrompt(prompt_token_ids=...)``, ``SamplingParams(n, temperature, top_p,
max_tokens, seed, skip_special_tokens)``, ``vllm.lora.request.LoRARequest(lora_name,
lora_int_id, lora_path)``, ``RequestOutput.outputs[0]`` with ``text``, ``token_ids``,
``finish_reason``). It records every call; the tests check that our engine builds the
requests vLLM expects. The GPU path itself is verified only where a GPU was available.
"""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from llamafactory_ext.eval.runner import run
from llamafactory_ext.io import read_jsonl
from tests.eval.common import eval_cfg


@dataclass
class FakeCompletion:
    index: int
    text: str
    token_ids: list
    cumulative_logprob: float | None
    logprobs: None
    finish_reason: str | None = None


@dataclass
class FakeRequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list
    prompt_logprobs: None
    outputs: list
    finished: bool


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = 16
    seed: int | None = None
    skip_special_tokens: bool = True
    stop_token_ids: list = field(default_factory=list)


class TokensPrompt(dict):
    def __init__(self, *, prompt_token_ids):
        super().__init__(prompt_token_ids=prompt_token_ids)


@dataclass
class LoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str = ""


class LLM:
    instances: ClassVar[list] = []

    def __init__(self, model: str, tokenizer: str | None = None, *, enable_lora: bool = False, max_lora_rank: int = 16,
                 dtype: str = "auto", seed: int = 0, gpu_memory_utilization: float = 0.9,
                 tensor_parallel_size: int = 1, max_model_len: int | None = None, **kwargs):
        self.kwargs = dict(model=model, tokenizer=tokenizer, enable_lora=enable_lora, max_lora_rank=max_lora_rank,
                           dtype=dtype, seed=seed, gpu_memory_utilization=gpu_memory_utilization,
                           tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len, **kwargs)
        self.calls: list = []
        LLM.instances.append(self)

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True, lora_request=None, priority=None):
        assert isinstance(sampling_params, SamplingParams)
        self.calls.append({"prompts": prompts, "sampling": sampling_params, "lora": lora_request, "use_tqdm": use_tqdm})
        outs = []
        for n, p in enumerate(prompts):
            assert isinstance(p, TokensPrompt) and all(isinstance(t, int) for t in p["prompt_token_ids"])
            ids = p["prompt_token_ids"]
            # scripted "model": think-mode prompts end at "assistant\n" (Qwen3 id 198), nothink prompts
            # with the empty think block ("</think>" 151668, "\n\n" 271); odd positions hit max_tokens
            cut = n % 2 == 1
            text = "<think>\nRagiono" if cut else "<think>\nLa capitale è Roma.\n</think>\n\nRisposta: B"
            if ids[-2:] == [151668, 271]:
                text = "B"
            else:
                assert ids[-1] == 198
            outs.append(FakeRequestOutput(str(n), None, ids, None,
                                          [FakeCompletion(0, text, [1] * 5, None, None, "length" if cut else "stop")], True))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, SamplingParams
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = TokensPrompt
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = LoRARequest
    vllm.inputs, vllm.lora, lora.request = inputs, lora, request
    for name, mod in {"vllm": vllm, "vllm.inputs": inputs, "vllm.lora": lora, "vllm.lora.request": request}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    LLM.instances.clear()
    return vllm


def test_vllm_backend_requests_and_scoring(tmp_path, fake_vllm, tiny_model, italic_file):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 48, "peft_type": "LORA"}')
    res = run(eval_cfg(tiny_model, italic_file, tmp_path / "o", adapter_name_or_path=str(adapter), backend="vllm", batch_size=2,
                       max_new_tokens=64, max_lora_rank=32, max_model_len=2048, dtype="bfloat16", thinking="both"))
    (llm,) = LLM.instances
    assert llm.kwargs["model"] == str(tiny_model) and llm.kwargs["tokenizer"] == str(tiny_model)
    assert llm.kwargs["enable_lora"] is True
    assert llm.kwargs["max_lora_rank"] == 64  # asked 32, the adapter has r 48: raised to vLLM's next slot
    assert (llm.kwargs["dtype"], llm.kwargs["max_model_len"], llm.kwargs["gpu_memory_utilization"]) == ("bfloat16", 2048, 0.9)
    assert len(llm.calls) == 6  # 5 items, chunks of 2, two modes
    for call in llm.calls:
        assert call["lora"] == LoRARequest("adapter", 1, str(adapter)) and call["use_tqdm"] is False
        s = call["sampling"]
        assert (s.temperature, s.top_p, s.max_tokens, s.n, s.seed, s.skip_special_tokens) == (0.0, 1.0, 64, 1, None, True)
    # the prompts are exactly what PromptEncoder builds, with Qwen3's real ids
    from transformers import AutoTokenizer

    from llamafactory_ext.prompts import PromptEncoder

    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    first = llm.calls[0]["prompts"][0]["prompt_token_ids"]
    assert first[-3:] == [151644, 77091, 198]  # <|im_start|>assistant\n
    user = tok.decode(first).split("<|im_start|>user\n")[1].split("<|im_end|>")[0]
    assert first == PromptEncoder(tok, "qwen3", "think").encode([{"role": "user", "content": user}], "Sei un assistente utile.")
    think, nothink = res["modes"]["think"], res["modes"]["nothink"]
    rows = read_jsonl(tmp_path / "o" / "predictions.jsonl")
    # odd positions in each chunk stopped at max_tokens ("length"): cut off, scored wrong, counted
    assert think["cut_off"] == 2 and think["format"]["cut_off"] == 2 / 5 and think["unfinished"] == 0
    assert think["correct"] == sum(1 for r in rows if r["mode"] == "think" and r["gold"] == "B" and r["finished"])
    assert nothink["cut_off"] == 2 and nothink["correct"] == 1  # only item 0 has gold B
    assert all(r["num_tokens"] == 5 for r in rows)
    # settings of a vLLM run: the backend is recorded, the hf device is not resolved
    recorded = json.loads((tmp_path / "o" / "predictions.jsonl.settings.json").read_text())
    assert (recorded["backend"], recorded["dtype"], recorded["max_model_len"]) == ("vllm", "bfloat16", 2048)


def test_vllm_seeds_reach_sampling_params(tmp_path, fake_vllm, tiny_model, italic_file):
    run(eval_cfg(tiny_model, italic_file, tmp_path / "o", backend="vllm", thinking="off", temperature=0.6, top_p=0.95,
                 seeds=[42, 123], limit=2, max_new_tokens=8))
    (llm,) = LLM.instances
    assert [(c["sampling"].seed, c["sampling"].temperature, c["sampling"].top_p) for c in llm.calls] == [(42, 0.6, 0.95), (123, 0.6, 0.95)]
    assert llm.kwargs["enable_lora"] is False and all(c["lora"] is None for c in llm.calls)


def test_vllm_missing_is_a_clear_error(tmp_path, tiny_model, italic_file, monkeypatch):
    from llamafactory_ext.config import UserError

    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(UserError, match="backend=vllm needs the vllm package"):
        run(eval_cfg(tiny_model, italic_file, tmp_path / "o", backend="vllm"))
