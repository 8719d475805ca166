"""The map from task ids to paths in the store's tree, and the big-commit path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from supervisor.model import Task
from supervisor.queue import mutations as queue
from supervisor.queue import transfer
from supervisor.queue.beads import export_jsonl
from supervisor.queue.mutations import NewTask
from supervisor.store import paths
from supervisor.store.git import Git
from supervisor.store.store import BULK_FILES, Store
from tests.support.store_checks import (
    assert_fsck_clean,
    assert_linear_and_well_formed,
    git,
    tree_tasks,
)


def test_the_layout_is_fixed_for_format_2() -> None:
    # These are the paths of format 2: changing them is a new format with a migration.
    assert paths.FORMAT == 2
    assert paths.task_path("fl-3k9x") == "tasks/e/0/8/fl-3k9x.json"
    assert paths.run_dir("fl-3k9x", 2) == "runs/e/0/8/fl-3k9x/2"
    assert paths.run_file("fl-3k9x", 2, "output.log") == "runs/e/0/8/fl-3k9x/2/output.log"
    assert paths.task_path("fl-3k9x", fmt=1) == "tasks/fl-3k9x.json"
    assert paths.run_dir("fl-3k9x", 1, fmt=1) == "runs/fl-3k9x/1"


def test_shards_spread_ids_evenly() -> None:
    counts: dict[str, int] = {}
    for n in range(40_000):
        shard = paths.shard(f"fl-{n:x}")
        counts[shard] = counts.get(shard, 0) + 1
    assert len(counts) == 4096
    assert max(counts.values()) < 3 * 40_000 / 4096


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("tasks/fl-3k9x.json", "tasks/e/0/8/fl-3k9x.json"),
        ("tasks/fl-3k9x.1.json", paths.task_path("fl-3k9x.1")),
        ("runs/fl-3k9x/1/output.log", "runs/e/0/8/fl-3k9x/1/output.log"),
        ("runs/fl-3k9x/12/deep/er.txt", "runs/e/0/8/fl-3k9x/12/deep/er.txt"),
        ("config.toml", "config.toml"),
        ("tasks/README", "tasks/README"),
    ],
)
def test_a_format_1_path_moves_to_its_format_2_place(old: str, new: str) -> None:
    assert paths.moved(old, 1) == new
    assert paths.moved(new, paths.FORMAT) == new


def test_task_files_are_recognised_in_every_format() -> None:
    for fmt in (1, 2):
        path = paths.task_path("fl-a.2", fmt)
        assert paths.is_task_file(path) and paths.task_id_of(path) == "fl-a.2"
    assert not paths.is_task_file("runs/fl-a/1/attempt.json")
    assert paths.every_task_path("fl-a") == ["tasks/b/8/5/fl-a.json", "tasks/fl-a.json"]


def test_format_files() -> None:
    assert paths.parse_format(None) == 1
    assert paths.parse_format(b"2\n") == 2
    assert paths.parse_format(paths.format_file()) == paths.FORMAT
    with pytest.raises(ValueError, match="not a number"):
        paths.parse_format(b"two")


def test_a_new_store_says_its_format(store: Store, home: Path) -> None:
    queue.create(store, NewTask(title="first"))
    assert git(home, "show", "refs/heads/main:format") == f"{paths.FORMAT}\n"


def big_import(tmp_path: Path, n: int) -> Path:
    source = tmp_path / "big.jsonl"
    lines = [
        json.dumps(
            {
                "id": f"bg-{i:04x}",
                "title": f"big {i}",
                "priority": i % 4,
                "created_at": f"2026-01-01T00:00:{i % 60:02d}Z",
                "dependencies": [{"depends_on_id": f"bg-{i - 1:04x}", "type": "blocks"}]
                if i % 5 == 1
                else [],
            }
        )
        for i in range(n)
    ]
    source.write_text("\n".join(lines) + "\n")
    return source


def test_a_big_import_is_one_commit_written_as_one_pack(
    store: Store, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue.create(store, NewTask(title="before"))
    n = BULK_FILES + 200
    report = transfer.import_file(store, big_import(tmp_path, n))
    assert report["created"] == n
    packs = list((home / ".git" / "objects" / "pack").glob("*.pack"))
    assert len(packs) == 1
    assert not list((home / ".git" / "refs" / "fleet" / "tmp").glob("*"))
    tasks = tree_tasks(home)
    assert len(tasks) == n + 1
    assert {r["id"] for r in store.cache.select(None)} == set(tasks)
    assert_linear_and_well_formed(home)
    assert_fsck_clean(home)

    # The next write reads the packed trees it changes from the pack, starting no git.
    calls: list[tuple[str, ...]] = []
    real = Git.run

    def spy(self: Git, *args: str, **kwargs: Any) -> Any:
        calls.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Git, "run", spy)
    fresh = Store.open(home)
    after = queue.create(fresh, NewTask(title="after"))
    assert calls == []
    fresh.close()
    assert tree_tasks(home)[after.id]["title"] == "after"
    assert_fsck_clean(home)


def test_export_streams_the_same_lines_as_beads_order(
    store: Store, home: Path, tmp_path: Path
) -> None:
    transfer.import_file(store, big_import(tmp_path, 300))
    queue.create(store, NewTask(title="new", priority=0))
    lines = list(transfer.export_lines(store))
    tasks = [Task.from_dict(body) for body in tree_tasks(home).values()]
    assert "".join(lines) == export_jsonl(tasks)
    assert len(lines) == 301


@pytest.mark.parametrize("seed", range(12))
def test_ready_agrees_with_the_graph_on_random_queues(store: Store, seed: int) -> None:
    """`Cache.ready` (SQL that walks only blocked parents) and `graph.blocked_by` (every task in
    memory) give the same ready set, on random graphs with chains of parents."""
    import random

    from supervisor.graph import Node, blocked_by
    from supervisor.model import Dependency
    from supervisor.store.store import Change

    rng = random.Random(seed)
    ids = [f"rq-{seed}x{i}" for i in range(60)]
    statuses = ["open"] * 6 + ["closed", "closed", "in_progress", "blocked", "pinned", "deferred"]
    tasks = []
    for n, task_id in enumerate(ids):
        deps = []
        for _ in range(rng.choice([0, 0, 1, 2])):
            target = rng.choice([*ids[:n], "external:x:y"])
            kind = rng.choice(["blocks", "parent-child", "related", "waits-for"])
            if target.startswith("external") and kind == "parent-child":
                continue
            deps.append(Dependency(issue_id=task_id, depends_on_id=target, type=kind))
        tasks.append(
            Task(id=task_id, title=task_id, status=rng.choice(statuses), dependencies=deps)
        )

    def put_all(snap: object) -> tuple[Change, None]:
        change = Change("random queue", "imported")
        for task in tasks:
            change.put(task)
        return change, None

    store.mutate(put_all)
    nodes = {t.id: Node.of(t) for t in tasks}
    blocked = blocked_by(nodes)
    deferred = {t.id for t in tasks if t.status == "deferred"}
    expected = {
        t.id
        for t in tasks
        if t.status == "open" and t.id not in blocked and not set(t.parents()) & deferred
    }
    assert set(store.cache.ready(0.0)) == expected
