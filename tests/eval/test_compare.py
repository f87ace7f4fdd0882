"""``llamafactory-ext compare``: base and base + adapter answer the same free prompts side by side
(compare.md, compare.jsonl), on the small tiny Qwen3 with the adapter trained in this session."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from llamafactory_ext.config import UserError
from llamafactory_ext.eval.compare import read_prompts


def _main(args):
    from llamafactory_ext.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def test_compare_base_and_tuned(tmp_path, small_model, small_adapter):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Parlami di Roma.\n\nChe cos'è la fotosintesi?\n", encoding="utf-8")
    out = tmp_path / "c"
    code, stdout, err = _main(["compare", f"model_name_or_path={small_model}", f"adapter_name_or_path={small_adapter}",
                               f"prompts_file={prompts}", "thinking=both", "max_new_tokens=4", "device=cpu", f"output_dir={out}"])
    assert code == 0, err
    assert f"compare: side-by-side generations in {out / 'compare.md'}" in stdout
    rows = [json.loads(x) for x in (out / "compare.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["mode"], r["prompt"]) for r in rows] == [
        ("0", "think", "Parlami di Roma."), ("0", "nothink", "Parlami di Roma."),
        ("1", "think", "Che cos'è la fotosintesi?"), ("1", "nothink", "Che cos'è la fotosintesi?")]
    assert all(isinstance(r["base"], str) and isinstance(r["tuned"], str) for r in rows)
    assert any(r["base"] != r["tuned"] for r in rows)  # the adapter changes what the model writes
    md = (out / "compare.md").read_text(encoding="utf-8")
    assert "temperature 0.6, top_p 0.95, max_new_tokens 4, seed 0" in md  # Qwen3's thinking-mode sampling by default
    assert f"`{small_model}` + `{small_adapter}`" in md
    assert md.count("| Base | Tuned |") == 4 and "## Prompt 1 · mode `nothink`" in md and "> Che cos'è la fotosintesi?" in md


def test_compare_needs_an_adapter_and_prompts(tmp_path, small_model):
    prompts = tmp_path / "p.txt"
    prompts.write_text("Ciao\n", encoding="utf-8")
    code, _, err = _main(["compare", f"model_name_or_path={small_model}", f"prompts_file={prompts}", f"output_dir={tmp_path / 'o'}"])
    assert code == 2 and "compare needs adapter_name_or_path" in err, err
    code, _, err = _main(["compare", f"model_name_or_path={small_model}", f"adapter_name_or_path={tmp_path}", f"output_dir={tmp_path / 'o'}"])
    assert code == 2 and "compare needs prompts_file=PATH" in err, err
    code, _, err = _main(["compare", f"prompts_file={prompts}", "max_new_token=3"])
    assert code == 2 and "unknown key 'max_new_token' (did you mean 'max_new_tokens'?)" in err, err


def test_read_prompts_formats(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"id": "x", "prompt": "Uno"}\n{"prompt": "Due"}\n', encoding="utf-8")
    assert read_prompts(str(tmp_path / "a.jsonl")) == [{"id": "x", "prompt": "Uno"}, {"id": "1", "prompt": "Due"}]
    (tmp_path / "b.json").write_text('["Uno", {"prompt": "Due", "id": 7}]', encoding="utf-8")
    assert read_prompts(str(tmp_path / "b.json")) == [{"id": "0", "prompt": "Uno"}, {"id": "7", "prompt": "Due"}]
    (tmp_path / "c.jsonl").write_text('{"prompt": ""}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"c\.jsonl: prompt 1: field 'prompt' missing or not a non-empty string"):
        read_prompts(str(tmp_path / "c.jsonl"))
    (tmp_path / "d.csv").write_text("x", encoding="utf-8")
    with pytest.raises(UserError, match="use .txt, .jsonl or .json"):
        read_prompts(str(tmp_path / "d.csv"))


def _direct(model_dir, adapter_dir, texts: dict, max_new_tokens: int) -> dict:
    """Greedy generation of each chat prompt, one at a time, straight through transformers (+ PEFT's
    merge for the adapter), up to the first stop token."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    stops = {tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")}
    out = {}
    for key, text in texts.items():
        ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
        with torch.inference_mode():
            new = model.eval().generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False,
                                        pad_token_id=tok.pad_token_id)[0, ids.shape[1]:].tolist()
        out[key] = tok.decode(new[: next((i for i, t in enumerate(new) if t in stops), len(new))], skip_special_tokens=True)
    return out


def test_compare_columns_are_the_base_and_the_adapter(tmp_path, small_model, small_adapter):
    """Greedy: each Base cell is the base model's own generation for that prompt and mode, each Tuned
    cell base + adapter's; swapped columns or modes fail."""
    prompts = ["Parlami di Roma.", "Che cos'è la fotosintesi?"]
    (tmp_path / "p.txt").write_text("\n".join(prompts) + "\n", encoding="utf-8")
    code, _, err = _main(["compare", f"model_name_or_path={small_model}", f"adapter_name_or_path={small_adapter}",
                          f"prompts_file={tmp_path / 'p.txt'}", "thinking=both", "max_new_tokens=6", "temperature=0",
                          "batch_size=1", "device=cpu", "dtype=float32", f"output_dir={tmp_path / 'c'}"])
    assert code == 0, err
    rows = [json.loads(x) for x in (tmp_path / "c" / "compare.jsonl").read_text(encoding="utf-8").splitlines()]
    # Qwen3's chat format: the thinking mode ends at the assistant header, the non-thinking one adds the empty block
    after = {"think": "", "nothink": "<think>\n\n</think>\n\n"}
    texts = {(r["prompt"], r["mode"]): f"<|im_start|>user\n{r['prompt']}<|im_end|>\n<|im_start|>assistant\n{after[r['mode']]}"
             for r in rows}
    assert sorted(texts) == sorted((p, m) for p in prompts for m in after)
    base, tuned = _direct(small_model, None, texts, 6), _direct(small_model, small_adapter, texts, 6)
    assert base != tuned  # the adapter changes some greedy answer, so a swap would show
    for r in rows:
        assert (r["base"], r["tuned"]) == (base[(r["prompt"], r["mode"])], tuned[(r["prompt"], r["mode"])]), r
