"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def chromium() -> dict[str, Any]:
    """``pw.chromium.launch(**chromium)``: Debian's chromium through Playwright, no browser download.
    Without it the test skips, or fails under CI=true (scripts/test.sh installs it as root)."""
    if not Path(CHROMIUM).is_file():
        msg = f"{CHROMIUM} is missing: apt-get update && apt-get install -y chromium"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    pytest.importorskip("playwright.sync_api")
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}
