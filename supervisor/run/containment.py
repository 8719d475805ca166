"""Each attempt in a cgroup of its own, where the machine lets fleet make one.

A process that leaves its attempt's process tree and session and clears its environment
(`setsid env -i ...`) escapes both the process-group signal and the token sweep. It cannot leave
its cgroup: where cgroup v2 is mounted and the supervisor may create cgroups below its own (root,
or a delegated subtree), each attempt's wrapper moves itself into `fleet-<token>` before the
agent starts, and stopping the attempt writes `cgroup.kill`. Elsewhere the sweep is all there is;
`fleet supervisor status` says which is in use.
"""

from __future__ import annotations

import contextlib
import os
import time
from functools import cache
from pathlib import Path

KILL_WAIT = 5.0
PREFIX = "fleet-"


@cache
def parent() -> Path | None:
    """The cgroup v2 directory attempts' cgroups are made in, or None if none can be."""
    if os.environ.get("FLEET_NO_CGROUP"):
        return None
    mount = _cgroup2_mount()
    own = _own_cgroup()
    if mount is None or own is None:
        return None
    base = mount / own.lstrip("/")
    probe = base / f"{PREFIX}probe-{os.getpid()}"
    try:
        probe.mkdir()
    except OSError:
        return None
    try:
        usable = (probe / "cgroup.kill").exists() and os.access(probe / "cgroup.procs", os.W_OK)
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()
    return base if usable else None


def describe() -> str:
    """What stops an attempt's processes on this machine, for `fleet supervisor status`."""
    base = parent()
    if base is not None:
        return f"cgroup v2 per attempt (in {base}), then process group and token sweep"
    return "process group and token sweep (no cgroup v2 that fleet may create here)"


def _cgroup2_mount() -> Path | None:
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1])
    return None


def _own_cgroup() -> str | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            return line[3:]
    return None


def path_of(token: str) -> Path | None:
    base = parent()
    return None if base is None or not token.isalnum() else base / f"{PREFIX}{token}"


def create(token: str) -> str:
    """Make the attempt's cgroup; its path for the wrapper, or "" where there is none."""
    path = path_of(token)
    if path is None:
        return ""
    try:
        path.mkdir(exist_ok=True)
    except OSError:
        return ""
    return str(path)


def members(token: str) -> list[int]:
    """The pids in the attempt's cgroup (none where there is no cgroup)."""
    path = path_of(token)
    if path is None:
        return []
    try:
        text = (path / "cgroup.procs").read_text()
    except OSError:
        return []
    return [int(pid) for pid in text.split()]


def kill(token: str) -> int:
    """SIGKILL every process in the attempt's cgroup, wait for them, remove it; how many."""
    path = path_of(token)
    if path is None or not path.is_dir():
        return 0
    found = len(members(token))
    if found:
        with contextlib.suppress(OSError):
            (path / "cgroup.kill").write_text("1")
        deadline = time.monotonic() + KILL_WAIT
        while members(token) and time.monotonic() < deadline:
            time.sleep(0.01)
    with contextlib.suppress(OSError):
        path.rmdir()
    return found


def remove(token: str) -> None:
    """Remove the attempt's cgroup if nothing is left in it (the kernel refuses otherwise)."""
    path = path_of(token)
    if path is not None:
        with contextlib.suppress(OSError):
            path.rmdir()
