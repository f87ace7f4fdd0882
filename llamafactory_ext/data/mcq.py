"""Multiple-choice rendering shared by Mult-IT (training) and ITALIC (evaluation).

One function builds the user message, so a Mult-IT training prompt and an ITALIC evaluation
prompt are laid out the same way: an Italian instruction (naming the category when there is
one), the question, then one ``A) text`` line per option. System prompt of the ITALIC
protocol: "Sei un assistente utile.".

Variants (ITALIC's two zero-shot prompts):
- ``fast``: answer with the letter only (what V1 trains: the assistant says ``B``).
- ``cot``:  reason, then end with a last line ``Risposta: LETTERA``.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

SYSTEM_PROMPT = "Sei un assistente utile."
LETTERS = string.ascii_uppercase[:5]  # ITALIC and Mult-IT have 2-5 options: A-E
VARIANTS = ("fast", "cot")

# ITALIC's 12 categories -> Italian names used in the instruction; macro categories.
CATEGORY_IT = {
    "literature": "letteratura",
    "art_history": "storia dell'arte",
    "tourism": "turismo",
    "lexicon": "lessico",
    "geography": "geografia",
    "history": "storia",
    "syntax": "sintassi",
    "civic_education": "educazione civica",
    "orthography": "ortografia",
    "synonyms_and_antonyms": "sinonimi e contrari",
    "morphology": "morfologia",
    "current_events": "attualità",
}
MACRO_CULTURE = "culture and commonsense"
MACRO_LANGUAGE = "language capability"
# ITALIC's categories in the published table order: culture and commonsense, then language capability.
ITALIC_CATEGORIES: dict[str, list[str]] = {
    MACRO_CULTURE: ["art_history", "civic_education", "current_events", "geography", "history", "literature", "tourism"],
    MACRO_LANGUAGE: ["lexicon", "morphology", "orthography", "synonyms_and_antonyms", "syntax"],
}

INSTRUCTION_FAST = "Rispondi con la sola lettera dell'opzione corretta."
INSTRUCTION_COT = (
    "Ragiona passo per passo, poi concludi con un'ultima riga nel formato \"Risposta: LETTERA\", "
    "dove LETTERA è la lettera dell'opzione corretta."
)


@dataclass
class MCQItem:
    """One multiple-choice question. ``options`` are (letter, text) pairs in display order;
    letters usually run A, B, C... but may skip (one ITALIC row has only A and C)."""

    id: str
    question: str
    options: list[tuple[str, str]]
    answer: str  # a letter among the option letters
    category: str | None = None
    macro_category: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def letters(self) -> list[str]:
        return [letter for letter, _ in self.options]

    def option_text(self, letter: str) -> str:
        for key, text in self.options:
            if key == letter:
                return text
        raise KeyError(letter)


def intro(category: str | None) -> str:
    if category:
        name = CATEGORY_IT.get(category, category.replace("_", " "))
        return f"La seguente è una domanda a scelta multipla di {name}."
    return "La seguente è una domanda a scelta multipla."


def render_question(item: MCQItem) -> str:
    lines = [item.question.strip()]
    lines += [f"{letter}) {text.strip()}" for letter, text in item.options]
    return "\n".join(lines)


def render_user(item: MCQItem, variant: str = "fast") -> str:
    """The user message for ``item``: instruction naming the category, question, options."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown multiple-choice prompt variant {variant!r}; known: {', '.join(VARIANTS)}")
    instruction = INSTRUCTION_FAST if variant == "fast" else INSTRUCTION_COT
    return f"{intro(item.category)} {instruction}\n\n{render_question(item)}"


def render_answer(item: MCQItem, variant: str = "fast") -> str:
    """The reference assistant answer (few-shot turns, non-thinking training rows)."""
    return item.answer if variant == "fast" else f"Risposta: {item.answer}"


def build_messages(
    item: MCQItem, variant: str = "fast", shots: list[MCQItem] | None = None
) -> list[dict[str, str]]:
    """Chat turns (without the system prompt): optional few-shot pairs, then the question."""
    messages: list[dict[str, str]] = []
    for shot in shots or []:
        messages.append({"role": "user", "content": render_user(shot, variant)})
        messages.append({"role": "assistant", "content": render_answer(shot, variant)})
    messages.append({"role": "user", "content": render_user(item, variant)})
    return messages
