import dataclasses

import pytest

from llamafactory_ext.config import (
    ConfigError,
    build,
    format_value,
    from_argv,
    load_config,
    option,
    split_argv,
)
from llamafactory_ext.recipe_keys import check_recipe


@dataclasses.dataclass
class Opts:
    model: str = "m"
    rank: int = 8
    lr: float = 1e-4
    thinking: str = "both"
    flag: bool = False
    seeds: list[int] = dataclasses.field(default_factory=lambda: [42])
    maybe: int | None = None


def test_yaml_then_overrides_win(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: base\nrank: 4\nlr: 2.0e-4\n")
    opts = from_argv(Opts, [str(cfg), "rank=16", "flag=true", "seeds=[1,2,3]", "maybe=null"])
    assert opts == Opts(model="base", rank=16, lr=2e-4, flag=True, seeds=[1, 2, 3], maybe=None)


def test_same_override_syntax_as_llamafactory_cli():
    # llamafactory-cli merges OmegaConf.from_cli(argv) into the YAML; we do the same.
    from omegaconf import OmegaConf

    argv = ["lora_rank=16", "lora_target=q_proj,v_proj", "enable_thinking=null", "lr=5.0e-5"]
    assert load_config(None, argv) == OmegaConf.to_container(OmegaConf.from_cli(argv))


def test_unknown_key_is_named_with_suggestion():
    with pytest.raises(ConfigError, match=r"unknown key 'rnak'.*did you mean 'rank'"):
        build(Opts, {"rnak": 3}, where="x.yaml")


def test_bad_type_names_key():
    with pytest.raises(ConfigError, match="rank must be an integer"):
        build(Opts, {"rank": "many"})
    with pytest.raises(ConfigError, match="flag must be true or false"):
        build(Opts, {"flag": "perhaps"})


def test_split_argv_rejects_stray_words():
    assert split_argv(["a.yaml", "k=v"]) == ("a.yaml", ["k=v"])
    with pytest.raises(ConfigError, match="unexpected argument 'oops'"):
        split_argv(["a.yaml", "oops"])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(bad)


def test_dotted_override_merges_nested_mapping(tmp_path):
    cfg = tmp_path / "s.yaml"
    cfg.write_text("grid:\n  lora_rank: [8, 16]\n  learning_rate: [1.0e-4]\nfixed: {a: 1}\n")
    data = load_config(cfg, ["grid.lora_rank=[32]"])
    assert data["grid"] == {"lora_rank": [32], "learning_rate": [1e-4]} and data["fixed"] == {"a": 1}


def test_command_line_values_are_literal_and_yaml_interpolation_resolves(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: base\nout: ${name}_out\n")
    data = load_config(cfg, ["system=${HOME}", "other=${oops", "name=x"])
    assert data["system"] == "${HOME}" and data["other"] == "${oops"
    assert data["out"] == "x_out"  # the file's own reference sees the merged value, as OmegaConf.merge does


def test_bad_interpolation_in_a_file_names_the_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("a: ${missing}\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: cannot parse"):
        load_config(cfg)


@dataclasses.dataclass
class Ranged:
    batch: int = option(8, "batch", ge=1)
    temperature: float = option(0.0, "t", ge=0.0)
    ranks: list[int] = option([8], "ranks", ge=1)
    maybe: int | None = option(None, "n", ge=1)


@pytest.mark.parametrize("argv, key", [(["batch=0"], "batch"), (["batch=-3"], "batch"), (["temperature=-0.1"], "temperature"),
                                       (["ranks=[8,0]"], "ranks"), (["maybe=0"], "maybe")])
def test_out_of_range_values_name_the_key(argv, key):
    with pytest.raises(ConfigError, match=rf"command line: {key} must be >= "):
        from_argv(Ranged, argv)
    assert from_argv(Ranged, ["maybe=null"]).maybe is None


def test_format_value_round_trips_through_llamafactorys_reader(tmp_path, monkeypatch):
    """`llamafactory-cli train r.yaml k=TEXT` reads TEXT back with LLaMA-Factory's own read_args
    (OmegaConf.from_cli merged over the YAML, not resolved): every value comes back equal."""
    from llamafactory.hparams.parser import read_args

    recipe = tmp_path / "r.yaml"
    recipe.write_text("stage: sft\n")
    for value in (None, True, 8, 1e-4, 0.05, "q_proj,v_proj", [8, 16], "has space", "${x}", {"a": 1}):
        monkeypatch.setattr("sys.argv", ["llamafactory-cli", str(recipe), f"k={format_value(value)}"])
        assert read_args() == {"stage": "sft", "k": value}, value


def test_recipe_values_checked_like_llamafactory_parser():
    check_recipe({"lora_rank": 16, "learning_rate": 2e-4, "enable_thinking": None, "optim": "adamw_torch"}, "r.yaml")
    for values, message in (({"lora_rank": 0}, "lora_rank must be >= 1"), ({"learning_rate": "abc"}, "learning_rate must be a valid float"),
                            ({"lora_rnak": 8}, "did you mean 'lora_rank'"), ({"stage": "sftt"}, "stage must be one of")):
        with pytest.raises(ConfigError, match=message):
            check_recipe(values, "r.yaml")


def test_format_value_writes_dollar_braces_and_quotes_back_literally():
    from llamafactory_ext.config import format_value, parse_overrides

    for value in ["${HOME}", "it's ${x}/y", "'q'", '"dq"', "1e-4", "[x]", "line\nnext", ""]:
        assert parse_overrides([f"k={format_value(value)}"])["k"] == value, value


def test_a_value_yaml_cannot_read_is_one_line_not_a_traceback(capsys):
    from llamafactory_ext.cli import main

    assert main(["plan", "recipes/v3_mixed.yaml", 'lora_rank="${x}"']) == 2
    err = capsys.readouterr().err
    assert "command line" in err and "Traceback" not in err


@dataclasses.dataclass
class Italic:
    task: str = "italic"
    shots: int = 0


@dataclasses.dataclass
class Math:
    task: str = "italic"
    split: str = "test"


@dataclasses.dataclass
class Files:
    files: list = dataclasses.field(default_factory=list)
    task: str = "x"


def test_from_argv_picks_the_class_from_the_keys_and_reads_the_file_once(tmp_path, monkeypatch):
    from llamafactory_ext import config

    reads = []
    original = config._file_config
    monkeypatch.setattr(config, "_file_config", lambda path: reads.append(path) or original(path))
    cfg = tmp_path / "e.yaml"
    cfg.write_text("task: math\n")

    def pick(data):
        return Math if data.get("task") == "math" else Italic

    assert from_argv(pick, [str(cfg), "split=train"]) == Math(task="math", split="train")
    assert len(reads) == 1
    assert from_argv(pick, ["shots=5"]) == Italic(shots=5)
    with pytest.raises(ConfigError, match=r"^command line: unknown key 'shots'"):
        from_argv(pick, [str(cfg), "shots=5"])  # a key of the other class, typed: the command line is named
    cfg.write_text("task: math\nshots: 5\n")
    with pytest.raises(ConfigError, match=r"e.yaml: unknown key 'shots'"):
        from_argv(pick, [str(cfg)])  # in the file: the file is named
    cfg.write_text("task: math\nsplit: [a]\n")
    with pytest.raises(ConfigError, match=r"e.yaml: split must be a string"):
        from_argv(pick, [str(cfg)])
    with pytest.raises(ConfigError, match=r"^command line: split must be a string"):
        from_argv(pick, [str(cfg), "split=[b]"])


def test_from_argv_positional_values_after_a_config_file(tmp_path):
    from llamafactory_ext.config import argv_where

    cfg = tmp_path / "c.yaml"
    cfg.write_text("task: gsm8k\nfiles: [b.jsonl]\n")
    got = from_argv(Files, [str(cfg), "a.json", "task=italic"], positional="files", config_suffixes=(".yaml", ".yml"))
    assert got == Files(files=["a.json", "b.jsonl"], task="italic")
    # without config suffixes (or with a .json first) every value is positional
    assert from_argv(Files, ["a.json", "b.yaml"], positional="files").files == ["a.json", "b.yaml"]
    with pytest.raises(ConfigError, match="unknown flag '-x'"):
        from_argv(Files, ["a.json", "-x"], positional="files")
    assert argv_where([str(cfg), "k=v"]) == str(cfg) and argv_where(["k=v"]) == "command line"
