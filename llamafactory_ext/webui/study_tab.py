"""The "Format study" tab: ``llamafactory-ext study`` run from the page.

Pick a study file (``recipes/studies/*.yaml`` here, or a shipped one, or type a path); "Dry run"
lists every command the study would run; "Run / resume" starts it (finished trials are skipped, as
on the command line); when it ends, the Version Series table (``study.md``) and ``study.png``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import gradio as gr

from llamafactory_ext.webui.panel import Runs, elapsed, ending, fenced, images, key_values, screen_lines
from llamafactory_ext.webui.project import study_choices

WROTE = re.compile(r"\[study\] wrote (?P<md>.+?study\.md),")  # the study command's last report line


def study_argv(study: str, overrides: str, dry_run: bool) -> list[str]:
    if not (study or "").strip():
        raise ValueError("choose a study file")
    return ["study", study.strip(), *key_values(overrides, "Overrides"), *(["dry_run=true"] if dry_run else [])]


def study_outputs(output: str) -> tuple[str | None, Any]:
    """``study.md`` and ``study.png`` of a finished run, found where the command says it wrote them."""
    found = WROTE.findall(output)
    if not found:
        return None, None
    md = Path(found[-1])
    png = md.with_name("study.png")
    text = md.read_text(encoding="utf-8") if md.is_file() else None
    return text, (images([png])[0][0] if png.is_file() else None)


class StudyTab:
    def __init__(self, cwd: Path) -> None:
        self.runs = Runs(cwd)
        gr.Markdown("The format study (\"Version Series\") with `llamafactory-ext study`: a baseline and one "
                    "LoRA trial per recipe, each evaluated in both thinking modes on the same items. **Dry run** "
                    "lists every command; **Run / resume** runs them (finished trials are skipped).")
        choices = study_choices(cwd)
        with gr.Row():
            self.study = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="Study file", scale=2,
                                     allow_custom_value=True, elem_id="fs-study")
            self.overrides = gr.Textbox(label="Overrides", scale=3, elem_id="fs-overrides",
                                        info="key=value ..., dots for nested keys: eval.overrides.limit=500 "
                                             "prepare.traces=traces.jsonl output_dir=saves/studies/mine")
        with gr.Row():
            self.dry_btn = gr.Button("Dry run", elem_id="fs-dry-run")
            self.run_btn = gr.Button("Run / resume", variant="primary", elem_id="fs-run")
            self.abort_btn = gr.Button("Abort", variant="stop", elem_id="fs-abort")
        self.command = gr.Markdown(elem_id="fs-command")
        self.status = gr.Markdown(elem_id="fs-status")
        self.listing = gr.Markdown(elem_id="fs-listing")
        self.table = gr.Markdown(elem_id="fs-table")
        self.plot = gr.Image(label="study.png", type="pil", interactive=False, visible=False, elem_id="fs-plot")
        outputs = [self.command, self.status, self.listing, self.table, self.plot]
        self.dry_btn.click(self.dry_run, [self.study, self.overrides], outputs, concurrency_limit=None)
        self.run_btn.click(self.run, [self.study, self.overrides], outputs, concurrency_limit=None)
        self.abort_btn.click(self.runs.abort, None, [self.status], queue=False)
        self.study.focus(lambda: gr.Dropdown(choices=study_choices(cwd)), None, [self.study], queue=False)

    def dry_run(self, study: str, overrides: str):
        yield from self._launch(study, overrides, dry_run=True)

    def run(self, study: str, overrides: str):
        yield from self._launch(study, overrides, dry_run=False)

    def _launch(self, study: str, overrides: str, dry_run: bool):
        if self.runs.busy():
            yield {self.status: "A study command is running: Abort it first."}
            return
        try:
            argv = study_argv(study, overrides, dry_run)
        except ValueError as exc:
            yield {self.status: f"**Error:** {exc}"}
            return
        job = self.runs.start(argv)
        yield {self.command: fenced(job.command(), "bash"), self.status: "Starting…", self.listing: "",
               self.table: "", self.plot: gr.Image(value=None, visible=False)}
        yield from self.runs.follow(job, self._running, self._finished)

    def _running(self, job: Any) -> dict[Any, Any]:
        progress = job.progress()
        shown = f" · {progress.text()}" if progress else ""
        return {self.status: f"**Running** (pid {job.pgid}, {elapsed(job)}){shown}",
                self.listing: fenced(screen_lines(job.output(), 60))}

    def _finished(self, job: Any) -> dict[Any, Any]:
        output = job.output()
        update = {self.status: ending(job), self.listing: fenced(screen_lines(output, 400))}
        table, png = study_outputs(output)
        if table is not None:
            update.update({self.table: table, self.plot: gr.Image(value=png, visible=png is not None)})
        return update

    def abort_all(self) -> None:
        self.runs.abort_all()
