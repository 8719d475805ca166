"""The delivery fields of a task, the base branch read without git, and old stores."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from supervisor.errors import BadInput
from supervisor.model import Task
from supervisor.queue.mutations import NewTask, create
from supervisor.run import delivery
from supervisor.store.repo import head_branch
from supervisor.store.store import Store


def test_a_task_written_before_delivery_reads_unchanged() -> None:
    old = {"id": "fl-abcd", "title": "old", "status": "closed", "attempts": [{"n": 1}]}
    task = Task.from_dict(old)
    assert task.deliver == task.check == task.base_branch == "" and task.delivery is None
    assert task.to_dict() == {**old, "priority": 2, "issue_type": "task"}


def test_delivery_fields_round_trip_and_bad_ones_are_named() -> None:
    task = Task(id="fl-abcd", title="t", deliver="branch", check="make test", base_branch="dev")
    task.delivery = {"state": "queued", "queued_at": "2026-01-01T00:00:00.000000Z"}
    again = Task.from_dict(json.loads(json.dumps(task.to_dict())))
    assert again == task
    with pytest.raises(ValueError, match="deliver 'later' is not one of merge, branch, none"):
        Task.from_dict({"id": "fl-abcd", "title": "t", "deliver": "later"})
    with pytest.raises(ValueError, match="delivery is not an object"):
        Task.from_dict({"id": "fl-abcd", "title": "t", "delivery": "merged"})


def test_create_records_the_branch_checked_out_and_refuses_a_bad_mode(
    store: Store, git_repo: Path
) -> None:
    subprocess.run(["git", "-C", str(git_repo), "checkout", "-qb", "feature"], check=True)
    (git_repo / "sub").mkdir()
    task = create(store, NewTask(title="t", cwd=str(git_repo / "sub"), deliver="none"))
    assert task.base_branch == "feature" and task.deliver == "none"
    head = store.head()
    with pytest.raises(BadInput, match="is not a delivery mode"):
        create(store, NewTask(title="t", cwd=str(git_repo), deliver="pr"))
    assert store.head() == head


def test_head_branch_follows_a_worktree_and_says_nothing_when_detached(
    git_repo: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    subprocess.run(
        ["git", "-C", str(git_repo), "worktree", "add", "-q", "-b", "side", str(other)], check=True
    )
    assert head_branch(git_repo) == "main" and head_branch(other) == "side"
    subprocess.run(["git", "-C", str(other), "checkout", "-q", "--detach"], check=True)
    assert head_branch(other) == "" and head_branch(tmp_path / "nowhere") == ""


def test_author_and_message() -> None:
    who = delivery.author("claude", "claude-sonnet-4-5", "work acct")
    assert who["GIT_AUTHOR_NAME"] == "claude (claude-sonnet-4-5, account work acct)"
    assert who["GIT_AUTHOR_EMAIL"] == "claude+work-acct@fleet.invalid"
    text = delivery.message("x" * 100 + "\nmore", "fl-abcd", 2, "codex", "")
    first, rest = text.split("\n", 1)
    assert len(first) == 72 and first.endswith("…")
    assert rest.rstrip().endswith(
        "Fleet-Task: fl-abcd\nFleet-Attempt: 2\nFleet-Coder: codex\nFleet-Model: default"
    )


def test_a_big_diff_is_cut_and_says_so(git_repo: Path, tmp_path: Path) -> None:
    worktrees = tmp_path / "wt"
    place = worktrees / "repo-x" / "fl-abcd"
    subprocess.run(
        ["git", "-C", str(git_repo), "worktree", "add", "-q", "-b", "fleet/fl-abcd", str(place)],
        check=True,
    )
    (place / "big.txt").write_text("".join(f"line {i}\n" for i in range(60_000)))
    who = delivery.author("shell", "", "")
    text = delivery.message("big", "fl-abcd", 1, "shell", "")
    record, diff = delivery.record_for(str(place), worktrees, "main", who, text, "me@host")
    assert record["diff_cut"] and record["added"] == 60_000
    assert len(diff) < delivery.DIFF_CAP + 100 and diff.endswith(b"bytes]\n")
    outside, nothing = delivery.record_for(str(git_repo), worktrees, "main", who, text, "me@h")
    assert outside == {} and nothing == b""  # the user's own tree: never committed in
