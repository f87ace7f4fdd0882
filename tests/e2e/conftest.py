"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import missing

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def chromium() -> dict[str, Any]:
    """``pw.chromium.launch(**chromium)``: Debian's chromium through Playwright, no browser download.
    Without either the test skips, or fails under CI=true (scripts/test.sh installs chromium as root;
    playwright comes with the dev extra)."""
    if not Path(CHROMIUM).is_file():
        missing(f"{CHROMIUM} is missing: apt-get update && apt-get install -y chromium")
    if importlib.util.find_spec("playwright") is None:
        missing("playwright is not installed: pip install -e '.[dev]' (scripts/setup_venv.sh dev)")
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}
