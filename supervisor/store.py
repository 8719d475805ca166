"""The store: a git repository in `$FLEET_HOME` whose `refs/heads/main` is the single truth.

One file per task (`tasks/<id>.json`), attempt records under `runs/<id>/<n>/`, the configuration
in `config.toml`. Every mutation is one commit, made without a shared index or work tree and
published with a compare-and-swap on the ref; when another writer got there first, the mutation
is re-read and re-applied on the new state.
"""

from __future__ import annotations

import json
import os
import random
import socket
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from supervisor.cache import Cache
from supervisor.errors import Conflict, GitError, NotFound, StoreError
from supervisor.git import Git
from supervisor.model import Task, check_id

T = TypeVar("T")
CAS_TRIES = 200
STALE_LOCK_SECONDS = 30.0


def default_home() -> Path:
    return Path(os.environ.get("FLEET_HOME") or Path.home() / ".fleet").expanduser()


def task_path(task_id: str) -> str:
    return f"tasks/{task_id}.json"


def dump_task(task: Task) -> bytes:
    return (json.dumps(task.to_dict(), indent=2, ensure_ascii=False) + "\n").encode()


def user_actor() -> str:
    import pwd

    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = os.environ.get("USER") or str(os.getuid())
    return f"{user}@{socket.gethostname()}"


@dataclass
class Change:
    """One mutation: the files it writes (bytes) or deletes (None), and what to say about it."""

    summary: str  # first line of the commit, for people
    event: str  # Fleet-Event trailer: created, updated, claimed, closed, ...
    tasks: list[str] = field(default_factory=list)  # Fleet-Task trailers
    files: dict[str, bytes | None] = field(default_factory=dict)
    details: str = ""  # commit body between the summary and the trailers

    def put(self, task: Task) -> None:
        self.files[task_path(task.id)] = dump_task(task)
        if task.id not in self.tasks:
            self.tasks.append(task.id)

    def message(self, actor: str) -> str:
        lines = [self.summary]
        if self.details:
            lines += ["", self.details.rstrip()]
        lines.append("")
        lines += [f"Fleet-Task: {t}" for t in self.tasks[:50]]
        if len(self.tasks) > 50:
            lines.append(f"Fleet-Tasks-More: {len(self.tasks) - 50}")
        lines += [f"Fleet-Event: {self.event}", f"Fleet-Actor: {actor}"]
        return "\n".join(lines)


class Snapshot:
    """The store as of one commit, for reading inside a mutation."""

    def __init__(self, store: Store, commit: str | None) -> None:
        self.store = store
        self.commit = commit

    def get(self, task_id: str) -> Task | None:
        return self.store.cache.get(task_id)

    def need(self, task_id: str) -> Task:
        check_id(task_id)
        task = self.get(task_id)
        if task is None:
            raise NotFound(
                f"task {task_id} does not exist",
                hint="run `fleet bd list --all` to see the tasks in this store",
            )
        return task

    def read(self, path: str) -> bytes | None:
        return self.store.git.read(f"{self.commit}:{path}") if self.commit else None


class Store:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.git_dir = home / ".git"
        self.git = Git(self.git_dir)
        self._cache: Cache | None = None

    @classmethod
    def open(cls, home: Path | None = None) -> Store:
        """Open the home, creating it (and its repository) on first use."""
        store = cls((home or default_home()).expanduser().absolute())
        store.init()
        return store

    @property
    def cache(self) -> Cache:
        if self._cache is None:
            self._cache = Cache(self.home / "cache" / "tasks.sqlite", self.git)
        return self._cache

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    # -- the home -------------------------------------------------------------------------------

    def init(self) -> bool:
        """Create the home if needed (idempotent); refuse an unsafe one. True if created."""
        created = False
        if not (self.git_dir / "HEAD").exists():
            self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._check_home()
            tmp = self.home / f".git.init-{os.getpid()}"
            Git(tmp).run("init", "--bare", "--quiet", "--initial-branch=main", str(tmp))
            for key, value in (("core.fsync", "all"), ("gc.auto", "0"), ("core.bare", "true")):
                Git(tmp).run("config", key, value)
            try:
                os.rename(tmp, self.git_dir)
                created = True
            except OSError:  # another process created it first
                _rmtree(tmp)
        self._check_home()
        for sub in ("tmp", "live", "cache", "logs"):
            (self.home / sub).mkdir(mode=0o700, exist_ok=True)
        return created

    def _check_home(self) -> None:
        info = self.home.stat()
        if info.st_uid != os.getuid():
            raise StoreError(
                f"the fleet home {self.home} belongs to another user (uid {info.st_uid})",
                hint=f"use a home of your own (`fleet --home DIR`) or `chown -R $USER {self.home}`",
            )
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise StoreError(
                f"the fleet home {self.home} is writable by group or others",
                hint=f"run `chmod 700 {self.home}`",
            )

    # -- reading --------------------------------------------------------------------------------

    def head(self) -> str | None:
        return self.git.ref()

    def snapshot(self) -> Snapshot:
        return Snapshot(self, self.cache.sync())

    def get(self, task_id: str) -> Task:
        return self.snapshot().need(task_id)

    def read(self, path: str) -> bytes | None:
        return self.snapshot().read(path)

    # -- writing --------------------------------------------------------------------------------

    def mutate(
        self,
        build: Callable[[Snapshot], tuple[Change | None, T]],
        actor: str | None = None,
    ) -> T:
        """Apply `build` to the newest state and publish it as one commit.

        `build` reads the snapshot and returns (change, value); it may run several times when
        other writers move the ref, so it must not have side effects. A change of None (nothing to
        write) commits nothing. Raises what `build` raises, before anything is written.
        """
        who = actor or user_actor()
        for attempt in range(CAS_TRIES):
            snap = self.snapshot()
            change, value = build(snap)
            if change is None or not change.files:
                return value
            commit = self._publish(snap.commit, change, who)
            if commit is not None:
                self.cache.advance(snap.commit, commit, change.files)
                return value
            self._after_lost_race(attempt)
        raise Conflict(
            f"gave up after {CAS_TRIES} tries: other writers kept moving the store",
            hint="retry the command; if it keeps failing, run `fleet supervisor status`",
        )

    def _publish(self, parent: str | None, change: Change, actor: str) -> str | None:
        """Write the change's objects and move the ref; the new commit, or None if it moved."""
        blobs: dict[str, str | None] = {}
        for path, data in change.files.items():
            blobs[path] = None if data is None else self.git.write_object("blob", data)
        tree = self.git.write_tree(parent, blobs, self.home / "tmp")
        ident = f"{actor.split('@')[0]} <{actor}>"
        commit = self.git.commit(tree, parent, change.message(actor), ident, int(time.time()))
        return commit if self.git.cas_ref(commit, parent) else None

    def _after_lost_race(self, attempt: int) -> None:
        lock = self.git_dir / "refs" / "heads" / "main.lock"
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            age = 0.0
        if age > STALE_LOCK_SECONDS:  # git holds a ref lock for microseconds: its owner is dead
            lock.unlink(missing_ok=True)
        time.sleep(random.uniform(0, min(0.05, 0.001 * (attempt + 1))))

    def sweep(self) -> list[str]:
        """Remove leftovers of writers that died: private indexes, stale git locks."""
        removed = []
        now = time.time()
        for path in (self.home / "tmp").glob("index-*"):
            if now - path.stat().st_mtime > STALE_LOCK_SECONDS:
                path.unlink(missing_ok=True)
                removed.append(str(path))
        for lock in self.git_dir.rglob("*.lock"):
            if now - lock.stat().st_mtime > STALE_LOCK_SECONDS:
                lock.unlink(missing_ok=True)
                removed.append(str(lock))
        for obj in self.git_dir.glob("objects/*/tmp_obj_*"):
            if now - obj.stat().st_mtime > STALE_LOCK_SECONDS:
                obj.unlink(missing_ok=True)
                removed.append(str(obj))
        return removed


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


__all__ = ["Change", "GitError", "Snapshot", "Store", "default_home", "dump_task", "task_path"]
