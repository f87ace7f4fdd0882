"""The run of ``inspect``: LLaMA-Factory's own argument dataclasses, loader, converter, tokenizer and
template on a recipe, every data set through the analyser (``inspect/analysis.py``), then the
lints (``inspect/lints.py``) and the report dict that ``inspect/render.py`` renders."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from llamafactory_ext.config import unknown_key_error
from llamafactory_ext.inspect.analysis import Analyzer, Arguments, DatasetStats, InspectError, first_line
from llamafactory_ext.inspect.lints import make_lints
from llamafactory_ext.inspect.options import InspectOptions, parse_argv

SUPPORTED_STAGES = ("sft", "pt")
FIXTURE = "fixture"
CACHE_ENV = "LLAMAFACTORY_EXT_CACHE"  # where tokenizer=fixture is cached (default ~/.cache/llamafactory-ext)


def build_arguments(recipe: dict[str, Any], where: str, model_path: str, workdir: str) -> Arguments:
    """LLaMA-Factory's argument dataclasses for the data pipeline only.

    Model, data and finetuning keys go through LLaMA-Factory's ``HfArgumentParser`` (their own
    ``__post_init__`` checks run); of the training keys only ``seed`` / ``data_seed`` matter to the
    data, so ``TrainingArguments`` gets those, ``do_train`` and a temp ``output_dir``: no bf16,
    DeepSpeed or quantization check can fire on a machine without a GPU. The post-processing that
    ``get_train_args`` applies to the data (``packing`` default for ``pt``, ``model_max_length``)
    and its data checks for non-sft stages are repeated here.
    """
    from llamafactory.hparams import (
        DataArguments,
        FinetuningArguments,
        ModelArguments,
        TrainingArguments,
    )
    from transformers import HfArgumentParser

    def fields(cls: type) -> set[str]:
        return {f.name for f in dataclasses.fields(cls) if f.init}

    classes = (ModelArguments, DataArguments, FinetuningArguments)
    wanted = fields(ModelArguments) | fields(DataArguments) | fields(FinetuningArguments)
    values = {k: v for k, v in recipe.items() if k in wanted}
    values["model_name_or_path"] = model_path
    try:
        model_args, data_args, finetuning_args = HfArgumentParser(classes).parse_dict(values)
        train_values = {"output_dir": workdir, "do_train": True, "report_to": "none",
                        "seed": recipe.get("seed", 42)}
        if recipe.get("data_seed") is not None:
            train_values["data_seed"] = recipe["data_seed"]
        (training_args,) = HfArgumentParser([TrainingArguments]).parse_dict(train_values)
    except (ValueError, TypeError, AssertionError) as exc:
        raise InspectError(f"{where}: {first_line(exc)}") from None
    stage = finetuning_args.stage
    if stage != "sft":  # the same checks as llamafactory.hparams.get_train_args
        if data_args.neat_packing:
            raise InspectError(f"{where}: `neat_packing` cannot be set as True except SFT (stage {stage})")
        if data_args.train_on_prompt or data_args.mask_history:
            raise InspectError(f"{where}: `train_on_prompt` or `mask_history` cannot be set as True except SFT")
    if not data_args.dataset:
        raise InspectError(f"{where}: no `dataset`: nothing to inspect")
    model_args.model_max_length = data_args.cutoff_len
    model_args.block_diag_attn = data_args.neat_packing
    data_args.packing = data_args.packing if data_args.packing is not None else stage == "pt"
    return Arguments(model_args, data_args, finetuning_args, training_args)


# ---------------------------------------------------------------------------------------------
# tokenizer
# ---------------------------------------------------------------------------------------------
def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "llamafactory-ext")


def fixture_tokenizer_dir() -> Path:
    """The tiny fixture's tokenizer (Qwen3's real ids), built once into the cache, no model."""
    from llamafactory_ext.fixtures import FIXTURE_VERSION, build_tokenizer_json
    from llamafactory_ext.io import atomic_build_dir, ensure_dir

    root = ensure_dir(cache_root(), "cache folder")
    target = root / f"qwen3-fixture-tokenizer-v{FIXTURE_VERSION}"
    if (target / "tokenizer.json").is_file() and (target / "tokenizer_config.json").is_file():
        return target

    def build(tmp: Path) -> None:
        try:
            build_tokenizer_json(tmp)
        except RuntimeError as exc:
            raise InspectError(f"tokenizer=fixture: {exc}") from None

    atomic_build_dir(target, build)
    return target


def tokenizer_source(path: str, model: str, opts: InspectOptions) -> tuple[str, str]:
    """(where the tokenizer is loaded from, how the report names it)."""
    if opts.tokenizer == FIXTURE:
        return str(fixture_tokenizer_dir()), "fixture"
    if opts.tokenizer:
        if opts.tokenizer.startswith(("/", "./", "../", "~")) and not Path(opts.tokenizer).expanduser().is_dir():
            raise InspectError(f"tokenizer folder not found: {opts.tokenizer}")
        return (str(Path(opts.tokenizer).expanduser()) if opts.tokenizer.startswith("~") else opts.tokenizer), opts.tokenizer
    if model:
        return model, model
    raise InspectError(f"{path}: no model_name_or_path (and no tokenizer=PATH)")


def _load_tokenizer(model_args: Any, label: str) -> tuple[Any, str | None]:
    """(tokenizer, its chat template before LLaMA-Factory replaces it)."""
    from llamafactory.model import load_tokenizer

    if model_args.trust_remote_code:
        print(f"inspect: warning: trust_remote_code: true lets {model_args.model_name_or_path} run its own Python code "
              "while its tokenizer loads", file=sys.stderr)
    try:
        module = load_tokenizer(model_args)
    except Exception as exc:  # noqa: BLE001 - one clear line, no traceback
        cause = exc.__cause__ or exc
        raise InspectError(
            f"cannot load the tokenizer of {label} ({first_line(cause)}): a Hub id needs the network or the "
            "Hugging Face cache; pass tokenizer=PATH, or tokenizer=fixture for the offline Qwen3-id tokenizer"
        ) from None
    tokenizer = module["tokenizer"]
    chat_template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    return tokenizer, chat_template


def _tokenizer(args: Arguments, tok_path: str, tok_label: str, cache: dict | None) -> tuple[Any, str | None]:
    """The tokenizer (and its own chat template), from ``cache`` when it holds one loaded the same way
    (keyed by path and template: LLaMA-Factory's template fix may change its eos or chat template)."""
    model = args.model
    key = (tok_path, args.data.template, model.use_fast_tokenizer, model.split_special_tokens,
           tuple(model.add_tokens or ()), tuple(model.add_special_tokens or ()))
    if cache is not None and key in cache:
        return cache[key]
    loaded = _load_tokenizer(model, tok_label)
    if cache is not None:
        cache[key] = loaded
    return loaded


def _template(tokenizer: Any, args: Arguments, path: str) -> Any:
    """LLaMA-Factory's template for the recipe (its fix applied to ``tokenizer``)."""
    from llamafactory.data import get_template_and_fix_tokenizer

    data = args.data
    try:
        template = copy.deepcopy(get_template_and_fix_tokenizer(tokenizer, data))
    except ValueError as exc:
        from llamafactory.data.template import TEMPLATES

        hint = unknown_key_error(str(data.template), TEMPLATES, path, "template") if data.template not in TEMPLATES else None
        raise (hint or InspectError(f"{path}: {first_line(exc)}")) from None
    if data.template is None and args.finetuning.stage == "sft":
        raise InspectError(f"{path}: no template: set template (e.g. qwen3) so prompts can be compared with the evaluator's")
    return template


# ---------------------------------------------------------------------------------------------
# the whole run
# ---------------------------------------------------------------------------------------------
def _progress(total: int | None, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="row", desc="inspect", file=sys.stderr, leave=False)


def inspect_recipe(argv: list[str], tokenizer_cache: dict | None = None, progress: bool = False,
                   tokenizer: Any = None) -> dict[str, Any]:
    """Run inspect; returns the report (the ``format=json`` document plus ``_options``).

    ``tokenizer_cache``: a dict that keeps loaded tokenizers between calls in one process (keyed by
    path and template: LLaMA-Factory's template fix may change a tokenizer's eos or chat template).
    ``tokenizer``: an already loaded tokenizer to use as it is (tests, notebooks); the template fix
    runs on it.
    """
    path, recipe, opts = parse_argv(argv)
    stage = recipe.get("stage", "sft")
    if recipe.get("export_dir") and not recipe.get("do_train"):
        raise InspectError(f"{path} is an export recipe (export_dir): it trains nothing; inspect the training recipe")
    if stage not in SUPPORTED_STAGES:
        raise InspectError(f"{path}: stage {stage} is not supported by inspect (only sft and pt): "
                           f"{'pairwise chosen/rejected rows' if stage in ('dpo', 'rm', 'kto') else 'its rows'} "
                           "are not shown")
    with tempfile.TemporaryDirectory(prefix="llamafactory-ext-inspect-") as work:
        if opts.samples:
            from llamafactory_ext.data.samples import prepare_samples

            recipe["dataset_dir"] = str(prepare_samples(Path(work) / "samples"))
        return _run(path, recipe, opts, work, tokenizer_cache, progress, tokenizer)


def _run(path: str, recipe: dict[str, Any], opts: InspectOptions, work: str, tokenizer_cache: dict | None,
         progress: bool, tokenizer: Any) -> dict[str, Any]:
    import transformers

    model = str(recipe.get("model_name_or_path") or "")
    tok_path, tok_label = tokenizer_source(path, model, opts)
    args = build_arguments(recipe, path, tok_path, str(Path(work) / "output"))
    transformers.set_seed(args.training.seed)  # as get_train_args: num_samples draws rows at random
    loaded = _load_datasets(path, args)  # data errors first: they need no tokenizer
    if tokenizer is not None:
        chat_template = None
    else:
        tokenizer, chat_template = _tokenizer(args, tok_path, tok_label, tokenizer_cache)
    if opts.tokenizer:  # the replacement tokenizer's chat template says nothing about the model
        chat_template = None
    az = Analyzer(args, tokenizer, _template(tokenizer, args, path), args.data.template, opts.n)
    all_stats = _analyse(az, loaded, progress)
    lints = make_lints(az, all_stats, recipe, model or tok_label, chat_template, opts.eval)
    return _report(path, recipe, opts, az, all_stats, lints, model, tok_label)


def _analyse(az: Analyzer, loaded: list[tuple[str, Any, Any]], progress: bool) -> list[DatasetStats]:
    """Every row of every data set through the analyser (a progress bar on a terminal)."""
    total = sum(len(rows) for _, _, rows in loaded) if not az.args.data.streaming else None
    bar = _progress(total, progress)
    tick = bar.update if bar is not None else (lambda: None)
    out: list[DatasetStats] = []
    try:
        for name, attr, rows in loaded:
            stats = DatasetStats(name=name, formatting=attr.formatting)
            if az.stage == "pt":
                az.analyse_pt(name, rows, stats, tick)
            else:
                az.analyse_sft(name, rows, stats, tick)
            out.append(stats)
    finally:
        if bar is not None:
            bar.close()
    return out


def _report(path: str, recipe: dict[str, Any], opts: InspectOptions, az: Analyzer, all_stats: list[DatasetStats],
            lints: list[dict[str, str]], model: str, tok_label: str) -> dict[str, Any]:
    data = az.args.data
    return {
        "recipe": path,
        "settings": {
            "stage": az.stage, "template": data.template, "reasoning_template": az.reasoning,
            "enable_thinking": data.enable_thinking, "cutoff_len": recipe.get("cutoff_len", data.cutoff_len),
            "packing": data.packing, "neat_packing": data.neat_packing, "train_on_prompt": data.train_on_prompt,
            "mask_history": data.mask_history, "model": model, "tokenizer": tok_label,
            "dataset_dir": "(built-in samples)" if opts.samples else data.dataset_dir,
            "modes_trained": list(az.modes), "parity_rows": az.parity.counts(),
        },
        "datasets": {s.name: s.summary() for s in all_stats},
        "parity": az.parity.result(),
        "lints": lints,
        "samples": [sample for s in all_stats for sample in s.samples],
        "_options": opts,
    }


def _load_datasets(path: str, args: Arguments) -> list[tuple[str, Any, Any]]:
    """(name, DatasetAttr, aligned rows) per data set: LLaMA-Factory's loader and converter."""
    from llamafactory.data.loader import _load_single_dataset
    from llamafactory.data.parser import get_dataset_list

    data = args.data
    try:
        attrs = get_dataset_list(data.dataset, data.dataset_dir)
    except ValueError as exc:
        raise _dataset_error(exc, data.dataset_dir, path) from None
    loaded = []
    for name, attr in zip(data.dataset, attrs):
        if attr.ranking:
            raise InspectError(f"data set {name} is a ranking (preference) data set: stage {args.finetuning.stage} "
                               "cannot train it, and inspect shows sft and pt rows only")
        try:
            rows = _load_single_dataset(attr, args.model, data, args.training)
        except Exception as exc:  # noqa: BLE001 - named by data set and file
            why = (f"a row has no field {exc.args[0]!r}: check the columns and tags of {name} in dataset_info.json"
                   if isinstance(exc, KeyError) else first_line(exc))
            raise InspectError(f"data set {name} ({Path(data.dataset_dir) / attr.dataset_name}): cannot read it: "
                               f"{why}") from None
        loaded.append((name, attr, rows))
    return loaded


def _dataset_error(exc: Exception, dataset_dir: str, where: str) -> InspectError:
    text = first_line(exc)
    info = Path(dataset_dir) / "dataset_info.json"
    if text.startswith("Undefined dataset"):
        name = text.split()[2]
        try:
            known = list(json.loads(info.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            known = []
        return InspectError(str(unknown_key_error(name, known, str(info), "data set")))
    if text.startswith("Cannot open"):
        return InspectError(f"{where}: dataset_dir {dataset_dir} has no readable dataset_info.json ({text})")
    return InspectError(f"{where}: {text}")


def exit_status(report: dict[str, Any]) -> int:
    return 1 if any(item["severity"] == "error" for item in report["lints"]) else 0
