"""`kill -9` in the middle of writes: the store is the old or the new state, never half of one.

Run as a script, this file is the writer the tests kill:
`python test_crash.py import|create HOME TAG ACKS` imports batches of `BATCH` tasks (or creates
tasks one at a time) in a loop, appending a line to ACKS after each write returns.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from supervisor.queue import mutations as queue
from supervisor.queue.mutations import NewTask
from supervisor.store.paths import task_path
from supervisor.store.store import STALE_LOCK_SECONDS, Store
from tests.support.store_checks import (
    assert_fsck_clean,
    assert_linear_and_well_formed,
    git,
    head,
    tree_tasks,
)
from tests.support.waiting import wait_for

BATCH = 100
TRIALS = 24
HOMES = 6


# --- the writer ------------------------------------------------------------------------------


def batch_ids(tag: str, n: int) -> list[str]:
    return [f"{tag}-{n}x{k}" for k in range(BATCH)]


def write_forever(mode: str, home: Path, tag: str, acks: Path) -> None:
    from supervisor.queue.transfer import import_file

    store = Store.open(home)
    for n in range(1_000_000):
        if mode == "import":
            source = acks.with_name(f"{tag}-{n}.jsonl")
            source.write_text(
                "".join(f'{{"id":"{i}","title":"{tag} batch {n}"}}\n' for i in batch_ids(tag, n))
            )
            import_file(store, source)
            line = str(n)
        else:
            line = queue.create(store, NewTask(title=f"{tag} task {n}", cwd=str(home))).id
        with acks.open("a") as out:
            out.write(line + "\n")


# --- helpers ---------------------------------------------------------------------------------


def group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in the process group."""
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except ProcessLookupError:
            continue
    return False


def acked(acks: Path) -> list[str]:
    text = acks.read_text() if acks.exists() else ""
    return [line for line in text.split("\n")[:-1]]  # a torn last line is not an ack


def start_writer(mode: str, home: Path, tag: str, acks: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, __file__, mode, str(home), tag, str(acks)],
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        stderr=subprocess.PIPE,
    )


def kill_mid_write(
    proc: subprocess.Popen[bytes], acks: Path, rng: random.Random, whole_group: bool
) -> None:
    wanted = rng.choice([0, 1, 1, 2])
    wait_for(lambda: len(acked(acks)) >= wanted or proc.poll() is not None, 60, "writes")
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    time.sleep(rng.uniform(0, 0.15))  # a random instant inside the next write
    if whole_group:  # its git children die with it, a ref lock or an index half-written
        os.killpg(proc.pid, signal.SIGKILL)
    else:  # the git it started finishes on its own
        proc.kill()
    proc.wait(timeout=10)
    wait_for(lambda: not group_alive(proc.pid), 30, "the writer's git children to exit")


def check_state(
    home: Path, mode: str, tag: str, acks: Path, before: dict[str, Any]
) -> dict[str, Any]:
    """The store is whole and holds exactly the acknowledged writes, plus at most the one
    that was interrupted, entirely."""
    assert_fsck_clean(home)
    assert git(home, "cat-file", "-t", "refs/heads/main").strip() == "commit"
    tasks = tree_tasks(home)
    assert set(before) <= set(tasks)
    assert {i: tasks[i] for i in before} == before
    mine = set(tasks) - set(before)
    done = acked(acks)
    if mode == "import":
        batches = {int(i.split("-")[1].split("x")[0]) for i in mine}
        assert batches in ({int(n) for n in done}, {int(n) for n in done} | {len(done)})
        assert mine == {i for n in batches for i in batch_ids(tag, n)}
        assert len(mine) % BATCH == 0
    else:
        assert set(done) <= mine and len(mine - set(done)) <= 1
        extra = mine - set(done)
        assert [tasks[i]["title"] for i in extra] in ([], [f"{tag} task {len(done)}"])
    return tasks


def homes_of(tmp_path: Path) -> Iterator[Path]:
    for n in range(TRIALS):
        yield tmp_path / f"home-{n % HOMES}"


# --- the tests -------------------------------------------------------------------------------


@pytest.mark.slow
def test_kill_9_at_random_instants_leaves_the_old_or_the_new_state(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"seed {seed}")  # shown when the test fails: random.Random(seed) replays the kills
    states: dict[Path, dict[str, Any]] = {}
    for trial, home in enumerate(homes_of(tmp_path)):
        mode = "create" if trial % 3 == 2 else "import"
        tag = f"c{trial}"
        acks = tmp_path / f"{tag}.acks"
        proc = start_writer(mode, home, tag, acks)
        kill_mid_write(proc, acks, rng, whole_group=trial % 2 == 0)
        note = f"trial {trial} ({mode}, seed {seed})"

        store = Store.open(home)  # the next command creates the home if the kill came first
        if head(home) is not None:
            tasks = check_state(home, mode, tag, acks, states.get(home, {}))
        else:
            assert acked(acks) == [], note
            tasks = {}
        store.cache.sync()
        assert {r["id"] for r in store.cache.select(None)} == set(tasks), note
        started = time.monotonic()
        after = queue.create(store, NewTask(title=f"after {tag}", cwd=str(tmp_path)))
        assert time.monotonic() - started < 10, f"{note}: the next write had to wait"
        store.close()
        stored = json.loads(git(home, "cat-file", "blob", f"refs/heads/main:{task_path(after.id)}"))
        states[home] = {**tasks, after.id: stored}
    for home, tasks in states.items():
        assert_linear_and_well_formed(home)
        swept_clean(home)
        assert tree_tasks(home) == tasks


def swept_clean(home: Path) -> None:
    """Once old enough, every leftover of the killed writers goes with `Store.sweep()`."""
    store = Store.open(home)
    old = time.time() - STALE_LOCK_SECONDS - 5
    leftovers = [
        *(home / "tmp").glob("index-*"),
        *(home / ".git" / "objects").glob("*/tmp_obj_*"),
        *(home / ".git").glob("tmp_ref_*"),
        *(home / ".git").rglob("*.lock"),
    ]
    for path in leftovers:
        os.utime(path, (old, old))
    assert sorted(store.sweep()) == sorted(str(p) for p in leftovers)
    assert list((home / "tmp").glob("index-*")) == []
    assert list((home / ".git" / "objects").glob("*/tmp_obj_*")) == []
    assert list((home / ".git").glob("tmp_ref_*")) == []
    assert_fsck_clean(home)
    store.close()


def dead_git_lock(store: Store, name: str = "refs/heads/main.lock") -> Path:
    """A lock as a git killed while moving `refs/heads/main` leaves it (it also locks HEAD)."""
    lock = store.git_dir / name
    lock.write_text((store.head() or "0" * 40) + "\n")
    return lock


@pytest.mark.parametrize("name", ["refs/heads/main.lock", "HEAD.lock"])
def test_a_ref_lock_left_by_a_killed_git_does_not_block_writes(
    store: Store, home: Path, name: str
) -> None:
    first = queue.create(store, NewTask(title="before", cwd=str(home)))
    dead_git_lock(store, name)
    started = time.monotonic()
    second = queue.create(store, NewTask(title="after", cwd=str(home)))
    assert time.monotonic() - started < 10
    assert not (store.git_dir / "refs/heads/main.lock").exists()
    assert set(tree_tasks(home)) == {first.id, second.id}
    assert_fsck_clean(home)


def test_a_fresh_ref_lock_is_left_to_its_git(store: Store) -> None:
    lock = dead_git_lock(store)
    assert store.clear_dead_ref_locks() == []
    assert lock.exists()
    assert store.clear_dead_ref_locks(patience=0) == [str(lock)]
    assert not lock.exists()


def test_a_ref_lock_whose_git_may_still_run_is_kept(store: Store, home: Path) -> None:
    queue.create(store, NewTask(title="one", cwd=str(home)))
    reader = subprocess.Popen(
        ["git", f"--git-dir={store.git_dir}", "cat-file", "--batch"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    wait_for(lambda: psutil.Process(reader.pid).name() == "git", 10, "git to start")
    locks = [dead_git_lock(store), dead_git_lock(store, "HEAD.lock")]
    assert store.clear_dead_ref_locks(patience=0) == []
    assert all(lock.exists() for lock in locks)
    assert reader.stdin is not None
    reader.stdin.close()
    reader.wait(timeout=10)
    assert store.clear_dead_ref_locks(patience=0) == [str(lock) for lock in locks]
    assert not any(lock.exists() for lock in locks)


def test_a_ref_lock_a_live_writer_holds_is_kept_however_old(store: Store, home: Path) -> None:
    queue.create(store, NewTask(title="one", cwd=str(home)))
    lock = dead_git_lock(store)
    hold = "import fcntl, os, sys, time; fcntl.flock(os.open(sys.argv[1], 0), 2); time.sleep(60)"
    holder = subprocess.Popen(  # a writer stopped (Ctrl-Z) while it moves the ref
        [sys.executable, "-c", hold, str(lock)], start_new_session=True
    )
    try:
        wait_for(lambda: not lock_is_free(lock), 10, "the writer to hold its lock")
        assert store.clear_dead_ref_locks(patience=0) == []
        assert lock.exists()
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    assert store.clear_dead_ref_locks(patience=0) == [str(lock)]


def lock_is_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_sweep_removes_old_leftovers_and_keeps_fresh_ones(store: Store, home: Path) -> None:
    queue.create(store, NewTask(title="one", cwd=str(home)))
    old = time.time() - STALE_LOCK_SECONDS - 5
    objects = next(p for p in (store.git_dir / "objects").iterdir() if len(p.name) == 2)
    stale = [
        home / "tmp" / "index-dead1",
        home / "tmp" / "index-dead1.lock",
        objects / "tmp_obj_dead1",
        store.git_dir / "tmp_ref_dead1",
        store.git_dir / "config.lock",
        dead_git_lock(store),
        dead_git_lock(store, "HEAD.lock"),
    ]
    fresh = [home / "tmp" / "index-live1", objects / "tmp_obj_live1"]
    for path in stale + fresh:
        path.write_text("leftover\n")
    for path in stale:
        os.utime(path, (old, old))
    removed = store.sweep()
    assert sorted(removed) == sorted(str(p) for p in stale)
    assert [p for p in stale if p.exists()] == []
    assert all(p.exists() for p in fresh)
    assert_fsck_clean(home)
    queue.create(store, NewTask(title="two", cwd=str(home)))
    assert len(tree_tasks(home)) == 2


if __name__ == "__main__":
    write_forever(sys.argv[1], Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))
