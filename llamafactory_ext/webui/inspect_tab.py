"""The "Inspect" tab: what the Train tab's settings train on, before any GPU time is spent.

The training arguments come from LlamaBoard's own builder (``Runner._parse_train_args``, with the
thinking format), exactly what its Start button would train with; LlamaBoard's ``save_cmd`` writes
them as a recipe under ``llamaboard_cache/inspect/``, and ``llamafactory-ext inspect`` runs on it:
trained vs masked tokens, empty-think placement, parity with the evaluator's prompt, lints. The page
shows the command's text report and its HTML report (the samples with trained tokens marked).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import gradio as gr

from llamafactory_ext.webui.panel import Runs, elapsed, ending, fenced, screen_lines

FOLDER = Path("llamaboard_cache") / "inspect"  # beside LlamaBoard's own cache, in the working folder


def inspect_argv(recipe: Path, report: Path, rows: int, tokenizer: str, eval_yaml: str) -> list[str]:
    argv = ["inspect", str(recipe), "format=json", f"output={report}", f"n={int(rows)}"]
    if (tokenizer or "").strip():
        argv.append(f"tokenizer={tokenizer.strip()}")
    if (eval_yaml or "").strip():
        argv.append(f"eval={eval_yaml.strip()}")
    return argv


def text_report(report: dict[str, Any]) -> str:
    """``inspect``'s own text report without its samples (they are in the HTML report below it)."""
    from llamafactory_ext.inspect.render import render_text

    return render_text(report, color=False).split("\nsamples (", 1)[0].rstrip()


def html_report(report: dict[str, Any]) -> str:
    """``inspect``'s own HTML report in a frame (its styles stay inside it)."""
    from llamafactory_ext.inspect.render import render_html

    doc = html.escape(render_html(report), quote=True)
    return f'<iframe title="inspect report" srcdoc="{doc}" style="width:100%;height:720px;border:1px solid #ddd"></iframe>'


class InspectTab:
    def __init__(self, board: Any, cwd: Path) -> None:
        self.board, self.cwd = board, cwd
        self.runs = Runs(cwd)
        gr.Markdown("What the **Train tab's** settings (data set, template, thinking format, cutoff, packing, "
                    "masking) train on, with `llamafactory-ext inspect`: tokenizer only, no weights, no GPU.")
        with gr.Row():
            self.tokenizer = gr.Textbox(label="Tokenizer", elem_id="in-tokenizer",
                                        info="blank: the top bar's model; fixture: the tiny Qwen3-id tokenizer (offline)")
            self.rows = gr.Slider(1, 32, value=4, step=1, label="Rows shown per data set", elem_id="in-rows")
            self.eval_yaml = gr.Textbox(label="Evaluator YAML", elem_id="in-eval",
                                        info="optional, e.g. recipes/eval/italic_zeroshot.yaml: lint its modes")
        self.button = gr.Button("Inspect", variant="primary", elem_id="in-run")
        self.command = gr.Markdown(elem_id="in-command")
        self.status = gr.Markdown(elem_id="in-status")
        self.summary = gr.Markdown(elem_id="in-summary")
        self.report = gr.HTML(elem_id="in-report")
        inputs = board.train_inputs() | {self.tokenizer, self.rows, self.eval_yaml}
        outputs = [self.command, self.status, self.summary, self.report]
        self.button.click(self.inspect, inputs, outputs, concurrency_limit=None)

    def recipe(self, data: dict[Any, Any]) -> Path:
        """The Train tab's arguments as LlamaBoard's Start would write them (``training_args.yaml``)."""
        from llamafactory.webui.common import save_cmd

        manager = self.board.manager
        data = dict(data)
        name = manager.get_elem_by_id("top.model_name")
        data[name] = data[name] or "Custom"  # only names LlamaBoard's save folder; inspect needs no model name
        args = self.board.runner._parse_train_args(data)
        args["output_dir"] = str(self.cwd / FOLDER)
        return Path(save_cmd(args))

    def inspect(self, data: dict[Any, Any]):
        if self.runs.busy():
            yield {self.status: "Inspect is running."}
            return
        try:
            recipe = self.recipe(data)
        except json.JSONDecodeError as exc:
            yield {self.status: f"**Error:** Extra arguments (Train tab) is not JSON: {exc}"}
            return
        report = recipe.with_name("report.json")
        report.unlink(missing_ok=True)
        argv = inspect_argv(recipe.relative_to(self.cwd), report.relative_to(self.cwd), data[self.rows],
                            data[self.tokenizer], data[self.eval_yaml])
        job = self.runs.start(argv)
        yield {self.command: fenced(job.command(), "bash"), self.status: "Running…", self.summary: "", self.report: ""}
        yield from self.runs.follow(job, lambda j: {self.status: f"**Running** ({elapsed(j)})…"}, lambda j: self._finished(j, report))

    def _finished(self, job: Any, report_path: Path) -> dict[Any, Any]:
        if job.returncode not in (0, 1) or not report_path.is_file():  # 1: an error lint fired; the report stands
            return {self.status: ending(job), self.summary: fenced(screen_lines(job.output()))}
        report = json.loads(report_path.read_text(encoding="utf-8"))
        errors = sum(1 for lint in report["lints"] if lint["severity"] == "error")
        status = f"**Done**: {len(report['lints'])} lints, {errors} errors."
        return {self.status: status, self.summary: fenced(text_report(report)), self.report: html_report(report)}

    def abort_all(self) -> None:
        self.runs.abort_all()
