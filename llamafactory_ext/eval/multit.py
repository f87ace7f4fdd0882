"""Mult-IT held-out split: the same rendering and extraction as ITALIC (``data.mcq``), items
from ``data.multit.load_multit`` (pass the held-out file as ``source``)."""

from __future__ import annotations

from llamafactory_ext.data import mcq
from llamafactory_ext.eval.italic import MCQTask
from llamafactory_ext.eval.tasks import TaskError


class MultITTask(MCQTask):
    name = "multit"
    categories: dict[str, list[str]] = {}

    def load(self) -> list[mcq.MCQItem]:
        from llamafactory_ext.data.multit import load_multit

        source = getattr(self.cfg, "source", None)
        if not source:
            raise TaskError("task=multit needs source=PATH (the held-out Mult-IT split, e.g. data/multit_val.json)")
        return load_multit(source, limit=getattr(self.cfg, "limit", None))

