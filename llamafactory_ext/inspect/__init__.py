"""``llamafactory-ext inspect``: what a recipe trains on (the command: ``inspect/command.py``; its
arguments: ``options.py``; the run: ``pipeline.py``; per-row analysis: ``analysis.py``; lints:
``lints.py``; text / HTML / JSON: ``render.py``). This module only hands those names on."""

from llamafactory_ext.inspect.analysis import IGNORE_INDEX, InspectError
from llamafactory_ext.inspect.command import main, options_help, quiet
from llamafactory_ext.inspect.options import USAGE, InspectOptions
from llamafactory_ext.inspect.pipeline import CACHE_ENV, exit_status, fixture_tokenizer_dir, inspect_recipe
from llamafactory_ext.inspect.render import render_html, render_text, to_json, use_color

__all__ = ["CACHE_ENV", "IGNORE_INDEX", "USAGE", "InspectError", "InspectOptions", "exit_status", "fixture_tokenizer_dir",
           "inspect_recipe", "main", "options_help", "quiet", "render_html", "render_text", "to_json", "use_color"]
