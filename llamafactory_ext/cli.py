"""``llamafactory-ext``: one entry point, one subcommand per capability.

Every subcommand takes ``CONFIG.yaml`` plus ``key=value`` overrides (``prepare`` takes a
dataset NAME first). The table below is all that ``--help`` needs: subcommand modules and
their heavy dependencies (torch, transformers, LLaMA-Factory) are imported only when the
subcommand runs, so ``llamafactory-ext --help`` answers at once.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module with main(argv) -> int, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("llamafactory_ext.data.prepare", "convert a source data set into LLaMA-Factory data (NAME [key=value ...])"),
    "distill": ("llamafactory_ext.distill", "teacher writes <think> traces for multiple-choice questions, keeps correct ones"),
    "eval": ("llamafactory_ext.eval.command", "evaluate on ITALIC / GSM8K / Mult-IT in both thinking modes, or the lm-eval Italian suite"),
    "compare": ("llamafactory_ext.eval.compare", "base and tuned model answer the same free prompts, side by side"),
    "sweep": ("llamafactory_ext.sweep.command", "train + evaluate a grid over recipe keys (e.g. lora_rank), resumable"),
    "study": ("llamafactory_ext.study", "the Version Series: baseline + one trial per recipe, both thinking modes, one table"),
    "contamination": ("llamafactory_ext.contamination", "check that evaluation questions (ITALIC, GSM8K, Mult-IT) do not appear in training files"),
    "card": ("llamafactory_ext.card", "a Hub-ready model card (README.md) for an adapter, from its eval or study; push=dry_run | true"),
    "plan": ("llamafactory_ext.plan.command", "trainable parameters and GPU memory of a recipe, from config.json only"),
    "inspect": ("llamafactory_ext.inspect.command", "what a recipe trains on: loss-carrying tokens, empty think block, cut answers, parity"),
    "demo": ("llamafactory_ext.demo", "the format study in miniature: a tiny Qwen3 on CPU, V1 / V2 / V3 vs the base (the main job)"),
    "fixture": ("llamafactory_ext.fixtures", "write a tiny Qwen3 / LLaMA-3 model with real ids, or a small vocabulary (arch=, vocab=)"),
    "webui": ("llamafactory_ext.webui.command", "LlamaBoard with the project inside: recipes, Thinking eval, Format study, Inspect tabs"),
    "recipes": ("llamafactory_ext.shipped", "list the shipped recipes, or copy one here: recipes copy NAME"),
}

USAGE = "usage: llamafactory-ext COMMAND [CONFIG.yaml] [key=value ...]"


def _print_help() -> None:
    from llamafactory_ext import __version__

    print(f"llamafactory-ext {__version__}: LLaMA-Factory extension for Italian / maths fine-tunes of Qwen3 and LLaMA-3")
    print(USAGE)
    print("\ncommands:")
    for name, (_, summary) in COMMANDS.items():
        print(f"  {name:<14} {summary}")
    print("\n`llamafactory-ext COMMAND --help` lists the keys a command accepts.")
    print("Overrides use llamafactory-cli's syntax: key=value, lists as key=[a,b].")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        _print_help()
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from llamafactory_ext import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, list(COMMANDS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(f"llamafactory-ext: unknown command {name!r}{hint}; known: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    if rest and rest[0] in ("-h", "--help"):
        print(f"usage: llamafactory-ext {name} {getattr(module, 'USAGE', '[CONFIG.yaml] [key=value ...]')}\n")
        print((module.__doc__ or "").strip())
        options = getattr(module, "options_help", None)
        if options is not None:
            print("\nkeys:\n" + options())
        return 0
    from llamafactory_ext.config import UserError

    try:
        return int(module.main(rest) or 0)
    except UserError as exc:
        print(f"llamafactory-ext {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"llamafactory-ext {name}: interrupted (finished work is kept; re-run to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
