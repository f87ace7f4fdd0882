"""Under CI=true a skipped test is a failure: a missing browser, playwright or ../shared must not
pass silently in CI. Outside CI skips stay skips, with their reason. The hooks are registered by
tests/conftest.py (and load alone with ``pytest -p tests.ci_skips``: tests/test_ci_skips.py)."""

from __future__ import annotations

import pytest

from tests.helpers import under_ci


def _as_failure(report) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"CI=true: a skip is a failure here (outside CI it skips): {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if under_ci() and report.skipped and not hasattr(report, "wasxfail"):
        _as_failure(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    if under_ci() and report.skipped:  # a module-level pytest.importorskip / pytest.skip
        _as_failure(report)
    return report
