"""Chat prompts encoded through LLaMA-Factory's own template code.

This is the one code path that the evaluator, the distiller and the training-parity tests
share. We never re-implement a chat template: the prompt ids come from
``Template.encode_oneturn`` exactly as LLaMA-Factory's ``ChatModel`` builds them
(``messages + [{"role": "assistant", "content": ""}]``), with the template's
``enable_thinking`` set from the evaluation mode:

- ``think``   -> ``enable_thinking=True``: the prompt ends at ``<|im_start|>assistant\\n``
  and the model writes ``<think>\\n...``; this is what a thinking training sample's prompt is.
- ``nothink`` -> ``enable_thinking=False``: LLaMA-Factory appends the empty think block
  ``<think>\\n\\n</think>\\n\\n`` to the prompt, which is exactly the masked prompt of a
  non-thinking training sample under ``enable_thinking: false`` or ``null``.
- plain templates (``qwen3_nothink``, ``llama3``): only ``nothink`` exists and nothing is
  appended.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llamafactory_ext.thinking import MODES, NOTHINK, THINK

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase


class ModeError(ValueError):
    pass


def is_reasoning_template(template_name: str) -> bool:
    from llamafactory.data.template import TEMPLATES, ReasoningTemplate

    if template_name not in TEMPLATES:
        raise ModeError(f"unknown LLaMA-Factory template {template_name!r}")
    return isinstance(TEMPLATES[template_name], ReasoningTemplate)


def enable_thinking_for_mode(template_name: str, mode: str) -> bool | None:
    """The ``enable_thinking`` value that makes LLaMA-Factory build the ``mode`` prompt."""
    if mode not in MODES:
        raise ModeError(f"unknown thinking mode {mode!r}; known: {', '.join(MODES)}")
    if not is_reasoning_template(template_name):
        if mode == THINK:
            raise ModeError(
                f"template {template_name!r} has no thinking mode (it is not a ReasoningTemplate); "
                "use mode 'nothink', or template 'qwen3' for hybrid Qwen3 models"
            )
        return None
    return mode == THINK


def training_modes(template_name: str, enable_thinking: bool | None) -> tuple[str, ...]:
    """Evaluation modes whose prompts a recipe's training samples share.

    ``true`` trains thinking prompts (and, for rows without a trace, an empty think block in
    the *response*); ``false`` trains non-thinking prompts; ``null`` (mixed) trains both.
    """
    if not is_reasoning_template(template_name):
        return (NOTHINK,)
    if enable_thinking is None:
        return (THINK, NOTHINK)
    return (THINK,) if enable_thinking else (NOTHINK,)


@dataclass
class PromptEncoder:
    """Encodes chat prompts with a private copy of a LLaMA-Factory template.

    LLaMA-Factory keeps one global ``Template`` per name and mutates its ``enable_thinking``;
    we copy it so that two modes (or two encoders) in one process never interfere.
    """

    tokenizer: Any
    template_name: str
    mode: str
    template: Any = None

    def __post_init__(self) -> None:
        from llamafactory.data.template import get_template_and_fix_tokenizer
        from llamafactory.hparams import DataArguments

        enable = enable_thinking_for_mode(self.template_name, self.mode)
        data_args = DataArguments(template=self.template_name, enable_thinking=enable if enable is not None else True)
        template = get_template_and_fix_tokenizer(self.tokenizer, data_args)
        self.template = copy.deepcopy(template)
        if enable is not None:
            self.template.enable_thinking = enable

    def encode(self, messages: list[dict[str, str]], system: str | None = None) -> list[int]:
        """Prompt ids for ``messages`` (user/assistant turns, ending with a user turn)."""
        if not messages or messages[-1].get("role") != "user":
            raise ValueError("a prompt must end with a user message")
        paired = list(messages) + [{"role": "assistant", "content": ""}]
        prompt_ids, _ = self.template.encode_oneturn(self.tokenizer, paired, system, None)
        return list(prompt_ids)

    def encode_user(self, user: str, system: str | None = None) -> list[int]:
        return self.encode([{"role": "user", "content": user}], system)

    def render(self, messages: list[dict[str, str]], system: str | None = None) -> str:
        """The prompt as text (special tokens kept), for reports and debugging."""
        return self.tokenizer.decode(self.encode(messages, system), skip_special_tokens=False)


def encode_training_pair(
    tokenizer: PreTrainedTokenizerBase,
    template_name: str,
    enable_thinking: bool | None,
    messages: list[dict[str, str]],
    system: str | None = None,
) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids) of a one-turn training sample, as LLaMA-Factory encodes it."""
    from llamafactory.data.template import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments

    template = copy.deepcopy(
        get_template_and_fix_tokenizer(tokenizer, DataArguments(template=template_name, enable_thinking=enable_thinking))
    )
    if hasattr(template, "enable_thinking"):
        template.enable_thinking = enable_thinking
    pairs = template.encode_multiturn(tokenizer, messages, system, None)
    source, target = pairs[-1]
    return list(source), list(target)
