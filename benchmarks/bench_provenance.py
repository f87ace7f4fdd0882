"""What the provenance check costs, next to what it protects, in the same run.

(a) A tiny eval: the small-vocabulary tiny Qwen3 fixture and 16 ITALIC items from ../shared/data,
    one mode (nothink), 4 new tokens, as a real ``llamafactory-ext eval`` process; next to it the
    time ``provenance.collect`` takes, in a fresh process, for what that eval reads (the source
    folder, the model folder, the resolved config, the versions). Goal: <= 5 % of the eval.
(b) A model folder of several GB made for the benchmark in /tmp (shards of random bytes behind
    valid safetensors headers, an index, config and tokenizer files; deleted at the end):
    ``provenance.identify`` against reading every byte (sha256 of all files), cold and warm, plus a
    memoised second call (a status check over many trials), and the share of bytes sampled.
(c) A sweep's status check over N trials (``sweep.trials.status``: each trial's provenance, the
    recipe and evaluator config as resolved, the data file and model folder identified, compared
    with ``<trial>/provenance.json``): planning the trials (content-keyed tokenized data), the first
    check in a fresh process (each file read once) and a memoised one (what a sweep does after every
    trial), next to hashing the data file once in the same run.

Cold reads: ``/proc/sys/vm/drop_caches`` needs root on the host (read-only in a container), so
each file's pages are dropped with ``posix_fadvise(POSIX_FADV_DONTNEED)`` after an fsync; a host
below a VM may still cache them, so "cold" is cold for this kernel's page cache.

    python benchmarks/bench_provenance.py                    # both, 6 GB folder (4 shards)
    python benchmarks/bench_provenance.py gb=2 shards=2      # smaller folder
    python benchmarks/bench_provenance.py part=eval          # only (a); part=model: only (b)
    python benchmarks/bench_provenance.py part=status trials=20 data_mb=50   # only (c)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED_ITALIC = REPO.parent / "shared" / "data" / "italic"


def _args(argv: list[str]) -> dict[str, str]:
    return dict(a.partition("=")[::2] for a in argv)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


# --------------------------------------------------------------------------------------- (a)
PROV_SNIPPET = """
import json, sys, time
from llamafactory_ext.config import load_config
cfg = load_config(None, sys.argv[3:])  # the eval resolves its config anyway
t0 = time.perf_counter()
from llamafactory_ext import provenance as pv
t1 = time.perf_counter()
prov = pv.collect(inputs={"source": sys.argv[1], "model": sys.argv[2]}, configs={"eval (command line)": cfg}, template="qwen3")
t2 = time.perf_counter()
again = pv.collect(inputs={"source": sys.argv[1], "model": sys.argv[2]}, configs={"eval (command line)": cfg}, template="qwen3")
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "collect_s": t2 - t1, "memo_s": t3 - t2,
                  "bytes_hashed": sum(f["size"] for i in prov.inputs.values() for f in i.get("files", {}).values())}))
"""


def bench_eval(tmp: Path) -> None:
    from llamafactory_ext.fixtures import build_tiny_qwen3

    if not SHARED_ITALIC.is_dir():
        print("(a) skipped: ../shared/data/italic is absent")
        return
    model = build_tiny_qwen3(tmp / "small-qwen3", vocab="small")
    overrides = ["task=italic", f"source={SHARED_ITALIC}", f"model_name_or_path={model}", "thinking=false",
                 "max_new_tokens=4", "limit=16", "progress=false", "overwrite=true"]
    walls = []
    for i in range(2):
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "llamafactory_ext.cli", "eval", *overrides, f"output_dir={tmp / f'eval{i}'}"],
                              env=_env(), capture_output=True, text=True, check=False)
        walls.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise SystemExit(f"eval failed: {proc.stderr[-2000:]}")
    prov = []
    for _ in range(3):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", PROV_SNIPPET, str(SHARED_ITALIC), str(model), *overrides],
                             env=_env(), capture_output=True, text=True, check=True)
        prov.append({**json.loads(out.stdout), "process_s": time.perf_counter() - started})
    eval_s = min(walls)
    best = min(prov, key=lambda p: p["collect_s"])
    print("(a) tiny eval: small tiny Qwen3, 16 ITALIC items from ../shared/data, nothink, 4 new tokens")
    print(f"    eval as a process:           {eval_s:7.2f} s  (best of {len(walls)}: {', '.join(f'{w:.2f}' for w in walls)})")
    print(f"    provenance.collect:          {best['collect_s'] * 1000:7.1f} ms  ({best['bytes_hashed'] / 1e6:.1f} MB hashed: "
          f"italic.jsonl, 5_shots.jsonl, LICENSE, model files) = {100 * best['collect_s'] / eval_s:.2f} % of the eval")
    print(f"    + importing provenance:      {best['import_s'] * 1000:7.1f} ms  (io, config; once per process)")
    print(f"    memoised second collect:     {best['memo_s'] * 1000:7.2f} ms")


# --------------------------------------------------------------------------------------- (b)
def _write_shard(path: Path, size: int, index: dict[str, str], n_tensors: int = 96) -> None:
    """A safetensors file of about ``size`` bytes: ``n_tensors`` BF16 tensors of random bytes."""
    row = 4096 * 2
    rows = max(1, size // n_tensors // row)
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for t in range(n_tensors):
        name = f"model.layers.{path.stem}.{t}.weight"
        header[name] = {"dtype": "BF16", "shape": [rows, 4096], "data_offsets": [offset, offset + rows * row]}
        index[name] = path.name
        offset += rows * row
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    chunk = 64 << 20
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        left = offset
        while left:
            n = min(chunk, left)
            fh.write(os.urandom(n))
            left -= n
        fh.flush()
        os.fsync(fh.fileno())


def make_model(folder: Path, gb: float, shards: int, tokenizer_from: Path | None) -> int:
    folder.mkdir(parents=True)
    index: dict[str, str] = {}
    for i in range(shards):
        _write_shard(folder / f"model-{i + 1:05d}-of-{shards:05d}.safetensors", int(gb * 1e9 / shards), index)
    total = sum(p.stat().st_size for p in folder.iterdir())
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": index}))
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen3", "hidden_size": 4096, "num_hidden_layers": 36}))
    if tokenizer_from is not None:
        for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
            shutil.copy(tokenizer_from / name, folder / name)
    return sum(p.stat().st_size for p in folder.iterdir())


def drop_cache(folder: Path) -> None:
    for p in folder.iterdir():
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_all(folder: Path) -> float:
    started = time.perf_counter()
    for p in sorted(folder.iterdir()):
        with open(p, "rb") as fh:
            hashlib.file_digest(fh, "sha256")
    return time.perf_counter() - started


def identify_fresh(folder: Path) -> tuple[float, dict]:
    from llamafactory_ext import provenance as pv

    pv._MEMO.clear()
    started = time.perf_counter()
    ident = pv.identify(folder)
    return time.perf_counter() - started, ident


def bench_model(tmp: Path, gb: float, shards: int, tokenizer_from: Path | None) -> None:
    from llamafactory_ext import provenance as pv

    free = shutil.disk_usage(tmp).free
    if free < gb * 1e9 * 1.5 or gb > 8:
        raise SystemExit(f"(b) needs {gb} GB (at most 8) with room to spare; {free / 1e9:.1f} GB free in {tmp}")
    folder = tmp / "big-model"
    started = time.perf_counter()
    total = make_model(folder, gb, shards, tokenizer_from)
    print(f"(b) model folder: {shards} safetensors shards of random bytes + index, config, tokenizer = {total / 1e9:.2f} GB "
          f"(written in {time.perf_counter() - started:.0f} s; {free / 1e9:.0f} GB were free)")
    drop_cache(folder)
    cold_prov, ident = identify_fresh(folder)
    drop_cache(folder)
    cold_all = read_all(folder)
    warm_prov, again = identify_fresh(folder)
    warm_all = read_all(folder)
    started = time.perf_counter()
    for _ in range(20):
        pv.identify(folder)
    memo = (time.perf_counter() - started) / 20
    assert again["digest"] == ident["digest"]
    weights = [f for f in ident["files"].values() if f["kind"] == "weights"]
    sampled = sum(f["sampled_bytes"] for f in weights)
    size = sum(f["size"] for f in weights)
    print(f"    {'':28}{'provenance':>12}{'read every byte':>18}{'ratio':>9}")
    print(f"    {'cold (fadvise DONTNEED)':28}{cold_prov:11.3f}s{cold_all:17.2f}s{cold_all / cold_prov:8.0f}x")
    print(f"    {'warm (page cache)':28}{warm_prov:11.3f}s{warm_all:17.2f}s{warm_all / warm_prov:8.0f}x")
    print(f"    memoised identify (a status check, per call): {memo * 1000:.2f} ms")
    print(f"    sampled {sampled / 2**20:.1f} MiB of {size / 2**20:.0f} MiB of weights ({100 * sampled / size:.2f} %): per shard the "
          f"header, 4 KiB of each of {len(json.loads((folder / 'model.safetensors.index.json').read_text())['weight_map']) // shards} "
          "tensors, first/last MiB, 16 spaced MiB")


# --------------------------------------------------------------------------------------- (c)
STATUS_BASE = """\
model_name_or_path: model
stage: sft
do_train: true
finetuning_type: lora
lora_target: all
dataset_dir: ds
dataset: bench
template: qwen3
cutoff_len: 256
output_dir: saves/ignored
"""


def _status_project(work: Path, n: int, data_mb: float) -> Path:
    """A project with a data file of ``data_mb`` MB, a 0.2 GB model folder and an N-trial sweep file."""
    (work / "ds" / "data").mkdir(parents=True)
    line = (json.dumps({"messages": [{"role": "user", "content": "Domanda " * 40},
                                     {"role": "assistant", "content": "<think>\n" + "passo " * 60 + "\n</think>\n\nA"}]}) + "\n").encode()
    with open(work / "ds" / "data" / "bench.jsonl", "wb") as fh:
        fh.write(line * max(1, int(data_mb * 1e6 / len(line))))
    (work / "ds" / "dataset_info.json").write_text(json.dumps({"bench": {"file_name": "data/bench.jsonl", "formatting": "sharegpt",
                                                                         "columns": {"messages": "messages"}}}))
    make_model(work / "model", 0.2, 1, None)
    (work / "base.yaml").write_text(STATUS_BASE)
    sweep = work / "s.yaml"
    sweep.write_text(f"base: base.yaml\ngrid:\n  lora_rank: {list(range(1, n + 1))}\nfixed: {{max_steps: 2}}\noutput_dir: out\n")
    return sweep


def bench_status(tmp: Path, n: int, data_mb: float) -> None:
    from llamafactory_ext import provenance as pv
    from llamafactory_ext.sweep import load_sweep_config
    from llamafactory_ext.sweep.inputs import trial_provenance
    from llamafactory_ext.sweep.trials import data_keys, grid_trials, status

    work = tmp / "status"
    sweep = _status_project(work, n, data_mb)
    data_keys()  # LLaMA-Factory's argument classes: imported once per process, whatever is checked
    cfg, where = load_sweep_config([str(sweep)])
    pv._MEMO.clear()
    started = time.perf_counter()
    trials = grid_trials(cfg, where, str(work))
    plan_s = time.perf_counter() - started
    for t in trials:  # each trial finished, recorded with today's inputs
        d = t.path()
        (d / "eval").mkdir(parents=True)
        trial_provenance(t).write(d)
        (d / "trial.json").write_text('{"status": "done"}')
        (d / "train_results.json").write_text("{}")
        (d / "adapter_model.safetensors").write_bytes(b"x")
    pv._MEMO.clear()
    drop_cache(work / "ds" / "data")
    started = time.perf_counter()
    first = [status(t) for t in trials]
    cold_s = time.perf_counter() - started
    started = time.perf_counter()
    again = [status(t) for t in trials]
    memo_s = time.perf_counter() - started
    assert set(first) == set(again) == {"done"}, (first, again)
    drop_cache(work / "ds" / "data")
    started = time.perf_counter()
    with open(work / "ds" / "data" / "bench.jsonl", "rb") as fh:
        hashlib.file_digest(fh, "sha256")
    hash_s = time.perf_counter() - started
    size = (work / "ds" / "data" / "bench.jsonl").stat().st_size
    print(f"(c) sweep status check: {n} trials, one {size / 1e6:.0f} MB data file, a 0.2 GB model folder (1 shard)")
    print(f"    planning the trials (content-keyed tokenized_path): {plan_s:7.3f} s")
    print(f"    status of every trial, first check (cold):         {cold_s:7.3f} s  ({cold_s / n * 1000:.1f} ms per trial)")
    print(f"    status of every trial, memoised (after each trial): {memo_s:7.3f} s  ({memo_s / n * 1000:.1f} ms per trial)")
    print(f"    same run, sha256 of the data file alone (cold):     {hash_s:7.3f} s")


def main(argv: list[str]) -> int:
    args = _args(argv)
    part = args.get("part", "both")
    with tempfile.TemporaryDirectory(prefix="bench-provenance-", dir="/tmp") as tmp:
        tmp_path = Path(tmp)
        if part in ("both", "eval"):
            bench_eval(tmp_path)
        if part in ("both", "model"):
            small = tmp_path / "small-qwen3"
            bench_model(tmp_path, float(args.get("gb", 6)), int(args.get("shards", 4)), small if small.is_dir() else None)
        if part in ("both", "status"):
            bench_status(tmp_path, int(args.get("trials", 20)), float(args.get("data_mb", 50)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
