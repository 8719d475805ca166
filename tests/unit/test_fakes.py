"""FakeProcesses honours the Processes protocol the way OsProcesses does: same scenarios, both."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import psutil
import pytest

from supervisor.run.process import Handle, OsProcesses, Processes, SpawnError, new_token, read_rc
from tests.support.fakes import FakeProcesses
from tests.support.waiting import wait_exit, wait_for

# Waits until the file argv[1] exists, prints argv[3:] one a line, exits with argv[2].
GATED = """
import os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
print(*sys.argv[3:], sep="\\n")
sys.exit(int(sys.argv[2]))
"""
MISSING = "fleet-no-such-program"


class Agents(Protocol):
    """Starts an agent that runs until `release`, then prints `lines` and exits with `code`."""

    procs: Processes
    handles: list[Handle]

    def start(self, tmp: Path, code: int, lines: list[str]) -> Handle: ...

    def started(self, handle: Handle) -> bool: ...

    def release(self, handle: Handle) -> None: ...


class RealAgents:
    def __init__(self) -> None:
        self.procs: Processes = OsProcesses()
        self.handles: list[Handle] = []
        self.gates: dict[str, Path] = {}

    def start(self, tmp: Path, code: int, lines: list[str]) -> Handle:
        gate = tmp / "gate"
        argv = [sys.executable, "-c", GATED, str(gate), str(code), *lines]
        handle = spawn(self.procs, tmp, argv)
        self.handles.append(handle)
        self.gates[handle.token] = gate
        return handle

    def started(self, handle: Handle) -> bool:
        """The wrapper has forked the agent (before that, a SIGTERM finds no agent to stop)."""
        try:
            return bool(psutil.Process(handle.pid).children())
        except psutil.NoSuchProcess:
            return False

    def release(self, handle: Handle) -> None:
        self.gates[handle.token].touch()


class FakeAgents:
    def __init__(self) -> None:
        self.fake = FakeProcesses(missing={MISSING})
        self.procs: Processes = self.fake
        self.handles: list[Handle] = []
        self.plans: dict[str, tuple[int, list[str]]] = {}

    def start(self, tmp: Path, code: int, lines: list[str]) -> Handle:
        handle = spawn(self.procs, tmp, ["claude", "-p"])
        self.handles.append(handle)
        self.plans[handle.token] = (code, lines)
        return handle

    def started(self, handle: Handle) -> bool:
        return handle in [run.handle for run in self.fake.running()]

    def release(self, handle: Handle) -> None:
        code, lines = self.plans[handle.token]
        self.fake.finish(handle, code, lines)


def spawn(procs: Processes, tmp: Path, argv: list[str]) -> Handle:
    return procs.spawn(argv, tmp, dict(os.environ), tmp / "out", tmp / "err", tmp / "rc")


@pytest.fixture(params=["os", "fake"])
def agents(request: pytest.FixtureRequest) -> Iterator[Agents]:
    made: Agents = RealAgents() if request.param == "os" else FakeAgents()
    yield made
    for handle in made.handles:
        made.procs.terminate(handle, grace=0)


def test_agent_runs_until_it_exits_with_its_code_and_output(agents: Agents, tmp_path: Path) -> None:
    handle = agents.start(tmp_path, 3, ["one", "two"])

    wait_for(lambda: agents.started(handle), what="the agent to start")
    assert agents.procs.poll(handle) is None
    agents.release(handle)

    assert wait_exit(agents.procs, handle) == 3
    assert (tmp_path / "out").read_text() == "one\ntwo\n"
    assert read_rc(handle.rc_path) == 3


def test_terminate_stops_a_running_agent_with_sigterm(agents: Agents, tmp_path: Path) -> None:
    handle = agents.start(tmp_path, 0, [])
    wait_for(lambda: agents.started(handle), what="the agent to start")

    agents.procs.terminate(handle, grace=5)

    assert agents.procs.poll(handle) == -signal.SIGTERM
    assert read_rc(handle.rc_path) == -signal.SIGTERM


def test_sweep_of_a_token_nobody_carries_kills_nothing(agents: Agents, tmp_path: Path) -> None:
    handle = agents.start(tmp_path, 0, [])

    assert agents.procs.sweep(new_token()) == 0
    assert agents.procs.poll(handle) is None


def test_handle_from_elsewhere_is_read_from_its_rc_file(agents: Agents, tmp_path: Path) -> None:
    (tmp_path / "old.rc").write_text("143")
    ended = Handle(2**22 + 1, 0.0, new_token(), str(tmp_path / "old.rc"))
    killed = Handle(2**22 + 2, 0.0, new_token(), str(tmp_path / "none.rc"))

    assert agents.procs.poll(ended) == -signal.SIGTERM
    assert agents.procs.poll(killed) == -signal.SIGKILL


@pytest.mark.parametrize(("argv", "cwd"), [([MISSING], "."), (["true"], "no-such-dir"), ([], ".")])
def test_spawn_error_before_anything_starts(
    agents: Agents, tmp_path: Path, argv: list[str], cwd: str
) -> None:
    with pytest.raises(SpawnError):
        agents.procs.spawn(
            argv,
            tmp_path / cwd,
            dict(os.environ),
            tmp_path / "out",
            tmp_path / "err",
            tmp_path / "rc",
        )

    assert not (tmp_path / "out").exists()


def test_fake_records_spawns_stops_and_sweeps(tmp_path: Path) -> None:
    fake = FakeProcesses()
    first = spawn(fake, tmp_path, ["codex", "exec"])
    second = spawn(fake, tmp_path, ["claude", "-p"])
    fake.run(first).usage = (1.5, 4096)

    assert fake.usage(first) == (1.5, 4096)
    fake.terminate(first, grace=7)
    fake.finish(second, 0, leftovers=2)

    assert [run.argv for run in fake.runs] == [["codex", "exec"], ["claude", "-p"]]
    assert fake.terminated == [(first, 7)]
    assert fake.usage(first) == (0.0, 0)
    assert fake.sweep(second.token) == 2
    assert fake.sweep(second.token) == 0
    assert fake.swept == [second.token, second.token]
    assert first.pid != second.pid and first.token != second.token


def test_fake_agent_exits_only_once(tmp_path: Path) -> None:
    fake = FakeProcesses()
    handle = spawn(fake, tmp_path, ["gemini"])
    fake.finish(handle, 1, stderr_lines=["boom"])

    with pytest.raises(AssertionError, match="already exited"):
        fake.finish(handle, 0)
    assert (tmp_path / "err").read_text() == "boom\n"
    assert fake.poll(handle) == 1
