"""A user's repository read without a git process: which branch is checked out where.

`fleet bd create` records the branch checked out in the task's directory (the base its work is
delivered to); it starts no process, so it reads `.git/HEAD` itself.
"""

from __future__ import annotations

from pathlib import Path


def git_dir(cwd: Path) -> Path | None:
    """The git directory of the work tree holding `cwd` (a worktree's own one), or None."""
    for place in (cwd, *cwd.parents):
        dot = place / ".git"
        if dot.is_dir():
            return dot
        if dot.is_file():
            try:
                text = dot.read_text(encoding="utf-8").strip()
            except OSError:
                return None
            if text.startswith("gitdir:"):
                target = Path(text[len("gitdir:") :].strip())
                return target if target.is_absolute() else (place / target).resolve()
            return None
    return None


def head_branch(cwd: Path) -> str:
    """The branch checked out in the work tree holding `cwd`; "" outside a repository or on a
    detached HEAD."""
    found = git_dir(cwd)
    if found is None:
        return ""
    try:
        head = (found / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        return ""
    prefix = "ref: refs/heads/"
    return head[len(prefix) :] if head.startswith(prefix) else ""
