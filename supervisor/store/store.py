"""The store: a git repository in `$FLEET_HOME` whose `refs/heads/main` is the single truth.

One file per task, attempt records, the configuration in `config.toml` and the format number in
`format` (where each lives: `supervisor/store/paths.py`). Every mutation is one commit, made
without a shared index or work tree and published with a compare-and-swap on the ref; when
another writer got there first, the mutation is re-read and re-applied on the new state.
"""

from __future__ import annotations

import json
import os
import stat
import time
from _thread import get_ident
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from supervisor import redact
from supervisor.errors import BadInput, Conflict, GitError, NotFound, StoreError
from supervisor.model import Record, Task, check_id
from supervisor.store import audit, signing
from supervisor.store.cache import Cache
from supervisor.store.flock import free as _free
from supervisor.store.flock import locked as _locked
from supervisor.store.git import Git
from supervisor.store.home import check_unused, is_store
from supervisor.store.paths import FORMAT, FORMAT_PATH, format_file, parse_format, task_path

T = TypeVar("T")
CAS_TRIES = 200
STALE_LOCK_SECONDS = 30.0  # leftovers of a writer this old are garbage
REF_LOCK_PATIENCE = 2.0  # git holds the ref lock for microseconds; a lock this old is suspect
REF_LOCKS = ("refs/heads/main.lock", "HEAD.lock")  # `git update-ref refs/heads/main` takes both
BULK_FILES = 1000  # a change this big is written as one pack by `git fast-import` (bulk.py)
WRITER_TURN_SECONDS = 10.0  # wait this long for the writers' turn, then rely on the CAS alone
# thread id -> the homes whose writers' turn it holds (not `threading.local`: one import less)
_turns: dict[int, set[Path]] = {}


def default_home() -> Path:
    return Path(os.environ.get("FLEET_HOME") or Path.home() / ".fleet").expanduser()


def dump_task(task: Task) -> bytes:
    return (json.dumps(task.to_dict(), indent=2, ensure_ascii=False) + "\n").encode()


def user_actor() -> str:
    import pwd

    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = os.environ.get("USER") or str(os.getuid())
    return f"{user}@{os.uname().nodename}"


class Change(Record):
    """One mutation: the files it writes (bytes) or deletes (None), and what to say about it."""

    def __init__(
        self,
        summary: str,
        event: str,
        tasks: list[str] | None = None,
        files: dict[str, bytes | None] | None = None,
        details: str = "",
    ) -> None:
        self.summary = summary  # first line of the commit, for people
        self.event = event  # Fleet-Event trailer: created, updated, claimed, closed, ...
        self.tasks: list[str] = [] if tasks is None else tasks  # Fleet-Task trailers
        self.files: dict[str, bytes | None] = {} if files is None else files
        self.details = details  # commit body between the summary and the trailers
        self._listed: set[str] = set(self.tasks)  # the ids in `tasks`, for `put`

    def put(self, task: Task) -> None:
        """Write `task`, which must read back (a file that does not would break every read)."""
        data = dump_task(task)
        try:
            Task.from_dict(json.loads(data))
        except ValueError as exc:
            raise BadInput(
                f"task {task.id} would not be valid: {exc}",
                hint=f"see what it holds with `fleet bd show {task.id}`",
            ) from None
        self.files[task_path(task.id)] = data
        if len(self._listed) != len(self.tasks):  # `tasks` was changed directly
            self._listed = set(self.tasks)
        if task.id not in self._listed:  # a set: an import puts 100,000 tasks
            self.tasks.append(task.id)
            self._listed.add(task.id)

    def __eq__(self, other: object) -> bool:
        fields = ("summary", "event", "tasks", "files", "details")
        return type(other) is type(self) and all(
            getattr(self, f) == getattr(other, f) for f in fields
        )

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
        self._config_blob: str | None = None  # the config whose secrets `redact` knows
        self._signing_key: Path | None = None  # `signing_key` of that config

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
            self._current(self._cache.sync())
        return self._cache

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    # -- the home -------------------------------------------------------------------------------

    def init(self) -> bool:
        """Create the home if needed (idempotent); refuse an unsafe one. True if created."""
        created = False
        if not (self.git_dir / "HEAD").exists() or not is_store(self.git_dir):
            check_unused(self.home)
            try:
                self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the fleet home {self.home}: {exc.strerror}",
                    hint="point `fleet --home DIR` (or FLEET_HOME) at a directory you can create",
                ) from None
            self._check_home()
            self.home.chmod(0o700)  # a directory made beforehand becomes private too
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
        if not created:
            self._sweep_ref_temps()
        return created

    def _sweep_ref_temps(self) -> None:
        """Remove `tmp_ref_*` files that writers killed mid-publish left (every open does this:
        one directory listing, so no leftover waits for a supervisor start)."""
        now = time.time()
        try:
            entries = [e for e in os.scandir(self.git_dir) if e.name.startswith("tmp_ref_")]
        except OSError:
            return
        for entry in entries:
            try:
                if now - entry.stat().st_mtime > STALE_LOCK_SECONDS:
                    os.unlink(entry.path)
            except OSError:
                continue

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
        if info.st_mode & 0o077:  # readable by others (0755): ours alone, so made private
            self.home.chmod(0o700)

    # -- reading --------------------------------------------------------------------------------

    def head(self) -> str | None:
        return self.git.ref()

    def snapshot(self) -> Snapshot:
        return Snapshot(self, self._current(self.cache.sync()))

    def _current(self, commit: str | None) -> str | None:
        """`commit` (the cache's), after migrating a store of an earlier format (migrate.py);
        a store newer than this fleet is refused. Every read goes through here: the cache
        checks on opening, and every snapshot."""
        assert self._cache is not None
        fmt = self._cache.format_text()
        if fmt is None or fmt.strip() == str(FORMAT):
            return commit
        self._check_format(fmt.encode() if fmt else None)
        from supervisor.store.migrate import migrate

        migrate(self)
        return self._cache.sync()

    def format(self) -> int:
        """The format of the newest commit (an empty store: this fleet's)."""
        head = self.head()
        return parse_format(self.git.read(f"{head}:{FORMAT_PATH}")) if head else FORMAT

    def _check_format(self, data: bytes | None) -> int:
        """The format `data` names; a store newer than this fleet, or unreadable, is refused."""
        try:
            fmt = parse_format(data)
        except ValueError as exc:
            raise StoreError(
                f"cannot read the store {self.home}: {exc}",
                hint="restore it from its backup ref (`git --git-dir HOME/.git show-ref`)",
            ) from None
        if fmt > FORMAT:
            raise StoreError(
                f"the store {self.home} has format {fmt}, newer than this fleet's {FORMAT}",
                hint="upgrade fleet (`pip install -U fleet`); an older fleet cannot read it",
            )
        return fmt

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
            with writers_turn(self.home):
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
        if parent is None and FORMAT_PATH not in change.files:
            change.files[FORMAT_PATH] = format_file()  # the first commit says its format
        self.know_secrets(parent)
        files = change.files  # what every commit stores, small or bulk, is exactly this
        for path, data in files.items():
            if data is not None:  # secrets redacted; what is committed is what the cache learns
                files[path] = redact.data(data)
        ident = f"{actor.split('@')[0]} <{actor}>"
        message = redact.text(change.message(actor))
        when = int(time.time())
        if len(files) >= BULK_FILES:  # (not signed: fast-import writes the commit itself)
            from supervisor.store.bulk import publish_bulk

            commit = publish_bulk(self, parent, files, message, ident)
            if commit is not None:
                audit.record(self.home, commit, parent, self.git.trees.commit_tree(commit), when)
            return commit
        with self.git.batch():  # the commit's objects are synced together, before the ref moves
            blobs: dict[str, str | None] = {}
            for path, data in files.items():
                blobs[path] = None if data is None else self.git.write_object("blob", data)
            tree = self.git.write_tree(parent, blobs)
            if self._signing_key is not None:  # `signing_key`: an SSH signature in the commit
                payload = signing.body(tree, parent, message, ident, when)
                commit = self.git.write_object("commit", signing.sign(payload, self._signing_key))
            else:
                commit = self.git.commit(tree, parent, message, ident, when)
            if not self.git.cas_ref(commit, parent):
                return None
        audit.record(self.home, commit, parent, tree, when)  # `fleet log --verify` reads it
        return commit

    def blob(self, data: bytes) -> str:
        """Store file contents as a blob, secrets redacted (see `supervisor.redact`)."""
        self.know_secrets(self.head())
        return self.git.write_object("blob", redact.data(data))

    def know_secrets(self, commit: str | None) -> None:
        """Teach `redact` the secret values the configuration of `commit` names (once per
        configuration: a supervisor's commit costs a lookup in a tree it has parsed)."""
        sha = ""
        if commit is not None:
            root = self.git.trees.entries(self.git.trees.commit_tree(commit))
            sha = root.get("config.toml", ("", ""))[1]
        if sha == self._config_blob:
            return
        text = self._blob_text(sha) if sha else ""
        redact.configured(text)
        self._signing_key = signing.key_path(_setting(text, "signing_key")) if text else None
        self._config_blob = sha

    def _blob_text(self, sha: str) -> str:
        """A blob's text, read in-process when it is loose (no git process for `bd create`)."""
        import zlib

        try:
            raw = zlib.decompress((self.git.objects / sha[:2] / sha[2:]).read_bytes())
            data = raw.split(b"\0", 1)[1]
        except FileNotFoundError:
            data = self.git.read(sha) or b""
        return data.decode(errors="replace")

    def _after_lost_race(self, attempt: int) -> None:
        self.clear_dead_ref_locks()
        jitter = int.from_bytes(os.urandom(2), "big") / 65536  # not `random`: start-up cost
        time.sleep(jitter * min(0.05, 0.001 * (attempt + 1)))

    def clear_dead_ref_locks(self, patience: float = REF_LOCK_PATIENCE) -> list[str]:
        """Remove ref locks whose writer is dead; return the paths removed.

        A writer holds its ref lock for microseconds, while it moves the ref. fleet's writers
        hold a flock on the lock file as long as it exists, so a lock that can be flocked was
        left by a writer that died, or was taken by a git. A lock older than `patience` that
        no one flocks, and for which no git process on this store started before it was made,
        is dead. Sweepers take turns (a flock), so none of them removes a lock that a live
        writer took after another sweeper removed the dead one.
        """
        locks = [self.git_dir / name for name in REF_LOCKS]
        return [str(lock) for lock in locks if self._clear_dead_lock(lock, patience)]

    def _clear_dead_lock(self, lock: Path, patience: float) -> bool:
        try:
            seen = lock.stat()
        except FileNotFoundError:
            return False
        if time.time() - seen.st_mtime < patience:
            return False
        with _locked(self.home / "tmp" / "ref-lock.sweep", WRITER_TURN_SECONDS) as got:
            try:
                fd = os.open(lock, os.O_RDONLY)
            except FileNotFoundError:
                return False
            try:
                now = os.fstat(fd)
                same = (now.st_ino, now.st_mtime_ns) == (seen.st_ino, seen.st_mtime_ns)
                if not got or not same or not _free(fd) or self._git_started_before(seen.st_mtime):
                    return False
                lock.unlink()
            finally:
                os.close(fd)
        return True

    def _git_started_before(self, when: float) -> bool:
        """Whether a git process working on this store started before `when`."""
        import psutil

        home = str(self.home)
        for proc in psutil.process_iter(["name", "cmdline", "cwd", "create_time"]):
            info = proc.info
            if info["name"] != "git" or (info["create_time"] or 0.0) > when + 0.05:
                continue
            if any(home in arg for arg in info["cmdline"] or ()):
                return True
            if (info["cwd"] or "").startswith(home):
                return True
        return False

    def sweep(self) -> list[str]:
        """Remove leftovers of writers that died: private indexes, dead git locks, temp objects."""
        removed = self.clear_dead_ref_locks()
        now = time.time()
        ref_locks = {self.git_dir / name for name in REF_LOCKS}
        leftovers = [
            *(self.home / "tmp").glob("index-*"),
            *(p for p in self.git_dir.rglob("*.lock") if p not in ref_locks),
            *self.git_dir.glob("objects/*/tmp_obj_*"),
            *self.git_dir.glob("tmp_ref_*"),
            *self.git_dir.glob("objects/pack/tmp_*"),  # a fast-import or repack that died
            *self.git_dir.glob("refs/fleet/tmp/*"),  # a bulk commit that was never published
        ]
        for path in leftovers:
            try:
                stale = now - path.stat().st_mtime > STALE_LOCK_SECONDS
            except FileNotFoundError:
                continue
            if stale:
                path.unlink(missing_ok=True)
                removed.append(str(path))
        return removed


@contextmanager
def writers_turn(home: Path) -> Iterator[None]:
    """Writers of one home take turns from snapshot to publish, so that under contention they
    wait instead of spending CPU on commits that would lose the compare-and-swap.

    The CAS alone keeps the store correct: a writer that waits longer than WRITER_TURN_SECONDS
    goes ahead without its turn, writers on other hosts never take it, and a `kill -9` releases
    it. A write made while building another one in the same thread does not wait.
    """
    held = _turns.setdefault(get_ident(), set())
    if home in held:
        yield
        return
    with _locked(home / "tmp" / "writers.lock", WRITER_TURN_SECONDS) as got:
        if got:
            held.add(home)
        try:
            yield
        finally:
            held.discard(home)


def _setting(config_text: str, key: str) -> str:
    """One top-level string setting of a config.toml text ("" when unset or unreadable)."""
    import tomllib

    try:
        value = tomllib.loads(config_text).get(key, "")
    except tomllib.TOMLDecodeError:
        return ""
    return value if isinstance(value, str) else ""


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


__all__ = ["Change", "GitError", "Snapshot", "Store", "default_home", "dump_task", "task_path"]
