"""``llamafactory-ext card RUN``: a Hub-ready model card (README.md) for a LoRA adapter, from the run itself.

    llamafactory-ext card saves/studies/format                     # a study folder: its last version (version=V3)
    llamafactory-ext card saves/studies/format/V3                  # an adapter folder with its eval/ (a trial)
    llamafactory-ext card results/eval/v3 base_model=Qwen/Qwen3-8B  # an eval folder: the adapter it names
    llamafactory-ext card saves/studies/format push=dry_run repo_id=me/qwen3-8b-italic-v3
    llamafactory-ext card saves/studies/format push=true repo_id=me/qwen3-8b-italic-v3

The card is shaped like the published ones: YAML front matter built and checked by
``huggingface_hub.ModelCardData`` (``base_model``, ``library_name: peft``, ``tags``, ``datasets``,
``language``, ``license`` and the ``model-index`` with every score: each mode's total, category and
macro category as an ``EvalResult``), then the model details (PEFT type and config from
``adapter_config.json``; the trainable parameters from LLaMA-Factory's ``trainable params: ...`` log
line, else counted from the adapter's safetensors shapes), the training data (rows and format from
the ``prepare`` manifest, else counted), the hyperparameters of the recipe as trained (``trial.json``'s
command, ``training_args.yaml`` or ``recipe=``), hardware and time as the trainer logged them, the
evaluation (the reviewer's settings table, the Version Series of a study, per mode Category |
Baseline | Model | Δ with intervals), a usage snippet with ``enable_thinking``, and the limitations
(degenerate runs, protocol differences, warnings of the evaluation).

README.md goes to ``output_dir`` (default: the adapter folder), replacing the Trainer's placeholder
card ("More information needed"); a README.md of another origin is kept unless ``overwrite=true``.
``push=true repo_id=ORG/NAME`` uploads the card, the adapter and the tokenizer files with
``huggingface_hub``; ``push=dry_run`` lists them with their sizes and uploads nothing.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path
from typing import Any

from llamafactory_ext.config import UserError, describe, from_argv, load_config, load_yaml, option

USAGE = "RUN [key=value ...]   (RUN: an eval folder, an adapter folder with its eval/, or a study folder)"
MARKER = "<!-- model card written by `llamafactory-ext card` from the run's own files -->"
PLACEHOLDER = ("More information needed", "This model card has been generated automatically according to the information the Trainer")
UPLOADED = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin", "tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json", "chat_template.jinja", "vocab.json", "merges.txt", "added_tokens.json", "tokenizer.model",
            "generation_config.json", "train_results.json", "all_results.json")


class CardError(UserError):
    pass


@dataclasses.dataclass
class CardConfig:
    """Keys of ``llamafactory-ext card`` (RUN is the one argument without ``=``)."""

    run: list = option([], "RUN: an eval folder, an adapter folder with its eval/, or a study folder")
    version: str | None = option(None, "a study's version to describe (default: its last one)")
    adapter: str | None = option(None, "the adapter folder (default: the study trial, RUN itself, or the one the evaluation names)")
    eval: str | None = option(None, "the evaluation folder (default: RUN/eval for an adapter folder)")
    recipe: str | None = option(None, "the training recipe as trained, when no trial.json or training_args.yaml records it")
    base_model: str | None = option(None, "Hub id of the base model (default: adapter_config.json's base_model_name_or_path)")
    model_name: str | None = option(None, "title and model-index name (default: repo_id's name, else the adapter folder's)")
    repo_id: str | None = option(None, "Hub repository (ORG/NAME) for the usage snippet and push")
    license: str = option("other", "license id of the card (the base model's, e.g. apache-2.0 for Qwen3)")
    language: list | None = option(None, "languages, e.g. [it] (default: the evaluated task's)")
    output_dir: str | None = option(None, "where README.md goes (default: the adapter folder)")
    push: str = option("false", "false | dry_run (list what would be uploaded) | true (upload with huggingface_hub)")
    overwrite: bool = option(False, "replace a README.md that is neither the Trainer's placeholder nor a card of ours")


def options_help() -> str:
    return describe(CardConfig)


@dataclasses.dataclass
class Run:
    """Where a card's facts come from."""

    adapter: Path
    eval_dir: Path
    study: dict[str, Any] | None = None
    version: str | None = None


def _study_run(cfg: CardConfig, root: Path) -> Run:
    study = json.loads((root / "study.json").read_text(encoding="utf-8"))
    names = [v["name"] for v in study.get("versions", []) if v.get("name") != "baseline"]
    if not names:
        raise CardError(f"{root / 'study.json'}: no trained version to describe")
    name = cfg.version or names[-1]
    if name not in names:
        raise CardError(f"{root / 'study.json'}: no version {name!r} (it has {', '.join(names)})")
    row = next(v for v in study["versions"] if v["name"] == name)
    trial = Path(row.get("trial_dir") or root / name)
    trial = trial if trial.is_dir() else root / name
    return Run(Path(cfg.adapter or trial), Path(cfg.eval or trial / "eval"), study, name)


def locate(cfg: CardConfig) -> Run:
    """The adapter, its evaluation and (a study) study.json, from RUN."""
    if len(cfg.run) != 1:
        raise CardError(f"card takes one RUN folder, got {len(cfg.run)}: {' '.join(map(str, cfg.run)) or 'none'}")
    root = Path(str(cfg.run[0]))
    if (root / "study.json").is_file():
        run = _study_run(cfg, root)
    elif (root / "results.json").is_file():
        from llamafactory_ext.eval.results import Results

        named = Results.from_json(root).adapter
        if not (cfg.adapter or named):
            raise CardError(f"{root / 'results.json'} evaluated the base model alone: a card describes an adapter (adapter=PATH)")
        run = Run(Path(cfg.adapter or named), root)
    elif (root / "adapter_config.json").is_file():
        run = Run(Path(cfg.adapter or root), Path(cfg.eval or root / "eval"))
    else:
        raise CardError(f"RUN {root}: neither a study folder (study.json), an eval folder (results.json) nor an adapter "
                        "folder (adapter_config.json)")
    if not (run.adapter / "adapter_config.json").is_file():
        raise CardError(f"adapter {run.adapter}: no adapter_config.json (a card describes a PEFT adapter; adapter=PATH names it)")
    if not (run.eval_dir / "results.json").is_file():
        raise CardError(f"no evaluation of {run.adapter}: {run.eval_dir / 'results.json'} is missing (eval=FOLDER names it)")
    return run


# ----------------------------------------------------------------------------- facts


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def adapter_parameters(adapter: Path) -> int | None:
    """Parameters stored in the adapter's weights, from the safetensors header (no tensor is read)."""
    path = adapter / "adapter_model.safetensors"
    if not path.is_file():
        return None
    from safetensors import safe_open

    total = 0
    with safe_open(str(path), framework="np") as fh:
        for name in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
            shape = fh.get_slice(name).get_shape()
            count = 1
            for dim in shape:
                count *= dim
            total += count
    return total


def trainable(adapter: Path) -> dict[str, Any]:
    """Trainable parameters: LLaMA-Factory's log line when the folder holds train.log (a sweep or
    study trial), and the count of the adapter's weights; ``source`` says which one the card shows."""
    from llamafactory_ext.sweep.trials import train_metrics

    logged = train_metrics(adapter)
    stored = adapter_parameters(adapter)
    if logged.get("trainable_params"):
        return {**logged, "count": logged["trainable_params"], "stored": stored,
                "source": "LLaMA-Factory's log line in train.log"}
    return {**logged, "count": stored, "stored": stored, "source": "counted from adapter_model.safetensors"}


def recipe_as_trained(cfg: CardConfig, adapter: Path) -> tuple[dict[str, Any], str]:
    """The training config as LLaMA-Factory received it, and where it was read from."""
    if cfg.recipe:
        return load_yaml(cfg.recipe), f"`{cfg.recipe}`"
    state = _json(adapter / "trial.json")
    if state.get("train_cmd"):
        words = shlex.split(state["train_cmd"])
        recipe = next((w for w in words if w.endswith((".yaml", ".yml"))), None)
        overrides = [w for w in words if "=" in w]
        for candidate in ([Path(recipe), adapter.parent.parent / recipe, adapter.parent.parent.parent / recipe] if recipe else []):
            if candidate.is_file():
                return load_config(candidate, overrides), f"`{recipe}` with the trial's overrides (trial.json)"
        return load_config(None, overrides), f"the trial's overrides only (trial.json; {recipe} not found here: recipe=PATH)"
    if (adapter / "training_args.yaml").is_file():
        return load_yaml(adapter / "training_args.yaml"), "`training_args.yaml`"
    return {}, "not recorded (recipe=PATH)"


def training_data(recipe: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per data set of the recipe: file, rows (the prepare manifest, else counted),
    source, rows with a thinking trace, formatting."""
    from llamafactory_ext.data.folder import INFO, dataset_names, entry_path, read_info, recipe_folder
    from llamafactory_ext.data.manifest import output_paths
    from llamafactory_ext.thinking import has_thought

    folder = recipe_folder(recipe)
    try:
        info = read_info(folder / INFO)
    except UserError:
        info = {}  # a card still describes the rest; the data table says nothing is known
    out = []
    for name in dataset_names(recipe.get("dataset")):
        entry = info.get(name) if isinstance(info.get(name), dict) else {}
        file = entry_path(folder, entry)
        manifest = _json(output_paths(name, file.parent)["manifest"]) if file else {}
        rows = traces = 0
        if file and file.is_file():
            for line in file.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    rows += 1
                    traces += has_thought(_answers(line))
        out.append({"name": name, "file": str(file) if file else None, "rows": (manifest.get("rows") or {}).get("train", rows if file else None),
                    "val_rows": (manifest.get("rows") or {}).get("val"), "source": (manifest.get("source") or {}).get("source"),
                    "manifest": bool(manifest), "traces": traces if file and file.is_file() else None,
                    "formatting": entry.get("formatting", "alpaca") if entry else None})
    return out


def _answers(line: str) -> str:
    """The assistant turns of one training row (LLaMA-Factory's "has a thought" looks at the answer)."""
    try:
        row = json.loads(line)
    except ValueError:
        return ""
    turns = row.get("messages") or row.get("conversations") if isinstance(row, dict) else None
    if not isinstance(turns, list):
        return str(row.get("output", "")) if isinstance(row, dict) else ""
    return "\n".join(str(t.get("content", t.get("value", ""))) for t in turns
                     if isinstance(t, dict) and t.get("role", t.get("from")) in ("assistant", "gpt"))


def training_run(adapter: Path, metrics: dict[str, Any]) -> list[str]:
    """Hardware and time, as far as the trainer and the trial logged them."""
    import re

    out, results, state = [], _json(adapter / "train_results.json"), _json(adapter / "trial.json")
    log = (adapter / "train.log").read_text(encoding="utf-8", errors="replace") if (adapter / "train.log").is_file() else ""
    device = re.search(r"world size: (\d+), device: ([^,]+), distributed training: (\w+), compute dtype: ([^\s]+)", log)
    if device:
        out.append(f"device {device.group(2)}, world size {device.group(1)}, distributed {device.group(3)}, "
                   f"compute dtype {device.group(4)} (LLaMA-Factory's log)")
    if state.get("host") or state.get("cuda_visible_devices") is not None:
        out.append(f"host `{state.get('host')}`, CUDA_VISIBLE_DEVICES `{state.get('cuda_visible_devices') or ''}` (trial.json)")
    if results:
        out.append(f"train runtime {results.get('train_runtime')} s, {results.get('train_samples_per_second')} samples/s, "
                   f"epoch {results.get('epoch')}, mean loss {results.get('train_loss')} (train_results.json)")
    if metrics.get("final_loss") is not None:
        out.append(f"final logged loss {metrics['final_loss']:.4g} (trainer_log.jsonl)")
    out.append(f"peak GPU memory {metrics['peak_vram_gb']} GB (trainer_log.jsonl)" if metrics.get("peak_vram_gb")
               else "peak GPU memory: not logged")
    if state.get("train_wall_s"):
        out.append(f"training process wall time {state['train_wall_s']} s, peak RSS {state.get('peak_rss_gb')} GB (trial.json)")
    return out or ["not logged"]


# ----------------------------------------------------------------------------- command


def _card_path(cfg: CardConfig, run: Run) -> Path:
    out = Path(cfg.output_dir) if cfg.output_dir else run.adapter
    path = out / "README.md"
    if path.is_file() and not cfg.overwrite:
        text = path.read_text(encoding="utf-8", errors="replace")
        if MARKER not in text and not any(p in text for p in PLACEHOLDER):
            raise CardError(f"{path} exists and is neither the Trainer's placeholder nor a card of ours: overwrite=true replaces it")
    return path


def upload_list(run: Run, card: Path) -> list[tuple[Path, str]]:
    """(local file, path in the repository) for each file a push uploads."""
    return [(card, "README.md")] + [(run.adapter / n, n) for n in UPLOADED if (run.adapter / n).is_file()]


def push(cfg: CardConfig, files: list[tuple[Path, str]], base_model: str) -> None:
    mode = str(cfg.push).lower()
    if mode in ("false", "none", ""):
        return
    if mode not in ("true", "dry_run"):
        raise CardError(f"push must be false, dry_run or true, got {cfg.push!r}")
    target = cfg.repo_id or "<repo_id>"
    total = sum(f.stat().st_size for f, _ in files)
    print(f"card: {'would upload' if mode == 'dry_run' else 'uploading'} {len(files)} files ({total:,} bytes) to {target}:")
    for f, name in files:
        print(f"  {name:<32} {f.stat().st_size:>14,} bytes  ({f})")
    if mode == "dry_run":
        print("card: dry run, nothing uploaded")
        return
    if not cfg.repo_id:
        raise CardError("push=true needs repo_id=ORG/NAME")
    if Path(base_model).exists():
        raise CardError(f"base_model {base_model!r} is a local folder: give base_model=ORG/NAME (its Hub id) before pushing")
    from huggingface_hub import CommitOperationAdd, HfApi

    try:
        api = HfApi()
        api.create_repo(cfg.repo_id, repo_type="model", exist_ok=True)
        api.create_commit(cfg.repo_id, [CommitOperationAdd(path_in_repo=n, path_or_fileobj=str(f)) for f, n in files],
                          commit_message="Upload adapter and model card (llamafactory-ext card)")
    except Exception as exc:  # noqa: BLE001 - offline, no token, no rights: one line, not a traceback
        raise CardError(f"push to {cfg.repo_id} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    print(f"card: pushed to https://huggingface.co/{cfg.repo_id}")


def render_card(cfg: CardConfig, run: Run) -> tuple[str, str]:
    """(README.md text, base model id) of ``run``'s adapter."""
    from huggingface_hub import ModelCard

    from llamafactory_ext.card_render import (
        MODE_LABEL,
        data_lines,
        details_lines,
        eval_lines,
        front_matter,
        hub_dataset,
        hyper_lines,
        limitation_lines,
        reproduce_lines,
        usage_lines,
    )
    from llamafactory_ext.eval.results import Results

    peft = json.loads((run.adapter / "adapter_config.json").read_text(encoding="utf-8"))
    base_model = cfg.base_model or peft.get("base_model_name_or_path") or "unknown"
    res = Results.from_json(run.eval_dir)
    recipe, source = recipe_as_trained(cfg, run.adapter)
    data, counts = training_data(recipe), trainable(run.adapter)
    name = cfg.model_name or (cfg.repo_id.split("/")[-1] if cfg.repo_id else run.version or run.adapter.name)
    kind = {"LORA": "LoRA"}.get(str(peft.get("peft_type")), str(peft.get("peft_type", "PEFT")))
    task = hub_dataset(res).name
    body = [f"# {name}", "",
            (f"A {kind} adapter of `{base_model}`, trained with LLaMA-Factory"
             + (f" on {', '.join(d['name'] for d in data)}" if data else "") + f" and evaluated on {task} "
             + (f"in {' and '.join(MODE_LABEL.get(m, m) for m in res.modes)} mode." if res.modes else "(lm-eval suite).")), "",
            *details_lines(peft, counts, base_model, recipe), "", *data_lines(data), "",
            *hyper_lines(recipe, source, training_run(run.adapter, counts)), "", *eval_lines(res, run.study), "",
            *usage_lines(base_model, cfg.repo_id or str(run.adapter), res), "", *limitation_lines(res, counts, base_model), "",
            *reproduce_lines(run.adapter), MARKER, ""]
    text = "---\n" + front_matter(cfg, res, data, base_model, name, str(peft.get("peft_type", "lora"))) + "\n---\n\n" + "\n".join(body)
    try:
        ModelCard(text)  # the Hub's own parser reads the metadata back
    except Exception as exc:  # noqa: BLE001 - a card the Hub would reject is our bug, named in one line
        raise CardError(f"the card's metadata does not parse: {exc}") from None
    return text, base_model


def main(argv: list[str]) -> int:
    from llamafactory_ext.io import atomic_write_text

    cfg = from_argv(CardConfig, argv, positional="run")
    run = locate(cfg)
    path = _card_path(cfg, run)
    text, base_model = render_card(cfg, run)
    atomic_write_text(path, text)
    print(f"card: wrote {path}")
    push(cfg, upload_list(run, path), base_model)
    return 0
