"""`fleet attach`: a running agent watched in tmux, driven through send-keys and capture-pane on
a tmux server of the test's own (TMUX_TMPDIR), with a real supervisor and a real shell agent."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor.cli.attach import interactive_argv
from supervisor.queue import configure
from supervisor.queue.mutations import NewTask, create
from supervisor.store.store import Store
from tests.conftest import fleet_process
from tests.support.waiting import wait_for

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


@pytest.fixture
def tmux(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """`tmux ARGS...` against a server in the test's own directory; it is killed at the end."""
    folder = Path("/tmp") / f"fleet-tmux-{os.getpid()}-{tmp_path.name}"[:40]
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("TMUX_TMPDIR", str(folder))
    monkeypatch.delenv("TMUX", raising=False)

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", *args], capture_output=True, text=True, check=check)

    yield run
    run("kill-server", check=False)
    shutil.rmtree(folder, ignore_errors=True)


def screen(tmux: Any, target: str) -> str:
    return str(tmux("capture-pane", "-p", "-t", target, check=False).stdout)


def alive(tmux: Any, name: str) -> bool:
    return bool(tmux("has-session", "-t", f"={name}", check=False).returncode == 0)


def test_attach_watches_and_detaching_leaves_the_agent_running(
    store: Store, home: Path, tmp_path: Path, tmux: Any
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    configure.set_values(store, ["coder=shell", "isolation=none", "grace_seconds=1"])
    gate = work / "gate"
    command = f"i=0; while [ ! -e {gate} ]; do i=$((i+1)); echo tick $i; sleep 0.1; done; echo bye"
    task_id = create(
        store, NewTask(title="ticking", coder="shell", command=command, cwd=str(work))
    ).id
    started = fleet_process("supervisor", "start", home=home)
    assert started.code == 0, started.err
    # a terminal of its own: not inside tmux (inside, `fleet attach` switches the client instead)
    attach = "env -u TMUX " + shlex.join(
        [sys.executable, "-m", "supervisor", "--home", str(home), "attach", task_id]
    )
    try:
        wait_for(lambda: store.get(task_id).status == "in_progress", 30, "the agent to start")
        # a terminal (tmux's "outer" session) runs `fleet attach`
        tmux("new-session", "-d", "-s", "outer", "-x", "160", "-y", "40", attach)
        wait_for(lambda: "tick" in screen(tmux, "outer"), 30, "the log in the attached terminal")
        session = f"fleet-{task_id}"
        windows = tmux("list-windows", "-t", session, "-F", "#{window_name}").stdout.split()
        assert windows == ["log", "raw"]
        wait_for(lambda: "tick" in screen(tmux, f"{session}:raw"), 10, "the raw output window")

        tmux("send-keys", "-t", "outer", "C-b", "d")  # detach
        wait_for(lambda: not alive(tmux, "outer"), 10, "`fleet attach` to end on detach")
        assert alive(tmux, session)
        assert store.get(task_id).status == "in_progress"  # the agent goes on

        # attaching again returns to the same session, which follows the agent to its end
        tmux("new-session", "-d", "-s", "outer2", "-x", "160", "-y", "40", attach)
        wait_for(lambda: "tick" in screen(tmux, "outer2"), 30, "the log after attaching again")
        gate.touch()
        wait_for(lambda: "attempt ended" in screen(tmux, "outer2"), 30, "the end of the attempt")
        assert "bye" in screen(tmux, "outer2")  # the log's last line, written as it ended
        wait_for(lambda: store.get(task_id).status == "closed", 30, "the task to close")
    finally:
        fleet_process("supervisor", "stop", "--now", "--timeout", "30", home=home)


def test_attach_refuses_what_it_cannot_do(store: Store, fleet: Any, tmux: Any) -> None:
    task_id = create(store, NewTask(title="idle", coder="shell", command="true", cwd="/tmp")).id
    out = fleet("attach", task_id)
    assert out.code == 2
    assert f"fleet: task {task_id} is not running (status open)" in out.err
    assert "hint:" in out.err
    assert fleet("attach", "not an id").code == 2
    out = fleet("attach", task_id, "--take-over")
    assert out.code == 2 and "not running" in out.err


def test_take_over_is_refused_for_a_coder_without_an_interactive_session(
    store: Store, home: Path, tmp_path: Path, fleet: Any, tmux: Any
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    configure.set_values(store, ["coder=shell", "isolation=none", "grace_seconds=1"])
    gate = work / "gate"
    command = f"until [ -e {gate} ]; do sleep 0.05; done"
    task_id = create(store, NewTask(title="busy", coder="shell", command=command, cwd=str(work))).id
    assert fleet_process("supervisor", "start", home=home).code == 0
    try:
        wait_for(lambda: store.get(task_id).status == "in_progress", 30, "the agent to start")
        before = store.head()
        out = fleet("attach", task_id, "--take-over", "--no-attach")
        assert out.code == 2 and "has no interactive session to take over" in out.err
        assert store.head() == before and store.get(task_id).status == "in_progress"
        out = fleet("attach", task_id, "--no-attach")
        assert out.code == 0 and out.out.strip() == f"fleet-{task_id}"
        assert alive(tmux, f"fleet-{task_id}")
        gate.touch()
    finally:
        fleet_process("supervisor", "stop", "--now", "--timeout", "30", home=home)


def test_each_coder_continues_its_own_conversation() -> None:
    assert interactive_argv("claude", "s-1") == ["claude", "--resume", "s-1"]
    assert interactive_argv("claude", "") is None  # no session yet
    assert interactive_argv("codex", "t-1") == ["codex", "resume", "t-1"]
    assert interactive_argv("gemini", "") == ["gemini", "--resume", "latest"]
    assert interactive_argv("opencode", "o-1") == ["opencode", "--session", "o-1"]
    assert interactive_argv("opencode", "") == ["opencode", "--continue"]
    assert interactive_argv("shell", "x") is None
