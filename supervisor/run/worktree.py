"""Isolation: an attempt on a task whose cwd is inside a git repository runs in a worktree of
its own, on branch `fleet/<id>` from the task's base branch (else the repository's HEAD). The
branch and the worktree are kept after the attempt, so unmerged work is never deleted and a retry
continues it; `stack` brings them up to date with the base and the blockers' branches.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from supervisor.errors import FleetError
from supervisor.store.git import run_in


class WorktreeError(FleetError):
    pass


def repo_root(cwd: Path) -> Path | None:
    """The top of the work tree that holds `cwd`, or None outside any repository."""
    proc = run_in(cwd, "rev-parse", "--show-toplevel")
    if proc.returncode != 0:
        return None
    return Path(proc.stdout.decode().strip())


def _git(root: Path, *args: str) -> str:
    proc = run_in(root, *args)
    if proc.returncode != 0:
        raise WorktreeError(
            f"git {' '.join(args[:3])} failed in {root}: {proc.stderr.decode().strip()}"
        )
    return proc.stdout.decode()


def place_of(root: Path, task_id: str, worktrees: Path) -> Path:
    """Where the worktree of `task_id` in the repository at `root` lives."""
    return repo_folder(root, worktrees) / task_id


def repo_folder(root: Path, worktrees: Path) -> Path:
    tag = hashlib.sha1(str(root).encode(), usedforsecurity=False).hexdigest()[:8]
    return worktrees / f"{root.name}-{tag}"


def prepare(cwd: Path, task_id: str, worktrees: Path, start: str = "HEAD") -> Path:
    """The directory an attempt runs in: the task's place inside its own worktree, on a branch
    made from `start` (a ref of the repository) the first time."""
    root = repo_root(cwd)
    if root is None:
        return cwd
    place = place_of(root, task_id, worktrees)
    branch = f"fleet/{task_id}"
    if not (place / ".git").exists():
        place.parent.mkdir(parents=True, exist_ok=True)
        _git(root, "worktree", "prune")
        has_branch = run_in(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
        if has_branch.returncode == 0:
            _git(root, "worktree", "add", "--quiet", str(place), branch)
        else:
            if run_in(root, "rev-parse", "--verify", "--quiet", f"{start}^{{commit}}").returncode:
                start = "HEAD"  # the base branch is gone: the repository's current commit
            if run_in(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}").returncode:
                raise WorktreeError(f"{root} has no commit yet to branch a worktree from")
            _git(root, "worktree", "add", "--quiet", "-b", branch, str(place), start)
    inside = place / cwd.resolve().relative_to(root.resolve())
    inside.mkdir(parents=True, exist_ok=True)  # git keeps no empty or untracked directory
    return inside
