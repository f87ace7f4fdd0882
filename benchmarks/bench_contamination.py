"""Speed of ``llamafactory-ext contamination``, next to a naive baseline measured in the same run.

    python benchmarks/bench_contamination.py                 # all parts (~2 minutes on 2 cores)
    python benchmarks/bench_contamination.py --rows 20000    # a smaller generated training file

1. GSM8K train (7,473 rows) against GSM8K test (1,319 items), from ../shared/data/gsm8k
   (skipped when absent).
2. ITALIC (10,000 items, ../shared/data/italic) against a generated Mult-IT-shaped
   ``quiz.jsonl`` of ``--rows`` rows (default 100,000) with ``--plant`` (default 300) ITALIC
   questions planted in it: a third verbatim, a third re-cased / re-punctuated / accent-stripped
   with the options reversed, a third embedded after a lead-in sentence.
3. The same rows converted by ``llamafactory-ext prepare multit_nothink`` (sharegpt rows with
   the Italian instruction and ``A) ...`` option lines), checked against ITALIC again.

Each part prints the wall time of :func:`find_contamination` (loading the items, indexing,
reading and checking every row; best of ``--repeat`` runs, each with cold caches, all of them
shown) and rows/s, how many planted questions were found, and the
naive baseline: every (row, item) pair tested with a normalised-substring scan (is the item's
normalised question inside the row's normalised text?), timed on a subset of the rows and
EXTRAPOLATED to all of them. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"

from llamafactory_ext.contamination import find_contamination
from llamafactory_ext.data import overlap
from llamafactory_ext.data.normalize import normalize_text

WORDS = [
    "la", "il", "di", "che", "città", "fiume", "storia", "regno", "secolo", "chiesa", "castello", "piazza", "museo",
    "guerra", "pace", "comune", "provincia", "regione", "montagna", "valle", "lago", "mare", "isola", "porto", "arte",
    "pittura", "scultura", "poeta", "romanzo", "teatro", "musica", "opera", "famiglia", "imperatore", "papa",
    "università", "scuola", "lingua", "dialetto", "commercio", "industria", "vino", "quale", "quando", "dove",
    "perché", "come", "scrisse", "fondò", "nacque", "morì", "costruì", "dipinse",
]
LEAD_IN = "Domanda di ripasso per l'esame di maturità, da fare a casa: "


def strip_accents(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def filler_row(rng: random.Random, i: int) -> dict:
    question = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 25))).capitalize() + f" ({i})?"
    choices = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4))) for _ in range(4)]
    return {"id": f"gen{i}", "question": question, "choices": choices, "answer": "ABCD"[i % 4],
            "category": rng.choice(["storia", "geografia", "arte", "letteratura"])}


def planted_row(item, kind: int, i: int) -> dict:
    question, options = item.question, [text for _, text in item.options]
    if kind == 1:  # re-cased, re-punctuated, accents stripped, options reversed
        question = strip_accents(question).upper().replace("?", " ? ! ").replace(",", " ;")
        options = options[::-1]
    elif kind == 2:  # embedded after a lead-in sentence
        question = LEAD_IN + question
    return {"id": f"plant{i}", "question": question, "choices": options, "answer": "A", "category": item.category}


def make_quiz(path: Path, items, rows: int, plant: int, seed: int = 0) -> dict[int, str]:
    """A Mult-IT-shaped JSONL of ``rows`` rows; returns {line number: planted ITALIC id}."""
    rng = random.Random(seed)
    chosen = rng.sample(range(len(items)), plant)
    at = dict(zip(sorted(rng.sample(range(rows), plant)), chosen, strict=True))
    planted: dict[int, str] = {}
    with open(path, "w", encoding="utf-8") as fh:
        for line in range(rows):
            if line in at:
                row = planted_row(items[at[line]], len(planted) % 3, line)
                planted[line + 1] = items[at[line]].id
            else:
                row = filler_row(rng, line)
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return planted


def row_text(row: dict) -> str:
    """Everything the naive scan looks at in one row (question, options, messages, answer)."""
    if "messages" in row:
        return "\n".join(m["content"] for m in row["messages"])
    return "\n".join([row.get("question", ""), *row.get("choices", []), str(row.get("answer", ""))])


def naive_scan(train: Path, questions: list[str], subset: int) -> tuple[float, int]:
    """Seconds for ``subset`` rows of the pairwise normalised-substring scan (and matches)."""
    norm_q = [normalize_text(q) for q in questions]
    started = time.perf_counter()
    found = 0
    with open(train, encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if n >= subset:
                break
            text = " " + normalize_text(row_text(json.loads(line))) + " "
            for q in norm_q:
                if q and f" {q} " in text:
                    found += 1
    return time.perf_counter() - started, found


def report(label: str, train: Path, total_rows: int, task: str, source: Path, questions: list[str],
           planted: dict[int, str] | None, subset: int, repeat: int) -> None:
    walls, cpus = [], []
    for _ in range(repeat):
        overlap._token.cache_clear()  # every run starts cold, like a new process
        overlap._piece.cache_clear()
        started, cpu = time.perf_counter(), time.process_time()
        rep = find_contamination([train], task, source=str(source))
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    wall, cpu = min(walls), min(cpus)
    print(f"\n{label}")
    print(f"  find_contamination: {wall:6.2f} s wall ({cpu:.2f} s CPU), best of {repeat} "
          f"[{', '.join(f'{w:.2f}' for w in walls)}], for {rep.rows_read:,} rows x {rep.items:,} items "
          f"({rep.rows_read / wall:,.0f} rows/s, loading + indexing the items included); "
          f"matched {rep.matched} items, {len(rep.pairs)} pairs")
    if planted is not None:
        found = {(p.train_row, p.eval_id) for p in rep.pairs}
        hit = sum((line, item) in found for line, item in planted.items())
        by_kind = [sum((line, item) in found for k, (line, item) in enumerate(planted.items()) if k % 3 == kind)
                   for kind in range(3)]
        print(f"  planted questions found: {hit} of {len(planted)} (verbatim {by_kind[0]}, "
              f"re-cased/re-punctuated/accent-stripped/options reversed {by_kind[1]}, embedded {by_kind[2]})")
    seconds, _ = naive_scan(train, questions, subset)
    estimate = seconds * total_rows / subset
    print(f"  naive pairwise normalised-substring scan: {seconds:.2f} s for the first {subset:,} rows "
          f"({subset * len(questions):,} pairs) -> EXTRAPOLATED {estimate:,.0f} s for all {total_rows:,} rows "
          f"({estimate / wall:,.0f}x slower)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000, help="rows of the generated Mult-IT-shaped file")
    ap.add_argument("--plant", type=int, default=300, help="ITALIC questions planted in it")
    ap.add_argument("--subset", type=int, default=300, help="rows timed for the naive baseline")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each check (the best is reported)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    import os

    print(f"bench_contamination: python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f} at start (other work on the machine slows every figure)")
    gsm = SHARED / "gsm8k"
    if (gsm / "train.jsonl").is_file():
        from llamafactory_ext.data.gsm8k import load_gsm8k

        test = load_gsm8k(gsm, split="test")
        report("1. GSM8K train (7,473 rows) vs GSM8K test (1,319 items)", gsm / "train.jsonl", 7473, "gsm8k", gsm,
               [t["question"] for t in test], None, args.subset, args.repeat)
    else:
        print(f"\n1. GSM8K: skipped ({gsm} not present)")
    italic = SHARED / "italic" / "italic.jsonl"
    if not italic.is_file():
        print(f"\n2./3. ITALIC: skipped ({italic} not present)")
        return 0
    from llamafactory_ext.data.italic import load_italic
    from llamafactory_ext.data.prepare import run as prepare
    from llamafactory_ext.data.spec import PrepareOptions

    items = load_italic(italic)
    questions = [i.question for i in items]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-contamination-"))
    try:
        quiz = work / "quiz.jsonl"
        t0 = time.perf_counter()
        planted = make_quiz(quiz, items, args.rows, args.plant)
        print(f"\n(generated {quiz} : {args.rows:,} rows, {quiz.stat().st_size / 1e6:.1f} MB, "
              f"{args.plant} ITALIC questions planted, in {time.perf_counter() - t0:.1f} s)")
        report(f"2. ITALIC (10,000 items) vs {args.rows:,} Mult-IT-shaped raw rows", quiz, args.rows, "italic", italic,
               questions, planted, args.subset // 3, args.repeat)
        t0 = time.perf_counter()
        prepare("multit_nothink", PrepareOptions(source=str(quiz), out_dir=str(work / "data"), register=False), quiet=True)
        prepared = work / "data" / "multit_nothink.jsonl"
        print(f"\n(prepare multit_nothink wrote {prepared} in {time.perf_counter() - t0:.1f} s)")
        report(f"3. ITALIC (10,000 items) vs {args.rows:,} prepared sharegpt rows (multit_nothink)", prepared,
               args.rows, "italic", italic, questions, planted, args.subset // 3, args.repeat)
        cmd = [sys.executable, "-m", "llamafactory_ext.cli", "contamination", str(prepared), "task=italic",
               f"source={italic}", f"output_dir={work / 'out'}"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=REPO)
        print(f"\n4. the command end to end (process start, imports, outputs): {time.perf_counter() - t0:.2f} s wall, "
              f"exit {proc.returncode}\n   llamafactory-ext contamination {prepared.name} task=italic source=... output_dir=...")
        print("   " + "\n   ".join(proc.stdout.strip().splitlines()[:4]))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
