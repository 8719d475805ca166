"""The process seam: how fleet starts, watches, adopts and stops agent processes.

Every agent runs under a tiny `/bin/sh` wrapper in its own session. The wrapper stays the
agent's parent and writes the agent's exit status to `rc_path` atomically, so a supervisor that was
killed and restarted can still learn how the agent ended. Each attempt carries a unique
`FLEET_RUN_TOKEN` in its environment: that is how processes which left the wrapper's tree (setsid,
double fork) are found and killed. See docs/processes.md for the rules.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psutil

from supervisor.errors import FleetError
from supervisor.run import containment

TOKEN_ENV = "FLEET_RUN_TOKEN"

# $1 is the rc file; the rest is the agent's argv. The wrapper catches HUP, INT and TERM so that it
# outlives a stop request long enough to record how the agent ended (a caught signal is reset to its
# default in the exec'd agent, an ignored one would not be). Its own stderr goes to /dev/null, so
# the shell's "Killed" notices stay out of the agent's stderr; the subshell gives the agent the real
# stderr (fd 3) and execs it. The rc file is written with a builtin, no process: it is read only
# once the wrapper is gone, so it is complete by then.
WRAPPER = """trap : HUP INT TERM
rc_file=$1; cgroup=$2; shift 2
[ -z "$cgroup" ] || echo $$ 2>/dev/null > "$cgroup/cgroup.procs"
exec 3>&2 2>/dev/null
("$@" 2>&3 3>&-)
rc=$?
printf %s "$rc" > "$rc_file"
exit "$rc"
"""
WRAPPER_NAME = "fleet-run"  # the wrapper's $0, as `ps` shows it

KILL_WAIT = 5.0  # seconds to wait for SIGKILLed processes to disappear
SWEEP_ROUNDS = 5  # scans per sweep: a process may fork between a scan and its kill
CTIME_TOLERANCE = 0.01  # psutil's create_time resolution on Linux
_SHELL_SIGNAL_BASE = 128  # a shell reports "killed by signal N" as 128 + N


class SpawnError(FleetError):
    """The agent could not be started (missing program or working directory); nothing ran."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, "install the program or fix the task's command and cwd")
        self.reason = reason


@dataclass(frozen=True)
class Handle:
    """Identifies one running attempt, across supervisor restarts. Stored in the task record."""

    pid: int  # the wrapper process
    create_time: float  # psutil create_time of pid: identity against pid reuse
    token: str  # unique per attempt; FLEET_RUN_TOKEN in the agent's environment
    rc_path: str  # where the wrapper writes the agent's exit status

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "create_time": self.create_time,
            "token": self.token,
            "rc_path": self.rc_path,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Handle:
        return cls(
            pid=int(data["pid"]),
            create_time=float(data["create_time"]),
            token=str(data["token"]),
            rc_path=str(data["rc_path"]),
        )


class Processes(Protocol):
    """The seam the supervisor runs agents through; tests pass a fake."""

    def spawn(
        self,
        argv: list[str],
        cwd: Path,
        env: dict[str, str],
        stdout: Path,
        stderr: Path,
        rc_path: Path,
    ) -> Handle: ...

    def poll(self, handle: Handle) -> int | None:
        """None while running; else the exit code (-N: killed by signal N)."""
        ...

    def terminate(self, handle: Handle, grace: float) -> None:
        """TERM the whole tree, KILL what survives `grace` seconds; return when all are gone."""
        ...

    def terminate_all(self, handles: Sequence[Handle], grace: float) -> None:
        """`terminate` for many attempts at once (one look at the process table for them all)."""
        ...

    def sweep(self, token: str) -> int:
        """SIGKILL every process still carrying FLEET_RUN_TOKEN=token; return how many."""
        ...

    def usage(self, handle: Handle) -> tuple[float, int]:
        """(cpu seconds, rss bytes) of the live tree."""
        ...


def exit_code(status: int) -> int:
    """Map a shell exit status to fleet's convention: 128+N (killed by signal N) becomes -N."""
    if _SHELL_SIGNAL_BASE < status < _SHELL_SIGNAL_BASE + signal.NSIG:
        return _SHELL_SIGNAL_BASE - status
    return status


def read_rc(rc_path: str | Path) -> int | None:
    """The agent's exit code recorded by the wrapper, or None if it wrote none."""
    try:
        return exit_code(int(Path(rc_path).read_text(encoding="ascii").strip()))
    except (OSError, ValueError):
        return None


def _write_rc(rc_path: Path, status: int) -> None:
    tmp = rc_path.with_name(rc_path.name + ".tmp")
    with contextlib.suppress(OSError):  # its directory is gone: nobody can read it anyway
        tmp.write_text(str(status), encoding="ascii")
        os.replace(tmp, rc_path)


def new_token() -> str:
    return secrets.token_hex(16)


class OsProcesses:
    """The real implementation, on psutil and os.

    Thread-safe for the supervisor's use: its loop spawns and polls while other threads terminate.
    """

    def __init__(self) -> None:
        self._children: dict[str, subprocess.Popen[bytes]] = {}  # by token: ours to reap
        self._lock = threading.Lock()  # settling a child: pop it, read or write its rc file

    def spawn(
        self,
        argv: list[str],
        cwd: Path,
        env: dict[str, str],
        stdout: Path,
        stderr: Path,
        rc_path: Path,
    ) -> Handle:
        _check_startable(argv, cwd, env, rc_path)
        rc_path.unlink(missing_ok=True)  # a stale one
        # The caller may choose the token (FLEET_RUN_TOKEN in env) and record it first: then an
        # agent started just before the caller died can still be found.
        token = env.get(TOKEN_ENV) or new_token()
        # PWD: the shell would replace an inherited PWD naming another directory anyway.
        cgroup = containment.create(token)  # "" where the machine gives none
        with open(stdout, "ab") as out, open(stderr, "ab") as err:
            child = subprocess.Popen(
                ["/bin/sh", "-c", WRAPPER, WRAPPER_NAME, str(rc_path), cgroup, *argv],
                cwd=cwd,
                env={**env, "PWD": str(cwd.absolute()), TOKEN_ENV: token},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                close_fds=True,
                start_new_session=True,
            )
        # The wrapper is our unreaped child, so its /proc entry exists even if it already exited.
        created = psutil.Process(child.pid).create_time()
        self._children[token] = child
        return Handle(child.pid, created, token, str(rc_path))

    def poll(self, handle: Handle) -> int | None:
        child = self._children.get(handle.token)
        if child is not None and child.pid == handle.pid:
            return None if child.poll() is None else self._settle(handle, child)
        if identify(handle) is not None:
            return None
        containment.remove(handle.token)  # if empty; what is left in it is stopped later
        recorded = read_rc(handle.rc_path)
        return -signal.SIGKILL if recorded is None else recorded

    def terminate(self, handle: Handle, grace: float) -> None:
        self.terminate_all([handle], grace)

    def terminate_all(self, handles: Sequence[Handle], grace: float) -> None:
        carriers = carriers_of({h.token for h in handles})
        trees = {h: _tree(h, carriers.get(h.token, [])) for h in handles}
        trees = {h: tree for h, tree in trees.items() if tree}  # an empty one cannot fork: done
        for handle, tree in trees.items():
            _signal_all(tree, _our_group(handle, tree), signal.SIGTERM)
        survivors = set(wait_gone([p for tree in trees.values() for p in tree], grace))
        if survivors:
            for handle, tree in trees.items():
                left = [p for p in tree if p in survivors]
                if left:
                    _signal_all(left, _our_group(handle, left), signal.SIGKILL)
            wait_gone(survivors, KILL_WAIT)
        if trees:
            self._sweep_all({h.token for h in trees})
        for handle in handles:  # what left the tree, the session and the environment
            containment.kill(handle.token)
        for handle in handles:
            self._reap(handle)

    def sweep(self, token: str) -> int:
        return self._sweep_all({token}) + containment.kill(token)

    def _sweep_all(self, tokens: Collection[str]) -> int:
        """SIGKILL what still carries one of `tokens`, scanning until none is left; how many."""
        killed: set[int] = set()
        for _ in range(SWEEP_ROUNDS):
            found = [p for procs in carriers_of(tokens).values() for p in procs]
            if not found:
                break
            killed.update(p.pid for p in found if _send(p, signal.SIGKILL))
            wait_gone(found, KILL_WAIT)
        return len(killed)

    def usage(self, handle: Handle) -> tuple[float, int]:
        wrapper = identify(handle)
        if wrapper is None:
            return 0.0, 0
        cpu, rss = 0.0, 0
        for proc in [wrapper, *_descendants(wrapper)]:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    cpu += times.user + times.system + times.children_user + times.children_system
                    rss += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return cpu, rss

    def _reap(self, handle: Handle) -> None:
        child = self._children.get(handle.token)
        if child is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):  # still dying: a later poll reaps it
            child.wait(timeout=KILL_WAIT)
            self._settle(handle, child)

    def _settle(self, handle: Handle, child: subprocess.Popen[bytes]) -> int:
        """The exit code of our reaped wrapper. If it was killed before it could write rc_path,
        its own status is written there, so that every later poll reads the same code."""
        containment.remove(handle.token)  # if empty; what is left in it is stopped later
        with self._lock:
            self._children.pop(handle.token, None)
            recorded = read_rc(handle.rc_path)
            if recorded is not None:
                return recorded
            status = child.returncode
            shell_status = _SHELL_SIGNAL_BASE - status if status < 0 else status
            _write_rc(Path(handle.rc_path), shell_status)
            return exit_code(shell_status)


def _check_startable(argv: list[str], cwd: Path, env: Mapping[str, str], rc_path: Path) -> None:
    if not argv or not argv[0]:
        raise SpawnError("the command is empty")
    if not cwd.is_dir():
        raise SpawnError(f"the working directory {cwd} does not exist")
    if find_program(argv[0], cwd, env.get("PATH", os.defpath)) is None:
        where = cwd if "/" in argv[0] else "the PATH given to the agent"
        raise SpawnError(f"the program {argv[0]!r} was not found in {where}")
    if not rc_path.parent.is_dir():
        raise FileNotFoundError(f"the directory for the exit-code file {rc_path} does not exist")


def find_program(name: str, cwd: Path, search_path: str) -> Path | None:
    """Where the wrapper's shell will find `name`: relative names and PATH entries from `cwd`."""
    if "/" in name:
        candidates = [cwd / name]
    else:
        candidates = [cwd / (entry or ".") / name for entry in search_path.split(os.pathsep)]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def identify(handle: Handle) -> psutil.Process | None:
    """The live wrapper of `handle`, or None if it is gone, a zombie, or its pid was reused.

    The pid is ours only if it carries the attempt's token in its environment: a pid and a start
    time can be copied from a record, the token of a live process cannot be planted in it. (The
    create time is not needed: it shifts when the wall clock is stepped.)
    """
    try:
        proc = psutil.Process(handle.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc if proc.environ().get(TOKEN_ENV) == handle.token else None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _tree(handle: Handle, carriers: Iterable[psutil.Process]) -> list[psutil.Process]:
    """The wrapper, its descendants, and `carriers`: the processes carrying the token (setsid
    escapees among them)."""
    found: dict[int, psutil.Process] = {}
    wrapper = identify(handle)
    if wrapper is not None:
        found[wrapper.pid] = wrapper
        found.update((p.pid, p) for p in _descendants(wrapper))
    for proc in carriers:
        found.setdefault(proc.pid, proc)
    for pid in containment.members(handle.token):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            found.setdefault(pid, psutil.Process(pid))
    return list(found.values())


def token_carriers(token: str) -> list[psutil.Process]:
    """Live processes, other than this one, whose environment holds the token."""
    return carriers_of({token}).get(token, [])


def carriers_of(tokens: Collection[str]) -> dict[str, list[psutil.Process]]:
    """Live processes, other than this one, by the token of `tokens` their environment holds.

    One scan of the process table, whatever the number of tokens. Only environments we may read
    are searched: our uid's (every uid's when run as root, where a carrier that switched uid is
    still part of the attempt). The environment is read first: it is the cheapest test that rules
    a process out.
    """
    me = os.getpid()
    found: dict[str, list[psutil.Process]] = {}
    for proc in psutil.process_iter():
        try:
            token = proc.environ().get(TOKEN_ENV) if proc.pid != me else None
            if token is not None and token in tokens and proc.status() != psutil.STATUS_ZOMBIE:
                found.setdefault(token, []).append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def wait_gone(procs: Iterable[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to `timeout` seconds for `procs` to exit; return the survivors. Zombies are gone."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    alive = [p for p in procs if _alive(p)]
    while alive and (remaining := deadline - time.monotonic()) > 0:
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.1)
        alive = [p for p in alive if _alive(p)]
    return alive


def _descendants(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def _our_group(handle: Handle, procs: Iterable[psutil.Process]) -> int | None:
    """The wrapper's process group, if one of `procs` (all ours) is still in it."""
    for proc in procs:
        try:
            if os.getpgid(proc.pid) == handle.pid:
                return handle.pid
        except OSError:
            continue
    return None


def _signal_all(procs: Iterable[psutil.Process], group: int | None, sig: int) -> None:
    if group is not None:
        with contextlib.suppress(OSError):  # the group may be empty already
            os.killpg(group, sig)
    for proc in procs:
        _send(proc, sig)


def _send(proc: psutil.Process, sig: int) -> bool:
    """Signal `proc` unless it is gone or its pid was reused; True if the signal was sent."""
    try:
        proc.send_signal(sig)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return True


RUN_POLL = 0.05  # how often `run_to_end` looks whether the process ended


def run_to_end(
    processes: Processes,
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    logs: Path,
    grace: float = 5.0,
) -> tuple[int, bool]:
    """Run one agent through the seam to its end, or stop it after `timeout` seconds: its exit
    code and whether it timed out. Its stdout and stderr go to `logs`; what it leaves running
    (found by its run token) is stopped. SpawnError when it cannot start."""
    handle = processes.spawn(argv, cwd, env, logs / "stdout.log", logs / "stderr.log", logs / "rc")
    deadline = time.monotonic() + timeout
    timed_out = False
    code = processes.poll(handle)
    while code is None:
        if time.monotonic() > deadline:
            timed_out = True
            processes.terminate(handle, grace)
        else:
            time.sleep(RUN_POLL)
        code = processes.poll(handle)
    processes.sweep(handle.token)  # whatever it left behind
    return code, timed_out
