"""Every shipped evaluator config (recipes/eval) parses through ``from_argv(eval.options.config_for, ...)`` exactly as the
command line reads it, names only known keys (the shared ones + its task's own), and resolves
(template, modes, system prompt) without loading a model; every compare config (recipes/compare)
parses through the compare command's own options. Each begins with the command that runs it."""

from __future__ import annotations

import dataclasses

import pytest

from llamafactory_ext.config import from_argv, load_yaml
from llamafactory_ext.eval.compare import CompareConfig, read_prompts
from llamafactory_ext.eval.options import config_for
from llamafactory_ext.eval.resolve import resolve
from llamafactory_ext.eval.tasks import task_class
from tests.helpers import REPO

EVAL_CONFIGS = sorted((REPO / "recipes" / "eval").glob("*.yaml"))
COMPARE_CONFIGS = sorted((REPO / "recipes" / "compare").glob("*.yaml"))


def test_there_are_configs():
    assert {"italic_zeroshot.yaml", "gsm8k.yaml", "italic_v3_vs_baseline.yaml", "italic_5shot.yaml"} <= {p.name for p in EVAL_CONFIGS}
    assert "wikipedia.yaml" in {p.name for p in COMPARE_CONFIGS}


@pytest.mark.parametrize("path", EVAL_CONFIGS, ids=lambda p: p.name)
def test_eval_config_parses_and_resolves(path, monkeypatch):
    monkeypatch.chdir(REPO)
    rel = path.relative_to(REPO)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#") and f"llamafactory-ext eval {rel}" in text  # the command that runs it
    data = load_yaml(path)
    cfg = from_argv(config_for, [str(rel)])
    for key, value in data.items():  # every key of the file arrives, typed
        if key != "thinking":
            assert getattr(cfg, key) == value or [getattr(cfg, key)] == value, key
    own = {f.name for f in dataclasses.fields(task_class(cfg.task).options)}
    assert own <= {f.name for f in dataclasses.fields(cfg)}
    if cfg.baseline:  # produced by an earlier run
        cfg.baseline = None
    r = resolve(cfg)
    assert r.modes and set(r.modes) <= {"think", "nothink"}
    if data.get("thinking") is False:  # YAML reads `off` as false
        assert r.modes == ("nothink",)
    if data.get("from_recipe"):
        assert r.template == load_yaml(REPO / data["from_recipe"])["template"]
    # an override on the command line wins over the file, through the same parser
    assert from_argv(config_for, [str(rel), "limit=7", "thinking=off"]).limit == 7


@pytest.mark.parametrize("path", COMPARE_CONFIGS, ids=lambda p: p.name)
def test_compare_config_parses(path, monkeypatch):
    monkeypatch.chdir(REPO)
    rel = path.relative_to(REPO)
    assert f"llamafactory-ext compare {rel}" in path.read_text(encoding="utf-8")
    cfg = from_argv(CompareConfig, [str(rel)])
    assert cfg.model_name_or_path and cfg.adapter_name_or_path
    assert read_prompts(cfg.prompts_file)  # the shipped prompts file exists and reads
