"""Speed and memory of ``llamafactory-ext prepare``, next to baselines measured in the same run.

    python benchmarks/bench_prepare.py                      # both parts (the 2 GB wiki input takes ~2-4 min)
    python benchmarks/bench_prepare.py --wiki-gb 0.5        # smaller Wikipedia input
    python benchmarks/bench_prepare.py --skip-wiki          # synth_gsm8k only (~30 s)

1. ``synth_gsm8k`` on a generated local 50,000-row SynthGSM8K-shaped file (jsonl and parquet):
   rows/s end to end (read, convert, dedup, write, manifest with sha256) on one core, next to a
   plain ``datasets.load_dataset("json") + map + to_json`` doing the same conversion.
   Goal: >= 50,000 rows/s.
2. ``wikipedia_it`` on a generated local JSONL of ``--wiki-gb`` GB (default 2) with the real
   field structure (id, url, title, text; reference sections at the end of most articles):
   MB/s of input and the peak RSS of the ``llamafactory-ext prepare`` process, next to the
   speed of just reading the file's lines in Python (the I/O floor). Goals: >= 20 MB/s, < 500 MB.

Figures are printed, never asserted. Inputs are written to ``--workdir`` (a temp dir by
default, removed afterwards unless ``--keep``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NAMES = ["Natalia", "Marco", "Giulia", "Weng", "Betty", "Luca", "Sara", "James", "Aisha", "Tom", "Olga", "Pietro"]
ITEMS = ["apples", "pencils", "stickers", "marbles", "cookies", "books", "cards", "shells"]


def synth_row(rng: random.Random, i: int) -> dict:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b, c, d = rng.randint(10, 900), rng.randint(5, 400), rng.randint(1, 9), rng.randint(2, 12)
    s, r = a + b, (a + b) * d - c
    q = (f"{name} has {a} {item} and buys {b} more. {name} then packs all of them into {d} identical boxes' worth "
         f"of orders and gives {c} {item} away. How many {item} are left if each order needs the full amount? (#{i})")
    sol = (f"Step 1: {name} has {a} + {b} = <<{a}+{b}={s}>>{s} {item}.\n"
           f"Step 2: {d} orders need {s} * {d} = <<{s}*{d}={s * d}>>{s * d} {item}.\n"
           f"Step 3: After giving {c} away, {s * d} - {c} = <<{s * d}-{c}={r}>>{r} {item} are left.\n#### {r:,}")
    return {"id": f"gen_{i // 3:06d}", "question": q, "solution": sol, "answer": f"{float(r):.1f}"}


def make_synth(path: Path, rows: int) -> None:
    rng = random.Random(0)
    made: list[dict] = []
    with open(path, "w", encoding="utf-8") as f:
        for i in range(rows):
            # ~5 % exact duplicate questions (the real set has them), same or different id
            row = dict(made[rng.randrange(len(made))]) if i % 20 == 19 else synth_row(rng, i)
            made.append(row)
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


WORDS = ["la", "città", "il", "fiume", "storia", "del", "regno", "durante", "secolo", "chiesa", "castello", "piazza", "museo", "guerra", "pace", "popolazione", "abitanti", "comune", "provincia", "regione", "territorio", "montagna", "valle", "lago", "mare", "isola", "porto", "arte", "pittura", "scultura", "architettura", "letteratura", "poeta", "romanzo", "teatro", "musica", "opera", "famiglia", "nobile", "imperatore", "papa", "vescovo", "università", "scuola", "lingua", "dialetto", "commercio", "industria", "agricoltura", "vino"]
TAILS = ["\n\nNote\n\nBibliografia\nA. Rossi, Storia locale, 1990.\n\nVoci correlate\nComuni d'Italia\n\nCollegamenti esterni\nSito ufficiale",
         "\n\nNote\n\nCollegamenti esterni\n", "\n\nAltri progetti\n", ""]


def make_wiki(path: Path, target_bytes: int) -> int:
    """A JSONL of Wikipedia-shaped articles (~2-6 KB each, some empty or tiny) of ~target_bytes."""
    rng = random.Random(1)
    pool = []
    for k in range(400):
        paras = []
        for _ in range(rng.randint(3, 9)):
            paras.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 120))).capitalize() + ".")
        text = "\n\n".join(paras) + rng.choice(TAILS)
        if k % 37 == 0:
            text = ""
        elif k % 41 == 0:
            text = "Voce breve."
        pool.append(text)
    written = 0
    n = 0
    with open(path, "wb") as f:
        while written < target_bytes:
            n += 1
            row = {"id": str(n), "url": f"https://it.wikipedia.org/wiki?curid={n}", "title": f"Voce {n}", "text": pool[n % len(pool)]}
            line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
            f.write(line)
            written += len(line)
    return n


def bench_synth(work: Path, rows: int) -> None:
    from llamafactory_ext.data import get_spec
    from llamafactory_ext.data.gsm8k import convert_row
    from llamafactory_ext.data.prepare import options_class, run

    src = work / "synth.jsonl"
    t = time.perf_counter()
    make_synth(src, rows)
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    pq.write_table(pj.read_json(str(src)), work / "synth.parquet")
    print(f"synth_gsm8k: generated {rows:,} rows ({src.stat().st_size / 1e6:.1f} MB jsonl) in {time.perf_counter() - t:.1f} s")

    results = {}
    for fmt in ("jsonl", "parquet"):
        best = None
        for rep in range(3):
            t, c = time.perf_counter(), time.process_time()
            m = run("synth_gsm8k", options_class(get_spec("synth_gsm8k"))(source=str(work / f"synth.{fmt}"), out_dir=str(work / f"out_{fmt}"), register=False), quiet=True)
            dt, dc = time.perf_counter() - t, time.process_time() - c
            best = (dt, dc) if best is None or dt < best[0] else best
        results[fmt] = (m["rows"]["read"], best, m)
    m = results["jsonl"][2]
    print(f"  prepare wrote {m['rows']['written']:,} rows, dropped {m['dropped']}")

    # baseline: the plain `datasets` way to do the same conversion
    import datasets

    datasets.disable_progress_bars()
    cache = work / "hf_cache"

    def convert(row):
        return convert_row(row, "question", "solution", "answer")[0]

    t, c = time.perf_counter(), time.process_time()
    ds = datasets.load_dataset("json", data_files=str(src), split="train", cache_dir=str(cache))
    ds = ds.map(convert, remove_columns=ds.column_names)
    ds.to_json(str(work / "baseline.jsonl"), force_ascii=False)
    base, base_cpu = time.perf_counter() - t, time.process_time() - c
    print(f"{'':2}{'method':<52}{'rows/s':>10}{'seconds':>9}{'rows/CPU-s':>12}{'CPU-s':>7}")
    for fmt in ("jsonl", "parquet"):
        n, (dt, dc), _ = results[fmt]
        print(f"  {'llamafactory-ext prepare synth_gsm8k (' + fmt + ')':<52}{n / dt:>10,.0f}{dt:>9.2f}{n / dc:>12,.0f}{dc:>7.2f}")
    print(f"  {'baseline: datasets load_dataset + map + to_json':<52}{rows / base:>10,.0f}{base:>9.2f}{rows / base_cpu:>12,.0f}{base_cpu:>7.2f}")
    print("  goal: >= 50,000 rows/s on one core (prepare is single-threaded: rows/CPU-s is its speed on a dedicated core;")
    print("  rows/s is wall clock and drops when other processes share the CPU)")


def bench_wiki(work: Path, gb: float) -> None:
    src = work / "wiki.jsonl"
    t = time.perf_counter()
    n = make_wiki(src, int(gb * 1e9))
    size = src.stat().st_size
    print(f"\nwikipedia_it: generated {n:,} articles, {size / 1e6:,.0f} MB in {time.perf_counter() - t:.1f} s")

    # I/O floor: read every line in Python, nothing else (second read: page cache warm for both)
    t = time.perf_counter()
    with open(src, "rb") as f:
        for _ in f:
            pass
    floor = time.perf_counter() - t

    out = work / "wiki_out"
    cmd = [sys.executable, "-m", "llamafactory_ext.cli", "prepare", "wikipedia_it", f"source={src}", f"out_dir={out}", "register=false"]
    env = dict(os.environ, TQDM_DISABLE="1")
    # Peak RSS = the child's own VmHWM, polled while it runs. (getrusage(RUSAGE_CHILDREN).ru_maxrss
    # would also count the memory of this parent process copied at fork time, before exec.)
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_kb = 0
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        peak_kb = max(peak_kb, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.1)
    stdout, stderr = proc.communicate()
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        print(stdout, stderr)
        raise SystemExit("prepare wikipedia_it failed")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime  # CPU seconds of the (only) child
    peak_mb = peak_kb / 1024
    manifest = json.loads((out / "wikipedia_it.manifest.json").read_text())
    print(f"  prepare read {manifest['rows']['read']:,} articles, wrote {manifest['rows']['written']:,} "
          f"({manifest['outputs']['train']['bytes'] / 1e6:,.0f} MB), dropped {manifest['dropped']}")
    print(f"{'':2}{'method':<52}{'MB/s':>8}{'seconds':>9}{'MB/CPU-s':>10}{'peak RSS MB':>13}")
    print(f"  {'llamafactory-ext prepare wikipedia_it (whole process)':<52}{size / 1e6 / dt:>8.1f}{dt:>9.1f}{size / 1e6 / cpu:>10.1f}{peak_mb:>13.0f}")
    print(f"  {'floor: read the lines in Python, no parsing':<52}{size / 1e6 / floor:>8.1f}{floor:>9.1f}{'':>10}{'':>13}")
    print("  goals: >= 20 MB/s, peak RSS < 500 MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=50_000, help="synth_gsm8k input rows (default 50,000)")
    ap.add_argument("--wiki-gb", type=float, default=2.0, help="wikipedia_it input size in GB (default 2)")
    ap.add_argument("--skip-wiki", action="store_true")
    ap.add_argument("--skip-synth", action="store_true")
    ap.add_argument("--workdir", default=None, help="where inputs/outputs go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_prepare_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; work dir {work}")
    try:
        if not args.skip_synth:
            bench_synth(work, args.rows)
        if not args.skip_wiki:
            bench_wiki(work, args.wiki_gb)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
