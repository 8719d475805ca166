"""The fleet at a glance, for `fleet tasks` and the dashboard: what runs, what waits and why, what
ended lately, and the counts by status, read with a few SQL queries over the cache so that the
cost follows the rows shown, not the tasks stored."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from supervisor.cli import views
from supervisor.model import Task, parse_time
from supervisor.store import overview as sql
from supervisor.store.store import Store

WAITING = ("open", "blocked", "deferred")
ORDER = ("in_progress", "open", "blocked", "deferred", "closed")
_WAIT_SUFFIX = re.compile(r"; (?:retry after|waits until) \S+$")


@dataclass
class Overview:
    running: list[dict[str, Any]]
    waiting: list[dict[str, Any]]
    ended: list[dict[str, Any]]
    counts: dict[str, int]
    ready: int  # ready to start now
    retrying: int  # ready once their retry time comes
    supervisor: bool  # whether a supervisor runs for this home
    more: dict[str, int] = field(default_factory=dict)  # section -> rows left out

    def rows(self) -> list[dict[str, Any]]:
        return [*self.running, *self.waiting, *self.ended]


def supervisor_running(store: Store) -> bool:
    """Whether a supervisor holds this home's lock: the probe of `fleet supervisor status`,
    without importing the supervisor (about 180 ms of imports, more than this view's budget)."""
    import fcntl
    import os

    try:
        fd = os.open(store.home / "supervisor.lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def build(
    store: Store,
    budget: int = 0,
    role: str = "",
    now: float | None = None,
    ended_limit: int = 5,
    waiting_limit: int = 0,
) -> Overview:
    """Running agents (all, or as many as `budget` rows allow), then what waits, then what ended
    most recently; `budget` 0 shows every running task and up to `waiting_limit` waiting ones
    (0: all)."""
    now = now or time.time()
    store.cache.sync()
    counts = sql.counts(store.cache, role)
    ready = sql.ready(store.cache, now)
    running_total = counts.get("in_progress", 0)
    waiting_total = sum(counts.get(s, 0) for s in WAITING)
    ended_total = counts.get("closed", 0)
    if budget <= 0:
        n_run, n_end = running_total, min(ended_limit, ended_total)
        n_wait = min(waiting_total, waiting_limit) if waiting_limit > 0 else waiting_total
    else:
        n_run = min(running_total, budget)
        rest = budget - n_run
        n_end = min(ended_total, ended_limit, rest // 3)
        n_wait = min(waiting_total, rest - n_end)
        n_end = min(ended_total, ended_limit, rest - n_wait)
    running = sql.page(store.cache, ["in_progress"], role, n_run) if n_run else []
    waiting = _waiting_page(store, role, n_wait) if n_wait else []
    ended = sql.page(store.cache, sql.ENDED, role, n_end, newest_first=True) if n_end else []
    found = Overview(
        running=[views.row(store, Task.from_dict(b), now) for b in running],
        waiting=[views.row(store, Task.from_dict(b), now) for b in waiting],
        ended=[views.row(store, Task.from_dict(b), now) for b in ended],
        counts=counts,
        ready=sum(1 for nb in ready.values() if nb <= now),
        retrying=sum(1 for nb in ready.values() if nb > now),
        supervisor=supervisor_running(store),
    )
    explain(store, found.waiting, waiting, now, ready)
    views.explain_merging(store, found.ended)
    found.waiting += gates_waiting(store, now, {r["id"] for r in found.rows()})
    found.more = {
        "running": running_total - len(found.running),
        "waiting": waiting_total - len(found.waiting),
        "ended": ended_total - len(found.ended),
    }
    return found


def _waiting_page(store: Store, role: str, n: int) -> list[dict[str, Any]]:
    """Blocked tasks first (they need a person), then open ones by priority, then deferred."""
    out: list[dict[str, Any]] = []
    for status in ("blocked", "open", "deferred"):
        if len(out) >= n:
            break
        out += sql.page(store.cache, [status], role, n - len(out))
    return out


def select(
    store: Store,
    statuses: list[str] | None,
    role: str = "",
    limit: int = 0,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """Rows of the tasks asked for (by status and role), by priority then age, with WHY."""
    now = now or time.time()
    store.cache.sync()
    bodies = sql.page(store.cache, statuses, role, limit)
    out = [views.row(store, Task.from_dict(b), now) for b in bodies]
    needs_ready = any(r["status"] == "open" for r in out)
    explain(store, out, bodies, now, sql.ready(store.cache, now) if needs_ready else {})
    views.explain_merging(store, out)
    if statuses is not None and "closed" not in statuses and "in_progress" in statuses:
        out += gates_waiting(store, now, {r["id"] for r in out})
    return out


def gates_waiting(store: Store, now: float, shown: set[str]) -> list[dict[str, Any]]:
    """Closed tasks whose approval gate waits (status `gate`), with whom for and how long, and
    closed tasks whose work waits for the merge queue, with where each stands."""
    from supervisor.cli.gate import waiting_rows

    rows = waiting_rows(store, now, shown)
    return rows + views.merging_rows(store, shown | {r["id"] for r in rows}, now)


def explain(
    store: Store,
    rows: list[dict[str, Any]],
    bodies: list[dict[str, Any]],
    now: float,
    ready: dict[str, float],
) -> None:
    """Fill each waiting row's WHY: what the supervisor said, what it waits for, when it retries."""
    open_ids = [r["id"] for r in rows if r["status"] == "open"]
    blockers = sql.open_blockers(store.cache, open_ids)
    said = views.waiting_reasons(store)
    by_id = {str(b.get("id")): b for b in bodies}
    for r in rows:
        if r["status"] != "open":
            if r["status"] == "deferred":
                until = str(by_id.get(r["id"], {}).get("defer_until") or "")
                r["why"] = r["why"] or (f"deferred until {until[:16]}" if until else "deferred")
            continue
        r["why"] = why_open(
            r,
            by_id.get(r["id"], {}),
            blockers.get(r["id"], []),
            r["id"] in ready,
            said.get(r["id"], ""),
            now,
        )


def why_open(
    row: dict[str, Any],
    body: dict[str, Any],
    blockers: list[tuple[str, str]],
    ready: bool,
    said: str,
    now: float,
) -> str:
    """Why an open task is not running: its dependencies, its retry time, or what the supervisor
    reported (accounts, budgets, caps)."""
    reason = _WAIT_SUFFIX.sub("", str(row.get("why") or ""))
    if blockers:
        shown = ", ".join(f"{t} ({s})" for t, s in blockers[:3])
        more = f" and {len(blockers) - 3} more" if len(blockers) > 3 else ""
        return f"waiting for {shown}{more}"
    not_before = str(body.get("not_before") or "")
    if not_before:
        try:
            left = parse_time(not_before) - now
        except ValueError:
            left = 0.0
        when = f"retry in {duration(left)}" if left > 0 else "retry due"
        return f"{reason}; {when}" if reason else when
    if said:
        return said
    if reason:
        return reason
    return "ready" if ready else ""


def duration(seconds: float) -> str:
    """12 s, 4 min, 2 h 05 min, 3 d: short and relative."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min" if s < 600 else f"{round(s / 60)} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def summary(found: Overview) -> str:
    """One line: the counts by status, and what is left out of the view."""
    total = sum(found.counts.values())
    parts = []
    names = {"in_progress": "running"}
    for status in [*ORDER, *sorted(set(found.counts) - set(ORDER))]:
        n = found.counts.get(status, 0)
        if n:
            label = names.get(status, status)
            if status == "open" and (found.ready or found.retrying):
                label += f" ({found.ready:,} ready" + (
                    f", {found.retrying:,} retrying)" if found.retrying else ")"
                )
            parts.append(f"{n:,} {label}")
    head = f"{total:,} task{'s' if total != 1 else ''}"
    return f"{head}: " + ", ".join(parts) if parts else "no tasks"


def banner(found: Overview) -> str:
    """The line that says nothing runs the ready tasks ("" when a supervisor runs or none is)."""
    if found.supervisor or found.ready == 0:
        return ""
    n = found.ready
    return f"{n:,} ready, no supervisor running: start one with `fleet supervisor start`"
