"""Parse recipes exactly as `llamafactory-cli train|export RECIPE.yaml k=v ...` does, in a fresh
process, and print what LLaMA-Factory's own argument parser made of them.

Usage: python -m tests.recipes.parse_worker JOBS.json OUT.json
JOBS: [{"id": str, "kind": "train"|"export", "recipe": path, "overrides": ["k=v", ...]}]

`sys.argv` is set to the command line and `get_train_args()` / `get_infer_args()` (export uses
the latter) are called without arguments, so LLaMA-Factory's `read_args` does the YAML + OmegaConf
override merge itself. Run it as a single-process torchrun (RANK/WORLD_SIZE/... in the
environment), which is what `FORCE_TORCHRUN=1` gives: LLaMA-Factory refuses a DeepSpeed recipe
outside a distributed launch, and transformers then builds the ZeRO config for real (gloo on CPU).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
import traceback


def _jsonable(value):
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def _groups(parsed, names) -> dict:
    out = {}
    for name, obj in zip(names, parsed):
        out[name] = {f.name: _jsonable(getattr(obj, f.name, None)) for f in dataclasses.fields(obj)}
    return out


def main(argv: list[str]) -> int:
    jobs_file, out_file = argv
    with open(jobs_file, encoding="utf-8") as fh:
        jobs = json.load(fh)
    from llamafactory.hparams import get_infer_args, get_train_args

    results = {}
    for job in jobs:
        sys.argv = ["llamafactory-cli", job["recipe"], *job["overrides"]]
        try:
            if job["kind"] == "train":
                parsed = get_train_args()
                results[job["id"]] = {"ok": True, "args": _groups(parsed, ("model", "data", "training", "finetuning", "generating"))}
            else:
                parsed = get_infer_args()
                results[job["id"]] = {"ok": True, "args": _groups(parsed, ("model", "data", "finetuning", "generating"))}
        except Exception as exc:  # noqa: BLE001 -- any parser error is reported per job and asserted by the test
            results[job["id"]] = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-3000:]}
    with open(out_file, "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
