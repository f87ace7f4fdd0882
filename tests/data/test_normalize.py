"""Normalisation drops invisible characters (every format character, Unicode category Cf, and the
other default-ignorable ones), so a soft hyphen or a zero-width space inside a word cannot hide a
copied ITALIC question from ``contamination``, the trace join or de-duplication."""

from __future__ import annotations

import json
import random
import sys
import unicodedata

import pytest

from llamafactory_ext.contamination import find_contamination
from llamafactory_ext.data.normalize import normalize_text, question_key
from llamafactory_ext.data.overlap import normalized

FORMAT_CHARS = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"]
NAMED = {"soft hyphen": "\u00ad", "zero-width space": "\u200b", "zero-width non-joiner": "\u200c",
         "zero-width joiner": "\u200d", "word joiner": "\u2060", "byte order mark": "\ufeff",
         "variation selector 16": "\ufe0f", "combining grapheme joiner": "\u034f", "Hangul filler": "\u3164",
         "tag space": "\U000e0020"}


@pytest.mark.parametrize("name", sorted(NAMED))
def test_named_invisible_characters_inside_a_word_are_dropped(name):
    assert normalize_text(f"Qual è la capi{NAMED[name]}tale d'Italia?") == "qual e la capitale d italia"


def test_every_format_character_is_dropped():
    assert len(FORMAT_CHARS) > 150  # the whole category, from the Unicode database
    spoiled = [c for c in FORMAT_CHARS if normalize_text(f"capi{c}tale") != "capitale"]
    assert spoiled == []
    assert question_key("La capi\u00adtale?", ["Ro\u200bma", "Mi\ufeffla\u2060no"]) == question_key("La capitale?", ["Roma", "Milano"])


def test_the_token_cache_of_contamination_agrees_with_normalize_text():
    rng = random.Random(1)
    alphabet = "aàeèÉ 'ß\u00a0-.," + "".join(FORMAT_CHARS[:40]) + "\u034f\u3164\ufe0f"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert normalized(text) == normalize_text(text), repr(text)


def test_a_question_spoiled_with_a_soft_hyphen_is_still_found(tmp_path):
    question = "Quale isola italiana è nota per i faraglioni e per la Grotta Azzurra, meta turistica nel golfo di Napoli?"
    options = ["Capri", "Ischia", "Procida", "Elba"]
    italic = tmp_path / "italic.jsonl"
    italic.write_text(json.dumps({"question": question, "options": [{k: v} for k, v in zip("ABCD", options, strict=True)],
                                  "answer": "A", "category": "tourism", "macro_category": "culture and commonsense"}) + "\n")
    hidden = question.replace("faraglioni", "fara\u00adglioni").replace("Grotta", "Grot\u200bta")
    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps({"question": hidden, "choices": options, "answer": "A"}) + "\n")
    report = find_contamination([train], "italic", source=str(italic))
    assert [(p.eval_id, p.kind) for p in report.pairs] == [("0", "exact")]
