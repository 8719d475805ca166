"""In-memory stand-ins for fleet's seams, for the supervisor loop's unit tests."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from supervisor.run.process import TOKEN_ENV, Handle, SpawnError, new_token, read_rc

FIRST_FAKE_PID = 10_000_000  # above Linux's PID_MAX_LIMIT (2**22): never a real process


@dataclass
class FakeRun:
    """One spawned fake agent and what happened to it."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    stdout: Path
    stderr: Path
    handle: Handle
    exit_code: int | None = None  # None while running
    leftovers: int = 0  # stray processes it left behind, until a sweep or terminate
    usage: tuple[float, int] = (0.0, 0)


@dataclass
class FakeProcesses:
    """`Processes` in memory: a spawned agent runs until a test calls `finish` (or stops it).

    `missing` holds program names whose spawn raises SpawnError, as a missing binary would.
    """

    missing: set[str] = field(default_factory=set)
    runs: list[FakeRun] = field(default_factory=list)
    terminated: list[tuple[Handle, float]] = field(default_factory=list)
    swept: list[str] = field(default_factory=list)
    cleared: list[list[Handle]] = field(default_factory=list)  # terminate_all's batches
    lock: threading.Lock = field(default_factory=threading.Lock)

    def spawn(
        self,
        argv: list[str],
        cwd: Path,
        env: dict[str, str],
        stdout: Path,
        stderr: Path,
        rc_path: Path,
    ) -> Handle:
        if not argv or not argv[0]:
            raise SpawnError("the command is empty")
        if not cwd.is_dir():
            raise SpawnError(f"the working directory {cwd} does not exist")
        if argv[0] in self.missing:
            raise SpawnError(f"the program {argv[0]!r} was not found")
        rc_path.unlink(missing_ok=True)
        for path in (stdout, stderr):
            path.touch()
        with self.lock:  # the supervisor starts several agents at once, in threads
            pid = FIRST_FAKE_PID + len(self.runs)
            handle = Handle(pid, float(pid), env.get(TOKEN_ENV) or new_token(), str(rc_path))
            self.runs.append(FakeRun(list(argv), cwd, dict(env), stdout, stderr, handle))
        return handle

    def run(self, handle: Handle) -> FakeRun:
        for run in self.runs:
            if run.handle == handle:
                return run
        raise KeyError(f"no fake run for {handle}")

    def running(self) -> list[FakeRun]:
        return [run for run in self.runs if run.exit_code is None]

    def finish(
        self,
        handle: Handle,
        exit_code: int,
        lines: Iterable[str] = (),
        stderr_lines: Iterable[str] = (),
        leftovers: int = 0,
    ) -> None:
        """Make the agent print `lines`, exit with `exit_code` and leave `leftovers` behind."""
        run = self.run(handle)
        if run.exit_code is not None:
            raise AssertionError(f"fake agent {handle.pid} already exited with {run.exit_code}")
        _append(run.stdout, lines)
        _append(run.stderr, stderr_lines)
        self._exit(run, exit_code)
        run.leftovers = leftovers

    def poll(self, handle: Handle) -> int | None:
        run = next((r for r in self.runs if r.handle == handle), None)
        if run is None:  # not spawned here: gone, and the rc file tells how it ended
            recorded = read_rc(handle.rc_path)
            return -signal.SIGKILL if recorded is None else recorded
        return run.exit_code

    def terminate(self, handle: Handle, grace: float) -> None:
        """Record the stop; a running fake agent obeys SIGTERM."""
        self.terminated.append((handle, grace))
        run = self.run(handle)
        if run.exit_code is None:
            self._exit(run, -signal.SIGTERM)
        run.leftovers = 0

    def terminate_all(self, handles: Sequence[Handle], grace: float) -> None:
        """`terminate` each; the batch is recorded in `cleared`."""
        self.cleared.append(list(handles))
        for handle in handles:
            self.terminate(handle, grace)

    def sweep(self, token: str) -> int:
        """Kill what still carries `token`: a running agent counts one, plus its leftovers."""
        self.swept.append(token)
        killed = 0
        for run in self.runs:
            if run.handle.token != token:
                continue
            if run.exit_code is None:
                self._exit(run, -signal.SIGKILL)
                killed += 1
            killed += run.leftovers
            run.leftovers = 0
        return killed

    def usage(self, handle: Handle) -> tuple[float, int]:
        run = self.run(handle)
        return run.usage if run.exit_code is None else (0.0, 0)

    def _exit(self, run: FakeRun, exit_code: int) -> None:
        run.exit_code = exit_code
        status = 128 - exit_code if exit_code < 0 else exit_code  # as the real wrapper writes it
        Path(run.handle.rc_path).write_text(str(status), encoding="ascii")


def _append(path: Path, lines: Iterable[str]) -> None:
    with path.open("a", encoding="utf-8") as out:
        out.writelines(f"{line}\n" for line in lines)
