"""One merge: a closed task's branch brought onto its base branch.

Merge `fleet/<id>` into the base branch's current commit in a scratch worktree of fleet's own
(`git merge --no-ff`: the agent's commits stay exactly as they were made, and the merge commit is
the one commit to revert to undo the task); run the check command there (`check`); then advance
the base branch, only if the check passed:

- not checked out anywhere: a compare-and-swap of the ref (`git update-ref NEW OLD`);
- checked out in a work tree (the user's): only while that tree has no uncommitted change to a
  tracked file, by `git merge --ff-only` in that tree, exactly what a fast-forward does; else
  the merge waits, and says so.

Crash safety: the base branch moves in one atomic step (a ref update, or the fast-forward, which
git ends with the ref update), and a task whose branch is already in its base is merged already,
so a merge killed at any instant is redone on restart, never twice. A journal covers the one
window git leaves open: a fast-forward killed after it wrote the tree but before it moved the ref
is finished on restart. `merges` is the queue that runs these, one at a time per repository.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.config import Config
from supervisor.model import Task
from supervisor.run import delivery, worktree
from supervisor.run.check import run_check, stop_stale_check
from supervisor.run.stack import base_of, user_identity
from supervisor.store.git import run_in
from supervisor.store.repo import git_dir

# task id -> (base commit, branch head, check, merge commit) of a merge whose check passed but
# that could not advance the base yet (the user's tree): it is not merged and checked again
VERIFIED: dict[str, tuple[str, str, str, str]] = {}


@dataclass
class Merged:
    """What one turn of the queue did for one task."""

    task_id: str
    kind: str  # merged, conflict, red, waiting, moved or retry (try again), error (block)
    text: str = ""
    commit: str = ""
    base: str = ""
    pruned: bool = False


class Repo:
    """A user's repository as the queue sees it: its git directory and fleet's place for it."""

    def __init__(self, common: Path, home: Path) -> None:
        self.common = common  # the repository's (common) git directory
        self.top = common.parent if common.name == ".git" else common
        self.folder = worktree.repo_folder(self.top, home / "worktrees")
        self.merges = home / "merges" / self.folder.name
        self.scratch = self.merges / "scratch"
        self.journal = self.merges / "journal.json"

    def git(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return run_in(self.common, *args)

    def rev(self, ref: str) -> str:
        proc = self.git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        return proc.stdout.decode().strip() if proc.returncode == 0 else ""


def repo_of(task: Task, home: Path) -> Repo | None:
    found = git_dir(Path(task.cwd)) if task.cwd else None
    if found is None:
        return None
    common_file = found / "commondir"
    if common_file.exists():  # a linked worktree: its repository's git directory
        found = (found / common_file.read_text().strip()).resolve()
    return Repo(found, home)


@contextmanager
def turn(repo: Repo) -> Iterator[None]:
    """One merge at a time per repository, across processes (the supervisor, `task merge`)."""
    repo.merges.mkdir(parents=True, exist_ok=True)
    fd = os.open(repo.merges / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def merge_one(task: Task, home: Path, config: Config, actor: str) -> Merged:
    """Bring the task's branch onto its base branch (see the module's docstring)."""
    repo = repo_of(task, home)
    base = base_of(task)
    if repo is None or not base:
        why = "its directory is not in a git repository" if repo is None else "no base branch"
        return Merged(task.id, "error", f"cannot merge: {why} (recorded at create)")
    with turn(repo):
        finish_journal(repo)
        stop_stale_check(repo.merges / "check.json")
        return _merge(task, repo, base, home, config, actor)


def _merge(task: Task, repo: Repo, base: str, home: Path, config: Config, actor: str) -> Merged:
    branch = f"fleet/{task.id}"
    head = repo.rev(f"refs/heads/{branch}")
    old = repo.rev(f"refs/heads/{base}")
    if not old:
        return Merged(task.id, "error", f"the base branch {base} does not exist any more")
    if not head:
        return Merged(task.id, "error", f"its branch {branch} does not exist any more")
    if repo.git("merge-base", "--is-ancestor", head, old).returncode == 0:
        return _done(task, repo, base, old, config)  # already there (by us before a crash)
    busy = _dirty(repo, base)
    if busy:
        return Merged(task.id, "waiting", busy)  # before the merge and its check: they wait too
    marked = conflict_markers(repo, old, head)
    if marked:
        return Merged(
            task.id,
            "conflict",
            f"{branch} still holds conflict markers in: {', '.join(marked)}\n\nResolve them "
            "(keep what both sides meant) before the work can merge.",
        )
    command = task.check or config.check
    passed = VERIFIED.get(task.id)
    if passed and passed[:3] == (old, head, command) and repo.rev(passed[3]):
        return _advance(task, repo, base, old, passed[3], config)  # merged and checked already
    scratch = _scratch(repo, old)
    env = user_identity(scratch)
    title = f"Merge {branch}: {task.title}"
    trailers = f"Fleet-Task: {task.id}\nFleet-Event: merged"
    try:
        delivery.git(scratch, "merge", "--no-ff", "-m", title, "-m", trailers, head, env=env)
    except delivery.DeliveryError as exc:
        files = run_in(scratch, "diff", "--name-only", "--diff-filter=U").stdout.decode().split()
        run_in(scratch, "merge", "--abort")
        if not files:
            return Merged(task.id, "error", str(exc))
        return Merged(
            task.id,
            "conflict",
            f"merging {branch} into {base} (at {old[:10]}) conflicted in: {', '.join(files)}\n\n"
            f"{exc}\n\nAt your next attempt your branch is brought up to date with {base}: the "
            "conflict markers will be in your working directory. Resolve them, keeping what "
            f"{base} changed and what this task needs.",
        )
    new = delivery.git(scratch, "rev-parse", "HEAD").strip()
    if command:
        ok, output = run_check(command, scratch, task.id, config.check_seconds, repo.merges)
        if not ok:
            return Merged(
                task.id,
                "red",
                f"the check `{command}` failed on {branch} merged into {base}:\n\n{output}",
            )
    VERIFIED[task.id] = (old, head, command, new)  # a merge that then waits is not redone
    return _advance(task, repo, base, old, new, config)


def conflict_markers(repo: Repo, base: str, head: str) -> list[str]:
    """The files in which the branch adds conflict markers (a merge committed unresolved)."""
    proc = repo.git("diff", "--check", base, head)
    files = []
    for line in proc.stdout.decode(errors="replace").splitlines():
        path, _, what = line.partition(":")
        if "leftover conflict marker" in what and path not in files:
            files.append(path)
    return files


def _scratch(repo: Repo, at: str) -> Path:
    """fleet's own work tree for merging in this repository, detached at `at`, clean. It is
    rebuilt when anything is wrong with it (a merge killed half-way)."""
    scratch = repo.scratch
    if (scratch / ".git").exists():
        steps = (
            ("merge", "--abort"),
            ("checkout", "--quiet", "--force", "--detach", at),
            ("clean", "-ffdxq"),
        )
        codes = [run_in(scratch, *step).returncode for step in steps]
        if codes[1] == 0 and codes[2] == 0:
            return scratch
        repo.git("worktree", "remove", "--force", str(scratch))
    if scratch.exists():
        import shutil

        shutil.rmtree(scratch)
    repo.git("worktree", "prune")
    proc = repo.git("worktree", "add", "--quiet", "--detach", str(scratch), at)
    if proc.returncode != 0:
        raise delivery.DeliveryError(proc.stderr.decode(errors="replace").strip())
    return scratch


def checked_out(repo: Repo, branch: str) -> Path | None:
    """The work tree where `branch` is checked out, if any."""
    listing = repo.git("worktree", "list", "--porcelain").stdout.decode()
    place = None
    for line in listing.splitlines():
        if line.startswith("worktree "):
            place = Path(line[len("worktree ") :])
        elif line == f"branch refs/heads/{branch}" and place is not None:
            return place
    return None


def _advance(task: Task, repo: Repo, base: str, old: str, new: str, config: Config) -> Merged:
    tree = checked_out(repo, base)
    if tree is None:
        if repo.git("update-ref", f"refs/heads/{base}", new, old).returncode != 0:
            return Merged(task.id, "moved", f"{base} moved during the merge")
        return _done(task, repo, base, new, config)
    busy = _dirty(repo, base, tree)
    if busy:
        return Merged(task.id, "waiting", busy)
    _write_journal(repo, {"task": task.id, "base": base, "old": old, "new": new, "tree": str(tree)})
    proc = run_in(tree, "merge", "--ff-only", "--quiet", new)
    repo.journal.unlink(missing_ok=True)
    if proc.returncode != 0:
        if repo.rev(f"refs/heads/{base}") != old:
            return Merged(task.id, "moved", f"{base} moved during the merge")
        said = proc.stderr.decode(errors="replace").strip().splitlines()
        return Merged(
            task.id,
            "waiting",
            f"waits for {tree}: git would not fast-forward {base} there "
            f"({said[0] if said else 'no reason given'})",
        )
    return _done(task, repo, base, new, config)


def _dirty(repo: Repo, base: str, tree: Path | None = None) -> str:
    """Why the base branch cannot advance now: it is checked out in a tree with uncommitted
    changes to tracked files ("" when it can)."""
    tree = tree or checked_out(repo, base)
    if tree is None:
        return ""
    status = run_in(tree, "status", "--porcelain", "--untracked-files=no")
    if status.returncode == 0 and not status.stdout.strip():
        return ""
    return (
        f"waits for {tree} to be clean: {base} is checked out there with uncommitted changes "
        "(commit or stash them; fleet never touches them)"
    )


def _done(task: Task, repo: Repo, base: str, commit: str, config: Config) -> Merged:
    VERIFIED.pop(task.id, None)
    pruned = prune_task(repo, task.id, base) if config.prune_merged else False
    return Merged(task.id, "merged", commit=commit, base=base, pruned=pruned)


def prune_task(repo: Repo, task_id: str, base: str, place: Path | None = None) -> bool:
    """Remove a task's worktree and branch once its branch is in `base` and its tree is clean.
    Anything not merged, or uncommitted, stays."""
    place = place or checked_out(repo, f"fleet/{task_id}")
    branch = f"refs/heads/fleet/{task_id}"
    if repo.git("merge-base", "--is-ancestor", branch, f"refs/heads/{base}").returncode != 0:
        return False
    if place is not None and (place / ".git").exists():
        status = run_in(place, "status", "--porcelain")
        if status.returncode != 0 or status.stdout.strip():
            return False
        if repo.git("worktree", "remove", str(place)).returncode != 0:
            return False
    return repo.git("branch", "-D", f"fleet/{task_id}").returncode == 0


def _write_journal(repo: Repo, data: dict[str, Any]) -> None:
    tmp = repo.journal.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(repo.journal)


def finish_journal(repo: Repo) -> None:
    """A fast-forward of a user's tree killed between writing the tree and moving the ref:
    finish it (the tree already holds `new`), so the base branch is after the merge."""
    try:
        data = json.loads(repo.journal.read_text())
    except (OSError, ValueError):
        return
    base, old, new = str(data.get("base")), str(data.get("old")), str(data.get("new"))
    tree = Path(str(data.get("tree")))
    if repo.rev(f"refs/heads/{base}") == old and tree.is_dir():
        index_tree = run_in(tree, "write-tree").stdout.decode().strip()
        new_tree = repo.rev(new) and repo.git("rev-parse", f"{new}^{{tree}}").stdout.decode()
        if index_tree and index_tree == str(new_tree).strip():
            repo.git("update-ref", f"refs/heads/{base}", new, old)
    repo.journal.unlink(missing_ok=True)
