"""Mult-IT specifics: traces join on the normalised question + options (never on ``id``),
repeated questions are dropped, the validation split is drawn by question, and bad traces rows
are rejects with file, line, field and reason."""

from __future__ import annotations

import json
import random
import subprocess
from collections import Counter, defaultdict

import pytest

from llamafactory_ext import cli
from llamafactory_ext.data import get_spec
from llamafactory_ext.data.fields import RowError
from llamafactory_ext.data.multit import item_key, parse_multit_row
from llamafactory_ext.data.normalize import normalize_text
from llamafactory_ext.data.prepare import options_class, run
from llamafactory_ext.thinking import format_thinking
from tests.helpers import (
    EXT,
    one_line_error,
    output_tail,
    read_jsonl,
    run_cmd,
    write_jsonl,
)


def opts(name: str, **values):
    if "out_dir" in values:  # registered beside the outputs, never in the checkout's ./dataset_info.json
        values.setdefault("dataset_info", f"{values['out_dir']}/dataset_info.json")
    return options_class(get_spec(name))(**values)


def key_of(row: dict) -> str:
    return item_key(parse_multit_row(row, 0))


def trace_row(row: dict, trace: str, **extra) -> dict:
    """A traces row as ``llamafactory-ext distill`` writes it (``id`` included: it must not matter)."""
    return {"key": key_of(row), "id": row.get("id"), "trace": trace, "answer": row["answer"], "correct": True, "reason": "kept", **extra}


def question_of(row: dict) -> str:
    """The normalised question text of a prepared row (the line after the instruction)."""
    return normalize_text(row["messages"][1]["content"].split("\n")[2])


# ---------------------------------------------------------------------------------------------
# shared ids: Multi-IT-A and Multi-IT-C number their questions from 1 each
# ---------------------------------------------------------------------------------------------
ITALY = {"id": 1, "question": "Qual è la capitale d'Italia?", "choices": ["Roma", "Parigi", "Madrid"], "answer": "A"}
FRANCE = {"id": 1, "question": "Qual è la capitale della Francia?", "choices": ["Roma", "Parigi", "Madrid"], "answer": "B"}
SPAIN_A = {"id": 2, "question": "Qual è la capitale?", "choices": ["Madrid", "Lisbona"], "answer": "A"}
SPAIN_C = {"id": 2, "question": "Qual è la capitale?", "choices": ["Lisbona", "Berlino"], "answer": "A"}  # same text, other options
ONLY_C = {"id": 3, "question": "Qual è la capitale della Germania?", "choices": ["Berlino", "Vienna"], "answer": "A"}
TRACES = {
    "italy": "La capitale d'Italia è Roma.",
    "france": "La capitale della Francia è Parigi.",
    "spain_a": "La risposta giusta tra Madrid e Lisbona è Madrid.",
    "spain_c": "La risposta giusta tra Lisbona e Berlino è Lisbona.",
}


@pytest.fixture(scope="module")
def shared_ids(tmp_path_factory):
    d = tmp_path_factory.mktemp("shared-ids")
    (d / "Multi-IT-A").mkdir()
    (d / "Multi-IT-C").mkdir()
    a = d / "Multi-IT-A" / "quiz.json"
    c = d / "Multi-IT-C" / "quiz.json"
    a.write_text(json.dumps([ITALY, SPAIN_A], ensure_ascii=False), encoding="utf-8")
    c.write_text(json.dumps([FRANCE, SPAIN_C, ONLY_C], ensure_ascii=False), encoding="utf-8")
    # the traces file lists C's questions first: a join on id would give Italy the French trace
    traces = write_jsonl(d / "traces.jsonl", [
        trace_row(FRANCE, TRACES["france"]), trace_row(SPAIN_C, TRACES["spain_c"]),
        trace_row(ITALY, TRACES["italy"]), trace_row(SPAIN_A, TRACES["spain_a"]),
    ])
    return d, a, c, traces


def _answers_by_question(path) -> dict[str, list[str]]:
    out = defaultdict(list)
    for row in read_jsonl(path):
        user = row["messages"][1]["content"].split("\n")
        out[f"{user[2]} | {' / '.join(user[3:])}"].append(row["messages"][-1]["content"])
    return dict(out)


def test_shared_ids_each_question_gets_its_own_trace_think(shared_ids):
    d, a, c, traces = shared_ids
    out = d / "think"
    proc = run_cmd([*EXT, "prepare", "multit_think", f"source=[{a},{c}]", f"traces={traces}", f"out_dir={out}"], cwd=out.parent)
    assert proc.returncode == 0, output_tail(proc)
    got = _answers_by_question(out / "multit_think.jsonl")
    assert got == {
        "Qual è la capitale d'Italia? | A) Roma / B) Parigi / C) Madrid": [format_thinking(TRACES["italy"], "A")],
        "Qual è la capitale? | A) Madrid / B) Lisbona": [format_thinking(TRACES["spain_a"], "A")],
        "Qual è la capitale della Francia? | A) Roma / B) Parigi / C) Madrid": [format_thinking(TRACES["france"], "B")],
        "Qual è la capitale? | A) Lisbona / B) Berlino": [format_thinking(TRACES["spain_c"], "A")],
    }
    m = json.loads((out / "multit_think.manifest.json").read_text())
    assert m["dropped"] == {"no_trace": 1} and m["converter"]["traces_joined"] == 4 and m["converter"]["traces_unmatched"] == 0


def test_shared_ids_each_question_gets_its_own_trace_mixed(shared_ids):
    d, a, c, traces = shared_ids
    m = run("multit_mixed", opts("multit_mixed", source=[str(a), str(c)], traces=str(traces), out_dir=str(d / "mixed"), mix="all"),
            quiet=True)
    got = _answers_by_question(d / "mixed" / "multit_mixed.jsonl")
    france = got["Qual è la capitale della Francia? | A) Roma / B) Parigi / C) Madrid"]
    assert france == [format_thinking(TRACES["france"], "B"), "B"]
    assert not any("Roma." in answer for answer in france)  # never trains on the Italian trace
    assert got["Qual è la capitale d'Italia? | A) Roma / B) Parigi / C) Madrid"] == [format_thinking(TRACES["italy"], "A"), "A"]
    assert got["Qual è la capitale della Germania? | A) Berlino / B) Vienna"] == ["A"]  # no trace: plain row only
    assert m["rows"]["written"] == 4 * 2 + 1 and m["dropped"] == {}


def test_a_trace_keyed_by_id_alone_is_a_reject_not_a_join(shared_ids, tmp_path):
    _, a, c, _ = shared_ids
    by_id = write_jsonl(tmp_path / "old.jsonl", [{"id": 1, "trace": TRACES["italy"], "correct": True, "reason": "kept"}])
    with pytest.raises(RowError) as err:
        run("multit_think", opts("multit_think", source=[str(a), str(c)], traces=str(by_id), out_dir=str(tmp_path / "o")), quiet=True)
    assert (err.value.file, err.value.row, err.value.field, err.value.reason) == (str(by_id), 1, "key", "traces_missing_field")


# ---------------------------------------------------------------------------------------------
# repeated questions
# ---------------------------------------------------------------------------------------------
BASE = {"question": "Qual è il plurale della parola \"uovo\"?", "choices": ["uova", "uovi", "uove"], "answer": "A"}
COPIES = [  # the same question: re-cased, re-punctuated, re-spaced, accents dropped, answer as an index
    {"question": "QUAL È IL PLURALE DELLA PAROLA \"UOVO\"?", "choices": ["UOVA", "UOVI", "UOVE"], "answer": "A"},
    {"question": "Qual è il plurale della parola uovo", "choices": ["uova.", "uovi!", "uove?"], "answer": 0},
    {"question": "  Qual   è il plurale  della parola \"uovo\" ? ", "choices": [" uova", "uovi ", "uove"], "answer": "0"},
    {"question": "Qual e il plurale della parola 'uovo'?", "choices": ["uova", "uovi", "uove"], "answer": "B"},  # another answer
]
DIFFERENT = [  # not copies: other options, other order, another question
    {"question": BASE["question"], "choices": ["uova", "uovi"], "answer": "A"},
    {"question": BASE["question"], "choices": ["uovi", "uova", "uove"], "answer": "B"},
    {"question": "Qual è il plurale della parola \"dito\"?", "choices": ["dita", "diti", "dite"], "answer": "A"},
]


def test_repeated_questions_are_dropped_and_counted(tmp_path):
    src = write_jsonl(tmp_path / "quiz.jsonl", [BASE, *COPIES, *DIFFERENT])
    assert len({key_of(r) for r in [BASE, *COPIES]}) == 1
    m = run("multit_nothink", opts("multit_nothink", source=str(src), out_dir=str(tmp_path / "o")), quiet=True)
    assert m["rows"]["read"] == 8 and m["rows"]["written"] == 4
    assert m["dropped"] == {"duplicate_question": len(COPIES)} and m["rows"]["dropped"] == len(COPIES)
    assert m["converter"]["duplicate_questions_with_another_answer"] == 1
    rows = read_jsonl(tmp_path / "o" / "multit_nothink.jsonl")
    assert rows[0]["messages"][1]["content"].split("\n")[2] == BASE["question"]  # the first copy is the one kept
    assert [r["messages"][-1]["content"] for r in rows] == ["A", "A", "B", "A"]
    kept = run("multit_nothink", opts("multit_nothink", source=str(src), out_dir=str(tmp_path / "k"), dedup=False), quiet=True)
    assert kept["rows"]["written"] == 8 and kept["dropped"] == {}


def test_repeated_questions_across_files_and_in_think(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [BASE])
    c = write_jsonl(tmp_path / "c.jsonl", COPIES[:2])
    traces = write_jsonl(tmp_path / "traces.jsonl", [trace_row(BASE, "Uovo al plurale fa uova.")])
    for name in ("multit_think", "multit_mixed"):
        extra = {"mix": "all"} if name == "multit_mixed" else {}
        m = run(name, opts(name, source=[str(a), str(c)], traces=str(traces), out_dir=str(tmp_path / name), **extra), quiet=True)
        assert m["dropped"] == {"duplicate_question": 2}, name
        assert m["rows"]["written"] == (1 if name == "multit_think" else 2), name


# ---------------------------------------------------------------------------------------------
# validation split drawn by question
# ---------------------------------------------------------------------------------------------
def _variant(row: dict, rng: random.Random) -> dict:
    """The same question written another way (same normalised question + options)."""
    q = row["question"]
    pick = rng.randrange(3)
    q = q.upper() if pick == 0 else q.rstrip("?") + " ?!" if pick == 1 else "  " + q.replace(" ", "  ")
    return {**row, "question": q, "choices": [c.upper() for c in row["choices"]]}


@pytest.fixture(scope="module")
def big_quiz(tmp_path_factory):
    """300 questions in 6 categories, 60 of them repeated (written another way) 1 to 3 times,
    shuffled; traces for every other question. Also: rows per normalised question, traced ones."""
    d = tmp_path_factory.mktemp("big-quiz")
    rng = random.Random(5)
    cats = ["storia", "geografia", "lessico", "letteratura", "sintassi", "attualità"]
    base = []
    for i in range(300):
        n = 2 + i % 4
        base.append({"question": f"Domanda {i}: quale opzione è giusta per il caso {i * 7 % 101}?",
                     "choices": [f"opzione {i}-{j}" for j in range(n)], "answer": "ABCDE"[i % n], "category": cats[i % 6]})
    rows = list(base)
    for i in range(0, 300, 5):
        rows += [_variant(base[i], rng) for _ in range(1 + i % 3)]
    rng.shuffle(rows)
    quiz = write_jsonl(d / "quiz.jsonl", rows)
    traces = write_jsonl(d / "traces.jsonl", [trace_row(r, f"Ragiono sulla domanda {i}.") for i, r in enumerate(base) if i % 2 == 0])
    copies = Counter(normalize_text(r["question"]) for r in rows)
    traced = {normalize_text(r["question"]) for i, r in enumerate(base) if i % 2 == 0}
    assert len(copies) == 300 and len(rows) > 400
    return d, quiz, traces, copies, traced


@pytest.mark.parametrize("name,dedup", [
    ("multit_nothink", True),
    ("multit_nothink", False),  # the copies are kept: all of them on one side
    ("multit_mixed", True),  # mix=all: a traced question has a thinking and a plain row, both on one side
    ("multit_mixed", False),
])
def test_val_split_never_puts_a_question_on_both_sides(big_quiz, name, dedup):
    d, quiz, traces, copies, traced = big_quiz
    extra = {"traces": str(traces), "mix": "all"} if name == "multit_mixed" else {}
    expected = {q: (n if not dedup else 1) * (2 if name == "multit_mixed" and q in traced else 1) for q, n in copies.items()}
    val_questions: set[str] = set()
    for seed in range(8):
        out = d / f"{name}-{dedup}-{seed}"
        m = run(name, opts(name, source=str(quiz), out_dir=str(out), val_size=0.2, seed=seed, dedup=dedup, register=False, **extra),
                quiet=True)
        train, val = read_jsonl(out / f"{name}.jsonl"), read_jsonl(out / f"{name}_val.jsonl")
        assert len(train) + len(val) == m["rows"]["written"] == sum(expected.values())
        assert (m["rows"]["train"], m["rows"]["val"]) == (len(train), len(val))
        train_q, val_q = Counter(question_of(r) for r in train), Counter(question_of(r) for r in val)
        assert not set(train_q) & set(val_q), (seed, sorted(set(train_q) & set(val_q))[:3])
        assert all(val_q[q] == expected[q] for q in val_q) and all(train_q[q] == expected[q] for q in train_q)
        assert len(val_q) == 60 and len(train_q) == 240  # a fifth of the 300 questions, whatever their rows
        assert m["dropped"] == ({"duplicate_question": sum(copies.values()) - 300} if dedup else {})
        val_questions |= set(val_q)
    assert len(val_questions) > 150  # the seeds really draw different questions


def test_val_split_keeps_category_shares(big_quiz, tmp_path):
    _, quiz, *_ = big_quiz
    run("multit_nothink", opts("multit_nothink", source=str(quiz), out_dir=str(tmp_path), val_size=0.1, register=False), quiet=True)
    val = read_jsonl(tmp_path / "multit_nothink_val.jsonl")
    intros = Counter(r["messages"][1]["content"].split(".", 1)[0] for r in val)
    assert len(val) == 30 and sorted(intros.values()) == [5] * 6  # 50 questions per category -> 5 each


# ---------------------------------------------------------------------------------------------
# bad traces rows
# ---------------------------------------------------------------------------------------------
QUIZ = [{"question": f"Domanda {i}: quale lettera?", "choices": ["a", "b", "c"], "answer": "ABC"[i % 3]} for i in range(4)]
GOOD_TRACE = trace_row(QUIZ[0], "Ci penso: è la prima.")
# (line content, field, reason)
BAD_TRACES = [
    ({"trace": "Senza chiave.", "correct": True, "reason": "kept"}, "key", "traces_missing_field"),
    ({**trace_row(QUIZ[1], "Forse."), "correct": "yes"}, "correct", "traces_wrong_type"),
    (trace_row(QUIZ[2], "<think>doppio</think>"), "trace", "traces_think_tag_in_trace"),
    (b'{"key": "q0", "trace": \n', None, "traces_invalid_json"),
    (b"[1, 2]\n", None, "traces_not_an_object"),
    ({**trace_row(QUIZ[3], "Ok."), "trace": None}, "trace", "traces_wrong_type"),
]


def test_bad_traces_rows_go_to_rejects_under_skip(tmp_path, capsys):
    quiz = write_jsonl(tmp_path / "quiz.jsonl", [*QUIZ, {"question": "Rotta?", "choices": ["a", "b"], "answer": "Z"}])
    lines = [GOOD_TRACE]
    for bad, _, _ in BAD_TRACES:
        lines.append(bad)
    lines += [
        {**trace_row(QUIZ[3], "Sbagliato."), "correct": False, "reason": "wrong_answer"},  # counted, not a reject
        {**trace_row(QUIZ[3], "Troppo lungo."), "reason": "too_long"},  # counted, not a reject
        trace_row(QUIZ[1], "È la seconda."),
    ]
    traces = write_jsonl(tmp_path / "traces.jsonl", lines)
    out = tmp_path / "out"
    m = run("multit_think", opts("multit_think", source=str(quiz), traces=str(traces), out_dir=str(out), on_error="skip"), quiet=False)
    printed = capsys.readouterr().out
    rejects = read_jsonl(out / "multit_think.rejects.jsonl")
    from_traces = [r for r in rejects if r["file"] == str(traces)]
    assert [(r["line"], r["field"], r["reason"]) for r in from_traces] == [
        (2 + i, field, reason) for i, (_, field, reason) in enumerate(BAD_TRACES)
    ]
    assert all(r["error"] for r in rejects) and from_traces[0]["data"] == BAD_TRACES[0][0]
    assert [(r["file"], r["line"], r["reason"]) for r in rejects if r["file"] != str(traces)] == [(str(quiz), 5, "answer_not_in_options")]
    expected = Counter(reason for _, _, reason in BAD_TRACES)
    expected["answer_not_in_options"] += 1
    assert m["rejected"] == dict(expected) and m["rows"]["rejected"] == len(BAD_TRACES) + 1
    assert m["rejected_by_file"] == {str(traces): len(BAD_TRACES), str(quiz): 1}
    assert m["converter"]["traces"] == {"rows": len(lines) - 2, "accepted": 2, "not_correct": 1, "not_kept": 1,
                                        "duplicate_key": 0, "invalid": len(BAD_TRACES)}
    assert m["rows"]["written"] == 2 and m["dropped"] == {"no_trace": 2}
    assert [r["messages"][-1]["content"] for r in read_jsonl(out / "multit_think.jsonl")] == [
        format_thinking("Ci penso: è la prima.", "A"), format_thinking("È la seconda.", "B")]
    # the summary line names the count, the reasons, each file and the rejects file
    assert f"rejected {len(BAD_TRACES) + 1} bad rows (" in printed and "traces_think_tag_in_trace 1" in printed
    assert f"traces.jsonl {len(BAD_TRACES)}" in printed and "quiz.jsonl 1" in printed
    assert str(out / "multit_think.rejects.jsonl") in printed
    assert f"{len(BAD_TRACES)} invalid rows" in printed


@pytest.mark.parametrize("bad,field,reason", BAD_TRACES, ids=[r for _, _, r in BAD_TRACES])
def test_bad_traces_row_stops_the_run_under_fail(tmp_path, bad, field, reason):
    quiz = write_jsonl(tmp_path / "quiz.jsonl", QUIZ)
    traces = write_jsonl(tmp_path / "traces.jsonl", [GOOD_TRACE, bad, trace_row(QUIZ[1], "Dopo.")])
    out = tmp_path / "out"
    with pytest.raises(RowError) as err:
        run("multit_mixed", opts("multit_mixed", source=str(quiz), traces=str(traces), out_dir=str(out)), quiet=True)
    e = err.value
    assert (e.file, e.row, e.field, e.reason) == (str(traces), 2, field, reason)
    assert str(e).startswith(f"{traces}: line 2" + (f", field '{field}'" if field else ""))
    assert not (out / "multit_mixed.jsonl").exists() and not (out / "multit_mixed.rejects.jsonl").exists()


def test_bad_traces_row_cli_one_line(tmp_path, capsys):
    quiz = write_jsonl(tmp_path / "quiz.jsonl", QUIZ)
    traces = write_jsonl(tmp_path / "traces.jsonl", [GOOD_TRACE, {**trace_row(QUIZ[1], "Forse."), "correct": "yes"}])
    rc = cli.main(["prepare", "multit_think", f"source={quiz}", f"traces={traces}", f"out_dir={tmp_path / 'o'}"])
    captured = capsys.readouterr()
    line = one_line_error(subprocess.CompletedProcess([], rc, captured.out, captured.err))
    assert f"{traces}: line 2, field 'correct': expected true or false, got 'yes'" in line
