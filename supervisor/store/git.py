"""Every git call fleet makes goes through here: hooks and fsmonitor off, `GIT_*` scrubbed.

Objects fleet writes itself (blobs, trees, commits) are plain zlib-compressed loose objects,
written to a temporary file and renamed into place, exactly as git writes them. A ref moves only by
a compare-and-swap under git's own lock file (`cas_ref`), as `git update-ref NEW OLD` moves it.
"""

from __future__ import annotations

import fcntl
import os
import zlib
from _thread import RLock, allocate_lock, get_ident
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from supervisor.errors import GitError
from supervisor.store.packs import Packs
from supervisor.store.trees import Trees

if TYPE_CHECKING:
    import subprocess
    from hashlib import sha1
else:  # the builtin SHA-1: importing hashlib loads OpenSSL, a start-up cost `bd create` feels
    try:
        from _sha1 import sha1
    except ImportError:  # pragma: no cover - interpreters without it
        from hashlib import sha1

SAFE_CONFIG = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false")
T = TypeVar("T")
PENDING_LIMIT = 64  # objects waiting for one flush at most (each holds a file open)
SYNC = True  # fdatasync loose objects (scripts/bench turns it off in-process to measure the cost)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment minus every `GIT_*` variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["GIT_TERMINAL_PROMPT"] = "0"
    if extra:
        env.update(extra)
    return env


def _exclusive(directory: Path, prefix: str) -> tuple[int, str]:
    """A new file only this call created (tempfile's job, without importing it: start-up cost)."""
    while True:
        name = str(directory / f"{prefix}{os.getpid()}-{os.urandom(6).hex()}")
        try:
            return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), name
        except FileExistsError:
            continue


_POOL: Any = None  # the threads that sync files at once, made on first use and kept
FEW = 8  # files synced on threads started for them (a command's commit); more: on the pool


def _all_at_once(fn: Callable[[T], object], items: list[T]) -> None:
    """fn(item) for every item at once, on a pool of threads kept for the process (starting a
    thread per file cost more than the syncs); the first error is raised."""
    global _POOL
    if len(items) == 1:
        fn(items[0])
        return
    if len(items) <= FEW:  # a command's commit: threads of its own (no pool worth importing)
        _on_threads(fn, items)
        return
    if _POOL is None:  # here: only a write that syncs several files needs it
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="fleet-sync")
    futures = [_POOL.submit(fn, item) for item in items[1:]]
    error: BaseException | None = None
    try:
        fn(items[0])
    except BaseException as exc:  # re-raised below, once the others are done
        error = exc
    for future in futures:
        raised = future.exception()
        error = error or raised
    if error is not None:
        raise error


def _on_threads(fn: Callable[[T], object], items: list[T]) -> None:
    """fn(item) for every item, each on a thread of its own (one on this one); the first error."""
    import threading

    errors: list[BaseException] = []

    def one(item: T) -> None:
        try:
            fn(item)
        except BaseException as exc:  # re-raised below, in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(item,)) for item in items[1:]]
    for thread in threads:
        thread.start()
    one(items[0])
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run_in(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run git in a user's directory (a task's repository), hooks off, `GIT_*` scrubbed."""
    import subprocess  # here, not above: `bd create` starts no process and skips the import

    argv = ["git", *SAFE_CONFIG, "-C", str(cwd), *args]
    return subprocess.run(argv, capture_output=True, env=clean_env(), check=False)


class Git:
    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir
        self.objects = git_dir / "objects"
        self.trees = Trees(self._loose, self._packed, self.write_object)
        self.packs = Packs(self.objects / "pack")
        self._folders: set[str] = set()  # object folders known to exist
        self._wanted: tuple[str, list[str]] | None = None  # (commit, dirs) a tree build reads
        self._fetched: dict[str, bytes] = {}  # packed objects read for that build
        self.unsynced: set[Path] = set()  # directories with new entries, fsynced by `cas_ref`
        self._pending: dict[str, tuple[int, str, Path]] = {}  # sha -> (fd, temp file, path)
        self._deferring: set[int] = set()  # the threads inside `batch()`
        self._lock = allocate_lock()  # guards `_pending` and `unsynced`
        self._syncing = RLock()  # held while syncing, so no ref moves before a sync under way

    def run(
        self,
        *args: str,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        import subprocess

        argv = ["git", *SAFE_CONFIG, f"--git-dir={self.git_dir}", *args]
        proc = subprocess.run(
            argv, input=input, capture_output=True, env=clean_env(env), check=False
        )
        if check and proc.returncode != 0:
            raise GitError(argv, proc.returncode, proc.stderr.decode(errors="replace"))
        return proc

    def out(
        self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None
    ) -> str:
        return self.run(*args, input=input, env=env).stdout.decode()

    # -- refs -------------------------------------------------------------------------------

    def ref(self, name: str = "refs/heads/main") -> str | None:
        """The sha a ref points at, read from the files git keeps (no process)."""
        try:
            return (self.git_dir / name).read_text().strip() or None
        except FileNotFoundError:
            pass
        try:
            packed = (self.git_dir / "packed-refs").read_text()
        except FileNotFoundError:
            return None
        for line in packed.splitlines():
            if line.endswith(" " + name):
                return line.split(" ", 1)[0]
        return None

    def cas_ref(self, new: str, old: str | None, name: str = "refs/heads/main") -> bool:
        """Move `name` to `new` only if it still points at `old` (None: must not exist).

        git's protocol, without a git process: take `NAME.lock` (exclusive create), compare,
        write, fsync, rename over the ref. The lock appears already flocked (it is linked into
        place from a flocked temporary file), so a sweeper can tell a live writer's lock from
        a dead one's: see `Store.clear_dead_ref_locks`.
        """
        with self._syncing:  # what the ref will point at is on the disk before it moves
            self.flush()
            self.sync_dirs()
        path = self.git_dir / name
        lock = path.with_name(path.name + ".lock")
        if not path.parent.is_dir():  # a new namespace, or one `git pack-refs` emptied
            path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _exclusive(self.git_dir, "tmp_ref_")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, f"{new}\n".encode())
            os.fsync(fd)
            try:
                os.link(tmp, lock)
            except FileExistsError:
                return False
            try:
                if self.ref(name) != old:
                    os.unlink(lock)
                    return False
                os.rename(lock, path)
            except BaseException:
                os.unlink(lock)
                raise
            if SYNC:
                _fsync_dir(path.parent)  # the move itself is on the disk when we say so
            return True
        finally:
            os.unlink(tmp)
            os.close(fd)  # releases the flock

    # -- objects ----------------------------------------------------------------------------

    def write_object(self, kind: str, data: bytes) -> str:
        """Store a loose object (atomic: temp file + rename) and return its sha.

        Its bytes reach the disk (fdatasync) before the rename makes it visible, as git's
        `core.fsync=loose-object` does, and its directory is fsynced before the next ref move
        (`sync_dirs`), so a ref never points at an object a power cut lost. Inside `batch()`
        the sync and the rename wait for `flush`, to sync a commit's objects all at once.
        """
        header = f"{kind} {len(data)}\0".encode()
        sha = sha1(header + data).hexdigest()
        folder = self.objects / sha[:2]
        path = folder / sha[2:]
        if sha in self._pending or path.exists():
            return sha
        if sha[:2] not in self._folders:
            folder.mkdir(exist_ok=True)
            self._folders.add(sha[:2])
        try:
            fd, tmp = _exclusive(folder, "tmp_obj_")
        except FileNotFoundError:  # packing (`git prune-packed`) removed the emptied folder
            folder.mkdir(exist_ok=True)
            fd, tmp = _exclusive(folder, "tmp_obj_")
        try:
            os.write(fd, zlib.compress(header + data, 1))
            if get_ident() in self._deferring:
                with self._lock:
                    self._pending[sha] = (fd, tmp, path)
                    full = len(self._pending) >= PENDING_LIMIT
                if full:
                    self.flush()
                return sha
            try:
                if SYNC:
                    os.fdatasync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if SYNC:
            with self._lock:
                self.unsynced.add(folder)
        return sha

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Inside, new objects wait as temporary files until `flush` (or `cas_ref`) syncs them
        all at once; leaving with an error drops those not flushed."""
        me = get_ident()
        if me in self._deferring:
            yield
            return
        self._deferring.add(me)
        try:
            yield
        finally:
            self._deferring.discard(me)
            self.flush()  # objects of a change that failed are harmless, and may be shared

    def flush(self) -> None:
        """Make the waiting objects durable, then visible: every `fdatasync` at once (on
        threads: the disk takes them together, 2-5 ms for a commit's seven where one after the
        other took 3-26 ms here), then the renames, then each directory's fsync at once."""
        with self._syncing:  # a flush under way finishes before another thread's ref moves
            with self._lock:
                items = list(self._pending.values())
                self._pending.clear()
            if not items:
                return
            try:
                if SYNC:
                    _all_at_once(os.fdatasync, [fd for fd, _, _ in items])
            except BaseException:
                for fd, tmp, _ in items:
                    os.close(fd)
                    Path(tmp).unlink(missing_ok=True)
                raise
            for fd, tmp, path in items:
                os.close(fd)
                os.rename(tmp, path)  # the temp file keeps its folder from being removed
            if SYNC:
                with self._lock:
                    self.unsynced.update(path.parent for _, _, path in items)

    def written(self, folder: Path) -> None:
        """Someone else (git) put new entries in `folder`: fsync it before the next ref move."""
        with self._lock:
            self.unsynced.add(folder)

    def sync_dirs(self) -> None:
        """fsync the directories new objects were renamed into (each once, however many
        objects it got, all at once), so that their names survive a power cut as their bytes
        do: on a file system without a journal nothing else orders them before the ref's."""
        with self._syncing:
            with self._lock:
                folders = list(self.unsynced)
                self.unsynced.clear()
            if folders:
                _all_at_once(_fsync_dir, folders)

    def write_tree(self, base: str | None, changes: Mapping[str, str | None]) -> str:
        """The tree of commit `base` with `changes` applied (path -> blob sha, None: delete).

        Trees are read from loose objects; when one is packed (after maintenance), every tree
        the build needs is read at once, through one `cat-file --batch`.
        """
        dirs = {p.rsplit("/", 1)[0] for p in changes if "/" in p}
        wanted = {d.rsplit("/", k)[0] for d in dirs for k in range(d.count("/") + 1)}
        self._wanted = (base, sorted(wanted)) if base else None
        try:
            base_tree = self.trees.commit_tree(base) if base else None
            return self.trees.apply(base_tree, changes)
        finally:
            self._wanted = None
            self._fetched.clear()

    def _packed(self, sha: str) -> bytes | None:
        """An object that is not loose: from the packs in-process, else from git (the batch
        read for the current build, else alone)."""
        packed = self.packs.read(sha)
        if packed is not None:
            return packed[1]
        if sha not in self._fetched and self._wanted is not None:
            base, dirs = self._wanted
            self._wanted = None  # one batch per build
            names = [base, f"{base}^{{tree}}", *(f"{base}:{d}" for d in dirs)]
            for _, found, data in self._batch(names):
                if found and data is not None:
                    self._fetched[found] = data
        if sha in self._fetched:
            return self._fetched[sha]
        return self.read(sha)

    def _loose(self, sha: str) -> bytes | None:
        try:
            return (self.objects / sha[:2] / sha[2:]).read_bytes()
        except FileNotFoundError:
            return None

    def commit(self, tree: str, parent: str | None, message: str, who: str, when: int) -> str:
        lines = [f"tree {tree}"]
        if parent:
            lines.append(f"parent {parent}")
        lines.append(f"author {who} {when} +0000")
        lines.append(f"committer {who} {when} +0000")
        body = "\n".join(lines) + "\n\n" + message.rstrip("\n") + "\n"
        return self.write_object("commit", body.encode())

    def cat_batch(self, names: list[str]) -> Iterator[tuple[str, bytes | None]]:
        """Contents of many objects (`sha` or `rev:path`) through one `cat-file --batch`."""
        for name, _, data in self._batch(names):
            yield name, data

    def _batch(self, names: list[str]) -> Iterator[tuple[str, str, bytes | None]]:
        """(name, sha, contents) of many objects through one `cat-file --batch`."""
        if not names:
            return
        data = self.run("cat-file", "--batch", input=("\n".join(names) + "\n").encode()).stdout
        pos = 0
        for name in names:
            end = data.index(b"\n", pos)
            header = data[pos:end].decode()
            pos = end + 1
            if header.endswith(" missing") or header.endswith(" ambiguous"):
                yield name, "", None
                continue
            size = int(header.rsplit(" ", 1)[1])
            yield name, header.split(" ", 1)[0], data[pos : pos + size]
            pos += size + 1

    def read(self, rev_path: str) -> bytes | None:
        for _, data in self.cat_batch([rev_path]):
            return data
        return None
