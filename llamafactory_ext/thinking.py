"""The ONE place that writes or parses ``<think>`` blocks.

Training text is exactly ``<think>\\n{trace}\\n</think>\\n\\n{answer}`` (the think words of
LLaMA-Factory's ``qwen3`` ReasoningTemplate: ``<think>\\n`` and ``\\n</think>\\n\\n``).
Model outputs are split at the LAST ``</think>``: what follows is the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
# LLaMA-Factory 0.9.5, template qwen3: thought_words=("<think>\n", "\n</think>\n\n")
THOUGHT_WORDS = (THINK_OPEN + "\n", "\n" + THINK_CLOSE + "\n\n")
EMPTY_THINK = THOUGHT_WORDS[0] + THOUGHT_WORDS[1]  # "<think>\n\n</think>\n\n"

# Mode names used in every output.
THINK = "think"
NOTHINK = "nothink"
MODES = (THINK, NOTHINK)


def format_thinking(trace: str, answer: str) -> str:
    """Assistant text for a thinking sample: ``<think>\\n{trace}\\n</think>\\n\\n{answer}``."""
    trace = trace.strip("\n")
    if THINK_OPEN in trace or THINK_CLOSE in trace:
        raise ValueError("a reasoning trace must not contain <think> or </think> itself")
    if THINK_OPEN in answer or THINK_CLOSE in answer:
        raise ValueError("an answer must not contain <think> or </think>")
    return f"{THOUGHT_WORDS[0]}{trace}{THOUGHT_WORDS[1]}{answer}"


def has_thought(text: str) -> bool:
    """LLaMA-Factory's own test: a sample 'has a thought' if it contains either tag."""
    return THINK_OPEN in text or THINK_CLOSE in text


@dataclass(frozen=True)
class SplitOutput:
    """A model output split into reasoning and answer.

    ``closed`` is True when a ``</think>`` was found. ``reasoning`` is the text between the
    first ``<think>`` (if any) and the last ``</think>``; ``answer`` is what follows it.
    Without ``</think>``: ``answer`` is the whole text stripped of a leading ``<think>``
    (an unfinished thought in thinking mode, or a plain answer in non-thinking mode).
    """

    reasoning: str
    answer: str
    closed: bool
    opened: bool
    opens: int = 0   # how many <think> the text holds
    closes: int = 0  # how many </think>
    leads: bool = False  # the text (leading whitespace aside) starts with <think>

    @property
    def balanced(self) -> bool:
        """Tags balanced, by count: no tag at all, or exactly one ``<think>`` at the start and exactly
        one ``</think>`` after it (``<think>a</think>b</think>`` is not balanced)."""
        return (self.opens, self.closes) == (0, 0) or (self.opens, self.closes, self.leads) == (1, 1, True)


def split_output(text: str) -> SplitOutput:
    """Split generated text at the last ``</think>``. Never raises."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    opened = THINK_OPEN in text
    counts = {"opens": text.count(THINK_OPEN), "closes": text.count(THINK_CLOSE), "leads": text.lstrip().startswith(THINK_OPEN)}
    idx = text.rfind(THINK_CLOSE)
    if idx < 0:
        body = text
        if opened:
            body = body[body.find(THINK_OPEN) + len(THINK_OPEN):]
            return SplitOutput(reasoning=body.strip(), answer="", closed=False, opened=True, **counts)
        return SplitOutput(reasoning="", answer=text.strip(), closed=False, opened=False, **counts)
    head, answer = text[:idx], text[idx + len(THINK_CLOSE):]
    start = head.find(THINK_OPEN)
    reasoning = head[start + len(THINK_OPEN):] if start >= 0 else head
    return SplitOutput(reasoning=reasoning.strip(), answer=answer.strip(), closed=True, opened=start >= 0, **counts)


def strip_thought(text: str) -> str:
    """The answer part of a text (everything after the last ``</think>``), stripped."""
    return split_output(text).answer


def truncate_reasoning(reasoning: str, fraction: float) -> str:
    """First ``fraction`` of a reasoning trace, cut at a word boundary (faithfulness probe)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    words = reasoning.split(" ")
    keep = round(len(words) * fraction)
    return " ".join(words[:keep])
