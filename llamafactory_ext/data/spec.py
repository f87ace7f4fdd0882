"""What a data set module declares: :class:`DatasetSpec` (name, default source, stage, sample
file, its own options, converter factory) and the options every data set shares
(:class:`PrepareOptions`).

A converter is built once per run by ``spec.make(options, context)`` and called once per source
row: ``convert(row, index) -> Converted | list[Converted]``; it raises
:class:`~llamafactory_ext.data.fields.RowProblem` for a malformed row and
:class:`~llamafactory_ext.data.fields.Drop` for a row left out on purpose. ``Converted.stratum``
is what the validation split is stratified by (category, else answer letter, else None) and
``Converted.group`` keeps rows together across the split (two rows of one question, e.g. the
thinking and the plain row of ``multit_mixed mix=all``, land on the same side). ``report()``
returns extra manifest fields (e.g. how many traces were joined).

``spec.options`` is the dataclass of the options only that data set understands (Mult-IT's
``traces``, Wikipedia's ``min_chars``, ...): ``prepare NAME key=value`` accepts the shared keys
plus those, and nothing else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal, Protocol

from llamafactory_ext.config import option

SHAREGPT_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "system_tag": "system",
}


@dataclasses.dataclass
class PrepareOptions:
    """Keys every ``llamafactory-ext prepare NAME`` accepts."""

    source: str | list[str] | None = option(None, "Hub id or local json/jsonl/parquet/csv file, or a list [a.json,b.json] read in turn (default: the data set's own)")
    limit: int | None = option(None, "read at most N source rows", ge=1)
    out_dir: str = option("data", "where NAME.jsonl, NAME.manifest.json and rejects go")
    dataset_info: str | None = option(None, "the dataset_info.json to register NAME in (default: ./dataset_info.json, the project's data folder)")
    register: bool = option(True, "add missing entries to that dataset_info.json")
    seed: int = option(42, "seed for the validation split and any sampling")
    on_error: Literal["fail", "skip"] = option("fail", "fail: stop at the first bad row; skip: write it to NAME.rejects.jsonl")
    val_size: float = option(0.0, "fraction written to NAME_val.jsonl, stratified, no question on both sides (SFT only)", ge=0.0, lt=0.5)
    split: str | None = option(None, "Hub split (default: the data set's, usually train)")
    hub_config: str | None = option(None, "Hub config (default: the data set's)")
    streaming: bool | None = option(None, "stream a Hub source (default: true for large sources)")


@dataclasses.dataclass
class NoOptions:
    """A data set with no options of its own."""


@dataclasses.dataclass
class Converted:
    row: dict[str, Any]
    stratum: Any = None
    group: str | None = None


@dataclasses.dataclass
class Context:
    """What a converter may use besides its options: where bad side-file rows go (``on_bad(error, raw)``)."""

    on_bad: Callable[[Any, Any], None]


class Converter(Protocol):
    def convert(self, row: dict, index: int) -> Converted | list[Converted]: ...

    def report(self) -> dict[str, Any]: ...


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    summary: str
    make: Callable[[Any, Context], Converter]
    options: type = NoOptions
    default_source: str | None = None  # Hub id; None: local files only
    hub_config: str | None = None
    hub_split: str = "train"
    streaming: bool = False  # stream the Hub source by default (large corpora)
    stage: Literal["sft", "pt", "rm"] = "sft"
    formatting: Literal["sharegpt", "alpaca"] = "sharegpt"
    ranking: bool = False  # preference pairs (LLaMA-Factory's `ranking: true`, stage dpo / rm)
    version: str = "1"
    sample: str | None = None  # file name in llamafactory_ext/resources/samples
    sample_options: dict[str, Any] = dataclasses.field(default_factory=dict)  # values naming sample files
    source_help: str = ""  # where to get the data when there is no default source
    stratified: bool = True

    def dataset_info_entry(self, file_name: str) -> dict[str, Any]:
        """The dataset_info.json entry LLaMA-Factory needs for this data set's output file."""
        if self.stage == "pt":
            return {"file_name": file_name, "columns": {"prompt": "text"}}
        entry: dict[str, Any] = {"file_name": file_name, "formatting": self.formatting}
        if self.ranking:
            entry["ranking"] = True
        if self.formatting == "alpaca":
            entry["columns"] = {"prompt": "instruction", "query": "input", "response": "output", "system": "system"}
            return entry
        entry["columns"] = {"messages": "messages"} if not self.ranking else {"messages": "messages", "chosen": "chosen", "rejected": "rejected"}
        entry["tags"] = dict(SHAREGPT_TAGS)
        return entry
