"""LlamaBoard with the project inside: LLaMA-Factory's own Blocks, built from its own components.

``create_ui`` does what ``llamafactory.webui.interface.create_ui`` does (top bar, Train, Evaluate &
Predict, Chat, Export, footer, language switch) with three subclasses and a few additions:

- :class:`Board` (an ``Engine``) presets "Data dir" to the project's data folder on every page load;
- :class:`BoardManager` (a ``Manager``) adds the "Thinking format" dropdown to the base elements, so
  LlamaBoard's own Train handlers (preview, start, save / load arguments) receive its value;
- :class:`BoardRunner` (a ``Runner``) sets ``enable_thinking`` from it after LlamaBoard's own
  ``_parse_train_args``: thinking / non-thinking / mixed = true / false / null (the checkbox it
  replaces cannot say null, and LlamaBoard's YAML keeps ``enable_thinking: null``);
- the "Dataset" lists of Train and Evaluate show only entries whose files exist;
- the "Recipe" row (``recipe_row.py``) and the "Thinking eval", "Format study" and "Inspect" tabs.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from llamafactory.extras.constants import STAGES_USE_PAIR_DATA, TRAINING_STAGES
from llamafactory.webui import control
from llamafactory.webui.common import DEFAULT_DATA_DIR, save_config
from llamafactory.webui.components import (
    create_eval_tab,
    create_export_tab,
    create_footer,
    create_infer_tab,
    create_top,
    create_train_tab,
)
from llamafactory.webui.css import CSS
from llamafactory.webui.engine import Engine
from llamafactory.webui.manager import Manager
from llamafactory.webui.runner import Runner

from llamafactory_ext.webui.project import TRAINING_FORMATS, existing_datasets

TITLE = "LLaMA Board + llamafactory-ext"


class BoardManager(Manager):
    """LlamaBoard's element registry; ``extra_base`` joins the base elements every tab's handlers read."""

    def __init__(self) -> None:
        super().__init__()
        self.extra_base: set[Any] = set()

    def get_base_elems(self) -> set[Any]:
        return super().get_base_elems() | self.extra_base


class BoardRunner(Runner):
    """LlamaBoard's runner; the training arguments carry the chosen training format."""

    def _parse_train_args(self, data: dict[Any, Any]) -> dict[str, Any]:
        from llamafactory_ext.webui.recipe_form import THINKING_ID

        args = super()._parse_train_args(data)
        args["enable_thinking"] = TRAINING_FORMATS[data[self.manager.get_elem_by_id(THINKING_ID)]]
        return args


class Board(Engine):
    """LlamaBoard's engine with our manager and runner, and "Data dir" preset to the project's data folder."""

    def __init__(self, data_dir: str) -> None:
        super().__init__(demo_mode=False, pure_chat=False)
        self.manager = BoardManager()  # still empty: nothing was registered with the Manager it replaces
        self.runner = BoardRunner(self.manager, demo_mode=False)
        self.chatter.manager = self.manager
        self.data_dir = data_dir

    def resume(self):
        presets = {"train.dataset_dir": {"value": self.data_dir}, "eval.dataset_dir": {"value": self.data_dir}}
        for n, update in enumerate(super().resume()):
            if n == 0:
                update.update(self._update_component(presets))
            yield update

    def train_inputs(self) -> set[Any]:
        """Every value LlamaBoard's ``_parse_train_args`` reads (top bar + Train tab form fields)."""
        from gradio.components.base import FormComponent

        return {elem for elem in self.manager.get_elem_list()
                if self.manager.get_id_by_elem(elem).split(".")[0] in ("top", "train") and isinstance(elem, FormComponent)}


def list_existing_datasets(dataset_dir: str | None = None, training_stage: str = next(iter(TRAINING_STAGES))) -> gr.Dropdown:
    """LlamaBoard's ``control.list_datasets``, listing only the entries whose files exist."""
    ranking = TRAINING_STAGES[training_stage] in STAGES_USE_PAIR_DATA
    return gr.Dropdown(choices=existing_datasets(dataset_dir or DEFAULT_DATA_DIR, ranking))


def rebind_dataset_lists(demo: gr.Blocks) -> None:
    """Point the "Dataset" dropdowns' focus handlers (registered by LlamaBoard's Train and Evaluate
    tabs with ``control.list_datasets``) at :func:`list_existing_datasets`: same inputs, same output."""
    found = [fn for fn in demo.fns.values() if fn.fn is control.list_datasets]
    if len(found) != 2:
        raise RuntimeError(f"expected LlamaBoard's two dataset lists (Train, Evaluate), found {len(found)}: "
                           "this LLaMA-Factory / gradio version builds its page differently")
    for fn in found:
        fn.fn = list_existing_datasets


@dataclass
class Page:
    demo: gr.Blocks
    board: Board
    recipe_row: Any
    tabs: list[Any]  # the tabs this package adds (each has ``abort_all()``)


def create_ui(data_dir: str, cwd: str | os.PathLike | None = None) -> Page:
    """The page: LlamaBoard's Blocks with the project inside (not launched)."""
    from llamafactory_ext.webui.eval_tab import ThinkingEvalTab
    from llamafactory_ext.webui.inspect_tab import InspectTab
    from llamafactory_ext.webui.recipe_row import RecipeRow
    from llamafactory_ext.webui.study_tab import StudyTab

    here = Path(cwd or Path.cwd())
    board = Board(data_dir)
    hostname = os.getenv("HOSTNAME", os.getenv("COMPUTERNAME", platform.node())).split(".")[0]
    with gr.Blocks(title=f"{TITLE} ({hostname})", css=CSS) as demo:
        title, subtitle = gr.HTML(), gr.HTML()
        board.manager.add_elems("head", {"title": title, "subtitle": subtitle})
        board.manager.add_elems("top", create_top())
        lang = board.manager.get_elem_by_id("top.lang")
        with gr.Tab("Train"):
            recipe_row = RecipeRow(board, here)  # before the Train tab: its dropdown joins the base elements
            board.manager.add_elems("train", create_train_tab(board))
            recipe_row.wire()
        with gr.Tab("Evaluate & Predict"):
            board.manager.add_elems("eval", create_eval_tab(board))
        with gr.Tab("Chat"):
            board.manager.add_elems("infer", create_infer_tab(board))
        with gr.Tab("Export"):
            board.manager.add_elems("export", create_export_tab(board))
        with gr.Tab("Thinking eval"):
            evaluation = ThinkingEvalTab(board, here)
        with gr.Tab("Format study"):
            study = StudyTab(here)
        with gr.Tab("Inspect"):
            inspect = InspectTab(board, here)
        board.manager.add_elems("footer", create_footer())
        demo.load(board.resume, outputs=board.manager.get_elem_list(), concurrency_limit=None)
        lang.change(board.change_lang, [lang], board.manager.get_elem_list(), queue=False)
        lang.input(save_config, inputs=[lang], queue=False)
    rebind_dataset_lists(demo)
    return Page(demo, board, recipe_row, [evaluation, study, inspect])
