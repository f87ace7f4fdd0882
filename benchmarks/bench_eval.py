"""Batched ``hf`` generation vs one prompt at a time, same model, same prompts, same run.

Default: the tiny Qwen3 fixture on CPU, 256 ITALIC prompts (real rows from ../shared/data when
present, else a generated ITALIC-shaped set), greedy, ``max_new_tokens`` 8, think mode
prompts through ``prompts.PromptEncoder`` (LLaMA-Factory's qwen3 template). Prints items/s
of both and the speed-up (goal: >= 5x on CPU with the tiny model). Also checks that both
ways produce the same greedy outputs on the first prompts.

    python benchmarks/bench_eval.py                          # tiny model, CPU
    python benchmarks/bench_eval.py n=256 batch_size=64 max_new_tokens=8
    python benchmarks/bench_eval.py model=Qwen/Qwen3-8B device=cuda n=256 batch_size=64 max_new_tokens=64
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _args(argv: list[str]) -> dict[str, str]:
    out = {}
    for a in argv:
        k, _, v = a.partition("=")
        out[k] = v
    return out


def _items(n: int):
    from llamafactory_ext.data.mcq import MCQItem

    real = REPO.parent / "shared" / "data" / "italic" / "italic.jsonl"
    if real.is_file():
        from llamafactory_ext.data.italic import load_italic

        return load_italic(str(real), limit=n), str(real)
    items = [MCQItem(id=str(i), question=f"Domanda numero {i}: quale opzione è corretta?" + " parola" * (i % 17),
                     options=[("A", "prima"), ("B", "seconda"), ("C", "terza"), ("D", "quarta")], answer="B",
                     category="geography") for i in range(n)]
    return items, "generated ITALIC-shaped items"


def main(argv: list[str]) -> int:
    import torch

    from llamafactory_ext.data.mcq import SYSTEM_PROMPT, build_messages
    from llamafactory_ext.eval.engine import GenParams, load_engine
    from llamafactory_ext.fixtures import build_tiny_qwen3
    from llamafactory_ext.prompts import PromptEncoder

    args = _args(argv)
    n = int(args.get("n", 256))
    batch = int(args.get("batch_size", 64))
    new = int(args.get("max_new_tokens", 8))
    model = args.get("model") or str(build_tiny_qwen3(Path(tempfile.gettempdir()) / "bench-tiny-qwen3"))
    device = args.get("device", "cpu")
    threads = args.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    items, where = _items(n)
    engine = load_engine("hf", model, batch_size=batch, device=device)
    enc = PromptEncoder(engine.tokenizer, "qwen3", "think")
    prompts = [enc.encode(build_messages(it), SYSTEM_PROMPT) for it in items]
    params = GenParams(max_new_tokens=new)
    lens = sorted(len(p) for p in prompts)
    print(f"model {model} on {device}, torch threads {torch.get_num_threads()}; {len(prompts)} prompts from {where}")
    print(f"prompt tokens: min {lens[0]}, median {lens[len(lens) // 2]}, max {lens[-1]}; max_new_tokens {new}, greedy")

    engine.generate(prompts[:2], params, batch_size=2)  # warm-up
    t = time.perf_counter()
    batched = engine.generate(prompts, params, batch_size=batch)
    t_batched = time.perf_counter() - t

    t = time.perf_counter()
    single = engine.generate(prompts, params, batch_size=1)
    t_single = time.perf_counter() - t

    same = sum(a.text == b.text for a, b in zip(batched, single))
    print(f"one prompt at a time : {t_single:8.2f} s  {len(prompts) / t_single:8.2f} items/s")
    print(f"batched (batch {batch:>3})  : {t_batched:8.2f} s  {len(prompts) / t_batched:8.2f} items/s")
    print(f"speed-up             : {t_single / t_batched:8.2f} x   (goal >= 5x)")
    print(f"identical greedy outputs batched vs single: {same}/{len(prompts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
