"""What `fleet tasks` and `fleet task ID ...` show: rows and records read from the store and
from the live files of running attempts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from supervisor.errors import NotFound
from supervisor.model import Task, parse_time
from supervisor.run.attempt import live_files, run_dir, waiting_path
from supervisor.store.store import Store

SHOWN = ["open", "in_progress", "blocked", "deferred"]


def live_status(store: Store, task: Task) -> dict[str, Any]:
    """The running attempt's newest figures: its status file, else the last checkpoint."""
    if task.run is None:
        return {}
    run = task.run.to_dict()
    files = live_files(store.home, task.id, task.run.attempt)
    try:
        data = json.loads(files.status.read_text())
        return {**run, **data} if isinstance(data, dict) else run
    except (OSError, ValueError):
        return run


def rows(store: Store, show_all: bool = False, now: float | None = None) -> list[dict[str, Any]]:
    """One row per task for `fleet tasks`."""
    now = now or time.time()
    store.cache.sync()
    waiting = waiting_reasons(store)
    out = []
    for body in store.cache.select(None if show_all else SHOWN):
        task = Task.from_dict(body)
        out.append(row(store, task, now))
        if task.status == "open" and task.id in waiting:
            out[-1]["why"] = waiting[task.id]
    if not show_all:  # closed tasks whose approval gate waits (supervisor.cli.gate)
        from supervisor.cli.gate import waiting_rows

        out += waiting_rows(store, now, {r["id"] for r in out})
    out += merging_rows(store, {r["id"] for r in out}, now)
    return out


def explain_merging(store: Store, rows: list[dict[str, Any]]) -> None:
    """WHY of closed rows whose work waits for the merge queue: where its merge stands."""
    queued = [r for r in rows if r["status"] == "closed" and r.get("delivery") == "queued"]
    if not queued:
        return
    from supervisor.run.attempt import merge_line

    line = merge_line(store.home)
    for r in queued:
        r["why"] = line.get(r["id"]) or r.get("delivery_waiting") or "queued for its merge"


def merging_rows(store: Store, shown: set[str], now: float) -> list[dict[str, Any]]:
    """Closed tasks whose work waits for the merge queue, with where each stands."""
    from supervisor.run.attempt import merge_line

    line = merge_line(store.home)  # the running supervisor's queue (a query over every closed
    out = []  # task would cost `fleet tasks` its budget at 100,000 tasks)
    for task_id in sorted(set(line) - shown):
        task = store.cache.get(task_id)
        if task is not None and (task.delivery or {}).get("state") == "queued":
            out.append(row(store, task, now))
            out[-1]["why"] = line.get(task.id) or (task.delivery or {}).get("waiting") or "queued"
    return out


def waiting_reasons(store: Store) -> dict[str, str]:
    """Why the running supervisor left ready tasks waiting (accounts, daily budgets)."""
    try:
        data = json.loads(waiting_path(store.home).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def row(store: Store, task: Task, now: float) -> dict[str, Any]:
    run = live_status(store, task) if task.run else {}
    last = task.attempts[-1] if task.attempts else {}
    usage = (run or last).get("usage") or {}
    started = run.get("started_at") or last.get("started_at")
    elapsed = now - parse_time(started) if run and started else float(last.get("seconds") or 0)
    idle = None
    if run:
        seen = run.get("last_output_at") or started
        idle = now - parse_time(seen) if seen else None
    return {
        "id": task.id,
        "status": task.status,
        "coder": run.get("coder") or last.get("coder") or task.coder,
        "model": run.get("model") or last.get("model") or task.model,
        "account": run.get("account") or last.get("account") or task.account,
        "attempt": run.get("attempt") or len(task.attempts),
        "elapsed": elapsed,
        "idle": idle,
        "tokens_in": int(usage.get("input_tokens") or 0) + int(usage.get("cache_read_tokens") or 0),
        "tokens_out": int(usage.get("output_tokens") or 0),
        "cost_usd": sum(float((a.get("usage") or {}).get("cost_usd") or 0) for a in task.attempts)
        + float((run.get("usage") or {}).get("cost_usd") or 0),
        "title": task.title,
        "cwd": task.cwd,
        "why": task.status_reason,
        "priority": task.priority,
        **changed(task),
    }


def changed(task: Task) -> dict[str, Any]:
    """Files and lines the task's last recorded work changed."""
    work: dict[str, Any] = {}
    for attempt in reversed(task.attempts):
        if (attempt.get("work") or {}).get("head"):
            work = attempt["work"]
            break
    delivery = task.delivery or {}
    return {
        "delivery": str(delivery.get("state") or ""),
        "delivery_waiting": str(delivery.get("waiting") or ""),
        "branch": str(work.get("branch") or ""),
        "files": int(work.get("files") or 0),
        "added": int(work.get("added") or 0),
        "deleted": int(work.get("deleted") or 0),
    }


def attempt_number(task: Task, wanted: int | None) -> int:
    """The attempt to show: the one asked for, else the running one, else the last."""
    last = task.run.attempt if task.run else len(task.attempts)
    if wanted is None:
        if last == 0:
            raise NotFound(
                f"task {task.id} has not run yet",
                hint=f"start a supervisor (`fleet supervisor start`) or `fleet bd show {task.id}`",
            )
        return last
    if not 1 <= wanted <= last:
        raise NotFound(f"task {task.id} has no attempt {wanted}", hint=f"it has {last}")
    return wanted


def artifact(store: Store, task: Task, n: int, name: str) -> bytes | None:
    """A file of attempt n: live while it runs, else the committed record."""
    if task.run is not None and task.run.attempt == n:
        live = live_files(store.home, task.id, n).root / name
        if live.exists():
            return live.read_bytes()
    return store.read(f"{run_dir(task.id, n)}/{name}")


def live_path(store: Store, task: Task, n: int, name: str) -> Path | None:
    if task.run is None or task.run.attempt != n:
        return None
    return live_files(store.home, task.id, n).root / name


def usage_report(task: Task) -> dict[str, Any]:
    totals = {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
    }
    cost, seconds = 0.0, 0.0
    for attempt in task.attempts:
        usage = attempt.get("usage") or {}
        for key in totals:
            totals[key] += int(usage.get(key) or 0)
        cost += float(usage.get("cost_usd") or 0)
        seconds += float(attempt.get("seconds") or 0)
    return {
        "task": task.id,
        "attempts": [
            {
                "n": a.get("n"),
                "outcome": a.get("outcome"),
                "model": a.get("model", ""),
                "account": a.get("account", ""),
                "seconds": a.get("seconds", 0),
                **(a.get("usage") or {}),
            }
            for a in task.attempts
        ],
        "total": {**totals, "cost_usd": round(cost, 6), "seconds": round(seconds, 3)},
    }
