"""Counts and pages of tasks in SQL over the read cache, for views of a large fleet.

`fleet tasks` and the dashboard show a few dozen rows out of thousands: these queries count by
status and fetch only the rows shown, so their cost does not grow with the task files parsed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from supervisor.model import BLOCKING_TYPES, PARENT_TYPE
from supervisor.store.cache import READY_SQL, Cache

ENDED = ("closed",)
_ROLE = "json_extract(body, '$.role')"


def counts(cache: Cache, role: str = "") -> dict[str, int]:
    """Tasks per status (only statuses that have some)."""
    sql, args = "SELECT status, count(*) FROM " + ("tasks_json" if role else "tasks"), []
    if role:
        sql += f" WHERE {_ROLE} = ?"
        args.append(role)
    rows = cache.db.execute(sql + " GROUP BY status", args)
    return {str(status): int(n) for status, n in rows}


def ready(cache: Cache, now: float) -> dict[str, float]:
    """Every ready task by beads' rules (one query) -> the time its retry waits for (0: none)."""
    return {str(i): float(nb or 0) for i, nb in cache.db.execute(READY_SQL, {"now": now})}


def page(
    cache: Cache,
    statuses: Iterable[str] | None = None,
    role: str = "",
    limit: int = 0,
    offset: int = 0,
    newest_first: bool = False,
) -> list[dict[str, Any]]:
    """Task JSON by status and role: by priority then age, or the most recently changed first."""
    where, args = _where(statuses, role)
    sql = "SELECT body FROM tasks_json" + where
    sql += " ORDER BY updated_ts DESC, id" if newest_first else " ORDER BY priority, created_ts, id"
    if limit > 0:
        sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
    return [json.loads(body) for (body,) in cache.db.execute(sql, args)]


def total(cache: Cache, statuses: Iterable[str] | None = None, role: str = "") -> int:
    where, args = _where(statuses, role)
    table = "tasks_json" if role else "tasks"
    return int(cache.db.execute(f"SELECT count(*) FROM {table}" + where, args).fetchone()[0])


def _where(statuses: Iterable[str] | None, role: str) -> tuple[str, list[Any]]:
    clauses, args = [], []
    if statuses is not None:
        wanted = list(statuses)
        clauses.append(f"status IN ({','.join('?' * len(wanted))})")
        args.extend(wanted)
    if role:
        clauses.append(f"{_ROLE} = ?")
        args.append(role)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def open_blockers(cache: Cache, ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """For each of `ids`: (target, its status) of every blocking dependency or parent that is
    neither closed nor pinned, i.e. what the task waits for."""
    if not ids:
        return {}
    kinds = (*sorted(BLOCKING_TYPES), PARENT_TYPE)
    sql = (
        "SELECT d.issue_id, d.depends_on_id, d.type, t.status FROM deps d"
        " JOIN tasks t ON t.id = d.depends_on_id"
        f" WHERE d.issue_id IN ({','.join('?' * len(ids))})"
        f" AND d.type IN ({','.join('?' * len(kinds))})"
        " AND t.status NOT IN ('closed', 'pinned') ORDER BY d.issue_id, d.depends_on_id"
    )
    out: dict[str, list[tuple[str, str]]] = {}
    for issue, target, kind, status in cache.db.execute(sql, [*ids, *kinds]):
        if kind == PARENT_TYPE and status != "blocked" and status != "deferred":
            continue  # an open parent does not hold its children back
        out.setdefault(str(issue), []).append((str(target), str(status)))
    return out


def family(
    cache: Cache, task_id: str, limit: int = 200
) -> tuple[list[str], list[tuple[str, str, str]]]:
    """The dependency family of a task: every task linked to it through any dependency, in
    either direction, up to `limit` tasks; and the edges (issue, depends on, type) among them."""
    seen, frontier = {task_id}, [task_id]
    while frontier and len(seen) < limit:
        marks = ",".join("?" * len(frontier))
        sql = (
            f"SELECT issue_id, depends_on_id FROM deps WHERE issue_id IN ({marks})"
            f" OR depends_on_id IN ({marks})"
        )
        nxt: list[str] = []
        for issue, target in cache.db.execute(sql, [*frontier, *frontier]):
            for node in (str(issue), str(target)):
                if node not in seen and len(seen) < limit:
                    seen.add(node)
                    nxt.append(node)
        frontier = nxt
    ids = sorted(seen)
    marks = ",".join("?" * len(ids))
    edges = [
        (str(a), str(b), str(c))
        for a, b, c in cache.db.execute(
            f"SELECT issue_id, depends_on_id, type FROM deps WHERE issue_id IN ({marks})"
            f" AND depends_on_id IN ({marks}) ORDER BY issue_id, depends_on_id",
            [*ids, *ids],
        )
    ]
    return ids, edges


def statuses_of(cache: Cache, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(status, title) of each of `ids` the store has."""
    out: dict[str, tuple[str, str]] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        sql = (
            "SELECT id, status, json_extract(body, '$.title') FROM tasks_json"
            f" WHERE id IN ({','.join('?' * len(chunk))})"
        )
        for task_id, status, title in cache.db.execute(sql, chunk):
            out[str(task_id)] = (str(status), str(title or ""))
    return out


def biggest_family(cache: Cache) -> str:
    """A task with the most dependency links, among tasks not closed ("" when none has any)."""
    row = cache.db.execute(
        "SELECT d.issue_id, count(*) AS n FROM deps d JOIN tasks t ON t.id = d.issue_id"
        " WHERE t.status != 'closed' GROUP BY d.issue_id ORDER BY n DESC, d.issue_id LIMIT 1"
    ).fetchone()
    if row is None:
        row = cache.db.execute("SELECT issue_id FROM deps ORDER BY issue_id LIMIT 1").fetchone()
    return "" if row is None else str(row[0])
