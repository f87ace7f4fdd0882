"""Per-row analysis for ``inspect``: LLaMA-Factory's own processors encode each row; this module
reads their ``input_ids`` / ``labels`` (trained tokens, the empty think block, cut rows, lost
answers, packing fill) and compares each masked prompt with the evaluator's prompt."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

from llamafactory_ext.config import UserError
from llamafactory_ext.thinking import NOTHINK, THINK, has_thought, split_output

IGNORE_INDEX = -100  # llamafactory.extras.constants.IGNORE_INDEX (checked in the tests)
OPENAI_SHORT_SYSTEM = "detailed thinking off"  # llamafactory/data/converter.py, OpenAIDatasetConverter
_HUGE = 1 << 40


class InspectError(UserError):
    """Bad input for ``inspect`` (recipe, key, data set, tokenizer); the message names it."""


@dataclasses.dataclass
class Arguments:
    model: Any
    data: Any
    finetuning: Any
    training: Any


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def find_sub(seq: list[int], sub: list[int]) -> list[int]:
    """Start positions of ``sub`` in ``seq``."""
    out: list[int] = []
    if not sub:
        return out
    first, m = sub[0], len(sub)
    i = 0
    try:
        while True:
            i = seq.index(first, i)
            if seq[i:i + m] == sub:
                out.append(i)
            i += 1
    except ValueError:
        return out


def runs(flags: list[bool]) -> list[tuple[int, int, bool]]:
    """Maximal runs ``(start, end, flag)`` of equal flags."""
    out: list[tuple[int, int, bool]] = []
    start = 0
    for i in range(1, len(flags) + 1):
        if i == len(flags) or flags[i] != flags[start]:
            if len(flags):
                out.append((start, i, flags[start]))
            start = i
    return out


def token_spans(tokenizer: Any, ids: list[int], trained: list[bool]) -> list[dict[str, Any]]:
    """Runs of consecutive tokens with the same trained flag, decoded: ``{text, trained, start, end}``."""
    return [{"text": tokenizer.decode(ids[s:e], skip_special_tokens=False), "trained": flag, "start": s, "end": e}
            for s, e, flag in runs(trained)]


def _context(tokenizer: Any, ids: list[int], pos: int, before: int = 8, after: int = 8) -> dict[str, Any]:
    token = tokenizer.decode([ids[pos]], skip_special_tokens=False) if pos < len(ids) else None
    return {"token": token, "token_id": ids[pos] if pos < len(ids) else None,
            "context": tokenizer.decode(ids[max(0, pos - before):pos + after], skip_special_tokens=False),
            "length": len(ids)}


def first_difference(tokenizer: Any, train: list[int], evaluator: list[int]) -> dict[str, Any]:
    pos = next((i for i, (a, b) in enumerate(zip(train, evaluator)) if a != b), min(len(train), len(evaluator)))
    return {"position": pos, "training": _context(tokenizer, train, pos), "evaluator": _context(tokenizer, evaluator, pos)}


def _last_run_start(labels: list[int]) -> int | None:
    """Index of the first token of the last maximal run of trained labels."""
    i = len(labels) - 1
    while i >= 0 and labels[i] == IGNORE_INDEX:
        i -= 1
    if i < 0:
        return None
    while i > 0 and labels[i - 1] != IGNORE_INDEX:
        i -= 1
    return i


def answer_text(content: str) -> str:
    """The final answer of an assistant turn: after ``</think>``, or the whole text without a trace."""
    return split_output(content).answer if has_thought(content) else content.strip()


@dataclasses.dataclass
class DatasetStats:
    name: str
    formatting: str = "alpaca"
    rows: int = 0
    dropped_rows: int = 0
    trained_tokens: int = 0
    masked_tokens: int = 0
    rows_with_trace: int = 0
    prompt_masked: int = 0
    response_trained: int = 0
    cut_rows: int = 0
    answer_lost_rows: int = 0
    longest_row: int = 0
    packed_sequences: int = 0
    packed_tokens: int = 0
    packed_length: int = 0
    dropped_tokens: int = 0
    samples: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def packing_fill(self) -> float | None:
        if not self.packed_sequences:
            return None
        return round(self.packed_tokens / (self.packed_sequences * self.packed_length), 4)

    def summary(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "trained_tokens": self.trained_tokens,
            "masked_tokens": self.masked_tokens,
            "rows_with_trace": self.rows_with_trace,
            "empty_think": {"prompt_masked": self.prompt_masked, "response_trained": self.response_trained},
            "cut_rows": self.cut_rows,
            "answer_lost_rows": self.answer_lost_rows,
            "packing_fill": self.packing_fill,
            "dropped_rows": self.dropped_rows,
            "longest_row_tokens": self.longest_row,
            "packed_sequences": self.packed_sequences or None,
            "formatting": self.formatting,
        }


class Parity:
    """Per mode: rows compared, rows identical, the first difference."""

    def __init__(self, modes: tuple[str, ...]) -> None:
        self.modes = modes
        self.rows = dict.fromkeys(modes, 0)
        self.same = dict.fromkeys(modes, 0)
        self.cut = dict.fromkeys(modes, 0)
        self.first: dict[str, dict[str, Any] | None] = dict.fromkeys(modes, None)

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for mode in self.modes:
            if self.rows[mode] and self.same[mode] == self.rows[mode]:
                out[mode] = "identical"
            elif not self.rows[mode]:
                note = (f"all {self.cut[mode]} rows of this mode are cut by cutoff_len" if self.cut[mode]
                        else "no row trains this mode")
                out[mode] = {"first_difference": None, "rows": 0, "note": note}
            else:
                out[mode] = {"first_difference": self.first[mode], "rows": self.rows[mode],
                             "differing_rows": self.rows[mode] - self.same[mode]}
        return out

    def counts(self) -> dict[str, int]:
        return dict(self.rows)


class Analyzer:
    """Everything about one recipe that every data set shares."""

    def __init__(self, args: Arguments, tokenizer: Any, template: Any, template_name: str | None, n: int) -> None:
        from llamafactory_ext.prompts import is_reasoning_template, training_modes

        self.args = args
        self.tokenizer = tokenizer
        self.template = template
        self.template_name = template_name
        self.n = n
        self.stage = args.finetuning.stage
        data = args.data
        self.reasoning = bool(template_name) and is_reasoning_template(template_name)
        if self.stage == "sft" and template_name:
            self.modes: tuple[str, ...] = training_modes(template_name, data.enable_thinking)
        else:
            self.modes = ()
        self.template_modes = (THINK, NOTHINK) if self.reasoning else ((NOTHINK,) if template_name else ())
        self.parity = Parity(self.modes)
        self.trained_modes: set[str] = set()
        self.thought_ids = list(template.get_thought_word_ids(tokenizer))
        self._encoders: dict[str, Any] = {}
        self.discarding_history_cot = data.mask_history and not template.preserve_thinking

    # -- evaluator prompts -------------------------------------------------------------------
    def encoder(self, mode: str) -> Any:
        if mode not in self._encoders:
            from llamafactory_ext.prompts import PromptEncoder

            self._encoders[mode] = PromptEncoder(self.tokenizer, self.template_name, mode)
        return self._encoders[mode]

    def evaluator_prompt(self, mode: str, prompt: list[dict[str, str]], system: str | None) -> list[int] | None:
        try:
            return self.encoder(mode).encode(prompt, system or None)
        except ValueError:  # a prompt that does not end with a user turn (tool observations)
            return None

    def expected_mode(self, last_response: str) -> str | None:
        if not self.modes:
            return None
        if len(self.modes) == 1:
            return self.modes[0]
        return THINK if has_thought(last_response) else NOTHINK  # enable_thinking: null (mixed)

    # -- sft ---------------------------------------------------------------------------------
    def sft_processor(self) -> Any:
        from llamafactory.data.processor import SupervisedDatasetProcessor

        data = copy.copy(self.args.data)  # packing encodes every row with this same code, then packs
        data.packing = False
        data.neat_packing = False
        return SupervisedDatasetProcessor(template=self.template, tokenizer=self.tokenizer, processor=None, data_args=data)

    def full_pairs(self, row: dict[str, Any]) -> list[tuple[list[int], list[int]]]:
        """The untruncated per-turn encoding, the call ``_encode_data_example`` makes."""
        messages = self.template.mm_plugin.process_messages(row["_prompt"] + row["_response"], [], [], [], None)
        return self.template.encode_multiturn(self.tokenizer, messages, row["_system"], row["_tools"],
                                              self.discarding_history_cot)

    def analyse_sft(self, name: str, rows: Any, stats: DatasetStats, progress: Callable[[], None]) -> None:
        from llamafactory.data.processor.processor_utils import greedy_knapsack

        data = self.args.data
        processor = self.sft_processor()
        cutoff = data.cutoff_len
        eff = 1 if self.template.efficient_eos else 0
        batch_lengths: list[int] = []
        batch_size = data.preprocessing_batch_size

        def flush_batch() -> None:
            fitting = [n for n in batch_lengths if n <= cutoff]
            if fitting:
                stats.packed_tokens += sum(fitting)
                stats.packed_sequences += len(greedy_knapsack(fitting, cutoff))  # sorts and empties the list
            batch_lengths.clear()

        for index, row in enumerate(rows):
            progress()
            stats.rows += 1
            if data.packing and index and index % batch_size == 0:  # datasets.map's batches
                flush_batch()
            try:
                out = processor.preprocess_dataset({k: [v] for k, v in row.items()})
            except Exception as exc:  # noqa: BLE001 - named by data set and row
                raise InspectError(f"data set {name}: row {index + 1}: LLaMA-Factory cannot encode it: {first_line(exc)}") from None
            if not out["input_ids"]:
                stats.dropped_rows += 1
                continue
            ids, labels = out["input_ids"][0], out["labels"][0]
            batch_lengths.append(len(ids))
            self._analyse_sft_row(name, index, row, ids, labels, stats, cutoff, eff)
        if data.packing:
            flush_batch()
            stats.packed_length = cutoff + 1  # PackedSupervisedDatasetProcessor pads to cutoff_len + 1

    def _analyse_sft_row(self, name: str, index: int, row: dict[str, Any], ids: list[int], labels: list[int],
                         stats: DatasetStats, cutoff: int, eff: int) -> None:
        trained = [label != IGNORE_INDEX for label in labels]
        n_trained = sum(trained)
        stats.trained_tokens += n_trained
        stats.masked_tokens += len(ids) - n_trained
        trace = any(has_thought(m["content"]) for m in row["_prompt"] + row["_response"] if m["role"] == "assistant")
        stats.rows_with_trace += trace
        empty = self._empty_think(ids, trained, stats)
        cut, lost, pairs = self._cut(row, ids, trained, stats, cutoff, eff)
        # the masked prompt of the last assistant turn
        start = len(ids) - eff - len(pairs[-1][1]) if pairs is not None and not cut else _last_run_start(labels)
        train_prompt = ids[:start] if start is not None else None
        system = self._evaluator_system(row["_system"], stats.formatting)
        mode = self.expected_mode(row["_response"][0]["content"])
        if mode is not None:
            self._parity(name, index, mode, row["_prompt"], system, train_prompt if not cut else None)
        if len(stats.samples) < self.n:
            stats.samples.append({
                "dataset": name, "row": index + 1, "tokens": len(ids), "trained_tokens": n_trained,
                "masked_tokens": len(ids) - n_trained, "has_trace": trace, "empty_think": empty,
                "cut": cut, "answer_lost": lost, "match": self._match(row["_prompt"], system, train_prompt),
                "expected_mode": mode, "spans": token_spans(self.tokenizer, ids, trained),
            })

    def _empty_think(self, ids: list[int], trained: list[bool], stats: DatasetStats) -> str | None:
        """Where the empty think block of a row is: masked in the prompt or trained in the response."""
        places = {trained[p] for p in find_sub(ids, self.thought_ids)}
        empty = None
        if False in places:
            stats.prompt_masked += 1
            empty = "prompt_masked"
        if True in places:
            stats.response_trained += 1
            empty = "response_trained"
        return empty

    def _cut(self, row: dict[str, Any], ids: list[int], trained: list[bool], stats: DatasetStats, cutoff: int,
             eff: int) -> tuple[bool, bool, list | None]:
        """(cut by cutoff_len, answer lost, the untruncated per-turn encoding when it was needed)."""
        cut = lost = False
        full_len = len(ids)
        pairs = None
        if len(ids) >= cutoff or self.args.data.train_on_prompt:
            pairs = self.full_pairs(row)
            full_len = sum(len(s) + len(t) for s, t in pairs) + eff
            cut = full_len > cutoff
        stats.longest_row = max(stats.longest_row, full_len)
        if cut:
            stats.cut_rows += 1
            lost = self._answer_lost(ids, trained, pairs[-1][1], row["_response"][0]["content"], eff)
            stats.answer_lost_rows += lost
        return cut, lost, pairs

    def _parity(self, name: str, index: int, mode: str, prompt: list[dict[str, str]], system: str | None,
                train_prompt: list[int] | None) -> None:
        """Count the row's masked prompt against the evaluator's (a cut row is counted apart)."""
        self.trained_modes.add(mode)
        if train_prompt is None:
            self.parity.cut[mode] += 1
            return
        self.parity.rows[mode] += 1
        evaluator = self.evaluator_prompt(mode, prompt, system)
        if evaluator == train_prompt:
            self.parity.same[mode] += 1
        elif self.parity.first[mode] is None:
            diff = first_difference(self.tokenizer, train_prompt, evaluator or [])
            self.parity.first[mode] = {"dataset": name, "row": index + 1, **diff}

    def _match(self, prompt: list[dict[str, str]], system: str | None, train_prompt: list[int] | None) -> str | None:
        """The evaluator mode whose prompt equals the row's masked prompt (``none``; None: no chat template)."""
        if not self.template_modes:
            return None
        if train_prompt is not None:
            for m in self.template_modes:
                if self.evaluator_prompt(m, prompt, system) == train_prompt:
                    return m
        return "none"

    def _answer_lost(self, ids: list[int], trained: list[bool], target: list[int], content: str, eff: int) -> bool:
        """Whether the final answer is not entirely inside the surviving trained tokens of the last turn.

        The truncated sequence ends with what survived of the last turn's target (LLaMA-Factory cuts a
        target at its end, and with ``mask_history`` puts the last turn last too); when the last
        turn was dropped altogether the sequence ends with an earlier turn, whose tokens are not a
        prefix of the last target. When the target holds a ``</think>``, the answer must come after
        it: an answer letter quoted inside a cut trace does not count.
        """
        answer = answer_text(content)
        if not answer:
            return False
        body, flags = (ids[:-1], trained[:-1]) if eff else (ids, trained)
        kept = 0
        for t in range(min(len(target), len(body)), 0, -1):
            if body[-t:] == target[:t] and all(flags[-t:]):
                kept = t
                break
        survived = self.tokenizer.decode(target[:kept], skip_special_tokens=False)
        if has_thought(self.tokenizer.decode(target, skip_special_tokens=False)):
            split = split_output(survived)  # the answer is what follows the last </think>
            if not split.closed:
                return True
            survived = split.answer
        return answer not in survived

    @staticmethod
    def _evaluator_system(system: str, formatting: str) -> str | None:
        """The system prompt the evaluator would send for this row.

        ``formatting: openai`` makes LLaMA-Factory append ``detailed thinking off`` to the row's
        system prompt (or use it as the system prompt); the evaluator sends the data's own.
        """
        if formatting == "openai" and system:
            if system == OPENAI_SHORT_SYSTEM:
                return None
            if system.endswith("\n" + OPENAI_SHORT_SYSTEM):
                return system[: -len(OPENAI_SHORT_SYSTEM) - 1]
        return system or None

    # -- pt ----------------------------------------------------------------------------------
    def analyse_pt(self, name: str, rows: Any, stats: DatasetStats, progress: Callable[[], None]) -> None:
        from llamafactory.data.processor import PretrainDatasetProcessor

        data = self.args.data
        full_args = copy.copy(data)
        full_args.packing = False
        full_args.cutoff_len = _HUGE
        full_proc = PretrainDatasetProcessor(template=self.template, tokenizer=self.tokenizer, processor=None, data_args=full_args)
        real_proc = PretrainDatasetProcessor(template=self.template, tokenizer=self.tokenizer, processor=None, data_args=data)
        batch: list[dict[str, Any]] = []
        index = 0

        def run_batch() -> None:
            nonlocal index
            if not batch:
                return
            columns = {k: [r[k] for r in batch] for k in batch[0]}
            try:
                full = full_proc.preprocess_dataset(columns)["input_ids"]
                real = real_proc.preprocess_dataset(columns)["input_ids"]
            except Exception as exc:  # noqa: BLE001
                raise InspectError(f"data set {name}: rows {index + 1}-{index + len(batch)}: LLaMA-Factory cannot "
                                   f"encode them: {first_line(exc)}") from None
            kept_total = sum(len(x) for x in real)
            stats.trained_tokens += kept_total
            if data.packing:  # articles concatenated, cut into cutoff_len blocks, the batch's tail dropped
                stats.packed_sequences += len(real)
                stats.packed_tokens += kept_total
                stats.packed_length = data.cutoff_len
            offset = 0
            for j, (row, ids) in enumerate(zip(batch, full)):
                content = row["_prompt"][0]["content"] if row["_prompt"] else ""
                stats.rows_with_trace += has_thought(content)
                stats.longest_row = max(stats.longest_row, len(ids))
                if data.packing:
                    keep = max(0, min(len(ids), kept_total - offset))
                    offset += len(ids)
                else:
                    keep = len(real[j])
                cut = keep < len(ids)
                stats.cut_rows += cut
                stats.dropped_tokens += len(ids) - keep
                if len(stats.samples) < self.n:
                    flags = [i < keep for i in range(len(ids))]
                    stats.samples.append({
                        "dataset": name, "row": index + j + 1, "tokens": len(ids), "trained_tokens": keep,
                        "masked_tokens": len(ids) - keep, "has_trace": has_thought(content), "empty_think": None,
                        "cut": cut, "answer_lost": False, "match": None, "expected_mode": None,
                        "spans": token_spans(self.tokenizer, ids, flags),
                    })
            index += len(batch)
            batch.clear()

        for row in rows:
            progress()
            stats.rows += 1
            batch.append(row)
            if len(batch) == data.preprocessing_batch_size:
                run_batch()
        run_batch()


