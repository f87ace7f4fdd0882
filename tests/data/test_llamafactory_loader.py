"""Every prepared sample loads through LLaMA-Factory's OWN data loader (``get_dataset`` with the
top-level dataset_info.json) and the tiny Qwen3-id tokenizer; assertions on the encoded tokens.

- ``qwen3`` (enable_thinking true): traces are trained, think tags included;
- ``qwen3`` with ``enable_thinking: null`` and ``false``: a row without a trace gets the empty
  think block appended to the *prompt*, masked (Qwen3's non-thinking format);
- ``qwen3_nothink``: no think block anywhere;
- ``wikipedia_it`` under ``stage: pt``: the article text followed by EOS;
- a ``prepare`` output folder is a ``dataset_dir`` as it is (its own dataset_info.json), and a
  ``dataset_info=PATH`` file works with ``dataset_dir`` = PATH's folder.

Speed: ``datasets`` fingerprints every ``map`` by dill-pickling its arguments, which include the
151k-token tokenizer (~15 s per call on the CI CPU). The fixture replaces only that cache key by
a random one (``update_fingerprint``); LLaMA-Factory's loading, alignment,
templates and tokenization run unchanged (``overwrite_cache`` is on anyway).
"""

from __future__ import annotations

import pytest

from tests.helpers import random_fingerprints, read_jsonl

THINK, END_THINK = 151667, 151668
EMPTY_THINK = "<think>\n\n</think>\n\n"


@pytest.fixture(scope="module")
def lf_load(samples_dataset_dir, tiny_model, tmp_path_factory):
    with random_fingerprints():
        yield from _lf_load(samples_dataset_dir, tiny_model, tmp_path_factory)


def _lf_load(samples_dataset_dir, tiny_model, tmp_path_factory):
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments, ModelArguments
    from transformers import AutoTokenizer, Seq2SeqTrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    out = tmp_path_factory.mktemp("lf-out")

    def load(dataset: str, template: str, enable_thinking, stage: str = "sft", dataset_dir=None):
        data_args = DataArguments(dataset=dataset, dataset_dir=str(dataset_dir or samples_dataset_dir), template=template,
                                  enable_thinking=enable_thinking, cutoff_len=4096, overwrite_cache=True)
        model_args = ModelArguments(model_name_or_path=str(tiny_model))
        training_args = Seq2SeqTrainingArguments(output_dir=str(out), report_to="none", seed=42)
        tpl = get_template_and_fix_tokenizer(tokenizer, data_args)
        module = get_dataset(tpl, model_args, data_args, training_args, stage=stage, tokenizer=tokenizer)
        return module["train_dataset"]

    yield load, tokenizer


def _split(example, tokenizer):
    ids, labels = example["input_ids"], example["labels"]
    assert len(ids) == len(labels)
    n_prompt = next(i for i, label in enumerate(labels) if label != -100)
    assert all(label == -100 for label in labels[:n_prompt])
    assert labels[n_prompt:] == ids[n_prompt:]  # one turn: everything after the prompt is trained
    return (tokenizer.decode(ids[:n_prompt], skip_special_tokens=False),
            tokenizer.decode(ids[n_prompt:], skip_special_tokens=False), ids[n_prompt:])


def _rows(ds_dir, *names):
    return [r for name in names for r in read_jsonl(ds_dir / "data" / f"{name}.jsonl")]


def test_traces_are_trained_under_qwen3(lf_load, samples_dataset_dir):
    load, tok = lf_load
    names = ("multit_think", "synth_gsm8k", "gsm8k")
    ds = load(",".join(names), "qwen3", True)
    rows = _rows(samples_dataset_dir, *names)
    assert len(ds) == len(rows)
    for example, row in zip(ds, rows):
        prompt, trained, trained_ids = _split(example, tok)
        assistant = row["messages"][-1]["content"]
        assert assistant.startswith("<think>\n")
        assert prompt.endswith(f"{row['messages'][-2]['content']}<|im_end|>\n<|im_start|>assistant\n")
        assert trained == assistant + "<|im_end|>\n"
        assert trained_ids[0] == THINK and END_THINK in trained_ids


def test_mixed_rows_under_enable_thinking_null(lf_load, samples_dataset_dir):
    load, tok = lf_load
    ds = load("multit_mixed", "qwen3", None)
    rows = _rows(samples_dataset_dir, "multit_mixed")
    assert len(ds) == len(rows)
    kinds = set()
    for example, row in zip(ds, rows):
        prompt, trained, trained_ids = _split(example, tok)
        assistant = row["messages"][-1]["content"]
        assert prompt.startswith("<|im_start|>system\nSei un assistente utile.<|im_end|>\n<|im_start|>user\n")
        if assistant.startswith("<think>"):
            kinds.add("think")
            assert prompt.endswith("<|im_start|>assistant\n") and trained == assistant + "<|im_end|>\n"
        else:
            kinds.add("plain")
            assert prompt.endswith("<|im_start|>assistant\n" + EMPTY_THINK)  # masked empty block
            assert trained == assistant + "<|im_end|>\n" and THINK not in trained_ids
    assert kinds == {"think", "plain"}


def test_nothink_rows_under_enable_thinking_false(lf_load, samples_dataset_dir):
    load, tok = lf_load
    ds = load("multit_nothink", "qwen3", False)
    rows = _rows(samples_dataset_dir, "multit_nothink")
    for example, row in zip(ds, rows):
        prompt, trained, trained_ids = _split(example, tok)
        assert prompt.endswith(f"<|im_end|>\n<|im_start|>assistant\n{EMPTY_THINK}")
        assert trained == row["messages"][-1]["content"] + "<|im_end|>\n"
        assert THINK not in trained_ids and END_THINK not in trained_ids
    assert len(ds) == len(rows)


def test_qwen3_nothink_adds_no_think_block(lf_load, samples_dataset_dir):
    load, tok = lf_load
    ds = load("multit_nothink", "qwen3_nothink", True)
    rows = _rows(samples_dataset_dir, "multit_nothink")
    assert len(ds) == len(rows)
    for example, row in zip(ds, rows):
        prompt, trained, _ = _split(example, tok)
        assert THINK not in example["input_ids"] and END_THINK not in example["input_ids"]
        assert prompt.endswith("<|im_start|>assistant\n")
        assert trained == row["messages"][-1]["content"] + "<|im_end|>\n"


def test_wikipedia_it_loads_for_pretraining(lf_load, samples_dataset_dir):
    load, tok = lf_load
    ds = load("wikipedia_it", "qwen3", True, stage="pt")
    rows = _rows(samples_dataset_dir, "wikipedia_it")
    assert len(ds) == len(rows)
    for example, row in zip(ds, rows):
        assert tok.decode(example["input_ids"], skip_special_tokens=False) == row["text"] + "<|im_end|>"


def test_prepare_out_dir_is_a_dataset_dir(lf_load, tmp_path):
    """`prepare NAME out_dir=OUT_DIR dataset_info=OUT_DIR/dataset_info.json` then `dataset_dir: OUT_DIR`:
    LLaMA-Factory finds both splits."""
    from llamafactory_ext.data import get_spec
    from llamafactory_ext.data.prepare import options_class, run
    from llamafactory_ext.data.samples import SAMPLES_DIR

    load, tok = lf_load
    out = tmp_path / "some" / "dir" / "x"
    m = run("multit_nothink", options_class(get_spec("multit_nothink"))(source=str(SAMPLES_DIR / "multit_quiz.json"), out_dir=str(out),
                                                                          val_size=0.2, dataset_info=str(out / "dataset_info.json")), quiet=True)
    for name, n in (("multit_nothink", m["rows"]["train"]), ("multit_nothink_val", m["rows"]["val"])):
        ds = load(name, "qwen3", False, dataset_dir=out)
        rows = read_jsonl(out / f"{name}.jsonl")
        assert len(ds) == len(rows) == n > 0
        assert _split(ds[0], tok)[1] == rows[0]["messages"][-1]["content"] + "<|im_end|>\n"
    # dataset_info=PATH elsewhere: names relative to PATH's folder, or absolute when outside it
    info = tmp_path / "ds" / "dataset_info.json"
    opts = options_class(get_spec("wikipedia_it"))
    run("wikipedia_it", opts(source=str(SAMPLES_DIR / "wikipedia_it.jsonl"), out_dir=str(tmp_path / "ds" / "pt"), dataset_info=str(info)),
        quiet=True)
    run("multit_nothink", options_class(get_spec("multit_nothink"))(source=str(SAMPLES_DIR / "multit_quiz.json"),
                                                                      out_dir=str(tmp_path / "far"), dataset_info=str(info)), quiet=True)
    assert len(load("wikipedia_it", "qwen3", True, stage="pt", dataset_dir=info.parent)) == m_rows(tmp_path / "ds" / "pt", "wikipedia_it")
    assert len(load("multit_nothink", "qwen3", False, dataset_dir=info.parent)) == m_rows(tmp_path / "far", "multit_nothink")


def m_rows(folder, name: str) -> int:
    return len(read_jsonl(folder / f"{name}.jsonl"))
