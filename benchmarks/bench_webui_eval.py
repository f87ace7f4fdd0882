"""The "Thinking eval" tab against what a LlamaBoard user has today: LLaMA-Factory's own predict path
(``llamafactory-cli train`` with ``stage: sft``, ``do_predict``, ``predict_with_generate``), on the
same prompts, model and ``max_new_tokens``, greedy, thinking mode, in the same run.

The tab runs ``llamafactory-ext eval`` (the command line it builds from its form, ``eval_tab.eval_argv``,
started the way it starts it, ``jobs.Job``), so its speed is the command's. Prompts: the first N
ITALIC questions (../shared/data, else an ITALIC-shaped generated set), zero-shot, rendered by
``data.mcq`` (system "Sei un assistente utile." + the user turn) for both; LLaMA-Factory's template
encodes them in both (qwen3, enable_thinking true). Printed: generation time (ours: the per-mode
``wall_time_s`` of results.json; LLaMA-Factory: ``predict_runtime``), items/s, each whole process,
the ratios, and how many greedy outputs are identical.

LLaMA-Factory's predict path imports jieba, nltk and rouge-chinese (its BLEU / ROUGE scores), which
its install does not pull; without them only our side runs and the script says what is missing.

    python benchmarks/bench_webui_eval.py                       # tiny Qwen3, CPU, 128 prompts, batch 32, 32 new tokens
    python benchmarks/bench_webui_eval.py n=256 batch_size=64 max_new_tokens=64 model=PATH threads=2   # (default threads=1)
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PREDICT_NEEDS = ("jieba", "nltk", "rouge_chinese")  # imported by llamafactory/train/sft/metric.py


def _args(argv: list[str]) -> dict[str, str]:
    return dict(a.partition("=")[::2] for a in argv)


def italic_source(work: Path, n: int) -> Path:
    real = REPO.parent / "shared" / "data" / "italic" / "italic.jsonl"
    if real.is_file():
        return real
    path = work / "italic.jsonl"  # ITALIC's GitHub layout
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"question": f"Domanda {i}: quale opzione è corretta?" + " parola" * (i % 17),
                                 "options": [{"A": "prima"}, {"B": "seconda"}, {"C": "terza"}, {"D": "quarta"}],
                                 "answer": "B", "category": "geography", "macro_category": "culture and commonsense"},
                                ensure_ascii=False) + "\n" for i in range(n))
    return path


def run_ours(model: str, source: Path, work: Path, n: int, batch: int, new: int, template: str, env: dict) -> dict:
    from llamafactory_ext.webui.eval_tab import eval_argv
    from llamafactory_ext.webui.jobs import Job

    top = {"model_name": "", "model_path": model, "finetuning_type": "lora", "checkpoint": [], "template": template}
    form = {"task": "italic", "source": str(source), "modes": "on", "limit": n, "max_new_tokens": new, "backend": "hf",
            "cutoff": "wrong", "baseline": "", "output_dir": str(work / "ours"), "overwrite": True,
            "extra": f"batch_size={batch} device=cpu progress=false"}
    argv = eval_argv(top, form)
    started = time.perf_counter()
    job = Job(argv, cwd=work, env=env)
    code = job.wait()
    wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"llamafactory-ext eval failed ({code}):\n{job.output()[-3000:]}")
    results = json.loads((work / "ours" / "results.json").read_text())
    rows = [json.loads(x) for x in (work / "ours" / "predictions.jsonl").read_text().splitlines()]
    return {"gen_s": results["modes"]["think"]["wall_time_s"], "wall_s": wall, "command": job.command(),
            "outputs": {r["id"]: r["output"] for r in rows}}


def run_llamafactory(model: str, source: Path, work: Path, n: int, batch: int, new: int, template: str, env: dict) -> dict:
    import yaml

    from llamafactory_ext.data.italic import load_italic
    from llamafactory_ext.data.mcq import SYSTEM_PROMPT, build_messages
    from llamafactory_ext.runtime import llamafactory_cli

    data = work / "lf_data"
    data.mkdir()
    items = load_italic(str(source), limit=n)
    with open(data / "italic_bench.jsonl", "w", encoding="utf-8") as fh:
        for item in items:
            turns = [{"role": "system", "content": SYSTEM_PROMPT}, *build_messages(item),
                     {"role": "assistant", "content": item.answer}]
            fh.write(json.dumps({"messages": turns}, ensure_ascii=False) + "\n")
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
            "system_tag": "system"}
    (data / "dataset_info.json").write_text(json.dumps({"italic_bench": {
        "file_name": "italic_bench.jsonl", "formatting": "sharegpt", "columns": {"messages": "messages"}, "tags": tags}}))
    recipe = {"stage": "sft", "do_predict": True, "predict_with_generate": True, "model_name_or_path": model,
              "template": template, "enable_thinking": True, "dataset_dir": str(data), "eval_dataset": "italic_bench",
              "cutoff_len": 4096, "max_new_tokens": new, "do_sample": False, "per_device_eval_batch_size": batch,
              "output_dir": str(work / "lf_out"), "overwrite_output_dir": True, "report_to": "none",
              "finetuning_type": "lora", "bf16": False, "preprocessing_num_workers": 1}
    (work / "predict.yaml").write_text(yaml.safe_dump(recipe))
    started = time.perf_counter()
    proc = subprocess.run([llamafactory_cli(), "train", str(work / "predict.yaml")], cwd=work, env=env,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"llamafactory-cli train (predict) failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    metrics = json.loads((work / "lf_out" / "predict_results.json").read_text())
    rows = [json.loads(x) for x in (work / "lf_out" / "generated_predictions.jsonl").read_text().splitlines()]
    return {"gen_s": metrics["predict_runtime"], "wall_s": wall,
            "outputs": {item.id: row["predict"] for item, row in zip(items, rows)}}


def main(argv: list[str]) -> int:
    from llamafactory_ext.fixtures import build_tiny_qwen3
    from llamafactory_ext.runtime import cpu_env

    args = _args(argv)
    n, batch, new = int(args.get("n", 128)), int(args.get("batch_size", 32)), int(args.get("max_new_tokens", 32))
    template = args.get("template", "qwen3")
    env = cpu_env(threads=int(args.get("threads", 1)))  # one thread per process: steadier on a shared 2-core machine
    with tempfile.TemporaryDirectory(prefix="bench-webui-eval-") as tmp:
        work = Path(tmp)
        model = args.get("model") or str(build_tiny_qwen3(Path(tempfile.gettempdir()) / "bench-tiny-qwen3"))
        source = italic_source(work, n)
        print(f"model {model}; {n} ITALIC prompts from {source}; batch {batch}; max_new_tokens {new}; greedy; think mode")
        ours = run_ours(model, source, work, n, batch, new, template, env)
        print(f"\nThinking eval tab = {ours['command'].splitlines()[-1]}")
        print(f"  generating {ours['gen_s']:7.2f} s  {n / ours['gen_s']:7.1f} items/s   whole process {ours['wall_s']:6.1f} s")
        missing = [m for m in PREDICT_NEEDS if importlib.util.find_spec(m) is None]
        if missing:
            print(f"\nLLaMA-Factory's predict path needs {', '.join(PREDICT_NEEDS)}; missing here: {', '.join(missing)} "
                  "(pip install jieba nltk rouge-chinese). No ratio printed.")
            return 3
        lf = run_llamafactory(model, source, work, n, batch, new, template, env)
        print("LLaMA-Factory predict (llamafactory-cli train, do_predict, predict_with_generate)")
        print(f"  generating {lf['gen_s']:7.2f} s  {n / lf['gen_s']:7.1f} items/s   whole process {lf['wall_s']:6.1f} s")
        same = sum(ours["outputs"].get(k, "").strip() == v.strip() for k, v in lf["outputs"].items())
        print(f"\nratio (LLaMA-Factory / tab): generating {lf['gen_s'] / ours['gen_s']:.2f}x, "
              f"whole process {lf['wall_s'] / ours['wall_s']:.2f}x")
        print(f"identical greedy outputs: {same}/{len(lf['outputs'])} (special tokens: both skip them)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
