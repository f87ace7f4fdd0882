"""Answer extraction: the named filter chains on realistic outputs, numbers read by the one rule
shared with the converters (``data.numbers``), and a property-based check (hypothesis) that no
extractor raises on any string."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llamafactory_ext.data.mcq import MCQItem
from llamafactory_ext.data.numbers import canonical_number, parse_number
from llamafactory_ext.eval.extract import (
    CHOICE_CHAINS,
    NUMBER_CHAINS,
    extract_choice,
    extract_number,
    numbers_equal,
)

ITEM = MCQItem(
    id="0",
    question="Qual è la capitale d'Italia?",
    options=[("A", "Milano"), ("B", "Roma"), ("C", "Napoli"), ("D", "Roma antica")],
    answer="B",
)
AC_ITEM = MCQItem(id="1", question="?", options=[("A", "vero"), ("C", "falso")], answer="C")


@pytest.mark.parametrize(
    "text, letter, method",
    [
        ("B", "B", "bare_letter"),
        ("b", "B", "bare_letter"),
        ("**B**", "B", "bare_letter"),
        ("(C)", "C", "bare_letter"),
        ("B)", "B", "bare_letter"),
        ("B.", "B", "bare_letter"),
        ("La risposta è B", "B", "answer_line"),
        ("La risposta corretta è la B, perché Roma è la capitale.", "B", "answer_line"),
        ("Ragioniamo: A) Milano no, C) Napoli no.\nRisposta: b", "B", "answer_line"),
        ("Risposta: **B**", "B", "answer_line"),
        ("Risposta: (C)", "C", "answer_line"),
        ("B) Roma, perché è la capitale dal 1871.", "B", "leading_letter"),
        ("**C** Napoli è la risposta giusta secondo me", "C", "leading_letter"),
        ("Secondo me è **B** senza dubbio.", "B", "bold_letter"),
        ("Penso sia l'opzione (C) tra quelle date.", "C", "answer_line"),
        ("Direi (C) tra quelle date.", "C", "marked_letter"),
        ("**Risposta**: B", "B", "answer_line"),
        ("**Risposta: B) Roma**", "B", "answer_line"),
        ("La risposta corretta è la **B) Roma**.", "B", "answer_line"),
        ("The correct answer is C.", "C", "answer_line"),
        ("B\n\nSpiegazione: Roma è la capitale d'Italia dal 1871.", "B", "leading_letter"),
        ("C - Napoli", "C", "leading_letter"),
        ("Roma", "B", "option_text"),
        ("La capitale è Roma.", "B", "option_text"),
        ("Roma antica", "D", "option_text"),   # "Roma" is inside "Roma antica": the longer one wins
        ("La risposta è a Roma che si trova la capitale", "B", "option_text"),  # lower-case "a" is a preposition
        ("<think>\nForse A... no, la risposta è C.\n</think>\n\nB", "B", "bare_letter"),  # only after </think>
        ("<think>x</think>\n\nLa risposta è B. A) era sbagliata perché Milano non è capitale.", "B", "answer_line"),
    ],
)
def test_extract_choice(text, letter, method):
    assert extract_choice(text, ITEM) == (letter, method)


@pytest.mark.parametrize("text", ["", "Non lo so.", "<think>\nA o B?\n", "A e B sono entrambe plausibili", "E"])
def test_extract_choice_none(text):
    assert extract_choice(text, ITEM)[0] is None


def test_extract_choice_only_item_letters():
    # one ITALIC row has only A and C: B is not an answer, C is
    assert extract_choice("B", AC_ITEM) == (None, "none")
    assert extract_choice("Risposta: C", AC_ITEM) == ("C", "answer_line")


def test_official_first_capital_reproduces_the_bug():
    # ITALIC's official fast extractor: the first capital letter anywhere
    assert extract_choice("La risposta è B", ITEM, "official_first_capital") == ("L", "official_first_capital")
    assert extract_choice("La risposta è B", ITEM) == ("B", "answer_line")


@pytest.mark.parametrize(
    "text, number, method",
    [
        ("The answer is 18.", "18", "answer_is"),
        ("so she makes 9 * 2 = 18 dollars.\nThe answer is $1,018.00.", "1018", "answer_is"),
        ("#### 1,000", "1000", "hashes"),
        ("Step 1: 5 - 8 = -3\n#### -3", "-3", "hashes"),
        ("\\boxed{42}", "42", "boxed"),
        ("Thus \\boxed{\\frac{1}{2}} hmm \\boxed{7.0}", "7", "boxed"),
        ("She pays 12 dollars per hour for 3 hours, 36 dollars.", "36", "last_number"),
        ("<think>\nThe answer is 5.\n</think>\n\nThe answer is 6 apples.", "6", "answer_is"),
        ("La risposta è 12.", "12", "answer_is"),
        ("The answer is -$5.", "-5", "answer_is"),
        ("The answer is 2.50.", "2.5", "answer_is"),
    ],
)
def test_extract_number(text, number, method):
    assert extract_number(text) == (number, method)


def test_extract_number_none_and_unfinished():
    assert extract_number("no digits here") == (None, "none")
    assert extract_number("<think>\n1 + 1 = 2") == (None, "none")  # unfinished thought has no answer part


def test_numbers_equal():
    assert numbers_equal("1,000.0", "1000")
    assert numbers_equal("$5", "5.00")
    assert numbers_equal("-3", "-3.0")
    assert not numbers_equal("3", "-3")
    assert not numbers_equal(None, "3")
    assert parse_number("abc") is None


@pytest.mark.parametrize("text", ["1,23,4", "1,234,5", "1,2,3", ",5", "5,"])
def test_odd_comma_groups_are_not_numbers(text):
    assert parse_number(text) is None
    assert canonical_number(text) is None


@pytest.mark.parametrize(
    "text, number",
    [
        ("3,5", "3.5"),          # a decimal comma (Italian)
        ("12,50", "12.5"),
        ("12,3456", "12.3456"),  # any other single comma is a decimal comma
        ("1,000", "1000"),       # a comma before exactly three digits separates thousands
        ("12,345,678", "12345678"),
        ("1,000.5", "1000.5"),
        ("-3,5", "-3.5"),
        ("€ 12,50", "12.5"),
    ],
)
def test_numbers_one_comma_rule_with_the_converters(text, number):
    """The evaluator reads a number exactly as the GSM8K converters read a '#### N' line."""
    from llamafactory_ext.data.gsm8k import solution_target

    assert canonical_number(text) == number
    assert extract_number(f"The answer is {text}.") == (number, "answer_is")
    assert extract_number(f"#### {text}") == (number, "hashes")
    assert extract_number(f"Costa in tutto {text}") == (number, "last_number")
    assert solution_target(f"Calcolo.\n#### {text}", "answer")[1] == number  # the converter's own reading


@pytest.mark.parametrize(
    "text, number",
    [
        ("The answer is 5 + 3 = 8", "8"),
        ("The answer is 5 + 3 = 8.", "8"),
        ("The answer is 12 * 3 = 36 dollars. Then 4", "36"),
        ("La risposta è 2 + 2 = 4", "4"),
        ("The answer is 8", "8"),
    ],
)
def test_answer_is_reads_the_result_of_an_equation(text, number):
    assert extract_number(text) == (number, "answer_is")


@pytest.mark.parametrize(
    "text, number, method",
    [
        ("La risposta è 1.234,5 euro.", "1234.5", "answer_is"),
        ("Quindi guadagna 1.234.567 euro in tutto", "1234567", "last_number"),
        ("#### 1.500,25", "1500.25", "hashes"),
        ("The answer is $70,000.", "70000", "answer_is"),
        ("La risposta è 70.000.", None, "ambiguous_number"),      # 70 or 70000: never 70
        ("Prima 3 rate, poi il totale: 70.000", None, "ambiguous_number"),  # no fallback to the 3
        ("\\boxed{1.234}", None, "ambiguous_number"),
        ("Il 12.03.2024 ha pagato 45 euro", "45", "last_number"),  # a date is no number
    ],
)
def test_italian_numbers_and_ambiguous_ones(text, number, method):
    assert extract_number(text) == (number, method)


def test_a_known_convention_settles_an_ambiguous_answer():
    assert extract_number("La risposta è 70.000.", convention="it") == ("70000", "answer_is")
    assert extract_number("The answer is 70.000.", convention="en") == ("70", "answer_is")
    assert extract_number("La risposta è 1,5", convention="it") == ("1.5", "answer_is")


TOKENS = list("ABCDEabcde()*[]{}<>/#$.,-: \n\\0123456789è") + [
    "</think>", "<think>", "Risposta", "risposta è ", "\\boxed{", "####", "The answer is ", "Roma", "1,000", "-$",
]
ANY_TEXT = st.one_of(st.text(), st.lists(st.sampled_from(TOKENS), max_size=40).map("".join))


@settings(max_examples=400, deadline=None)
@given(ANY_TEXT, st.sampled_from(sorted(CHOICE_CHAINS)))
def test_extract_choice_never_raises(text, chain):
    letter, method = extract_choice(text, ITEM, chain)
    # a letter comes with the name of the chain's filter that read it; no letter, the method "none"
    assert (method in CHOICE_CHAINS[chain]) if letter is not None else (method == "none"), (letter, method)
    answer = text.rsplit("</think>", 1)[-1] if "</think>" in text else ("" if "<think>" in text else text)
    if chain == "official_first_capital":  # ITALIC's fast extractor: the first capital A-Z of the answer
        assert letter == next((c for c in answer if "A" <= c <= "Z"), None)
    elif letter is not None:
        assert letter in ITEM.letters


@settings(max_examples=400, deadline=None)
@given(ANY_TEXT, st.sampled_from(sorted(NUMBER_CHAINS)))
def test_extract_number_never_raises(text, chain):
    number, method = extract_number(text, chain)
    assert (method in NUMBER_CHAINS[chain]) if number is not None else (method == "none"), (number, method)
    if number is not None:  # canonical: written back as data.numbers writes the number it reads
        assert parse_number(number) is not None and canonical_number(number) == number


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text())))
def test_extractors_never_raise_on_non_strings(value):
    # a non-string is read as its text (None as no text); a broken item has no letters: no answer
    text = "" if value is None else str(value)
    assert extract_choice(value, ITEM) == extract_choice(text, ITEM)
    assert extract_choice("B", value) == (None, "none")
    assert extract_number(value) == extract_number(text)
    if isinstance(value, int) and abs(value) < 10**27:  # data.numbers keeps 28 significant digits (Decimal's default)
        assert parse_number(extract_number(value)[0]) == value
