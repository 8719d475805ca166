"""Keeping the store small, off the hot path.

Every write adds loose objects (a blob, a few small trees, a commit), and git never packs them by
itself here (`gc.auto=0`: no user's command ever stops to pack). Instead:

- the supervisor, between ticks, looks every `CHECK_SECONDS` whether the store holds more than
  `LOOSE_LIMIT` loose objects (estimated as git does, from one of the 256 object folders) or
  more than `PACK_LIMIT` packs, and if so starts `git repack -d --geometric=2` in its own
  session, in the background: loose objects go into a pack, small packs are rolled into bigger
  ones, and what was packed is removed;
- `fleet bd create` does the same check (one `listdir`) after its write, and when packing is due
  and no supervisor is at it, starts the same packing detached, without waiting for it, so a
  store used without a supervisor stays bounded too;
- `fleet store gc` does a full `git gc` by hand (everything in one pack, unreachable objects
  older than an hour pruned, refs packed).

One packer at a time per home: a flock on `tmp/maintenance.lock`, inherited by the git process,
so the lock lives exactly as long as the packing. A `kill -9` of either leaves a store git
accepts (git writes a pack completely before it removes anything it replaces).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supervisor.errors import Conflict
from supervisor.store.git import SAFE_CONFIG, clean_env
from supervisor.store.store import Store

if TYPE_CHECKING:
    import subprocess

LOOSE_LIMIT = 2000  # loose objects that make packing due
PACK_LIMIT = 30  # packs that make packing due
CHECK_SECONDS = 30.0  # how often the supervisor looks
PRUNE = "1.hour.ago"  # unreachable objects younger than this are kept (a writer may need them)
SAMPLE = "17"  # the object folder the loose count is estimated from, as git's gc.auto does


def lock_path(store: Store) -> Path:
    return store.home / "tmp" / "maintenance.lock"


def loose_estimate(store: Store) -> int:
    """About how many loose objects the store holds (one folder counted, times 256)."""
    try:
        names = os.listdir(store.git_dir / "objects" / SAMPLE)
    except FileNotFoundError:
        return 0
    return 256 * sum(1 for n in names if len(n) == 38)


def pack_count(store: Store) -> int:
    try:
        return sum(1 for n in os.listdir(store.git_dir / "objects" / "pack") if n.endswith(".pack"))
    except FileNotFoundError:
        return 0


def due(store: Store) -> bool:
    return loose_estimate(store) > LOOSE_LIMIT or pack_count(store) > PACK_LIMIT


def usage(store: Store) -> dict[str, Any]:
    """What the repository holds on disk: loose objects, packs, bytes."""
    loose = loose_bytes = packs = pack_bytes = 0
    objects = store.git_dir / "objects"
    for folder in objects.iterdir() if objects.exists() else ():
        if len(folder.name) == 2:
            for item in folder.iterdir():
                loose += 1
                loose_bytes += _size(item)
    for item in (objects / "pack").glob("*") if (objects / "pack").exists() else ():
        packs += item.suffix == ".pack"
        pack_bytes += _size(item)
    total = sum(_size(p) for p in store.git_dir.rglob("*") if p.is_file())
    return {
        "loose_objects": loose,
        "loose_bytes": loose_bytes,
        "packs": packs,
        "pack_bytes": pack_bytes,
        "repository_bytes": total,
    }


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _take_lock(store: Store) -> int | None:
    """The maintenance lock's fd, flocked; None when a packer holds it."""
    fd = os.open(lock_path(store), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class Packer:
    """The supervisor's background packing: `step(now)` between ticks, never blocking."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.proc: subprocess.Popen[bytes] | None = None
        self.next_check = 0.0
        self.runs = 0  # packings started, for the supervisor's log and tests

    def step(self, now: float) -> str:
        """Look after the packing: 'running', 'started', 'done', 'failed' or '' (nothing)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                return "running"
            code, self.proc = self.proc.returncode, None
            return "done" if code == 0 else "failed"
        if now < self.next_check:
            return ""
        self.next_check = now + CHECK_SECONDS
        if not due(self.store):
            return ""
        return "started" if self.start() else ""

    def start(self) -> bool:
        """Start packing in the background; False when another packer is at it."""
        import subprocess

        fd = _take_lock(self.store)
        if fd is None:
            return False
        try:
            argv = [*_git(self.store), "repack", "-d", "-q", "--geometric=2"]
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=clean_env(),
                start_new_session=True,
                pass_fds=(fd,),  # the git process holds the lock until it ends
            )
        finally:
            os.close(fd)
        self.runs += 1
        return True

    def wait(self, timeout: float) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return  # it finishes on its own, in its own session, holding its lock
            self.proc = None


def start_if_due(store: Store) -> bool:
    """After a user's write: start packing, detached, if it is due; never waits for it."""
    return due(store) and Packer(store).start()


def gc(store: Store, patience: float = 60.0) -> dict[str, Any]:
    """Pack everything now (`git gc`), waiting up to `patience` s for a background packer."""
    before = usage(store)
    deadline = time.monotonic() + patience
    fd = _take_lock(store)
    while fd is None:
        if time.monotonic() > deadline:
            raise Conflict(
                "the store is being packed in the background",
                hint="wait for it to finish, then run `fleet store gc` again",
            )
        time.sleep(0.2)
        fd = _take_lock(store)
    started = time.monotonic()
    _clear_dead_gc_locks(store)
    try:
        store.git.run("-c", "gc.autoDetach=false", "gc", "--quiet", f"--prune={PRUNE}")
    finally:
        os.close(fd)
    return {"before": before, "after": usage(store), "seconds": time.monotonic() - started}


def _clear_dead_gc_locks(store: Store) -> None:
    """The locks a packing killed mid-way left (`packed-refs.lock`, `gc.pid`): with the packing
    lock held, and no git process working on the store started before them, nobody owns them."""
    for name in ("packed-refs.lock", "gc.pid"):
        lock = store.git_dir / name
        try:
            made = lock.stat().st_mtime
        except FileNotFoundError:
            continue
        if not store._git_started_before(made + 1.0):
            lock.unlink(missing_ok=True)


def _git(store: Store) -> list[str]:
    return ["git", *SAFE_CONFIG, f"--git-dir={store.git_dir}"]
