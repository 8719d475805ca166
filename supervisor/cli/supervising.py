"""What `fleet supervisor stop|status|run` say about a supervisor at work: what a stop waits
for, the `stopping` state, and what a run did."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import click

from supervisor.cli.numbers import duration


def agents(store: Any) -> list[dict[str, Any]]:
    """The attempts running now: task, attempt, seconds so far, title."""
    store.cache.sync()
    out = []
    for body in store.cache.select(["in_progress"]):
        run = body.get("run") or {}
        started = run.get("started_at")
        seconds = None
        if started:
            from supervisor.model import parse_time

            seconds = round(time.time() - parse_time(str(started)), 1)
        out.append(
            {
                "id": body["id"],
                "attempt": run.get("attempt"),
                "seconds": seconds,
                "title": body.get("title", ""),
            }
        )
    return out


def describe(running: list[dict[str, Any]]) -> str:
    shown = ", ".join(
        f"{a['id']} (attempt {a['attempt']}, {duration(a['seconds']) or '?'})" for a in running[:5]
    )
    more = f" and {len(running) - 5} more" if len(running) > 5 else ""
    return shown + more


def stop_waiter(store: Any, timeout: float, quiet: bool) -> Callable[[Any, float], None] | None:
    """What `supervisor stop` prints while a graceful stop waits for the agents."""
    if quiet:
        return None
    last: list[str] = []

    def waiting(info: Any, waited: float) -> None:
        running = agents(store)
        line = (
            f"waiting for {len(running)} agent(s) to finish: {describe(running)}"
            if running
            else "waiting for the supervisor to record the last attempts"
        )
        if last and line.split(":")[0] == last[0].split(":")[0] and waited % 10 >= 1.5:
            return  # the same count: say it again every 10 s only
        last[:] = [line]
        left = max(0, timeout - waited)
        click.echo(
            f"{line} ({left:.0f} s left; `fleet supervisor stop --now` stops them)", err=True
        )

    return waiting


def state(store: Any, info: Any) -> dict[str, Any]:
    """`running`, `stopping` (since, how, what it waits for) or `stopped`."""
    from supervisor.run import stopping

    if info is None:
        return {"state": "stopped"}
    note = stopping.read(store, info.pid)
    if note is None:
        return {"state": "running"}
    return {
        "state": "stopping",
        "stopping_since": round(time.time() - float(note.get("since") or time.time()), 1),
        "stopping_how": note.get("how", "graceful"),
        "waiting_for": [a["id"] for a in agents(store)],
    }


class RunLog:
    """Collects what each tick of `supervisor run` ended, for the summary at its end."""

    def __init__(self, progress: bool) -> None:
        self.progress = progress
        self.ended: list[tuple[str, str]] = []
        self.started: set[str] = set()

    def __call__(self, report: Any) -> None:
        self.ended += list(report.ended)
        self.started |= set(report.started)
        if self.progress:
            click.echo(
                f"\rrunning {report.running}  waiting {report.waiting}   ", nl=False, err=True
            )

    def summary(self, store: Any, report: Any) -> dict[str, Any]:
        ids = list(dict.fromkeys([*(t for t, _ in self.ended), *sorted(self.started)]))
        store.cache.sync()
        statuses: dict[str, int] = {}
        for task_id in ids:
            task = store.cache.get(task_id)
            status = task.status if task else "missing"
            statuses[status] = statuses.get(status, 0) + 1
        return {
            "ran": len(ids),
            "attempts": len(self.ended),
            "statuses": statuses,
            "tasks": ids,
            "running": report.running,
            "waiting": report.waiting,
        }


def summary_line(data: dict[str, Any]) -> str:
    """`ran 4 tasks (5 attempts): 3 closed, 1 blocked`, and what is left."""
    order = ["closed", "blocked", "open", "in_progress", "deferred"]
    parts = [
        f"{n} {s}"
        for s, n in sorted(data["statuses"].items(), key=lambda x: [*order, x[0]].index(x[0]))
    ]
    if not data["ran"]:
        text = "ran nothing: no task was ready"
    else:
        tries = f" ({data['attempts']} attempts)" if data["attempts"] != data["ran"] else ""
        text = f"ran {data['ran']} task(s){tries}: {', '.join(parts)}"
    left = []
    if data["running"]:
        left.append(f"{data['running']} still running")
    if data["waiting"]:
        left.append(f"{data['waiting']} waiting")
    return text + (f"; {', '.join(left)}" if left else "")


def is_tty() -> bool:
    return sys.stderr.isatty()
