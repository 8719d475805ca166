"""Running fleet's supervisor as a real process, with the real agent CLIs talking to fleet's mock
model servers on 127.0.0.1: what the conformance, rotation and budget tests share.

The supervisor inherits the test's environment (`fleet_process`), so a test points a coder's CLI
at its mock by setting the coder's base-URL and key variables with `monkeypatch` (with no account
the agents get the supervisor's own), and puts the CLIs' bin directory first on PATH. Every wait
has a deadline; a supervisor left running is stopped with its agents.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

import coders
from coders.base import BaseCoder
from coders.check.harness import mock_handler
from coders.check.mock.base import MockServer, Script
from supervisor.model import Task
from supervisor.run.process import TOKEN_ENV
from supervisor.store.store import Store
from tests.conftest import Result, fleet_process
from tests.support.agent_cli import cli_bin
from tests.support.waiting import wait_for

AGENT_CODERS = ("claude", "codex", "gemini", "opencode")
DUMMY_KEY = "sk-fleet-e2e-dummy"
RUN_TIMEOUT = 150.0  # one `fleet supervisor run` with real CLIs, on a loaded machine
# Limits short enough that a stuck agent fails the test in time, long enough for a loaded machine.
QUICK_CONFIG = ("max_seconds=90", "stall_seconds=60", "grace_seconds=2", "backoff_seconds=30")
T = TypeVar("T")
Fleet = Callable[..., Result]


def mock_for(name: str, script: Script) -> MockServer:
    """A mock model server of coder `name`'s API (started by `with`)."""
    return MockServer(mock_handler(coders.get(name)), script)


def base_url(name: str, mock: MockServer) -> str:
    """The value of the coder's base-URL variable for `mock` (Codex's is the API root, /v1)."""
    return f"{mock.url}/v1" if name == "codex" else mock.url


def use_clis(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """The CLIs of `names` first on PATH; no agent credential nor base URL inherited from the
    test's own environment. A missing CLI skips the test (`cli_bin`; in CI it fails)."""
    for name in AGENT_CODERS:
        coder = coders.get(name)
        credentials = coder.credential_env if isinstance(coder, BaseCoder) else ()
        for variable in {coder.base_url_env, coder.key_env, *credentials} - {""}:
            monkeypatch.delenv(variable, raising=False)
    bins = sorted({cli_bin(coders.get(name).binary) for name in names})
    monkeypatch.setenv("PATH", os.pathsep.join([*bins, os.environ.get("PATH", "")]))


def point_at(monkeypatch: pytest.MonkeyPatch, name: str, mock: MockServer, key_env: str) -> None:
    """The supervisor's own variables point coder `name` at `mock`, a dummy key in `key_env`."""
    monkeypatch.setenv(coders.get(name).base_url_env, base_url(name, mock))
    monkeypatch.setenv(key_env, DUMMY_KEY)


def ok(result: Result) -> Result:
    assert result.code == 0, f"exit {result.code}\nstdout: {result.out}\nstderr: {result.err}"
    return result


def create(fleet: Fleet, title: str, *options: str) -> str:
    """`fleet bd create TITLE OPTIONS...`; the new task's id."""
    return ok(fleet("bd", "create", title, *options)).out.strip()


def run_supervisor(home: Path, *options: str) -> Result:
    """`fleet supervisor run OPTIONS...` as a real process, which must exit 0 in time (past the
    deadline it is killed, and so are its agents, which run in sessions of their own)."""
    try:
        return ok(fleet_process("supervisor", "run", *options, home=home, timeout=RUN_TIMEOUT))
    except subprocess.TimeoutExpired:
        for proc in agents_of(home):
            proc.kill()
        pytest.fail(f"fleet supervisor run {' '.join(options)} ran past {RUN_TIMEOUT:g} s")


def supervise_until(home: Path, probe: Callable[[], T | None], what: str) -> T:
    """Run `fleet supervisor run` in the background until `probe` returns something, then stop it
    (`fleet supervisor stop --now`) with whatever agent still runs; what `probe` returned.

    The supervisor runs in the foreground of a process of its own rather than through `fleet
    supervisor start`: while that command waits for the daemon, it probes the supervisor lock by
    taking it for an instant, and a daemon that tries the lock at that instant exits at once."""
    env = {**os.environ, "FLEET_HOME": str(home)}
    argv = [sys.executable, "-m", "supervisor", "supervisor", "run"]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        found = wait_for(probe, RUN_TIMEOUT, what)
    finally:
        stopped = fleet_process("supervisor", "stop", "--now", "--timeout", "60", home=home)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    ok(stopped)
    assert proc.returncode == 0, f"the supervisor exited {proc.returncode}: {err}"
    assert found is not None
    return found


def task_of(home: Path, task_id: str) -> Task:
    store = Store.open(home)
    try:
        return store.get(task_id)
    finally:
        store.close()


def ended(home: Path, task_id: str) -> Task | None:
    """The task once its first attempt is recorded (None before)."""
    task = task_of(home, task_id)
    return task if task.attempts else None


def read_json(fleet: Fleet, *args: str) -> Any:
    return json.loads(ok(fleet(*args, "--json")).out)


def agents_of(home: Path) -> list[psutil.Process]:
    """Live processes of this home's agents: those that carry a run token and its FLEET_HOME."""
    found = []
    for proc in psutil.process_iter():
        try:
            env = proc.environ()
            mine = TOKEN_ENV in env and env.get("FLEET_HOME") == str(home)
            if mine and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found
