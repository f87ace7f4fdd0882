"""The one number rule (``data.numbers``), both ways, directly and through the GSM8K converters:
a comma followed by exactly three digits is a thousands separator ("1,000" -> 1000), otherwise a
single comma is a decimal comma ("3,5" -> 3.5); anything else with commas is not a number.
Italian separators are read where unambiguous ("1.234,5", "1.234.567"); "70.000" (70 in English,
70000 in Italian) is ambiguous and never read as 70."""

from __future__ import annotations

from decimal import Decimal

import pytest

from llamafactory_ext.data import get_spec, gsm8k
from llamafactory_ext.data.fields import RowError
from llamafactory_ext.data.numbers import canonical_number, numbers_equal, parse_number, read_number
from llamafactory_ext.data.prepare import options_class, run
from llamafactory_ext.thinking import split_output
from tests.helpers import read_jsonl, write_jsonl

THOUSANDS = [("1,000", "1000"), ("12,345,678", "12345678"), ("1,000.5", "1000.5"), ("-1,250", "-1250"), ("$2,500", "2500"),
             ("0,500", "500"), ("999,999", "999999")]
DECIMAL = [("3,5", "3.5"), ("12,50", "12.5"), ("0,25", "0.25"), ("-2,75", "-2.75"), ("1,0", "1"), ("100,0000", "100"),
           ("€ 7,5", "7.5"), ("1234,5", "1234.5"), ("1,234567", "1.234567")]
# "1234,567": a comma before three digits is a thousands separator, never a decimal comma, and
# "1234" is no thousands group: not a number (reading 1234.567 would be a silent guess)
NOT_NUMBERS = ["1,2,3", "1,23.4", "1,000,5", "12,34,567", "1234,567", "12345,678", ",", "1,", "1,,000", "1,000,", "abc,def"]


@pytest.mark.parametrize("text,expected", THOUSANDS + DECIMAL)
def test_comma_rule(text, expected):
    assert canonical_number(text) == expected
    assert parse_number(text) == Decimal(expected)
    assert numbers_equal(text, expected) and numbers_equal(expected, text)


@pytest.mark.parametrize("text", NOT_NUMBERS)
def test_other_commas_are_not_numbers(text):
    assert parse_number(text) is None and canonical_number(text) is None
    assert not numbers_equal(text, text)


def test_the_two_readings_differ():
    assert not numbers_equal("1,000", "1")  # thousands, not a decimal comma
    assert not numbers_equal("3,5", "35")  # a decimal comma, not a separator
    assert numbers_equal("2,500", "2500") and numbers_equal("2,50", "2.5") and not numbers_equal("2,500", "2.5")


def test_one_parser():
    """The converters and the evaluator read numbers with the same function."""
    from llamafactory_ext.data import numbers
    from llamafactory_ext.eval import extract

    assert gsm8k.canonical_number is numbers.canonical_number
    assert extract.canonical_number is numbers.canonical_number and extract.numbers_equal is numbers.numbers_equal


def _gsm_rows(finals: list[str]) -> list[dict]:
    return [{"question": f"Problema {i}: quanto fa?", "answer": f"Si calcola <<1+1=2>>2 e poi il resto.\n#### {f}"} for i, f in enumerate(finals)]


def _answers(path) -> list[str]:
    return [split_output(r["messages"][-1]["content"]).answer for r in read_jsonl(path)]


def test_gsm8k_converter_applies_the_rule(tmp_path):
    cases = THOUSANDS + DECIMAL
    src = write_jsonl(tmp_path / "train.jsonl", _gsm_rows([t for t, _ in cases]))
    m = run("gsm8k", options_class(get_spec("gsm8k"))(source=str(src), out_dir=str(tmp_path / "o"), register=False), quiet=True)
    assert m["rows"]["written"] == len(cases)
    assert _answers(tmp_path / "o" / "gsm8k.jsonl") == [f"The answer is {n}." for _, n in cases]


@pytest.mark.parametrize("final", NOT_NUMBERS[:4])
def test_gsm8k_converter_rejects_other_commas(tmp_path, final):
    src = write_jsonl(tmp_path / "train.jsonl", _gsm_rows(["7", final]))
    with pytest.raises(RowError) as err:
        run("gsm8k", options_class(get_spec("gsm8k"))(source=str(src), out_dir=str(tmp_path / "o"), register=False), quiet=True)
    assert (err.value.row, err.value.field, err.value.reason) == (2, "answer", "bad_final_answer")
    assert f"'#### {final}'" in str(err.value)


@pytest.mark.parametrize("solution_final,answer,expected", [
    ("1,000", "1000.0", "1000"), ("1000", "1,000", "1000"), ("3,5", "3.5", "3.5"), ("3.5", "3,5", "3.5"),
    ("12,50", "12.5", "12.5"), ("2,500", "2500", "2500"), ("2,500", "2.5", None), ("2,50", "250", None),
])
def test_synth_answer_column_is_compared_by_the_rule(tmp_path, solution_final, answer, expected):
    row = {"id": "x", "question": "Quanto fa?", "solution": f"Conto: <<1+1=2>>2.\n#### {solution_final}", "answer": answer}
    src = write_jsonl(tmp_path / "synth.jsonl", [row])
    o = options_class(get_spec("synth_gsm8k"))(source=str(src), out_dir=str(tmp_path / "o"), register=False)
    if expected is None:
        with pytest.raises(RowError) as err:
            run("synth_gsm8k", o, quiet=True)
        assert (err.value.field, err.value.reason) == ("answer", "answer_mismatch")
    else:
        run("synth_gsm8k", o, quiet=True)
        assert _answers(tmp_path / "o" / "synth_gsm8k.jsonl") == [f"The answer is {expected}."]


def test_load_gsm8k_gold_uses_the_rule(tmp_path):
    src = write_jsonl(tmp_path / "test.jsonl", _gsm_rows(["1,000", "3,5", "-12,50", "42"]))
    assert [r["gold"] for r in gsm8k.load_gsm8k(src)] == ["1000", "3.5", "-12.5", "42"]


# Both separators: the last one is the decimal separator, the other groups thousands (by hand)
ITALIAN = [("1.234,5", "1234.5"), ("1.234.567", "1234567"), ("1.234.567,89", "1234567.89"), ("-1.250,75", "-1250.75"),
           ("€ 1.000,00", "1000"), ("70 000", "70000"), ("70\u00a0000", "70000"), ("3,5", "3.5")]
ENGLISH = [("1,234", "1234"), ("1,234.5", "1234.5"), ("$70,000", "70000"), ("1,234,567.89", "1234567.89"),
           ("0.125", "0.125"), ("1234.567", "1234.567"), ("2.50", "2.5"), (".500", "0.5")]
# a single dot before exactly three digits (after 1-3 digits not starting with 0): 70 or 70000?
AMBIGUOUS = [("70.000", "70000", "70"), ("1.234", "1234", "1.234"), ("-1.500", "-1500", "-1.5"), ("$12.500", "12500", "12.5"),
             ("999.999", "999999", "999.999")]
MIXED = ["1.234,5.6", "1,234.567,8", "1.2.3", "12.03.2024", "1.23.456", "1,234.5,6"]


@pytest.mark.parametrize("text,expected", ITALIAN + ENGLISH)
def test_italian_and_english_separators_where_unambiguous(text, expected):
    assert read_number(text) == (Decimal(expected), "ok")
    assert canonical_number(text) == expected


@pytest.mark.parametrize("text,italian,english", AMBIGUOUS)
def test_a_lone_dot_before_three_digits_is_ambiguous_unless_the_convention_is_known(text, italian, english):
    assert read_number(text) == (None, "ambiguous")
    assert parse_number(text) is None and not numbers_equal(text, english) and not numbers_equal(text, italian)
    assert canonical_number(text, convention="it") == italian
    assert canonical_number(text, convention="en") == english


def test_a_known_convention_reads_each_separator_one_way():
    assert canonical_number("1,234", convention="it") == "1.234" and canonical_number("1,234", convention="en") == "1234"
    assert canonical_number("3,5", convention="en") is None and canonical_number("2.5", convention="it") is None
    assert canonical_number("1.234.567", convention="en") is None and canonical_number("1.234,5", convention="en") is None
    assert canonical_number("1,234.5", convention="it") is None and canonical_number("1.234,5", convention="it") == "1234.5"


@pytest.mark.parametrize("text", MIXED + ["²", "1,²³⁴", "³.⁵"])
def test_broken_groups_and_superscripts_are_not_numbers(text):
    assert read_number(text) == (None, "invalid")


def test_gsm8k_converter_reads_italian_groups_and_refuses_an_ambiguous_final(tmp_path):
    src = write_jsonl(tmp_path / "train.jsonl", _gsm_rows(["1.234.567", "1.234,5"]))
    run("gsm8k", options_class(get_spec("gsm8k"))(source=str(src), out_dir=str(tmp_path / "o"), register=False), quiet=True)
    assert _answers(tmp_path / "o" / "gsm8k.jsonl") == ["The answer is 1234567.", "The answer is 1234.5."]
    src = write_jsonl(tmp_path / "amb.jsonl", _gsm_rows(["7", "70.000"]))
    with pytest.raises(RowError) as err:
        run("gsm8k", options_class(get_spec("gsm8k"))(source=str(src), out_dir=str(tmp_path / "o"), register=False), quiet=True)
    assert (err.value.row, err.value.field, err.value.reason) == (2, "answer", "bad_final_answer")
