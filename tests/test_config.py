import dataclasses

import pytest

from llamafactory_ext.config import ConfigError, build, from_argv, load_config, split_argv


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
