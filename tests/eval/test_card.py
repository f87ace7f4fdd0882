"""``llamafactory-ext card``: a Hub-ready README.md from a tiny study built of real parts: the LoRA
adapter trained in this session by ``llamafactory-cli train`` (``small_adapter``, 2 steps), the
base model's evaluation (``base_run``) as the baseline, a real evaluation of base + adapter against
it, and study.json written by the study's own report code. The expected values are read here from
study.json, results.json, LLaMA-Factory's log and the adapter's weights.

(It lives under tests/eval/ to share the session's adapter and baseline fixtures of
tests/eval/conftest.py: one training per session.)"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import shutil

import pytest
import yaml

from tests.eval.common import eval_cfg
from tests.helpers import EXT, one_line_error, output_tail, run_cmd

TRAINABLE = re.compile(r"trainable params: ([\d,]+) \|\| all params: ([\d,]+)")


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory, small_model, base_run, small_adapter, small_recipe, _adapter_training):
    """study/baseline/eval (the base run), study/V3 (the adapter, its train.log and trial.json as a
    study trial holds them, its eval against the baseline), study.json / study.md by the study code."""
    from llamafactory_ext.eval.runner import run
    from llamafactory_ext.study import StudyConfig, write_report
    from llamafactory_ext.sweep.trials import Trial

    root = tmp_path_factory.mktemp("tiny-study")
    study = root / "study"
    shutil.copytree(base_run["dir"], study / "baseline" / "eval")
    v3 = study / "V3"
    shutil.copytree(small_adapter, v3, ignore=shutil.ignore_patterns("checkpoint-*", "README.md"))
    (v3 / "README.md").write_text((small_adapter / "README.md").read_text())  # the Trainer's placeholder card
    trained = _adapter_training.result()
    (v3 / "train.log").write_text(trained.stdout + trained.stderr)
    run(eval_cfg(small_model, base_run["italic"], v3 / "eval", adapter_name_or_path=str(v3), baseline=str(study / "baseline" / "eval")))
    eval_cmd = f"llamafactory-ext eval task=italic adapter_name_or_path={v3} baseline={study / 'baseline' / 'eval'}"
    for name, cmd in (("baseline", None), ("V3", shlex.join(map(str, trained.args)))):
        (study / name / "trial.json").write_text(json.dumps({"name": name, "status": "done", "train_cmd": cmd, "eval_cmd": eval_cmd,
                                                              "host": "test", "cuda_visible_devices": ""}))
    trials = [Trial("baseline", {"version": "baseline"}, str(study / "baseline"), None, ["eval"], str(root), {}),
              Trial("V3", {"version": "V3", "format": "mixed rows"}, str(v3), ["train"], ["eval"], str(root), {})]
    write_report(StudyConfig(title="tiny study", output_dir=str(study), headline=["total", "geography"]), trials)
    proc = run_cmd([*EXT, "card", study, "push=dry_run"])
    assert proc.returncode == 0, output_tail(proc)
    text = (v3 / "README.md").read_text(encoding="utf-8")
    return {"study": study, "v3": v3, "log": trained.stdout + trained.stderr, "proc": proc, "text": text,
            "recipe": small_recipe["recipe"], "args": [str(a) for a in trained.args], "model": small_model}


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("\n---\n", 1)[0][4:])


def _section(text: str, title: str) -> str:
    return text.split(f"\n{title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_model_index_parses_and_holds_every_score(tiny_study):
    meta = _front_matter(tiny_study["text"])
    assert meta["library_name"] == "peft" and meta["base_model"] == str(tiny_study["model"])
    assert "llama-factory" in meta["tags"] and meta["language"] == ["it"] and meta["pipeline_tag"] == "text-generation"
    (entry,) = meta["model-index"]
    assert entry["name"] == "V3"
    got = set()
    for result in entry["results"]:
        assert result["task"]["type"] == "text-generation"
        assert (result["dataset"]["type"], result["dataset"]["name"], result["dataset"]["split"]) == ("Crisp-Unimib/ITALIC", "ITALIC", "train")
        got |= {(m["type"], m["value"], m["name"]) for m in result["metrics"]}
    results = json.loads((tiny_study["v3"] / "eval" / "results.json").read_text())
    want = set()
    for mode, s in results["modes"].items():
        label = {"think": "thinking", "nothink": "no thinking"}[mode]
        blocks = [("all items", s), *s["per_category"].items(), *s["per_macro_category"].items()]
        want |= {("accuracy", round(100 * b["accuracy"], 2), f"accuracy ({label}, {g}, n={b['total']})") for g, b in blocks}
    assert got == want and len(want) == 2 * (1 + 4 + 2)


def test_the_version_series_is_study_json(tiny_study):
    study = json.loads((tiny_study["study"] / "study.json").read_text())
    series = _section(tiny_study["text"], "## Evaluation")
    for group in ("all items", "geography"):
        table = series.split(f"### Version Series: {group}\n", 1)[1].strip().split("\n\n")[1]  # after the chance line
        key = "total" if group == "all items" else group
        for row in study["versions"]:
            label = "Baseline" if row["name"] == "baseline" else row["name"]
            line = next(ln for ln in table.splitlines() if ln.startswith(f"| {label} |"))
            cells = [c.strip() for c in line.strip("|").split("|")]
            for i, mode in ((2, "nothink"), (6, "think")):
                b = row["modes"][mode]["groups"][key]
                assert cells[i] == f"{100 * b['accuracy']:.2f} [{100 * b['ci95'][0]:.1f}, {100 * b['ci95'][1]:.1f}] (n={b['total']})", line
                comp = row["modes"][mode]["vs_baseline"].get(key)
                if comp:
                    assert cells[i + 1].startswith(f"{comp['delta']:+.2f}") and cells[i + 2:i + 4] == [
                        f"{comp['p_value']:.3g}", f"{comp['p_holm']:.3g}"], line
                else:
                    assert cells[i + 1:i + 4] == ["—"] * 3, line


def test_the_trainable_count_is_llamafactorys_log_line(tiny_study):
    from safetensors.torch import load_file

    logged, total = (int(x.replace(",", "")) for x in TRAINABLE.findall(tiny_study["log"])[-1])
    stored = sum(t.numel() for t in load_file(str(tiny_study["v3"] / "adapter_model.safetensors")).values())
    assert stored == logged  # the adapter's weights hold exactly what LLaMA-Factory trained
    details = _section(tiny_study["text"], "## Model details")
    assert f"| Trainable parameters | {logged:,} of {total:,} ({100 * logged / total:.4f} %) (LLaMA-Factory's log line in train.log) |" in details
    peft = json.loads((tiny_study["v3"] / "adapter_config.json").read_text())
    assert f"| Rank r | {peft['r']} |" in details and f"| lora_alpha | {peft['lora_alpha']} |" in details
    assert ", ".join(sorted(peft["target_modules"])) in details


def test_the_card_states_data_hyperparameters_run_usage_and_limitations(tiny_study):
    text = tiny_study["text"]
    assert "More information needed" not in text and "written by `llamafactory-ext card`" in text
    recipe = yaml.safe_load(tiny_study["recipe"].read_text())
    overrides = dict(a.split("=", 1) for a in tiny_study["args"] if "=" in a)
    procedure = _section(text, "## Training procedure")
    for key in ("lora_rank", "learning_rate", "lora_target"):
        assert f"| {key} | `{json.dumps(recipe[key])}` |" in procedure, key
    assert f"| max_steps | `{overrides['max_steps']}` |" in procedure and "with the trial's overrides (trial.json)" in procedure
    assert "device cpu, world size 1" in procedure and "(train_results.json)" in procedure
    data = _section(text, "## Training data")
    rows = (small := tiny_study["recipe"].parent / "ds" / "data" / "multit_mixed.jsonl").read_text().splitlines()
    traces = sum("<think>" in json.loads(r)["messages"][-1]["content"] for r in rows)
    assert f"| multit_mixed | `{small}` | {len(rows)} / — (counted: no prepare manifest) | {traces} | sharegpt |" in data, data
    usage = _section(text, "## Usage")
    assert "enable_thinking=True" in usage and f'PeftModel.from_pretrained(model, "{tiny_study["v3"]}")' in usage
    limitations = _section(text, "## Limitations")
    results = json.loads((tiny_study["v3"] / "eval" / "results.json").read_text())
    comparison = json.loads((tiny_study["v3"] / "eval" / "comparison.json").read_text())
    reasons = [r for s in results["modes"].values() for r in s["degenerate"]]
    reasons += [r for rs in comparison["baseline_degenerate"].values() for r in rs]
    assert reasons, "the 4-token runs are degenerate (cut off): the card must say so"
    assert all(r in limitations for r in reasons), limitations
    assert "`base_model` is a local folder" in limitations
    assert "## Reproduce" in text and shlex.join(tiny_study["args"]) in text


def test_dry_run_lists_what_would_be_uploaded_and_uploads_nothing(tiny_study):
    out = tiny_study["proc"].stdout
    assert "card: dry run, nothing uploaded" in out
    for name in ("README.md", "adapter_config.json", "adapter_model.safetensors", "tokenizer.json"):
        size = (tiny_study["v3"] / name).stat().st_size
        assert re.search(rf"^  {re.escape(name)} +{size:,} bytes", out, re.MULTILINE), (name, out)
    assert "trial.json" not in out and "train.log" not in out and "checkpoint" not in out


def _card(*args) -> tuple[int, str]:
    """``llamafactory-ext card ...`` in this process (the entry point, its exit status and stderr)."""
    from llamafactory_ext.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["card", *map(str, args)])
    assert code == 0 or (len(err.getvalue().strip().splitlines()) == 1 and "Traceback" not in err.getvalue()), err.getvalue()
    return code, err.getvalue()


def test_a_card_from_the_eval_folder_and_the_refusals(tiny_study, tmp_path):
    # the eval folder names its adapter; the card goes where output_dir says
    code, err = _card(tiny_study["v3"] / "eval", f"output_dir={tmp_path / 'c'}", "base_model=Qwen/Qwen3-8B", "repo_id=me/tiny-v3",
                      "license=apache-2.0")
    assert code == 0, err
    meta = _front_matter((tmp_path / "c" / "README.md").read_text())
    assert (meta["base_model"], meta["license"], meta["model-index"][0]["name"]) == ("Qwen/Qwen3-8B", "apache-2.0", "tiny-v3")
    assert 'PeftModel.from_pretrained(model, "me/tiny-v3")' in (tmp_path / "c" / "README.md").read_text()
    # a README.md of the user's own is kept
    (tmp_path / "c" / "README.md").write_text("# my own notes\n")
    code, err = _card(tiny_study["v3"] / "eval", f"output_dir={tmp_path / 'c'}")
    assert code == 2 and "is neither the Trainer's placeholder nor a card of ours: overwrite=true replaces it" in err
    assert (tmp_path / "c" / "README.md").read_text() == "# my own notes\n"
    # not a run; a push offline (a real process: the Hub client reads HF_HUB_OFFLINE when imported)
    code, err = _card(tmp_path)
    assert code == 2 and "neither a study folder (study.json), an eval folder (results.json) nor an adapter folder" in err
    err = one_line_error(run_cmd([*EXT, "card", tiny_study["v3"] / "eval", f"output_dir={tmp_path / 'd'}", "push=true",
                                  "repo_id=me/tiny-v3", "base_model=Qwen/Qwen3-8B"]))
    assert "push to me/tiny-v3 failed" in err


def test_training_data_comes_from_the_prepare_manifest(tmp_path):
    """A data set prepared by `prepare`: rows and source from its manifest, traces counted in its rows."""
    from llamafactory_ext.card import training_data
    from llamafactory_ext.data.samples import prepare_samples

    folder = prepare_samples(tmp_path / "ds", names=["multit_mixed"], val_size=0.2)
    manifest = json.loads((folder / "data" / "multit_mixed.manifest.json").read_text())
    rows = (folder / "data" / "multit_mixed.jsonl").read_text().splitlines()
    (entry,) = training_data({"dataset": "multit_mixed", "dataset_dir": str(folder)})
    assert (entry["rows"], entry["val_rows"], entry["source"]) == (manifest["rows"]["train"], manifest["rows"]["val"], manifest["source"]["source"])
    assert entry["manifest"] and entry["rows"] == len(rows) and entry["formatting"] == "sharegpt"
    assert entry["traces"] == sum("</think>" in json.loads(r)["messages"][-1]["content"] for r in rows) > 0
