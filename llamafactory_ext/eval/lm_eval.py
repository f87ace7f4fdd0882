"""``task=lm_eval``: the Italian benchmark suite of LLaMAntino-3-ANITA (Arc.IT, HellaSwag.IT, MMLU.IT)
run by lm-evaluation-harness itself, with its own task definitions, prompts and metrics.

    llamafactory-ext eval task=lm_eval model_name_or_path=swap-uniba/LLaMAntino-3-ANITA-8B-Inst-DPO-ITA
    llamafactory-ext eval task=lm_eval model_name_or_path=saves/anita_dpo_merged adapter_name_or_path=saves/anita_italian_qlora \\
        baseline=results/eval/lm_eval_base output_dir=results/eval/lm_eval_italian
    llamafactory-ext eval task=lm_eval model_name_or_path=... limit_fraction=0.2     # the published 20 % subset
    llamafactory-ext eval task=lm_eval model_name_or_path=... source=ITALIAN_SUITE_DIR  # offline, local copies

Nothing here re-implements a benchmark: each task is lm-eval's own okapi task (``arc_it``,
``hellaswag_it``, ``m_mmlu_it``), called through ``lm_eval.simple_evaluate`` with lm-eval's HF model
(``peft=`` for an adapter), with the published shots and metrics: arc_it and hellaswag_it 0-shot
``acc_norm``, m_mmlu_it 5-shot ``acc`` (``num_fewshot.TASK=N`` / ``metrics.TASK=NAME`` override them).
The only thing written per task is a small YAML that ``include:``s lm-eval's own file and sets the
shots and, with ``source=DIR``, the local data; these YAMLs are kept in ``OUTPUT_DIR/lm_eval_tasks/``
and loaded through a ``TaskManager`` that indexes only that folder (indexing all of lm-eval's tasks
takes ~30 s).

``source=DIR`` (offline): ``DIR/TASK/SPLIT.jsonl`` (or ``.json``) in each task's own Hub schema,
SPLIT being the task's own split names:

- ``arc_it/test.jsonl``: ``id``, ``instruction``, ``option_a`` ... ``option_e`` (unused ones null or
  empty), ``answer`` (a letter) -- alexandrainst/m_arc, config ``it``;
- ``hellaswag_it/val.jsonl``: ``activity_label``, ``ctx_a``, ``ctx_b``, ``endings`` (4 strings),
  ``label`` (a digit string) -- alexandrainst/m_hellaswag, config ``it``;
- ``m_mmlu_it/test.jsonl`` + ``m_mmlu_it/train.jsonl`` (the few-shot examples, taken in order):
  ``instruction``, ``option_a`` ... ``option_d``, ``answer`` (a letter) -- alexandrainst/m_mmlu, ``it``.

A declared split without a file is switched off (an error when it is the split to evaluate, or the
few-shot split of a task run with shots). ``limit=N`` evaluates the first N documents of each task;
``limit_fraction=0.2`` the first 20 % (lm-eval's float limit: the published "20 % subset").

Outputs (``output_dir``, default ``results/eval/lm_eval``): ``results.json`` (schema_version 3, with a
``suite`` block ``{TASK: {"metric", "value", "stderr", "n", "shots"}}`` holding lm-eval's numbers as
it returned them, and lm-eval's own ``results`` / ``n-shot`` / ``n-samples`` under ``lm_eval``),
``results.md`` (Metric | Base | Model | Δ | p, values ± stderr, Base from ``baseline=`` another such run, p the
exact McNemar test of the two runs' per-sample logs),
``predictions.jsonl`` (lm-eval's per-document log-likelihoods and scores).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from llamafactory_ext.config import option
from llamafactory_ext.eval.report import SCHEMA_VERSION
from llamafactory_ext.eval.tasks import SuiteTask, TaskError

# The suite as published for LLaMAntino-3-ANITA: lm-eval task -> (table name, shots, metric).
PUBLISHED: dict[str, tuple[str, int, str]] = {
    "arc_it": ("Arc.IT", 0, "acc_norm"),
    "hellaswag_it": ("HellaSwag.IT", 0, "acc_norm"),
    "m_mmlu_it": ("MMLU.IT", 5, "acc"),
}
# Where lm-eval 0.4.x keeps them (other tasks are searched by name under lm_eval/tasks).
KNOWN_YAML = {
    "arc_it": "okapi/arc_multilingual/arc_it.yaml",
    "hellaswag_it": "okapi/hellaswag_multilingual/hellaswag_it.yaml",
    "m_mmlu_it": "okapi/mmlu_multilingual/m_mmlu_it.yaml",
}
SPLIT_KEYS = ("training_split", "validation_split", "test_split", "fewshot_split")
TASK_DIR = "lm_eval_tasks"
PREDICTIONS = "predictions.jsonl"
# EvalConfig keys that only mean something for the generate-and-score tasks, with the values that
# leave them unset (anything else is an error: lm-eval would silently ignore it)
UNUSED: dict[str, tuple[Any, ...]] = {"predictions": (None,), "faithfulness": (False,), "seeds": (None, []),
                                      "temperature": (None, 0, 0.0), "top_p": (None,), "max_new_tokens": (None,),
                                      "cutoff": ("wrong",)}


@dataclasses.dataclass
class LmEvalOptions:
    """``task=lm_eval``'s own keys (lm-eval runs the benchmarks; these choose which and how)."""

    # option() returns a dataclasses.field (a list default is copied per instance)
    tasks: list[str] = option(list(PUBLISHED), "lm-eval task names (default: the published Italian suite)")
    num_fewshot: dict[str, int] | None = option(None, "shots per task, overriding the published ones: num_fewshot.m_mmlu_it=0")
    metrics: dict[str, str] | None = option(None, "metric per task, overriding the published one: metrics.arc_it=acc")
    limit_fraction: float | None = option(None, "the first fraction of each task's documents, 0 < F < 1 (0.2 = the published "
                                                "20 % subset; lm-eval reads a limit of 1.0 as ONE document)", gt=0.0, lt=1.0)
    lm_eval_batch_size: str | None = option(None, "lm-eval's batch_size: N, auto or auto:K (default: batch_size, else 8)")
    model_args: str | None = option(None, "extra arguments of lm-eval's HF model, e.g. 'load_in_4bit=True,add_bos_token=True'")
    apply_chat_template: bool = option(False, "wrap each prompt in the tokenizer's chat template (lm-eval's flag; off as published)")
    log_samples: bool = option(True, "write lm-eval's per-document log-likelihoods and scores to predictions.jsonl")


def lm_eval_tasks_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        raise TaskError("task=lm_eval needs lm-evaluation-harness: pip install 'llamafactory-ext[lm_eval]' (lm-eval==0.4.13)")
    return Path(next(iter(spec.submodule_search_locations))) / "tasks"


def original_yaml(task: str) -> Path:
    """lm-eval's own YAML of ``task`` (a file whose ``task:`` is that name)."""
    root = lm_eval_tasks_dir()
    if task in KNOWN_YAML and (root / KNOWN_YAML[task]).is_file():
        return root / KNOWN_YAML[task]
    from lm_eval.tasks._yaml_loader import load_yaml

    for path in sorted(root.rglob(f"{task}.yaml")):
        try:
            if load_yaml(path, resolve_func=False).get("task") == task:
                return path
        except Exception:  # noqa: BLE001, S112 - an unreadable candidate is not the task
            continue
    raise TaskError(f"task=lm_eval: {task!r} is not an lm-eval task (no {task}.yaml under {root}); "
                    "the published suite is arc_it, hellaswag_it, m_mmlu_it")


def _local_file(folder: Path, split: str) -> Path | None:
    for ext in (".jsonl", ".json"):
        if (folder / f"{split}{ext}").is_file():
            return folder / f"{split}{ext}"
    return None


def derived_config(task: str, shots: int, source: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    """The YAML that runs lm-eval's ``task`` with ``shots`` (and, with ``source``, local files):
    (config, {split: local file})."""
    from lm_eval.tasks._yaml_loader import load_yaml

    path = original_yaml(task)
    cfg: dict[str, Any] = {"include": str(path), "task": task, "num_fewshot": shots}
    if source is None:
        return cfg, {}
    orig = load_yaml(path, resolve_func=False)
    folder = Path(source) / task
    declared = {key: orig.get(key) for key in SPLIT_KEYS if orig.get(key)}
    files: dict[str, str] = {}
    for key, split in declared.items():
        found = _local_file(folder, split)
        if found is None:
            cfg[key] = None  # no local copy of that split: lm-eval must not look for it
        else:
            files[split] = str(found.resolve())
    eval_split = declared.get("test_split") or declared.get("validation_split")
    if eval_split is None or eval_split not in files:
        wanted = [declared[k] for k in ("test_split", "validation_split") if k in declared]
        raise TaskError(f"source={source}: {task} needs {folder}/{wanted[0] if wanted else 'test'}.jsonl "
                        f"(its {'test' if 'test_split' in declared else 'validation'} split, in the task's own schema; "
                        "see `llamafactory-ext eval --help`)")
    if shots > 0:
        shot_splits = [declared[k] for k in ("fewshot_split", "training_split", "validation_split") if k in declared]
        if not any(s in files for s in shot_splits):
            raise TaskError(f"source={source}: {task} with {shots} shots needs its few-shot split: "
                            f"{folder}/{shot_splits[0] if shot_splits else 'train'}.jsonl")
    cfg.update(dataset_path="json", dataset_name=None, dataset_kwargs={"data_files": dict(files)})
    return cfg, files


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None


def suite_block(raw: dict[str, Any], plan: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{TASK: {metric, value, stderr, n, shots}}: lm-eval's numbers, taken as they are."""
    out: dict[str, dict[str, Any]] = {}
    for task, p in plan.items():
        scores = raw["results"].get(task)
        if scores is None:
            raise TaskError(f"lm-eval returned no result for {task}")
        metric = p["metric"]
        keys = [k for k in scores if k.split(",")[0] == metric and not k.startswith(f"{metric}_stderr")]
        if not keys:
            known = sorted({k.split(",")[0] for k in scores if "," in k and "_stderr" not in k})
            raise TaskError(f"lm-eval's {task} has no metric {metric!r}; it reports {', '.join(known)}")
        key = f"{metric},none" if f"{metric},none" in keys else keys[0]
        flt = key.split(",", 1)[1]
        out[task] = {
            "metric": metric, "value": scores[key], "stderr": _number(scores.get(f"{metric}_stderr,{flt}")),
            "n": int(raw.get("n-samples", {}).get(task, {}).get("effective", scores.get("sample_len", 0)) or 0),
            "shots": int(raw.get("n-shot", {}).get(task, p["shots"])),
            "name": p["name"], "filter": flt,
        }
    return out


# ----------------------------------------------------------------------------- report


def _cell(v: dict[str, Any] | None) -> str:
    if not v or _number(v.get("value")) is None:
        return "—"
    return f"{v['value']:.4f}" + (f" ± {v['stderr']:.4f}" if v.get("stderr") is not None else "")


def compare_suites(model: dict[str, Any], base: dict[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    """Per task: Δ = model - base when both measured the same metric with the same shots."""
    deltas: dict[str, Any] = {}
    warnings: list[str] = []
    for task, m in model.items():
        b = (base or {}).get(task)
        if not b:
            if base is not None:
                warnings.append(f"the baseline has no {task}: no Δ")
            continue
        if (b.get("metric"), b.get("shots")) != (m["metric"], m["shots"]):
            warnings.append(f"{task}: the baseline measured {b.get('metric')} {b.get('shots')}-shot, this run {m['metric']} "
                            f"{m['shots']}-shot: no Δ")
            continue
        if b.get("n") != m["n"]:
            warnings.append(f"{task}: the baseline scored {b.get('n')} documents, this run {m['n']}: Δ compares different subsets")
        deltas[task] = {"delta": m["value"] - b["value"], "base": b["value"], "base_stderr": b.get("stderr"), "base_n": b.get("n")}
    return deltas, warnings


def render_markdown(results: dict[str, Any]) -> str:
    model = results["model"]
    name = model["model_name_or_path"] + (f" + {model['adapter_name_or_path']}" if model.get("adapter_name_or_path") else "")
    lm = results["lm_eval"]
    out = [f"# {results['task']} evaluation", "",
           f"Model: `{name}` · lm-eval {lm['version']} (its own tasks, prompts and metrics) · "
           + (f"limit {lm['limit']} · " if lm.get("limit") is not None else "all documents · ")
           + (f"source `{results['source']['source']}`" if results["source"].get("source") else "Hub data")]
    if results.get("baseline"):
        out.append(f"Baseline: `{results['baseline']}`")
    out += ["", "| Metric | Base | Model | Δ | p (McNemar) |", "|---|---:|---:|---:|---:|"]
    comparison = results.get("comparison", {})
    for task, v in results["suite"].items():
        c = comparison.get(task)
        base = {"value": c["base"], "stderr": c["base_stderr"]} if c else None
        delta = f"{c['delta']:+.4f}" if c else "—"
        pair = (c or {}).get("paired")
        p = f"{pair['p_value']:.3g} (b {pair['model_only']} / c {pair['baseline_only']})" if pair and pair["n"] else "—"
        out.append(f"| {v['name']} ({task} · {v['metric']} · {v['shots']}-shot · n {v['n']}) | {_cell(base)} | {_cell(v)} | {delta} | {p} |")
    out += ["", ("Values are lm-eval's, as it returned them (fractions), ± its standard error; Δ = Model − Base on the same "
                 "metric and shots; p: exact McNemar test on the documents both per-sample logs hold (b: right only in "
                 "Model, c: only in Base). lm-eval's limit takes the first documents of each task, not a random sample.")]
    if results.get("warnings"):
        out += ["", "## Warnings", ""] + [f"- {w}" for w in results["warnings"]]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- the task


class LmEvalTask(SuiteTask):
    """A suite task: lm-eval's own loop runs it (the runner hands :meth:`run` the resolved run)."""

    name = "lm_eval"
    label = "lm-eval Italian suite"
    options: ClassVar[type] = LmEvalOptions
    languages: ClassVar[tuple[str, ...]] = ("it",)

    def summary_line(self, results: dict[str, Any]) -> str:
        return "; ".join(f"{v['name']} {v['metric']} {v['value']:.4f} (n {v['n']}, {v['shots']}-shot)"
                         for v in results["suite"].values())

    def plan(self) -> dict[str, dict[str, Any]]:
        cfg = self.cfg
        cfg.tasks = [t.strip() for item in cfg.tasks or [] for t in str(item).split(",") if t.strip()]  # tasks=a,b,c
        if not cfg.tasks:
            raise TaskError("task=lm_eval: tasks is empty")
        if len(set(cfg.tasks)) != len(cfg.tasks):
            raise TaskError(f"task=lm_eval: a task is listed twice in tasks={','.join(cfg.tasks)}")
        for key, what in (("num_fewshot", "shots"), ("metrics", "metric")):
            extra = set(getattr(cfg, key) or {}) - set(cfg.tasks)
            if extra:
                raise TaskError(f"task=lm_eval: {key} names {', '.join(sorted(extra))}, not among tasks={','.join(cfg.tasks)}")
        plan = {}
        for task in cfg.tasks:
            name, shots, metric = PUBLISHED.get(task, (task, 0, "acc_norm"))
            shots = int((cfg.num_fewshot or {}).get(task, shots))
            if shots < 0:
                raise TaskError(f"task=lm_eval: num_fewshot for {task} must be >= 0, got {shots}")
            plan[task] = {"name": name, "shots": shots, "metric": str((cfg.metrics or {}).get(task, metric))}
        return plan

    def _check(self) -> None:
        cfg = self.cfg
        if cfg.backend != "hf":
            raise TaskError("task=lm_eval runs lm-eval's HF model: backend=hf (lm-eval's own vllm model is not wired here)")
        for key, unset in UNUSED.items():
            if getattr(cfg, key, unset[0]) not in unset:
                raise TaskError(f"task=lm_eval: {key}= does not apply (lm-eval scores log-likelihoods of its own prompts)")
        if cfg.limit is not None and cfg.limit_fraction is not None:
            raise TaskError("task=lm_eval: give limit=N (documents per task) or limit_fraction=F, not both")
        if cfg.source is not None and not Path(cfg.source).is_dir():
            raise TaskError(f"source={cfg.source}: task=lm_eval reads a folder of local copies (SOURCE/TASK/SPLIT.jsonl)")

    def run(self, run: Any) -> dict[str, Any]:
        """Run the suite through ``lm_eval.simple_evaluate``; write results.json / results.md /
        predictions.jsonl in ``run.output_dir`` (an ``eval.resolve.EvalRun``); return the results dict."""
        from llamafactory_ext.eval.engine import check_model_path, resolve_device
        from llamafactory_ext.io import FolderLock, ensure_dir

        cfg = self.cfg
        self._check()
        plan = self.plan()
        check_model_path(cfg.model_name_or_path)
        if cfg.adapter_name_or_path:
            check_model_path(cfg.adapter_name_or_path, "adapter_name_or_path")
        baseline = load_baseline(cfg.baseline) if cfg.baseline else None
        out = ensure_dir(run.output_dir)
        with FolderLock(out):
            files = write_task_configs(out / TASK_DIR, plan, cfg.source)
            device = resolve_device(cfg.device)
            model_args = self.model_args(device)
            limit = cfg.limit if cfg.limit is not None else cfg.limit_fraction
            started = time.time()
            raw = evaluate(model_args, plan, out / TASK_DIR, device, limit, cfg, run.system)
            suite = suite_block(raw, plan)
            # the runner's template checks are about chat prompts; lm-eval builds its own
            warnings = [w for w in run.warnings if "with template" not in w and "differs from the recipe's training template" not in w]
            comparison, more = compare_suites(suite, baseline["suite"] if baseline else None)
            samples = list(sample_rows(raw, plan)) if cfg.log_samples else []
            if baseline is not None:  # McNemar per task from both runs' per-sample logs
                from llamafactory_ext.eval.baseline import suite_paired

                more += suite_paired(comparison, cfg.baseline, samples, suite)
            results = self.results_dict(run, suite, comparison, raw, files, model_args, device, limit, warnings + more)
            results["wall_time_s"] = round(time.time() - started, 3)
            write_outputs(out, results, samples if cfg.log_samples else None)
        for w in results["warnings"]:
            print(f"eval: warning: {w}", file=sys.stderr)
        print("lm_eval: " + "; ".join(f"{v['name']} {v['metric']} {_cell(v)} (n {v['n']}, {v['shots']}-shot)" for v in suite.values()))
        return results

    def model_args(self, device: str) -> dict[str, Any]:
        """lm-eval's HF model arguments: the model, its dtype, the adapter (``peft``), ``model_args=``."""
        from llamafactory_ext.eval.engine import resolve_dtype

        cfg = self.cfg
        args: dict[str, Any] = {"pretrained": cfg.model_name_or_path, "dtype": resolve_dtype(cfg.dtype, device)}
        if cfg.adapter_name_or_path:
            args["peft"] = cfg.adapter_name_or_path
        if cfg.model_args:
            from lm_eval.utils import simple_parse_args_string

            args.update(simple_parse_args_string(cfg.model_args))
        return args

    def results_dict(self, run: Any, suite: dict[str, Any], comparison: dict[str, Any], raw: dict[str, Any],
                     files: dict[str, dict[str, str]], model_args: dict[str, Any], device: str, limit: float | None,
                     warnings: list[str]) -> dict[str, Any]:
        import lm_eval

        from llamafactory_ext.io import sha256_file

        cfg = self.cfg
        return {
            "schema_version": SCHEMA_VERSION,
            "task": self.name,
            "source": {"source": cfg.source, "files": {t: {s: sha256_file(f) for s, f in used.items()} for t, used in files.items()}},
            "items": {"count": sum(v["n"] for v in suite.values()), "per_task": {t: v["n"] for t, v in suite.items()}},
            "suite": suite,
            "comparison": comparison,
            "model": {"model_name_or_path": cfg.model_name_or_path, "adapter_name_or_path": cfg.adapter_name_or_path,
                      "backend": "lm-eval hf", "device": device, "dtype": model_args["dtype"]},
            "config": dataclasses.asdict(cfg) | {"system": run.system},
            "lm_eval": {"version": lm_eval.__version__, "limit": limit, "model_args": model_args,
                        "results": raw["results"], "n-shot": raw.get("n-shot"), "n-samples": raw.get("n-samples"),
                        "higher_is_better": raw.get("higher_is_better"), "versions": raw.get("versions"),
                        "task_configs": f"{TASK_DIR}/"},
            "warnings": warnings,
            "baseline": str(cfg.baseline) if cfg.baseline else None,
            "predictions_file": PREDICTIONS if cfg.log_samples else None,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }


def write_task_configs(task_dir: Path, plan: dict[str, dict[str, Any]], source: str | None) -> dict[str, dict[str, str]]:
    """One small YAML per task in ``task_dir`` (lm-eval's own file ``include:``d, shots and local data
    set); the YAMLs of tasks no longer planned removed. Returns {task: {split: local file}}."""
    import yaml

    from llamafactory_ext.io import atomic_write_text, ensure_dir

    ensure_dir(task_dir)
    files: dict[str, dict[str, str]] = {}
    for task, p in plan.items():
        config, used = derived_config(task, p["shots"], source)
        atomic_write_text(task_dir / f"{task}.yaml", yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        files[task] = used
    for stale in task_dir.glob("*.yaml"):
        if stale.stem not in plan:
            stale.unlink()
    return files


def write_outputs(out: Path, results: dict[str, Any], samples: list[dict[str, Any]] | None) -> None:
    """results.json / results.md, and predictions.jsonl: lm-eval's per-sample log (None: not logged)."""
    from llamafactory_ext.io import atomic_write_json, atomic_write_text, write_jsonl

    if samples is not None:
        write_jsonl(out / PREDICTIONS, samples)
    else:
        (out / PREDICTIONS).unlink(missing_ok=True)
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "results.md", render_markdown(results))


def evaluate(model_args: dict[str, Any], plan: dict[str, dict[str, Any]], task_dir: Path, device: str,
             limit: float | None, cfg: Any, system: str | None) -> dict[str, Any]:
    """``lm_eval.simple_evaluate`` on our task folder only; lm-eval's result dict, unchanged."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    batch = cfg.lm_eval_batch_size or cfg.batch_size or 8
    try:
        raw = lm_eval.simple_evaluate(
            model="hf", model_args=model_args, tasks=list(plan), task_manager=TaskManager(include_path=str(task_dir), include_defaults=False),
            batch_size=batch, device=device, limit=limit, log_samples=cfg.log_samples, system_instruction=system,
            apply_chat_template=cfg.apply_chat_template, num_fewshot=None,
        )
    except (ConnectionError, OSError) as exc:
        hint = "" if cfg.source else " Offline? Give source=DIR with local copies of each task (see `llamafactory-ext eval --help`)."
        raise TaskError(f"lm-eval could not load a model or a data set: {type(exc).__name__}: {str(exc).splitlines()[0]}.{hint}") from exc
    if raw is None:
        raise TaskError("lm-eval returned no results (not the main process?)")
    return raw


def sample_rows(raw: dict[str, Any], plan: dict[str, dict[str, Any]]):
    """One row per scored document: task, doc id, gold, lm-eval's per-choice (log-likelihood,
    is-greedy) and its per-document metric values."""
    for task in plan:
        for s in raw.get("samples", {}).get(task, []):
            metrics = {m: s[m] for m in s.get("metrics", []) if m in s}
            args = s.get("arguments") or []
            yield {"task": task, "doc_id": s.get("doc_id"), "target": s.get("target"), "context": args[0][0] if args else None,
                   "choices": [a[1] for a in args], "loglikelihoods": s.get("filtered_resps"), **metrics}


def load_baseline(path: str) -> dict[str, Any]:
    p = Path(path)
    p = p / "results.json" if p.is_dir() else p
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TaskError(f"baseline={path}: cannot read {p}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("suite"), dict):
        raise TaskError(f"baseline={path}: {p} is not a task=lm_eval result (no 'suite' block)")
    return data
