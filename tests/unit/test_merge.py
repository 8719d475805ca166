"""The merge queue's crash recovery: a fast-forward of the user's tree killed after git wrote
the files but before it moved the ref is finished; a journal that does not match is dropped."""

from __future__ import annotations

import subprocess
from pathlib import Path

from supervisor.model import Task
from supervisor.run import check, merge


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def new_commit(repo: Path) -> tuple[str, str]:
    """A commit on top of main, made without moving main: (old, new)."""
    old = git(repo, "rev-parse", "main")
    blob = subprocess.run(
        ["git", "-C", str(repo), "hash-object", "-w", "--stdin"],
        input="new\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    git(repo, "read-tree", "main")
    git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},new.txt")
    tree = git(repo, "write-tree")
    git(repo, "read-tree", "main")
    ident = ["-c", "user.name=t", "-c", "user.email=t@x"]
    return old, git(repo, *ident, "commit-tree", tree, "-p", old, "-m", "new")


def test_a_fast_forward_killed_before_the_ref_moved_is_finished(
    git_repo: Path, tmp_path: Path
) -> None:
    repo = merge.repo_of(Task(id="fl-abcd", title="t", cwd=str(git_repo)), tmp_path / "home")
    assert repo is not None
    old, new = new_commit(git_repo)
    repo.merges.mkdir(parents=True)
    merge._write_journal(
        repo, {"task": "fl-abcd", "base": "main", "old": old, "new": new, "tree": str(git_repo)}
    )
    git(git_repo, "read-tree", "-m", "-u", old, new)  # git wrote the tree, then was killed
    assert git(git_repo, "rev-parse", "main") == old
    merge.finish_journal(repo)
    assert git(git_repo, "rev-parse", "main") == new
    assert git(git_repo, "status", "--porcelain") == ""
    assert not repo.journal.exists()


def test_a_journal_of_a_fast_forward_that_never_wrote_is_dropped(
    git_repo: Path, tmp_path: Path
) -> None:
    repo = merge.repo_of(Task(id="fl-abcd", title="t", cwd=str(git_repo)), tmp_path / "home")
    assert repo is not None
    old, new = new_commit(git_repo)
    repo.merges.mkdir(parents=True)
    merge._write_journal(
        repo, {"task": "fl-abcd", "base": "main", "old": old, "new": new, "tree": str(git_repo)}
    )
    merge.finish_journal(repo)
    assert git(git_repo, "rev-parse", "main") == old  # before, untouched
    assert not repo.journal.exists()


def test_stale_check_is_stopped_only_when_it_is_the_recorded_process(tmp_path: Path) -> None:
    record = tmp_path / "check.json"
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        check.record_check(record, proc.pid)
        wrong = record.read_text().replace('"create_time": ', '"create_time": 1')
        record.write_text(wrong)
        assert not check.stop_stale_check(record)  # another process under that pid: left alone
        assert proc.poll() is None
        check.record_check(record, proc.pid)
        assert check.stop_stale_check(record)
        assert proc.wait(5) == -9
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
