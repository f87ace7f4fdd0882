"""Inputs that used to end the evaluator in a traceback are one line with exit status 2: an ITALIC
answer "²" (a digit int() cannot read), a lone surrogate in a .json array, ``device=tpu``."""

from __future__ import annotations

import json

import pytest

from llamafactory_ext import cli
from llamafactory_ext.eval.engine import EngineError, resolve_device
from tests.helpers import ITALIC_SAMPLE, write_jsonl


@pytest.mark.parametrize("device", ["tpu", "xla", "cuda:x", "cpu:0", "cuda:²", "CUDA"])
def test_an_unknown_device_names_the_accepted_ones(device):
    with pytest.raises(EngineError, match=rf"device={device} is not a device this evaluator runs on; use auto, cpu, cuda, cuda:N"):
        resolve_device(device)
    assert resolve_device("cpu") == "cpu"


def _eval(capsys, small_model, source, tmp_path, *extra) -> str:
    code = cli.main(["eval", "task=italic", f"source={source}", f"model_name_or_path={small_model}",
                     f"output_dir={tmp_path / 'out'}", "max_new_tokens=2", "thinking=false", "progress=false", *extra])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("llamafactory-ext eval: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_bad_sources_and_devices_are_one_line_in_eval(capsys, small_model, tmp_path):
    rows = [dict(r) for r in ITALIC_SAMPLE]
    rows[1]["answer"] = "²"
    sup = write_jsonl(tmp_path / "italic.jsonl", rows)
    assert f"{sup}: line 2, field 'answer': '²' is not among the options A, C" in _eval(capsys, small_model, sup, tmp_path)

    text = json.dumps(ITALIC_SAMPLE[:3], ensure_ascii=False).replace("Divina Commedia", "Divina \\ud800Commedia")
    (tmp_path / "italic.json").write_text(text, encoding="utf-8")
    line = _eval(capsys, small_model, tmp_path / "italic.json", tmp_path)
    assert f"{tmp_path / 'italic.json'}: row 3, field 'question': holds a lone surrogate \\ud800 at question" in line

    good = write_jsonl(tmp_path / "good.jsonl", ITALIC_SAMPLE)
    line = _eval(capsys, small_model, good, tmp_path, "device=tpu")
    assert "device=tpu is not a device this evaluator runs on; use auto, cpu, cuda, cuda:N (a GPU index) or mps" in line
