"""Many processes writing one store at once: nothing lost, nothing doubled, one linear history.

Run as a script, this file is a writer:
`python test_concurrency.py create HOME NAME COUNT OUT` creates COUNT tasks;
`python test_concurrency.py update|close HOME NAME STOP OUT` labels (and re-prioritises) or
closes random tasks until the file STOP exists, MUTATIONS at most.
Each appends one line to OUT per write.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from supervisor.queue import mutations as queue
from supervisor.queue.mutations import NewTask
from supervisor.store.store import Store
from tests.support.store_checks import assert_fsck_clean, assert_linear_and_well_formed, tree_tasks

CREATORS = 8
PER_CREATOR = 100
MUTATIONS = 40  # at most, per mutator


# --- the writers -----------------------------------------------------------------------------


def create(store: Store, name: str, count: int, out: Path) -> None:
    for n in range(count):
        task = queue.create(store, NewTask(title=f"{name} {n}", cwd=str(out.parent)), name)
        with out.open("a") as sink:
            sink.write(f"{task.id}\n")


def mutate_until(store: Store, mode: str, name: str, stop: Path, out: Path) -> None:
    rng = random.Random(name)
    n = 0
    while not stop.exists() and n < MUTATIONS:
        store.cache.sync()
        candidates = [r["id"] for r in store.cache.select(["open"] if mode == "close" else None)]
        if not candidates:
            time.sleep(0.01)  # the creators have not written anything yet
            continue
        task_id = rng.choice(candidates)
        if mode == "close":
            queue.close(store, [task_id], f"closed by {name} #{n}", name)
            line = f"{task_id} closed by {name} #{n}"
        else:
            priority = rng.randrange(5)
            queue.update(store, task_id, {"priority": priority}, [f"u{n}"], actor=name)
            line = f"{task_id} u{n} {priority}"
        with out.open("a") as sink:
            sink.write(line + "\n")
        n += 1


def main(argv: list[str]) -> None:
    mode, home, name = argv[0], Path(argv[1]), argv[2]
    store = Store.open(home)
    if mode == "create":
        create(store, name, int(argv[3]), Path(argv[4]))
    else:
        mutate_until(store, mode, name, Path(argv[3]), Path(argv[4]))


# --- the test --------------------------------------------------------------------------------


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start a writer; any still running when the test ends is killed."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, __file__, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def finish(proc: subprocess.Popen[bytes], timeout: float) -> None:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()


def lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_eight_creators_and_two_mutators_lose_nothing(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    home = tmp_path / "home"
    Store.open(home).close()
    stop = tmp_path / "stop"
    creators = [
        spawn("create", str(home), f"creator-{k}@test", str(PER_CREATOR), str(tmp_path / f"c{k}"))
        for k in range(CREATORS)
    ]
    mutators = [
        spawn(mode, str(home), f"{mode}r@test", str(stop), str(tmp_path / mode))
        for mode in ("update", "close")
    ]
    for proc in creators:
        finish(proc, 300)
    stop.touch()
    for proc in mutators:
        finish(proc, 60)

    made = {k: [row[0] for row in lines(tmp_path / f"c{k}")] for k in range(CREATORS)}
    ids = [i for k in made for i in made[k]]
    assert len(ids) == CREATORS * PER_CREATOR
    assert len(set(ids)) == len(ids), "an id was handed out twice"
    tasks = tree_tasks(home)
    assert set(tasks) == set(ids), "every task present exactly once, no other"
    titles = Counter(t["title"] for t in tasks.values())
    assert titles == Counter(f"creator-{k}@test {n}" for k in made for n in range(PER_CREATOR))

    updates, closes = lines(tmp_path / "update"), lines(tmp_path / "close")
    assert len(updates) >= 5 and len(closes) >= 5, (len(updates), len(closes))
    last_priority: dict[str, int] = {}
    for task_id, label, priority in updates:
        assert label in tasks[task_id]["labels"], f"the update {label} of {task_id} was lost"
        last_priority[task_id] = int(priority)
    for task_id, priority in last_priority.items():
        assert tasks[task_id]["priority"] == priority
    closed = [row[0] for row in closes]
    assert len(set(closed)) == len(closed)
    for task_id, *_, number in closes:
        assert tasks[task_id]["status"] == "closed"
        assert tasks[task_id]["close_reason"] == f"closed by closer@test {number}"
    assert {i for i, t in tasks.items() if t["status"] == "closed"} == set(closed)

    history = assert_linear_and_well_formed(home)
    assert len(history) == len(ids) + len(updates) + len(closes)
    events = Counter(e.trailers["Fleet-Event"][0] for e in history)
    assert events == {"created": len(ids), "updated": len(updates), "closed": len(closes)}
    for entry in history:
        if entry.trailers["Fleet-Event"] == ["created"]:
            (task_id,) = entry.trailers["Fleet-Task"]
            (actor,) = entry.trailers["Fleet-Actor"]
            assert task_id in made[int(actor.split("-")[1].split("@")[0])]
    assert_fsck_clean(home)

    store = Store.open(home)
    store.cache.sync()
    assert {r["id"]: r for r in store.cache.select(None)} == tasks
    store.close()


if __name__ == "__main__":
    main(sys.argv[1:])
