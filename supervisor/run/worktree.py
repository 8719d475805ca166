"""Isolation: an attempt on a task whose cwd is inside a git repository runs in a worktree of
its own, on branch `fleet/<id>` from the repository's current HEAD. The branch and the worktree
are kept after the attempt, so unmerged work is never deleted and a retry continues it.
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


def prepare(cwd: Path, task_id: str, worktrees: Path) -> Path:
    """The directory an attempt runs in: the task's place inside its own worktree."""
    root = repo_root(cwd)
    if root is None:
        return cwd
    tag = hashlib.sha1(str(root).encode(), usedforsecurity=False).hexdigest()[:8]
    place = worktrees / f"{root.name}-{tag}" / task_id
    branch = f"fleet/{task_id}"
    if not (place / ".git").exists():
        place.parent.mkdir(parents=True, exist_ok=True)
        _git(root, "worktree", "prune")
        has_branch = run_in(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
        if has_branch.returncode == 0:
            _git(root, "worktree", "add", "--quiet", str(place), branch)
        else:
            if run_in(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}").returncode:
                raise WorktreeError(f"{root} has no commit yet to branch a worktree from")
            _git(root, "worktree", "add", "--quiet", "-b", branch, str(place), "HEAD")
    inside = place / cwd.resolve().relative_to(root.resolve())
    inside.mkdir(parents=True, exist_ok=True)  # git keeps no empty or untracked directory
    return inside
