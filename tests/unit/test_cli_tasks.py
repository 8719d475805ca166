"""`fleet tasks`: one screen whatever the number of tasks, WHY for what waits, filters, --json,
the banner when nothing runs the ready tasks, and the live view's frame."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from supervisor.model import Run, iso
from supervisor.queue import configure
from supervisor.queue.mutations import NewTask, add_dep, close, create
from supervisor.store.store import Change, Store


def add(store: Store, title: str, **fields: Any) -> str:
    new = NewTask(title=title, coder="shell", command="true", cwd="/tmp", **fields)
    return create(store, new).id


def rewrite(store: Store, task_id: str, **fields: Any) -> None:
    """Set fields the supervisor sets (status, run, attempts, not_before) as it would."""

    def build(snap: Any) -> tuple[Change, None]:
        task = snap.need(task_id)
        for name, value in fields.items():
            setattr(task, name, Run.from_dict(value) if name == "run" else value)
        change = Change(f"test: set {task_id}", "updated")
        change.put(task)
        return change, None

    store.mutate(build)


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "15")


def test_default_view_fits_one_screen_and_sums_up(
    store: Store, fleet: Any, screen: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [add(store, f"task number {i} " + "with a long title " * 5) for i in range(60)]
    close(store, ids[:10], "done")
    for task_id in ids[10:13]:
        rewrite(store, task_id, status="in_progress", run={"attempt": 1, "coder": "shell"})
    rewrite(store, ids[13], status="blocked", status_reason="needs a person")
    out = fleet("tasks")
    assert out.code == 0, out.err
    lines = out.out.splitlines()
    assert len(lines) <= 15 - 1  # and a line for the prompt
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[0].startswith("46 ready, no supervisor running: start one with")
    assert "`fleet supervisor start`" in lines[0]
    assert lines[1].split()[:2] == ["ID", "STATUS"]
    body = [line.split()[1] for line in lines[2:-1]]
    # running first, then what waits (blocked first), then what ended lately
    assert body[:3] == ["in_progress"] * 3 and body[3] == "blocked"
    assert body[-1] == "closed" and "open" in body
    assert lines[-1].startswith("60 tasks: 3 running, 46 open (46 ready), 1 blocked, 10 closed;")
    assert lines[-1].endswith("--all for all")
    assert "…" in out.out  # titles cut to the width


def test_columns_empty_in_every_row_are_hidden(store: Store, fleet: Any, screen: None) -> None:
    add(store, "alone")
    head = fleet("tasks").out.splitlines()[1].split()
    assert head == ["ID", "STATUS", "CODER", "TITLE", "CWD", "WHY"]
    assert fleet("tasks", "--all").out.splitlines()[0].split()[:2] == ["ID", "STATUS"]


def test_why_names_a_blocked_dependency_and_the_retry_time(
    store: Store, fleet: Any, screen: None
) -> None:
    first, second, third = add(store, "first"), add(store, "second"), add(store, "third")
    add_dep(store, second, first)
    rewrite(store, first, status="blocked", status_reason="failed 3 times")
    reason = "attempt 1 failure: exit 1; retry after 2026-01-01T00:00:00Z"
    rewrite(store, third, not_before=iso(time.time() + 42), status_reason=reason)
    rows = {r["id"]: r for r in json.loads(fleet("tasks", "--json").out)}
    assert rows[second]["why"] == f"waiting for {first} (blocked)"
    assert rows[first]["why"] == "failed 3 times"
    why = rows[third]["why"]
    assert why.startswith("attempt 1 failure: exit 1; retry in 4") and why.endswith(" s")
    rewrite(store, third, not_before=iso(time.time() - 5))
    rows = {r["id"]: r for r in json.loads(fleet("tasks", "--json").out)}
    assert rows[third]["why"] == "attempt 1 failure: exit 1; retry due"


def test_no_banner_when_nothing_is_ready(store: Store, fleet: Any, screen: None) -> None:
    task_id = add(store, "held")
    rewrite(store, task_id, status="blocked", status_reason="held")
    assert "supervisor" not in fleet("tasks").out
    assert fleet("tasks").out.splitlines()[-1] == "1 task: 1 blocked"


def test_no_banner_while_a_supervisor_holds_the_lock(
    store: Store, fleet: Any, screen: None, home: Path
) -> None:
    from supervisor.store.flock import Flock

    add(store, "ready one")
    assert "no supervisor running" in fleet("tasks").out
    lock = Flock(home / "supervisor.lock")  # what a running supervisor holds
    assert lock.acquire()
    try:
        assert "no supervisor running" not in fleet("tasks").out
    finally:
        lock.release()


def test_filters_and_json(store: Store, fleet: Any) -> None:
    configure.set_values(store, ["roles.reviewer.coder=shell", "roles.developer.coder=shell"])
    a = add(store, "a", role="reviewer")
    b = add(store, "b", role="developer")
    c = add(store, "c", role="reviewer")
    close(store, [c], "done")

    def ids(*args: str) -> list[str]:
        return [r["id"] for r in json.loads(fleet("tasks", "--json", *args).out)]

    assert ids() == [a, b]
    assert ids("--all") == [a, b, c]
    assert ids("--status", "closed") == [c]
    assert ids("--status", "open,closed") == [a, b, c]
    assert ids("--role", "reviewer") == [a]
    assert ids("--role", "reviewer", "--all") == [a, c]
    assert ids("--all", "--limit", "2") == [a, b]
    assert ids("-n", "1") == [a]
    table = fleet("tasks", "--status", "open").out
    assert a in table and b in table and c not in table
    assert table.splitlines()[-1].startswith("3 tasks: 2 open")


def test_bad_status_is_refused(store: Store, fleet: Any) -> None:
    before = store.head()
    out = fleet("tasks", "--status", "runing")
    assert out.code == 2
    assert "fleet: --status 'runing' is not a status" in out.err and "hint:" in out.err
    assert store.head() == before
    assert fleet("tasks", "--watch", "--json").code == 2
    out = fleet("tasks", "--watch")  # captured: not a terminal
    assert out.code == 2 and "not one" in out.err


def test_running_is_a_status_alias(store: Store, fleet: Any) -> None:
    task_id = add(store, "busy")
    rewrite(store, task_id, status="in_progress", run={"attempt": 1})
    assert [r["id"] for r in json.loads(fleet("tasks", "--json", "--status", "running").out)] == [
        task_id
    ]


def test_watch_frame_shows_the_same_view(store: Store) -> None:
    from rich.console import Console

    from supervisor.cli.watch import frame

    ids = [add(store, f"agent {i}") for i in range(50)]
    for task_id in ids:
        rewrite(store, task_id, status="in_progress", run={"attempt": 1, "coder": "shell"})
    console = Console(width=100, height=30, record=True, force_terminal=False)
    console.print(frame(store, 30, 100))
    text = console.export_text()
    lines = text.splitlines()
    assert lines[0].startswith("fleet tasks")
    assert len(lines) <= 30
    assert sum("in_progress" in line for line in lines) == 30 - 5
    assert lines[-1].startswith("50 tasks: 50 running") and "showing 25" in lines[-1]
