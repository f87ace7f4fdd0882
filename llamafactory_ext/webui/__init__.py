"""``llamafactory-ext webui``: LLaMA-Factory's LlamaBoard with the project inside (see ``command.py``).

The top floor under ``cli``: it may import every command module; nothing imports it."""

from llamafactory_ext.webui.command import USAGE, main, options_help

__all__ = ["USAGE", "main", "options_help"]
