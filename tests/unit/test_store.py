"""The store: its home, one commit per mutation, compare-and-swap, the derived cache."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, fleet_process

from supervisor.errors import BadInput, StoreError
from supervisor.model import Task
from supervisor.queue import configure, transfer
from supervisor.queue import mutations as queue
from supervisor.queue.mutations import NewTask
from supervisor.store.git import Git
from supervisor.store.paths import task_path
from supervisor.store.store import Change, Snapshot, Store, dump_task, user_actor
from tests.support.store_checks import (
    assert_fsck_clean,
    assert_linear_and_well_formed,
    assert_well_formed,
    commits,
    git,
    head,
    logged,
    message,
    tree_tasks,
)


def new(title: str, **fields: Any) -> NewTask:
    return NewTask(title=title, cwd=str(Path.cwd()), **fields)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the home --------------------------------------------------------------------------------


def test_init_creates_a_private_bare_repository(fleet: Any, home: Path) -> None:
    result: Result = fleet("init")
    assert result.code == 0, result.err
    assert str(home) in result.out
    assert mode(home) == 0o700
    assert git(home, "rev-parse", "--is-bare-repository").strip() == "true"
    assert git(home, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert git(home, "config", "--get", "core.fsync").strip() == "all"
    assert git(home, "config", "--get", "gc.auto").strip() == "0"
    assert head(home) is None  # creating the home commits nothing


def test_init_is_idempotent(fleet: Any, home: Path) -> None:
    assert fleet("init").code == 0
    fleet("bd", "create", "keep me")
    before = (head(home), sorted(p.name for p in home.iterdir()), git(home, "config", "-l"))
    again = fleet("init")
    assert again.code == 0, again.err
    assert (head(home), sorted(p.name for p in home.iterdir()), git(home, "config", "-l")) == before
    assert [t["title"] for t in tree_tasks(home).values()] == ["keep me"]


def test_every_command_creates_the_home_on_first_use(fleet: Any, home: Path) -> None:
    assert not home.exists()
    result = fleet("bd", "list", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out) == []
    assert mode(home) == 0o700
    assert (home / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"


def test_processes_creating_one_home_at_once_share_it(home: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "supervisor", "init"],
            env={**os.environ, "FLEET_HOME": str(home)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    codes = [p.wait(timeout=60) for p in procs]
    assert codes == [0, 0, 0, 0], [p.stderr.read() for p in procs if p.stderr]
    assert [p.name for p in home.iterdir() if p.name.startswith(".git.init")] == []
    created = fleet_process("bd", "create", "after the race", home=home)
    assert created.code == 0, created.err
    assert_fsck_clean(home)


def test_an_existing_directory_becomes_private(tmp_path: Path, fleet: Any) -> None:
    place = tmp_path / "made-by-hand"
    place.mkdir(mode=0o755)
    place.chmod(0o755)
    assert fleet("--home", str(place), "init").code == 0
    assert mode(place) == 0o700


@pytest.mark.parametrize("unsafe", [0o770, 0o707, 0o777])
def test_a_home_writable_by_others_is_refused(fleet: Any, home: Path, unsafe: int) -> None:
    home.mkdir()
    home.chmod(unsafe)
    result = fleet("bd", "create", "nope")
    assert result.code == 1
    assert f"the fleet home {home} is writable by group or others" in result.err
    assert f"chmod 700 {home}" in result.err
    assert not (home / ".git").exists()
    assert mode(home) == unsafe


def test_an_existing_home_turned_unsafe_is_refused(fleet: Any, home: Path) -> None:
    assert fleet("bd", "create", "one").code == 0
    before = head(home)
    home.chmod(0o775)
    result = fleet("bd", "create", "two")
    assert result.code == 1
    assert "writable by group or others" in result.err
    assert head(home) == before


def test_a_home_of_another_user_is_refused(
    fleet: Any, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert fleet("init").code == 0
    other = os.getuid() + 1
    monkeypatch.setattr(os, "getuid", lambda: other)
    result = fleet("bd", "list")
    assert result.code == 1
    assert f"the fleet home {home} belongs to another user (uid {home.stat().st_uid})" in result.err
    assert "--home DIR" in result.err and f"chown -R $USER {home}" in result.err
    with pytest.raises(StoreError, match="belongs to another user"):
        Store.open(home)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a directory to another user")
def test_a_home_really_owned_by_another_user_is_refused(fleet: Any, home: Path) -> None:
    home.mkdir(mode=0o700)
    os.chown(home, 54321, 54321)
    result = fleet("init")
    assert result.code == 1
    assert "belongs to another user (uid 54321)" in result.err
    assert not (home / ".git").exists()


def test_a_home_that_cannot_be_made_is_refused(fleet: Any, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    result = fleet("--home", str(tmp_path / "a-file" / "home"), "init")
    assert result.code == 1
    assert f"cannot create the fleet home {tmp_path / 'a-file' / 'home'}" in result.err
    assert "hint: point `fleet --home DIR`" in result.err


def test_home_option_wins_over_the_environment(fleet: Any, home: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    created = fleet("--home", str(other), "bd", "create", "over there")
    assert created.code == 0, created.err
    task_id = created.out.strip()
    assert list(tree_tasks(other)) == [task_id]
    assert not home.exists()
    assert fleet("--home", str(other), "bd", "show", task_id).code == 0
    missing = fleet("bd", "show", task_id)
    assert missing.code == 2 and f"task {task_id} does not exist" in missing.err


def test_default_home_is_dot_fleet_in_the_user_home(
    fleet: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLEET_HOME")
    result = fleet("init")
    assert result.code == 0, result.err
    expected = tmp_path / "user-home" / ".fleet"
    assert f"fleet home: {expected}" in result.out
    assert mode(expected) == 0o700


# --- one commit per mutation -----------------------------------------------------------------


def test_every_mutation_is_one_commit_with_its_trailers(
    store: Store, home: Path, tmp_path: Path
) -> None:
    actor = user_actor()
    seen: list[str] = []

    def one_commit(event: str, tasks: list[str], summary: str) -> None:
        history = commits(home)
        assert history[1:] == seen[::-1], "exactly one new commit on top of the last"
        seen.append(history[0])
        first_line, trailers = message(home, history[0])
        assert first_line == summary
        assert trailers == {
            **({"Fleet-Task": tasks} if tasks else {}),
            "Fleet-Event": [event],
            "Fleet-Actor": [actor],
        }
        assert_well_formed(logged(home, history[0]))

    a = queue.create(store, new("First task"))
    one_commit("created", [a.id], f"create {a.id}: First task")
    b = queue.create(store, new("Second task", priority=1))
    one_commit("created", [b.id], f"create {b.id}: Second task")
    queue.update(store, b.id, {"priority": 0}, add_labels=["x"])
    one_commit("updated", [b.id], f"update {b.id}: labels, priority")
    queue.add_dep(store, b.id, a.id)
    one_commit("dep_added", [b.id], f"link {b.id} -> {a.id} (blocks)")
    queue.remove_dep(store, b.id, a.id)
    one_commit("dep_removed", [b.id], f"unlink {b.id} -> {a.id}")
    queue.close(store, [a.id, b.id], "done")
    one_commit("closed", [a.id, b.id], f"close {a.id} {b.id}: done")
    queue.reopen(store, a.id)
    one_commit("reopened", [a.id], f"reopen {a.id}")
    configure.set_values(store, ["max_concurrent=5", "isolation=none"])
    one_commit("config_changed", [], "config: max_concurrent=5, isolation=none")
    assert logged(home, seen[-1]).paths == {"config.toml"}
    jsonl = tmp_path / "two.jsonl"
    jsonl.write_text(
        '{"id":"im-0001","title":"one"}\n{"id":"im-0002","title":"two","priority":4}\n'
    )
    transfer.import_file(store, jsonl)
    one_commit("imported", ["im-0001", "im-0002"], "import 2 tasks from two.jsonl")
    assert "2 created, 0 updated, 0 unchanged" in git(home, "log", "-1", "--format=%b")
    assert_fsck_clean(home)


def test_a_mutation_that_changes_nothing_commits_nothing(store: Store, home: Path) -> None:
    task = queue.create(store, new("Stable", labels=["a"]))
    created = head(home)
    queue.update(store, task.id, {"priority": 2}, add_labels=["a"])
    queue.reopen(store, task.id)
    assert head(home) == created
    configure.set_values(store, ["max_concurrent=3"])  # the default, but now written down
    configured = head(home)
    assert configured != created
    configure.set_values(store, ["max_concurrent=3"])
    assert head(home) == configured
    queue.close(store, [task.id])
    closed = head(home)
    queue.close(store, [task.id])
    assert head(home) == closed
    assert len(commits(home)) == 3
    assert message(home, closed or "")[1]["Fleet-Event"] == ["closed"]


def test_a_failing_mutation_writes_nothing(store: Store, home: Path) -> None:
    queue.create(store, new("Only one"))
    before = head(home)
    objects_before = git(home, "count-objects", "-v")

    def build(snap: Snapshot) -> tuple[Change, None]:
        raise BadInput("refused", hint="nothing")

    with pytest.raises(BadInput):
        store.mutate(build)
    assert head(home) == before
    assert git(home, "count-objects", "-v") == objects_before


def test_a_task_that_would_not_read_back_is_never_written(store: Store, home: Path) -> None:
    task = queue.create(store, new("Valid"))
    before = head(home)

    def build(snap: Snapshot) -> tuple[Change, None]:
        broken = snap.need(task.id)
        broken.max_seconds = -5.0
        change = Change("break it", "updated")
        change.put(broken)
        return change, None

    with pytest.raises(BadInput, match=f"task {task.id} would not be valid: max_seconds"):
        store.mutate(build)
    assert head(home) == before
    assert tree_tasks(home)[task.id]["title"] == "Valid"


def test_a_task_is_one_file_named_by_its_id(store: Store, home: Path) -> None:
    task = queue.create(store, new("Filed", description="text"))
    listing = git(home, "ls-tree", "-r", "--name-only", "refs/heads/main").split()
    assert listing == ["format", task_path(task.id)]
    stored = git(home, "cat-file", "blob", f"refs/heads/main:{task_path(task.id)}")
    assert stored.encode() == dump_task(task)
    assert json.loads(stored)["description"] == "text"


# --- compare-and-swap ------------------------------------------------------------------------


def test_a_mutation_whose_ref_moved_is_reapplied_on_the_new_state(store: Store, home: Path) -> None:
    base = queue.create(store, new("Base"))
    other = Store.open(home)
    runs: list[str | None] = []

    def build(snap: Snapshot) -> tuple[Change, int]:
        runs.append(snap.commit)
        if len(runs) == 1:  # another writer commits between this snapshot and its publish
            queue.update(other, base.id, {"priority": 0}, actor="intruder@test")
        task = snap.need(base.id)
        task.labels = [*task.labels, "mine"]
        change = Change(f"label {base.id}", "updated")
        change.put(task)
        return change, len(runs)

    assert store.mutate(build, actor="me@test") == 2
    history = commits(home)
    assert len(history) == 3
    assert runs == [history[2], history[1]]  # re-read on top of the intruder's commit
    assert message(home, history[1])[1]["Fleet-Actor"] == ["intruder@test"]
    assert message(home, history[0])[1]["Fleet-Actor"] == ["me@test"]
    final = tree_tasks(home)[base.id]
    assert final["priority"] == 0 and final["labels"] == ["mine"]
    other.close()


def test_a_writer_whose_turn_never_comes_goes_ahead_on_the_cas_alone(
    store: Store, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("supervisor.store.store.WRITER_TURN_SECONDS", 0.2)
    holder = os.open(home / "tmp" / "writers.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)  # a writer stopped (Ctrl-Z) in the middle of its turn
    try:
        started = time.monotonic()
        task = queue.create(store, new("Goes ahead"))
        assert 0.2 <= time.monotonic() - started < 5
    finally:
        os.close(holder)
    assert list(tree_tasks(home)) == [task.id]


def test_a_compare_and_swap_on_a_stale_commit_is_refused(store: Store, home: Path) -> None:
    queue.create(store, new("One"))
    old = head(home)
    queue.create(store, new("Two"))
    now = head(home)
    assert old is not None and now is not None
    assert store.git.cas_ref(old, old) is False
    assert head(home) == now
    assert store.git.cas_ref(old, None) is False
    assert head(home) == now
    assert store.git.cas_ref(old, now) is True
    assert head(home) == old


def test_writes_never_touch_a_shared_index_or_work_tree(store: Store, home: Path) -> None:
    for n in range(3):
        queue.create(store, new(f"Task {n}"))
    assert not (home / ".git" / "index").exists()
    assert sorted(p.name for p in home.iterdir()) == [
        ".git",
        "audit",
        "cache",
        "live",
        "logs",
        "tmp",
    ]
    assert list((home / "tmp").glob("index-*")) == []  # each private index goes with its write


def test_a_packed_ref_still_reads_and_moves(store: Store, home: Path) -> None:
    first = queue.create(store, new("Before packing"))
    git(home, "pack-refs", "--all")
    assert not (home / ".git" / "refs" / "heads" / "main").exists()
    assert store.head() == head(home)
    second = queue.create(store, new("After packing"))
    assert set(tree_tasks(home)) == {first.id, second.id}
    assert store.head() == head(home)


# --- the derived cache -----------------------------------------------------------------------


def cache_rows(store: Store) -> list[dict[str, Any]]:
    store.cache.sync()
    return store.cache.select(None)


def test_deleting_the_cache_loses_nothing(home: Path) -> None:
    store = Store.open(home)
    ids = [queue.create(store, new(f"Task {n}", priority=n % 5)).id for n in range(12)]
    queue.close(store, ids[:3], "done")
    configure.set_values(store, ["max_concurrent=7"])
    before = cache_rows(store)
    store.close()
    shutil.rmtree(home / "cache")
    again = Store.open(home)
    assert cache_rows(again) == before
    assert sorted(r["id"] for r in before) == sorted(ids)
    assert configure.current(again).max_concurrent == 7
    assert again.cache.count() == 12
    again.close()


def copy_cache(store: Store, to: Path) -> None:
    with sqlite3.connect(to) as target:
        store.cache.db.backup(target)


def test_a_cache_at_an_old_commit_catches_up_from_the_diff(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store.open(home)
    keep, change, drop = (queue.create(store, new(f"Task {n}")).id for n in range(3))
    old_commit = store.cache.sync()
    copy_cache(store, tmp_path / "old.sqlite")
    queue.update(store, change, {"title": "Changed", "priority": 0})
    queue.close(store, [keep], "kept")

    def delete(snap: Snapshot) -> tuple[Change, None]:
        return Change(f"delete {drop}", "updated", [drop], {task_path(drop): None}), None

    store.mutate(delete)
    added = queue.create(store, new("Added")).id
    configure.set_values(store, ["max_attempts=9"])
    store.close()

    cache_file = home / "cache" / "tasks.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{cache_file}{suffix}").unlink(missing_ok=True)
    shutil.copy(tmp_path / "old.sqlite", cache_file)
    calls: list[tuple[str, ...]] = []
    real_out = Git.out

    def spy(self: Git, *args: str, **kwargs: Any) -> str:
        calls.append(args)
        return real_out(self, *args, **kwargs)

    db = sqlite3.connect(cache_file)
    assert db.execute("SELECT value FROM meta WHERE key='commit'").fetchone() == (old_commit,)
    db.close()
    monkeypatch.setattr(Git, "out", spy)
    stale = Store.open(home)
    rows = {r["id"]: r for r in cache_rows(stale)}
    diffs = [c for c in calls if c[0] == "diff-tree"]
    assert [c[:4] for c in diffs] == [("diff-tree", "-r", "--no-renames", old_commit)]
    assert diffs[0][4] == head(home)
    assert not [c for c in calls if c[0] == "ls-tree"]
    assert set(rows) == {keep, change, added}
    assert rows[change]["title"] == "Changed" and rows[change]["priority"] == 0
    assert rows[keep]["status"] == "closed"
    assert configure.current(stale).max_attempts == 9
    assert rows == {i: tree_tasks(home)[i] for i in rows}
    stale.close()


def test_a_cache_of_a_commit_the_repository_lacks_is_rebuilt(home: Path) -> None:
    store = Store.open(home)
    ids = {queue.create(store, new(f"Task {n}")).id for n in range(3)}
    store.cache.db.execute("UPDATE meta SET value=? WHERE key='commit'", ("1" * 40,))
    store.close()
    again = Store.open(home)
    assert {r["id"] for r in cache_rows(again)} == ids
    assert again.cache._meta("commit") == head(home)
    assert {queue.create(again, new("One more")).id} - ids
    again.close()


def test_a_corrupt_cache_file_is_rebuilt(home: Path) -> None:
    store = Store.open(home)
    ids = {queue.create(store, new(f"Task {n}")).id for n in range(3)}
    store.close()
    cache_file = home / "cache" / "tasks.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(f"{cache_file}{suffix}").unlink(missing_ok=True)
    cache_file.write_bytes(b"this is not a database" * 100)
    again = Store.open(home)
    assert {r["id"] for r in cache_rows(again)} == ids
    again.close()


def test_a_cache_written_before_a_reboot_is_rebuilt(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boot = tmp_path / "boot_id"
    boot.write_text("first-boot\n")
    monkeypatch.setattr("supervisor.store.cache.BOOT_ID", boot)
    store = Store.open(home)
    ids = {queue.create(store, new(f"Task {n}")).id for n in range(3)}
    assert store.cache.db.execute("PRAGMA synchronous").fetchone() == (0,)  # OFF
    # damage of the kind an OS crash could leave in a cache written without fsync
    store.cache.db.execute("DELETE FROM tasks WHERE id=?", (sorted(ids)[0],))
    store.close()
    same_boot = Store.open(home)
    assert len(cache_rows(same_boot)) == 2  # within one boot the cache is trusted
    same_boot.close()
    boot.write_text("second-boot\n")
    rebooted = Store.open(home)
    assert {r["id"] for r in cache_rows(rebooted)} == ids
    assert rebooted.cache._meta("boot") == "second-boot"
    rebooted.close()


def test_where_the_boot_is_unknown_the_cache_is_written_with_fsync(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("supervisor.store.cache.BOOT_ID", tmp_path / "no-such-file")
    store = Store.open(home)
    queue.create(store, new("Task"))
    assert store.cache.db.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    assert store.cache._meta("boot") == ""
    store.close()


def test_a_second_store_sees_the_first_ones_writes(home: Path) -> None:
    one, two = Store.open(home), Store.open(home)
    task = queue.create(one, new("Seen"))
    assert two.get(task.id).title == "Seen"
    queue.close(two, [task.id], "by two")
    assert one.get(task.id).status == "closed"
    one.close()
    two.close()


def test_the_store_passes_a_strict_fsck(store: Store, home: Path, tmp_path: Path) -> None:
    ids = [queue.create(store, new(f"Task {n}", labels=["l"])).id for n in range(5)]
    queue.add_dep(store, ids[1], ids[0])
    queue.update(store, ids[2], {"description": "ünïcode ✓"})
    queue.close(store, ids[3:])
    out = tmp_path / "export.jsonl"
    out.write_text(transfer.export_text(store))
    other = Store.open(tmp_path / "second-home")
    transfer.import_file(other, out)
    assert {t: Task.from_dict(d) for t, d in tree_tasks(tmp_path / "second-home").items()} == {
        t: Task.from_dict(d) for t, d in tree_tasks(home).items()
    }
    for place in (home, tmp_path / "second-home"):
        assert_fsck_clean(place)
        assert len(assert_linear_and_well_formed(place)) == len(commits(place))
    other.close()
