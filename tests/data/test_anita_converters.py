"""The LLaMA-3 half's converters (LLaMAntino-3-ANITA): ``wizard_alpaca_dolly_orca`` (SFT),
``orpo_dpo_mix`` and ``preference`` (DPO pairs), ``clean_mc4_it`` (Italian stage-pt text), each
through ``prepare.run`` on rows shaped like the published data sets, good and bad; the pairwise
files are read back by LLaMA-Factory's own loader (``get_dataset`` as the DPO workflow calls it,
template ``llama3``, the tiny LLaMA-3 with Llama-3's real ids)."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

from llamafactory_ext.config import UserError
from llamafactory_ext.data import get_spec
from llamafactory_ext.data.fields import RowError
from llamafactory_ext.data.prepare import options_class, run
from llamafactory_ext.data.samples import SAMPLES_DIR
from tests.helpers import random_fingerprints, read_jsonl, write_italic_sample, write_jsonl

BOM = b"\xef\xbb\xbf"


def prep(name: str, tmp_path, sub: str = "out", **kwargs):
    """prepare NAME with the data set's own options class; returns (manifest, output rows)."""
    out = tmp_path / sub
    m = run(name, options_class(get_spec(name))(out_dir=str(out), register=False, **kwargs), quiet=True)
    return m, read_jsonl(out / f"{name}.jsonl")


def sample(name: str) -> list[dict]:
    return read_jsonl(SAMPLES_DIR / f"{name}.jsonl")


def bad_run(name: str, tmp_path, rows: list) -> RowError:
    """The RowError of a source whose 2nd row is bad (fail mode); the outputs stay absent."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    src = write_jsonl(tmp_path / "src.jsonl", rows)
    with pytest.raises(RowError) as err:
        prep(name, tmp_path, source=str(src))
    assert not (tmp_path / "out" / f"{name}.jsonl").exists()
    assert err.value.file == str(src) and str(src) in str(err.value)
    return err.value


def skip_run(name: str, tmp_path, good: dict, bads: list[tuple]) -> None:
    """on_error=skip: every bad row lands in NAME.rejects.jsonl with line, field and reason;
    the good rows (one after each bad one) are written and the manifest counts both."""
    lines: list = [good]
    for bad, _, _ in bads:
        lines += [bad, good]
    src = write_jsonl(tmp_path / "src.jsonl", lines)
    m, rows = prep(name, tmp_path, sub="skip", source=str(src), on_error="skip", dedup=False)
    assert m["rows"]["read"] == len(lines) and m["rows"]["rejected"] == len(bads)
    assert len(rows) == m["rows"]["written"] == len(bads) + 1
    rejects = read_jsonl(tmp_path / "skip" / f"{name}.rejects.jsonl")
    assert [(r["line"], r["field"], r["reason"]) for r in rejects] == [(2 + 2 * i, f, r) for i, (_, f, r) in enumerate(bads)]
    assert all(r["file"] == str(src) and r["error"] for r in rejects)


# ------------------------------------------------------------------------------------------------
# wizard_alpaca_dolly_orca
# ------------------------------------------------------------------------------------------------
def test_wizard_rows_on_the_published_layout(tmp_path):
    src = sample("wizard_alpaca_dolly_orca")
    assert any("system" not in r for r in src) and any(r.get("system") for r in src)  # both layouts
    assert any(r["input"] is None for r in src) and any(r["input"] for r in src)
    m, rows = prep("wizard_alpaca_dolly_orca", tmp_path, source=str(SAMPLES_DIR / "wizard_alpaca_dolly_orca.jsonl"))
    assert m["dropped"] == {"duplicate_row": 1} and len(rows) == len(src) - 1 == m["rows"]["written"]
    for row, s in zip(rows, src):
        msgs = row["messages"]
        if s.get("system"):
            assert msgs[0] == {"role": "system", "content": s["system"]}
            msgs = msgs[1:]
        else:
            assert all(x["role"] != "system" for x in msgs)
        user = s["instruction"] + ("\n\n" + s["input"] if s["input"] else "")
        assert msgs == [{"role": "user", "content": user}, {"role": "assistant", "content": s["output"]}]
    assert rows[1]["messages"][0]["content"] == "Translate the sentence into Italian.\n\nThe cat sleeps on the sofa."
    assert m["converter"]["rows_with_system"] == sum(bool(s.get("system")) for s in src[:-1])
    m2, rows2 = prep("wizard_alpaca_dolly_orca", tmp_path, sub="all", source=str(SAMPLES_DIR / "wizard_alpaca_dolly_orca.jsonl"),
                     dedup=False)
    assert len(rows2) == len(src) and m2["dropped"] == {}


WIZ_GOOD = {"system": "", "instruction": "Say hi.", "input": "", "output": "Hi!"}
WIZ_BAD = [
    ({"system": "", "input": "", "output": "x"}, "instruction", "missing_field"),
    ({"system": "", "instruction": "Say hi.", "input": ""}, "output", "missing_field"),
    ({"system": "", "instruction": "Say hi.", "input": "", "output": 42}, "output", "wrong_type"),
    ({"system": "", "instruction": "  ", "input": "", "output": "x"}, "instruction", "empty"),
    ({"system": "", "instruction": "Say hi.", "input": "", "output": ""}, "output", "empty"),
    ({"system": "", "instruction": "Say hi.", "input": ["a"], "output": "x"}, "input", "wrong_type"),
    ({"system": 3, "instruction": "Say hi.", "input": "", "output": "x"}, "system", "wrong_type"),
    (b'{"instruction": "perch\xe9?", "input": "", "output": "x"}\n', None, "invalid_utf8"),
    (b'{"instruction": "rotto", \n', None, "invalid_json"),
]


# ------------------------------------------------------------------------------------------------
# orpo_dpo_mix and preference: LLaMA-Factory's pairwise layout
# ------------------------------------------------------------------------------------------------
def test_orpo_dpo_mix_rows(tmp_path):
    src = sample("orpo_dpo_mix")
    assert {"source", "chosen", "rejected"} <= set(src[0]) and any("prompt" in r and "question" in r for r in src)
    m, rows = prep("orpo_dpo_mix", tmp_path, source=str(SAMPLES_DIR / "orpo_dpo_mix.jsonl"))
    kept = [s for s in src if s["chosen"][-1]["content"] != s["rejected"][-1]["content"]]
    assert m["dropped"] == {"identical_pair": len(src) - len(kept)} and len(rows) == len(kept) > 4
    for row, s in zip(rows, kept):
        assert set(row) == {"messages", "chosen", "rejected"}
        assert row["messages"] == s["chosen"][:-1] == s["rejected"][:-1]
        assert row["chosen"] == s["chosen"][-1] and row["rejected"] == s["rejected"][-1]
        assert row["chosen"]["role"] == row["rejected"]["role"] == "assistant"
        assert row["messages"][-1]["role"] == "user"
    assert any(r["messages"][0]["role"] == "system" for r in rows)  # a system turn stays first in messages
    assert max(len(r["messages"]) for r in rows) == 3  # the multi-turn prompt keeps its earlier exchange
    per_source = m["converter"]["pairs_per_source"]
    assert sum(per_source.values()) == len(rows) and per_source["argilla/distilabel-capybara-dpo-7k-binarized"] == 1
    assert m["stage"] == "rm"


def _msg(role, content):
    return {"role": role, "content": content}


ORPO_GOOD = {"source": "s", "chosen": [_msg("user", "2+2?"), _msg("assistant", "4")],
             "rejected": [_msg("user", "2+2?"), _msg("assistant", "5")]}
ORPO_BAD = [
    ({"source": "s", "chosen": ORPO_GOOD["chosen"], "rejected": [_msg("assistant", "5"), _msg("user", "2+2?")]},
     "rejected", "not_assistant_last"),
    ({"source": "s", "rejected": ORPO_GOOD["rejected"]}, "chosen", "missing_field"),
    ({"source": "s", "chosen": "4", "rejected": ORPO_GOOD["rejected"]}, "chosen", "wrong_type"),
    ({"source": "s", "chosen": [], "rejected": ORPO_GOOD["rejected"]}, "chosen", "empty"),
    ({"source": "s", "chosen": [{"role": "user"}, _msg("assistant", "4")], "rejected": ORPO_GOOD["rejected"]}, "chosen", "wrong_type"),
    ({"source": "s", "chosen": [_msg("tool", "x"), _msg("assistant", "4")], "rejected": ORPO_GOOD["rejected"]}, "chosen", "bad_role"),
    ({"source": "s", "chosen": [_msg("user", "a"), _msg("user", "b"), _msg("assistant", "4")],
      "rejected": [_msg("user", "a"), _msg("user", "b"), _msg("assistant", "5")]}, "chosen", "bad_turn_order"),
    ({"source": "s", "chosen": ORPO_GOOD["chosen"], "rejected": [_msg("user", "3+3?"), _msg("assistant", "5")]},
     "rejected", "prompt_mismatch"),
    ({"source": "s", "chosen": [_msg("user", "2+2?"), _msg("assistant", " ")], "rejected": ORPO_GOOD["rejected"]}, "chosen", "empty"),
    (b'{"source": "s", "chosen": [{"role": "user", "content": "perch\xe9?"}]}\n', None, "invalid_utf8"),
]


BAD_CASES = [("wizard_alpaca_dolly_orca", WIZ_GOOD, *c) for c in WIZ_BAD] + [("orpo_dpo_mix", ORPO_GOOD, *c) for c in ORPO_BAD]


@pytest.mark.parametrize("name,good,bad,field,reason", BAD_CASES, ids=[f"{c[0]}-{c[4]}-{c[3]}" for c in BAD_CASES])
def test_a_bad_row_names_file_line_field(tmp_path, name, good, bad, field, reason):
    e = bad_run(name, tmp_path, [good, bad, good])
    assert (e.row, e.field, e.reason) == (2, field, reason)


@pytest.mark.parametrize("name,good,bads,second,answer,expected", [
    ("wizard_alpaca_dolly_orca", WIZ_GOOD, WIZ_BAD, {**WIZ_GOOD, "output": "Ciao!"},
     lambda r: r["messages"][-1]["content"], ["Hi!", "Ciao!"]),
    ("orpo_dpo_mix", ORPO_GOOD, ORPO_BAD, {**ORPO_GOOD, "rejected": [_msg("user", "2+2?"), _msg("assistant", "22")]},
     lambda r: (r["messages"], r["chosen"], r["rejected"]["content"]),
     [([_msg("user", "2+2?")], _msg("assistant", "4"), "5"), ([_msg("user", "2+2?")], _msg("assistant", "4"), "22")]),
], ids=["wizard_alpaca_dolly_orca", "orpo_dpo_mix"])
def test_skip_keeps_the_good_rows_and_a_bom_is_read(tmp_path, name, good, bads, second, answer, expected):
    skip_run(name, tmp_path, good, bads)
    # a file saved by a Windows editor: UTF-8 byte order mark before the first row
    src = tmp_path / "bom.jsonl"
    src.write_bytes(BOM + json.dumps(good).encode() + b"\n" + json.dumps(second).encode() + b"\n")
    _, rows = prep(name, tmp_path, sub="bom", source=str(src))
    assert [answer(r) for r in rows] == expected


def test_preference_rows_and_bad_rows(tmp_path):
    src = sample("preference")
    m, rows = prep("preference", tmp_path, source=str(SAMPLES_DIR / "preference.jsonl"))
    assert m["dropped"] == {"duplicate_pair": 1} and len(rows) == len(src) - 1
    for row, s in zip(rows, src):
        system = [_msg("system", s["system"])] if s.get("system") else []
        assert row == {"messages": [*system, _msg("user", s["prompt"])], "chosen": _msg("assistant", s["chosen"]),
                       "rejected": _msg("assistant", s["rejected"])}
    good = {"prompt": "p", "chosen": "a", "rejected": "b"}
    bads = [({"prompt": "p", "rejected": "b"}, "chosen", "missing_field"), ({"prompt": "p", "chosen": "a", "rejected": 2}, "rejected", "wrong_type"),
            ({"prompt": "", "chosen": "a", "rejected": "b"}, "prompt", "empty"), ({**good, "system": ["x"]}, "system", "wrong_type")]
    for i, (bad, field, reason) in enumerate(bads):
        e = bad_run("preference", tmp_path / str(i), [good, bad])
        assert (e.row, e.field, e.reason) == (2, field, reason)
    m, rows = prep("preference", tmp_path, sub="same", source=str(write_jsonl(tmp_path / "same.jsonl", [good, {**good, "rejected": "a"}])))
    assert m["dropped"] == {"identical_pair": 1} and len(rows) == 1


def test_pairwise_dataset_info_entry_is_what_llamafactory_parses(tmp_path):
    from llamafactory.data.parser import get_dataset_list

    entry = get_spec("orpo_dpo_mix").dataset_info_entry("data/orpo_dpo_mix.jsonl")
    assert entry == get_spec("preference").dataset_info_entry("data/orpo_dpo_mix.jsonl")
    (tmp_path / "dataset_info.json").write_text(json.dumps({"orpo_dpo_mix": entry}))
    attr = get_dataset_list(["orpo_dpo_mix"], str(tmp_path))[0]
    assert (attr.load_from, attr.formatting, attr.ranking) == ("file", "sharegpt", True)
    assert (attr.messages, attr.chosen, attr.rejected) == ("messages", "chosen", "rejected")
    assert (attr.role_tag, attr.content_tag, attr.user_tag, attr.assistant_tag, attr.system_tag) == (
        "role", "content", "user", "assistant", "system")


@pytest.fixture(scope="module")
def lf_pairs(tmp_path_factory, tiny_llama3):
    """orpo_dpo_mix + preference prepared from the samples and loaded by LLaMA-Factory exactly as its
    DPO workflow does (``get_dataset(..., stage="rm")``: pairwise processor), template llama3."""
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments, ModelArguments
    from transformers import AutoTokenizer, Seq2SeqTrainingArguments

    from llamafactory_ext.data.samples import prepare_samples

    ds_dir = prepare_samples(tmp_path_factory.mktemp("pairs"), names=["orpo_dpo_mix", "preference"])
    tok = AutoTokenizer.from_pretrained(str(tiny_llama3))
    data_args = DataArguments(dataset="orpo_dpo_mix,preference", dataset_dir=str(ds_dir), template="llama3", cutoff_len=1024,
                              overwrite_cache=True)
    template = get_template_and_fix_tokenizer(tok, data_args)

    with random_fingerprints():  # datasets would dill-hash the 128k tokenizer per map (slow)
        module = get_dataset(template, ModelArguments(model_name_or_path=str(tiny_llama3)), data_args,
                             Seq2SeqTrainingArguments(output_dir=str(tmp_path_factory.mktemp("lf")), report_to="none"),
                             stage="rm", tokenizer=tok)
    rows = read_jsonl(ds_dir / "data" / "orpo_dpo_mix.jsonl") + read_jsonl(ds_dir / "data" / "preference.jsonl")
    return module["train_dataset"], rows, tok


def test_llamafactory_loads_the_pairs_with_llama3_ids(lf_pairs):
    ds, rows, tok = lf_pairs
    assert len(ds) == len(rows)  # LLaMA-Factory skipped none ("Skipping this abnormal example" would drop a pair)
    def word(text: str) -> list[int]:
        return tok.encode(text, add_special_tokens=False)

    for ex, row in zip(ds, rows):
        prompt = [128000]  # <|begin_of_text|>
        for m in row["messages"]:
            prompt += [128006, *word(m["role"]), 128007, *word("\n\n" + m["content"]), 128009]
        prompt += [128006, *word("assistant"), 128007, *word("\n\n")]
        for side in ("chosen", "rejected"):
            answer = [*word(row[side]["content"]), 128009]  # <|eot_id|> closes the answer and is trained
            assert ex[f"{side}_input_ids"] == prompt + answer
            assert ex[f"{side}_labels"] == [-100] * len(prompt) + answer
        assert ex["chosen_input_ids"] != ex["rejected_input_ids"]
    with_system = next(ex for ex, row in zip(ds, rows) if row["messages"][0]["role"] == "system")
    assert tok.decode(with_system["chosen_input_ids"][:4]) == "<|begin_of_text|><|start_header_id|>system<|end_header_id|>"


# ------------------------------------------------------------------------------------------------
# clean_mc4_it: streamed Italian web text for stage pt
# ------------------------------------------------------------------------------------------------
def test_clean_mc4_it_light_cleaning(tmp_path):
    src = sample("clean_mc4_it")
    assert set(src[0]) == {"text", "timestamp", "url"}
    m, rows = prep("clean_mc4_it", tmp_path, source=str(SAMPLES_DIR / "clean_mc4_it.jsonl"))
    assert m["dropped"] == {"empty": 1, "too_short": 1} and m["rows"]["written"] + 2 == len(src) == m["rows"]["read"]
    assert all(set(r) == {"text"} for r in rows)
    for row in rows:
        text = row["text"]
        assert len(text) >= 200 and text == text.strip() and "\r" not in text and "\n\n\n" not in text
        assert not any(line != line.rstrip() for line in text.split("\n"))
    pasta = next(r["text"] for r in rows if r["text"].startswith("Pasta al pomodoro"))
    assert "ricetta semplice.\n\nIngredienti" in pasta and "sale.\n\nScaldate" in pasta
    assert "\r" in next(s["text"] for s in src if s["text"].startswith("Pasta"))  # the source had CRLF and blank runs


def test_clean_mc4_it_reads_json_gz_shards_and_lists(tmp_path):
    """The published shards are gzipped JSON lines named c4-it.tfrecord-NNNNN-of-01024.json.gz."""
    raw = (SAMPLES_DIR / "clean_mc4_it.jsonl").read_bytes()
    shard = tmp_path / "c4-it.tfrecord-00000-of-01024.json.gz"
    shard.write_bytes(gzip.compress(raw))
    shard2 = tmp_path / "c4-it.tfrecord-00001-of-01024.json.gz"
    shutil.copy(shard, shard2)
    _, plain = prep("clean_mc4_it", tmp_path, sub="plain", source=str(SAMPLES_DIR / "clean_mc4_it.jsonl"))
    m, rows = prep("clean_mc4_it", tmp_path, sub="gz", source=str(shard))
    assert rows == plain and m["source"]["source"] == str(shard)
    m, rows = prep("clean_mc4_it", tmp_path, sub="two", source=[str(shard), str(shard2)])
    assert rows == plain + plain and m["source"]["kind"] == "multiple" and len(m["source"]["parts"]) == 2
    m, rows = prep("clean_mc4_it", tmp_path, sub="cap", source=[str(shard), str(shard2)], max_rows=3)
    assert len(rows) == 3 and rows == plain[:3]


def test_clean_mc4_it_bad_rows_bom_and_no_default_source(tmp_path):
    good = {"text": "Un testo italiano abbastanza lungo. " * 10, "timestamp": "2020-01-01T00:00:00Z", "url": "https://x.it"}
    bads = [({"timestamp": "t", "url": "u"}, "text", "missing_field"), ({"text": 7, "url": "u"}, "text", "wrong_type"),
            (b'{"text": "citt\xe0 ' + b"x" * 300 + b'"}\n', None, "invalid_utf8")]
    for i, (bad, field, reason) in enumerate(bads):
        e = bad_run("clean_mc4_it", tmp_path / str(i), [good, bad])
        assert (e.row, e.field, e.reason) == (2, field, reason)
    lines = [good]
    for bad, _, _ in bads:
        lines += [bad, good]
    m, rows = prep("clean_mc4_it", tmp_path, sub="skip", source=str(write_jsonl(tmp_path / "s.jsonl", lines)), on_error="skip")
    assert m["rejected"] == {"missing_field": 1, "wrong_type": 1, "invalid_utf8": 1} and len(rows) == 4
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(BOM + json.dumps(good).encode() + b"\n")
    _, rows = prep("clean_mc4_it", tmp_path, sub="bom", source=str(bom))
    assert rows == [{"text": good["text"].strip()}]
    with pytest.raises(UserError, match="loading script over json.gz shards"):
        prep("clean_mc4_it", tmp_path, sub="none")


@pytest.mark.parametrize("suffix", [".json.gz", ".jsonl.gz"])
def test_a_bad_line_in_a_gz_shard_is_skipped(tmp_path, suffix):
    """A .json.gz shard that holds JSON lines is streamed line by line (never read whole), like .jsonl.gz."""
    good = json.dumps({"text": "Un testo italiano abbastanza lungo. " * 10}).encode() + b"\n"
    shard = tmp_path / f"c4-it.tfrecord-00000-of-01024{suffix}"
    shard.write_bytes(gzip.compress(good + b'{"text": "citt\xe0"}\n' + good))
    m, rows = prep("clean_mc4_it", tmp_path, source=str(shard), on_error="skip")
    assert m["rejected"] == {"invalid_utf8": 1} and len(rows) == 2


@pytest.mark.parametrize("command", ["prepare", "contamination"])
def test_a_shard_cut_short_is_one_line_naming_the_file(tmp_path, capsys, command):
    from llamafactory_ext.cli import main

    doc = json.dumps({"text": "Un testo italiano abbastanza lungo. " * 10}).encode() + b"\n"
    whole = gzip.compress(doc * 200)
    shard = tmp_path / "c4-it.tfrecord-00000-of-01024.json.gz"
    shard.write_bytes(whole[: len(whole) // 2])  # a partial download
    argv = (["prepare", "clean_mc4_it", f"source={shard}", f"out_dir={tmp_path / 'out'}"] if command == "prepare"
            else ["contamination", str(shard), "task=italic", f"source={write_italic_sample(tmp_path / 'italic.jsonl')}",
                  f"output_dir={tmp_path / 'c'}"])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{shard}: damaged compressed file after" in err and "Traceback" not in err, err
    assert not (tmp_path / "out" / "clean_mc4_it.jsonl").exists()


def test_a_folder_of_shards_is_read_file_by_file(tmp_path):
    shards = tmp_path / "c4"
    shards.mkdir()
    for i in range(3):
        doc = json.dumps({"text": f"Documento numero {i}. " + "Un testo italiano abbastanza lungo. " * 10}).encode() + b"\n"
        (shards / f"c4-it.tfrecord-0000{i}-of-01024.json.gz").write_bytes(gzip.compress(doc))
    m, rows = prep("clean_mc4_it", tmp_path, source=str(shards))
    assert [r["text"].split(".")[0] for r in rows] == ["Documento numero 0", "Documento numero 1", "Documento numero 2"]
    assert m["source"]["kind"] == "multiple" and len(m["source"]["parts"]) == 3


def test_every_answer_to_one_prompt_stays_on_one_side_of_the_split(tmp_path):
    """40 instructions with two different answers each, one re-cased: val_size splits by prompt, so
    the validation loss never scores a prompt the model trained on (pairwise data has no val_size)."""
    rows = [{"instruction": f"Domanda {i}?", "input": "", "output": f"Risposta {j}."} for i in range(40) for j in range(2)]
    rows[1]["instruction"] = "DOMANDA 0 ?"  # the same prompt, normalised
    src = write_jsonl(tmp_path / "src.jsonl", rows)
    _, train = prep("wizard_alpaca_dolly_orca", tmp_path, source=str(src), val_size=0.25, seed=3)
    val = read_jsonl(tmp_path / "out" / "wizard_alpaca_dolly_orca_val.jsonl")
    assert len(train) + len(val) == 80 and len(val) >= 10

    def prompt(r):
        return r["messages"][-2]["content"].lower().replace(" ?", "?")

    assert not {prompt(r) for r in train} & {prompt(r) for r in val}
