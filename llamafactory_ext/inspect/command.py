"""See exactly what a recipe trains on, before spending a GPU day.

``llamafactory-ext inspect RECIPE.yaml [key=value ...]`` runs LLaMA-Factory's OWN data pipeline on
the recipe's data (``dataset_info.json`` in ``dataset_dir``, the template with
``enable_thinking``, ``cutoff_len``, ``packing``, ``train_on_prompt``, ``mask_history``) with the
tokenizer only: no model weights, no GPU. It shows, per data set, which tokens carry loss, where
the empty think block ``<think>\\n\\n</think>\\n\\n`` lands (masked in the prompt or trained in the
response), rows cut by ``cutoff_len`` and those that lost their answer, the packing fill, and
whether every training prompt equals the evaluator's prompt token for token; lints explain what
looks wrong (one line why, one line fix). Exit status 1 when a lint of severity ``error`` fires.

Recipe keys are overrides exactly as ``llamafactory-cli train RECIPE.yaml key=value`` takes them;
inspect's own keys (below) are taken out first. Examples::

    llamafactory-ext inspect recipes/v3_mixed.yaml samples=true tokenizer=fixture
    llamafactory-ext inspect recipes/v1_nothink.yaml enable_thinking=true samples=true tokenizer=fixture
    llamafactory-ext inspect recipes/v2_think.yaml dataset_dir=/data/ds cutoff_len=512 format=json
    llamafactory-ext inspect recipes/v1_nothink.yaml samples=true tokenizer=fixture format=html output=v1.html \\
        eval=recipes/eval/italic_zeroshot.yaml

How each number is obtained (LLaMA-Factory 0.9.5, read from its source):

- rows are read and converted by ``llamafactory.data.loader._load_single_dataset`` (the loader and
  ``align_dataset`` converter ``get_dataset`` uses, ``max_samples`` included) and encoded one by one
  by ``SupervisedDatasetProcessor.preprocess_dataset`` (stage ``sft``) or
  ``PretrainDatasetProcessor`` (stage ``pt``) with the recipe's ``DataArguments``, so ``input_ids``
  and ``labels`` are exactly what training sees (``PackedSupervisedDatasetProcessor`` encodes every
  row with the same ``_encode_data_example`` before packing);
- the packing fill groups those lengths with LLaMA-Factory's own ``greedy_knapsack``, batch by batch
  of ``preprocessing_batch_size`` rows as ``datasets.map`` feeds the packed processor (stage
  ``pt``: the packed pretrain processor itself runs);
- a row is *cut* when its untruncated encoding (``Template.encode_multiturn``, the call the
  processor makes) is longer than ``cutoff_len``; it *lost its answer* when the final answer
  (after ``</think>``, or the whole assistant text without a trace) is not entirely inside the
  trained tokens of its last turn that survived;
- parity: the masked prompt of a row (the tokens before the first trained token of its last
  assistant turn) against ``prompts.PromptEncoder(tokenizer, template, mode).encode(messages,
  system)``, the evaluator's prompt, for the mode the row trains (rows cut by ``cutoff_len`` are
  counted under ``cut_rows`` instead).
"""

from __future__ import annotations

import sys
from pathlib import Path

from llamafactory_ext.config import describe
from llamafactory_ext.inspect.options import USAGE, InspectOptions
from llamafactory_ext.inspect.pipeline import exit_status, inspect_recipe
from llamafactory_ext.inspect.render import render_html, render_text, to_json, use_color

__all__ = ["USAGE", "main", "options_help", "quiet"]


def options_help() -> str:
    return (describe(InspectOptions)
            + "\n  any recipe key           as llamafactory-cli train takes it, e.g. enable_thinking=true "
              "cutoff_len=64 dataset_dir=/tmp/ds")


def quiet() -> None:
    """LLaMA-Factory's INFO logs and the datasets progress bars are not this command's output.

    Set on the loggers, not through LLAMAFACTORY_VERBOSITY: an environment variable would also
    silence every ``llamafactory-cli`` a caller starts later from the same process."""
    import logging

    import datasets
    import transformers
    from llamafactory.extras import logging as lf_logging

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # a file it cannot read is this command's one-line error
    transformers.logging.set_verbosity_error()
    lf_logging.get_logger("llamafactory")  # configures its root logger (from the environment) once
    logging.getLogger("llamafactory").setLevel(logging.ERROR)


def main(argv: list[str]) -> int:
    from llamafactory_ext.io import atomic_write_text

    quiet()
    report = inspect_recipe(list(argv), progress=sys.stderr.isatty())
    opts: InspectOptions = report["_options"]
    if opts.format == "json":
        text = to_json(report)
    elif opts.format == "html":
        text = render_html(report)
    else:
        text = render_text(report, color=opts.output is None and use_color(opts.color, sys.stdout))
    if opts.format == "html" or opts.output:
        target = Path(opts.output or "inspect.html")
        atomic_write_text(target, text)
        errors = sum(1 for x in report["lints"] if x["severity"] == "error")
        print(f"inspect: wrote {target} ({len(report['samples'])} samples, {len(report['lints'])} lints, {errors} errors)",
              file=sys.stderr)
    else:
        sys.stdout.write(text)
    return exit_status(report)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
