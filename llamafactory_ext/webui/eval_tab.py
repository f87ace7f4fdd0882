"""The "Thinking eval" tab: ``llamafactory-ext eval`` run from the page, as LlamaBoard runs training.

Model, adapter and template come from the top bar (an adapter named in LlamaBoard's checkpoint box
resolves as LlamaBoard resolves it, under ``saves/MODEL/METHOD/``). The page shows the exact command
(paste it into a shell: same settings, so it resumes the same folder), the live progress read from
the command's own progress bar, and, when it is done, the ``results.md`` and PNGs it wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from llamafactory_ext.webui.panel import Runs, elapsed, ending, fenced, images, key_values, screen_lines

TASKS = [("ITALIC", "italic"), ("GSM8K", "gsm8k"), ("Mult-IT held-out", "multit"), ("lm-eval Italian suite", "lm_eval")]
MODES = [("thinking", "on"), ("no thinking", "off"), ("both", "both")]
CUTOFF = [("wrong", "wrong"), ("force answer", "force_answer")]
GENERATIVE_KEYS = ("thinking", "max_new_tokens", "cutoff")  # task=lm_eval scores log-likelihoods: not these


def default_output_dir(task: str) -> str:
    return f"results/eval/{task}"


def model_keys(model_name: str | None, model_path: str | None, finetuning_type: str, checkpoint: Any) -> dict[str, str]:
    """Model and adapter from the top bar, resolved as LlamaBoard's runner resolves its checkpoints."""
    from llamafactory.extras.constants import PEFT_METHODS
    from llamafactory.webui.common import get_save_dir

    keys = {"model_name_or_path": (model_path or "").strip()}
    if checkpoint and finetuning_type in PEFT_METHODS:
        names = checkpoint if isinstance(checkpoint, list) else [checkpoint]
        keys["adapter_name_or_path"] = ",".join(str(get_save_dir(model_name or "", finetuning_type, a)) for a in names)
    elif checkpoint:
        keys["model_name_or_path"] = str(get_save_dir(model_name or "", finetuning_type, checkpoint))
    return {k: v for k, v in keys.items() if v}


def eval_argv(top: dict[str, Any], form: dict[str, Any]) -> list[str]:
    """``eval key=value ...`` from the top bar and the tab's fields; empty fields are left to the CLI."""
    keys: dict[str, Any] = {"task": form["task"]}
    keys.update(model_keys(top["model_name"], top["model_path"], top["finetuning_type"], top["checkpoint"]))
    keys.update(template=top["template"], source=(form["source"] or "").strip(), thinking=form["modes"],
                limit=form["limit"], max_new_tokens=form["max_new_tokens"], backend=form["backend"],
                cutoff=form["cutoff"], baseline=(form["baseline"] or "").strip(),
                output_dir=(form["output_dir"] or "").strip() or default_output_dir(form["task"]))
    if form["task"] == "lm_eval":
        keys = {k: v for k, v in keys.items() if k not in GENERATIVE_KEYS}
    argv = ["eval"] + [f"{k}={int(v) if isinstance(v, float) else v}" for k, v in keys.items() if v not in (None, "")]
    if form["overwrite"]:
        argv.append("overwrite=true")
    return argv + key_values(form["extra"], "More keys")


def output_dir_of(argv: list[str]) -> Path:
    return Path(next(a.split("=", 1)[1] for a in argv if a.startswith("output_dir=")))


def count_rows(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    except OSError:
        return 0


class ThinkingEvalTab:
    FIELDS = ("task", "source", "modes", "limit", "max_new_tokens", "backend", "cutoff", "baseline", "output_dir",
              "overwrite", "extra")
    TOP = ("model_name", "model_path", "finetuning_type", "checkpoint_path", "template")

    def __init__(self, board: Any, cwd: Path) -> None:
        self.runs = Runs(cwd)
        gr.Markdown("Evaluates in thinking and non-thinking mode with `llamafactory-ext eval`. **Model, adapter "
                    "(checkpoint) and template come from the top bar.** The output folder holds exactly what the "
                    "command writes; the command is shown, to run it again from a shell.")
        self.inputs = self._form()
        with gr.Row():
            self.start_btn = gr.Button("Start", variant="primary", elem_id="te-start")
            self.abort_btn = gr.Button("Abort", variant="stop", elem_id="te-abort")
        self.command = gr.Markdown(elem_id="te-command")
        self.status = gr.Markdown(elem_id="te-status")
        self.results = gr.Markdown(elem_id="te-results")
        self.gallery = gr.Gallery(label="Plots", columns=2, height=380, object_fit="contain", elem_id="te-plots")
        with gr.Accordion("Command output", open=False):
            self.log = gr.Textbox(show_label=False, lines=12, max_lines=12, interactive=False, elem_id="te-log")
        top = [board.manager.get_elem_by_id(f"top.{name}") for name in self.TOP]
        outputs = [self.command, self.status, self.log, self.results, self.gallery]
        self.start_btn.click(self.start, top + self.inputs, outputs, concurrency_limit=None)
        self.abort_btn.click(self.runs.abort, None, [self.status], queue=False)
        self.inputs[0].change(default_output_dir, [self.inputs[0]], [self.inputs[self.FIELDS.index("output_dir")]],
                              queue=False)

    def _form(self) -> list[Any]:
        with gr.Row():
            task = gr.Dropdown(TASKS, value="italic", label="Task", elem_id="te-task")
            source = gr.Textbox(label="Source", elem_id="te-source",
                                info="local file or folder, or Hub id (blank: the public set)")
            modes = gr.Radio(MODES, value="both", label="Modes", elem_id="te-modes")
        with gr.Row():
            limit = gr.Number(label="Limit", precision=0, minimum=1, elem_id="te-limit", info="first N items (blank: all)")
            max_new = gr.Number(label="max_new_tokens", precision=0, minimum=1, elem_id="te-max-new-tokens",
                                info="blank: the task's default per mode")
            backend = gr.Radio(["hf", "vllm"], value="hf", label="Backend", elem_id="te-backend")
            cutoff = gr.Radio(CUTOFF, value="wrong", label="Cut-off policy", elem_id="te-cutoff",
                              info="an output cut at max_new_tokens is wrong; force answer also asks for the answer")
        with gr.Row():
            baseline = gr.Textbox(label="Baseline run folder", elem_id="te-baseline",
                                  info="optional: an earlier eval output folder (adds Baseline, Δ and p)")
            output_dir = gr.Textbox(label="Output folder", value=default_output_dir("italic"), elem_id="te-output-dir")
            overwrite = gr.Checkbox(label="Overwrite", elem_id="te-overwrite",
                                    info="start over when the folder holds predictions of other settings")
            extra = gr.Textbox(label="More keys", elem_id="te-extra", info="key=value ..., e.g. batch_size=16 device=cpu")
        return [task, source, modes, limit, max_new, backend, cutoff, baseline, output_dir, overwrite, extra]

    def start(self, *values: Any):
        top = dict(zip(("model_name", "model_path", "finetuning_type", "checkpoint", "template"), values[:5]))
        form = dict(zip(self.FIELDS, values[5:]))
        if self.runs.busy():
            yield {self.status: "A run is in progress: Abort it first."}
            return
        try:
            argv = eval_argv(top, form)
        except ValueError as exc:
            yield {self.status: f"**Error:** {exc}"}
            return
        job = self.runs.start(argv)
        out = output_dir_of(argv)
        start = {self.command: fenced(job.command(), "bash"), self.results: "", self.gallery: []}
        yield {**start, self.status: "Starting…", self.log: ""}
        yield from self.runs.follow(job, lambda j: self._running(j, out), lambda j: self._finished(j, out))

    def _running(self, job: Any, out: Path) -> dict[Any, Any]:
        progress = job.progress()
        shown = progress.text() if progress else "loading the model and the items…"
        rows = count_rows(out / "predictions.jsonl")
        status = f"**Running** (pid {job.pgid}, {elapsed(job)}) · {shown} · rows in predictions.jsonl: {rows}"
        return {self.status: status, self.log: screen_lines(job.output())}

    def _finished(self, job: Any, out: Path) -> dict[Any, Any]:
        update = {self.status: ending(job), self.log: screen_lines(job.output())}
        if job.returncode == 0 and (out / "results.md").is_file():
            update[self.results] = (out / "results.md").read_text(encoding="utf-8")
            update[self.gallery] = images(sorted(out.glob("*.png")))
            update[self.status] += f" Output folder: `{out}`."
        return update

    def abort_all(self) -> None:
        self.runs.abort_all()
