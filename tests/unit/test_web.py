"""The dashboard's server and its sections, over real HTTP on 127.0.0.1 (the page itself is
tested in a browser: tests/e2e/test_dashboard.py)."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor.queue import configure
from supervisor.queue.mutations import NewTask, close, create
from supervisor.store.store import Change, Store
from supervisor.web import data
from supervisor.web.server import Dashboard


def add(store: Store, title: str, **fields: Any) -> str:
    return create(
        store, NewTask(title=title, coder="shell", command="true", cwd="/tmp", **fields)
    ).id


def record(store: Store, task_id: str, **extra: Any) -> None:
    """Write fields other parts of fleet record on a task (delivery, requires, approvals)."""

    def build(snap: Any) -> tuple[Change, None]:
        task = snap.need(task_id)
        for key, value in extra.items():
            if hasattr(task, key) and key != "extra":
                setattr(task, key, value)
            else:
                task.extra[key] = value
        change = Change(f"test: record on {task_id}", "updated")
        change.put(task)
        return change, None

    store.mutate(build)


@pytest.fixture
def serve(store: Store) -> Iterator[Any]:
    boards: list[Dashboard] = []

    def start(host: str = "127.0.0.1") -> Dashboard:
        board = Dashboard(store.home, host, 0)
        threading.Thread(target=board.serve, daemon=True).start()
        boards.append(board)
        return board

    yield start
    for board in boards:
        board.stop()


def get(url: str, host: str = "") -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_loopback_serves_the_page_and_the_state(store: Store, serve: Any) -> None:
    task_id = add(store, "shown")
    board = serve()
    assert board.url == f"http://127.0.0.1:{board.port}/"
    code, page = get(board.url)
    assert code == 200 and b"<title>fleet dashboard</title>" in page
    for asset in ("app.js", "style.css"):
        assert get(board.url + asset)[0] == 200
    code, body = get(board.url + "api/state")
    state = json.loads(body)
    assert code == 200 and [r["id"] for r in state["waiting"]] == [task_id]
    assert state["summary"] == "1 task: 1 open (1 ready)"
    assert state["banner"].startswith("1 ready, no supervisor running")


def test_a_page_from_another_host_name_is_refused(store: Store, serve: Any) -> None:
    board = serve()
    assert get(board.url + "api/state", host="evil.example:80")[0] == 403
    assert get(board.url + "api/state", host=f"localhost:{board.port}")[0] == 200


def test_bound_elsewhere_it_needs_the_token(store: Store, serve: Any) -> None:
    board = serve("0.0.0.0")
    assert board.token and board.url.endswith(f"/?token={board.token}")
    base = f"http://127.0.0.1:{board.port}/"
    assert get(base)[0] == 403
    assert get(base + "api/state?token=wrong")[0] == 403
    assert get(base + f"api/state?token={board.token}")[0] == 200
    assert get(base + f"?token={board.token}")[0] == 200


def test_bad_requests_get_a_json_error(store: Store, serve: Any) -> None:
    board = serve()
    code, body = get(board.url + "api/log?id=../etc")
    assert code == 400 and "error" in json.loads(body)
    code, body = get(board.url + "api/log?id=fl-zzzz")
    assert code == 400 and "does not exist" in json.loads(body)["error"]
    assert get(board.url + "api/nothing")[0] == 404
    assert get(board.url + "api/log?id=fl-zzzz&offset=x")[0] == 400


def test_graph_is_the_family_of_a_task(store: Store) -> None:
    a = add(store, "a")
    b = add(store, "b", deps=[a])
    c = add(store, "c", deps=[b])
    lone = add(store, "lone")
    graph = data.graph(store, c)
    assert graph["root"] == c
    assert {n["id"] for n in graph["nodes"]} == {a, b, c}
    assert {(e["from"], e["to"]) for e in graph["edges"]} == {(b, a), (c, b)}
    assert data.graph(store, lone)["edges"] == []
    assert data.graph(store)["root"] in {b, c}  # the largest family when none is named


def test_usage_and_budgets(store: Store) -> None:
    configure.set_values(
        store, ["daily_max_cost=2", "daily_max_tokens=100000", "roles.developer.coder=shell"]
    )
    task_id = add(store, "spent", role="developer")
    from supervisor.model import now_iso

    attempt = {
        "n": 1,
        "outcome": "success",
        "model": "m1",
        "account": "acct",
        "ended_at": now_iso(),
        "usage": {"input_tokens": 1000, "output_tokens": 500, "cost_usd": 0.5},
    }
    record(store, task_id, attempts=[attempt])
    tasks = data.Ledger().load(store)
    usage = data.usage(tasks)
    assert [(r["key"], r["cost_usd"], r["tokens"]) for r in usage["role"]] == [
        ("developer", 0.5, 1500)
    ]
    assert [r["key"] for r in usage["model"]] == ["m1"]
    ceilings = {(b["scope"], b["kind"]): b for b in data.budgets(store, tasks)}
    assert ceilings[("fleet", "cost_usd")]["share"] == 0.25
    assert ceilings[("fleet", "tokens")]["spent"] == 1500


def test_merge_queue_reads_the_delivery_records(store: Store) -> None:
    assert data.merge_queue(store) == []
    first, second, third = add(store, "first"), add(store, "second"), add(store, "third")
    close(store, [first, second, third], "done")
    record(store, second, delivery={"state": "queued", "queued_at": "2026-01-02T00:00:00Z"})
    record(
        store,
        first,
        delivery={"state": "blocked", "queued_at": "2026-01-01T00:00:00Z", "reason": "red check"},
    )
    record(store, third, delivery={"state": "merged", "merged_at": "2026-01-03T00:00:00Z"})
    queue = data.merge_queue(store)
    assert [(e["id"], e["state"]) for e in queue] == [
        (first, "blocked"),
        (second, "queued"),
        (third, "merged"),
    ]
    assert queue[0]["reason"] == "red check"


def test_gates_list_closed_work_that_waits_for_approval(store: Store) -> None:
    assert data.gates(store) == []
    waits, approved, rejected, running = (add(store, t) for t in ("w", "a", "r", "open one"))
    close(store, [waits, approved, rejected], "done")
    one = [{"n": 1, "outcome": "success"}]
    record(store, waits, requires=["human", "role:reviewer"], attempts=one)
    record(
        store,
        waits,
        approvals=[{"verdict": "approved", "kind": "human", "by": "me", "work": 1}],
    )
    record(
        store,
        approved,
        requires=["human"],
        attempts=one,
        approvals=[{"verdict": "approved", "kind": "human", "work": 1}],
    )
    record(
        store,
        rejected,
        requires=["human"],
        attempts=one,
        approvals=[{"verdict": "rejected", "kind": "human", "work": 1, "reason": "no tests"}],
    )
    record(store, running, requires=["human"])
    gates = {g["id"]: g for g in data.gates(store)}
    assert set(gates) == {waits, rejected}
    assert gates[waits]["waiting_for"] == ["role:reviewer"]
    assert gates[rejected]["rejected"] and gates[rejected]["reason"] == "no tests"


def test_a_busy_port_is_refused(store: Store, fleet: Any, home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = fleet("dashboard", "--port", str(port))
    assert out.code == 1
    assert f"fleet: cannot serve on 127.0.0.1:{port}" in out.err and "hint:" in out.err
