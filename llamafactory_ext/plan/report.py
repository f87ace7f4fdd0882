"""One Markdown table (recipe | term | estimated | measured | error) from ``plan ... measure=true
format=json`` results, for ``scripts/gpu_check.sh`` and docs/plan.md:

    python -m llamafactory_ext.plan.report OUT.md [--note TEXT ...] RESULT.json ...

A result file that is missing or not JSON becomes a row saying so (a failed run is shown, never
dropped).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from llamafactory_ext.io import atomic_write_text

GIB = 1024**3


def _gib(value: Any) -> str:
    return "-" if value is None else f"{value / GIB:.2f} GiB"


def _label(result: dict[str, Any]) -> str:
    ds = result.get("deepspeed")
    extra = f", ZeRO-{ds['stage']}" if ds else ""
    return f"`{Path(result['recipe']).name}` ({result['method']}{extra})"


def result_rows(name: str, result: dict[str, Any] | None, error: str | None = None) -> list[str]:
    if result is None:
        return [f"| `{name}` | (no result: {error}) | | | |"]
    m = result.get("measure") or {}
    label = _label(result)
    if not m:
        return [f"| {label} | (estimate only: not measured) | {result['peak_gib']:.2f} GiB | | |"]
    rows = []
    if m.get("status") == "oom":
        rows.append(f"| {label} | OUT OF MEMORY on {m.get('device')} | {result['peak_gib']:.2f} GiB | | |")
    for r in m.get("rows", []):
        err = "" if r["error_percent"] is None else f"{r['error_percent']:+.1f} %"
        rows.append(f"| {label} | {r['term']} | {_gib(r['estimated_bytes'])} | {_gib(r['measured_bytes'])} | {err} |")
    s = m.get("speed") or {}
    if s:
        mfu = "unknown GPU" if s.get("mfu") is None else f"MFU {100 * s['mfu']:.1f} % (HFU {100 * s['hfu']:.1f} %)"
        rows.append(f"| {label} | speed: {s['step_seconds']:.3f} s/step, {s['tokens_per_s_per_gpu']:,.0f} tokens/s/GPU | | {mfu} | |")
    g = m.get("generate") or {}
    if g.get("status") == "ok":
        r = g["readings"]
        bound = g["bound"].get("tokens_per_s")
        rows.append(f"| {label} | HF decode, batch {r['batch_size']} | {'-' if bound is None else f'{bound:,.0f} tok/s (bound)'} | "
                    f"{r['decode_tokens_per_s']:,.0f} tok/s | |")
    return rows


def table(results: list[tuple[str, dict[str, Any] | None, str | None]]) -> str:
    devices = sorted({(r or {}).get("measure", {}).get("device") or "" for _, r, _ in results} - {""})
    lines = [f"GPU: {', '.join(devices) or 'none measured'}", "",
             "| recipe | term | estimated | measured | error |", "|---|---|---|---|---|"]
    for name, result, error in results:
        lines += result_rows(name, result, error)
    return "\n".join(lines) + "\n"


def load(path: str) -> tuple[str, dict[str, Any] | None, str | None]:
    try:
        return path, json.loads(Path(path).read_text(encoding="utf-8")), None
    except (OSError, ValueError) as exc:
        return path, None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    out, rest, notes = argv[0], argv[1:], []
    files = []
    while rest:
        arg = rest.pop(0)
        if arg == "--note" and rest:
            notes.append(rest.pop(0))
        else:
            files.append(arg)
    text = "# plan: estimated vs measured\n\n" + table([load(f) for f in files])
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    atomic_write_text(out, text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
