"""What a handoff puts in an agent's knowledge: the role's handbook, the change a review task
reviews (its task, the author's summary and its diff), and the review a reworked task answers.

The diff is the work on the task's branch `fleet/<id>` against the base it was branched from,
including what its worktree holds and has not committed yet: read with git through a private
index, so neither the branch nor the worktree changes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from supervisor.handoffs import pending_handoff
from supervisor.model import Task
from supervisor.store.git import clean_env, run_in

MAX_DIFF = 200_000  # characters of diff put in a knowledge; the rest is cut with a note


def sections(
    task: Task, handbook: str, lookup: Callable[[str], Task | None], role: str = ""
) -> list[str]:
    """The knowledge's sections for the role (`role`, else the task's) and the handoffs."""
    out = []
    if handbook.strip():
        out.append(f"## Your role: {role or task.role}\n\n{handbook.strip()}")
    origin = task.extra.get("origin")
    if isinstance(origin, dict) and origin.get("knowledge"):
        other = lookup(str(origin.get("task") or ""))
        if other is not None:
            out.append(_change(other, [str(k) for k in origin["knowledge"]]))
    handoff = pending_handoff(task)
    if handoff is not None:
        out.append(_review(handoff))
    return out


def _change(task: Task, wanted: list[str]) -> str:
    lines = [f"## The change to review: {task.id}: {task.title}"]
    if task.acceptance_criteria.strip():
        lines.append(f"Acceptance criteria:\n\n{task.acceptance_criteria.strip()}")
    done = [a for a in task.attempts if a.get("summary")]
    if "summary" in wanted:
        summary = done[-1]["summary"] if done else task.close_reason or "(no summary)"
        lines.append(f"The author's summary:\n\n{summary}")
    if "diff" in wanted:
        diff = diff_of(task)
        lines.append(f"The diff (branch fleet/{task.id} against its base):\n\n```diff\n{diff}\n```")
    return "\n\n".join(lines)


def _review(handoff: dict[str, Any]) -> str:
    comments = [str(c) for c in handoff.get("comments") or []]
    lines = [
        f"## The review of your previous work ({handoff.get('by', 'a reviewer')}): "
        f"{handoff.get('verdict', 'changes_requested')}",
        str(handoff.get("summary") or "").strip(),
        *(f"- {c}" for c in comments),
        "Address every comment, on the same branch, then finish as before.",
    ]
    return "\n\n".join(line for line in lines[:2] if line) + "\n\n" + "\n".join(lines[2:])


def diff_of(task: Task) -> str:
    """The task's work as a unified diff against its base ("" when it has none, or the reason)."""
    cwd = Path(task.cwd) if task.cwd else None
    if cwd is None or not cwd.is_dir():
        return f"(no diff: the working directory {task.cwd or '(none)'} does not exist)"
    top = run_in(cwd, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        return "(no diff: the task's working directory is not in a git repository)"
    root = Path(top.stdout.decode().strip())
    branch = f"fleet/{task.id}"
    if run_in(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}").returncode:
        return f"(no diff: branch {branch} does not exist)"
    base = _out(root, "merge-base", "HEAD", branch).strip()
    place = _worktree_of(root, branch)
    if place is None:  # no worktree: what the branch holds
        return _cut(_out(root, "diff", f"{base}...{branch}"))
    return _cut(_with_uncommitted(place, base))


def _worktree_of(root: Path, branch: str) -> Path | None:
    listing = _out(root, "worktree", "list", "--porcelain")
    place = None
    for line in listing.splitlines():
        if line.startswith("worktree "):
            place = Path(line[len("worktree ") :])
        elif line == f"branch refs/heads/{branch}" and place is not None and place.is_dir():
            return place
    return None


def _with_uncommitted(place: Path, base: str) -> str:
    """The diff from `base` to the worktree's files (committed or not), through a private
    index: the worktree's own index and files stay as they are."""
    import subprocess

    fd, index = tempfile.mkstemp(prefix="fleet-review-index-")
    os.close(fd)
    os.unlink(index)
    env = clean_env({"GIT_INDEX_FILE": index})
    try:
        for args in (["read-tree", "HEAD"], ["add", "-A", "."]):
            subprocess.run(
                ["git", "-c", "core.hooksPath=/dev/null", *args],
                cwd=place,
                env=env,
                capture_output=True,
                check=True,
            )
        proc = subprocess.run(
            ["git", "diff", "--cached", "--no-color", base],
            cwd=place,
            env=env,
            capture_output=True,
            check=True,
        )
        return proc.stdout.decode("utf-8", errors="replace")
    except subprocess.CalledProcessError as exc:
        return f"(no diff: git {exc.cmd[1:3]} failed: {exc.stderr.decode(errors='replace')})"
    finally:
        Path(index).unlink(missing_ok=True)


def _out(root: Path, *args: str) -> str:
    return run_in(root, *args).stdout.decode("utf-8", errors="replace")


def _cut(diff: str) -> str:
    if not diff.strip():
        return "(the branch holds no change against its base)"
    if len(diff) <= MAX_DIFF:
        return diff.rstrip("\n")
    return diff[:MAX_DIFF] + f"\n... ({len(diff) - MAX_DIFF} more characters cut)"
