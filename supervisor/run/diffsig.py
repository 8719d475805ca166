"""What an attempt changed in its working tree, read with git, as risk's diff signals.

The base is where the task's branch `fleet/<id>` was created (its oldest reflog entry), so work
the agent committed counts too; without such a branch (isolation off), the work tree's HEAD.
Untracked files count as added.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from supervisor import risk
from supervisor.store.git import run_in

MAX_ADDED_LINES = 20_000  # lines of the diff scanned for disabled tests


def _out(cwd: Path, *args: str) -> str | None:
    proc = run_in(cwd, *args)
    return proc.stdout.decode(errors="replace") if proc.returncode == 0 else None


def in_work_tree(path: Path) -> bool:
    """Whether a `.git` is at or above `path` (no git process for the plain directories)."""
    return any((folder / ".git").exists() for folder in (path, *path.parents))


def base(workdir: Path, task_id: str) -> str | None:
    branch = f"refs/heads/fleet/{task_id}"
    log = _out(workdir, "reflog", "show", "--format=%H", branch, "--")
    if log and log.split():
        return log.split()[-1]
    head = _out(workdir, "rev-parse", "--verify", "--quiet", "HEAD")
    return head.strip() if head else None


def signals(workdir: str, task_id: str) -> dict[str, Any] | None:
    """The diff signals of `workdir` (None outside a git work tree)."""
    path = Path(workdir) if workdir else None
    if path is None or not path.is_dir() or not in_work_tree(path):
        return None
    prefix = _out(path, "rev-parse", "--show-prefix")
    start = base(path, task_id)
    if prefix is None or start is None:
        return None
    top = _out(path, "rev-parse", "--show-toplevel")
    root = Path(top.strip()) if top else path
    numstat = _out(root, "diff", "--numstat", "-z", "--no-renames", start) or ""
    status = _out(root, "diff", "--name-status", "-z", "--no-renames", start) or ""
    fields = status.split("\0")
    kinds = {fields[i + 1]: fields[i] for i in range(0, len(fields) - 1, 2)}
    changes: list[tuple[str, str, int]] = []
    for record in numstat.split("\0"):
        parts = record.split("\t")
        if len(parts) != 3:
            continue
        added, deleted, name = parts
        lines = (int(added) if added.isdigit() else 0) + (int(deleted) if deleted.isdigit() else 0)
        changes.append((kinds.get(name, "M"), name, lines))
    untracked = _out(root, "ls-files", "--others", "--exclude-standard", "-z") or ""
    for name in filter(None, untracked.split("\0")):
        try:
            lines = (root / name).read_bytes().count(b"\n")
        except OSError:
            lines = 0
        changes.append(("A", name, lines))
    patch = _out(root, "diff", "-U0", "--no-color", start) or ""
    added_lines = [
        line[1:]
        for line in patch.splitlines()[:MAX_ADDED_LINES]
        if line.startswith("+") and not line.startswith("+++")
    ]
    return risk.diff_signals(changes, prefix.strip(), added_lines)
