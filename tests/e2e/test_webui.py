"""``llamafactory-ext webui`` in a real browser: LlamaBoard with the project inside.

ONE server per module (``llamafactory-ext webui port=N`` as a subprocess, in a project folder where
four data sets were prepared from the built-in samples and the format study was copied in), and one
page of Debian's chromium driven through Playwright, shared by every check in file order. The
checks derive their expectations from the files (dataset_info.json, the recipe, the study file,
predictions.jsonl with statsmodels' Wilson interval), not from the web UI's code.

Set LLAMAFACTORY_EXT_WEBUI_SHOTS=DIR to also keep the screenshots of the added tabs there (docs/img).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.helpers import EXT, REPO

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PREPARED = ["multit_mixed", "multit_think", "multit_nothink", "gsm8k"]
STUDY = "recipes/studies/format.yaml"
WAIT_MS = 120_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group(pgid: int) -> list[int]:
    """Live processes of a process group, read from /proc (field 5 of stat is the group, 3 the state)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if entry.name.isdigit() and int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A user's project folder: dataset_info.json (the shipped one: 16 entries) with 4 data sets
    prepared from the samples, and the format study with the recipes and eval config it names."""
    from llamafactory_ext.data.samples import prepare_samples
    from llamafactory_ext.recipes import copy

    root = prepare_samples(tmp_path_factory.mktemp("project"), names=PREPARED)
    copy(["studies/format", f"dest={root}"])  # as a user does: `recipes copy studies/format`, with what it names
    return root


@pytest.fixture(scope="module")
def server(project, tmp_path_factory):
    """``llamafactory-ext webui port=N`` running in the project folder (its own session)."""
    from llamafactory_ext.runtime import cpu_env

    port = _free_port()
    log_path = tmp_path_factory.mktemp("webui-log") / "webui.log"
    log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 -- the server writes to it until teardown
    proc = subprocess.Popen([*EXT, "webui", f"port={port}"], cwd=project, env=cpu_env(threads=1), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llamafactory-ext webui exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"webui did not serve {url} within 300 s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.5)
        yield {"url": url, "proc": proc, "log": log_path, "port": port}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def page(server, chromium, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    browser = pw.chromium.launch(**chromium)
    try:
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        pg.set_default_timeout(60_000)
        pg.goto(server["url"])
        pg.shots = tmp_path_factory.mktemp("webui-shots")  # type: ignore[attr-defined]
        yield pg
    finally:
        browser.close()
        pw.stop()


def shot(pg, name: str) -> None:
    """A screenshot of the page's tabs (kept in the test's tmp folder, and in $LLAMAFACTORY_EXT_WEBUI_SHOTS)."""
    path = pg.shots / f"{name}.png"
    pg.locator(".tabs").first.screenshot(path=str(path))
    if os.environ.get("LLAMAFACTORY_EXT_WEBUI_SHOTS"):
        shutil.copyfile(path, Path(os.environ["LLAMAFACTORY_EXT_WEBUI_SHOTS"]) / path.name)


def choose(pg, selector: str, option: str) -> None:
    pg.locator(f"{selector} input").click()
    pg.get_by_role("option", name=option, exact=True).click()


def fill(pg, selector: str, value) -> None:
    box = pg.locator(selector).locator("input, textarea").first
    box.fill(str(value))
    box.press("Tab")


def listed(pg, dropdown) -> list[str]:
    from playwright.sync_api import expect

    dropdown.click()  # LlamaBoard re-reads <Data dir>/dataset_info.json on focus
    options = pg.get_by_role("option")
    expect(options.first).to_be_visible()
    names = sorted(t.strip() for t in options.all_inner_texts())
    pg.keyboard.press("Escape")
    return names


def test_datasets_listed_without_touching_data_dir(page, project):
    from playwright.sync_api import expect

    info = json.loads((project / "dataset_info.json").read_text())
    present = sorted(k for k, v in info.items() if not v.get("ranking") and (project / v["file_name"]).is_file())
    assert present == sorted(PREPARED) and len(info) > len(present)  # entries without files exist to be left out
    data_dir = page.get_by_role("textbox", name="Data dir").first
    expect(data_dir).to_have_value(".")  # the project folder (the server's working folder), not LlamaBoard's "data"
    assert listed(page, page.get_by_role("textbox", name="Dataset", exact=True).first) == present
    page.get_by_role("tab", name="Evaluate & Predict").click()
    assert listed(page, page.get_by_role("textbox", name="Dataset", exact=True).first) == present  # the visible one
    page.get_by_role("tab", name="Train").click()


def test_recipe_v3_mixed_sets_mixed_thinking(page):
    from playwright.sync_api import expect

    recipe = yaml.safe_load((REPO / "recipes" / "v3_mixed.yaml").read_text())
    assert recipe["enable_thinking"] is None
    choose(page, "#ext-recipe", "v3_mixed (shipped)")
    expect(page.locator("#ext-thinking-format input")).to_have_value("mixed")
    expect(page.get_by_role("textbox", name="Model path")).to_have_value(recipe["model_name_or_path"])
    page.get_by_role("button", name="Preview command").first.click()
    preview = page.locator("pre", has_text="llamafactory-cli train").first
    expect(preview).to_contain_text("--enable_thinking None")  # LlamaBoard's preview of a null
    text = preview.inner_text()
    for key in ("dataset", "template", "lora_rank", "cutoff_len", "lora_target"):
        assert re.search(rf"--{key} {re.escape(str(recipe[key]))}\s", text), (key, text)
    shot(page, "webui_train_recipe")


def test_inspect_shows_identical_parity_for_v3_mixed(page, project):
    """Inspect runs on the Train tab's settings (v3_mixed, from the previous check) as LlamaBoard's
    Start would write them; v3_mixed trains both modes (enable_thinking null)."""
    from llamafactory.hparams import DataArguments
    from playwright.sync_api import expect
    from transformers import HfArgumentParser

    page.get_by_role("tab", name="Inspect").click()
    fill(page, "#in-tokenizer", "fixture")
    page.locator("#in-run").click()
    expect(page.locator("#in-status")).to_contain_text(re.compile("Done|Error|Failed"), timeout=WAIT_MS)
    summary = page.locator("#in-summary").inner_text()
    parity = dict(re.findall(r"^\s*(think|nothink)\s+(\S+)", summary, re.MULTILINE))
    assert parity == {"think": "identical", "nothink": "identical"}, summary
    assert re.search(r"^multit_mixed\s+\d+", summary, re.MULTILINE), summary
    shot(page, "webui_inspect")
    # the arguments it inspected, written by LlamaBoard's save_cmd from its _parse_train_args: LLaMA-Factory reads null
    args = yaml.safe_load((project / "llamaboard_cache" / "inspect" / "training_args.yaml").read_text())
    (data_args,) = HfArgumentParser(DataArguments).parse_dict(args, allow_extra_keys=True)
    assert "enable_thinking" in args and data_args.enable_thinking is None
    assert data_args.dataset == ["multit_mixed"] and data_args.template == "qwen3"


def _start_eval(page, small_model, source, out: Path, limit: int, max_new_tokens: int) -> None:
    model_path = page.get_by_role("textbox", name="Model path")
    model_path.fill(str(small_model))
    model_path.press("Tab")
    page.get_by_label("Chat template").click()
    page.get_by_role("option", name="qwen3", exact=True).click()
    page.get_by_role("tab", name="Thinking eval").click()
    fill(page, "#te-source", source)
    fill(page, "#te-limit", limit)
    fill(page, "#te-max-new-tokens", max_new_tokens)
    fill(page, "#te-output-dir", out)
    page.locator("#te-start").click()


def test_thinking_eval_both_modes_ends_with_its_table(page, small_model, italic_dir, project):
    from playwright.sync_api import expect
    from statsmodels.stats.proportion import proportion_confint

    out = project / "results" / "eval" / "italic_page"
    _start_eval(page, small_model, italic_dir / "italic.jsonl", out, limit=8, max_new_tokens=4)
    expect(page.locator("#te-status")).to_contain_text(re.compile("Done|Error|Failed"), timeout=WAIT_MS)
    assert "Done" in page.locator("#te-status").inner_text(), page.locator("#te-log").inner_text()
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    tables = page.locator("#te-results table")
    settings = dict(r.locator("td").all_inner_texts() for r in tables.first.locator("tbody tr").all())
    assert settings["max_new_tokens"] == "think 4 · nothink 4" and settings["Items"].startswith("8: the first 8")  # the audit header
    table = tables.filter(has_text="Accuracy [95 % CI]").first
    shown = {cells[0]: cells for cells in (r.locator("td").all_inner_texts() for r in table.locator("tbody tr").all())}
    assert sorted(shown) == ["nothink", "think"]
    for mode, cells in shown.items():
        correct = [r["correct"] for r in rows if r["mode"] == mode]
        lo, hi = proportion_confint(sum(correct), len(correct), alpha=0.05, method="wilson")
        assert len(correct) == 8 and cells[1] == "8"
        assert cells[2] == f"{100 * sum(correct) / 8:.2f} [{100 * lo:.1f}, {100 * hi:.1f}]", cells
    expect(page.locator("#te-results")).to_contain_text("Thinking vs non-thinking")
    expect(page.locator("#te-plots img")).to_have_count(2)  # italic_think.png, italic_nothink.png
    for img in page.locator("#te-plots img").all():
        img.scroll_into_view_if_needed()  # the gallery loads lazily
        expect(img).to_have_js_property("complete", True)
        assert img.evaluate("i => i.naturalWidth") > 0  # the PNGs the command wrote, shown
    shot(page, "webui_thinking_eval")
    # the command shown, pasted into a shell, is the same run: same settings, so it resumes (no refusal)
    command = page.locator("#te-command").inner_text().strip()
    env = {**os.environ, "PATH": f"{Path(EXT[0]).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len((out / "predictions.jsonl").read_text().splitlines()) == len(rows)


def test_abort_leaves_no_process_and_no_torn_file(page, small_model, italic_dir, project, server):
    import psutil
    from playwright.sync_api import expect

    from llamafactory_ext.io import FolderLock

    out = project / "results" / "eval" / "italic_aborted"
    _start_eval(page, small_model, italic_dir / "italic.jsonl", out, limit=5000, max_new_tokens=64)
    status = page.locator("#te-status")
    expect(status).to_contain_text(re.compile(r"italic think: [1-9]\d*/5000 items"), timeout=WAIT_MS)
    pid = int(re.search(r"pid (\d+)", status.inner_text())[1])
    assert pid in [p.pid for p in psutil.Process(server["proc"].pid).children(recursive=True)]
    assert os.getpgid(pid) == pid and _group(pid)  # the command leads a process group of its own
    page.locator("#te-abort").click()
    expect(status).to_contain_text("Aborted", timeout=60_000)
    assert _group(pid) == [] and not Path(f"/proc/{pid}").exists()
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if ".tmp-" in n], names  # no temp file of an atomic write left behind
    text = (out / "predictions.jsonl").read_text()
    assert text.endswith("\n") and all(json.loads(line) for line in text.splitlines())  # no torn line
    with FolderLock(out):  # the command's lock is released
        pass


def test_output_folder_in_use_is_the_commands_one_line(page, small_model, italic_dir, project):
    from playwright.sync_api import expect

    from llamafactory_ext.io import FolderLock

    out = project / "results" / "eval" / "italic_locked"
    with FolderLock(out):
        _start_eval(page, small_model, italic_dir / "italic.jsonl", out, limit=2, max_new_tokens=4)
        status = page.locator("#te-status")
        expect(status).to_contain_text(re.compile("Done|Error|Failed"), timeout=WAIT_MS)
    text = status.inner_text()
    assert f"llamafactory-ext eval: error: output_dir {out} is in use by pid {os.getpid()}" in text, text
    assert "Traceback" not in page.locator("body").inner_text()


def test_format_study_dry_run_lists_every_version(page):
    from playwright.sync_api import expect

    versions = [v["name"] for v in yaml.safe_load((REPO / STUDY).read_text())["versions"]]
    assert versions == ["V1", "V2", "V3"]
    page.get_by_role("tab", name="Format study").click()
    choose(page, "#fs-study", STUDY)
    page.locator("#fs-dry-run").click()
    expect(page.locator("#fs-status")).to_contain_text(re.compile("Done|Error|Failed"), timeout=WAIT_MS)
    listing = page.locator("#fs-listing").inner_text()
    assert "Done" in page.locator("#fs-status").inner_text(), listing
    for name in versions:
        block = re.search(rf"^\[\d+\] {name} .*?\n\s+train: (.+)\n\s+eval: (.+)$", listing, re.MULTILINE)
        assert block and "llamafactory-cli train" in block[1] and f"output_dir=saves/studies/format/{name}/eval" in block[2], listing
    shot(page, "webui_format_study")


def test_server_stops_cleanly(server):
    proc = server["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, server["log"].read_text()[-3000:]
    assert "webui: stopped" in server["log"].read_text()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", server["port"])) != 0  # nothing listens any more
    assert _group(proc.pid) == []
