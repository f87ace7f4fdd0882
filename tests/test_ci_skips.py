"""Under CI=true the test command reports a skip as a failure, with the skip's reason; outside CI
the skip stays a skip (tests/ci_skips.py, registered by tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import REPO

CASES = '''
import pytest

def test_runs():
    assert 1 + 1 == 2

def test_skips_in_the_body():
    pytest.skip("no browser here")

@pytest.fixture
def needs_data():
    pytest.skip("no ../shared here")

def test_skips_in_a_fixture(needs_data):
    pass
'''
MODULE_SKIP = 'import pytest\npytest.importorskip("no_such_module_anywhere")\n\ndef test_never():\n    pass\n'


def _pytest(path, ci: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.ci_skips", "-p", "no:cacheprovider", "-rA", "-q",
                           "-p", "no:xdist", str(path)], cwd=path if path.is_dir() else path.parent, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ci-skips")
    (folder / "test_cases.py").write_text(CASES)
    (folder / "module").mkdir()
    (folder / "module" / "test_module_skip.py").write_text(MODULE_SKIP)
    return folder


FAILED = "CI=true: a skip is a failure here (outside CI it skips): Skipped: "


@pytest.mark.parametrize("ci", ["true"])
def test_under_ci_every_skip_fails_with_its_reason(cases, ci):
    proc = _pytest(cases / "test_cases.py", ci)
    assert proc.returncode == 1, proc.stdout
    summary = proc.stdout.strip().splitlines()[-1]
    # a skip in the body fails the test; one in a fixture is an error in its set-up
    assert "1 failed" in summary and "1 passed" in summary and "1 error" in summary and "skipped" not in summary, summary
    assert f"{FAILED}no browser here" in proc.stdout and f"{FAILED}no ../shared here" in proc.stdout, proc.stdout
    # a module that skips itself at import (pytest.importorskip) is a collection error: the run stops
    proc = _pytest(cases / "module", ci)
    assert proc.returncode == 2 and f"{FAILED}could not import 'no_such_module_anywhere'" in proc.stdout, proc.stdout


@pytest.mark.parametrize("ci", [None, "false"])
def test_outside_ci_skips_stay_skips_with_their_reason(cases, ci):
    proc = _pytest(cases, ci)
    assert proc.returncode == 0, proc.stdout
    summary = proc.stdout.strip().splitlines()[-1]
    assert "1 passed" in summary and "3 skipped" in summary and "failed" not in summary, summary
    for reason in ("no browser here", "no ../shared here", "could not import 'no_such_module_anywhere'"):
        assert reason in proc.stdout, reason
