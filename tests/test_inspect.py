"""`llamafactory-ext inspect`: what a recipe trains on, checked against LLaMA-Factory's own pipeline.

Every number inspect reports is compared with one obtained independently: LLaMA-Factory's
`get_train_args` + `get_dataset` (the code `llamafactory-cli train` runs) on the same rows, decoded
here, or a count taken from the data files. The data are the built-in samples (prepared once per
module by the real converters) and small data sets written here with lengths under control.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llamafactory_ext.thinking import EMPTY_THINK, NOTHINK, THINK

REPO = Path(__file__).resolve().parents[1]
RECIPES_DIR = REPO / "recipes"
RECIPES = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
IGNORE_INDEX = -100


def _kind(name: str) -> str:
    cfg = yaml.safe_load((RECIPES_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    return "export" if "export_dir" in cfg else str(cfg.get("stage", "sft"))


KINDS = {name: _kind(name) for name in RECIPES}
INSPECTED = [name for name, kind in KINDS.items() if kind in ("sft", "pt")]

SCHEMA = {
    "type": "object",
    "required": ["datasets", "parity", "lints", "samples"],
    "properties": {
        "datasets": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "required": ["rows", "trained_tokens", "masked_tokens", "rows_with_trace", "empty_think", "cut_rows",
                             "answer_lost_rows", "packing_fill"],
                "properties": {
                    **{k: {"type": "integer", "minimum": 0} for k in
                       ("rows", "trained_tokens", "masked_tokens", "rows_with_trace", "cut_rows", "answer_lost_rows")},
                    "empty_think": {
                        "type": "object", "required": ["prompt_masked", "response_trained"],
                        "properties": {"prompt_masked": {"type": "integer", "minimum": 0},
                                       "response_trained": {"type": "integer", "minimum": 0}},
                    },
                    "packing_fill": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                },
            },
        },
        "parity": {
            "type": "object",
            "propertyNames": {"enum": [THINK, NOTHINK]},
            "additionalProperties": {
                "oneOf": [{"const": "identical"},
                          {"type": "object", "required": ["first_difference"]}],
            },
        },
        "lints": {
            "type": "array",
            "items": {
                "type": "object", "required": ["code", "severity", "message", "fix"],
                "properties": {"code": {"type": "string", "minLength": 1},
                               "severity": {"enum": ["error", "warning", "info"]},
                               "message": {"type": "string", "minLength": 1}, "fix": {"type": "string", "minLength": 1}},
            },
        },
        "samples": {
            "type": "array",
            "items": {
                "type": "object", "required": ["dataset", "row", "spans", "match"],
                "properties": {"spans": {"type": "array", "items": {
                    "type": "object", "required": ["text", "trained", "start", "end"],
                    "properties": {"text": {"type": "string"}, "trained": {"type": "boolean"},
                                   "start": {"type": "integer"}, "end": {"type": "integer"}}}}},
            },
        },
    },
}

TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
        "system_tag": "system"}


# ---------------------------------------------------------------------------------------------
# fixtures and helpers
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def samples_dir(tmp_path_factory) -> Path:
    from llamafactory_ext.data.samples import prepare_samples

    return prepare_samples(tmp_path_factory.mktemp("inspect") / "samples")


@pytest.fixture(scope="module")
def tokenizers() -> dict:
    """Tokenizers loaded once per module (keyed by inspect: path and template)."""
    return {}


@pytest.fixture
def inspect_run(tiny_model, tiny_tokenizer, tokenizers):
    """inspect in this process with the tiny model's tokenizer: the session's `tiny_tokenizer` for the
    qwen3 templates (their template fix changes nothing in it), a loaded one otherwise (llama3's
    template replaces the eos token)."""
    from llamafactory_ext.inspect import inspect_recipe

    def run(recipe: str | Path, *overrides: str) -> dict:
        path = RECIPES_DIR / f"{recipe}.yaml" if isinstance(recipe, str) else recipe
        template = next((o.split("=", 1)[1] for o in overrides if o.startswith("template=")), None)
        template = template or yaml.safe_load(path.read_text(encoding="utf-8")).get("template")
        shared = tiny_tokenizer if str(template).startswith("qwen3") else None
        return inspect_recipe([str(path), f"tokenizer={tiny_model}", *overrides], tokenizer_cache=tokenizers,
                              tokenizer=shared)

    return run


def _data_rows(dataset_dir: Path, name: str) -> list[dict]:
    info = json.loads((dataset_dir / "dataset_info.json").read_text(encoding="utf-8"))
    lines = (dataset_dir / info[name]["file_name"]).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _llamafactory_encoded(recipe: dict, tiny_model, tokenizer, output_dir: Path) -> list[dict]:
    """The train dataset `llamafactory-cli train` would build for `recipe` (CPU overrides only):
    `get_train_args` + `get_dataset`, with the tiny model's tokenizer (qwen3 templates only)."""
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args

    from llamafactory_ext.runtime import CPU_OVERRIDES

    assert str(recipe["template"]).startswith("qwen3")
    args = {**recipe, **CPU_OVERRIDES, "model_name_or_path": str(tiny_model), "output_dir": str(output_dir)}
    model_args, data_args, training_args, finetuning_args, _ = get_train_args(args)
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    dataset = get_dataset(template, model_args, data_args, training_args, stage=finetuning_args.stage,
                          tokenizer=tokenizer, processor=None)
    return list(dataset["train_dataset"])


def _recipe(name: str, **changes) -> dict:
    cfg = yaml.safe_load((RECIPES_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    cfg.update(changes)
    return cfg


def _write_dataset(folder: Path, name: str, rows: list[dict], formatting: str = "sharegpt") -> Path:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "data" / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                                   encoding="utf-8")
    info_path = folder / "dataset_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    entry = {"file_name": f"data/{name}.jsonl", "formatting": formatting, "columns": {"messages": "messages"}}
    if formatting in ("sharegpt", "openai"):
        entry["tags"] = TAGS
    info[name] = entry
    info_path.write_text(json.dumps(info, indent=2), encoding="utf-8")
    return folder


def _errors(report: dict) -> list[str]:
    return [x["code"] for x in report["lints"] if x["severity"] == "error"]


def _codes(report: dict) -> set[str]:
    return {x["code"] for x in report["lints"]}


# ---------------------------------------------------------------------------------------------
# the shipped recipes
# ---------------------------------------------------------------------------------------------
def test_the_recipes_inspect_skips_are_the_expected_ones():
    skipped = {name: kind for name, kind in KINDS.items() if name not in INSPECTED}
    assert skipped == {"gsm8k_synth_merge": "export", "anita_sft_merge": "export", "anita_dpo_merge": "export",
                       "anita_dpo_qlora": "dpo"}, skipped
    assert len(INSPECTED) >= 7


@pytest.mark.parametrize("name", INSPECTED)
def test_shipped_recipe_parity_is_identical_in_every_trained_mode(name, inspect_run, samples_dir):
    from llamafactory_ext.inspect import exit_status
    from llamafactory_ext.prompts import training_modes

    report = inspect_run(name, f"dataset_dir={samples_dir}", "n=2")
    cfg = _recipe(name)
    assert set(report["datasets"]) == set(str(cfg["dataset"]).split(","))
    for ds, summary in report["datasets"].items():
        assert summary["rows"] == len(_data_rows(samples_dir, ds)) > 0
        assert summary["trained_tokens"] > 0
    if KINDS[name] == "pt":
        assert report["parity"] == {}
        for summary in report["datasets"].values():
            assert summary["masked_tokens"] == 0
            assert summary["packing_fill"] == 1.0  # whole cutoff_len blocks
        return
    modes = training_modes(cfg["template"], cfg.get("enable_thinking", True))
    assert tuple(report["settings"]["modes_trained"]) == modes
    assert report["parity"] == dict.fromkeys(modes, "identical")
    assert report["settings"]["parity_rows"] and all(n > 0 for n in report["settings"]["parity_rows"].values())
    assert exit_status(report) == 0, report["lints"]
    assert all(s["match"] == s["expected_mode"] for s in report["samples"])


def test_samples_true_prepares_the_built_in_data(inspect_run):
    report = inspect_run("v3_mixed", "samples=true", "n=1")
    assert report["settings"]["dataset_dir"] == "(built-in samples)"
    mixed = report["datasets"]["multit_mixed"]
    assert mixed["rows"] > mixed["rows_with_trace"] > 0
    # mixed data under enable_thinking: null: every row without a trace gets the masked block
    assert mixed["empty_think"] == {"prompt_masked": mixed["rows"] - mixed["rows_with_trace"], "response_trained": 0}
    assert report["parity"] == {THINK: "identical", NOTHINK: "identical"}


# ---------------------------------------------------------------------------------------------
# the empty think block and its lints
# ---------------------------------------------------------------------------------------------
def test_enable_thinking_true_on_rows_without_a_trace_trains_the_empty_block(inspect_run, samples_dir):
    from llamafactory_ext.inspect import exit_status

    rows = len(_data_rows(samples_dir, "multit_nothink"))
    shipped = inspect_run("v1_nothink", f"dataset_dir={samples_dir}", "n=1")
    assert shipped["datasets"]["multit_nothink"]["empty_think"] == {"prompt_masked": rows, "response_trained": 0}
    assert "empty_think_trained" not in _codes(shipped) and exit_status(shipped) == 0

    edited = inspect_run("v1_nothink", f"dataset_dir={samples_dir}", "enable_thinking=true", "n=1")
    summary = edited["datasets"]["multit_nothink"]
    assert summary["rows_with_trace"] == 0
    assert summary["empty_think"] == {"prompt_masked": 0, "response_trained": rows}
    lint = next(x for x in edited["lints"] if x["code"] == "empty_think_trained")
    assert lint["severity"] == "error" and "enable_thinking: null" in lint["fix"]
    assert exit_status(edited) == 1
    sample = edited["samples"][0]
    assert sample["empty_think"] == "response_trained" and sample["match"] == THINK
    trained = "".join(s["text"] for s in sample["spans"] if s["trained"])
    assert trained.startswith(EMPTY_THINK)
    # the same rows carry 4 more trained tokens each: exactly the empty block's ids
    assert summary["trained_tokens"] - shipped["datasets"]["multit_nothink"]["trained_tokens"] == 4 * rows


def test_enable_thinking_false_drops_traces_with_a_warning(inspect_run, samples_dir):
    report = inspect_run("v3_mixed", f"dataset_dir={samples_dir}", "enable_thinking=false", "n=1")
    summary = report["datasets"]["multit_mixed"]
    assert summary["rows_with_trace"] > 0
    assert summary["empty_think"]["prompt_masked"] == summary["rows"]  # traces gone: every prompt ends in the block
    lint = next(x for x in report["lints"] if x["code"] == "traces_dropped")
    assert lint["severity"] == "warning" and str(summary["rows_with_trace"]) in lint["message"]
    assert report["parity"] == {NOTHINK: "identical"}
    assert "think_mode_untrained" in _codes(report)


def test_qwen3_nothink_on_a_hybrid_base_is_linted(inspect_run, samples_dir):
    shipped = inspect_run("v1_nothink_instruct", f"dataset_dir={samples_dir}", "n=1")
    assert "nothink_template_on_hybrid" not in _codes(shipped)  # Qwen3-4B-Instruct-2507 has no thinking mode
    hybrid = inspect_run("v1_nothink_instruct", f"dataset_dir={samples_dir}", "model_name_or_path=Qwen/Qwen3-8B", "n=1")
    lint = next(x for x in hybrid["lints"] if x["code"] == "nothink_template_on_hybrid")
    assert lint["severity"] == "warning" and "Qwen/Qwen3-8B" in lint["message"]


def test_openai_formatting_is_linted_and_breaks_parity(inspect_run, samples_dir, tmp_path):
    rows = _data_rows(samples_dir, "multit_nothink")[:6]
    folder = _write_dataset(tmp_path / "ds", "multit_openai", rows, formatting="openai")
    report = inspect_run("v1_nothink", f"dataset_dir={folder}", "dataset=multit_openai", "n=1")
    assert "openai_formatting" in _codes(report)
    diff = report["parity"][NOTHINK]
    assert diff != "identical" and diff["differing_rows"] == len(rows)
    assert "detailed thinking off" in diff["first_difference"]["training"]["context"]
    assert "detailed thinking off" not in diff["first_difference"]["evaluator"]["context"]


def test_eval_config_mode_the_recipe_never_trains(inspect_run, samples_dir):
    eval_yaml = RECIPES_DIR / "eval" / "italic_zeroshot.yaml"  # thinking: both
    v1 = inspect_run("v1_nothink", f"dataset_dir={samples_dir}", f"eval={eval_yaml}", "n=1")
    untrained = [x for x in v1["lints"] if x["code"] == "eval_mode_untrained"]
    assert len(untrained) == 1 and "mode think" in untrained[0]["message"]
    v3 = inspect_run("v3_mixed", f"dataset_dir={samples_dir}", f"eval={eval_yaml}", "n=1")
    assert "eval_mode_untrained" not in _codes(v3)


# ---------------------------------------------------------------------------------------------
# cutoff_len
# ---------------------------------------------------------------------------------------------
def _cut_rows() -> list[dict]:
    """Rows whose lengths we control: short prompts with traces of growing length (the long ones
    lose their answer; some traces quote the answer early, which must not count as the answer),
    long prompts with a short answer (cut, answer kept), short complete rows."""
    rows = []
    for i, words in enumerate([2, 6, 12, 18, 25, 40, 60, 90]):
        letter = "ABCD"[i % 4]
        quoted = f"forse Risposta finale: {letter} " if i % 2 else ""
        trace = quoted + " ".join(["ragiono"] * words)
        rows.append({"messages": [{"role": "user", "content": f"Domanda {i}?"},
                                  {"role": "assistant", "content": f"<think>\n{trace}\n</think>\n\nRisposta finale: {letter}"}]})
    for i, words in enumerate([5, 70, 120]):
        question = " ".join(["parola"] * words)
        rows.append({"messages": [{"role": "system", "content": "Sei un assistente utile."},
                                  {"role": "user", "content": f"Domanda lunga {i}: {question}?"},
                                  {"role": "assistant", "content": f"Risposta finale: {'ABCD'[i % 4]}"}]})
    return rows


def test_cutoff_len_reports_exactly_the_rows_that_lost_their_answer(inspect_run, tiny_model, tiny_tokenizer, tmp_path,
                                                                    fast_fingerprints):
    rows = _cut_rows()
    folder = _write_dataset(tmp_path / "ds", "cut_rows", rows)
    cutoff = 48
    recipe = {"stage": "sft", "do_train": True, "finetuning_type": "lora", "dataset": "cut_rows",
              "dataset_dir": str(folder), "template": "qwen3", "enable_thinking": None, "cutoff_len": cutoff,
              "overwrite_cache": True, "report_to": "none"}
    # independently: LLaMA-Factory's own encoding, decoded here
    truncated = _llamafactory_encoded(recipe, tiny_model, tiny_tokenizer, tmp_path / "out1")
    full = _llamafactory_encoded({**recipe, "cutoff_len": 100_000}, tiny_model, tiny_tokenizer, tmp_path / "out2")
    assert len(truncated) == len(full) == len(rows)
    expected_cut = sum(len(f["input_ids"]) > cutoff for f in full)
    expected_lost = 0
    for row, sample in zip(rows, truncated):
        content = row["messages"][-1]["content"]
        answer = content.split("</think>")[-1].strip()
        trained = tiny_tokenizer.decode([t for t, label in zip(sample["input_ids"], sample["labels"]) if label != IGNORE_INDEX])
        if "</think>" in content:  # the answer is what follows the trace, not a letter quoted inside it
            trained = trained.split("</think>", 1)[1] if "</think>" in trained else ""
        expected_lost += answer not in trained
    assert 0 < expected_lost < expected_cut < len(rows)  # the data discriminates: lost, cut-but-kept, whole
    quoted_lost = [i for i, (row, sample) in enumerate(zip(rows, truncated)) if "forse Risposta finale" in
                   tiny_tokenizer.decode(sample["input_ids"]) and "</think>" not in tiny_tokenizer.decode(sample["input_ids"])]
    assert quoted_lost  # a cut trace that quotes the answer: only "after </think>" tells it is lost

    path = tmp_path / "cut.yaml"
    path.write_text(yaml.safe_dump({**recipe, "model_name_or_path": str(tiny_model)}), encoding="utf-8")
    report = inspect_run(path, "n=20")
    summary = report["datasets"]["cut_rows"]
    assert summary["cut_rows"] == expected_cut
    assert summary["answer_lost_rows"] == expected_lost
    lint = next(x for x in report["lints"] if x["code"] == "cutoff_cuts_answers")
    assert lint["severity"] == "error" and f"{expected_lost} of {len(rows)}" in lint["message"]
    assert summary["longest_row_tokens"] == max(len(f["input_ids"]) for f in full)
    for sample, f in zip(report["samples"], full):
        assert sample["cut"] == (len(f["input_ids"]) > cutoff)
        assert sample["tokens"] == min(len(f["input_ids"]), cutoff)


# ---------------------------------------------------------------------------------------------
# counts against LLaMA-Factory's labels
# ---------------------------------------------------------------------------------------------
def test_token_counts_equal_llamafactory_labels(inspect_run, tiny_model, tiny_tokenizer, samples_dir, tmp_path,
                                                fast_fingerprints):
    recipe = _recipe("v3_mixed", dataset_dir=str(samples_dir), packing=False, neat_packing=False)
    encoded = _llamafactory_encoded(recipe, tiny_model, tiny_tokenizer, tmp_path / "out")
    report = inspect_run("v3_mixed", f"dataset_dir={samples_dir}", "packing=false", "neat_packing=false", "n=3")
    summary = report["datasets"]["multit_mixed"]
    from llamafactory.extras.constants import IGNORE_INDEX as LLAMAFACTORY_IGNORE_INDEX

    from llamafactory_ext.inspect import IGNORE_INDEX as INSPECT_IGNORE_INDEX

    assert INSPECT_IGNORE_INDEX == LLAMAFACTORY_IGNORE_INDEX == IGNORE_INDEX
    assert summary["rows"] == len(encoded)
    assert summary["trained_tokens"] == sum(sum(label != IGNORE_INDEX for label in s["labels"]) for s in encoded)
    assert summary["masked_tokens"] == sum(sum(label == IGNORE_INDEX for label in s["labels"]) for s in encoded)
    assert summary["packing_fill"] is None
    for sample, s in zip(report["samples"], encoded):  # row by row, token by token
        ids = [t for span in sample["spans"] for t in range(span["start"], span["end"])]
        assert ids == list(range(len(s["input_ids"])))
        trained = [i for span in sample["spans"] if span["trained"] for i in range(span["start"], span["end"])]
        assert trained == [i for i, label in enumerate(s["labels"]) if label != IGNORE_INDEX]


def test_packing_fill_equals_llamafactory_packed_sequences(inspect_run, tiny_model, tiny_tokenizer, samples_dir, tmp_path,
                                                           fast_fingerprints):
    recipe = _recipe("v3_mixed", dataset_dir=str(samples_dir), cutoff_len=256)  # packing + neat_packing
    packed = _llamafactory_encoded(recipe, tiny_model, tiny_tokenizer, tmp_path / "out")
    report = inspect_run("v3_mixed", f"dataset_dir={samples_dir}", "cutoff_len=256", "n=1")
    summary = report["datasets"]["multit_mixed"]
    real = sum(sum(1 for m in s["attention_mask"] if m) for s in packed)  # neat packing: padding has mask 0
    trained = sum(sum(label != IGNORE_INDEX for label in s["labels"]) for s in packed)
    assert summary["packed_sequences"] == len(packed) > 1
    assert summary["packing_fill"] == round(real / (len(packed) * 256), 4)
    assert summary["trained_tokens"] == trained
    assert summary["trained_tokens"] + summary["masked_tokens"] == real


# ---------------------------------------------------------------------------------------------
# output formats and the command line
# ---------------------------------------------------------------------------------------------
def test_json_output_validates_against_the_schema(inspect_run, samples_dir):
    import jsonschema

    from llamafactory_ext.inspect import to_json

    report = json.loads(to_json(inspect_run("v3_mixed", f"dataset_dir={samples_dir}", "n=2")))
    jsonschema.validate(report, SCHEMA)
    assert len(report["samples"]) == 2
    broken = json.loads(json.dumps(report))
    del broken["datasets"]["multit_mixed"]["empty_think"]
    with pytest.raises(jsonschema.ValidationError):  # the schema check itself can fail
        jsonschema.validate(broken, SCHEMA)


def test_text_markers_without_a_terminal_and_colours_with_one(inspect_run, samples_dir, monkeypatch):
    from llamafactory_ext.inspect import render_text, use_color

    report = inspect_run("v3_mixed", f"dataset_dir={samples_dir}", "n=2")
    plain = render_text(report, color=False)
    assert "[[<think>\n" in plain and "\x1b[" not in plain
    coloured = render_text(report, color=True)
    assert "\x1b[1;32m<think>\n" in coloured and "[[" not in coloured

    class Stream:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_color("auto", Stream(True)) and not use_color("auto", Stream(False))
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color("auto", Stream(True)) and use_color("always", Stream(True))


def test_html_is_one_self_contained_page(samples_dir, tiny_model, tmp_path, monkeypatch, capsys):
    from llamafactory_ext.cli import main

    monkeypatch.chdir(tmp_path)
    rc = main(["inspect", str(RECIPES_DIR / "v3_mixed.yaml"), f"dataset_dir={samples_dir}", f"tokenizer={tiny_model}",
               "format=html", "n=2"])
    assert rc == 0, capsys.readouterr().err
    page = (tmp_path / "inspect.html").read_text(encoding="utf-8")  # the default output
    assert page.startswith("<!doctype html>") and "<style>" in page
    for external in ("http://", "https://", "<link", "<script", "@import", "url("):
        assert external not in page
    assert 'id="summary"' in page and 'class="tok t"' in page and 'class="tok m"' in page
    assert not list(tmp_path.glob(".inspect.html.tmp-*"))  # written atomically


def test_bad_input_exits_2_with_one_line(tmp_path, samples_dir, tiny_model, capsys):
    from llamafactory_ext.cli import main

    recipe = str(RECIPES_DIR / "v3_mixed.yaml")
    bad = _write_dataset(tmp_path / "bad", "broken", [])
    (bad / "data" / "broken.jsonl").write_text('{"messages": [\n', encoding="utf-8")
    cases = [
        (["inspect", str(tmp_path / "missing.yaml")], "missing.yaml"),
        (["inspect", recipe, "cutof_len=64"], "did you mean 'cutoff_len'"),
        (["inspect", recipe, "n=0"], "n must be >= 1"),
        (["inspect", recipe, "cutoff_len=abc"], "cutoff_len must be a valid int, got 'abc'"),
        (["inspect", recipe, f"dataset_dir={samples_dir}", "dataset=multit_mix", f"tokenizer={tiny_model}"],
         "did you mean 'multit_mixed'"),
        (["inspect", recipe, f"dataset_dir={bad}", "dataset=broken", f"tokenizer={tiny_model}"], "broken.jsonl"),
        (["inspect", recipe, "stage=dpo"], "stage dpo is not supported"),
        (["inspect", str(RECIPES_DIR / "gsm8k_synth_merge.yaml")], "export recipe"),
    ]
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert expected in err, err


def test_cli_subprocess_json_and_error_exit_status(samples_dir, small_model):
    """The command line in a fresh process; the small-vocabulary tokenizer (what is checked here is
    the JSON and the exit status; LLaMA-Factory's data pipeline hashes a 151k-token one for seconds)."""
    from llamafactory_ext.runtime import cpu_env

    proc = subprocess.run(
        [sys.executable, "-m", "llamafactory_ext.cli", "inspect", str(RECIPES_DIR / "v1_nothink.yaml"),
         "enable_thinking=true", f"dataset_dir={samples_dir}", f"tokenizer={small_model}", "format=json", "n=2"],
        check=False, capture_output=True, text=True, timeout=300, env=cpu_env(), cwd=REPO)
    assert proc.returncode == 1, proc.stderr[-3000:]
    import jsonschema

    report = json.loads(proc.stdout)
    jsonschema.validate(report, SCHEMA)
    assert "empty_think_trained" in _errors(report)
    assert "Traceback" not in proc.stderr


def test_fixture_tokenizer_is_built_once_into_the_cache(tmp_path, monkeypatch):
    from tokenizers import Tokenizer

    from llamafactory_ext.fixtures import QWEN3_IDS
    from llamafactory_ext.inspect import CACHE_ENV, fixture_tokenizer_dir

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    first = fixture_tokenizer_dir()
    assert first.parent == tmp_path / "cache"
    tok = Tokenizer.from_file(str(first / "tokenizer.json"))
    assert {t: tok.token_to_id(t) for t in QWEN3_IDS} == QWEN3_IDS
    stamp = (first / "tokenizer.json").stat().st_mtime_ns
    assert fixture_tokenizer_dir() == first and (first / "tokenizer.json").stat().st_mtime_ns == stamp
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_trust_remote_code_is_one_warning_naming_the_folder(samples_dir, tiny_model, capsys):
    """``trust_remote_code: true`` lets the tokenizer folder run its own Python code: inspect says so,
    once, naming the folder (it said nothing)."""
    from llamafactory_ext.cli import main

    argv = ["inspect", str(RECIPES_DIR / "v3_mixed.yaml"), f"dataset_dir={samples_dir}", f"tokenizer={tiny_model}",
            "format=json", "n=1"]
    assert main([*argv, "trust_remote_code=true"]) == 0
    out = capsys.readouterr()
    warnings = [line for line in out.err.splitlines() if "trust_remote_code" in line]
    assert len(warnings) == 1 and f"lets {tiny_model} run its own Python code" in warnings[0], out.err
    assert json.loads(out.out)["settings"]["tokenizer"] == str(tiny_model)
    assert main(argv) == 0
    assert "trust_remote_code" not in capsys.readouterr().err
