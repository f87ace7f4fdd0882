from hypothesis import given
from hypothesis import strategies as st

from llamafactory_ext import thinking as th


def test_training_text_is_exact():
    assert th.format_thinking("Step 1: 2+2=4", "The answer is 4.") == "<think>\nStep 1: 2+2=4\n</think>\n\nThe answer is 4."
    assert th.EMPTY_THINK == "<think>\n\n</think>\n\n"


def test_split_at_last_close():
    s = th.split_output("<think>\nA? no </think> wait\n</think>\n\nB")
    assert s.closed and s.opened and s.answer == "B" and s.reasoning.startswith("A? no </think>")


def test_unfinished_and_plain():
    s = th.split_output("<think>\nlong reasoning that never ends")
    assert not s.closed and s.answer == "" and not s.balanced
    p = th.split_output("La risposta è B")
    assert p.answer == "La risposta è B" and p.balanced and not p.closed


def test_format_rejects_nested_tags():
    import pytest

    with pytest.raises(ValueError):
        th.format_thinking("a </think> b", "A")


TAGGED = st.lists(st.sampled_from(["<think>", "</think>", "\n", " ", "a", "B", "<", "think>"]), max_size=12).map("".join)


@given(st.one_of(st.text(), TAGGED))
def test_split_at_the_last_close_tag_for_any_text(text):
    """Any text splits as the module says: the answer is what follows the LAST </think>; the
    reasoning runs from the first <think> before it; an unclosed <think> leaves no answer."""
    s = th.split_output(text)
    if "</think>" in text:
        head, answer = text.rsplit("</think>", 1)
        assert (s.closed, s.opened, s.answer) == (True, "<think>" in head, answer.strip())
        assert s.reasoning == head.split("<think>", 1)[-1].strip()
    elif "<think>" in text:
        assert (s.closed, s.opened, s.answer, s.reasoning) == (False, True, "", text.split("<think>", 1)[1].strip())
        assert not s.balanced  # opened, never closed
    else:
        assert (s.closed, s.opened, s.answer, s.reasoning) == (False, False, text.strip(), "")
        assert s.balanced  # no tags at all


@given(st.text(alphabet=st.characters(blacklist_characters="<>")), st.text(alphabet=st.characters(blacklist_characters="<>")))
def test_roundtrip(trace, answer):
    s = th.split_output(th.format_thinking(trace, answer))
    assert s.closed and s.answer == answer.strip() and s.reasoning == trace.strip("\n").strip()


def test_tags_are_counted_not_merely_detected():
    """Balanced = no tag at all, or exactly one <think> at the start and one </think> after it."""
    cases = {
        "<think>\na\n</think>\n\nB": True,
        "  <think>a</think>B": True,       # leading whitespace aside, it starts with <think>
        "La risposta è B": True,           # no tags (non-thinking mode)
        "<think>a</think>b</think>": False,  # two closings
        "<think>a<think>b</think>c": False,  # two openings
        "a<think>b</think>c": False,       # the opening is not at the start
        "<think>a</think>b<think>": False,  # an opening after the closing
        "a</think>b": False,               # a closing without an opening
        "<think>never closed": False,
    }
    for text, balanced in cases.items():
        assert th.split_output(text).balanced is balanced, text
    s = th.split_output("<think>a</think>b</think>")
    assert (s.opens, s.closes, s.answer) == (1, 2, "")  # still split at the last </think>
