"""The store format: a store written by the previous release (the code at `PREVIOUS`, run as it
shipped) is migrated on first use, atomically, with a backup ref; a newer store is refused."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from supervisor.store.paths import FORMAT, moved, run_file, task_path
from tests.conftest import REPO, fleet_process
from tests.support.store_checks import (
    assert_fsck_clean,
    git,
    head,
    tree_tasks,
)
from tests.support.waiting import wait_for

PREVIOUS = "bac0b7e"  # the last release whose store had no format (format 1)
RESULT = (
    "echo hello from the agent;"
    """ echo '{"status":"done","summary":"ok"}' > $FLEET_RESULT_FILE"""
)


@pytest.fixture(scope="module")
def previous(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's code, exported from this repository's history."""
    out = tmp_path_factory.mktemp("previous")
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", PREVIOUS, "supervisor", "coders"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        pytest.skip(f"this checkout lacks commit {PREVIOUS}")
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    return out


def old_fleet(code: Path, home: Path, *args: str, cwd: Path | None = None) -> str:
    """Run the previous release's `fleet ARGS`; its stdout. Never from this checkout: the
    current directory comes first on `python -m`'s path, before PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": str(code), "FLEET_HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-m", "supervisor", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or code,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout.strip()


def old_store(code: Path, home: Path, tmp_path: Path) -> dict[str, str]:
    """A store written by the previous release: tasks, a dependency, a config change and an
    attempt record from its supervisor. Returns the task ids by name."""
    cwd = tmp_path / "work"
    cwd.mkdir(exist_ok=True)
    ran = old_fleet(
        code, home, "bd", "create", "ran", "--coder", "shell", "--command", RESULT, cwd=cwd
    )
    waits = old_fleet(code, home, "bd", "create", "waits", "-p", "1", cwd=cwd)
    done = old_fleet(code, home, "bd", "create", "done", "-l", "x", cwd=cwd)
    old_fleet(code, home, "bd", "dep", "add", waits, done)
    old_fleet(code, home, "bd", "close", done)
    old_fleet(code, home, "config", "set", "max_concurrent=3")
    old_fleet(code, home, "supervisor", "run", "--until-idle", cwd=cwd)
    return {"ran": ran, "waits": waits, "done": done}


def listing(home: Path, rev: str = "refs/heads/main") -> dict[str, str]:
    """path -> blob of every file of `rev`."""
    out = git(home, "ls-tree", "-r", rev)
    return {line.split("\t")[1]: line.split()[2] for line in out.splitlines()}


def test_a_store_of_the_previous_release_is_migrated_on_first_use(
    previous: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    ids = old_store(previous, home, tmp_path)
    before_head = head(home)
    before = listing(home)
    assert "format" not in before and f"tasks/{ids['ran']}.json" in before
    tasks_before = tree_tasks(home)
    views = [
        ("bd", "ready", "--json"),
        ("bd", "list", "--all", "--json"),
        ("bd", "show", ids["waits"], "--json"),
    ]
    seen_before = [old_fleet(previous, home, *view) for view in views]
    assert head(home) == before_head

    listed = fleet_process("bd", "list", "--all", "--json", home=home)
    assert listed.code == 0, listed.err
    assert {r["id"] for r in json.loads(listed.out)} == set(ids.values())

    # One commit on top of the old head, every file moved by its blob, the format written.
    assert git(home, "rev-parse", "refs/heads/main~1").strip() == before_head
    after = listing(home)
    assert after.pop("format") == git(home, "hash-object", "--stdin", input="2\n").strip()
    assert after == {moved(path, 1): blob for path, blob in before.items()}
    assert tree_tasks(home) == tasks_before
    backups = git(home, "for-each-ref", "--format=%(refname) %(objectname)", "refs/fleet/backup")
    assert backups.split() == [f"refs/fleet/backup/format-1-{before_head[:12]}", before_head]
    assert_fsck_clean(home)
    assert git(home, "rev-list", "--merges", "refs/heads/main") == ""
    trailers = git(home, "log", "-1", "--format=%(trailers:only,unfold)", "refs/heads/main")
    assert "Fleet-Event: migrated" in trailers and "Fleet-Task" not in trailers

    # Everything reads and writes on the migrated store.
    log = fleet_process("task", ids["ran"], "log", "--raw", home=home)
    assert log.code == 0 and "hello from the agent" in log.out, log
    history = fleet_process("log", "--task", ids["done"], "--json", home=home)
    events = [e["event"] for e in json.loads(history.out)]
    assert "created" in events and "closed" in events  # across the migration
    for view, old in zip(views, seen_before, strict=True):  # what the old fleet showed is there
        assert_kept(json.loads(old), json.loads(fleet_process(*view, home=home).out), view)
    created = fleet_process("bd", "create", "new one", home=home)
    assert created.code == 0, created.err
    new_id = created.out.strip()
    assert task_path(new_id) in listing(home)
    assert run_file(ids["ran"], 1, "output.log") in listing(home)
    assert fleet_process("config", "get", "max_concurrent", home=home).out.strip() == "3"
    again = fleet_process("store", "migrate", home=home)
    assert again.code == 0 and "already at format 2" in again.out
    assert_fsck_clean(home)


def test_store_migrate_by_hand(previous: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    old_store(previous, home, tmp_path)
    old_head = head(home)
    out = fleet_process("store", "migrate", "--json", home=home)
    assert out.code == 0, out.err
    report = json.loads(out.out)
    assert report["migrated"] is True and report["from"] == 1 and report["format"] == FORMAT
    assert git(home, "rev-parse", report["backup"]).strip() == old_head
    status = json.loads(fleet_process("store", "status", "--json", home=home).out)
    assert status["format"] == FORMAT and status["tasks"] == 3


def test_a_store_newer_than_this_fleet_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert fleet_process("bd", "create", "one", home=home).code == 0
    blob = git(home, "hash-object", "-w", "--stdin", input=f"{FORMAT + 1}\n").strip()
    tree = git(home, "mktree", input=f"100644 blob {blob}\tformat\n").strip()
    ident = ("-c", "user.name=future", "-c", "user.email=future@fleet.invalid")
    commit = git(home, *ident, "commit-tree", tree, "-p", "refs/heads/main", "-m", "future")
    git(home, "update-ref", "refs/heads/main", commit.strip())
    moved_to = head(home)
    for args in (("bd", "list"), ("bd", "create", "two"), ("store", "migrate")):
        out = fleet_process(*args, home=home)
        assert out.code == 1, (args, out)
        assert f"has format {FORMAT + 1}, newer than this fleet's {FORMAT}" in out.err, out.err
        assert "hint: upgrade fleet" in out.err
        assert head(home) == moved_to


@pytest.mark.slow
def test_kill_9_during_migration_leaves_the_old_or_the_new_store(
    previous: Path, tmp_path: Path
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"seed {seed}")
    pristine = tmp_path / "pristine"
    source = tmp_path / "many.jsonl"
    source.write_text("".join(f'{{"id":"mg-{i:05x}","title":"task {i}"}}\n' for i in range(3000)))
    old_fleet(previous, pristine, "bd", "import", str(source))
    old_head = head(pristine)
    expected = tree_tasks(pristine)
    outcomes = set()
    for trial in range(6):
        home = tmp_path / f"home-{trial}"
        shutil.copytree(pristine, home, symlinks=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor", "--home", str(home), "store", "migrate"],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.05, 1.0))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        wait_for(partial(_group_gone, proc.pid), 30, "the migration's git to exit")
        assert_fsck_clean(home)
        now = head(home)
        outcomes.add("old" if now == old_head else "new")
        if now != old_head:
            assert git(home, "rev-parse", "refs/heads/main~1").strip() == old_head
        assert tree_tasks(home) == expected, f"trial {trial}, seed {seed}"
        # The next command finishes (or redoes) the migration.
        listed = fleet_process("bd", "list", "--all", "--limit", "0", "--json", home=home)
        assert listed.code == 0, listed.err
        assert len(json.loads(listed.out)) == 3000
        assert tree_tasks(home) == expected
        assert listing(home)["format"]
        assert_fsck_clean(home)
    print(f"outcomes: {outcomes}")


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def assert_kept(old: object, new: object, where: object) -> None:
    """Every value the old fleet printed is in the new output, at the same place (the new fleet
    may add fields, such as the effective coder or the branch)."""
    if isinstance(old, dict):
        assert isinstance(new, dict), where
        for key, value in old.items():
            assert key in new, (where, key)
            assert_kept(value, new[key], (where, key))
    elif isinstance(old, list):
        assert isinstance(new, list) and len(new) == len(old), where
        for n, (a, b) in enumerate(zip(old, new, strict=True)):
            assert_kept(a, b, (where, n))
    else:
        assert new == old, where
