"""Each registered converter on the built-in samples: exact output rows, counts, manifest; the
per-data-set options; the stratified, seeded validation split drawn by question."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections import Counter

import pytest

from llamafactory_ext.data import REGISTRY, get_spec
from llamafactory_ext.data.mcq import SYSTEM_PROMPT, render_user
from llamafactory_ext.data.multit import item_key, load_multit, parse_multit_row
from llamafactory_ext.data.normalize import normalize_text, question_key
from llamafactory_ext.data.prepare import options_class, run, split_val
from llamafactory_ext.data.samples import SAMPLES_DIR, registry_dataset_info
from llamafactory_ext.data.spec import Context, Converted, PrepareOptions
from llamafactory_ext.thinking import format_thinking, split_output
from tests.data import make_samples
from tests.helpers import read_jsonl


def opts(name: str, **values):
    """Options of data set ``name`` (shared keys + its own), as ``prepare NAME key=value`` builds them."""
    if "out_dir" in values:  # registered beside the outputs, never in the checkout's ./dataset_info.json
        values.setdefault("dataset_info", f"{values['out_dir']}/dataset_info.json")
    return options_class(get_spec(name))(**values)


def _samples(name: str) -> list[dict]:
    path = SAMPLES_DIR / name
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    return read_jsonl(path)


def _manifest(ds, name):
    return json.loads((ds / "data" / f"{name}.manifest.json").read_text(encoding="utf-8"))


def test_registry_matches_top_level_dataset_info(repo_root):
    info = json.loads((repo_root / "dataset_info.json").read_text(encoding="utf-8"))
    assert info == registry_dataset_info()
    for name, entry in info.items():
        assert entry.get("formatting", "alpaca") != "openai", name
    assert info["wikipedia_it"]["columns"] == {"prompt": "text"}
    for name in REGISTRY:
        assert get_spec(name).name == name
        sample = get_spec(name).sample
        assert sample and (SAMPLES_DIR / sample).is_file()


def test_shipped_samples_are_what_make_samples_writes():
    """The samples (and the demo's files) are generated: a hand edit or a stale file shows here."""
    quiz, traces = make_samples.multit_rows()
    assert _samples("multit_quiz.json") == quiz
    assert _samples("multit_traces.jsonl") == make_samples.traces_rows(quiz, traces)
    assert _samples("gsm8k_shaped.jsonl") == make_samples.gsm8k_rows()
    assert _samples("synth_gsm8k.jsonl") == make_samples.synth_rows()
    assert _samples("wikipedia_it.jsonl") == make_samples.wikipedia_rows()
    demo_dir, demo = SAMPLES_DIR.parent / "demo", make_samples.demo_rows()
    for name in ("warmup", "study", "eval"):
        assert json.loads((demo_dir / f"{name}_quiz.json").read_text(encoding="utf-8")) == demo[name], name
    assert read_jsonl(demo_dir / "traces.jsonl") == demo["traces"]
    assert not (SAMPLES_DIR / "gsm8k_train.jsonl").exists()  # renamed gsm8k_shaped.jsonl


def test_samples_have_the_promised_shapes():
    quiz = _samples("multit_quiz.json")
    assert len(quiz) >= 50
    assert {len(r["choices"]) for r in quiz} == {2, 3, 4, 5}
    kinds = Counter(type(r["answer"]).__name__ + ("_digit" if isinstance(r["answer"], str) and r["answer"].isdigit() else "") for r in quiz)
    assert set(kinds) == {"str", "int", "str_digit"}
    assert len({item_key(parse_multit_row(r, i)) for i, r in enumerate(quiz)}) == len(quiz)  # no repeated question
    synth = _samples("synth_gsm8k.jsonl")
    assert len({r["id"] for r in synth}) < len(synth)
    assert any(r["answer"].endswith(".0") for r in synth)
    gsm = _samples("gsm8k_shaped.jsonl")
    finals = [r["answer"].rsplit("#### ", 1)[1] for r in gsm]
    assert any("," in f for f in finals) and any(f.startswith("-") for f in finals)


def test_each_data_set_owns_its_options():
    """PrepareOptions holds only the shared keys; each data set adds its own, and only those."""
    shared = {f.name for f in dataclasses.fields(PrepareOptions)}
    assert not shared & {"dedup", "traces", "mix", "nothink_fraction", "max_rows", "max_bytes", "min_chars"}
    own = {name: {f.name for f in dataclasses.fields(options_class(get_spec(name)))} - shared for name in REGISTRY}
    assert own["multit_nothink"] == {"dedup"}
    assert own["multit_think"] == {"dedup", "traces"}
    assert own["multit_mixed"] == {"dedup", "traces", "mix", "nothink_fraction"}
    assert own["gsm8k"] == own["synth_gsm8k"] == {"dedup"}
    assert own["wikipedia_it"] == {"max_rows", "max_bytes", "min_chars"}
    for name in REGISTRY:  # every data set, also ones registered later: the shared keys + its own
        fields = {f.name for f in dataclasses.fields(options_class(get_spec(name)))}
        assert fields == shared | {f.name for f in dataclasses.fields(get_spec(name).options)}, name
    with pytest.raises(TypeError, match="traces"):
        opts("multit_nothink", traces="x.jsonl")


def test_converters_return_converted_objects():
    """``spec.make(options, context).convert(row, i)`` gives Converted (row, stratum, group)."""
    spec = get_spec("multit_nothink")
    conv = spec.make(opts("multit_nothink"), Context(on_bad=lambda err, raw: None))
    row = {"question": "Qual è la capitale d'Italia?", "choices": ["Milano", "Roma"], "answer": "B", "category": "geography"}
    (out,) = conv.convert(row, 0)
    assert isinstance(out, Converted) and out.stratum == "geography"
    assert out.group == item_key(parse_multit_row(row, 0)) and out.row["messages"][-1] == {"role": "assistant", "content": "B"}
    gsm = get_spec("gsm8k").make(opts("gsm8k"), Context(on_bad=lambda err, raw: None))
    out = gsm.convert({"question": "Quanto fa 2+2?", "answer": "2+2 = <<2+2=4>>4\n#### 4"}, 0)
    assert isinstance(out, Converted) and out.group == question_key("Quanto fa 2+2?") and out.stratum is None


def test_multit_nothink_rows(samples_dataset_dir):
    rows = read_jsonl(samples_dataset_dir / "data" / "multit_nothink.jsonl")
    quiz = _samples("multit_quiz.json")
    assert len(rows) == len(quiz)
    for i, (row, src) in enumerate(zip(rows, quiz)):
        item = parse_multit_row(src, i)
        system, user, assistant = row["messages"]
        assert system == {"role": "system", "content": SYSTEM_PROMPT}
        assert user == {"role": "user", "content": render_user(item, "fast")}
        assert assistant["role"] == "assistant" and assistant["content"] == item.answer
        # letter, int index and digit-string index all resolve to the same option
        answer = src["answer"]
        index = answer if isinstance(answer, int) else int(answer) if answer.isdigit() else "ABCDE".index(answer)
        assert f"\n{assistant['content']}) {src['choices'][index]}" in user["content"]


def test_multit_think_joins_only_accepted_traces(samples_dataset_dir):
    traces = _samples("multit_traces.jsonl")
    accepted = {t["key"]: t for t in traces if t["correct"] is True and t["reason"] == "kept"}
    rows = read_jsonl(samples_dataset_dir / "data" / "multit_think.jsonl")
    quiz = load_multit(SAMPLES_DIR / "multit_quiz.json")
    expected = [item for item in quiz if item_key(item) in accepted]
    assert 0 < len(rows) == len(expected) < len(quiz)
    for row, item in zip(rows, expected):
        assert row["messages"][2]["content"] == format_thinking(accepted[item_key(item)]["trace"], item.answer)
        assert row["messages"][1]["content"] == render_user(item, "fast")
    m = _manifest(samples_dataset_dir, "multit_think")
    assert m["dropped"] == {"no_trace": len(quiz) - len(expected)}
    counts = m["converter"]["traces"]
    assert counts["accepted"] == len(accepted) == m["converter"]["traces_joined"]
    assert counts["not_correct"] + counts["not_kept"] == len(traces) - len(accepted)
    assert counts["invalid"] == 0 and m["converter"]["traces_unmatched"] == 0 and m["rejected"] == {}


def test_multit_mixed_has_both_kinds_and_no_think_block_on_plain_rows(samples_dataset_dir):
    rows = read_jsonl(samples_dataset_dir / "data" / "multit_mixed.jsonl")
    answers = [r["messages"][-1]["content"] for r in rows]
    thinking = [a for a in answers if a.startswith("<think>\n")]
    plain = [a for a in answers if "<think>" not in a and "</think>" not in a]
    assert len(thinking) + len(plain) == len(rows) == len(_samples("multit_quiz.json"))
    assert len(thinking) == _manifest(samples_dataset_dir, "multit_think")["rows"]["written"]
    assert all(re.fullmatch(r"[A-E]", a) for a in plain)
    assert all(split_output(a).closed and re.fullmatch(r"[A-E]", split_output(a).answer) for a in thinking)


def test_multit_mixed_fraction_and_mix_all(tmp_path):
    common = {"source": str(SAMPLES_DIR / "multit_quiz.json"), "traces": str(SAMPLES_DIR / "multit_traces.jsonl"), "register": False}
    m_all = run("multit_mixed", opts("multit_mixed", out_dir=str(tmp_path / "a"), mix="all", **common), quiet=True)
    assert m_all["rows"]["written"] == 60 + 30  # every question plain + the 30 with a trace
    half = [run("multit_mixed", opts("multit_mixed", out_dir=str(tmp_path / f"h{s}"), nothink_fraction=0.5, seed=s, **common), quiet=True)
            for s in (1, 1, 2)]
    assert half[0]["dropped"]["nothink_subsampled"] == half[1]["dropped"]["nothink_subsampled"]  # seeded
    assert 5 <= half[0]["dropped"]["nothink_subsampled"] <= 25
    a, b, c = ((tmp_path / f"h{s}" / "multit_mixed.jsonl").read_bytes() for s in (1, 1, 2))
    assert a == b and a != c
    none = run("multit_mixed", opts("multit_mixed", out_dir=str(tmp_path / "n"), nothink_fraction=0.0, **common), quiet=True)
    assert none["rows"]["written"] == 30 and none["dropped"] == {"nothink_subsampled": 30}


def _gsm_check(rows, sources, solution_key, answer_key=None):
    for row, src in zip(rows, sources):
        user, assistant = row["messages"]
        assert user == {"role": "user", "content": src["question"]}
        text = assistant["content"]
        out = split_output(text)
        assert "<<" not in text and ">>" not in text and "####" not in text
        final = src[solution_key].rsplit("#### ", 1)[1].replace(",", "")
        number = str(int(float(final))) if float(final).is_integer() else final
        assert out.answer == f"The answer is {number}."
        assert text.startswith("<think>\n") and "\n</think>\n\nThe answer is " in text
        if answer_key:
            assert float(src[answer_key]) == float(number)


def test_synth_gsm8k_drops_duplicates_and_canonicalises(samples_dataset_dir):
    src = _samples("synth_gsm8k.jsonl")
    seen, unique = set(), []
    for r in src:
        if r["question"] not in seen:
            seen.add(r["question"])
            unique.append(r)
    rows = read_jsonl(samples_dataset_dir / "data" / "synth_gsm8k.jsonl")
    assert len(rows) == len(unique) < len(src)
    _gsm_check(rows, unique, "solution", "answer")
    m = _manifest(samples_dataset_dir, "synth_gsm8k")
    assert m["dropped"] == {"duplicate_question": len(src) - len(unique)}
    assert any(r["answer"].endswith(".0") for r in unique)
    assert not any(re.search(r"The answer is -?\d+\.0\.", r["messages"][1]["content"]) for r in rows)


def test_synth_gsm8k_dedup_false_keeps_every_row(tmp_path):
    src = _samples("synth_gsm8k.jsonl")
    m = run("synth_gsm8k", opts("synth_gsm8k", source=str(SAMPLES_DIR / "synth_gsm8k.jsonl"), out_dir=str(tmp_path),
                                dedup=False, register=False), quiet=True)
    assert m["rows"]["written"] == len(src) and m["dropped"] == {}
    _gsm_check(read_jsonl(tmp_path / "synth_gsm8k.jsonl"), src, "solution", "answer")


def test_gsm8k_rows(samples_dataset_dir):
    src = _samples("gsm8k_shaped.jsonl")
    rows = read_jsonl(samples_dataset_dir / "data" / "gsm8k.jsonl")
    assert len(rows) == len(src)
    _gsm_check(rows, src, "answer")
    assert any("The answer is -" in r["messages"][1]["content"] for r in rows)


def test_wikipedia_it_cleaning(samples_dataset_dir):
    src = _samples("wikipedia_it.jsonl")
    rows = read_jsonl(samples_dataset_dir / "data" / "wikipedia_it.jsonl")
    m = _manifest(samples_dataset_dir, "wikipedia_it")
    assert set(rows[0]) == {"text"}
    assert m["rows"]["read"] == len(src) and m["rows"]["written"] == len(rows)
    assert m["dropped"]["empty"] >= 2 and m["dropped"]["too_short"] >= 1
    assert m["rows"]["written"] + m["rows"]["dropped"] == len(src)
    for row in rows:
        text = row["text"]
        assert len(text) >= 200 and text == text.strip() and "\n\n\n" not in text
        for heading in ("Bibliografia", "Collegamenti esterni", "Voci correlate", "Altri progetti"):
            assert not re.search(rf"^{heading}$", text, re.MULTILINE), (heading, text[-200:])
    by_title = {r["title"]: r["text"] for r in src}
    firenze = next(r["text"] for r in rows if r["text"].startswith("Firenze"))
    assert re.sub(r"\n{3,}", "\n\n", by_title["Firenze"]).startswith(firenze) and firenze.endswith("numerosi visitatori.")
    assert "Note" not in firenze.splitlines() and "\n\n\n" in by_title["Firenze"]
    music = next(r["text"] for r in rows if "le note sono i segni" in r["text"])
    assert music.startswith("Note\n")  # a heading at the very top is the article, not a tail
    assert "Verdi, Teoria musicale" not in music


def test_wikipedia_limits(tmp_path):
    src = str(SAMPLES_DIR / "wikipedia_it.jsonl")
    m = run("wikipedia_it", opts("wikipedia_it", source=src, out_dir=str(tmp_path / "r"), max_rows=3, register=False), quiet=True)
    assert m["rows"]["written"] == 3 and len(read_jsonl(tmp_path / "r" / "wikipedia_it.jsonl")) == 3
    m = run("wikipedia_it", opts("wikipedia_it", source=src, out_dir=str(tmp_path / "b"), max_bytes=1500, register=False), quiet=True)
    size = (tmp_path / "b" / "wikipedia_it.jsonl").stat().st_size
    assert 1500 <= size < 1500 + 2000 and m["rows"]["written"] < 10
    m = run("wikipedia_it", opts("wikipedia_it", source=src, out_dir=str(tmp_path / "m"), min_chars=0, register=False), quiet=True)
    assert "too_short" not in m["dropped"] and m["dropped"]["empty"] >= 2


def _question_of(row: dict) -> str:
    """The normalised question of a prepared row (Mult-IT: the line after the instruction)."""
    user = next(m["content"] for m in row["messages"] if m["role"] == "user")
    return normalize_text(user.split("\n\n", 1)[1].split("\n", 1)[0] if "\n\n" in user else user)


@pytest.mark.parametrize("name,stratum", [("multit_nothink", "letter"), ("synth_gsm8k", None)])
def test_val_split_is_seeded_stratified_and_registered(tmp_path, name, stratum):
    spec = get_spec(name)
    extra = {k: str(SAMPLES_DIR / v) for k, v in spec.sample_options.items()}
    outs = []
    for seed, sub in ((7, "a"), (7, "b"), (8, "c")):
        m = run(name, opts(name, source=str(SAMPLES_DIR / spec.sample), out_dir=str(tmp_path / sub / "data"),
                           val_size=0.2, seed=seed, **extra), quiet=True)
        outs.append((read_jsonl(tmp_path / sub / "data" / f"{name}.jsonl"), read_jsonl(tmp_path / sub / "data" / f"{name}_val.jsonl"), m))
    (train, val, m), (train_b, val_b, _), (_, val_c, _) = outs
    total = m["rows"]["written"]
    assert len(val) == round(total * 0.2) and len(train) + len(val) == total
    assert m["rows"]["val"] == len(val) and m["outputs"]["val"]["rows"] == len(val)
    assert val == val_b and train == train_b and val != val_c
    assert not {_question_of(r) for r in train} & {_question_of(r) for r in val}
    if stratum == "letter":  # each answer letter keeps (about) its share
        all_letters = Counter(r["messages"][-1]["content"] for r in train + val)
        val_letters = Counter(r["messages"][-1]["content"] for r in val)
        for letter, n in all_letters.items():
            assert abs(val_letters[letter] - n * 0.2) <= 1, (letter, n, val_letters[letter])
    # registered inside out_dir, file names relative to it; nothing in out_dir's parent
    info = json.loads((tmp_path / "a" / "data" / "dataset_info.json").read_text())
    assert info[f"{name}_val"]["file_name"] == f"{name}_val.jsonl"
    assert info[name]["file_name"] == f"{name}.jsonl"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["data"]
    # a later run without val_size removes the stale split
    run(name, opts(name, source=str(SAMPLES_DIR / spec.sample), out_dir=str(tmp_path / "a" / "data"), **extra), quiet=True)
    assert not (tmp_path / "a" / "data" / f"{name}_val.jsonl").exists()


def test_manifest_records_source_checksum_counts_and_version(samples_dataset_dir):
    for name in REGISTRY:
        spec = get_spec(name)
        if spec.sample is None:
            continue
        m = _manifest(samples_dataset_dir, name)
        sample = SAMPLES_DIR / spec.sample
        assert m["name"] == name and m["converter_version"] == spec.version and m["seed"] == 42
        assert m["source"]["kind"] == "local"
        assert m["source"]["sha256"] == hashlib.sha256(sample.read_bytes()).hexdigest()
        out = samples_dataset_dir / "data" / f"{name}.jsonl"
        assert m["outputs"]["train"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
        assert m["rows"]["train"] == len(read_jsonl(out))
        assert m["rows"]["read"] >= m["rows"]["dropped"] + m["rows"]["rejected"]
        assert m["rows"]["dropped"] == sum(m["dropped"].values()) and m["rows"]["rejected"] == sum(m["rejected"].values())
        assert m["rejected_by_file"] == {} and not (samples_dataset_dir / "data" / f"{name}.rejects.jsonl").exists()
        assert set(m["options"]) == {f.name for f in dataclasses.fields(options_class(spec))}


def test_multit_row_layouts_and_item_key():
    base = {"question": "Qual è la capitale d'Italia?", "answer": "B"}
    layouts = [
        {**base, "choices": ["Milano", "Roma", "Napoli"]},
        {**base, "choices": [{"A": "Milano"}, {"B": "Roma"}, {"C": "Napoli"}]},
        {**base, "choices": {"A": "Milano", "B": "Roma", "C": "Napoli"}},
        {**base, "options": ["Milano", "Roma", "Napoli"], "answer": 1},
        {**base, "choices": ["Milano", "Roma", "Napoli"], "answer": " b "},
        {**base, "choices": ["Milano", "Roma", "Napoli"], "answer": "1"},
        {"question": "QUAL E LA CAPITALE D ITALIA", "choices": ["milano", "ROMA", "Napoli!"], "answer": "B"},
        {"question": "  Qual è la  capitale d'Italia ?", "choices": [" Milano", "Roma.", "Napoli"], "answer": "B"},
    ]
    items = [parse_multit_row(row, i) for i, row in enumerate(layouts)]
    assert all(i.answer == "B" and i.option_text("B").strip(" .").casefold() == "roma" for i in items)
    keys = {item_key(i) for i in items}
    assert len(keys) == 1 and next(iter(keys)).startswith("q")  # same normalised question + options -> same key
    assert keys == {question_key("Qual è la capitale d'Italia?", ["Milano", "Roma", "Napoli"])}
    other = parse_multit_row({**layouts[0], "choices": ["Milano", "Roma", "Torino"]}, 0)
    assert item_key(other) not in keys  # same question, other options: another item
    with_id = parse_multit_row({**layouts[0], "id": 17}, 5)
    assert with_id.id == "17" and item_key(with_id) in keys  # the id is never part of the key


def test_hub_source_is_loaded_through_datasets_and_recorded(tmp_path, monkeypatch):
    """No network in tests: ``datasets.load_dataset`` is replaced by a fake that records its
    arguments and yields Wikipedia-shaped rows; the Hub revision lookup by a constant."""
    import datasets

    from llamafactory_ext.data import sources

    calls = []
    rows = _samples("wikipedia_it.jsonl")

    def fake_load(repo_id, config, split=None, streaming=False):
        calls.append((repo_id, config, split, streaming))
        return iter(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.setattr(sources, "hub_revision", lambda repo_id: "0123abcd")
    m = run("wikipedia_it", opts("wikipedia_it", out_dir=str(tmp_path / "data"), max_rows=5), quiet=True)
    assert calls == [("wikimedia/wikipedia", "20231101.it", "train", True)]
    assert m["source"] == {"source": "wikimedia/wikipedia", "kind": "hub", "config": "20231101.it", "split": "train",
                           "revision": "0123abcd", "streaming": True}
    assert m["rows"]["written"] == 5
    calls.clear()
    monkeypatch.setattr(sources, "load_hub", lambda *a: calls.append(a) or iter(_samples("gsm8k_shaped.jsonl")))
    m = run("gsm8k", opts("gsm8k", out_dir=str(tmp_path / "data"), limit=3), quiet=True)
    assert calls == [("openai/gsm8k", "main", "train", False)] and m["rows"]["written"] == 3


@pytest.mark.parametrize("raw,expected", [
    ("1,000.0", "1000"), ("-3", "-3"), ("$5", "5"), ("108.0", "108"), ("0.50", "0.5"), (".5", "0.5"),
    ("-0", "0"), ("12.", "12"), (" 007 ", "7"), ("-$1,250", "-1250"), ("\u22124", "-4"), ("50%", "50"),
    (108.0, "108"), (7, "7"), (2.5, "2.5"), ("abc", None), ("", None), ("-", None), ("1/2", None),
    ("1.2.3", None), (None, None), (True, None), ([1], None), (float("nan"), None),
    ("3,5", "3.5"), ("12,50", "12.5"), ("1,000", "1000"), ("12,345,678", "12345678"), ("1,2,3", None),
])
def test_canonical_number(raw, expected):
    from llamafactory_ext.data.gsm8k import canonical_number

    assert canonical_number(raw) == expected


def test_val_split_by_category_keeps_each_share_and_exact_total():
    strata = ["storia"] * 50 + ["geografia"] * 30 + ["lessico"] * 15 + ["attualità"] * 5
    groups = [None] * len(strata)  # one row per question
    chosen = split_val(strata, groups, 0.1, seed=3)
    assert len(chosen) == 10
    # quotas 5, 3, 1.5, 0.5: the one row left goes to the largest remainder (tie: name order)
    assert Counter(strata[i] for i in chosen) == {"storia": 5, "geografia": 3, "lessico": 1, "attualità": 1}
    assert chosen == split_val(strata, groups, 0.1, seed=3) and chosen != split_val(strata, groups, 0.1, seed=4)
    assert split_val(["a"] * 4, [None] * 4, 0.1, seed=1) == set()  # round(0.4) = 0 rows: no empty-split surprise


def test_val_split_keeps_each_group_on_one_side():
    """Rows of one question (group) always land together; the size counts questions, not rows."""
    groups = [f"q{i // 3}" for i in range(300)]  # 100 questions, 3 rows each
    strata = [("ABCD"[(i // 3) % 4]) for i in range(300)]
    sizes = set()
    for seed in range(40):
        chosen = split_val(strata, groups, 0.2, seed)
        by_group = Counter(groups[i] for i in chosen)
        assert set(by_group.values()) == {3}, seed  # all three rows of a chosen question
        sizes.add(len(by_group))
        assert Counter(strata[i] for i in chosen) == {letter: 15 for letter in "ABCD"}  # 5 questions per letter
    assert sizes == {20}
