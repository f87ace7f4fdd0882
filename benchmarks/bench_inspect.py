"""Wall time of ``llamafactory-ext inspect``, next to LLaMA-Factory's bare ``get_dataset`` on the same rows.

    python benchmarks/bench_inspect.py                 # built-in samples + 10,000 generated rows
    python benchmarks/bench_inspect.py --rows 2000     # a smaller generated set
    python benchmarks/bench_inspect.py --skip-big      # built-in samples only

Two workloads, both with ``recipes/v3_mixed.yaml`` (qwen3, ``enable_thinking: null``, packing 2048 with
neat_packing) and the tiny fixture's tokenizer (Qwen3's real vocabulary and ids, built offline):

1. the built-in samples (``multit_mixed``, prepared by the real converters);
2. ``--rows`` (default 10,000) generated Mult-IT-style sharegpt rows, half with a ``<think>`` trace
   (V3-like), written to a temp dir.

For each, two fresh processes run one after the other:

- ``inspect``: ``python -m llamafactory_ext.cli inspect RECIPE dataset_dir=... tokenizer=DIR format=json``;
- ``baseline``: the data part of ``llamafactory-cli train`` on the same recipe and rows, nothing else:
  ``get_train_args`` (CPU overrides) + ``load_tokenizer`` + ``get_template_and_fix_tokenizer`` +
  ``get_dataset`` (the packed train set).

Each process reports its import time and its work time (inspect: ``inspect_recipe``; baseline:
tokenizer + ``get_dataset``); the table adds the whole process wall time. Figures are printed, never
asserted. Goal: seconds on the samples, under a minute on 10,000 rows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RECIPE = REPO / "recipes" / "v3_mixed.yaml"
TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
        "system_tag": "system"}
WORDS = ["storia", "arte", "lingua", "nazione", "capitale", "fiume", "monte", "regione", "secolo", "autore", "opera",
         "poesia", "romanzo", "città", "guerra", "re", "papa", "repubblica", "costituzione", "legge", "verbo", "nome",
         "aggettivo", "sinonimo", "contrario", "accento"]
REASON = ["considero", "ogni", "opzione", "escludo", "quella", "errata", "perché", "il", "testo", "dice", "che", "la",
          "data", "corrisponde", "quindi", "ricordo", "l'autore", "scrisse", "verifico", "regola", "grammaticale",
          "dunque", "risposta", "corretta", "è"]

INSPECT_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
from llamafactory_ext.inspect import inspect_recipe, quiet, to_json
quiet()
import llamafactory.data, llamafactory.model  # noqa: F401 - counted as import time
t1 = time.perf_counter()
report = inspect_recipe(sys.argv[1:])
t2 = time.perf_counter()
text = to_json(report)
t3 = time.perf_counter()
d = next(iter(report["datasets"].values()))
print(json.dumps({"import_s": t1 - t0, "work_s": t3 - t1, "rows": d["rows"], "trained": d["trained_tokens"],
                  "packed": d["packed_sequences"], "fill": d["packing_fill"], "lints": len(report["lints"]),
                  "parity": report["parity"]}))
"""

BASELINE_SCRIPT = r"""
import json, os, sys, time
os.environ.setdefault("LLAMAFACTORY_VERBOSITY", "ERROR")
t0 = time.perf_counter()
import datasets
datasets.disable_progress_bars()
from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
from llamafactory.hparams import get_train_args
from llamafactory.model import load_tokenizer
from llamafactory_ext.config import load_config
from llamafactory_ext.runtime import CPU_OVERRIDES
t1 = time.perf_counter()
recipe, dataset_dir, dataset, tokenizer, out = sys.argv[1:6]
args = {**load_config(recipe), **CPU_OVERRIDES, "model_name_or_path": tokenizer, "dataset_dir": dataset_dir,
        "dataset": dataset, "output_dir": out}
model_args, data_args, training_args, finetuning_args, _ = get_train_args(args)
module = load_tokenizer(model_args)
template = get_template_and_fix_tokenizer(module["tokenizer"], data_args)
t2 = time.perf_counter()
ds = get_dataset(template, model_args, data_args, training_args, stage="sft", **module)["train_dataset"]
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "tokenizer_s": t2 - t1, "get_dataset_s": t3 - t2, "work_s": t3 - t1,
                  "packed": len(ds)}))
"""


def generate_rows(folder: Path, n: int, seed: int = 0) -> Path:
    """``n`` Mult-IT-style sharegpt rows (system, Italian MCQ prompt, letter; every other row with a trace)."""
    from llamafactory_ext.thinking import format_thinking

    rnd = random.Random(seed)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    with open(folder / "data" / "multit_big.jsonl", "w", encoding="utf-8") as fh:
        for i in range(n):
            k = rnd.choice((3, 4, 4, 4, 5))
            options = "\n".join(f"{'ABCDE'[j]}) " + " ".join(rnd.choices(WORDS, k=rnd.randint(1, 8))) for j in range(k))
            question = f"Domanda {i}: " + " ".join(rnd.choices(WORDS, k=rnd.randint(8, 60))) + "?"
            user = ("La seguente è una domanda a scelta multipla. Rispondi con la sola lettera dell'opzione corretta."
                    f"\n\n{question}\n{options}")
            letter = "ABCDE"[rnd.randrange(k)]
            answer = letter if i % 2 else format_thinking(" ".join(rnd.choices(REASON, k=rnd.randint(40, 400))), letter)
            row = {"messages": [{"role": "system", "content": "Sei un assistente utile."},
                                {"role": "user", "content": user}, {"role": "assistant", "content": answer}]}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    info = {"multit_big": {"file_name": "data/multit_big.jsonl", "formatting": "sharegpt",
                           "columns": {"messages": "messages"}, "tags": TAGS}}
    (folder / "dataset_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return folder


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, dict]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd[:6])} ...\n{proc.stderr[-3000:]}")
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def bench(label: str, dataset_dir: Path, dataset: str, tokenizer: Path, work: Path, env: dict[str, str]) -> None:
    inspect_cmd = [sys.executable, "-c", INSPECT_SCRIPT, str(RECIPE), f"dataset_dir={dataset_dir}",
                   f"dataset={dataset}", f"tokenizer={tokenizer}", "format=json"]
    base_cmd = [sys.executable, "-c", BASELINE_SCRIPT, str(RECIPE), str(dataset_dir), dataset, str(tokenizer),
                str(work / f"out-{dataset}")]
    base_wall, base = timed(base_cmd, env)
    ins_wall, ins = timed(inspect_cmd, env)
    print(f"\n{label}: {ins['rows']:,} rows, {ins['trained']:,} trained tokens, {ins['packed']} packed sequences "
          f"(get_dataset: {base['packed']}), packing fill {ins['fill']}, parity {ins['parity']}")
    print(f"  {'':<28}{'process wall':>14}{'imports':>10}{'work':>10}")
    print(f"  {'LLaMA-Factory get_dataset':<28}{base_wall:>13.1f}s{base['import_s']:>9.1f}s{base['work_s']:>9.1f}s"
          f"   (tokenizer {base['tokenizer_s']:.1f}s + get_dataset {base['get_dataset_s']:.1f}s)")
    print(f"  {'llamafactory-ext inspect':<28}{ins_wall:>13.1f}s{ins['import_s']:>9.1f}s{ins['work_s']:>9.1f}s"
          f"   (tokenizer, read, encode, parity, lints, JSON)")
    print(f"  inspect minus baseline: {ins_wall - base_wall:+.1f}s process wall, {ins['work_s'] - base['work_s']:+.1f}s work")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--keep", action="store_true")
    ns = parser.parse_args()

    work = Path(ns.workdir or tempfile.mkdtemp(prefix="bench-inspect-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_DATASETS_CACHE=str(work / "hf-datasets"), LLAMAFACTORY_EXT_CACHE=str(work / "cache"),
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", CUDA_VISIBLE_DEVICES="",
               LLAMAFACTORY_VERBOSITY="ERROR", DISABLE_VERSION_CHECK="1")
    try:
        os.environ["LLAMAFACTORY_EXT_CACHE"] = env["LLAMAFACTORY_EXT_CACHE"]
        from llamafactory_ext.data.samples import prepare_samples
        from llamafactory_ext.inspect import fixture_tokenizer_dir

        tokenizer = fixture_tokenizer_dir()
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; recipe {RECIPE.relative_to(REPO)}; "
              f"tokenizer {tokenizer}")
        samples = prepare_samples(work / "samples")
        bench("built-in samples (multit_mixed)", samples, "multit_mixed", tokenizer, work, env)
        if not ns.skip_big:
            t = time.perf_counter()
            big = generate_rows(work / "big", ns.rows)
            print(f"\n(generated {ns.rows:,} rows in {time.perf_counter() - t:.1f}s)")
            bench(f"generated Mult-IT-style rows (multit_big, {ns.rows:,})", big, "multit_big", tokenizer, work, env)
    finally:
        if not ns.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
