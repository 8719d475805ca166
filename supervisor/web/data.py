"""What the dashboard shows, as JSON-ready dicts: one small function per section.

Each reads the store (through its cache) and the live files of running attempts; none writes.
Sections whose records other parts of fleet write are read by one function each, so that they
fill in as those records appear:

- `merge_queue`: the tasks whose `delivery` record has a state (queued, merging, waiting,
  blocked, reopened, merged, ...), as the merge queue writes it on the task;
- `gates`: closed tasks whose approval requirements (`requires` on the task, or on its role in
  `config.toml`) are not met by an approval of their current work (`approvals` on the task).

When nothing is recorded, a section is an empty list and the page says "none".
"""

from __future__ import annotations

import json
import time
from typing import Any

from supervisor.cli import overview
from supervisor.model import Task
from supervisor.store import overview as sql
from supervisor.store.store import Store

TABLE_WAITING = 100  # rows of waiting tasks the table shows (the counts cover the rest)
TABLE_ENDED = 20
LOG_CHUNK = 64 * 1024  # at most this many bytes of log per poll
MERGE_SETTLED = ("merged", "kept", "branch")  # delivery states that leave the queue


def state(store: Store, now: float | None = None) -> dict[str, Any]:
    """The task table: running, waiting (with why), recently ended; counts; the banner."""
    found = overview.build(
        store, budget=0, now=now, ended_limit=TABLE_ENDED, waiting_limit=TABLE_WAITING
    )
    return {
        "commit": store.cache.sync() or "",
        "time": time.time(),
        "home": str(store.home),
        "supervisor": found.supervisor,
        "banner": overview.banner(found),
        "summary": overview.summary(found),
        "counts": found.counts,
        "ready": found.ready,
        "running": found.running,
        "waiting": found.waiting,
        "waiting_more": found.more.get("waiting", 0),
        "ended": found.ended,
    }


def graph(store: Store, task_id: str = "") -> dict[str, Any]:
    """The dependency family of a task (the largest family when none is named): nodes with
    status and title, edges task -> what it depends on."""
    store.cache.sync()
    root = task_id or sql.biggest_family(store.cache)
    if not root:
        return {"root": "", "nodes": [], "edges": []}
    ids, edges = sql.family(store.cache, root)
    known = sql.statuses_of(store.cache, ids)
    nodes = [
        {"id": i, "status": known.get(i, ("unknown", ""))[0], "title": known.get(i, ("", ""))[1]}
        for i in ids
    ]
    return {
        "root": root,
        "nodes": nodes,
        "edges": [{"from": a, "to": b, "type": c} for a, b, c in edges],
    }


def log_tail(store: Store, task_id: str, offset: int = -1) -> dict[str, Any]:
    """New text of a task's log from `offset` (-1: its last 64 KiB), live while it runs."""
    from supervisor.cli import views

    task = store.get(task_id)
    running = views.live_status(store, task) if task.run is not None else {}
    n = int(running.get("attempt") or len(task.attempts))
    if n == 0:
        return {"task": task_id, "attempt": 0, "offset": 0, "text": "", "running": False}
    path = views.live_path(store, task, n, "log.txt")
    if path is not None and path.exists():
        size = path.stat().st_size
        start = max(size - LOG_CHUNK, 0) if offset < 0 or offset > size else offset
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read(LOG_CHUNK)
        end = start + len(data)
    else:
        whole = views.artifact(store, task, n, "log.txt") or b""
        start = max(len(whole) - LOG_CHUNK, 0) if offset < 0 or offset > len(whole) else offset
        data = whole[start : start + LOG_CHUNK]
        end = start + len(data)
    return {
        "task": task_id,
        "attempt": n,
        "offset": end,
        "text": data.decode(errors="replace"),
        "running": task.status == "in_progress",
    }


class Ledger:
    """Usage and budgets over every task, recomputed only when the store's commit moves."""

    def __init__(self) -> None:
        self.commit: str | None = None
        self.tasks: list[Task] = []

    def load(self, store: Store) -> list[Task]:
        head = store.cache.sync()
        if head != self.commit:
            self.tasks = [Task.from_dict(b) for b in store.cache.select(None)]
            self.commit = head
        return self.tasks


def usage(tasks: list[Task]) -> dict[str, Any]:
    """Tokens and cost per day, role, model and account (the sums `fleet usage` gives)."""
    from supervisor import ledger

    out: dict[str, Any] = {}
    for by in ("day", "role", "model", "account"):
        lines = ledger.aggregate(tasks, by)
        if by == "day":
            lines.sort(key=lambda line: line.key)
        out[by] = [
            {
                "key": line.key or "-",
                "cost_usd": round(line.cost_usd, 6),
                "tokens": sum(line.tokens.values()),
                "attempts": line.attempts,
            }
            for line in lines
        ]
    return out


def budgets(store: Store, tasks: list[Task], now: float | None = None) -> list[dict[str, Any]]:
    """Today's spend against each daily ceiling configured (the fleet's and each account's)."""
    from supervisor import budgets as rules
    from supervisor.queue import configure

    now = now or time.time()
    config = configure.current(store)
    day = rules.today(tasks, [], now)
    out: list[dict[str, Any]] = []
    if config.daily_max_cost:
        out.append(_ceiling("fleet", "cost_usd", day.total_cost, config.daily_max_cost))
    if config.daily_max_tokens:
        out.append(_ceiling("fleet", "tokens", day.total_tokens, config.daily_max_tokens))
    for name, account in sorted(config.accounts.items()):
        if account.daily_max_cost:
            out.append(_ceiling(name, "cost_usd", day.cost.get(name, 0.0), account.daily_max_cost))
        if account.daily_max_tokens:
            out.append(_ceiling(name, "tokens", day.tokens.get(name, 0), account.daily_max_tokens))
    return out


def _ceiling(scope: str, kind: str, spent: float, ceiling: float) -> dict[str, Any]:
    return {
        "scope": scope,
        "kind": kind,
        "spent": round(spent, 6),
        "ceiling": ceiling,
        "share": round(spent / ceiling, 4) if ceiling else None,
    }


def merge_queue(store: Store) -> list[dict[str, Any]]:
    """Tasks in the merge queue, from the `delivery` record on each task: the ones not settled
    (queued, merging, waiting, blocked, reopened) in the order they were queued, then the last
    ten merged."""
    store.cache.sync()
    rows = store.cache.db.execute(
        "SELECT id, json_extract(body, '$.title'), json_extract(body, '$.delivery')"
        " FROM tasks_json WHERE json_extract(body, '$.delivery.state') IS NOT NULL"
    ).fetchall()
    entries = []
    for task_id, title, raw in rows:
        record = json.loads(raw) if isinstance(raw, str) else {}
        entries.append(
            {
                "id": task_id,
                "title": title or "",
                "state": str(record.get("state") or ""),
                "branch": str(record.get("branch") or ""),
                "queued_at": str(record.get("queued_at") or ""),
                "merged_at": str(record.get("merged_at") or ""),
                "reason": str(record.get("reason") or record.get("error") or ""),
            }
        )
    active = sorted(
        (e for e in entries if e["state"] not in MERGE_SETTLED), key=lambda e: e["queued_at"]
    )
    merged = sorted(
        (e for e in entries if e["state"] == "merged"), key=lambda e: e["merged_at"], reverse=True
    )
    return active + merged[:10]


def gates(store: Store) -> list[dict[str, Any]]:
    """Closed tasks whose approval gate waits: a requirement ("human", "role:NAME") that no
    approval of the current work (`work` = its number of attempts) meets, or a rejection."""
    from supervisor.queue import configure

    store.cache.sync()
    roles = _role_requirements(configure.current(store))
    rows = store.cache.db.execute(
        "SELECT body FROM tasks_json WHERE status = 'closed' AND ("
        " json_extract(body, '$.requires') IS NOT NULL"
        + (f" OR json_extract(body, '$.role') IN ({','.join('?' * len(roles))})" if roles else "")
        + ")",
        list(roles),
    ).fetchall()
    out = []
    for (raw,) in rows:
        body = json.loads(raw)
        own = body.get("requires")
        needed = [str(r) for r in own] if isinstance(own, list) else roles.get(body.get("role"), [])
        if not needed:
            continue
        work = len(body.get("attempts") or [])
        found = body.get("approvals") if isinstance(body.get("approvals"), list) else []
        current = [a for a in found if isinstance(a, dict) and a.get("work") == work]
        rejected = bool(current) and current[-1].get("verdict") == "rejected"
        missing = [r for r in needed if not any(_meets(a, r) for a in current)]
        if not missing and not rejected:
            continue
        out.append(
            {
                "id": body.get("id"),
                "title": body.get("title", ""),
                "role": body.get("role", ""),
                "waiting_for": missing,
                "rejected": rejected,
                "reason": str(current[-1].get("reason") or "") if rejected else "",
                "closed_at": body.get("closed_at", ""),
            }
        )
    return sorted(out, key=lambda g: str(g["closed_at"]))


def _meets(approval: dict[str, Any], requirement: str) -> bool:
    if approval.get("verdict") != "approved":
        return False
    if requirement == "human":
        return approval.get("kind") == "human"
    return approval.get("kind") == "role" and approval.get("role") == requirement[5:]


def _role_requirements(config: Any) -> dict[str, list[str]]:
    """role -> its `requires`, from the configuration's roles where it has any."""
    found: dict[str, list[str]] = {}
    for name, role in (getattr(config, "roles", None) or {}).items():
        needed = getattr(role, "requires", None)
        if needed:
            found[str(name)] = [str(r) for r in needed]
    return found
