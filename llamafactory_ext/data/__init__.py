"""Data converters: source layer, atomic writer, one module per data set, and the registry.

Adding a data set = one module declaring a :class:`~llamafactory_ext.data.spec.DatasetSpec`,
one line in :data:`REGISTRY`, one sample file in ``resources/samples`` and one test. Shared
code (``prepare``, ``samples``) never tests a data set's name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from llamafactory_ext.data.spec import DatasetSpec

# name -> "module:ATTRIBUTE" of its DatasetSpec (imported lazily: `--help` stays light)
REGISTRY: dict[str, str] = {
    "multit_nothink": "llamafactory_ext.data.multit:NOTHINK",
    "multit_think": "llamafactory_ext.data.multit:THINK",
    "multit_mixed": "llamafactory_ext.data.multit:MIXED",
    "synth_gsm8k": "llamafactory_ext.data.synth_gsm8k:SPEC",
    "gsm8k": "llamafactory_ext.data.gsm8k:SPEC",
    "wikipedia_it": "llamafactory_ext.data.wikipedia_it:SPEC",
    "wizard_alpaca_dolly_orca": "llamafactory_ext.data.wizard_alpaca_dolly_orca:SPEC",
    "orpo_dpo_mix": "llamafactory_ext.data.orpo_dpo_mix:SPEC",
    "preference": "llamafactory_ext.data.preference:SPEC",
    "clean_mc4_it": "llamafactory_ext.data.clean_mc4_it:SPEC",
}


def get_spec(name: str) -> DatasetSpec:
    """The registered data set ``name``; a UserError lists the known names otherwise."""
    if name not in REGISTRY:
        import difflib

        from llamafactory_ext.config import UserError

        close = difflib.get_close_matches(name, list(REGISTRY), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"unknown data set {name!r}{hint}; registered: {', '.join(REGISTRY)}")
    module, attr = REGISTRY[name].split(":")
    spec = getattr(importlib.import_module(module), attr)
    assert spec.name == name, f"registry line {name!r} points at the spec of {spec.name!r}"
    return spec


def all_specs() -> list[DatasetSpec]:
    return [get_spec(name) for name in REGISTRY]
