"""Built-in samples: small files with each source's real field structure, shipped in
``llamafactory_ext/resources/samples/`` (regenerate with ``python tests/data/make_samples.py``).

:func:`prepare_samples` turns them into a ready LLaMA-Factory ``dataset_dir`` through the real
converters: tests, the CPU demo and the sweep tests train on it with ``dataset_dir=<dir>``.
"""

from __future__ import annotations

from pathlib import Path

from llamafactory_ext.data import REGISTRY, get_spec
from llamafactory_ext.io import atomic_write_bytes

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "resources" / "samples"


def sample_path(file_name: str) -> Path:
    path = SAMPLES_DIR / file_name
    if not path.is_file():
        raise FileNotFoundError(f"built-in sample {path} is missing (reinstall llamafactory-ext)")
    return path


def registry_dataset_info(data_subdir: str = "data") -> dict:
    """dataset_info.json entries for every registered data set (and its ``_val`` split)."""
    info: dict = {}
    for name in REGISTRY:
        spec = get_spec(name)
        info[name] = spec.dataset_info_entry(f"{data_subdir}/{name}.jsonl")
        if spec.stage == "sft":
            info[f"{name}_val"] = spec.dataset_info_entry(f"{data_subdir}/{name}_val.jsonl")
    return info


def prepare_samples(dataset_dir: Path, names: list[str] | None = None, val_size: float = 0.0, quiet: bool = True) -> Path:
    """Write ``dataset_dir/dataset_info.json`` (the shipped top-level one) and prepare every
    registered data set (or ``names``) from the built-in samples into ``dataset_dir/data/``.
    Returns ``dataset_dir``."""
    from llamafactory_ext.data.prepare import options_class, run

    dataset_dir = Path(dataset_dir)
    dataset_dir.mkdir(parents=True, exist_ok=True)
    from llamafactory_ext.shipped import shipped

    atomic_write_bytes(dataset_dir / "dataset_info.json", shipped("dataset_info.json").read_bytes())
    for name in names if names is not None else list(REGISTRY):
        spec = get_spec(name)
        if spec.sample is None:
            continue
        extra = {key: str(sample_path(value)) for key, value in spec.sample_options.items()}
        options = options_class(spec)(
            source=str(sample_path(spec.sample)), out_dir=str(dataset_dir / "data"), register=False,
            val_size=val_size if spec.stage == "sft" else 0.0, **extra,
        )
        run(name, options, quiet=quiet)
    return dataset_dir
