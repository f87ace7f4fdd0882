"""What a data set module declares: :class:`DatasetSpec` (name, default source, stage, sample
file, converter factory) and the options of ``llamafactory-ext prepare`` (:class:`PrepareOptions`).

A converter is built once per run by ``spec.make(options)`` and called once per source row:
``convert(row) -> (output_row, stratum)`` or a list of such pairs; it raises
:class:`~llamafactory_ext.data.fields.RowProblem` for a malformed row and
:class:`~llamafactory_ext.data.fields.Drop` for a row left out on purpose. ``stratum`` is the
key the validation split is stratified by (category, else answer letter, else None).
``report()`` returns extra manifest fields (e.g. how many traces were joined).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal, Protocol

SHAREGPT_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "system_tag": "system",
}


@dataclasses.dataclass
class PrepareOptions:
    """Keys of ``llamafactory-ext prepare NAME [key=value ...]``."""

    source: str | list[str] | None = dataclasses.field(default=None, metadata={"help": "Hub id or local json/jsonl/parquet/csv file, or a list [a.json,b.json] read in turn (default: the data set's own)"})
    limit: int | None = dataclasses.field(default=None, metadata={"help": "read at most N source rows"})
    out_dir: str = dataclasses.field(default="data", metadata={"help": "where NAME.jsonl, NAME.manifest.json and rejects go"})
    seed: int = dataclasses.field(default=42, metadata={"help": "seed for the validation split and mixing"})
    on_error: Literal["fail", "skip"] = dataclasses.field(default="fail", metadata={"help": "fail: stop at the first bad row; skip: write it to NAME.rejects.jsonl"})
    val_size: float = dataclasses.field(default=0.0, metadata={"help": "fraction (0-0.5) written to NAME_val.jsonl, stratified (SFT only)"})
    split: str | None = dataclasses.field(default=None, metadata={"help": "Hub split (default: the data set's, usually train)"})
    hub_config: str | None = dataclasses.field(default=None, metadata={"help": "Hub config (default: the data set's)"})
    streaming: bool | None = dataclasses.field(default=None, metadata={"help": "stream a Hub source (default: true for large sources)"})
    traces: str | None = dataclasses.field(default=None, metadata={"help": "multit_think/mixed: traces JSONL written by `llamafactory-ext distill`"})
    nothink_fraction: float = dataclasses.field(default=1.0, metadata={"help": "multit_mixed: share of the non-thinking rows kept (seeded)"})
    mix: Literal["rest", "all"] = dataclasses.field(default="rest", metadata={"help": "multit_mixed: non-thinking rows for the questions without a trace (rest) or for all"})
    dedup: bool = dataclasses.field(default=True, metadata={"help": "synth_gsm8k/gsm8k: drop exact duplicate questions"})
    max_rows: int | None = dataclasses.field(default=None, metadata={"help": "wikipedia_it: stop after writing N articles"})
    max_bytes: int | None = dataclasses.field(default=None, metadata={"help": "wikipedia_it: stop after writing about N bytes"})
    min_chars: int = dataclasses.field(default=200, metadata={"help": "wikipedia_it: drop articles shorter than this after cleaning"})
    register: bool = dataclasses.field(default=True, metadata={"help": "add missing entries to dataset_info.json beside out_dir"})


class Converter(Protocol):
    def convert(self, row: dict) -> Any: ...

    def report(self) -> dict[str, Any]: ...


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    summary: str
    make: Callable[[PrepareOptions], Converter]
    default_source: str | None = None  # Hub id; None: local files only
    hub_config: str | None = None
    hub_split: str = "train"
    streaming: bool = False  # stream the Hub source by default (large corpora)
    stage: Literal["sft", "pt"] = "sft"
    version: str = "1"
    sample: str | None = None  # file name in llamafactory_ext/resources/samples
    sample_options: dict[str, Any] = dataclasses.field(default_factory=dict)  # values naming sample files
    source_help: str = ""  # where to get the data when there is no default source
    stratified: bool = True

    def dataset_info_entry(self, file_name: str) -> dict[str, Any]:
        """The dataset_info.json entry LLaMA-Factory needs for this data set's output file."""
        if self.stage == "pt":
            return {"file_name": file_name, "columns": {"prompt": "text"}}
        return {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "messages"},
            "tags": dict(SHAREGPT_TAGS),
        }
