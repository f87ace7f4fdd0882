"""Rendering an ``inspect`` report: text (ANSI colours or ``[[...]]`` markers), self-contained HTML, JSON."""

from __future__ import annotations

import html
import json
import os
from typing import Any

from llamafactory_ext.config import format_value

ANSI_TRAINED, ANSI_MASKED, ANSI_RESET = "\x1b[1;32m", "\x1b[2m", "\x1b[0m"
ANSI_SEVERITY = {"error": "\x1b[1;31m", "warning": "\x1b[1;33m", "info": "\x1b[36m"}
MARK_OPEN, MARK_CLOSE = "[[", "]]"


def to_json(report: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in report.items() if not k.startswith("_")}, ensure_ascii=False, indent=2) + "\n"


def settings_line(r: dict[str, Any]) -> str:
    s = r["settings"]
    packing = "false" if not s["packing"] else ("true (neat)" if s["neat_packing"] else "true")
    return (f"stage {s['stage']} | template {s['template']}{' (reasoning)' if s['reasoning_template'] else ''} | "
            f"enable_thinking {format_value(s['enable_thinking'])} | cutoff_len {s['cutoff_len']} | packing {packing} | "
            f"train_on_prompt {format_value(s['train_on_prompt'])} | mask_history {format_value(s['mask_history'])}")


SUMMARY_COLUMNS = [
    ("rows", "rows"), ("trained_tokens", "trained"), ("masked_tokens", "masked"), ("rows_with_trace", "with trace"),
    ("empty_think.prompt_masked", "empty think: masked"),
    ("empty_think.response_trained", "empty think: trained"),
    ("cut_rows", "cut"), ("answer_lost_rows", "answer lost"), ("packing_fill", "packing fill"),
]


def _field(summary: dict[str, Any], key: str) -> Any:
    value: Any = summary
    for part in key.split("."):
        value = value[part]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def parity_lines(r: dict[str, Any]) -> list[str]:
    lines = []
    counts = r["settings"]["parity_rows"]
    for mode, value in r["parity"].items():
        if value == "identical":
            lines.append(f"  {mode:<8} identical ({counts.get(mode, 0)} rows)")
        elif value["first_difference"] is None:
            lines.append(f"  {mode:<8} not checked: {value['note']}")
        else:
            d = value["first_difference"]
            lines.append(f"  {mode:<8} DIFFERS in {value['differing_rows']} of {value['rows']} rows; first: {d['dataset']} "
                         f"row {d['row']}, token {d['position']}:")
            lines.append(f"           training:  {d['training']['token']!r} in {d['training']['context']!r}")
            lines.append(f"           evaluator: {d['evaluator']['token']!r} in {d['evaluator']['context']!r}")
    if not lines:
        lines.append("  (stage pt trains no chat prompt)" if r["settings"]["stage"] == "pt" else "  (no mode)")
    return lines


def sample_header(s: dict[str, Any]) -> str:
    bits = [f"{s['dataset']} row {s['row']}"]
    if s["match"] is not None:
        bits.append(f"matches {s['match']}" + (f" (trains {s['expected_mode']})" if s["expected_mode"] and s["match"] != s["expected_mode"] else ""))
    bits.append("trace" if s["has_trace"] else "no trace")
    if s["empty_think"]:
        bits.append(f"empty think: {s['empty_think']}")
    if s["cut"]:
        bits.append("CUT by cutoff_len" + (", ANSWER LOST" if s["answer_lost"] else ""))
    bits.append(f"{s['tokens']} tokens: {s['masked_tokens']} masked, {s['trained_tokens']} trained")
    return " | ".join(bits)


def render_text(r: dict[str, Any], color: bool) -> str:
    out = [f"llamafactory-ext inspect {r['recipe']}", "  " + settings_line(r)]
    s = r["settings"]
    out.append(f"  model {s['model']} | tokenizer {s['tokenizer']} | dataset_dir {s['dataset_dir']}")
    if s["modes_trained"]:
        out.append(f"  evaluator modes this recipe trains: {', '.join(s['modes_trained'])}")
    out.append("")
    headers = ["dataset"] + [h for _, h in SUMMARY_COLUMNS]
    table = [headers] + [[name] + [_cell(_field(d, k)) for k, _ in SUMMARY_COLUMNS] for name, d in r["datasets"].items()]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    for i, row in enumerate(table):
        out.append("  ".join(c.ljust(widths[j]) if j == 0 else c.rjust(widths[j]) for j, c in enumerate(row)))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    out.append("  (empty think: rows whose <think>\\n\\n</think>\\n\\n ends the prompt without loss (masked) or starts "
               "the response with loss (trained))")
    out.append("")
    out.append("train/eval parity (masked training prompt vs the evaluator's PromptEncoder prompt):")
    out += parity_lines(r)
    out.append("")
    if r["lints"]:
        out.append("lints:")
        for item in r["lints"]:
            sev = item["severity"].upper()
            sev = f"{ANSI_SEVERITY[item['severity']]}{sev}{ANSI_RESET}" if color else sev
            out.append(f"  {sev} {item['code']}: {item['message']}")
            out.append(f"      fix: {item['fix']}")
    else:
        out.append("lints: none")
    out.append("")
    legend = (f"{ANSI_TRAINED}green = trained (carries loss){ANSI_RESET}, {ANSI_MASKED}dim = masked (no loss){ANSI_RESET}"
              if color else f"{MARK_OPEN}...{MARK_CLOSE} = trained (carries loss), the rest is masked (no loss)")
    out.append(f"samples (first {r['_options'].n if '_options' in r else ''} rows of each data set; {legend}):")
    for sample in r["samples"]:
        out.append("")
        out.append(f"--- {sample_header(sample)}")
        pieces = []
        for span in sample["spans"]:
            text = span["text"]
            if color:
                pieces.append(f"{ANSI_TRAINED if span['trained'] else ANSI_MASKED}{text}{ANSI_RESET}")
            else:
                pieces.append(f"{MARK_OPEN}{text}{MARK_CLOSE}" if span["trained"] else text)
        out.append("".join(pieces))
    return "\n".join(out) + "\n"


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#1d1d1f;line-height:1.45}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
h3{font-size:.95rem;margin:.2rem 0;font-weight:600}
.settings{color:#444;font-size:.9rem}
table{border-collapse:collapse;font-size:.9rem}th,td{border:1px solid #ccc;padding:.3rem .6rem}
th{background:#f3f3f3;text-align:left}td{text-align:right;font-variant-numeric:tabular-nums}
td.text{text-align:left}
.lint{margin:.5rem 0;padding:.5rem .8rem;border-left:4px solid #999;background:#fafafa}
.lint.error{border-color:#c62828;background:#fdecea}.lint.warning{border-color:#ef8f00;background:#fff6e5}
.lint.info{border-color:#1e88e5;background:#eaf3fc}
.sev{font-weight:700;text-transform:uppercase;margin-right:.4rem}.fix{margin-top:.2rem;color:#333}
.identical{color:#1b5e20;font-weight:600}.differs{color:#b71c1c;font-weight:600}
pre{white-space:pre-wrap;word-break:break-word;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85rem;
background:#fcfcfc;border:1px solid #e3e3e3;padding:.6rem;margin:.3rem 0 1.2rem}
.tok.t{background:#c8f0c8;color:#0b3d0b;font-weight:600;border-radius:2px}
.tok.m{color:#757575;background:transparent}
.legend span{padding:.1rem .4rem;margin-right:.6rem}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def render_html(r: dict[str, Any]) -> str:
    """One self-contained page: settings, the summary per data set, lints, parity, samples."""
    s = r["settings"]
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>inspect {_e(r['recipe'])}</title>", f"<style>{CSS}</style></head><body>",
        f"<h1>llamafactory-ext inspect <code>{_e(r['recipe'])}</code></h1>",
        f'<p class="settings">{_e(settings_line(r))}<br>model {_e(s["model"])} · tokenizer {_e(s["tokenizer"])} · '
        f"dataset_dir {_e(s['dataset_dir'])}"
        + (f"<br>evaluator modes this recipe trains: {_e(', '.join(s['modes_trained']))}" if s["modes_trained"] else "")
        + "</p>",
    ]
    parts += _html_summary(r) + _html_lints(r) + _html_parity(r) + _html_samples(r)
    parts.append("</body></html>")
    return "".join(parts) + "\n"


def _html_summary(r: dict[str, Any]) -> list[str]:
    parts = ["<h2>Summary per data set</h2>", '<table id="summary"><thead><tr><th>data set</th>']
    parts += [f"<th>{_e(h)}</th>" for _, h in SUMMARY_COLUMNS]
    parts.append("</tr></thead><tbody>")
    for name, d in r["datasets"].items():
        parts.append(f'<tr data-dataset="{_e(name)}"><th>{_e(name)}</th>')
        parts += [f'<td data-field="{_e(k)}">{_e(_cell(_field(d, k)))}</td>' for k, _ in SUMMARY_COLUMNS]
        parts.append("</tr>")
    parts.append("</tbody></table>")
    parts.append('<p class="settings">empty think: rows whose <code>&lt;think&gt;\\n\\n&lt;/think&gt;\\n\\n</code> ends '
                 "the prompt without loss (masked) or starts the response with loss (trained)</p>")
    return parts


def _html_lints(r: dict[str, Any]) -> list[str]:
    parts = [f'<h2>Lints ({len(r["lints"])})</h2><div id="lints">']
    if not r["lints"]:
        parts.append("<p>none</p>")
    for item in r["lints"]:
        parts.append(f'<div class="lint {_e(item["severity"])}" data-code="{_e(item["code"])}">'
                     f'<span class="sev">{_e(item["severity"])}</span><code>{_e(item["code"])}</code>: {_e(item["message"])}'
                     f'<div class="fix"><b>fix:</b> {_e(item["fix"])}</div></div>')
    parts.append("</div>")
    return parts


def _html_parity(r: dict[str, Any]) -> list[str]:
    parts = [('<h2>Train/eval parity</h2><p>The masked training prompt of each row against the evaluator\'s prompt '
             "(<code>PromptEncoder(tokenizer, template, mode).encode(messages, system)</code>).</p>"),
             '<table id="parity"><thead><tr><th>mode</th><th>rows</th><th>result</th></tr></thead><tbody>']
    counts = r["settings"]["parity_rows"]
    for mode, value in r["parity"].items():
        if value == "identical":
            cell = '<span class="identical">identical</span>'
        elif value["first_difference"] is None:
            cell = f"not checked: {_e(value['note'])}"
        else:
            d = value["first_difference"]
            cell = (f'<span class="differs">differs in {value["differing_rows"]} rows</span>; first at {_e(d["dataset"])} row '
                    f'{d["row"]}, token {d["position"]}:<pre>training:  {_e(repr(d["training"]["token"]))} in '
                    f'{_e(d["training"]["context"])}\nevaluator: {_e(repr(d["evaluator"]["token"]))} in '
                    f'{_e(d["evaluator"]["context"])}</pre>')
        parts.append(f'<tr data-mode="{_e(mode)}"><th>{_e(mode)}</th><td>{counts.get(mode, 0)}</td><td class="text">{cell}</td></tr>')
    if not r["parity"]:
        parts.append('<tr><td class="text" colspan="3">stage pt trains no chat prompt</td></tr>')
    parts.append("</tbody></table>")
    return parts


def _html_samples(r: dict[str, Any]) -> list[str]:
    parts = [('<h2>Samples</h2><p class="legend">Legend: <span class="tok t">trained (carries loss)</span>'
             '<span class="tok m">masked (no loss)</span></p>')]
    for sample in r["samples"]:
        parts.append(f'<section class="sample" data-dataset="{_e(sample["dataset"])}" data-row="{sample["row"]}">'
                     f"<h3>{_e(sample_header(sample))}</h3><pre>")
        for span in sample["spans"]:
            cls = "t" if span["trained"] else "m"
            parts.append(f'<span class="tok {cls}" data-start="{span["start"]}" data-end="{span["end"]}">{_e(span["text"])}</span>')
        parts.append("</pre></section>")
    return parts


def use_color(choice: str, stream: Any) -> bool:
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


