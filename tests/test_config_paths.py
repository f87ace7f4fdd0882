"""The path rule of our own config files: a field declared ``option(..., path=True)`` (or with the keys
inside it) is relative to the config file's folder when the file says it, relative to the working folder
when the command line says it; every other path (data, models, outputs) stays as written."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from llamafactory_ext.config import from_argv, load_yaml, option, path_values
from llamafactory_ext.shipped import shipped_root


@dataclasses.dataclass
class Conf:
    base: str | None = option(None, "a recipe", path=True)
    eval: Any = option(None, "{config: X.yaml, overrides: {...}}", path=("config",))
    versions: list = option([], "[{name, recipe}]", path=("recipe",))
    files: list = option([], "several files", path=True)
    output_dir: str = option("out", "an output folder: not a path field")


CONF = """\
base: ../v3_mixed.yaml
eval: {config: ../eval/italic.yaml, overrides: {limit: 5, source: data/x.jsonl}}
versions:
  - {name: V1, recipe: ../v1.yaml}
  - {name: V2, recipe: /abs/v2.yaml}
files: [a.txt, sub/b.txt]
output_dir: saves/x
"""


@pytest.fixture
def conf(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes" / "studies").mkdir(parents=True)
    (tmp_path / "recipes" / "studies" / "s.yaml").write_text(CONF)
    return "recipes/studies/s.yaml"


def test_paths_in_a_file_are_relative_to_its_folder(conf):
    cfg = from_argv(Conf, [conf])
    assert cfg.base == "recipes/v3_mixed.yaml"
    assert cfg.eval == {"config": "recipes/eval/italic.yaml", "overrides": {"limit": 5, "source": "data/x.jsonl"}}
    assert [v["recipe"] for v in cfg.versions] == ["recipes/v1.yaml", "/abs/v2.yaml"]  # absolute: as written
    assert cfg.files == ["recipes/studies/a.txt", "recipes/studies/sub/b.txt"]
    assert cfg.output_dir == "saves/x"  # outputs, data, models: the working folder, as LLaMA-Factory reads them


def test_paths_on_the_command_line_are_relative_to_the_working_folder(conf):
    cfg = from_argv(Conf, [conf, "base=my.yaml", "eval.config=e.yaml", "versions=[{name: V9, recipe: r.yaml}]"])
    assert (cfg.base, cfg.eval["config"], cfg.versions[0]["recipe"]) == ("my.yaml", "e.yaml", "r.yaml")
    # an override of another key inside the same section leaves the file's path rebased
    cfg = from_argv(Conf, [conf, "eval.overrides.limit=7"])
    assert cfg.eval == {"config": "recipes/eval/italic.yaml", "overrides": {"limit": 7, "source": "data/x.jsonl"}}


def test_a_config_given_by_absolute_path_gives_paths_from_the_working_folder_when_inside_it(conf, tmp_path):
    assert from_argv(Conf, [str(tmp_path / conf)]).base == "recipes/v3_mixed.yaml"
    outside = tmp_path.parent / f"{tmp_path.name}-other" / "c.yaml"
    outside.parent.mkdir()
    outside.write_text("base: r.yaml\n")
    assert from_argv(Conf, [str(outside)]).base == str(outside.parent / "r.yaml")


def test_help_says_which_keys_are_paths():
    from llamafactory_ext.config import describe

    lines = {line.split()[0]: line for line in describe(Conf).splitlines()}
    assert "relative to that file's folder" in lines["base"] and "relative" not in lines["output_dir"]


SHIPPED_CONFIGS = {  # every shipped config with path fields, and the files it names (read by hand)
    "recipes/studies/format.yaml": {"recipes/v1_nothink.yaml", "recipes/v2_think.yaml", "recipes/v3_mixed.yaml",
                                    "recipes/eval/italic_zeroshot.yaml"},
    "recipes/sweeps/lora_rank.yaml": {"recipes/v3_mixed.yaml", "recipes/eval/italic_zeroshot.yaml"},
    "recipes/eval/italic_v3_vs_baseline.yaml": {"recipes/v3_mixed.yaml"},
    "recipes/compare/wikipedia.yaml": {"recipes/compare/prompts_it.txt"},
}


@pytest.mark.parametrize("rel", sorted(SHIPPED_CONFIGS))
def test_the_shipped_configs_name_their_files_relative_to_themselves(rel):
    from llamafactory_ext.recipes import kind_class

    root = shipped_root()
    src = root / rel
    named = {str((src.parent / p).resolve().relative_to(root.resolve())) for p in path_values(kind_class(src.relative_to(root)), load_yaml(src))}
    assert named == SHIPPED_CONFIGS[rel]
    assert all((root / n).is_file() for n in named)


def test_no_other_shipped_config_names_a_file():
    from llamafactory_ext.recipes import kind_class

    root = shipped_root()
    for src in sorted((root / "recipes").rglob("*.yaml")):
        rel = src.relative_to(root)
        cls = kind_class(rel)
        if cls is not None and str(rel) not in SHIPPED_CONFIGS:
            assert path_values(cls, load_yaml(src)) == [], rel
