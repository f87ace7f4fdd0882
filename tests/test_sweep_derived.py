"""A sweep's ``derived`` expressions are bounded: an enormous power, a huge text or a value that is
not a finite number is one line naming the key, before any trial starts (``**`` used to run
unbounded: ``10 ** 5000`` or ``2 ** 2 ** 40`` took the machine's time and memory)."""

from __future__ import annotations

import pytest

from llamafactory_ext.cli import main
from llamafactory_ext.sweep import SweepError
from llamafactory_ext.sweep.config import eval_expression

BASE = "stage: sft\ndo_train: true\nfinetuning_type: lora\nlora_rank: 4\nlora_target: all\ndataset: multit_mixed\n" \
       "template: qwen3\nlearning_rate: 1.0e-3\noutput_dir: saves/ignored\n"


@pytest.mark.parametrize("expr, message", [
    ("10 ** 5000", "exponent 5000 is too large (at most 64)"),
    ("2 ** 2 ** 40", "exponent 1099511627776 is too large"),
    ("(10 ** 60) ** 60", "the power is too large (more than 256 bits)"),
    ("(2 ** 60) * (2 ** 60) * (2 ** 60) * (2 ** 60) * (2 ** 60)", "the value is too large (more than 256 bits)"),
    ("str(lora_rank) * 10 ** 9", "the text would be 1000000000 characters long (at most 10000)"),
    ("round(lora_rank, -10 ** 9)", "round() to -1000000000 digits (at most 400)"),
    ("1e300 * 1e300", "the value is inf, not a finite real number"),
    ("(-8) ** 0.5", "not a finite real number"),
    ("10.0 ** -400", "exponent -400 is too large"),
    ("1e300 ** 2", "OverflowError"),
    ("lora_rank / 0", "ZeroDivisionError"),
    ("'a' - lora_rank", "TypeError"),
])
def test_enormous_or_broken_values_name_the_key(expr, message):
    with pytest.raises(SweepError) as err:
        eval_expression(expr, {"lora_rank": 8}, "lora_alpha")
    assert str(err.value).startswith(f"derived.lora_alpha: {expr!r}: ") and message in str(err.value)


def test_ordinary_expressions_still_work():
    assert eval_expression("2 ** 10", {}, "x") == 1024
    assert eval_expression("lora_rank ** 2 / 4", {"lora_rank": 8}, "x") == 16
    assert eval_expression("1e-4 * 2 ** -3", {}, "x") == 1.25e-05
    assert eval_expression("str(lora_rank) * 3", {"lora_rank": 8}, "x") == "888"


def test_the_command_stops_before_any_trial_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "s.yaml").write_text("base: base.yaml\noutput_dir: out\ngrid:\n  lora_rank: [8]\nderived:\n  lora_alpha: 10 ** 5000\n")
    assert main(["sweep", "s.yaml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["llamafactory-ext sweep: error: s.yaml: derived.lora_alpha: '10 ** 5000': exponent 5000 is too large (at most 64)"]
    assert not (tmp_path / "out").exists()
