"""`fleet events --follow` as real processes beside a real supervisor: a 50-task run is seen
event by event, exactly once, across a follower stopped and started again on its cursor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from supervisor.queue import approvals
from supervisor.store.store import Store
from tests.conftest import fleet_process
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow
TASKS = 50


def follower(home: Path, cursor: Path, out: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "supervisor", "events", "--follow", "--json", "--cursor"]
    env = {**os.environ, "FLEET_HOME": str(home)}
    with out.open("ab") as sink:
        return subprocess.Popen([*argv, str(cursor)], env=env, stdout=sink, stderr=sink)


def lines(*paths: Path) -> list[dict[str, Any]]:
    found = []
    for path in paths:
        if path.exists():
            found += [json.loads(x) for x in path.read_text().splitlines() if x.startswith("{")]
    return found


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)  # our own child: it stops between two events
    assert proc.wait(timeout=30) == 0


def test_follow_sees_every_event_of_a_50_task_run_once_across_a_restart(
    home: Path, tmp_path: Path
) -> None:
    assert fleet_process("config", "set", "coder=shell", "max_concurrent=8", home=home).code == 0
    cursor, first, second = tmp_path / "cursor", tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a = follower(home, cursor, first)
    env = {**os.environ, "FLEET_HOME": str(home)}
    sup = subprocess.Popen(
        [sys.executable, "-m", "supervisor", "supervisor", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    ids: list[str] = []
    try:
        for n in range(TASKS):
            made = fleet_process(
                "bd", "create", f"t{n}", "--command", "true", "--cwd", str(tmp_path), home=home
            )
            assert made.code == 0, made.err
            ids.append(made.out.strip())
            if n == TASKS // 2:  # the follower stops mid-run and starts again on its cursor
                wait_for(lambda: len(lines(first)) >= 20, 60, "the first follower's events")
                stop(a)
                a = follower(home, cursor, second)

        def closed() -> bool:
            return sum(1 for e in lines(first, second) if e["type"] == "task.closed") >= TASKS

        wait_for(closed, 120, "every task closed, as the followers saw it")
        # an event committed now reaches the follower at once (the figure is in the output;
        # the target, 200 ms, is measured by scripts/bench, not asserted here)
        store = Store.open(home)
        for n in range(5):
            approvals.emit(store, "probe.sent", data=json.dumps({"n": n}))
            sent = time.monotonic()
            wait_for(
                lambda n=n: any(  # type: ignore[misc]
                    e["type"] == "probe.sent" and e["data"]["n"] == n for e in lines(second)
                ),
                30,
                "the probe event",
            )
            print(f"commit -> printed: {1000 * (time.monotonic() - sent):.0f} ms")
        store.close()
    finally:
        stop(a)
        fleet_process("supervisor", "stop", "--now", "--timeout", "60", home=home)
        sup.wait(timeout=60)
    seen = lines(first, second)
    assert len({e["id"] for e in seen}) == len(seen), "an event was printed twice"
    counts = Counter((e["type"], e["task"]) for e in seen)
    for task_id in ids:
        for kind in ("task.created", "task.claimed", "attempt.ended", "task.closed"):
            assert counts[(kind, task_id)] == 1, (kind, task_id, counts[(kind, task_id)])
    # and the followers together printed exactly what the history holds, in its order
    history = [json.loads(x) for x in fleet_process("events", "--json", home=home).out.splitlines()]
    assert [e["id"] for e in seen] == [e["id"] for e in history]
