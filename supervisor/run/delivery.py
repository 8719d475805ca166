"""An attempt's work, committed on its task's branch and recorded in the store.

When an attempt ends, whatever its outcome, everything the agent left changed in its worktree
(tracked and new files; `.gitignore` is honoured because `git add -A` honours it) is committed on
`fleet/<id>`. The author is the agent (coder, model and account in its name and address), the
committer is the user's git identity, the message is the agent's summary with `Fleet-*` trailers.
Commits the agent made itself stay as they are. Only fleet's own worktrees are committed in: a
task that runs in place (no isolation) is the user's tree, and fleet never commits there.

The record names the branch, the base commit (where the branch left the base branch), the head,
the diffstat, and the diff itself up to `DIFF_CAP` bytes (cut past it, and the record says so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisor import lifecycle
from supervisor.config import Config
from supervisor.lifecycle import Ending
from supervisor.model import Task
from supervisor.run.attempt import Attempt, run_dir
from supervisor.run.ops import Op
from supervisor.store.git import SAFE_CONFIG, clean_env, run_in
from supervisor.store.repo import head_branch
from supervisor.store.store import Store, user_actor

DIFF_CAP = 256 * 1024  # bytes of diff kept in the store per attempt
FALLBACK_EMAIL = "fleet@localhost"


class DeliveryError(Exception):
    """git refused a step of committing or recording the work."""


@dataclass
class Work:
    """What one attempt changed, as the store records it."""

    branch: str
    base: str  # the commit the branch left its base at
    head: str
    files: list[dict[str, Any]] = field(default_factory=list)  # path, added, deleted
    diff: bytes = b""
    cut: bool = False  # the diff was longer than DIFF_CAP
    committed: str = ""  # the commit fleet made for the agent ("": nothing was left uncommitted)
    since: str = ""  # the commit the diff starts from (the attempt's start, else `base`)

    def record(self) -> dict[str, Any]:
        added = sum(int(f["added"] or 0) for f in self.files)
        deleted = sum(int(f["deleted"] or 0) for f in self.files)
        return {
            "branch": self.branch,
            "base": self.base,
            "head": self.head,
            "commit": self.committed,
            "since": self.since,
            "files": len(self.files),
            "added": added,
            "deleted": deleted,
            "stat": self.files[:200],
            "diff_bytes": len(self.diff),
            "diff_cut": self.cut,
        }


def git(root: Path, *args: str, env: dict[str, str] | None = None, input_text: str = "") -> str:
    """Run git in `root` (hooks off, `GIT_*` scrubbed, then `env` added); its output, or
    DeliveryError saying what git said."""
    import subprocess

    argv = ["git", *SAFE_CONFIG, "-C", str(root), *args]
    proc = subprocess.run(
        argv,
        input=input_text.encode(),
        capture_output=True,
        env=clean_env(env),
        check=False,
    )
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).decode(errors="replace").strip()
        raise DeliveryError(f"git {' '.join(args[:2])} failed in {root}: {said}")
    return proc.stdout.decode(errors="replace")


def worktree_root(workdir: Path, worktrees: Path) -> Path | None:
    """The top of fleet's worktree holding `workdir`, or None when it is not one of fleet's."""
    try:
        rel = workdir.resolve().relative_to(worktrees.resolve())
    except (ValueError, OSError):
        return None
    if len(rel.parts) < 2:
        return None
    root = worktrees / rel.parts[0] / rel.parts[1]
    return root if (root / ".git").exists() else None


def committer(root: Path, fallback: str) -> dict[str, str]:
    """The user's git identity for the committer (the repository's, else the global one), or
    `fallback` (user@host) when git has none."""
    name = run_in(root, "config", "user.name").stdout.decode().strip()
    email = run_in(root, "config", "user.email").stdout.decode().strip()
    user, _, host = fallback.partition("@")
    return {
        "GIT_COMMITTER_NAME": name or user or "fleet",
        "GIT_COMMITTER_EMAIL": email or (f"{user}@{host}" if host else FALLBACK_EMAIL),
    }


def author(coder: str, model: str, account: str) -> dict[str, str]:
    """The agent as a git author: `claude (claude-sonnet-4-5, account work)`
    <claude+work@fleet.invalid>."""
    said = ", ".join(x for x in (model, f"account {account}" if account else "") if x)
    name = f"{coder} ({said})" if said else coder
    local = re.sub(r"[^A-Za-z0-9._+-]", "-", f"{coder}+{account}" if account else coder)
    return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": f"{local}@fleet.invalid"}


def message(summary: str, task_id: str, n: int, coder: str, model: str) -> str:
    text = summary.strip() or f"{task_id}: attempt {n}"
    first, _, rest = text.partition("\n")
    if len(first) > 72:
        first, rest = first[:71] + "…", text
    body = f"{first}\n\n{rest.strip()}\n" if rest.strip() else f"{first}\n"
    trailers = [
        f"Fleet-Task: {task_id}",
        f"Fleet-Attempt: {n}",
        f"Fleet-Coder: {coder}",
        f"Fleet-Model: {model or 'default'}",
    ]
    return body + "\n" + "\n".join(trailers) + "\n"


def commit_work(
    root: Path,
    branch: str,
    base_ref: str,
    who: dict[str, str],
    text: str,
    start: str = "",
) -> Work:
    """Commit what is left uncommitted in the worktree at `root` on `branch`, then describe
    the branch against `base_ref` (the base branch, or the commit the branch started from)."""
    head_name = git(root, "symbolic-ref", "--quiet", "--short", "HEAD").strip()
    if head_name != branch:
        raise DeliveryError(
            f"{root} has {head_name or 'a detached HEAD'} checked out, not {branch}"
        )
    git(root, "add", "-A")
    made = ""
    if run_in(root, "diff", "--cached", "--quiet").returncode != 0 or _merging(root):
        git(root, "commit", "--quiet", "--no-verify", "-F", "-", env=who, input_text=text)
        made = git(root, "rev-parse", "HEAD").strip()
    return describe(root, branch, base_ref, made, start)


def describe(root: Path, branch: str, base_ref: str, made: str = "", start: str = "") -> Work:
    """The branch against its base; the diff and its stat from `start` (the commit the attempt
    started from: its own work, without what was merged in from the base or the blockers),
    else from where the branch left the base."""
    head = git(root, "rev-parse", f"refs/heads/{branch}").strip()
    base = merge_base(root, base_ref, head) or head
    since = base
    if start and run_in(root, "merge-base", "--is-ancestor", start, head).returncode == 0:
        since = start
    files = []
    for line in git(root, "diff", "--numstat", "-z", "--no-renames", since, head).split("\0"):
        if not line.strip():
            continue
        added, deleted, path = line.split("\t", 2)
        files.append(
            {
                "path": path,
                "added": None if added == "-" else int(added),
                "deleted": None if deleted == "-" else int(deleted),
            }
        )
    diff = _diff(root, since, head)
    cut = len(diff) > DIFF_CAP
    if cut:
        diff = diff[:DIFF_CAP] + f"\n[diff cut at {DIFF_CAP} bytes]\n".encode()
    return Work(branch, base, head, files, diff, cut, made, since)


def merge_base(root: Path, one: str, other: str) -> str:
    proc = run_in(root, "merge-base", one, other)
    return proc.stdout.decode().strip() if proc.returncode == 0 else ""


def _diff(root: Path, base: str, head: str) -> bytes:
    import subprocess

    argv = ["git", *SAFE_CONFIG, "-C", str(root), "diff", "--no-color", "--binary", base, head]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, env=clean_env()) as proc:
        assert proc.stdout is not None
        data = proc.stdout.read(DIFF_CAP + 1)
        proc.stdout.close()
        proc.kill()
    return data


def _merging(root: Path) -> bool:
    """A merge is under way in the worktree (a conflict the agent resolved): commit concludes
    it even when the resolution left no change against HEAD."""
    proc = run_in(root, "rev-parse", "--verify", "--quiet", "MERGE_HEAD")
    return proc.returncode == 0


def stat_line(record: dict[str, Any]) -> str:
    """`3 files +40 -2` for a work record."""
    files = int(record.get("files") or 0)
    plus, minus = record.get("added", 0), record.get("deleted", 0)
    return f"{files} file{'s' if files != 1 else ''} +{plus} -{minus}"


def record_for(
    workdir: str,
    worktrees: Path,
    base_branch: str,
    who: dict[str, str],
    text: str,
    fallback_actor: str,
    start: str = "",
) -> tuple[dict[str, Any], bytes]:
    """Commit and describe an attempt's work: its record and its diff, or ({}, b"") when the
    attempt ran outside fleet's worktrees. A git failure is recorded, never raised: the work
    stays in the worktree, uncommitted, and nothing deletes it."""
    root = worktree_root(Path(workdir), worktrees) if workdir else None
    if root is None:
        return {}, b""
    branch = f"fleet/{root.name}"
    base_ref = f"refs/heads/{base_branch}" if base_branch else f"refs/heads/{branch}"
    try:
        if run_in(root, "rev-parse", "--verify", "--quiet", base_ref).returncode:
            base_ref = f"refs/heads/{branch}"  # the base branch is gone: describe no range
        env = {**committer(root, fallback_actor), **who}
        work = commit_work(root, branch, base_ref, env, text, start)
    except (DeliveryError, OSError, ValueError) as exc:
        return {"branch": branch, "error": str(exc)}, b""
    return work.record(), work.diff


def on_end(
    store: Store, attempt: Attempt, ending: Ending, record: dict[str, Any]
) -> dict[str, bytes]:
    """An attempt ended: commit its work on its branch and note it on its record (`work`, and
    what a resumed session or a missing result means); the files to store with the record."""
    from supervisor.run import resume

    resume.on_end(attempt, ending, record)
    work, diff = commit_attempt(store, attempt, ending)
    if work:
        record["work"] = work
    return {f"{run_dir(attempt.task_id, attempt.n)}/diff.patch": diff} if diff else {}


def commit_attempt(store: Store, attempt: Attempt, ending: Ending) -> tuple[dict[str, Any], bytes]:
    """Commit and describe an ended attempt's work: (its work record, its diff)."""
    task = store.cache.get(attempt.task_id)
    if task is None or not attempt.workdir:
        return {}, b""
    model = attempt.model or attempt.usage.model or attempt.coder.default_model
    summary = ending.result.summary if ending.result and ending.result.summary else ""
    if not summary:
        why = f": {ending.reason}" if ending.reason else ""
        summary = f"{task.title}\n\nAttempt {attempt.n} ended {ending.outcome.value}{why}"
    text = message(summary, task.id, attempt.n, attempt.coder.name, model)
    who = author(attempt.coder.name, model, attempt.account)
    base = task.base_branch or head_branch(Path(task.cwd)) if task.cwd else task.base_branch
    try:
        start = (attempt.files.root / "start").read_text().strip()
    except OSError:
        start = ""
    home = store.home
    return record_for(attempt.workdir, home / "worktrees", base, who, text, user_actor(), start)


def hooked(
    op: Op, n: int, summary: dict[str, Any], config: Config, now: float, files: dict[str, bytes]
) -> Op:
    """The op that records an ended attempt, with delivery's part: the attempt's diff among its
    files; an attempt that ended without its result resumes its session (or waits for a person)
    instead of the usual end; a task the attempt closed is queued for delivery in that commit."""
    from supervisor.run import merges, resume

    op.files.update(files)
    end = op.apply

    def change(task: Task) -> bool:
        if lifecycle.current(task, n) is None:
            return False
        if resume.settle(task, dict(summary), now):
            return True
        if end is None or not end(task):
            return False
        merges.on_close(task, config, now)
        return True

    op.apply = change
    return op
