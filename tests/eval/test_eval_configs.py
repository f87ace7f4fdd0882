"""Every shipped evaluator config in recipes/eval parses, names only known keys, and resolves
(template, modes, system prompt) without loading a model."""

from __future__ import annotations

import pytest

from llamafactory_ext.config import build, load_yaml
from llamafactory_ext.eval.runner import EvalConfig, resolve
from tests.conftest import REPO

CONFIGS = sorted((REPO / "recipes" / "eval").glob("*.yaml"))


def test_there_are_configs():
    names = {p.name for p in CONFIGS}
    assert {"italic_zeroshot.yaml", "gsm8k.yaml", "compare_wikipedia.yaml", "italic_v3_vs_baseline.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_resolves(path, monkeypatch):
    monkeypatch.chdir(REPO)
    data = load_yaml(path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#") and "llamafactory-ext eval recipes/eval/" + path.name in text  # the command that runs it
    data.pop("baseline", None)  # produced by an earlier run
    cfg = build(EvalConfig, data, where=str(path))
    r = resolve(cfg)
    assert r.modes and set(r.modes) <= {"think", "nothink"}
    if data.get("thinking") is False:  # YAML reads `off` as false
        assert r.modes == ("nothink",)
    if data.get("from_recipe"):
        assert r.template == load_yaml(REPO / data["from_recipe"])["template"]
