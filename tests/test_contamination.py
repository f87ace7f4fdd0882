"""``llamafactory-ext contamination``: planted evaluation questions are found in training files
(raw Mult-IT / GSM8K rows, prepared sharegpt rows, other LLaMA-Factory shapes), clean files report
nothing, the JSON keeps its schema and bad input exits 2 with one line."""

from __future__ import annotations

import json
import random
import sys
import unicodedata
from pathlib import Path

import pytest

from llamafactory_ext import cli
from llamafactory_ext.config import UserError
from llamafactory_ext.contamination import find_contamination, render_markdown, write_report
from llamafactory_ext.data.normalize import normalize_text
from llamafactory_ext.data.overlap import ContaminationError, EvalIndex, EvalItem, normalized
from llamafactory_ext.data.row_text import read_row, split_prompt
from tests.helpers import output_tail, run_cmd

CULTURE, LANGUAGE = "culture and commonsense", "language capability"

# A small ITALIC-shaped file (GitHub layout: options as one-key dicts, answer a letter): long
# questions for the n-gram check, a short item (< 13 words with its options), the A/C-only row.
SAMPLE = [
    ("Quale città italiana è famosa per la Torre pendente, costruita a partire dal XII secolo come campanile del Duomo?",
     ["Pisa", "Bologna", "Firenze", "Siena"], "A", "art_history", CULTURE),
    ("Chi è l'autore del romanzo storico «I promessi sposi», ambientato in Lombardia durante la dominazione spagnola del Seicento?",
     ["Alessandro Manzoni", "Giovanni Verga", "Ugo Foscolo", "Italo Svevo"], "A", "literature", CULTURE),
    ("Il contrario di 'alto' è:", ["basso", "lungo", "largo", "corto", "stretto"], "A", "synonyms_and_antonyms", LANGUAGE),
    ("QUALE PAROLA È SCRITTA CORRETTAMENTE?", {"A": "Qualcuno", "C": "Qualcunno"}, "A", "orthography", LANGUAGE),
    ("In quale anno è stata proclamata la Repubblica Italiana, dopo il referendum istituzionale che pose fine alla monarchia?",
     ["1946", "1948", "1945", "1950"], "A", "history", CULTURE),
    ("Nella frase «Il gatto che ho visto ieri dormiva sul divano», la proposizione «che ho visto ieri» è una proposizione:",
     ["relativa", "causale", "temporale", "finale"], "A", "syntax", LANGUAGE),
    ("Quale isola italiana è nota per i faraglioni e per la Grotta Azzurra, meta turistica nel golfo di Napoli?",
     ["Capri", "Ischia", "Procida", "Elba"], "A", "tourism", CULTURE),
    ("Qual è il fiume più lungo d'Italia, che attraversa la Pianura Padana da ovest a est fino al mare Adriatico?",
     ["Po", "Tevere", "Arno", "Adige"], "A", "geography", CULTURE),
]
Q = [s[0] for s in SAMPLE]
OPTS = [list(s[1].values()) if isinstance(s[1], dict) else s[1] for s in SAMPLE]
FILLER = [
    {"question": "Quanti giorni ha una settimana?", "choices": ["5", "6", "7", "8"], "answer": "C"},
    {"question": "Di che colore è il cielo sereno?", "choices": ["Verde", "Blu", "Rosso"], "answer": "B"},
    {"question": "Qual è la capitale della Francia?", "choices": ["Lione", "Parigi", "Nizza", "Lilla"], "answer": "B"},
]


def italic_rows() -> list[dict]:
    rows = []
    for question, options, answer, category, macro in SAMPLE:
        pairs = list(options.items()) if isinstance(options, dict) else list(zip("ABCDE", options, strict=False))
        rows.append({"question": question, "options": [{k: v} for k, v in pairs], "answer": answer,
                     "category": category, "macro_category": macro})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def strip_accents(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


@pytest.fixture
def italic_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "italic.jsonl", italic_rows())


# quiz.json rows (1-based) -> (sample index, kind) that must be reported
PLANTED = {
    2: (0, "exact"),   # ALL CAPS
    3: (1, "exact"),   # re-punctuated
    4: (4, "exact"),   # accents stripped
    5: (6, "exact"),   # extra whitespace
    6: (5, "exact"),   # options reordered
    7: (0, "ngram"),   # question embedded in a longer text (question view: all its 13-grams)
    8: (2, "ngram"),   # short item inside a pre-training text (whole sequence, contiguous)
}


def planted_quiz() -> list[dict]:
    return [
        FILLER[0],
        {"question": Q[0].upper(), "choices": OPTS[0], "answer": "A"},
        {"question": Q[1].replace(",", " ;").replace("«", "\"").replace("»", "\"").replace("?", "?!!"),
         "choices": OPTS[1], "answer": "A"},
        {"question": strip_accents(Q[4]), "choices": OPTS[4], "answer": "A"},
        {"question": "  " + "   ".join(Q[6].split()).replace(" ", "\t", 3) + "  \n", "choices": OPTS[6], "answer": "A"},
        {"question": Q[5], "choices": OPTS[5][::-1], "answer": "D"},
        {"question": f"Ripassiamo insieme per l'esame: {Q[0]} Pensaci bene prima di rispondere.", "choices": ["Roma", "Lucca"],
         "answer": "A"},
        {"text": "Nel quiz di ieri c'era questa: il contrario di ALTO è... basso, lungo, largo, corto, stretto. Facile!"},
        # near misses: the first eight words of a long question; a short item with a word missing
        {"question": " ".join(Q[1].split()[:8]) + " secondo te?", "choices": ["Dante", "Petrarca"], "answer": "A"},
        {"text": "Il contrario di alto è basso, lungo, corto, stretto."},
        FILLER[1],
    ]


@pytest.fixture
def quiz_file(tmp_path) -> Path:
    path = tmp_path / "quiz.json"
    path.write_text(json.dumps(planted_quiz(), ensure_ascii=False), encoding="utf-8")
    return path


def pair_set(report) -> set[tuple[int, str, str]]:
    return {(p.train_row, p.eval_id, p.kind) for p in report.pairs}


# ---------------------------------------------------------------------------------------------
# the checks
# ---------------------------------------------------------------------------------------------
def test_planted_questions_are_found(quiz_file, italic_file):
    report = find_contamination([quiz_file], "italic", source=str(italic_file))
    expected = {(row, str(i), kind) for row, (i, kind) in PLANTED.items()}
    assert pair_set(report) == expected
    assert report.matched == len({i for i, _ in PLANTED.values()}) == 6
    assert report.rows_read == 11 and report.unreadable_rows == 0
    embedded = next(p for p in report.pairs if p.train_row == 7)
    assert embedded.score == 1.0  # every 13-gram of the question is in the row
    per_category = report.per_category
    assert per_category["art_history"] == {"items": 1, "matched": 1}
    assert per_category["geography"] == {"items": 1, "matched": 0}
    assert per_category["orthography"] == {"items": 1, "matched": 0}
    assert report.per_macro_category == {CULTURE: {"items": 5, "matched": 4}, LANGUAGE: {"items": 3, "matched": 2}}


def test_items_loaded_by_the_caller(quiz_file, italic_file):
    """The evaluator passes the items it has loaded (MCQItem) and one path."""
    from llamafactory_ext.data.italic import load_italic

    report = find_contamination(quiz_file, "italic", items=load_italic(italic_file))
    assert pair_set(report) == {(row, str(i), kind) for row, (i, kind) in PLANTED.items()}
    assert report.items == len(SAMPLE)


def test_exact_row_is_not_listed_again_as_ngram(tmp_path, italic_file):
    train = write_jsonl(tmp_path / "t.jsonl", [{"question": Q[0], "choices": OPTS[0], "answer": "A"}])
    report = find_contamination([train], "italic", source=str(italic_file))
    index = EvalIndex([EvalItem("0", Q[0], tuple(OPTS[0]))], 13)
    assert index.ngram_matches(normalize_text(Q[0] + " " + " ".join(OPTS[0])).split(), 0.5) == {0: 1.0}
    assert [(p.eval_id, p.kind, p.score) for p in report.pairs] == [("0", "exact", 1.0)]


def test_clean_file_reports_zero(tmp_path, italic_file):
    train = write_jsonl(tmp_path / "clean.jsonl", FILLER * 3 + [{"text": "La Pianura Padana è attraversata da molti fiumi."}])
    report = find_contamination([train], "italic", source=str(italic_file))
    assert report.matched == 0 and report.pairs == []
    assert report.rows_read == 10
    assert sum(c["items"] for c in report.per_category.values()) == len(SAMPLE)
    assert all(c["matched"] == 0 for c in report.per_category.values())


@pytest.mark.parametrize("layout", ["messages", "conversations"])
def test_a_question_inside_a_preference_answer_is_found(tmp_path, italic_file, layout):
    """Pairwise rows as prepare writes them (messages + chosen / rejected turns) and LLaMA-Factory's
    conversations layout: the answers are read too."""
    role, text, user = ("role", "content", "user") if layout == "messages" else ("from", "value", "human")
    rows = [{layout: [{role: user, text: "Scrivi una domanda di cultura generale."}],
             "chosen": {role: "assistant", text: f"Ecco: {Q[0]}"},
             "rejected": {role: "assistant", text: "Non so."}}]
    report = find_contamination([write_jsonl(tmp_path / "pairs.jsonl", rows)], "italic", source=str(italic_file))
    assert report.matched == 1 and {p.train_row for p in report.pairs} == {1}


def test_prepared_sharegpt_file_is_checked(tmp_path, italic_file):
    from llamafactory_ext.data import get_spec
    from llamafactory_ext.data.prepare import options_class, run

    quiz = tmp_path / "quiz.json"
    rows = [FILLER[0], {"question": Q[0], "choices": OPTS[0], "answer": "A"}, FILLER[1],
            {"question": Q[6].upper(), "choices": OPTS[6][::-1], "answer": "D"}, FILLER[2],
            {"question": Q[5], "choices": OPTS[5], "answer": "A"}]
    quiz.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    options = options_class(get_spec("multit_nothink"))(source=str(quiz), out_dir=str(tmp_path / "data"), register=False)
    run("multit_nothink", options, quiet=True)
    prepared = tmp_path / "data" / "multit_nothink.jsonl"
    first = json.loads(prepared.read_text(encoding="utf-8").splitlines()[1])
    user = next(m["content"] for m in first["messages"] if m["role"] == "user")
    assert "\n\n" in user and "\nA) " in user  # the instruction paragraph and option lines are there
    report = find_contamination([prepared], "italic", source=str(italic_file))
    assert pair_set(report) == {(2, "0", "exact"), (4, "6", "exact"), (6, "5", "exact")}


def test_row_shapes(tmp_path, italic_file):
    question, options = Q[0], OPTS[0]
    user = "Rispondi alla domanda.\n\n" + question + "\n" + "\n".join(f"{k}) {v}" for k, v in zip("ABCD", options, strict=True))
    rows = [
        {"conversations": [{"from": "human", "value": user}, {"from": "gpt", "value": "A"}]},
        {"instruction": question, "input": "", "output": "Pisa"},
        {"instruction": "Rispondi con la lettera giusta.", "input": question, "output": "A"},
        {"prompt": question, "chosen": "Pisa", "rejected": "Siena"},
        {"prompt": [{"role": "user", "content": [{"type": "text", "text": user}]}], "chosen": [{"role": "assistant", "content": "A"}],
         "rejected": [{"role": "assistant", "content": "B"}]},
        {"question": question, "options": [{"A": "Pisa"}, {"B": "Siena"}], "answer": "A", "category": "art_history"},
        {"question": question, "choices": {"A": "Pisa", "B": "Siena"}, "answer": "A"},
        {"question": question, "answer": "Costruita dal 1173. #### 1173"},
        {"text": question},
        {"messages": [{"role": "system", "content": "Sei un assistente utile."}, {"role": "user", "content": user},
                      {"role": "assistant", "content": "A"}]},
    ]
    train = write_jsonl(tmp_path / "shapes.jsonl", rows)
    report = find_contamination([train], "italic", source=str(italic_file))
    assert pair_set(report) == {(row, "0", "exact") for row in range(1, len(rows) + 1)}


def test_split_prompt_reads_the_rendered_layout():
    from llamafactory_ext.data.mcq import MCQItem, render_user

    item = MCQItem(id="1", question=Q[1], options=list(zip("ABCD", OPTS[1], strict=True)), answer="A", category="literature")
    pieces, spans = split_prompt(render_user(item))
    questions = {" ".join(pieces[a:b]) for a, b in spans}
    assert Q[1] in questions
    assert normalize_text(pieces[-1]).split() == normalize_text(" ".join(OPTS[1])).split()  # letters dropped


def test_short_items_need_the_whole_sequence_and_ngram_changes_n(tmp_path, italic_file):
    train = write_jsonl(tmp_path / "t.jsonl", [{"text": "Il contrario di alto è basso, lungo, corto, stretto."}])
    assert find_contamination([train], "italic", source=str(italic_file)).pairs == []
    # with 5-grams the item is long enough to be scored: its question ("il contrario di alto e") is
    # one 5-gram, found in the row, so the question view scores 1.0
    report = find_contamination([train], "italic", source=str(italic_file), ngram=5)
    assert [(p.eval_id, p.kind, p.score) for p in report.pairs] == [("2", "ngram", 1.0)]
    # a 4-word question has no 5-gram of its own: only the item's 5 five-grams count, 2 are in the row
    index = EvalIndex([EvalItem("x", "Il contrario di alto", tuple(OPTS[2]))], 5)
    words = normalize_text("Il contrario di alto: basso, lungo, corto, stretto.").split()
    assert index.ngram_matches(words, 0.1) == {0: 0.4}
    assert index.ngram_matches(words, 0.5) == {}


def test_score_and_threshold(tmp_path, italic_file):
    words = normalize_text(Q[1]).split()
    cut = 4  # the row lacks the question's first 4 words, so 4 of the item's 13-grams
    train = write_jsonl(tmp_path / "t.jsonl", [{"question": " ".join(words[cut:]), "choices": OPTS[1], "answer": "A"}])
    total = len(words) + len(normalize_text(" ".join(OPTS[1])).split()) - 13 + 1
    report = find_contamination([train], "italic", source=str(italic_file))
    assert [(p.eval_id, p.kind, p.score) for p in report.pairs] == [("1", "ngram", round((total - cut) / total, 4))]
    assert find_contamination([train], "italic", source=str(italic_file), threshold=0.9).pairs == []


def test_tokenwise_normalisation_equals_normalize_text():
    rng = random.Random(0)
    alphabet = "aàeèéiìoòuùAÀEÈÉ çÇßẞΣσς'’«»\"-—.,;:!?()[]0123456789\t\n\u00a0\u2028\u0301\u0308ﬁ①"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert normalized(text) == normalize_text(text), repr(text)


def test_unreadable_rows_are_counted(tmp_path, italic_file):
    train = write_jsonl(tmp_path / "t.jsonl", [FILLER[0], {"id": 7, "label": "x"}, {"question": Q[0], "choices": OPTS[0]}])
    report = find_contamination([train], "italic", source=str(italic_file))
    assert report.rows_read == 3 and report.unreadable_rows == 1
    assert report.unreadable[0]["row"] == 2 and report.unreadable[0]["reason"] == "no_text"
    assert pair_set(report) == {(3, "0", "exact")}


def test_limit_reads_the_first_rows(quiz_file, italic_file):
    report = find_contamination([quiz_file], "italic", source=str(italic_file), limit=3)
    assert report.rows_read == 3
    assert pair_set(report) == {(2, "0", "exact"), (3, "1", "exact")}


def test_bad_row_fails_or_is_skipped(tmp_path, italic_file):
    train = tmp_path / "bad.jsonl"
    train.write_text(json.dumps(FILLER[0]) + "\n{not json\n" + json.dumps({"question": 5, "choices": ["a", "b"]}) + "\n"
                     + json.dumps({"question": Q[0], "choices": OPTS[0]}) + "\n", encoding="utf-8")
    with pytest.raises(UserError) as err:
        find_contamination([train], "italic", source=str(italic_file))
    assert "bad.jsonl: line 2" in str(err.value)
    report = find_contamination([train], "italic", source=str(italic_file), on_error="skip")
    assert report.unreadable_rows == 2 and report.rows_read == 4
    assert [(u["row"], u["field"]) for u in report.unreadable] == [(2, None), (3, "question")]
    assert pair_set(report) == {(4, "0", "exact")}


def test_file_with_no_readable_row_is_an_error(tmp_path, italic_file):
    train = write_jsonl(tmp_path / "odd.jsonl", [{"domanda": Q[0]}, {"domanda": Q[1]}])
    with pytest.raises(ContaminationError, match=r"odd\.jsonl: no row has text .*domanda"):
        find_contamination([train], "italic", source=str(italic_file))


# ---------------------------------------------------------------------------------------------
# outputs and the command line
# ---------------------------------------------------------------------------------------------
def test_json_schema_and_markdown(quiz_file, italic_file, tmp_path):
    report = find_contamination([quiz_file], "italic", source=str(italic_file))
    paths = write_report(report, tmp_path / "out")
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert {"matched", "pairs", "per_category"} <= set(data)
    assert data["matched"] == len({p["eval_id"] for p in data["pairs"]}) == 6
    for pair in data["pairs"]:
        assert set(pair) == {"train_file", "train_row", "eval_id", "kind", "score"}
        assert pair["kind"] in ("exact", "ngram") and 0 < pair["score"] <= 1
        assert isinstance(pair["train_row"], int) and pair["train_file"] == str(quiz_file)
    for counts in data["per_category"].values():
        assert set(counts) == {"items", "matched"}
    assert sum(c["matched"] for c in data["per_category"].values()) == data["matched"]
    assert data["unreadable_rows"] == 0 and data["rows_read"] == 11 and data["task"] == "italic"
    # published order: culture and commonsense categories, then language capability
    assert list(data["per_category"]) == ["art_history", "geography", "history", "literature", "tourism",
                                          "orthography", "synonyms_and_antonyms", "syntax"]
    md = paths["md"].read_text(encoding="utf-8")
    assert md == render_markdown(report)
    assert "| Category | Items | Matched | Share |" in md
    assert md.index(f"**{CULTURE}**") < md.index("art_history") < md.index(f"**{LANGUAGE}**") < md.index("orthography")
    assert "| `quiz.json:7` | 0 | ngram | 1.00 |" in md


def test_cli_subprocess(quiz_file, italic_file, tmp_path, ext_cli):
    out = tmp_path / "out"
    proc = run_cmd([*ext_cli, "contamination", quiz_file, "task=italic", f"source={italic_file}", f"output_dir={out}"],
                   timeout=120)
    assert proc.returncode == 0, output_tail(proc)
    lines = proc.stdout.splitlines()
    assert any(line.strip().startswith("exact: 5 items matched") for line in lines), proc.stdout
    assert any(line.strip().startswith("ngram: 1 more items matched") for line in lines), proc.stdout
    assert f"wrote {out / 'contamination.json'}" in proc.stdout
    assert json.loads((out / "contamination.json").read_text(encoding="utf-8"))["matched"] == 6

    missing = tmp_path / "nope.jsonl"
    proc = run_cmd([*ext_cli, "contamination", missing, "task=italic", f"source={italic_file}"], timeout=120)
    assert proc.returncode == 2, output_tail(proc)
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"llamafactory-ext contamination: error: training file not found: {missing}"]


@pytest.mark.parametrize(("args", "needle"), [
    (["ngrams=5"], "unknown key 'ngrams' (did you mean 'ngram'?)"),
    (["task=mmlu"], "unknown task 'mmlu'"),
    (["task=italic", "ngram=0"], "ngram must be a positive integer"),
    ([], "missing required key 'task'"),
])
def test_cli_bad_options_exit_2(args, needle, quiz_file, italic_file, capsys):
    rc = cli.main(["contamination", str(quiz_file), f"source={italic_file}", *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err


def test_cli_bad_row_exits_2(tmp_path, italic_file, capsys):
    train = write_jsonl(tmp_path / "t.jsonl", [FILLER[0], {"messages": "not a list"}])
    rc = cli.main(["contamination", str(train), "task=italic", f"source={italic_file}", f"output_dir={tmp_path / 'o'}"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip().splitlines() == [(f"llamafactory-ext contamination: error: {train}: line 2, field 'messages': "
                                         "expected a list of turns, got str")]


def test_cli_help(capsys):
    assert cli.main(["contamination", "--help"]) == 0
    out = capsys.readouterr().out
    assert "TRAIN... task=italic|gsm8k" in out and "threshold" in out and "on_error" in out


# ---------------------------------------------------------------------------------------------
# the real data (../shared/data; skipped when absent, a failure under CI=true)
# ---------------------------------------------------------------------------------------------
@pytest.mark.shared_data
def test_real_italic_planted(italic_dir, tmp_path):
    from llamafactory_ext.data.italic import load_italic

    items = load_italic(italic_dir)
    assert all(normalized(t) == normalize_text(t) for it in items for t in [it.question, *(o for _, o in it.options)])
    long = [it for it in items if len(normalize_text(it.question).split()) >= 20][:3]
    short = next(it for it in items if len(normalize_text(" ".join([it.question, *(o for _, o in it.options)])).split()) < 10)
    rows = [FILLER[0],
            {"question": long[0].question, "choices": [o for _, o in long[0].options], "answer": "A"},
            FILLER[1],
            {"question": strip_accents(long[1].question).upper(), "choices": [o for _, o in long[1].options][::-1], "answer": "B"},
            {"text": "Appunti di ripasso. " + long[2].question + " " + ", ".join(o for _, o in long[2].options) + ". Fine."},
            {"text": "Domanda breve: " + short.question + " " + " / ".join(o for _, o in short.options)},
            FILLER[2]]
    train = write_jsonl(tmp_path / "quiz.jsonl", rows)
    report = find_contamination([train], "italic", source=str(italic_dir))
    assert report.items == 10_000

    found = pair_set(report)
    assert {row for row, _, _ in found} == {2, 4, 5, 6}  # every planted row, no filler row

    def exact_ids(row: int) -> set[str]:
        return {i for r, i, kind in found if r == row and kind == "exact"}

    assert exact_ids(2) == {it.id for it in items if normalize_text(it.question) == normalize_text(long[0].question)}
    assert exact_ids(4) == {it.id for it in items if normalize_text(it.question) == normalize_text(long[1].question)}
    assert (5, long[2].id, "ngram") in found and (6, short.id, "ngram") in found
    assert sum(c["items"] for c in report.per_category.values()) == 10_000
    assert list(report.per_macro_category) == [CULTURE, LANGUAGE]


@pytest.mark.shared_data
def test_real_gsm8k_planted(gsm8k_dir, tmp_path):
    from llamafactory_ext.data.gsm8k import load_gsm8k

    test = load_gsm8k(gsm8k_dir, split="test")
    train_rows = [json.loads(line) for line in (gsm8k_dir / "train.jsonl").read_text(encoding="utf-8").splitlines()[:200]]
    a, b, c = test[10], test[500], test[1000]
    rows = [*train_rows[:100],
            {"question": a["question"], "answer": a["answer"]},
            {"question": a["question"].lower().replace(".", " . ").replace("?", "??"), "answer": "#### 0"},
            {"instruction": "Solve this problem from my homework, please. " + b["question"], "input": "", "output": b["answer"]},
            {"messages": [{"role": "user", "content": c["question"]}, {"role": "assistant", "content": "The answer is 3."}]},
            *train_rows[100:]]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    report = find_contamination([train], "gsm8k", source=str(gsm8k_dir))
    assert pair_set(report) == {(101, a["id"], "exact"), (102, a["id"], "exact"), (103, b["id"], "ngram"),
                                (104, c["id"], "exact")}
    assert report.per_category == {"all": {"items": 1319, "matched": 3}}


@pytest.mark.shared_data
def test_real_gsm8k_train_vs_test(gsm8k_dir):
    """The published splits share no question; one test question is a template sibling of two
    training questions (same wording, other numbers) and is reported by the n-gram check."""
    report = find_contamination([gsm8k_dir / "train.jsonl"], "gsm8k", source=str(gsm8k_dir))
    assert report.rows_read == 7473 and report.unreadable_rows == 0
    assert report.matched_exact == 0
    assert {(p.train_row, p.eval_id, p.kind) for p in report.pairs} == {(1315, "602", "ngram"), (5163, "602", "ngram")}


def test_read_row_unknown_shape_is_none():
    assert read_row({"id": 1, "label": 0}) is None
    assert read_row({"text": "ciao"}).pieces == ["ciao"]


def test_module_runs_without_gpu_deps():
    # `--help` of the package must not import torch; the contamination command imports nothing heavy either
    code = ("import sys, llamafactory_ext.contamination; "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))")
    proc = run_cmd([sys.executable, "-c", code], timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", output_tail(proc)


# ---------------------------------------------------------------------------------------------
# every eval task with items can be checked: Mult-IT (task=multit), from the one task registry
# ---------------------------------------------------------------------------------------------
MULTIT_HELD_OUT = [
    {"question": "Quale poeta fiorentino scrisse la Divina Commedia, il poema in tre cantiche composto all'inizio del Trecento?",
     "choices": ["Dante Alighieri", "Francesco Petrarca", "Giovanni Boccaccio", "Guido Cavalcanti"], "answer": "A",
     "category": "letteratura"},
    {"question": "Qual è la montagna più alta delle Alpi, al confine tra la Valle d'Aosta e la Francia?",
     "choices": ["Monte Bianco", "Monte Rosa", "Cervino", "Gran Paradiso"], "answer": 0, "category": "geografia"},
    {"question": "Quale mare bagna la città di Venezia e le coste orientali della penisola italiana fino alla Puglia?",
     "choices": ["Adriatico", "Tirreno", "Ionio", "Ligure"], "answer": "A", "category": "geografia"},
    {"question": "Come si chiama il plurale della parola uovo?", "choices": ["uova", "uovi"], "answer": "A", "category": "lingua"},
    {"question": "In quale città si trova il Colosseo, l'anfiteatro costruito dagli imperatori della dinastia flavia nel primo secolo?",
     "choices": ["Roma", "Verona", "Pompei", "Capua"], "answer": "A", "category": "storia"},
]
MH = [r["question"] for r in MULTIT_HELD_OUT]


def test_multit_training_file_against_task_multit_finds_the_planted_questions(tmp_path, capsys):
    """Mult-IT-shaped training rows (question / choices / answer) against a Mult-IT held-out quiz:
    exactly the three planted questions are reported, through the command with a CONFIG.yaml."""
    held_out = tmp_path / "held_out_quiz.json"
    held_out.write_text(json.dumps(MULTIT_HELD_OUT, ensure_ascii=False), encoding="utf-8")
    train_rows = [
        FILLER[0],
        {"question": MH[0].upper(), "choices": MULTIT_HELD_OUT[0]["choices"], "answer": "A"},             # row 2: exact
        FILLER[1],
        {"question": MH[4], "choices": MULTIT_HELD_OUT[4]["choices"][::-1], "answer": "D"},               # row 4: exact
        {"question": f"Domanda di ripasso: {MH[2]} Rispondi con una lettera.", "choices": ["Sì", "No"], "answer": "A"},  # row 5: ngram
        {"question": "Qual è la montagna più alta d'Europa secondo i geografi?", "choices": ["Elbrus", "Etna"], "answer": "A"},
        {"question": "Come si chiama il plurale della parola bue?", "choices": ["buoi", "bui"], "answer": "A"},
        FILLER[2],
    ]
    train = tmp_path / "multit_train_quiz.json"
    train.write_text(json.dumps(train_rows, ensure_ascii=False), encoding="utf-8")
    expected = {(2, "0", "exact"), (4, "4", "exact"), (5, "2", "ngram")}

    report = find_contamination([train], "multit", source=str(held_out))
    assert pair_set(report) == expected and report.items == 5 and report.rows_read == 8

    config = tmp_path / "contamination.yaml"
    out = tmp_path / "out"
    config.write_text(f"task: multit\nsource: {held_out}\noutput_dir: {out}\n", encoding="utf-8")
    assert cli.main(["contamination", str(config), str(train)]) == 0
    assert "matched: 3 of 5 items" in capsys.readouterr().out
    data = json.loads((out / "contamination.json").read_text(encoding="utf-8"))
    assert {(p["train_row"], p["eval_id"], p["kind"]) for p in data["pairs"]} == expected
    assert data["task"] == "multit" and data["per_category"]["geografia"] == {"items": 2, "matched": 1}
    assert "# Contamination check: Mult-IT" in (out / "contamination.md").read_text(encoding="utf-8")


def test_prepared_train_split_against_its_own_val_split(tmp_path):
    """``prepare multit_nothink val_size=...`` keeps every question on one side: its train file holds
    none of its _val questions; a _val row copied into the training file is the one reported."""
    from llamafactory_ext.data import get_spec
    from llamafactory_ext.data.prepare import options_class, run

    quiz = tmp_path / "quiz.json"
    quiz.write_text(json.dumps(MULTIT_HELD_OUT + FILLER + planted_quiz()[1:7], ensure_ascii=False), encoding="utf-8")
    options = options_class(get_spec("multit_nothink"))(source=str(quiz), out_dir=str(tmp_path / "data"), register=False,
                                                         val_size=0.3)
    run("multit_nothink", options, quiet=True)
    train, val = tmp_path / "data" / "multit_nothink.jsonl", tmp_path / "data" / "multit_nothink_val.jsonl"
    assert find_contamination([train], "multit", source=str(val)).pairs == []
    val_rows = val.read_text(encoding="utf-8").splitlines()
    train_lines = train.read_text(encoding="utf-8").splitlines()
    train.write_text("\n".join([*train_lines, val_rows[1]]) + "\n", encoding="utf-8")
    report = find_contamination([train], "multit", source=str(val))
    assert pair_set(report) == {(len(train_lines) + 1, "1", "exact")}


def test_empty_training_file_and_a_suite_task_are_one_line_errors(tmp_path, italic_file, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    assert cli.main(["contamination", str(empty), "task=italic", f"source={italic_file}", f"output_dir={tmp_path / 'o'}"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"llamafactory-ext contamination: error: {empty}: no rows (an empty training file): nothing to check"]
    assert not (tmp_path / "o").exists()
    train = write_jsonl(tmp_path / "t.jsonl", [FILLER[0]])
    assert cli.main(["contamination", str(train), "task=lm_eval"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "task=lm_eval has no items of ours" in err and "multit" in err


def test_eval_from_recipe_warns_about_multit_questions_in_the_recipes_data(tmp_path):
    """The evaluator's own check uses the same registry: task=multit is checked too (it was not)."""
    from llamafactory_ext.eval.resolve import load_items, resolve
    from llamafactory_ext.eval.runner import contamination_warnings
    from tests.eval.common import make_cfg

    held_out = tmp_path / "held_out_quiz.json"
    held_out.write_text(json.dumps(MULTIT_HELD_OUT, ensure_ascii=False), encoding="utf-8")
    data = tmp_path / "ds"
    (data / "data").mkdir(parents=True)
    write_jsonl(data / "data" / "train.jsonl", [FILLER[0], {"question": MH[3], "choices": ["uova", "uovi"], "answer": "A"}])
    (data / "dataset_info.json").write_text(json.dumps({"mine": {"file_name": "data/train.jsonl"}}), encoding="utf-8")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"model_name_or_path: m\ntemplate: qwen3\ndataset: mine\ndataset_dir: {data}\n", encoding="utf-8")
    r = resolve(make_cfg(task="multit", source=str(held_out), from_recipe=str(recipe), output_dir=str(tmp_path / "o")))
    (warning,) = contamination_warnings(r, load_items(r))
    assert warning.startswith("1 of 5 evaluation items appear in the recipe's training data (train.jsonl)")
    assert f"task=multit source={held_out}" in warning
