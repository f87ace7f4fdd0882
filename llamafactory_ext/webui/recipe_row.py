"""The Train tab's "Recipe" row: pick a training recipe, and its keys fill the top bar and the Train tab
(``recipe_form.py`` says which key goes where); the "Thinking format" dropdown beside it is the
training format (thinking / non-thinking / mixed), read by ``board.BoardRunner``.

LlamaBoard reacts to some fields itself: choosing a model name fills the model path and template
(``control.get_model_info``), choosing a stage empties the data set list and sets packing
(``control.change_stage``). A recipe that changes those fields would see its own values replaced
when those handlers run after it. So the row asks LlamaBoard's own functions what they will set,
and where that differs from the recipe it remembers the pair (in the page session's state); when
the field then changes to LlamaBoard's value, the recipe's value is put back, once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gradio as gr
from llamafactory.webui import control

from llamafactory_ext.webui.project import TRAINING_FORMATS, recipe_choices
from llamafactory_ext.webui.recipe_form import FIELDS, THINKING_ID, recipe_form

RECIPE_KEY = {elem_id: key for key, (elem_id, _) in FIELDS.items()}
GUARDED = ("top.model_path", "top.template", "train.dataset", "train.packing")  # set again by LlamaBoard's handlers


def fits(elem: Any, value: Any) -> bool:
    """Whether an element can hold ``value`` exactly (a slider's range and step, a closed dropdown's choices)."""
    if isinstance(elem, gr.Slider):
        if not elem.minimum <= value <= elem.maximum:
            return False
        steps = (value - elem.minimum) / elem.step
        return abs(steps - round(steps)) < 1e-9
    if isinstance(elem, gr.Dropdown) and not elem.allow_custom_value and not elem.multiselect:
        return value in [choice[1] if isinstance(choice, tuple) else choice for choice in elem.choices]
    return True


class RecipeRow:
    """Built inside the Train tab, above LlamaBoard's own fields; ``wire()`` once they exist."""

    def __init__(self, board: Any, cwd: Path) -> None:
        self.board, self.cwd = board, cwd
        with gr.Row():
            self.recipe = gr.Dropdown(label="Recipe", choices=recipe_choices(cwd), value=None, scale=3, elem_id="ext-recipe",
                                      info="a training recipe fills the fields below: the shipped ones, and recipes/*.yaml here")
            self.thinking = gr.Dropdown(label="Thinking format", choices=list(TRAINING_FORMATS), value="thinking", scale=2,
                                        elem_id="ext-thinking-format",
                                        info="enable_thinking: thinking = true, non-thinking = false, mixed = null (V3)")
        self.note = gr.Markdown(elem_id="ext-recipe-note")
        self.pending = gr.State({})
        board.manager.add_elems("train", {"thinking_format": self.thinking})
        board.manager.extra_base.add(self.thinking)  # LlamaBoard's Train handlers now receive its value

    def elem(self, elem_id: str) -> Any:
        return self.board.manager.get_elem_by_id(elem_id)

    def wire(self) -> None:
        self.elem("train.enable_thinking").visible = False  # LlamaBoard's checkbox: "Thinking format" replaces it
        self.ids = sorted({*RECIPE_KEY, "top.model_name", "top.model_path", "train.training_stage", "train.compute_type",
                           "train.dataset_dir", "train.extra_args", THINKING_ID})
        self.defaults = {elem_id: self.elem(elem_id).value for elem_id in self.ids}
        outputs = [self.elem(i) for i in self.ids] + [self.note, self.pending]
        inputs = [self.recipe, self.elem("top.model_name"), self.elem("train.training_stage")]
        self.recipe.input(self.load, inputs, outputs, queue=False)
        self.recipe.focus(lambda: gr.Dropdown(choices=recipe_choices(self.cwd)), None, [self.recipe], queue=False)
        for elem_id in GUARDED:
            elem = self.elem(elem_id)
            elem.change(self._restorer(elem_id), [self.pending, elem], [elem, self.pending], queue=False)

    def load(self, path: str, model_name: str | None, stage: str) -> dict[Any, Any]:
        from llamafactory_ext.config import UserError, load_yaml

        try:
            recipe = load_yaml(path)
            form = recipe_form(recipe, path, self.cwd)
        except (UserError, ValueError) as exc:
            return {self.note: f"**Recipe not loaded:** {exc}"}
        values = {i: self.defaults[i] for i in form.unset}
        for elem_id, value in form.values.items():
            if elem_id not in RECIPE_KEY or fits(self.elem(elem_id), value):
                values[elem_id] = value
            else:  # e.g. warmup_steps 0.05 on a slider of whole steps: LlamaBoard's extra arguments carry it
                form.extra[RECIPE_KEY[elem_id]] = recipe[RECIPE_KEY[elem_id]]
                values[elem_id] = self.defaults[elem_id]
        values["train.extra_args"] = json.dumps(form.extra, ensure_ascii=False)
        pending = self._pending(values, model_name, stage)
        note = f"Loaded `{path}`: {len(form.values)} fields, {len(form.extra)} extra arguments."
        note += "".join(f" {n}." for n in form.notes)
        return {**{self.elem(i): v for i, v in values.items()}, self.note: note, self.pending: pending}

    @staticmethod
    def _pending(values: dict[str, Any], model_name: str | None, stage: str) -> dict[str, Any]:
        """What LlamaBoard's own handlers will set after this load, where it differs from the recipe."""
        after: dict[str, Any] = {}
        if values["top.model_name"] != model_name:
            after["top.model_path"], after["top.template"] = control.get_model_info(values["top.model_name"])
        if values["train.training_stage"] != stage:
            after["train.dataset"], after["train.packing"] = control.change_stage(values["train.training_stage"])
        return {i: (theirs, values[i]) for i, theirs in after.items() if theirs != values[i]}

    def _restorer(self, elem_id: str):
        def restore(pending: dict[str, Any], value: Any) -> tuple[Any, Any]:
            if elem_id in pending and value == pending[elem_id][0]:
                rest = {k: v for k, v in pending.items() if k != elem_id}
                return pending[elem_id][1], rest
            return gr.skip(), gr.skip()

        return restore
