"""A sweep on a Ray cluster started apart from it, on this machine: ``ray start --head`` and a second node
joined with ``ray start --address`` (one CPU each, their own ports and temp dir, no dashboard), two trials of
the small-vocabulary tiny model (2 real ``llamafactory-cli train`` steps each) as Ray tasks; the sweep's
driver is killed while both run and the same command resumes in the same folder.

Teardown stops exactly the Ray processes this test started (those whose command line names its temp dir,
and their children), not ``ray stop``: that stops every Ray process on the machine, other sessions' too."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.helpers import output_tail

pytestmark = pytest.mark.e2e

RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def free_ports(n: int) -> list[int]:
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


def _ours(temp_dir: str) -> list:
    """Processes of the cluster this test started: their command line names its temp dir; plus children."""
    import psutil

    me = psutil.Process()
    skip = {me.pid, *(p.pid for p in me.parents())}  # this process and its callers may name the folder too
    found = {}
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid not in skip and temp_dir in " ".join(proc.info["cmdline"] or []):
            found[proc.pid] = proc
            for child in proc.children(recursive=True):
                found[child.pid] = child
    return list(found.values())


def stop_cluster(temp_dir: str) -> None:
    import psutil

    procs = _ours(temp_dir)
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=3)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


@pytest.fixture
def ray_cluster():
    """(address, timings): a head and a second node, started by the ray CLI like a user would."""
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths live under it
    env = {**os.environ, **RAY_ENV}
    p = free_ports(16)
    head_port = p[0]
    common = ["--num-cpus=1", "--disable-usage-stats"]
    head = [ray_cli(), "start", "--head", f"--port={head_port}", f"--temp-dir={temp_dir}", "--include-dashboard=false",
            f"--dashboard-port={p[1]}",
            f"--node-manager-port={p[2]}", f"--object-manager-port={p[3]}", f"--ray-client-server-port={p[4]}",
            f"--dashboard-agent-listen-port={p[5]}", f"--dashboard-agent-grpc-port={p[6]}",
            f"--runtime-env-agent-port={p[7]}", f"--metrics-export-port={p[8]}", *common]
    node = [ray_cli(), "start", f"--address=127.0.0.1:{head_port}", f"--node-manager-port={p[9]}",
            f"--object-manager-port={p[10]}", f"--dashboard-agent-listen-port={p[11]}",
            f"--dashboard-agent-grpc-port={p[12]}", f"--runtime-env-agent-port={p[13]}", f"--metrics-export-port={p[14]}",
            *common]
    timings = {}
    try:
        for name, cmd in (("head", head), ("node", node)):
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
            timings[name] = time.perf_counter() - t0
            assert proc.returncode == 0, f"ray start ({name}) failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        yield f"127.0.0.1:{head_port}", timings
    finally:
        stop_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _state(trial_dir: Path) -> str | None:
    try:
        return json.loads((trial_dir / "trial.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return None


def _wait(condition, timeout: float, what: str) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_sweep_on_an_existing_two_node_cluster_is_killed_and_resumes(tmp_path, repo_root, small_model, ray_cluster):
    import psutil
    import yaml

    from tests.e2e.test_sweep_lora_rank import write_sweep

    address, timings = ray_cluster
    path = write_sweep(tmp_path, repo_root, small_model, [4, 8])
    sweep_file = yaml.safe_load(path.read_text())
    sweep_file["eval"] = None  # training only: the lora_rank e2e test runs the evaluator
    sweep_file["fixed"] = [o for o in sweep_file["fixed"] if not o.startswith("max_steps=")] + ["max_steps=2"]
    path.write_text(yaml.safe_dump(sweep_file, sort_keys=False))
    out = Path(sweep_file["output_dir"])
    cmd = [sys.executable, "-m", "llamafactory_ext.cli", "sweep", str(path), "backend=ray", f"ray_address={address}",
           "gpus_per_trial=0", "cpus_per_trial=1", "tokenize_once=false"]
    env = {**os.environ, **RAY_ENV, "PYTHONPATH": str(repo_root)}

    # 1. Both trials start as Ray tasks; each asks for the one CPU a node has, so while both run they run on
    #    the two nodes. The driver is killed while they run.
    driver = subprocess.Popen(cmd, cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait(lambda: all(_state(out / f"lora_rank-{r}") == "running" for r in (4, 8)), 120, "both trials running")
    finally:
        driver.kill()
        first = driver.communicate(timeout=30)[0]
    assert first.count("as a Ray task (num_gpus=0)") == 2, first[-3000:]
    # Ray ends the killed driver's tasks and their llamafactory-cli children: no training goes on writing there
    _wait(lambda: not [p for p in psutil.process_iter(["cmdline"]) if str(out) in " ".join(p.info["cmdline"] or [])],
          30, "the killed sweep's trainings to end")
    assert not (out / "lora_rank-4" / "adapter_model.safetensors").exists() or _state(out / "lora_rank-4") != "done"

    # 2. The same command resumes in the same folder and finishes both trials.
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True, timeout=300, check=False)
    timings["resumed sweep"] = time.perf_counter() - t0
    assert proc.returncode == 0, output_tail(proc)
    for r in (4, 8):
        d = out / f"lora_rank-{r}"
        state = json.loads((d / "trial.json").read_text())
        assert state["status"] == "done" and state["attempts"] == 2  # started once, killed, run again
        assert (d / "adapter_model.safetensors").is_file() and json.loads((d / "adapter_config.json").read_text())["r"] == r
    summary = json.loads((out / "summary.json").read_text())
    assert [t["status"] for t in summary["trials"]] == ["done", "done"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["lora_rank-4", "lora_rank-8"]  # one folder
    print(f"\nray start: head {timings['head']:.1f} s, second node {timings['node']:.1f} s; "
          f"resumed sweep {timings['resumed sweep']:.1f} s")
