"""Stacked work: a task's worktree built on its base branch and on its blockers' branches.

Before every attempt the task's branch `fleet/<id>` is brought up to date: its base branch, then
each blocker's branch that exists, is merged in unless it is already there. A dependent therefore
sees its blockers' files, and a retry sees what was merged since the last one (by the merge queue
or by hand). A conflict is not a crash: the merge is left in the worktree with its conflict
markers, and the agent is told which files to resolve; fleet commits the resolution when the
attempt ends. A worktree with uncommitted changes is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from supervisor.model import Task
from supervisor.run import delivery, worktree
from supervisor.store.git import run_in
from supervisor.store.repo import head_branch


@dataclass
class Entered:
    """Where an attempt runs, and what the agent must know about its branch."""

    workdir: Path
    notes: list[str] = field(default_factory=list)
    fresh: Path | None = None  # the worktree this attempt created (removed if setup fails)
    start: str = ""  # the branch's commit when the agent starts: its work is measured from it


def base_of(task: Task) -> str:
    """The branch the task's work is delivered to: recorded at create, else the branch checked
    out in its directory now."""
    return task.base_branch or (head_branch(Path(task.cwd)) if task.cwd else "")


def enter(task: Task, cwd: Path, worktrees: Path) -> Entered:
    """Prepare the task's worktree (created on first use) and bring it up to date."""
    root = worktree.repo_root(cwd)
    if root is None:
        return Entered(cwd)
    base = base_of(task)
    place = worktree.place_of(root, task.id, worktrees)
    existed = (place / ".git").exists()
    workdir = worktree.prepare(cwd, task.id, worktrees, f"refs/heads/{base}" if base else "HEAD")
    entered = Entered(workdir, fresh=None if existed else place)
    sources = [f"refs/heads/{base}"] if base else []
    sources += [f"refs/heads/fleet/{b}" for b in task.blockers()]
    entered.notes = update(place, sources)
    head = run_in(place, "rev-parse", "HEAD")
    entered.start = head.stdout.decode().strip() if head.returncode == 0 else ""
    return entered


def update(place: Path, sources: list[str]) -> list[str]:
    """Merge each source ref into the worktree's branch unless it is already in; what the agent
    must be told (a conflict left to resolve, a tree that could not be brought up to date)."""
    if run_in(place, "rev-parse", "--verify", "--quiet", "MERGE_HEAD").returncode == 0:
        return [
            "A merge into your branch is still unresolved in the working directory: resolve the "
            "conflicts (`git status` lists them); fleet commits the result when you finish."
        ]
    status = run_in(place, "status", "--porcelain")
    if status.returncode != 0 or status.stdout.strip():
        return [
            "Your branch was not brought up to date with its base: the working directory holds "
            "uncommitted changes from before (they are yours to keep or finish)."
        ]
    notes: list[str] = []
    env: dict[str, str] = {}
    for n, source in enumerate(sources):
        if run_in(place, "rev-parse", "--verify", "--quiet", source).returncode:
            continue  # no such branch (a blocker outside this repository, or pruned)
        if run_in(place, "merge-base", "--is-ancestor", source, "HEAD").returncode == 0:
            continue
        short = source.removeprefix("refs/heads/")
        env = env or user_identity(place)
        try:
            delivery.git(place, "merge", "--no-edit", "-m", f"Merge {short}", source, env=env)
        except delivery.DeliveryError as exc:
            conflicted = run_in(place, "diff", "--name-only", "--diff-filter=U").stdout.decode()
            files = conflicted.split()
            if not files:
                if run_in(place, "rev-parse", "-q", "--verify", "MERGE_HEAD").returncode == 0:
                    run_in(place, "merge", "--abort")
                notes.append(f"Your branch could not be brought up to date with {short}: {exc}")
                continue
            rest = [s.removeprefix("refs/heads/") for s in sources[n + 1 :]]
            later = f" ({', '.join(rest)} will be merged at the next attempt)" if rest else ""
            notes.append(
                f"Merging {short} into your branch conflicted in: {', '.join(files)}. The "
                "conflict markers are in those files in your working directory: resolve them, "
                "keeping the intent of both sides; fleet commits the merge when you finish"
                f"{later}."
            )
            break
    return notes


def discard(fresh: Path | None) -> None:
    """Remove a worktree and branch this attempt created, when setup failed before the agent
    ran: only a clean tree whose branch holds nothing of its own goes."""
    if fresh is None or not (fresh / ".git").exists():
        return
    status = run_in(fresh, "status", "--porcelain")
    if status.returncode != 0 or status.stdout.strip():
        return
    branch = f"fleet/{fresh.name}"
    common = run_in(fresh, "rev-parse", "--path-format=absolute", "--git-common-dir")
    if common.returncode != 0:
        return
    repo = Path(common.stdout.decode().strip())
    if run_in(fresh, "worktree", "remove", str(fresh)).returncode == 0:
        run_in(repo, "branch", "-D", branch)


def user_identity(place: Path) -> dict[str, str]:
    """The user's git identity as author and committer (of the merges fleet makes for them)."""
    from supervisor.store.store import user_actor

    who = delivery.committer(place, user_actor())
    return {
        **who,
        "GIT_AUTHOR_NAME": who["GIT_COMMITTER_NAME"],
        "GIT_AUTHOR_EMAIL": who["GIT_COMMITTER_EMAIL"],
    }
