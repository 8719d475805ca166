"""Stopping processes off the loop: an attempt's process tree, what ended attempts left behind
(a server, a watcher: found by their token), and the live files of recorded attempts.

Each stop can wait out a grace period, so the loop hands it to a thread of its own; with
`background=False` (the tests' rig, `fleet kill` without a supervisor) it runs at once.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from supervisor.run.process import Handle, Processes

CLEAR_EVERY = 0.5  # seconds between two looks for what ended attempts left behind, when busy


class Stops:
    def __init__(self, processes: Processes, background: bool = True) -> None:
        self.processes = processes
        self.background = background
        self._threads: dict[str, threading.Thread] = {}
        self._ended: list[Handle] = []  # attempts over whose leftovers are still to be stopped
        self._clear_at = 0.0  # when to look for what ended attempts left behind next

    def stop(self, handle: Handle | None, grace: float) -> None:
        """Stop an attempt's process tree (once: a stop under way is not started again)."""
        if handle is None or handle.token in self._threads:
            return
        self._run(handle.token, lambda: self.processes.terminate(handle, grace))

    def ended(self, handle: Handle | None) -> None:
        """The attempt's process is gone: what it left behind is stopped at the next clear."""
        if handle is not None:
            self._threads.pop(handle.token, None)
            self._ended.append(handle)

    def clear(self, now: float, grace: float) -> None:
        """Stop what the ended attempts left behind. One look at the process table serves every
        attempt that ended since the last look, and while stops run in the background there is
        at most one look every CLEAR_EVERY seconds."""
        if not self._ended or (self.background and now < self._clear_at):
            return
        self._clear_at = now + CLEAR_EVERY
        self.clear_now(grace)

    def clear_now(self, grace: float) -> None:
        handles, self._ended = self._ended, []
        if handles:
            self._run(
                f"ended {handles[0].token}", lambda: self.processes.terminate_all(handles, grace)
            )

    def remove(self, paths: list[Path]) -> None:
        """Remove the live directories of attempts whose record is committed."""
        if not paths:
            return

        def remove() -> None:
            for path in paths:
                shutil.rmtree(path, ignore_errors=True)

        self._run(f"live {paths[0]}", remove)

    def wait(self, grace: float, timeout: float) -> None:
        """Finish the stops under way, and the look for what ended attempts left behind."""
        self.clear_now(grace)
        for thread in list(self._threads.values()):
            thread.join(timeout)

    def _run(self, key: str, work: Callable[[], None]) -> None:
        if not self.background:
            work()
            return
        self._threads = {k: t for k, t in self._threads.items() if t.is_alive()}
        thread = threading.Thread(target=work, daemon=True)
        self._threads[key] = thread
        thread.start()
