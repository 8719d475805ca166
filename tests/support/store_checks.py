"""Checks on a fleet store made with git itself, independently of `supervisor.store.store`."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.model import ID_PATTERN, Task
from supervisor.store.paths import every_task_path, is_task_file, task_id_of

EVENTS = {
    "created",
    "updated",
    "closed",
    "reopened",
    "dep_added",
    "dep_removed",
    "imported",
    "config_changed",
    "migrated",
}
TRAILER = re.compile(r"^(Fleet-[A-Za-z-]+): (.+)$")


def git(home: Path, *args: str, input: str | None = None) -> str:
    """`git --git-dir=HOME/.git ARGS`, checked; its stdout."""
    proc = subprocess.run(
        ["git", f"--git-dir={home / '.git'}", *args],
        capture_output=True,
        text=True,
        check=False,
        input=input,
    )
    assert proc.returncode == 0, f"git {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout


def head(home: Path) -> str | None:
    """The commit `refs/heads/main` points at, as git resolves it (None before the first)."""
    proc = subprocess.run(
        ["git", f"--git-dir={home / '.git'}", "rev-parse", "--verify", "-q", "refs/heads/main"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() or None


def assert_fsck_clean(home: Path) -> None:
    proc = subprocess.run(
        ["git", f"--git-dir={home / '.git'}", "fsck", "--full", "--strict", "--no-dangling"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == "", proc.stdout + proc.stderr


def commits(home: Path) -> list[str]:
    """Every commit of `refs/heads/main`, newest first."""
    return git(home, "rev-list", "refs/heads/main").split()


def tree_tasks(home: Path, rev: str = "refs/heads/main") -> dict[str, dict[str, Any]]:
    """Every task file of `rev`, parsed by `Task.from_dict`, as id -> stored JSON."""
    listing = [line.split() for line in git(home, "ls-tree", "-r", rev, "--", "tasks").splitlines()]
    if not listing:
        return {}
    proc = subprocess.run(
        ["git", f"--git-dir={home / '.git'}", "cat-file", "--batch"],
        input="".join(f"{entry[2]}\n" for entry in listing).encode(),
        capture_output=True,
        check=True,
    )
    out: dict[str, dict[str, Any]] = {}
    data, pos = proc.stdout, 0
    for entry in listing:
        end = data.index(b"\n", pos)
        size = int(data[pos:end].split()[2])
        stored = json.loads(data[end + 1 : end + 1 + size])
        pos = end + 1 + size + 1
        task = Task.from_dict(stored)
        assert entry[3] in every_task_path(task.id)
        out[task.id] = stored
    return out


@dataclass
class Logged:
    """One commit as `git log` shows it."""

    sha: str
    parents: list[str]
    summary: str
    trailers: dict[str, list[str]]
    paths: set[str]  # the files it changed


def history(home: Path, *args: str) -> list[Logged]:
    """`git log ARGS` (default: all of `refs/heads/main`), newest first, in one git call."""
    out = git(
        home,
        "log",
        "--no-renames",
        "--name-only",
        "--format=%x1e%H %P%n%B%x1f",
        *(args or ("refs/heads/main",)),
    )
    found = []
    for record in out.split("\x1e")[1:]:
        body, _, names = record.partition("\x1f")
        first, _, text = body.partition("\n")
        sha, *parents = first.split()
        lines = text.rstrip("\n").split("\n")
        trailers: dict[str, list[str]] = {}
        for line in lines[lines.index("") + 1 :] if "" in lines else []:
            match = TRAILER.match(line)
            if match:
                trailers.setdefault(match.group(1), []).append(match.group(2))
        found.append(Logged(sha, parents, lines[0], trailers, set(names.split())))
    return found


def logged(home: Path, commit: str) -> Logged:
    return history(home, "-n1", commit)[0]


def message(home: Path, commit: str) -> tuple[str, dict[str, list[str]]]:
    """A commit's first line and its `Fleet-*` trailers (name -> values in order)."""
    entry = logged(home, commit)
    return entry.summary, entry.trailers


def assert_well_formed(entry: Logged) -> None:
    """A commit as fleet writes them: one parent at most, a summary, the trailers, and task
    trailers naming exactly the task files it changed."""
    assert len(entry.parents) <= 1, f"{entry.sha} has {len(entry.parents)} parents"
    assert entry.summary.strip(), f"{entry.sha} has no summary"
    trailers = entry.trailers
    assert len(trailers.get("Fleet-Event", [])) == 1, trailers
    assert trailers["Fleet-Event"][0] in EVENTS, trailers
    assert len(trailers.get("Fleet-Actor", [])) == 1, trailers
    tasks = trailers.get("Fleet-Task", [])
    assert all(ID_PATTERN.match(t) for t in tasks), tasks
    touched = {task_id_of(p) for p in entry.paths if is_task_file(p)}
    named = set(tasks)
    if trailers["Fleet-Event"][0] == "migrated":  # moves every task file, names none
        assert not tasks, tasks
    elif "Fleet-Tasks-More" in trailers:  # the first 50 are named, the rest counted
        assert len(tasks) == 50 and named <= touched, (entry.summary, tasks)
        assert len(touched) == 50 + int(trailers["Fleet-Tasks-More"][0]), entry.summary
    else:
        assert touched == named, (entry.summary, touched, tasks)


def assert_linear_and_well_formed(home: Path) -> list[Logged]:
    """Every commit of `refs/heads/main` well formed, each the parent of the next; newest first."""
    entries = history(home)
    assert git(home, "rev-list", "--merges", "refs/heads/main") == ""
    for newer, older in itertools.pairwise(entries):
        assert newer.parents == [older.sha]
    assert entries[-1].parents == []
    for entry in entries:
        assert_well_formed(entry)
    return entries


def run_record(task: Task) -> dict[str, Any]:
    """The task's run record as its JSON holds it ({} when no attempt runs)."""
    return task.run.to_dict() if task.run is not None else {}
