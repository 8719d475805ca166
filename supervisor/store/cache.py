"""The derived read cache: SQLite under `$FLEET_HOME/cache/`, never the truth.

It holds every task file of one commit of `refs/heads/main` (the commit is recorded with it), and
is brought up to date from `git diff-tree` when the ref moves. Deleting it loses nothing: the next
read rebuilds it from the tree.

It is written without fsync (`synchronous=OFF`, a few ms off every write): a process killed at any
instant leaves it whole, but an operating-system crash may not. So it records the boot it was
written in, and a cache from an earlier boot is rebuilt. Where the system does not say which boot
this is, it is written with fsync instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from supervisor.errors import GitError
from supervisor.graph import Node
from supervisor.limits import decode_config
from supervisor.model import BLOCKING_TYPES, NOT_WORK_TYPES, PARENT_TYPE, Task, parse_time
from supervisor.store.git import Git
from supervisor.store.paths import CONFIG_PATH, FORMAT_PATH, TASKS, is_task_file, task_id_of

SCHEMA_VERSION = "9"
WATCHED = (TASKS, CONFIG_PATH, FORMAT_PATH)  # the paths of the tree the cache reflects
TABLES = ("tasks", "bodies", "deps", "touched")
BODY = "JOIN bodies b ON b.id = t.id"  # the JSON lives apart: the tasks table stays small
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks(
    id TEXT PRIMARY KEY, status TEXT NOT NULL, priority INTEGER NOT NULL,
    created_ts REAL NOT NULL, issue_type TEXT NOT NULL, defer_until TEXT NOT NULL,
    not_before TEXT NOT NULL, hidden INTEGER NOT NULL, coder TEXT NOT NULL,
    defer_ts REAL NOT NULL, not_before_ts REAL NOT NULL, updated_ts REAL NOT NULL,
    labels TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bodies(id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deps(issue_id TEXT NOT NULL, depends_on_id TEXT NOT NULL,
    type TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS deps_issue ON deps(issue_id);
CREATE INDEX IF NOT EXISTS deps_target ON deps(depends_on_id);
CREATE INDEX IF NOT EXISTS tasks_order ON tasks(priority, created_ts, id, status);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks(status, priority, created_ts);
CREATE TABLE IF NOT EXISTS touched(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE);
CREATE VIEW IF NOT EXISTS tasks_json AS SELECT t.*, b.body FROM tasks t JOIN bodies b USING (id);
"""
PREFIX_LINE = re.compile(r'^id_prefix = "([a-z][a-z0-9_]{0,15})"$', re.M)
_RESOLVED = "('closed', 'pinned')"
_BLOCKING = "('" + "', '".join(sorted(BLOCKING_TYPES)) + "')"
_NOT_WORK = "('" + "', '".join(sorted(NOT_WORK_TYPES)) + "')"
_BLOCKED_NOW = f"""
    SELECT 1 FROM deps d JOIN tasks b ON b.id = d.depends_on_id
    WHERE d.issue_id = {{who}}.id AND d.type IN {_BLOCKING} AND b.status NOT IN {_RESOLVED}"""
# Blocked parents: those blocked directly, and their unresolved children, transitively. Only
# parents are walked (a few), and each candidate checks its own blockers in order of dispatch,
# so the query stops at its LIMIT instead of computing every blocked task of the queue.
READY_SQL = f"""
WITH RECURSIVE blocked(id) AS (
    SELECT p.id FROM tasks p
    WHERE p.status NOT IN {_RESOLVED}
      AND p.id IN (SELECT depends_on_id FROM deps WHERE type = '{PARENT_TYPE}')
      AND EXISTS ({_BLOCKED_NOW.format(who="p")})
    UNION
    SELECT d.issue_id FROM deps d JOIN blocked p ON d.depends_on_id = p.id
    JOIN tasks s ON s.id = d.issue_id
    WHERE d.type = '{PARENT_TYPE}' AND s.status NOT IN {_RESOLVED}
)
SELECT t.id, t.not_before_ts FROM tasks t
WHERE t.status = 'open' AND t.hidden = 0 AND t.issue_type NOT IN {_NOT_WORK}
  AND NOT EXISTS ({_BLOCKED_NOW.format(who="t")})
  AND NOT EXISTS (
    SELECT 1 FROM deps d WHERE d.issue_id = t.id AND d.type = '{PARENT_TYPE}'
      AND d.depends_on_id IN (SELECT id FROM blocked))
  AND (t.defer_ts = 0 OR t.defer_ts <= :now)
  AND NOT EXISTS (
    SELECT 1 FROM deps d JOIN tasks p ON p.id = d.depends_on_id
    WHERE d.issue_id = t.id AND d.type = '{PARENT_TYPE}'
      AND (p.status = 'deferred' OR p.defer_ts > :now))"""
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


class Cache:
    def __init__(self, path: Path, git: Git) -> None:
        self.git = git
        self.boot = _boot()
        self.in_memory = False  # the disk refused the cache: it lives in memory for this process
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.db = self._connect(path)
            except sqlite3.OperationalError:  # busy or unreadable: not ours to delete
                raise
            except sqlite3.DatabaseError:  # not a database any more: it is only a cache
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
                self.db = self._connect(path)
            if self._stale():
                self._reset()
        except (OSError, sqlite3.OperationalError) as exc:
            if not cannot_write(exc):
                raise
            self._to_memory()

    def _to_memory(self) -> None:
        """Go on with a cache in memory, built from the store: reads work on a full disk."""
        with contextlib.suppress(Exception):
            self.db.close()
        self.in_memory = True
        self.db = sqlite3.connect(":memory:", isolation_level=None)
        self._reset()

    def _connect(self, path: Path) -> sqlite3.Connection:
        _private(path)
        db = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={'OFF' if self.boot else 'NORMAL'}")
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def close(self) -> None:
        self.db.close()

    def _meta(self, key: str) -> str | None:
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        except sqlite3.OperationalError:
            return None
        return None if row is None else str(row[0])

    def _stale(self) -> bool:
        """Whether it must be rebuilt: another schema, or written before the last boot."""
        return self._meta("schema") != SCHEMA_VERSION or self._meta("boot") != self.boot

    def _reset(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if self._stale():  # another process may have done it
                for table in ("meta", *TABLES):
                    self.db.execute(f"DROP TABLE IF EXISTS {table}")
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute("INSERT INTO meta VALUES('schema', ?)", (SCHEMA_VERSION,))
                self.db.execute("INSERT INTO meta VALUES('boot', ?)", (self.boot,))
            self.db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def sync(self) -> str | None:
        """Bring the cache to the commit `refs/heads/main` points at now; return that commit."""
        try:
            return self._sync()
        except sqlite3.OperationalError as exc:
            if self.in_memory or not cannot_write(exc):
                raise
        self._to_memory()
        return self._sync()

    def _sync(self) -> str | None:
        head = self.git.ref()
        if self._meta("commit") == (head or ""):
            return head
        self.db.execute("BEGIN IMMEDIATE")
        try:
            cached = self._meta("commit") or ""
            head = self.git.ref()
            if cached != (head or ""):
                self._apply(cached, head)
                self.db.execute("INSERT OR REPLACE INTO meta VALUES('commit', ?)", (head or "",))
            self.db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        return head

    def _rollback(self) -> None:
        """Roll back, unless SQLite already did (it does when a write fails for want of space)."""
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def advance(self, parent: str | None, commit: str, files: dict[str, bytes | None]) -> None:
        """Record a commit this process just made on top of `parent`, from the files it wrote
        (no git call); any other state is brought up to date from git instead."""
        try:
            self._advance(parent, commit, files)
        except sqlite3.OperationalError as exc:
            if self.in_memory or not cannot_write(exc):
                raise
            self._to_memory()  # the commit is made: never fail the write for the cache's sake
            self._sync()

    def _advance(self, parent: str | None, commit: str, files: dict[str, bytes | None]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if self._meta("commit") != (parent or ""):
                self.db.execute("ROLLBACK")
                self.sync()
                return
            tasks = [p for p in files if is_task_file(p)]
            self._delete([task_id_of(p) for p in tasks if files[p] is None])
            self._insert(Task.from_dict(json.loads(files[p] or b"")) for p in tasks if files[p])
            if CONFIG_PATH in files:
                text = decode_config(files[CONFIG_PATH] or b"")
                self.db.execute("INSERT OR REPLACE INTO meta VALUES('config', ?)", (text,))
            if FORMAT_PATH in files:
                text = (files[FORMAT_PATH] or b"").decode()
                self.db.execute("INSERT OR REPLACE INTO meta VALUES('format', ?)", (text,))
            self.db.execute("INSERT OR REPLACE INTO meta VALUES('commit', ?)", (commit,))
            self.db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def _apply(self, cached: str, head: str | None) -> None:
        if not head:
            for table in TABLES:
                self.db.execute(f"DELETE FROM {table}")
            return
        changed = self._diff(cached, head) if cached else None
        if changed is None:
            for table in TABLES:
                self.db.execute(f"DELETE FROM {table}")
            self.db.execute("DELETE FROM meta WHERE key IN ('config', 'format')")
            out = self.git.out("ls-tree", "-r", head, "--", *WATCHED)
            changed = [(line.split("\t", 1)[1], line.split()[2]) for line in out.splitlines()]
        for _, sha in [c for c in changed if c[0] == CONFIG_PATH]:
            text = "" if set(sha) == {"0"} else decode_config(self.git.read(sha) or b"")
            self.db.execute("INSERT OR REPLACE INTO meta VALUES('config', ?)", (text,))
        for _, sha in [c for c in changed if c[0] == FORMAT_PATH]:
            text = "" if set(sha) == {"0"} else (self.git.read(sha) or b"").decode()
            self.db.execute("INSERT OR REPLACE INTO meta VALUES('format', ?)", (text,))
        changed = [c for c in changed if is_task_file(c[0])]
        gone = [task_id_of(p) for p, sha in changed if set(sha) == {"0"}]
        present = [(p, sha) for p, sha in changed if set(sha) != {"0"}]
        self._delete(gone)
        bodies = self.git.cat_batch([sha for _, sha in present])
        self._insert(Task.from_dict(json.loads(data or b"{}")) for _, data in bodies)

    def _diff(self, cached: str, head: str) -> list[tuple[str, str]] | None:
        """(path, new blob) of what changed since `cached`; None if git lacks that commit."""
        try:
            out = self.git.out("diff-tree", "-r", "--no-renames", cached, head, "--", *WATCHED)
        except GitError:
            return None
        changed = []
        for line in out.splitlines():
            meta, path = line.split("\t", 1)
            changed.append((path, meta.split()[3]))
        return changed

    def _delete(self, ids: list[str]) -> None:
        self.db.executemany("DELETE FROM tasks WHERE id=?", [(i,) for i in ids])
        self.db.executemany("DELETE FROM bodies WHERE id=?", [(i,) for i in ids])
        self.db.executemany("DELETE FROM deps WHERE issue_id=?", [(i,) for i in ids])

    def _insert(self, tasks: Iterable[Task]) -> None:
        rows: list[tuple[object, ...]] = []
        bodies: list[tuple[str, str]] = []
        deps: list[tuple[str, str, str]] = []
        ids: list[str] = []
        for task in tasks:
            ids.append(task.id)
            rows.append(
                (
                    task.id,
                    task.status,
                    task.priority,
                    parse_time(task.created_at) if task.created_at else 0.0,
                    task.issue_type,
                    task.defer_until,
                    task.not_before,
                    int(bool(task.extra.get("ephemeral") or task.extra.get("is_template"))),
                    task.coder,
                    parse_time(task.defer_until) if task.defer_until else 0.0,
                    parse_time(task.not_before) if task.not_before else 0.0,
                    parse_time(task.updated_at) if task.updated_at else 0.0,
                    "\n".join(task.labels),
                )
            )
            bodies.append((task.id, json.dumps(task.to_dict(), ensure_ascii=False)))
            deps.extend((task.id, d.depends_on_id, d.type) for d in task.dependencies)
        self._delete(ids)
        self.db.executemany("INSERT INTO tasks VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        self.db.executemany("INSERT INTO bodies VALUES(?,?)", bodies)
        self.db.executemany("INSERT INTO deps VALUES(?,?,?)", deps)
        self.db.executemany("DELETE FROM touched WHERE id=?", [(i,) for i in ids])
        self.db.executemany("INSERT INTO touched(id) VALUES(?)", [(i,) for i in ids])

    # -- reads --------------------------------------------------------------------------------

    def rebase(self, old: str, new: str, files: dict[str, bytes | None]) -> None:
        """Record that commit `new` holds the same tasks as `old` (a migration moved files
        without changing them), writing only `files`' non-task entries; else catch up."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if self._meta("commit") != old:
                self.db.execute("ROLLBACK")
                self.sync()
                return
            for key, path in (("config", CONFIG_PATH), ("format", FORMAT_PATH)):
                if path in files:
                    text = (files[path] or b"").decode()
                    self.db.execute("INSERT OR REPLACE INTO meta VALUES(?, ?)", (key, text))
            self.db.execute("INSERT OR REPLACE INTO meta VALUES('commit', ?)", (new,))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def format_text(self) -> str | None:
        """The `format` file at the cached commit: None when there is no commit, "" when the
        commit has none (format 1)."""
        if not self._meta("commit"):
            return None
        return self._meta("format") or ""

    def config_text(self) -> str:
        """The text of `config.toml` at the cached commit ("" when there is none)."""
        return self._meta("config") or ""

    def id_prefix(self) -> str:
        """`id_prefix` from `config.toml` as fleet writes it ("" when unset), without a TOML
        parser: `bd create` reads only this setting, and its start-up time counts."""
        match = PREFIX_LINE.search(self.config_text())
        return match.group(1) if match else ""

    def get(self, task_id: str) -> Task | None:
        row = self.db.execute("SELECT body FROM bodies WHERE id=?", (task_id,)).fetchone()
        return None if row is None else Task.from_dict(json.loads(row[0]))

    def bodies(self, ids: Iterable[str]) -> list[dict[str, Any]]:
        """The stored JSON of these tasks, in the order given (missing ones left out)."""
        wanted = list(ids)
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT id, body FROM bodies WHERE id IN ({marks})"
            for task_id, body in self.db.execute(sql, chunk):
                found[task_id] = json.loads(body)
        return [found[i] for i in wanted if i in found]

    def updated_since(self, ts: float) -> list[dict[str, Any]]:
        """The JSON of every task changed at or after `ts` (epoch seconds)."""
        sql = f"SELECT b.body FROM tasks t {BODY} WHERE t.updated_ts >= ?"
        return [json.loads(body) for (body,) in self.db.execute(sql, (ts,))]

    def touched(self) -> int:
        """The cache's write counter: every task written since has a higher one."""
        row = self.db.execute("SELECT coalesce(max(seq), 0) FROM touched").fetchone()
        return int(row[0])

    def queued_since(self, seq: int) -> tuple[list[str], int]:
        """Closed tasks written after write `seq` whose work waits for the merge queue, and the
        write counter now."""
        sql = (
            f"SELECT t.id FROM touched c JOIN tasks t ON t.id = c.id {BODY}"
            " WHERE c.seq > ? AND t.status='closed'"
            " AND json_extract(b.body, '$.delivery.state') = 'queued'"
        )
        return [str(row[0]) for row in self.db.execute(sql, (seq,))], self.touched()

    def stream(self) -> Iterator[dict[str, Any]]:
        """Every task's JSON in export order (priority, newest first, id), read as it goes."""
        sql = f"SELECT b.body FROM tasks t {BODY} ORDER BY t.priority, t.created_ts DESC, t.id"
        for (body,) in self.db.execute(sql):
            yield json.loads(body)

    def dependent_counts(self) -> dict[str, int]:
        """task id -> how many tasks depend on it (any dependency type)."""
        sql = "SELECT depends_on_id, count(*) FROM deps GROUP BY depends_on_id"
        return {target: int(n) for target, n in self.db.execute(sql)}

    def delivering(self) -> list[dict[str, Any]]:
        """The JSON of every closed task whose work waits for the merge queue."""
        sql = (
            f"SELECT b.body FROM tasks t {BODY} WHERE t.status='closed'"
            " AND instr(b.body, '\"queued\"') > 0"
            " AND json_extract(b.body, '$.delivery.state') = 'queued'"
        )
        return [json.loads(body) for (body,) in self.db.execute(sql)]

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM tasks").fetchone()[0])

    def select(
        self,
        statuses: Iterable[str] | None = None,
        label: str = "",
        coder: str = "",
        limit: int = 0,
    ) -> list[dict[str, Any]]:
        """Task JSON filtered by status, label and coder, by priority then age."""
        where, args = [], []
        if statuses is not None:
            wanted = list(statuses)
            # `+`: walk the order index and filter, rather than sort every match of a status
            where.append(f"+t.status IN ({','.join('?' * len(wanted))})")
            args.extend(wanted)
        if coder:
            where.append("t.coder=?")
            args.append(coder)
        if label:
            where.append("('\n' || t.labels || '\n') LIKE ?")
            args.append(f"%\n{label}\n%")
        sql = f"SELECT b.body FROM tasks t {BODY}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY t.priority, t.created_ts, t.id"
        if limit > 0:
            sql += f" LIMIT {int(limit)}"
        return [json.loads(body) for (body,) in self.db.execute(sql, args)]

    def nodes(self, include_closed: bool = False) -> dict[str, Node]:
        """Graph nodes of every task not closed, plus the status of what they point at."""
        cond = "" if include_closed else "WHERE status NOT IN ('closed')"
        nodes: dict[str, Node] = {}
        for row in self.db.execute(f"SELECT id, status, priority, created_ts FROM tasks {cond}"):
            nodes[row[0]] = Node(row[0], row[1], row[2], row[3])
        kinds = (*BLOCKING_TYPES, PARENT_TYPE)
        sql = (
            "SELECT d.issue_id, d.depends_on_id, d.type, t.id, t.status, t.priority, t.created_ts"
            " FROM deps d LEFT JOIN tasks t ON t.id = d.depends_on_id"
            f" WHERE d.type IN ({','.join('?' * len(kinds))})"
        )
        for issue, target, kind, tid, status, prio, created in self.db.execute(sql, kinds):
            node = nodes.get(issue)
            if node is None:
                continue
            (node.parents if kind == PARENT_TYPE else node.blockers).append(target)
            if tid is not None and target not in nodes:  # a closed target: known, resolved
                nodes[target] = Node(tid, status, prio, created)
        return nodes

    def ready(self, now: float, limit: int = 0, waiting: bool = True) -> list[str]:
        """Ready work in dispatch order, by beads' rules (see docs/beads.md), in one query.

        Open; no blocking dependency on a task that is neither closed nor pinned (a target the
        store does not have does not block); no blocked parent, transitively; not hidden; a work
        type; not deferred, nor a child of a deferred parent. `waiting=False` also leaves out
        tasks whose retry waits (`not_before` after `now`).
        """
        sql = READY_SQL + ("" if waiting else " AND t.not_before_ts <= :now")
        sql += " ORDER BY t.priority, t.created_ts, t.id"
        if limit > 0:
            sql += f" LIMIT {int(limit)}"
        return [row[0] for row in self.db.execute(sql, {"now": now})]

    def next_wake(self, now: float) -> float | None:
        """When the first ready task that waits for a retry may run (None: none waits)."""
        sql = f"SELECT min(w.not_before_ts) FROM ({READY_SQL} AND t.not_before_ts > :now) w"
        row = self.db.execute(sql, {"now": now}).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def edges(self) -> dict[str, list[str]]:
        """issue -> what it depends on, over blocking and parent-child dependencies."""
        kinds = (*BLOCKING_TYPES, PARENT_TYPE)
        out: dict[str, list[str]] = {}
        sql = (
            f"SELECT issue_id, depends_on_id FROM deps WHERE type IN ({','.join('?' * len(kinds))})"
        )
        for issue, target in self.db.execute(sql, kinds):
            out.setdefault(issue, []).append(target)
        return out

    def waiting_parents(self) -> list[str]:
        """The stored JSON of every blocked task that waits for its subtasks."""
        sql = f"SELECT b.body FROM tasks t {BODY} WHERE t.status='blocked' AND b.body LIKE ?"
        return [body for (body,) in self.db.execute(sql, ('%"waiting_on_subtasks": true%',))]

    def statuses(self, ids: list[str]) -> dict[str, str]:
        """id -> status of those of `ids` the store has."""
        out: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            sql = f"SELECT id, status FROM tasks WHERE id IN ({','.join('?' * len(chunk))})"
            out.update((a, b) for a, b in self.db.execute(sql, chunk))
        return out

    def dependents(self, task_id: str) -> list[tuple[str, str]]:
        """(dependent id, dependency type) of every task that depends on `task_id`."""
        sql = "SELECT issue_id, type FROM deps WHERE depends_on_id=? ORDER BY issue_id"
        return [(a, b) for a, b in self.db.execute(sql, (task_id,))]


def _boot() -> str:
    """Which boot of the machine this is ('' where the system does not say)."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


# SQLite's words for a write the host refused (a full disk, a quota, a read-only filesystem).
WRITE_REFUSALS = (
    "disk i/o error",
    "database or disk is full",
    "unable to open database file",
    "readonly database",
)


def cannot_write(exc: BaseException) -> bool:
    """Whether `exc` says the host would not let the cache be written."""
    import errno

    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
    return any(words in str(exc).lower() for words in WRITE_REFUSALS)


def _private(path: Path) -> None:
    """Create the cache file 0600 (SQLite gives its -wal and -shm files the same mode), and
    make an older one private."""
    if str(path) == ":memory:":
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
