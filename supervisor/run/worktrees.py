"""The tasks' worktrees under `$FLEET_HOME/worktrees`: what each holds, and pruning.

A worktree is pruned only when nothing in it could be lost: its tree is clean (no uncommitted or
untracked file) and its branch holds no commit that its base branch lacks (merged, or no change
at all). A task that runs now is never pruned.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from supervisor.model import Task
from supervisor.run import merge
from supervisor.run.stack import base_of
from supervisor.store.git import run_in
from supervisor.store.repo import head_branch
from supervisor.store.store import Store


@dataclass
class Place:
    task: str
    status: str
    path: str
    branch: str
    base: str
    ahead: int | None  # commits on the branch the base lacks (None: unknown)
    behind: int | None
    dirty: bool
    size: int  # bytes, the worktree's files (not the repository's objects)
    merged: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def places(store: Store) -> list[Path]:
    root = store.home / "worktrees"
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("*/*") if (p / ".git").is_file())


def describe(store: Store, place: Path) -> Place:
    task_id = place.name
    task = store.cache.get(task_id)
    branch = f"fleet/{task_id}"
    base = base_of(task) if task else ""
    if not base:
        main = _main_tree(place)
        base = head_branch(main) if main else ""
    ahead = behind = None
    if base:
        proc = run_in(place, "rev-list", "--left-right", "--count", f"{base}...{branch}")
        if proc.returncode == 0:
            left, right = proc.stdout.decode().split()
            behind, ahead = int(left), int(right)
    status = run_in(place, "status", "--porcelain")
    dirty = status.returncode != 0 or bool(status.stdout.strip())
    return Place(
        task=task_id,
        status=task.status if task else "(no task)",
        path=str(place),
        branch=branch,
        base=base,
        ahead=ahead,
        behind=behind,
        dirty=dirty,
        size=_size(place),
        merged=ahead == 0,
    )


def listing(store: Store) -> list[Place]:
    return [describe(store, p) for p in places(store)]


def prune(store: Store, dry_run: bool = False) -> tuple[list[Place], list[tuple[Place, str]]]:
    """Remove every worktree whose work is merged or that holds no change: (removed, kept with
    why)."""
    removed, kept = [], []
    for place in listing(store):
        why = _keep(store, place)
        if why:
            kept.append((place, why))
            continue
        if not dry_run:
            repo = _repo(Path(place.path), store.home)
            if repo is None or not merge.prune_task(repo, place.task, place.base, Path(place.path)):
                kept.append((place, "git refused to remove it"))
                continue
        removed.append(place)
    return removed, kept


def _keep(store: Store, place: Place) -> str:
    task = store.cache.get(place.task)
    if task is not None and task.status == "in_progress":
        return "its task is running"
    if place.dirty:
        return "it holds uncommitted changes"
    if place.ahead is None:
        return "its base branch is unknown"
    if place.ahead:
        return f"{place.ahead} commit(s) not merged into {place.base}"
    return ""


def _repo(place: Path, home: Path) -> merge.Repo | None:
    probe = Task(id=place.name, title="worktree", cwd=str(place))
    return merge.repo_of(probe, home)


def _main_tree(place: Path) -> Path | None:
    proc = run_in(place, "rev-parse", "--path-format=absolute", "--git-common-dir")
    if proc.returncode != 0:
        return None
    common = Path(proc.stdout.decode().strip())
    return common.parent if common.name == ".git" else None


def _size(place: Path) -> int:
    total = 0
    for folder, dirs, files in os.walk(place):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total
