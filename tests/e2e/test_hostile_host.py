"""Real processes against a full disk, copied run records, escaping grandchildren, terminals and
leaking credentials."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from supervisor.model import Run, iso
from supervisor.queue import configure
from supervisor.queue.mutations import NewTask, create
from supervisor.run import containment
from supervisor.run.process import OsProcesses
from supervisor.store.store import Change, Snapshot, Store
from tests.conftest import Result, fleet_process
from tests.support.store_checks import head
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def shell_task(store: Store, command: str, cwd: Path, title: str = "") -> str:
    return create(store, NewTask(title=title or command[:40], coder="shell", command=command,
                                 cwd=str(cwd))).id  # fmt: skip


@pytest.fixture
def quick(store: Store) -> Store:
    configure.set_values(store, ["coder=shell", "isolation=none", "grace_seconds=1"])
    return store


def run_until_idle(home: Path, **env: str) -> Result:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return fleet_process("supervisor", "run", "--until-idle", home=home, timeout=120)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- a full disk -----------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs (root only): a filesystem that really fills up."""
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                          capture_output=True, check=False)  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path) -> None:
    with open(mount / "filler", "wb") as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()


def test_a_full_disk_is_exit_1_and_reads_go_on(small_disk: Path) -> None:
    home = small_disk / "home"
    for i in range(3):
        assert fleet_process("bd", "create", f"task {i}", home=home).code == 0
    before = head(home)
    fill(small_disk)
    made = fleet_process("bd", "create", "one more", "-d", "x" * 100_000, home=home)
    assert made.code == 1, made.err
    assert "no space left on device" in made.err and "bug report" not in made.err
    assert head(home) == before
    shutil.rmtree(home / "cache")  # the cache must be rebuilt, and cannot be written
    (home / "cache").mkdir()
    fill(small_disk)
    listed = fleet_process("bd", "list", home=home)
    assert listed.code == 0, listed.err
    assert all(f"task {i}" in listed.out for i in range(3))
    assert fleet_process("tasks", home=home).code == 0
    (small_disk / "filler").unlink()
    again = fleet_process("bd", "create", "room again", home=home)
    assert again.code == 0, again.err


# -- run records that are not ours -----------------------------------------------------------------


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "120"])
    yield proc
    proc.kill()
    proc.wait()


def plant(store: Store, task_id: str, run: dict[str, object]) -> None:
    def build(snap: Snapshot) -> tuple[Change, None]:
        task = snap.need(task_id)
        task.status, task.run = "in_progress", Run.from_dict(dict(run))
        change = Change("plant", "claimed")
        change.put(task)
        return change, None

    store.mutate(build)


def test_a_crafted_record_naming_an_unrelated_process_leaves_it_alone(
    quick: Store, home: Path, tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    task_id = shell_task(quick, "true", tmp_path)
    created = psutil.Process(stranger.pid).create_time()
    token = "ab" * 24
    plant(quick, task_id, {
        "attempt": 1, "actor": "supervisor@elsewhere:1", "host": socket.gethostname(),
        "supervisor_pid": 1, "coder": "shell", "started_at": iso(created), "token": token,
        "handle": {"pid": stranger.pid, "create_time": created, "token": token,
                   "rc_path": str(tmp_path / "rc")},
    })  # fmt: skip
    done = run_until_idle(home)
    assert done.code == 0, done.err
    assert stranger.poll() is None, "an unrelated process was signalled"
    task = quick.get(task_id)
    assert (
        task.status == "blocked"
        and "not made by a supervisor of this home" in (task.attempts[-1]["reason"])
    )
    OsProcesses().terminate_all([], 0)  # nothing to do; and a handle of the stranger:
    from supervisor.run.process import Handle

    OsProcesses().terminate(Handle(stranger.pid, created, token, str(tmp_path / "rc")), 0)
    assert stranger.poll() is None


def test_an_export_imported_into_another_home_never_touches_the_first_ones_agent(
    quick: Store, home: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    task_id = shell_task(quick, f"echo $$ > {marker}; exec sleep 120", tmp_path, "long")
    first = subprocess.Popen(
        [sys.executable, "-m", "supervisor", "supervisor", "run"],
        env={**os.environ, "FLEET_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        agent = int(wait_for(lambda: marker.exists() and marker.read_text().strip(), 30))
        wait_for(lambda: _handle(quick, task_id), 30, "the recorded handle")
        exported = tmp_path / "export.jsonl"
        assert fleet_process("bd", "export", "-o", str(exported), home=home).code == 0
        second = tmp_path / "second-home"
        imported = fleet_process("bd", "import", str(exported), home=second)
        assert imported.code == 0, imported.err
        assert "runs (deferred" in imported.out
        done = run_until_idle(second)
        assert done.code == 0, done.err
        assert psutil.pid_exists(agent) and psutil.Process(agent).status() != "zombie"
        copy = json.loads(fleet_process("bd", "show", task_id, "--json", home=second).out)
        assert copy["status"] == "deferred" and "run" not in copy
        # a copy of the record itself (not an import): signed by the first home's key only
        other = Store.open(second)
        running = quick.get(task_id).run
        plant(other, task_id, running.to_dict() if running else {})
        other.close()
        assert run_until_idle(second).code == 0
        assert psutil.pid_exists(agent) and psutil.Process(agent).status() != "zombie"
    finally:
        first.send_signal(signal.SIGINT)  # stop now: its agents too
        first.wait(60)
    wait_for(lambda: not psutil.pid_exists(agent) or psutil.Process(agent).status() == "zombie",
             30, "the first home's agent to be stopped by its own supervisor")  # fmt: skip


# -- a grandchild that leaves the session and the environment --------------------------------------


def test_a_setsid_env_i_grandchild_dies_with_its_cgroup(tmp_path: Path) -> None:
    if containment.parent() is None:
        pytest.skip("no cgroup v2 that fleet may create here")
    pidfile = tmp_path / "grandchild"
    script = (
        f"(setsid env -i /bin/sh -c 'echo $$ > {pidfile}; exec sleep 300'"
        " </dev/null >/dev/null 2>&1 &); exec sleep 300"
    )
    procs = OsProcesses()
    rc = tmp_path / "rc"
    handle = procs.spawn(["/bin/sh", "-c", script], tmp_path, {"PATH": os.environ["PATH"]},
                         tmp_path / "out", tmp_path / "err", rc)  # fmt: skip
    grandchild = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 10))
    escapee = psutil.Process(grandchild)
    assert "FLEET_RUN_TOKEN" not in escapee.environ()
    assert os.getsid(grandchild) != os.getsid(handle.pid)
    tree = {p.pid for p in psutil.Process(handle.pid).children(recursive=True)}
    assert grandchild not in tree  # orphaned: out of the tree, the session and the environment
    procs.terminate(handle, grace=0.5)
    wait_for(lambda: not psutil.pid_exists(grandchild) or escapee.status() == "zombie", 10,
             "the escaped grandchild to die")  # fmt: skip
    assert containment.path_of(handle.token) is not None
    assert not containment.path_of(handle.token).exists()  # type: ignore[union-attr]


def test_supervisor_status_says_which_containment_is_in_use(home: Path) -> None:
    status = fleet_process("supervisor", "status", home=home)
    assert status.code == 0
    expected = "cgroup v2" if containment.parent() is not None else "process group and token"
    assert f"process containment: {expected}" in status.out
    data = json.loads(fleet_process("supervisor", "status", "--json", home=home).out)
    assert data["containment"] == containment.describe()


# -- a terminal ------------------------------------------------------------------------------------


def on_a_terminal(home: Path, *args: str) -> bytes:
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "supervisor", *args], stdout=slave,
                            stderr=slave, env={**os.environ, "FLEET_HOME": str(home)})  # fmt: skip
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    proc.wait(30)
    os.close(master)
    return out


def test_agent_output_reaches_a_terminal_neutralised_and_a_pipe_as_it_is(
    quick: Store, home: Path, tmp_path: Path
) -> None:
    task_id = shell_task(quick, r"printf 'hello \033]0;pwned\007\033[2J world\n'", tmp_path, "esc")
    assert run_until_idle(home).code == 0
    shown = on_a_terminal(home, "task", task_id, "log")
    assert b"hello" in shown and b"\x1b]0;pwned" not in shown and b"\x1b[2J" not in shown
    assert b"\\x1b]0;pwned\\x07" in shown
    piped = fleet_process("task", task_id, "log", home=home)
    assert "\x1b]0;pwned\x07" in piped.out


# -- the environment of a shell task ---------------------------------------------------------------


def test_a_shell_task_gets_the_allow_list_not_the_supervisors_secrets(
    quick: Store, home: Path, tmp_path: Path
) -> None:
    dump = tmp_path / "env.txt"
    task_id = shell_task(quick, f"env > {dump}", tmp_path, "env")
    assert run_until_idle(home, GH_TOKEN="ghp_secret", AWS_REGION="eu-west-1").code == 0
    seen = dict(line.split("=", 1) for line in dump.read_text().splitlines() if "=" in line)
    assert "GH_TOKEN" not in seen and "AWS_REGION" not in seen
    assert seen["PATH"] == os.environ["PATH"] and seen["FLEET_TASK_ID"] == task_id
    assert "ghp_secret" not in dump.read_text()
    configure.set_values(quick, ['shell_env=["AWS_*"]'])
    shell_task(quick, f"env > {dump}", tmp_path, "env again")
    assert run_until_idle(home, GH_TOKEN="ghp_secret", AWS_REGION="eu-west-1").code == 0
    seen = dict(line.split("=", 1) for line in dump.read_text().splitlines() if "=" in line)
    assert seen["AWS_REGION"] == "eu-west-1" and "GH_TOKEN" not in seen


# -- a broken configuration ------------------------------------------------------------------------


def test_a_supervisor_with_a_broken_config_claims_nothing_and_says_so(
    quick: Store, home: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    task_id = shell_task(quick, f"touch {marker}", tmp_path)
    quick.mutate(lambda snap: (Change("break", "config_changed",
                                      files={"config.toml": b"paused = false\ncoder = 'shell'\n"
                                             b"max_concurrent = 'x'\n"}), None))  # fmt: skip
    done = fleet_process("supervisor", "run", "--until-idle", home=home, timeout=60)
    assert done.code == 1 and "config.toml is not valid" in done.err
    assert "supervisor: config.toml is not valid" in done.err  # the log line
    assert not marker.exists() and quick.get(task_id).status == "open"
    tasks = fleet_process("tasks", "--json", home=home)
    assert "config.toml is not valid" in tasks.out


def _handle(store: Store, task_id: str) -> object:
    run = store.get(task_id).run
    return run.handle if run else None
