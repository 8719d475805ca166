"""Running the supervisor: one per home per host (a file lock), in the foreground or as a daemon.

Signals only set flags; the loop acts on them. SIGTERM: stop claiming, let the agents finish (up to
`stop_grace_seconds`), then stop what still runs. SIGINT or a second SIGTERM: stop the agents now.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from supervisor.errors import FleetError
from supervisor.run import stopping
from supervisor.run.attempt import write_json
from supervisor.run.process import OsProcesses, Processes
from supervisor.run.supervisor import Supervisor, TickReport
from supervisor.store.flock import Flock
from supervisor.store.maintenance import Packer
from supervisor.store.store import Store

IDLE_POLL = 0.02  # how often an idle loop looks at the ref (a stat and a read)
BUSY_TICK = 0.2  # how often a loop with agents running reads their output
STOP_GRACE = 600.0  # how long a graceful stop lets agents finish
STOP_SLACK = 10.0  # beyond grace_seconds, how long a process tree's stop may take
PACK_WAIT = 10.0  # at exit, how long to wait for a background packing (it goes on alone)


class AlreadyRunning(FleetError):
    pass


@dataclass
class Info:
    pid: int
    started_at: float
    home: str
    mode: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "started_at": self.started_at,
            "home": self.home,
            "mode": self.mode,
        }


def lock_path(store: Store) -> Path:
    return store.home / "supervisor.lock"


def info_path(store: Store) -> Path:
    return store.home / "supervisor.json"


def log_path(store: Store) -> Path:
    return store.home / "logs" / "supervisor.log"


def acquire(store: Store, mode: str) -> Flock:
    """Take the home's supervisor lock, or say which process holds it.

    It waits a second: `running()` probes the lock for an instant, and a supervisor starting at
    that instant must not take the probe for a running supervisor (which holds it for its life).
    """
    lock = Flock(lock_path(store))
    if not lock.acquire(patience=1.0):
        holder = read_info(store)
        pid = f"pid {holder.pid}" if holder else "another process"
        raise AlreadyRunning(
            f"a supervisor already runs for {store.home} ({pid})",
            hint="see it with `fleet supervisor status`; stop it with `fleet supervisor stop`",
        )
    with contextlib.suppress(OSError):  # made by an older fleet with the umask's mode
        os.chmod(lock_path(store), 0o600)
    info = Info(os.getpid(), time.time(), str(store.home), mode)
    write_json(info_path(store), info.to_dict())
    return lock


def read_info(store: Store) -> Info | None:
    try:
        data = json.loads(info_path(store).read_text())
        return Info(
            int(data["pid"]), float(data["started_at"]), str(data["home"]), str(data["mode"])
        )
    except (OSError, ValueError, KeyError):
        return None


def running(store: Store) -> Info | None:
    """The live supervisor of this home, if any (the lock is held)."""
    lock = Flock(lock_path(store))
    if not lock.acquire():
        return read_info(store)
    lock.release()
    return None


class Loop:
    """Drives `Supervisor.tick` with the real clock until told to stop."""

    def __init__(
        self,
        store: Store,
        progress: Callable[[TickReport], None] | None = None,
        processes: Processes | None = None,
    ) -> None:
        self.store = store
        self.supervisor = Supervisor(store, processes or OsProcesses())
        self.progress = progress
        self.stop_requested = 0  # 1: graceful, 2: now
        self.stop_deadline = 0.0
        self.child_exited = False
        self.said_config = ""  # the configuration problem last written to the log
        self.packer = Packer(store)  # packs the store between ticks, in the background

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_int)
        signal.signal(signal.SIGCHLD, self._on_child)

    def _on_child(self, signum: int, frame: FrameType | None) -> None:
        self.child_exited = True

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = min(2, self.stop_requested + 1)

    def _on_int(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = 2

    def run(self, until_idle: bool = False, once: bool = False) -> TickReport:
        self.store.sweep()
        try:
            return self._run(until_idle, once)
        finally:  # stops under way must finish: a half-stopped tree would outlive us
            self.supervisor.wait_stops(self.supervisor.config.grace_seconds + STOP_SLACK)
            self.packer.wait(PACK_WAIT)

    def _run(self, until_idle: bool, once: bool) -> TickReport:
        report = TickReport()
        while True:
            self._apply_stop()
            report = self.supervisor.tick(time.time())
            if self.supervisor.config_error != self.said_config:
                self.said_config = self.supervisor.config_error
                _say(self.said_config or "config.toml is valid again: claiming tasks")
            self.packer.step(time.time())
            if self.progress:
                self.progress(report)
            if once:
                return report
            if self.supervisor.stopping and not self.supervisor.running:
                return report
            idle = not report.running and not report.merging
            if until_idle and idle and self._nothing_to_claim(report):
                return report
            self._wait(report)

    def _nothing_to_claim(self, report: TickReport) -> bool:
        sup = self.supervisor  # paused, or a broken configuration: none would start
        return not report.waiting or sup.config.paused or bool(sup.config_error)

    def _apply_stop(self) -> None:
        sup = self.supervisor
        if self.stop_requested and not sup.stopping:
            sup.stopping = "graceful"
            self.stop_deadline = time.time() + STOP_GRACE
            _say(f"stop requested: claiming nothing new; {len(sup.running)} agent(s) may finish")
            stopping.mark(self.store, os.getpid(), "graceful")
        if sup.stopping == "graceful" and (
            self.stop_requested >= 2 or time.time() > self.stop_deadline
        ):
            _say(f"stopping {len(sup.running)} agent(s) now")
            stopping.mark(self.store, os.getpid(), "now")
            sup.stop_all()

    def _wait(self, report: TickReport) -> None:
        """Sleep until the ref moves, an agent may have news, or a backoff ends."""
        if report.ended:
            return  # what waited for the ended attempts may be ready now
        now = time.time()
        limit = BUSY_TICK if report.running or report.merging else 1.0
        wake = self.supervisor.next_wake(now) if report.waiting and not report.running else None
        if wake is not None:
            limit = min(limit, max(0.0, wake - now) + 0.01)
        head = self.store.head()
        end = now + limit
        asked = self.stop_requested  # wake for a new request, not for one already acted on
        while time.time() < end and self.stop_requested == asked and not self.child_exited:
            time.sleep(IDLE_POLL)
            if self.store.head() != head:
                break
        self.child_exited = False


def _say(message: str) -> None:
    """A line for the supervisor's log (the terminal, in the foreground)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
    print(f"{stamp} supervisor: {message}", file=sys.stderr, flush=True)


def spawn_daemon(store: Store) -> int:
    """Start `fleet supervisor run` in the background, detached; wait until it holds the lock."""
    log = log_path(store)
    with open(log, "ab") as out:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "supervisor",
                "--home",
                str(store.home),
                "supervisor",
                "run",
                "--daemon",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.time() + 15
    while time.time() < deadline:
        info = running(store)
        if info is not None and info.pid == child.pid:
            return child.pid
        if child.poll() is not None:
            raise FleetError(
                f"the supervisor exited at start (code {child.returncode})",
                hint=f"see {log}",
            )
        time.sleep(0.02)
    raise FleetError("the supervisor did not start within 15 s", hint=f"see {log}")


def signal_stop(
    store: Store,
    now: bool,
    timeout: float,
    waiting: Callable[[Info, float], None] | None = None,
) -> Info | None:
    """Ask the running supervisor to stop and wait for it to go; None if none was running.
    `waiting(info, seconds waited)` is called about once a second while it has not gone."""
    info = running(store)
    if info is None:
        return None
    stopping.mark(store, info.pid, "now" if now else "graceful")
    os.kill(info.pid, signal.SIGINT if now else signal.SIGTERM)
    start = time.time()
    deadline, told = start + timeout, start
    while time.time() < deadline:
        if running(store) is None:
            return info
        if waiting is not None and time.time() - told >= 1.0:
            told = time.time()
            waiting(info, told - start)
        time.sleep(0.05)
    raise FleetError(
        f"the supervisor (pid {info.pid}) is still stopping after {timeout:g} s",
        hint="its agents are finishing; `fleet supervisor stop --now` stops them",
    )
