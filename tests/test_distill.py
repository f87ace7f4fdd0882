"""Distill filters and bookkeeping on a scripted teacher.

The teacher here is a scripted fake generator (fixed outputs per question and sample) because a
random tiny model is almost never right, so it would never exercise the "kept" path or each
rejection on purpose. Prompts are still encoded by the real tiny Qwen3 tokenizer through
LLaMA-Factory's template; the real tiny model runs in tests/e2e/test_distill_chain.py."""

from __future__ import annotations

import json

import pytest

from llamafactory_ext import distill
from llamafactory_ext.config import from_argv
from llamafactory_ext.data.mcq import MCQItem
from llamafactory_ext.eval.engine import Generation

QUIZ = [
    # question, choices, gold, category, outputs per sample (the last one repeats)
    ("Capitale d'Italia?", ["Roma", "Milano"], "A", "geo",
     ["<think>\nRoma è la capitale. Quindi la risposta è A.\n</think>\n\nA"]),
    ("Capitale di Francia?", ["Lione", "Parigi"], "B", "geo", ["<think>\nCi penso ancora e ancora"]),
    ("Capitale di Spagna?", ["Madrid", "Oslo"], "A", "geo", ["<think>\nuno <think> due\n</think>\n\nA"]),
    ("Capitale di Grecia?", ["Atene", "Sparta"], "A", "geo", ["<think>\n\n</think>\n\nA"]),
    ("Plurale di uovo?", ["uova", "uovi"], "A", "lingua", ["<think>\nDifficile.\n</think>\n\nNon lo so proprio."]),
    ("Plurale di dito?", ["diti", "dita"], "B", "lingua", ["<think>\nDirei diti.\n</think>\n\nA"]),
    ("Plurale di braccio?", ["braccia", "bracci"], "A", "lingua",
     ["<think>\nCi penso: la risposta è B.\n</think>\n\nA"]),
    ("Capitale di Germania?", ["Berlino", "Bonn"], "A", "geo",
     ["<think>\nRoma è la capitale. Quindi la risposta è A.\n</think>\n\nA"]),  # same trace as the first
    ("Plurale di lenzuolo?", ["lenzuola", "lenzuoli"], "A", "lingua",
     ["<think>\nForse lenzuoli.\n</think>\n\nB", "<think>\nIl plurale è lenzuola: opzione A.\n</think>\n\nA"]),
]
EXPECTED = ["kept", "no_close_think", "malformed_tags", "empty_trace", "no_answer", "wrong_answer",
            "answer_mismatch", "duplicate_trace", "kept"]


class ScriptedTeacher:
    """Returns scripted outputs: the question is found in the decoded prompt; sample j of a question
    gets its j-th scripted output (the last one repeats)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.calls = 0
        self.asked: dict[str, int] = {}
        self.params = []

    def generate(self, prompts, params, **_):
        self.calls += 1
        self.params.append(params)
        out = []
        for ids in prompts:
            text = self.tokenizer.decode(ids, skip_special_tokens=False)
            (q,) = [q for q in QUIZ if q[0] in text]
            j = self.asked.get(q[0], 0)
            self.asked[q[0]] = j + 1
            reply = q[4][min(j, len(q[4]) - 1)]
            ids_out = self.tokenizer.encode(reply, add_special_tokens=False)
            out.append(Generation(text=reply, token_ids=ids_out, num_tokens=len(ids_out), finished="</think>" in reply))
        return out


@pytest.fixture
def quiz(tmp_path):
    rows = [{"question": q, "choices": c, "answer": a, "category": cat} for q, c, a, cat, _ in QUIZ]
    path = tmp_path / "quiz.json"
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


def _cfg(quiz, tmp_path, **kw):
    data = {"source": str(quiz), "output": str(tmp_path / "traces.jsonl"), "teacher": {"model": "scripted"},
                "samples_per_question": 2, "batch_size": 4, "progress": False}
    data.update(kw)
    return distill.DistillConfig(**data)


def test_every_filter_on_a_scripted_teacher(quiz, tmp_path, tiny_tokenizer, capsys):
    teacher = ScriptedTeacher(tiny_tokenizer)
    stats = distill.run(_cfg(quiz, tmp_path), engine=teacher)
    rows = [json.loads(line) for line in (tmp_path / "traces.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in rows] == EXPECTED
    assert [r["correct"] for r in rows] == [True, False, False, False, False, False, True, True, True]
    first, last = rows[0], rows[-1]
    assert first["trace"] == "Roma è la capitale. Quindi la risposta è A." and first["answer"] == "A"
    assert first["sample"] == 0 and first["rejected"] == []
    assert last["sample"] == 1 and last["rejected"] == ["wrong_answer"] and last["trace"].startswith("Il plurale")
    # the converter's join key and the contract fields
    from llamafactory_ext.data.multit import item_key, load_multit

    assert [r["key"] for r in rows] == [item_key(i) for i in load_multit(str(quiz))]
    for r in rows:
        assert set(r) >= {"key", "id", "category", "trace", "answer", "gold", "correct", "reason",
                          "prompt_tokens", "completion_tokens", "sample"}
        assert r["prompt_tokens"] > 20 and r["completion_tokens"] > 0
    # rejected questions were asked twice (k=2), kept ones stop at their first good sample
    assert teacher.asked["Capitale d'Italia?"] == 1 and teacher.asked["Capitale di Francia?"] == 2
    assert teacher.params[0].temperature == 0.6 and teacher.params[0].top_p == 0.95
    assert stats.as_dict()["rejections"] == {
        "no_close_think": 2, "malformed_tags": 2, "empty_trace": 2, "no_answer": 2, "wrong_answer": 3,
        "answer_mismatch": 2, "duplicate_trace": 2,
    }
    rejects = (tmp_path / "traces.jsonl.rejects.jsonl").read_text().splitlines()
    assert len(rejects) == 15 and json.loads(rejects[0])["text"]
    summary = json.loads((tmp_path / "traces.jsonl.summary.json").read_text())
    assert summary["asked"] == 9 and summary["kept"] == 2
    assert summary["per_category"] == {"geo": {"asked": 5, "kept": 1, "yield": 0.2},
                                       "lingua": {"asked": 4, "kept": 1, "yield": 0.25}}
    out = capsys.readouterr().out
    assert "| geo | 5 | 1 | 20.0 % |" in out and "| **all** | **9** | **2** | **22.2 %** |" in out
    assert "| answer_mismatch | 2 |" in out


def test_resume_appends_only_missing_questions(quiz, tmp_path, tiny_tokenizer, capsys):
    teacher = ScriptedTeacher(tiny_tokenizer)
    distill.run(_cfg(quiz, tmp_path, limit=4), engine=teacher)
    path = tmp_path / "traces.jsonl"
    assert len(path.read_text().splitlines()) == 4
    # an interrupted write leaves a torn last line: it is dropped and that question asked again
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3]) + "\n" + lines[3][:25])
    teacher2 = ScriptedTeacher(tiny_tokenizer)
    stats = distill.run(_cfg(quiz, tmp_path), engine=teacher2)
    out = capsys.readouterr().out
    assert "dropped an incomplete last line" in out and "3 question(s) already done, 6 to go" in out
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["reason"] for r in rows] == EXPECTED  # the torn question re-asked, in order
    assert len({r["key"] for r in rows}) == 9
    assert "Capitale d'Italia?" not in teacher2.asked  # not asked again
    assert stats.as_dict()["kept"] == 2
    # nothing left: no generation at all
    teacher3 = ScriptedTeacher(tiny_tokenizer)
    distill.run(_cfg(quiz, tmp_path), engine=teacher3)
    assert teacher3.calls == 0


def test_resume_refuses_other_settings(quiz, tmp_path, tiny_tokenizer):
    distill.run(_cfg(quiz, tmp_path, limit=1), engine=ScriptedTeacher(tiny_tokenizer))
    with pytest.raises(distill.UserError, match=r"temperature: 0.6 -> 0.9"):
        distill.run(_cfg(quiz, tmp_path, temperature=0.9), engine=ScriptedTeacher(tiny_tokenizer))
    distill.run(_cfg(quiz, tmp_path, temperature=0.9, overwrite=True, limit=2), engine=ScriptedTeacher(tiny_tokenizer))
    assert len((tmp_path / "traces.jsonl").read_text().splitlines()) == 2


def test_a_hand_edited_row_without_its_key_is_named(quiz, tmp_path, tiny_tokenizer):
    distill.run(_cfg(quiz, tmp_path, limit=2), engine=ScriptedTeacher(tiny_tokenizer))
    path = tmp_path / "traces.jsonl"
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n" + json.dumps({"question": "x"}) + "\n")
    with pytest.raises(distill.DistillError, match=r"traces\.jsonl: line 2: not a distill row"):
        distill.run(_cfg(quiz, tmp_path), engine=ScriptedTeacher(tiny_tokenizer))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["output=x.jsonl", "teacher.model=m"], "source is required"),
        (["source=q.json", "teacher.model=m"], "output is required"),
        (["source=q.json", "output=x.jsonl"], "teacher.model is required"),
        (["source=q.json", "output=x.jsonl", "teacher.model=m", "teacher.modle=x"], "teacher.modle: unknown key"),
        (["source=q.json", "output=x.jsonl", "teacher.model=m", "samples_per_question=0"], "samples_per_question must be >= 1"),
        (["source=q.json", "output=x.jsonl", "teacher.model=m", "backend=tgi"], "backend must be one of"),
        (["source=q.json", "output=x.jsonl", "teacher.model=m", "temprature=1"], "unknown key 'temprature'"),
        (["source=q.json", "output=.", "teacher.model=m"], r"output=\. is a folder; give a file name"),
        (["source=q.json", "output=x.jsonl", "teacher.model=m", "max_new_tokens=0"], "max_new_tokens must be >= 1"),
        (["source=q.json", "output=x.jsonl", "teacher.model=m", "system=${HOME}", "top_p=0"], "top_p must be > 0"),
        # a misspelt engine key was silently ignored (the engine ran on its default device)
        (["source=q.json", "output=x.jsonl", "teacher.model=m", "engine.devcie=cpu"],
         r"command line: unknown key 'engine.devcie' \(did you mean 'engine.device'\?\)"),
        (["source=q.json", "output=x.jsonl", "teacher.model=m", "dataset=gsm8k"],
         "dataset=gsm8k: distill asks multiple-choice questions; the multiple-choice tasks are italic, multit"),
        (["source=q.json", "output=x.jsonl", "teacher.model=m", "dataset=italc"], r"unknown task 'italc' \(did you mean 'italic'\?\)"),
    ],
)
def test_bad_config(tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(distill.UserError, match=message):
        distill.main(argv)


def test_missing_source_file_names_it(tmp_path):
    with pytest.raises(distill.UserError, match="nope.json"):
        distill.main([f"source={tmp_path}/nope.json", f"output={tmp_path}/t.jsonl", "teacher.model=m"])


def test_yaml_config_and_nested_override(tmp_path, repo_root):
    cfg = from_argv(distill.DistillConfig, [str(repo_root / "recipes/distill/multit_qwen3.yaml"), "teacher.model=/m", "source=q.json"])
    assert cfg.teacher == {"model": "/m", "adapter": None, "template": "qwen3"}
    assert (cfg.temperature, cfg.top_p, cfg.dataset) == (0.6, 0.95, "multit")


@pytest.mark.parametrize(
    "trace, letter",
    [
        ("Analizzo le opzioni. Quindi la risposta è C.", "C"),
        ("Ragiono.\nRisposta: b", "B"),
        ("So the answer is D", "D"),
        ("Penso a lungo.\n**A**", "A"),
        ("L'opzione B sembra plausibile all'inizio, ma è errata.\n" + "x " * 200 + "\nNon so.", None),
        ("Non nomino nessuna lettera qui.", None),
    ],
)
def test_trace_letter(trace, letter):
    item = MCQItem(id="0", question="q", options=[("A", "a"), ("B", "b"), ("C", "c"), ("D", "d")], answer="A")
    assert distill.trace_letter(trace, item) == letter


def test_italic_shaped_source(tmp_path, tiny_tokenizer):
    """dataset=italic reads ITALIC's GitHub schema (options as one-key dicts, letter answers)."""
    rows = [
        {"question": "Chi scrisse la Divina Commedia?", "options": [{"A": "Petrarca"}, {"B": "Dante"}],
         "answer": "B", "category": "literature", "macro_category": "culture and commonsense"},
        {"question": "Qual è il plurale di uovo?", "options": [{"A": "uova"}, {"C": "uovi"}],
         "answer": "C", "category": "morphology", "macro_category": "language capability"},
    ]
    src = tmp_path / "italic.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")

    class Teacher:
        tokenizer = tiny_tokenizer

        def generate(self, prompts, params, **_):
            texts = [self.tokenizer.decode(ids) for ids in prompts]
            return [Generation(text="<think>\nPenso a Dante, risposta B.\n</think>\n\nB" if "Commedia" in t
                               else "<think>\nL'opzione C è sbagliata.\n</think>\n\nC", num_tokens=9) for t in texts]

    stats = distill.run(_cfg(src, tmp_path, dataset="italic", samples_per_question=1), engine=Teacher())
    out = [json.loads(line) for line in (tmp_path / "traces.jsonl").read_text().splitlines()]
    # "opzione C" at the end of the second trace is read as naming C (negation is not understood):
    # it agrees with the final answer, so the row is kept
    assert [(r["reason"], r["category"], r["answer"]) for r in out] == [("kept", "literature", "B"), ("kept", "morphology", "C")]
    assert stats.as_dict()["per_category"]["morphology"]["yield"] == 1.0


def test_several_source_files_read_in_turn(tmp_path, tiny_tokenizer):
    """Mult-IT comes as Multi-IT-A/quiz.json + Multi-IT-C/quiz.json: source=[a, b]."""
    rows = [{"question": q, "choices": c, "answer": a, "category": cat} for q, c, a, cat, _ in QUIZ]
    a, b = tmp_path / "a.json", tmp_path / "c.json"
    a.write_text(json.dumps(rows[:4], ensure_ascii=False), encoding="utf-8")
    b.write_text(json.dumps(rows[4:], ensure_ascii=False), encoding="utf-8")
    cfg = from_argv(distill.DistillConfig, [f"source=[{a},{b}]", f"output={tmp_path / 'traces.jsonl'}", "teacher.model=x",
                                  "samples_per_question=2", "progress=false"])
    distill.run(cfg, engine=ScriptedTeacher(tiny_tokenizer))
    out = [json.loads(line) for line in (tmp_path / "traces.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in out] == EXPECTED


def test_output_folder_and_unknown_teacher_are_one_line_errors(tmp_path, quiz):
    from tests.helpers import EXT, one_line_error, run_cmd

    line = one_line_error(run_cmd([*EXT, "distill", f"source={quiz}", f"output={tmp_path}", "teacher.model=m"]))
    assert f"output={tmp_path} is a folder" in line
    line = one_line_error(run_cmd([*EXT, "distill", f"source={quiz}", f"output={tmp_path / 't.jsonl'}", "teacher.model=nobody/no-such-model"]))
    assert "cannot load" in line and "nobody/no-such-model" in line
