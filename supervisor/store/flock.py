"""Exclusive locks on files, with `fcntl.flock`: the one lock of fleet (the store's writers and
sweepers, and the supervisor's one-per-home lock). A flock goes with its process: a process that
dies, however it dies, holds none.

`fcntl.flock` rather than filelock: importing filelock costs half of `bd create`'s budget.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Flock:
    """An exclusive flock on `path`, held from `acquire` to `release` (or the process's end)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, patience: float = 0.0) -> bool:
        """Take the lock, waiting up to `patience` seconds; whether it was got."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + patience
        delay = 0.0005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 0.01)
            else:
                self._fd = fd
                return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None


@contextmanager
def locked(path: Path, patience: float) -> Iterator[bool]:
    """An exclusive flock on `path`, waited for up to `patience` s; yields whether it was got."""
    lock = Flock(path)
    try:
        yield lock.acquire(patience)
    finally:
        lock.release()


def free(fd: int) -> bool:
    """Whether no process holds a flock on the file `fd` is open on."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True
