"""OsProcesses against real subprocesses: exit codes, adoption, tree kills, sweeps, spawn errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from supervisor.run.process import (
    TOKEN_ENV,
    Handle,
    OsProcesses,
    SpawnError,
    carriers_of,
    exit_code,
    identify,
    new_token,
    token_carriers,
)
from tests.support.waiting import wait_exit, wait_for

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable

# Agents, as `python -c` programs. argv[1] is a file they write once they are set up.
SLEEPER = """
import pathlib, signal, sys
pathlib.Path(sys.argv[1]).write_text("ready")
while True:
    signal.pause()
"""
TERM_IGNORER = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + SLEEPER
# Double fork: the grandchild calls setsid() and is re-parented away from the agent; it writes its
# pid to argv[1]. On SIGTERM it writes argv[1].term and exits, or with argv[2] "ignore" ignores it.
ESCAPER = """
import os, pathlib, signal, sys
ready = pathlib.Path(sys.argv[1])
def bye(*_):
    pathlib.Path(sys.argv[1] + ".term").write_text("bye")
    os._exit(0)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN if sys.argv[2] == "ignore" else bye)
        ready.with_suffix(".tmp").write_text(str(os.getpid()))
        os.replace(ready.with_suffix(".tmp"), ready)
        while True:
            signal.pause()
    os._exit(0)
os.wait()
while True:
    signal.pause()
"""
# On SIGTERM, forks a helper in its own session that ignores SIGTERM, writes the helper's pid to
# argv[1].helper, and exits: the helper was born after terminate() collected the tree.
FORKS_ON_TERM = """
import os, pathlib, signal, sys
ready = pathlib.Path(sys.argv[1])
def fork_helper(*_):
    pid = os.fork()
    if pid == 0:
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            signal.pause()
    pathlib.Path(sys.argv[1] + ".helper").write_text(str(pid))
    os._exit(0)
signal.signal(signal.SIGTERM, fork_helper)
ready.write_text("ready")
while True:
    signal.pause()
"""
# Double fork without setsid: the grandchild execs argv[2] with an empty environment (no token) and
# stays in the agent's process group; its pid goes to argv[1].
ORPHAN_IN_GROUP = """
import os, pathlib, signal, sys
ready = pathlib.Path(sys.argv[1])
if os.fork() == 0:
    pid = os.fork()
    if pid == 0:
        os.execve(sys.argv[2], [sys.argv[2], "60"], {})
    ready.with_suffix(".tmp").write_text(str(pid))
    os.replace(ready.with_suffix(".tmp"), ready)
    os._exit(0)
os.wait()
while True:
    signal.pause()
"""
# Waits until the file argv[1] exists, prints argv[3:] one a line, exits with argv[2].
GATED = """
import os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
print(*sys.argv[3:], sep="\\n")
sys.exit(int(sys.argv[2]))
"""
BURNER = """
import pathlib, signal, sys, time
while time.process_time() < 0.2:
    pass
pathlib.Path(sys.argv[1]).write_text("ready")
while True:
    signal.pause()
"""
# A supervisor stand-in: spawns argv[2:] in cwd argv[1], prints the handle, waits to be killed.
SPAWNER = """
import json, os, sys
from pathlib import Path
from supervisor.run.process import OsProcesses
tmp = Path(sys.argv[1])
handle = OsProcesses().spawn(
    sys.argv[2:], tmp, dict(os.environ), tmp / "out", tmp / "err", tmp / "rc"
)
print(json.dumps(handle.to_dict()), flush=True)
sys.stdin.read()
"""


class Runner:
    """Spawns agents in a temp dir and, at teardown, kills whatever a test left running."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs = OsProcesses()
        self.handles: list[Handle] = []

    def start(
        self, argv: list[str], name: str = "agent", env: dict[str, str] | None = None
    ) -> Handle:
        handle = self.procs.spawn(
            argv,
            self.tmp,
            dict(os.environ) if env is None else env,
            self.tmp / f"{name}.out",
            self.tmp / f"{name}.err",
            self.tmp / f"{name}.rc",
        )
        self.handles.append(handle)
        return handle

    def start_ready(self, program: str, *args: str) -> tuple[Handle, Path]:
        """Start a `python -c program READY ARGS` agent and wait until it wrote READY."""
        ready = self.tmp / "agent.ready"
        handle = self.start([PY, "-c", program, str(ready), *args])
        wait_for(ready.exists, what="the agent to be ready")
        return handle, ready

    def adopt(self, argv: list[str]) -> Handle:
        """Spawn `argv` from a separate supervisor process, then kill -9 that process."""
        spawner = subprocess.Popen(
            [PY, "-c", SPAWNER, str(self.tmp), *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert spawner.stdout is not None
        handle = Handle.from_dict(json.loads(spawner.stdout.readline()))
        self.handles.append(handle)
        spawner.kill()
        spawner.wait()
        spawner.stdout.close()
        assert spawner.stdin is not None
        spawner.stdin.close()
        return handle

    def cleanup(self) -> None:
        for handle in self.handles:
            self.procs.terminate(handle, grace=0)


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    run = Runner(tmp_path)
    yield run
    run.cleanup()


def gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def own_children() -> set[int]:
    return {child.pid for child in psutil.Process().children()}


@pytest.mark.parametrize(
    ("tail", "expected"), [("exit 0", 0), ("exit 3", 3), ("kill -KILL $$", -signal.SIGKILL)]
)
def test_exit_code_and_output(runner: Runner, tail: str, expected: int) -> None:
    handle = runner.start(["/bin/sh", "-c", f"echo out; echo err >&2; {tail}"])

    assert wait_exit(runner.procs, handle) == expected
    assert (runner.tmp / "agent.out").read_text() == "out\n"
    assert (runner.tmp / "agent.err").read_text() == "err\n"
    assert handle.pid not in own_children()  # reaped: no zombie left


def test_output_is_appended_to_existing_files(runner: Runner) -> None:
    (runner.tmp / "agent.out").write_text("earlier\n")
    handle = runner.start(["/bin/sh", "-c", "echo later"])

    assert wait_exit(runner.procs, handle) == 0
    assert (runner.tmp / "agent.out").read_text() == "earlier\nlater\n"


def test_environment_is_the_given_one_plus_token_and_pwd(runner: Runner) -> None:
    env = {"PATH": os.environ["PATH"], "ONLY": "this"}
    handle = runner.start(["env"], env=env)

    assert wait_exit(runner.procs, handle) == 0
    printed = set((runner.tmp / "agent.out").read_text().splitlines())
    expected = {
        f"PATH={env['PATH']}",
        "ONLY=this",
        f"PWD={runner.tmp}",
        f"FLEET_RUN_TOKEN={handle.token}",
    }
    assert printed == expected


def test_program_is_looked_up_on_the_given_path_and_relative_to_cwd(runner: Runner) -> None:
    bin_dir = runner.tmp / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "fleet-test-tool"
    tool.write_text("#!/bin/sh\necho tool ran\n")
    tool.chmod(0o755)

    on_path = runner.start(["fleet-test-tool"], "on-path", env={"PATH": str(bin_dir)})
    relative = runner.start(["./bin/fleet-test-tool"], "relative")

    assert wait_exit(runner.procs, on_path) == 0
    assert wait_exit(runner.procs, relative) == 0
    assert (runner.tmp / "on-path.out").read_text() == "tool ran\n"
    assert (runner.tmp / "relative.out").read_text() == "tool ran\n"


@pytest.mark.parametrize(
    ("argv", "cwd_name", "reason"),
    [
        (["fleet-no-such-program"], ".", "'fleet-no-such-program' was not found"),
        (["./missing-script"], ".", "'./missing-script' was not found"),
        ([], ".", "the command is empty"),
        (["true"], "no-such-dir", "no-such-dir does not exist"),
    ],
)
def test_spawn_error_starts_nothing(
    tmp_path: Path, argv: list[str], cwd_name: str, reason: str
) -> None:
    before = own_children()

    with pytest.raises(SpawnError) as caught:
        OsProcesses().spawn(
            argv,
            tmp_path / cwd_name,
            dict(os.environ),
            tmp_path / "out",
            tmp_path / "err",
            tmp_path / "rc",
        )

    assert reason in caught.value.reason
    assert own_children() == before
    assert not (tmp_path / "out").exists()


def test_adopted_agent_is_running_then_its_exit_code_comes_from_the_rc_file(
    runner: Runner,
) -> None:
    gate = runner.tmp / "gate"
    handle = runner.adopt([PY, "-c", GATED, str(gate), "7", "first", "second"])
    fresh = OsProcesses()

    assert fresh.poll(handle) is None
    assert handle.pid not in own_children()
    gate.touch()
    assert wait_exit(fresh, handle) == 7
    assert (runner.tmp / "out").read_text() == "first\nsecond\n"


def test_adopted_tree_is_terminated_by_a_new_instance(runner: Runner) -> None:
    ready = runner.tmp / "ready"
    handle = runner.adopt([PY, "-c", SLEEPER, str(ready)])
    wait_for(ready.exists, what="the adopted agent to be ready")
    fresh = OsProcesses()
    _, rss = fresh.usage(handle)
    assert rss > 0

    started = time.monotonic()
    fresh.terminate(handle, grace=10)

    assert time.monotonic() - started < 5  # the agent obeyed SIGTERM: no waiting for the grace
    assert fresh.poll(handle) == -signal.SIGTERM
    assert token_carriers(handle.token) == []


def test_handle_whose_pid_was_reused_is_gone(runner: Runner) -> None:
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        created = psutil.Process(stranger.pid).create_time()
        handle = Handle(stranger.pid, created - 1000, new_token(), str(runner.tmp / "rc"))
        fresh = OsProcesses()

        assert fresh.poll(handle) == -signal.SIGKILL
        assert fresh.usage(handle) == (0.0, 0)
        fresh.terminate(handle, grace=0)
        assert stranger.poll() is None  # not ours: left alone
    finally:
        stranger.kill()
        stranger.wait()


def test_identity_survives_a_wall_clock_step(runner: Runner) -> None:
    handle, _ = runner.start_ready(SLEEPER)
    stepped = Handle(handle.pid, handle.create_time + 3600, handle.token, handle.rc_path)

    assert identify(stepped) is not None
    assert OsProcesses().poll(stepped) is None


@pytest.mark.parametrize("on_term", ["ignore", "obey"])
def test_terminate_kills_an_escaped_setsid_grandchild(runner: Runner, on_term: str) -> None:
    handle, ready = runner.start_ready(ESCAPER, on_term)
    grandchild = psutil.Process(int(ready.read_text()))
    wrapper = psutil.Process(handle.pid)
    assert grandchild.pid not in {p.pid for p in wrapper.children(recursive=True)}
    assert os.getsid(grandchild.pid) != os.getsid(handle.pid)

    runner.procs.terminate(handle, grace=0.3)

    assert gone(grandchild)
    # An escapee is found before the stop, so it gets SIGTERM and its grace too.
    assert Path(f"{ready}.term").exists() == (on_term == "obey")
    assert token_carriers(handle.token) == []
    assert handle.pid not in own_children()


def test_terminate_all_stops_several_trees_with_one_look_for_their_tokens(runner: Runner) -> None:
    started = []
    for name in ("one", "two"):
        ready = runner.tmp / f"{name}.ready"
        handle = runner.start([PY, "-c", ESCAPER, str(ready), "obey"], name)
        wait_for(ready.exists, what=f"the escapee of {name}")
        started.append((handle, psutil.Process(int(ready.read_text()))))
    ended = runner.start(["true"], "ended")
    assert wait_exit(runner.procs, ended) == 0
    found = carriers_of({handle.token for handle, _ in started} | {ended.token})
    assert ended.token not in found
    for handle, escapee in started:
        assert escapee.pid in {p.pid for p in found[handle.token]}

    runner.procs.terminate_all([*(handle for handle, _ in started), ended], grace=5)

    assert runner.procs.poll(ended) == 0
    for handle, escapee in started:
        assert gone(escapee)
        assert runner.procs.poll(handle) == -signal.SIGTERM
        assert token_carriers(handle.token) == []
        assert handle.pid not in own_children()


def test_terminate_sweeps_a_process_forked_during_the_grace(runner: Runner) -> None:
    handle, ready = runner.start_ready(FORKS_ON_TERM)

    runner.procs.terminate(handle, grace=5)

    assert Path(f"{ready}.helper").exists()  # the helper was born during the stop
    assert token_carriers(handle.token) == []


def test_terminate_kills_a_tokenless_orphan_through_the_process_group(runner: Runner) -> None:
    sleep = shutil.which("sleep")
    assert sleep is not None
    handle, ready = runner.start_ready(ORPHAN_IN_GROUP, sleep)
    orphan = psutil.Process(int(ready.read_text()))
    wait_for(lambda: orphan.name() == "sleep", what="the orphan to exec")  # then its env is {}
    assert TOKEN_ENV not in orphan.environ()
    assert orphan.pid not in {p.pid for p in psutil.Process(handle.pid).children(recursive=True)}
    assert os.getpgid(orphan.pid) == handle.pid

    runner.procs.terminate(handle, grace=5)

    assert gone(orphan)


def test_poll_while_another_thread_terminates(runner: Runner) -> None:
    handle, _ = runner.start_ready(SLEEPER)
    stopper = threading.Thread(target=runner.procs.terminate, args=(handle, 5))

    stopper.start()
    code = wait_exit(runner.procs, handle)
    stopper.join()

    assert code == -signal.SIGTERM
    assert runner.procs.poll(handle) == code
    assert handle.pid not in own_children()


def test_terminate_kills_an_agent_that_ignores_sigterm_after_the_grace(runner: Runner) -> None:
    handle, _ = runner.start_ready(TERM_IGNORER)
    grace = 0.5

    started = time.monotonic()
    runner.procs.terminate(handle, grace)
    elapsed = time.monotonic() - started

    assert grace <= elapsed < grace + 2
    assert runner.procs.poll(handle) == -signal.SIGKILL
    assert token_carriers(handle.token) == []


def test_sweep_kills_an_agent_whose_wrapper_was_killed(runner: Runner) -> None:
    (runner.tmp / "agent.rc").write_text("0")  # a stale file from an earlier attempt
    handle, _ = runner.start_ready(SLEEPER)
    os.kill(handle.pid, signal.SIGKILL)

    assert wait_exit(runner.procs, handle) == -signal.SIGKILL
    (agent,) = token_carriers(handle.token)
    assert runner.procs.sweep(handle.token) == 1
    assert gone(agent)
    assert runner.procs.sweep(handle.token) == 0


def test_usage_sums_the_live_tree(runner: Runner) -> None:
    ready = [runner.tmp / "one", runner.tmp / "two"]
    script = f'"{PY}" -c "$0" {ready[0]} & "{PY}" -c "$0" {ready[1]} & wait'
    handle = runner.start(["/bin/sh", "-c", script, BURNER])
    wait_for(lambda: all(path.exists() for path in ready), what="both burners")
    tree = psutil.Process(handle.pid).children(recursive=True)
    burners = [p for p in tree if p.cmdline()[:1] == [PY]]
    assert len(burners) == 2

    burned = sum(p.cpu_times().user + p.cpu_times().system for p in burners)
    resident = sum(p.memory_info().rss for p in burners)

    cpu, rss = runner.procs.usage(handle)

    assert burned >= 0.3  # each burned 0.2 s, counted in whole clock ticks
    assert cpu >= burned
    assert rss > resident
    runner.procs.terminate(handle, grace=5)
    assert runner.procs.usage(handle) == (0.0, 0)


@pytest.mark.parametrize(
    ("status", "code"),
    [(0, 0), (3, 3), (128, 128), (137, -9), (143, -15), (192, -64), (255, 255)],
)
def test_shell_status_maps_to_exit_code(status: int, code: int) -> None:
    assert exit_code(status) == code


def test_handle_round_trips_through_json() -> None:
    handle = Handle(4242, 1700000000.25, new_token(), "/tmp/x/rc")

    assert Handle.from_dict(json.loads(json.dumps(handle.to_dict()))) == handle
