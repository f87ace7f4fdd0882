"""``eval task=lm_eval``: lm-evaluation-harness's own arc_it, hellaswag_it and m_mmlu_it tasks run on the
tiny LLaMA-3 (small vocabulary) from small local files in each task's own Hub schema, offline; the
number lm-eval returns is the number in results.json and results.md; a LoRA adapter is evaluated
through lm-eval's ``peft=`` against a baseline run; the published shots and metrics are the defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import output_tail, read_jsonl

ARC = [("Qual è la capitale d'Italia?", ["Roma", "Milano", "Napoli", "Torino"], "A"),
       ("Quale fiume attraversa Firenze?", ["Po", "Arno", "Tevere", "Adige"], "B"),
       ("Di che colore è il cielo sereno?", ["Verde", "Rosso", "Azzurro", "Nero", "Giallo"], "C"),
       ("Quante zampe ha un ragno?", ["Sei", "Quattro", "Dieci", "Otto"], "D"),
       ("Che cosa produce l'ape?", ["Miele", "Latte", "Seta"], "A"),
       ("In quale stagione cadono le foglie?", ["Estate", "Autunno", "Primavera", "Inverno"], "B")]
HELLASWAG = [("Cucina", "Una donna mette l'acqua in una pentola.", "poi", ["accende il fuoco.", "canta.", "dorme.", "esce."], "0"),
             ("Sport", "Un ragazzo prende la palla.", "poi", ["la mangia.", "tira in porta.", "la dipinge.", "la vende."], "1"),
             ("Giardino", "Un uomo prende l'annaffiatoio.", "e", ["legge.", "guida.", "bagna le piante.", "nuota."], "2"),
             ("Scuola", "La maestra apre il libro.", "e", ["vola.", "cucina.", "balla.", "legge una pagina."], "3"),
             ("Musica", "Una ragazza prende la chitarra.", "e", ["suona una canzone.", "la frigge.", "la lava.", "corre."], "0")]


def _mmlu(i: int) -> dict:
    return {"instruction": f"Quanto fa {i} più {i}?", "option_a": str(2 * i), "option_b": str(2 * i + 1), "option_c": str(i),
            "option_d": "0", "answer": "ABCD"[i % 4] if i < 10 else "A", "id": f"mmlu-{i}"}


def write_suite(root: Path) -> Path:
    """SOURCE/TASK/SPLIT.jsonl in each task's own schema (alexandrainst/m_arc, m_hellaswag, m_mmlu, config it)."""
    def dump(path: Path, rows: list[dict]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")

    dump(root / "arc_it" / "test.jsonl", [
        {"id": f"arc-{i}", "instruction": q, **{f"option_{c}": (opts[j] if j < len(opts) else None) for j, c in enumerate("abcde")},
         "answer": a} for i, (q, opts, a) in enumerate(ARC)])
    dump(root / "hellaswag_it" / "val.jsonl", [
        {"ind": i, "activity_label": act, "ctx_a": a, "ctx_b": b, "ctx": f"{a} {b}", "endings": ends, "source_id": f"h{i}",
         "split": "val", "split_type": "indomain", "label": label} for i, (act, a, b, ends, label) in enumerate(HELLASWAG)])
    dump(root / "m_mmlu_it" / "test.jsonl", [_mmlu(i) for i in range(6)])
    dump(root / "m_mmlu_it" / "train.jsonl", [_mmlu(i) for i in range(10, 16)])  # the 5 shots are the first 5
    return root


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory) -> Path:
    return write_suite(tmp_path_factory.mktemp("italian-suite"))


@pytest.fixture(scope="module")
def adapter(small_llama3, tmp_path_factory) -> Path:
    """A LoRA adapter with random (non-zero) weights on the small tiny LLaMA-3: it changes the scores."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(small_llama3)),
                           LoraConfig(r=4, lora_alpha=32, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False))
    out = tmp_path_factory.mktemp("lm-eval-adapter")
    model.save_pretrained(str(out))
    return out


def _cfg(**kw):
    from llamafactory_ext.eval.options import config_class

    return config_class("lm_eval")(task="lm_eval", device="cpu", progress=False, **kw)


@pytest.fixture(scope="module")
def base_run(small_llama3, suite_dir, tmp_path_factory, forks) -> Path:
    """The base model through the real command line (runner hook + lm-eval), offline: its own
    `llamafactory-ext eval` process, forked by the worker's fork server (tests/forkserver.py)."""
    out = tmp_path_factory.mktemp("lm-eval-base") / "out"
    proc = forks.run("llamafactory-ext", ["eval", "task=lm_eval", "tasks=arc_it,hellaswag_it,m_mmlu_it", f"model_name_or_path={small_llama3}",
                                          f"source={suite_dir}", f"output_dir={out}", "device=cpu"], timeout=300)
    assert proc.returncode == 0, output_tail(proc)
    assert "lm_eval: Arc.IT acc_norm" in proc.stdout
    return out


def test_base_run_is_lm_evals_suite_with_the_published_shots(base_run, suite_dir):
    res = json.loads((base_run / "results.json").read_text())
    assert res["schema_version"] == 3 and res["task"] == "lm_eval"
    suite = res["suite"]
    assert list(suite) == ["arc_it", "hellaswag_it", "m_mmlu_it"]
    assert {t: (v["metric"], v["shots"], v["n"]) for t, v in suite.items()} == {
        "arc_it": ("acc_norm", 0, len(ARC)), "hellaswag_it": ("acc_norm", 0, len(HELLASWAG)), "m_mmlu_it": ("acc", 5, 6)}
    raw = res["lm_eval"]["results"]
    for task, v in suite.items():
        assert v["value"] == raw[task][f"{v['metric']},none"] and v["stderr"] == raw[task][f"{v['metric']}_stderr,none"]
    assert res["lm_eval"]["n-shot"] == {"arc_it": 0, "hellaswag_it": 0, "m_mmlu_it": 5}
    # the local files were what lm-eval read (their checksums), through lm-eval's own task YAMLs
    assert set(res["source"]["files"]["m_mmlu_it"]) == {"test", "train"} and set(res["source"]["files"]["hellaswag_it"]) == {"val"}
    arc_yaml = (base_run / "lm_eval_tasks" / "arc_it.yaml").read_text()
    assert "okapi/arc_multilingual/arc_it.yaml" in arc_yaml and "training_split: null" in arc_yaml
    # lm-eval's own prompts: ARC's "Question: ...\nAnswer:", MMLU 5-shot with the first 5 rows of train.jsonl
    preds = read_jsonl(base_run / "predictions.jsonl")
    assert len(preds) == len(ARC) + len(HELLASWAG) + 6
    arc0 = next(p for p in preds if p["task"] == "arc_it" and p["doc_id"] == 0)
    assert arc0["context"] == f"Question: {ARC[0][0]}\nAnswer:" and arc0["choices"] == [" Roma", " Milano", " Napoli", " Torino"]
    mmlu0 = next(p for p in preds if p["task"] == "m_mmlu_it" and p["doc_id"] == 0)
    assert mmlu0["context"].startswith("Quanto fa 10 più 10?\nA. 20\n") and mmlu0["context"].count("Answer:") == 6
    assert "Quanto fa 15 più 15" not in mmlu0["context"]  # only 5 shots
    # each per-document acc is lm-eval's argmax over its log-likelihoods; their mean is the suite's acc
    for task in suite:
        rows = [p for p in preds if p["task"] == task]
        for p in rows:
            lls = [ll for ll, _ in p["loglikelihoods"]]
            gold = p["target"] if isinstance(p["target"], int) else [c.strip() for c in p["choices"]].index(p["target"])
            assert p["acc"] == float(lls.index(max(lls)) == gold)
        assert sum(p["acc"] for p in rows) / len(rows) == pytest.approx(raw[task]["acc,none"])


def test_lm_evals_number_reaches_our_table_unchanged(small_llama3, suite_dir, adapter, base_run, tmp_path, monkeypatch):
    """In process, with ``lm_eval.simple_evaluate`` spied on: every value and stderr of results.json is
    the object lm-eval returned, results.md prints it, and Δ is model − baseline."""
    import lm_eval

    from llamafactory_ext.eval.runner import run

    seen = []
    real = lm_eval.simple_evaluate

    def spy(*args, **kwargs):
        seen.append((kwargs, real(*args, **kwargs)))
        return seen[-1][1]

    monkeypatch.setattr(lm_eval, "simple_evaluate", spy)
    out = tmp_path / "adapter-run"
    res = run(_cfg(model_name_or_path=str(small_llama3), adapter_name_or_path=str(adapter), source=str(suite_dir),
                   output_dir=str(out), baseline=str(base_run)))
    (kwargs, raw), = seen
    assert kwargs["model_args"]["peft"] == str(adapter) and kwargs["model_args"]["pretrained"] == str(small_llama3)
    assert kwargs["num_fewshot"] is None and kwargs["limit"] is None and kwargs["model"] == "hf"
    base = json.loads((base_run / "results.json").read_text())["suite"]
    md = (out / "results.md").read_text()
    on_disk = json.loads((out / "results.json").read_text())
    values = []
    for task, v in res["suite"].items():
        metric = v["metric"]
        assert v["value"] == raw["results"][task][f"{metric},none"]  # the very number lm-eval returned
        assert on_disk["suite"][task]["value"] == v["value"] and on_disk["suite"][task]["stderr"] == raw["results"][task][f"{metric}_stderr,none"]
        delta = v["value"] - base[task]["value"]
        assert res["comparison"][task]["delta"] == delta
        b, c, p = _mcnemar(base_run / "predictions.jsonl", out / "predictions.jsonl", task, metric)
        pair = res["comparison"][task]["paired"]
        assert (pair["model_only"], pair["baseline_only"]) == (b, c) and pair["p_value"] == pytest.approx(p, abs=1e-6)
        row = next(line for line in md.splitlines() if line.startswith(f"| {v['name']} ({task}"))
        assert row.split(" | ")[1:] == [f"{base[task]['value']:.4f} ± {base[task]['stderr']:.4f}",
                                        f"{v['value']:.4f} ± {v['stderr']:.4f}", f"{delta:+.4f}", f"{p:.3g} (b {b} / c {c}) |"]
        values.append(v["value"])
    assert any(0 < v < 1 for v in values), values  # not a degenerate all-0 / all-1 run
    assert any(c["delta"] != 0 for c in res["comparison"].values())  # the adapter is really applied
    table = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert table[0] == "| Metric | Base | Model | Δ | p (McNemar) |" and len(table) == 1 + 3


def _mcnemar(base_log: Path, log: Path, task: str, metric: str) -> tuple[int, int, float]:
    """b, c and the exact McNemar p of one task, from both runs' per-sample logs (scipy)."""
    from scipy.stats import binomtest

    def right(path):
        return {r["doc_id"]: bool(r[metric]) for r in read_jsonl(path) if r["task"] == task}

    first, second = right(base_log), right(log)
    assert first.keys() == second.keys()
    b = sum(second[d] and not first[d] for d in first)
    c = sum(first[d] and not second[d] for d in first)
    return b, c, binomtest(min(b, c), b + c, 0.5).pvalue if b + c else 1.0


def test_limit_fraction_is_lm_evals_float_limit(small_llama3, suite_dir, tmp_path):
    from llamafactory_ext.eval.runner import run

    res = run(_cfg(model_name_or_path=str(small_llama3), source=str(suite_dir), output_dir=str(tmp_path / "o"),
                   tasks=["arc_it,m_mmlu_it"], limit_fraction=0.5, num_fewshot={"m_mmlu_it": 0}, log_samples=False))
    assert {t: (v["n"], v["shots"]) for t, v in res["suite"].items()} == {"arc_it": (3, 0), "m_mmlu_it": (3, 0)}
    assert res["lm_eval"]["limit"] == 0.5 and not (tmp_path / "o" / "predictions.jsonl").exists()


def test_options_parse_from_the_command_line():
    from llamafactory_ext.config import from_argv
    from llamafactory_ext.eval.options import config_for

    cfg = from_argv(config_for, ["task=lm_eval", "tasks=arc_it,hellaswag_it", "limit_fraction=0.2", "num_fewshot.m_mmlu_it=0",
                 "metrics={arc_it: acc}", "model_name_or_path=x"])
    assert (cfg.task, cfg.limit_fraction, cfg.num_fewshot, cfg.metrics) == ("lm_eval", 0.2, {"m_mmlu_it": 0}, {"arc_it": "acc"})
    from llamafactory_ext.config import ConfigError
    from llamafactory_ext.eval.lm_eval import LmEvalTask

    with pytest.raises(ConfigError, match="limit_fraction must be < 1.0"):  # lm-eval reads 1.0 as one document
        from_argv(config_for, ["task=lm_eval", "limit_fraction=1.0"])

    cfg.tasks = ["arc_it,hellaswag_it", "m_mmlu_it"]
    cfg.num_fewshot, cfg.metrics = {"m_mmlu_it": 0}, {"arc_it": "acc"}
    plan = LmEvalTask(cfg).plan()
    assert plan == {"arc_it": {"name": "Arc.IT", "shots": 0, "metric": "acc"},
                    "hellaswag_it": {"name": "HellaSwag.IT", "shots": 0, "metric": "acc_norm"},
                    "m_mmlu_it": {"name": "MMLU.IT", "shots": 0, "metric": "acc"}}


@pytest.mark.parametrize("kw,message", [
    ({"tasks": ["arc_it"], "num_fewshot": {"m_mmlu_it": 5}}, "num_fewshot names m_mmlu_it, not among tasks"),
    ({"tasks": ["arc_itt"]}, "'arc_itt' is not an lm-eval task"),
    ({"limit": 2, "limit_fraction": 0.2}, "not both"),
    ({"temperature": 0.6}, "temperature= does not apply"),
    ({"backend": "vllm"}, "backend=hf"),
    ({"drop": "m_mmlu_it/train.jsonl"}, "m_mmlu_it with 5 shots needs its few-shot split: .*m_mmlu_it/train.jsonl"),
    ({"drop": "hellaswag_it/val.jsonl"}, "hellaswag_it needs .*hellaswag_it/val.jsonl"),
    ({"baseline": "SUITE"}, "not a task=lm_eval result"),
])
def test_clear_errors_before_any_model_is_loaded(small_llama3, tmp_path, kw, message):
    from llamafactory_ext.eval.runner import run
    from llamafactory_ext.eval.tasks import TaskError

    suite = write_suite(tmp_path / "suite")
    kw = dict(kw)
    if "drop" in kw:
        (suite / kw.pop("drop")).unlink()
    if kw.get("baseline") == "SUITE":
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "results.json").write_text(json.dumps({"schema_version": 2, "task": "italic", "modes": {}}))
        kw["baseline"] = str(tmp_path / "other")
    with pytest.raises(TaskError, match=message):
        run(_cfg(model_name_or_path=str(small_llama3), source=str(suite), output_dir=str(tmp_path / "o"), **kw))
    assert not (tmp_path / "o" / "results.json").exists()
