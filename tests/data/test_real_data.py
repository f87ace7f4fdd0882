"""The real GSM8K and ITALIC copies in ../shared/data (skipped when absent, failing under CI=true)."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from llamafactory_ext.data.gsm8k import canonical_number, load_gsm8k
from llamafactory_ext.data.italic import load_italic, load_italic_shots
from llamafactory_ext.thinking import split_output
from tests.helpers import read_jsonl

pytestmark = pytest.mark.shared_data

ITALIC_CATEGORIES = {
    "literature": 984, "art_history": 980, "tourism": 980, "lexicon": 979, "geography": 979,
    "history": 978, "syntax": 973, "civic_education": 973, "orthography": 971,
    "synonyms_and_antonyms": 971, "morphology": 140, "current_events": 92,
}


def test_all_gsm8k_train_rows_convert(gsm8k_dir, tmp_path):
    from llamafactory_ext.data import get_spec
    from llamafactory_ext.data.prepare import options_class, run

    m = run("gsm8k", options_class(get_spec("gsm8k"))(source=str(gsm8k_dir), out_dir=str(tmp_path / "data"), register=False), quiet=True)
    src = read_jsonl(gsm8k_dir / "train.jsonl")
    rows = read_jsonl(tmp_path / "data" / "gsm8k.jsonl")
    assert len(src) == 7473 and m["rows"]["read"] == 7473 and m["rows"]["written"] == 7473 and len(rows) == 7473
    assert m["rows"]["rejected"] == 0 and m["source"]["format"] == "jsonl"
    commas = negatives = 0
    for row, ref in zip(rows, src):
        text = row["messages"][1]["content"]
        assert "<<" not in text and ">>" not in text and "####" not in text
        final = re.search(r"^#### (.+)$", ref["answer"], re.MULTILINE).group(1)
        commas += "," in final
        negatives += final.startswith("-")
        out = split_output(text)
        assert out.closed and out.answer == f"The answer is {final.replace(',', '')}."
        assert row["messages"][0]["content"] == ref["question"].strip()
    assert commas > 50 and negatives >= 1  # the odd values are really there


def test_load_gsm8k_test_split(gsm8k_dir):
    rows = load_gsm8k(gsm8k_dir, split="test")
    assert len(rows) == 1319 and rows[0]["id"] == "0" and rows[-1]["id"] == "1318"
    assert all(r["gold"] == canonical_number(r["answer"].rsplit("####", 1)[1]) for r in rows)
    assert load_gsm8k(gsm8k_dir / "test.jsonl", limit=3) == rows[:3]


def _check_italic(items):
    assert len(items) == 10_000
    assert [i.id for i in items[:3]] == ["0", "1", "2"] and items[-1].id == "9999"
    assert Counter(i.category for i in items) == ITALIC_CATEGORIES
    assert Counter(i.macro_category for i in items) == {"culture and commonsense": 5966, "language capability": 4034}
    assert Counter(len(i.options) for i in items) == {4: 7466, 3: 2464, 5: 68, 2: 2}
    assert all(i.answer in i.letters for i in items)


def test_italic_github_schema(italic_dir):
    items = load_italic(italic_dir)
    _check_italic(items)
    ac = [i for i in items if i.letters == ["A", "C"]]
    assert len(ac) == 1 and ac[0].answer == "C" and ac[0].option_text("C") == "Ernst Ludwig Kirchner"
    shots = load_italic_shots(italic_dir)
    assert len(shots) == 5 and all(s.answer in s.letters for s in shots)


def test_italic_hub_schema_from_parquet(italic_dir, tmp_path):
    """The Hub layout (options: list of strings, answer: 0-based int), built from the real file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in (italic_dir / "italic.jsonl").read_text(encoding="utf-8").splitlines()]
    hub = []
    for r in rows:
        letters = [next(iter(o)) for o in r["options"]]
        hub.append({"question": r["question"], "options": [next(iter(o.values())) for o in r["options"]],
                    "answer": letters.index(r["answer"]), "category": r["category"], "macro_category": r["macro_category"]})
    pq.write_table(pa.Table.from_pylist(hub), tmp_path / "train-00000-of-00001.parquet")
    items = load_italic(tmp_path / "train-00000-of-00001.parquet")
    _check_italic(items)
    github = load_italic(italic_dir / "italic.jsonl")
    for a, b in zip(items, github):
        assert a.question == b.question and [t for _, t in a.options] == [t for _, t in b.options]
        assert a.option_text(a.answer) == b.option_text(b.answer)
    ac = items[github.index(next(i for i in github if i.letters == ["A", "C"]))]
    assert ac.letters == ["A", "B"] and ac.answer == "B"  # by position in the Hub layout


def _question_and_options(row: dict) -> str:
    from llamafactory_ext.data.normalize import normalize_text

    user = row["messages"][1]["content"]
    return normalize_text(user.split("\n\n", 1)[1])


def test_italic_as_a_multit_source_dedup_and_split_by_question(italic_dir, tmp_path):
    """10,000 real questions (Mult-IT reads ITALIC's GitHub layout): its repeated questions are
    dropped, and the category-stratified validation split shares no question with training."""
    from llamafactory_ext.data import get_spec
    from llamafactory_ext.data.normalize import normalize_text
    from llamafactory_ext.data.prepare import options_class, run

    src = read_jsonl(italic_dir / "italic.jsonl")
    distinct = {(normalize_text(r["question"]), *(normalize_text(next(iter(o.values()))) for o in r["options"])) for r in src}
    m = run("multit_nothink", options_class(get_spec("multit_nothink"))(source=str(italic_dir / "italic.jsonl"), out_dir=str(tmp_path),
                                                                          val_size=0.1, seed=123, register=False), quiet=True)
    assert m["rows"]["read"] == 10_000 and m["rows"]["written"] == len(distinct) < 10_000
    assert m["dropped"] == {"duplicate_question": 10_000 - len(distinct)}
    train, val = read_jsonl(tmp_path / "multit_nothink.jsonl"), read_jsonl(tmp_path / "multit_nothink_val.jsonl")
    assert len(val) == round(len(distinct) * 0.1) and len(train) + len(val) == len(distinct)
    assert not {_question_and_options(r) for r in train} & {_question_and_options(r) for r in val}
    intro = lambda r: r["messages"][1]["content"].split(".", 1)[0]  # names the category
    all_cats, val_cats = Counter(map(intro, train + val)), Counter(map(intro, val))
    assert len(all_cats) == 12
    for cat, n in all_cats.items():
        assert int(n * 0.1) <= val_cats[cat] <= int(n * 0.1) + 1, (cat, n, val_cats[cat])

