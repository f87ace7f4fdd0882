"""`llamafactory-ext inspect format=html` in a real browser: the trained tokens stand out from the
masked ones (computed styles differ) and the summary table shows the counts of the data.

Debian's chromium (apt-get install chromium; CI installs it in scripts/test.sh) through Playwright
(the `chromium` fixture of tests/e2e/conftest.py), no browser download. Without
chromium the test skips, or fails under CI=true. The screenshot is kept in
test-artifacts/inspect.png under the repository root.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamafactory_ext.thinking import has_thought

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
ARTIFACT = REPO / "test-artifacts" / "inspect.png"


def test_inspect_html_highlights_trained_tokens_and_counts(chromium, tiny_model, tmp_path, capsys):
    from playwright.sync_api import sync_playwright

    from llamafactory_ext.cli import main
    from llamafactory_ext.data.samples import prepare_samples

    dataset_dir = prepare_samples(tmp_path / "samples")
    info = json.loads((dataset_dir / "dataset_info.json").read_text(encoding="utf-8"))
    rows = [json.loads(line) for line in (dataset_dir / info["multit_mixed"]["file_name"]).read_text(encoding="utf-8").splitlines()
            if line.strip()]
    traces = sum(has_thought(r["messages"][-1]["content"]) for r in rows)
    assert 0 < traces < len(rows)

    page_path = tmp_path / "inspect.html"
    rc = main(["inspect", str(REPO / "recipes" / "v3_mixed.yaml"), f"dataset_dir={dataset_dir}",
               f"tokenizer={tiny_model}", "format=html", f"output={page_path}", "n=3"])
    assert rc == 0, capsys.readouterr().err
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(**chromium)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.goto(page_path.as_uri())
            row = page.locator('#summary tr[data-dataset="multit_mixed"]')

            def cell(field: str) -> str:
                return row.locator(f'td[data-field="{field}"]').inner_text().strip()

            summary = {f: cell(f) for f in ("rows", "rows_with_trace", "empty_think.prompt_masked",
                                            "empty_think.response_trained", "cut_rows", "answer_lost_rows")}
            trained = page.locator(".sample .tok.t").first
            masked = page.locator(".sample .tok.m").first
            style = "e => { const s = getComputedStyle(e); return [s.backgroundColor, s.color, s.fontWeight]; }"
            trained_style, masked_style = trained.evaluate(style), masked.evaluate(style)
            trained_text = trained.inner_text()
            n_samples = page.locator("section.sample").count()
            parity = {m: page.locator(f'#parity tr[data-mode="{m}"] td.text').inner_text().strip() for m in ("think", "nothink")}
            page.screenshot(path=str(ARTIFACT), full_page=True)
        finally:
            browser.close()

    assert summary == {"rows": str(len(rows)), "rows_with_trace": str(traces),
                       "empty_think.prompt_masked": str(len(rows) - traces), "empty_think.response_trained": "0",
                       "cut_rows": "0", "answer_lost_rows": "0"}
    assert trained_style[0] != masked_style[0] and trained_style[1] != masked_style[1], (trained_style, masked_style)
    assert trained_text.startswith("<think>")  # row 1 is a thinking row: its trace carries the loss
    assert n_samples == 3
    assert parity == {"think": "identical", "nothink": "identical"}
    assert ARTIFACT.stat().st_size > 10_000
