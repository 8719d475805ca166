"""Waiting on a condition with a deadline, instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from supervisor.run.process import Handle, Processes

T = TypeVar("T")


def wait_for(probe: Callable[[], T], timeout: float = 10.0, what: str = "the condition") -> T:
    """Call `probe` until it returns a truthy value, and return that value; fail at the deadline."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def wait_exit(procs: Processes, handle: Handle, timeout: float = 10.0) -> int:
    """Poll `handle` until its process has exited, and return its exit code."""
    codes: list[int] = []

    def exited() -> bool:
        code = procs.poll(handle)
        if code is not None:
            codes.append(code)
        return code is not None

    wait_for(exited, timeout, f"process {handle.pid} to exit")
    return codes[0]
