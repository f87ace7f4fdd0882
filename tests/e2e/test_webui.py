"""The web UI: `llamafactory-cli webui` started from the repository root lists every data set of
the project's top-level dataset_info.json once its "Data dir" box holds the repository root.

A real browser drives the real server: Debian's chromium (apt-get install chromium; CI installs it
in scripts/test.sh) through Playwright with its executable path, no browser download. Without
chromium the test skips, or fails under CI=true.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def webui(repo_root, tmp_path_factory):
    """URL of a `llamafactory-cli webui` running from the repo root; killed at the end."""
    from llamafactory_ext.runtime import cpu_env, llamafactory_cli

    port = _free_port()
    env = cpu_env()
    env.update({"GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_SERVER_PORT": str(port),
                "GRADIO_SERVER_NAME": "127.0.0.1",
                "BROWSER": "true"})  # gradio launches with inbrowser=True: open nothing
    log_path = tmp_path_factory.mktemp("webui") / "webui.log"
    log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 -- the server writes to it until teardown
    proc = subprocess.Popen([llamafactory_cli(), "webui"], cwd=repo_root, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llamafactory-cli webui exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"webui did not serve {url} within 300 s:\n{log_path.read_text()[-4000:]}")
            time.sleep(1)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and nothing else
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)
        log.close()


def test_webui_lists_the_project_datasets(webui, chromium, repo_root, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    info = json.loads((repo_root / "dataset_info.json").read_text(encoding="utf-8"))
    # the Train tab starts at stage "Supervised Fine-Tuning": LLaMA-Factory lists the non-ranking data sets
    # there (webui/control.py list_datasets); the preference pairs appear under DPO / reward modelling
    names = [k for k, v in info.items() if not v.get("ranking", False)]
    ranking = [k for k, v in info.items() if v.get("ranking", False)]
    assert len(names) >= 6
    with sync_playwright() as pw:
        browser = pw.chromium.launch(**chromium)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(webui)
            # accessible name "Data dir Path to the data directory."; the first one is the Train tab's
            data_dir = page.get_by_role("textbox", name="Data dir").first
            expect(data_dir).to_be_visible(timeout=120_000)
            assert data_dir.input_value() == "data"  # LLaMA-Factory's default: not the project's data
            data_dir.fill(str(repo_root))
            data_dir.press("Tab")

            dropdown = page.get_by_role("textbox", name="Dataset", exact=True).first  # gradio's dropdown input
            dropdown.click()  # its focus event re-reads <Data dir>/dataset_info.json
            options = page.get_by_role("option")
            expect(options.first).to_be_visible(timeout=60_000)
            deadline = time.monotonic() + 60
            listed: list[str] = []
            while time.monotonic() < deadline:
                listed = [t.strip() for t in options.all_inner_texts()]
                if set(names) <= set(listed):
                    break
                time.sleep(0.5)
            page.screenshot(path=str(tmp_path / "webui_datasets.png"), full_page=True)
        finally:
            browser.close()
    missing = sorted(set(names) - set(listed))
    assert not missing, f"web UI does not list {missing}; it lists {listed} (screenshot: {tmp_path / 'webui_datasets.png'})"
    assert not set(ranking) & set(listed), "preference data sets must not be offered for supervised fine-tuning"
