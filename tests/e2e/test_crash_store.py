"""`kill -9` during the store's bulk paths and its packing: the store stays whole (`git fsck`)
and holds every committed task; a bulk import lands entirely or not at all."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from functools import partial
from hashlib import sha1
from pathlib import Path

import pytest

from supervisor.queue import mutations as queue
from supervisor.queue.mutations import NewTask
from supervisor.store import maintenance
from supervisor.store.store import BULK_FILES, Store
from tests.support.store_checks import assert_fsck_clean, git, head, tree_tasks
from tests.support.waiting import wait_for

BULK = 3 * BULK_FILES  # tasks in one import: written through fast-import


def jsonl(path: Path, tag: str, n: int) -> Path:
    path.write_text("".join(f'{{"id":"{tag}-{i:05x}","title":"{tag} {i}"}}\n' for i in range(n)))
    return path


def fleet_bg(home: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "supervisor", "--home", str(home), *args],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=home.parent,
    )


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    wait_for(partial(group_gone, proc.pid), 30, "the killed command's git to exit")


@pytest.mark.slow
def test_kill_9_during_a_bulk_import_leaves_none_or_all_of_it(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"seed {seed}")
    home = tmp_path / "home"
    store = Store.open(home)
    kept = {queue.create(store, NewTask(title=f"kept {n}")).id for n in range(3)}
    store.close()
    committed = tree_tasks(home)
    outcomes = []
    for trial in range(6):
        tag = f"b{trial}"
        source = jsonl(tmp_path / f"{tag}.jsonl", tag, BULK)
        before = head(home)
        proc = fleet_bg(home, "bd", "import", str(source))
        time.sleep(rng.uniform(0.1, 2.5))
        kill_group(proc)
        assert_fsck_clean(home)
        tasks = tree_tasks(home)
        mine = {i for i in tasks if i.startswith(f"{tag}-")}
        assert mine in (set(), {f"{tag}-{i:05x}" for i in range(BULK)}), f"seed {seed}"
        assert {i: tasks[i] for i in committed} == committed, f"seed {seed}"
        assert kept <= set(tasks)
        outcomes.append("none" if not mine else "all")
        if mine:
            assert git(home, "rev-parse", "refs/heads/main~1").strip() == before
        committed = tasks
        # The store takes writes at once, and its cache agrees with the tree.
        listing = ["bd", "list", "--all", "--limit", "0", "--json"]
        done = subprocess.run(
            [sys.executable, "-m", "supervisor", "--home", str(home), *listing],
            capture_output=True,
            text=True,
            check=True,
        )
        assert {r["id"] for r in json.loads(done.stdout)} == set(tasks)
    print(f"outcomes {outcomes}")
    store = Store.open(home)
    store.sweep()
    store.close()


def loose_store(home: Path, n: int = 300) -> dict[str, object]:
    """A store of n tasks written one by one: loose objects to pack."""
    store = Store.open(home)
    for k in range(n):
        queue.create(store, NewTask(title=f"loose {k}"))
    store.close()
    return tree_tasks(home)


@pytest.mark.slow
def test_kill_9_during_packing_leaves_every_task(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"seed {seed}")
    home = tmp_path / "home"
    tasks = loose_store(home)
    for trial in range(5):
        # more loose objects each time, then a gc killed at a random instant
        store = Store.open(home)
        for k in range(40):
            queue.create(store, NewTask(title=f"trial {trial} {k}"))
        store.close()
        tasks = tree_tasks(home)
        proc = fleet_bg(home, "store", "gc")
        time.sleep(rng.uniform(0.0, 0.4))
        kill_group(proc)
        assert_fsck_clean(home)
        assert tree_tasks(home) == tasks, f"trial {trial}, seed {seed}"
    store = Store.open(home)
    after = queue.create(store, NewTask(title="after the kills"))
    report = maintenance.gc(store)
    assert report["after"]["loose_objects"] == 0 and report["after"]["packs"] == 1
    assert after.id in tree_tasks(home)
    store.close()
    assert_fsck_clean(home)


def test_writes_go_on_while_the_supervisor_packs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    loose_store(home, 200)
    store = Store.open(home)
    packer = maintenance.Packer(store)
    assert packer.start()
    assert not maintenance.Packer(store).start()  # one packer at a time
    ids = [queue.create(store, NewTask(title=f"during {k}")).id for k in range(30)]
    packer.wait(60)
    assert packer.proc is None
    ids += [queue.create(store, NewTask(title=f"after {k}")).id for k in range(5)]
    store.close()
    assert_fsck_clean(home)
    assert set(ids) <= set(tree_tasks(home))
    usage = maintenance.usage(Store.open(home))
    assert usage["packs"] >= 1


def test_the_supervisor_packs_when_loose_objects_pile_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    loose_store(home, 100)
    store = Store.open(home)
    monkeypatch.setattr(maintenance, "LOOSE_LIMIT", 10)
    packer = maintenance.Packer(store)
    assert maintenance.due(store)
    assert packer.step(1000.0) == "started"
    wait_for(lambda: packer.step(1000.0) == "done", 60, "the packing to end")
    assert not maintenance.due(store)
    assert maintenance.usage(store)["loose_objects"] < 50
    assert packer.step(1001.0) == ""  # looks again only after CHECK_SECONDS
    store.close()
    assert_fsck_clean(home)


def test_bd_create_starts_packing_in_the_background_when_it_is_due(tmp_path: Path) -> None:
    home = tmp_path / "home"
    loose_store(home, 20)
    store = Store.open(home)
    assert not maintenance.due(store)
    # Loose objects in the folder the estimate samples, until packing is due.
    wanted, k = maintenance.LOOSE_LIMIT // 256 + 1, 0
    while maintenance.loose_estimate(store) <= maintenance.LOOSE_LIMIT:
        data = f"filler {k}".encode()
        k += 1
        if sha1(b"blob %d\0" % len(data) + data).hexdigest().startswith(maintenance.SAMPLE):
            store.git.write_object("blob", data)
    assert wanted <= maintenance.loose_estimate(store) // 256
    assert maintenance.due(store)
    made = subprocess.run(
        [sys.executable, "-m", "supervisor", "--home", str(home), "bd", "create", "last"],
        capture_output=True,
        text=True,
        check=True,
    )
    wait_for(lambda: maintenance.pack_count(store) >= 1, 60, "the background packing")
    wait_for(lambda: maintenance._take_lock(store) is not None, 60, "the packer to finish")
    assert made.stdout.strip() in tree_tasks(home)
    store.close()
    assert_fsck_clean(home)


def test_gc_after_a_packing_killed_mid_way_clears_the_locks_it_left(tmp_path: Path) -> None:
    home = tmp_path / "home"
    loose_store(home, 50)
    (home / ".git" / "packed-refs.lock").write_text("")  # what a `git gc` killed mid-way leaves
    (home / ".git" / "gc.pid").write_text("99999999 elsewhere")
    store = Store.open(home)
    try:
        report = maintenance.gc(store)
    finally:
        store.close()
    assert report["after"]["loose_objects"] == 0 and report["after"]["packs"] == 1
    assert not (home / ".git" / "packed-refs.lock").exists()
    assert_fsck_clean(home)
