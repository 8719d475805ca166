"""Reading packed objects in-process gives exactly what `git cat-file` gives."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from supervisor.queue import mutations as queue
from supervisor.queue.mutations import NewTask
from supervisor.store.git import Git
from supervisor.store.packs import Packs
from supervisor.store.store import Store
from tests.support.store_checks import git


def every_object(home: Path) -> list[tuple[str, str, bytes]]:
    names = git(home, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)").split()
    data = subprocess.run(
        ["git", f"--git-dir={home / '.git'}", "cat-file", "--batch"],
        input=("\n".join(names) + "\n").encode(),
        capture_output=True,
        check=True,
    ).stdout
    out, pos = [], 0
    for name in names:
        end = data.index(b"\n", pos)
        _, kind, size = data[pos:end].decode().split()
        out.append((name, kind, data[end + 1 : end + 1 + int(size)]))
        pos = end + 1 + int(size) + 1
    return out


def test_every_packed_object_reads_as_git_reads_it(store: Store, home: Path) -> None:
    task = queue.create(store, NewTask(title="edited", description="x" * 2000))
    for n in range(40):  # versions of one file: git stores most of them as deltas
        queue.update(store, task.id, {"description": "x" * 2000 + f" edit {n}"})
        queue.create(store, NewTask(title=f"other {n}"))
    git(home, "gc", "--quiet", "--aggressive")
    objects = every_object(home)
    assert len(objects) > 200
    packs = Packs(home / ".git" / "objects" / "pack")
    for sha, kind, data in objects:
        assert packs.read(sha) == (kind, data), sha
    assert packs.read("0" * 40) is None


def test_a_commit_on_a_packed_store_starts_no_git(
    store: Store, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(20):
        queue.create(store, NewTask(title=f"task {n}"))
    git(home, "gc", "--quiet")
    calls: list[tuple[str, ...]] = []
    real = Git.run

    def spy(self: Git, *args: str, **kwargs: Any) -> Any:
        calls.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Git, "run", spy)
    fresh = Store.open(home)
    queue.create(fresh, NewTask(title="after gc"))
    fresh.close()
    assert calls == []
    git(home, "fsck", "--strict")
