"""`fleet log --verify`: the history fleet wrote verifies; an amended commit, a rewritten branch,
a record edited and committed behind fleet's back, an edited journal line and an object edited in
place are each reported, and `fleet log --verify` exits 1."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import zlib
from pathlib import Path

from supervisor.queue.mutations import NewTask, create
from supervisor.store import audit
from supervisor.store.paths import task_path
from supervisor.store.store import Store
from tests.conftest import Result


def git(home: Path, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> str:
    full_env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "mallory",
        "GIT_AUTHOR_EMAIL": "m@x",
        "GIT_COMMITTER_NAME": "mallory",
        "GIT_COMMITTER_EMAIL": "m@x",
        **(env or {}),
    }
    return subprocess.run(
        ["git", f"--git-dir={home / '.git'}", *args],
        capture_output=True,
        text=True,
        check=True,
        input=input,
        env=full_env,
    ).stdout.strip()


def seeded(home: Path, n: int = 3) -> list[str]:
    store = Store.open(home)
    try:
        return [create(store, NewTask(title=f"task {i}")).id for i in range(n)]
    finally:
        store.close()


def kinds(home: Path) -> list[str]:
    store = Store.open(home)
    try:
        return sorted({p.kind for p in audit.verify(store).problems})
    finally:
        store.close()


def test_the_history_fleet_wrote_verifies(home: Path, fleet: object) -> None:
    seeded(home)
    store = Store.open(home)
    report = audit.verify(store)
    store.close()
    assert report.ok, report.problems
    assert (report.commits, report.recorded, report.before_journal) == (3, 3, 0)
    assert stat.S_IMODE((home / "audit" / "key").stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "audit" / "journal").stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "audit").stat().st_mode) == 0o700
    result: Result = fleet("log", "--verify")  # type: ignore[operator]
    assert result.code == 0, result.err
    assert "verified: the history is the one fleet wrote" in result.out


def test_an_amended_commit_is_reported(home: Path, fleet: object) -> None:
    seeded(home)
    head = git(home, "rev-parse", "refs/heads/main")
    tree = git(home, "rev-parse", "refs/heads/main^{tree}")
    parent = git(home, "rev-parse", "refs/heads/main~1")
    amended = git(home, "commit-tree", tree, "-p", parent, "-m", "create: amended")
    git(home, "update-ref", "refs/heads/main", amended, head)
    assert kinds(home) == ["not-in-history", "not-recorded"]
    result: Result = fleet("log", "--verify", "--json")  # type: ignore[operator]
    assert result.code == 1
    report = json.loads(result.out)
    assert report["ok"] is False
    assert {p["commit"] for p in report["problems"]} == {head, amended}


def test_a_rewritten_branch_is_reported(home: Path) -> None:
    seeded(home, 4)
    git(home, "update-ref", "refs/heads/main", git(home, "rev-parse", "refs/heads/main~2"))
    assert kinds(home) == ["not-in-history"]  # two recorded commits dropped
    seeded(home, 1)  # fleet goes on writing on the rewritten branch: still reported
    assert kinds(home) == ["not-in-history"]


def test_a_record_edited_and_committed_behind_fleets_back_is_reported(home: Path) -> None:
    [task_id, *_] = seeded(home)
    path = task_path(task_id)
    data = json.loads(git(home, "show", f"refs/heads/main:{path}"))
    data["title"] = "something else"
    blob = git(home, "hash-object", "-w", "--stdin", input=json.dumps(data))
    index = home / "tmp" / "evil-index"
    env = {"GIT_INDEX_FILE": str(index)}
    git(home, "read-tree", "refs/heads/main", env=env)
    git(home, "update-index", "--cacheinfo", f"100644,{blob},{path}", env=env)
    tree = git(home, "write-tree", env=env)
    head = git(home, "rev-parse", "refs/heads/main")
    edited = git(home, "commit-tree", tree, "-p", head, "-m", "update: quiet edit")
    git(home, "update-ref", "refs/heads/main", edited, head)
    store = Store.open(home)
    report = audit.verify(store)
    store.close()
    assert [p.kind for p in report.problems] == ["not-recorded"]
    assert "update: quiet edit" in report.problems[0].detail


def test_an_edited_journal_line_is_reported(home: Path) -> None:
    seeded(home)
    journal = home / "audit" / "journal"
    lines = journal.read_text().splitlines()
    fields = lines[1].split(" ")
    fields[3] = str(int(fields[3]) + 60)  # the time moved by a minute
    lines[1] = " ".join(fields)
    journal.write_text("\n".join(lines) + "\n")
    assert kinds(home) == ["journal-edited"]


def test_an_object_edited_in_place_is_reported(home: Path) -> None:
    [task_id, *_] = seeded(home)
    blob = git(home, "rev-parse", f"refs/heads/main:{task_path(task_id)}")
    path = home / ".git" / "objects" / blob[:2] / blob[2:]
    raw = zlib.decompress(path.read_bytes()).replace(b"task 0", b"task X")
    path.chmod(0o644)
    path.write_bytes(zlib.compress(raw))
    assert kinds(home) == ["object-corrupt"]


def test_a_store_older_than_the_journal_verifies_from_where_it_began(home: Path) -> None:
    seeded(home, 2)
    shutil.rmtree(home / "audit")  # as an earlier fleet left it
    seeded(home, 2)
    store = Store.open(home)
    report = audit.verify(store)
    store.close()
    assert report.ok, report.problems
    assert (report.commits, report.recorded, report.before_journal) == (4, 2, 2)


def ssh_key(tmp_path: Path) -> Path:
    key = tmp_path / "signing" / "id_ed25519"
    key.parent.mkdir(mode=0o700)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleet", "-f", str(key)], check=True
    )
    return key


def test_signed_commits_verify_and_an_unsigned_one_is_reported(
    home: Path, tmp_path: Path, fleet: object
) -> None:
    key = ssh_key(tmp_path)
    seeded(home, 1)
    result: Result = fleet("config", "set", f"signing_key={key}")  # type: ignore[operator]
    assert result.code == 0, result.err
    seeded(home, 2)
    head = git(home, "rev-parse", "refs/heads/main")
    assert "gpgsig -----BEGIN SSH SIGNATURE-----" in git(home, "cat-file", "commit", head)
    verified: Result = fleet("log", "--verify")  # type: ignore[operator]
    assert verified.code == 0, verified.out + verified.err
    # a commit added behind fleet's back, unsigned
    tree = git(home, "rev-parse", "refs/heads/main^{tree}")
    forged = git(home, "commit-tree", tree, "-p", head, "-m", "update: forged")
    git(home, "update-ref", "refs/heads/main", forged, head)
    report: Result = fleet("log", "--verify", "--json")  # type: ignore[operator]
    assert report.code == 1
    problems = {(p["kind"], p["commit"]) for p in json.loads(report.out)["problems"]}
    assert problems == {("not-recorded", forged), ("unsigned", forged)}


def test_a_signing_key_that_cannot_sign_changes_nothing(
    home: Path, tmp_path: Path, fleet: object
) -> None:
    seeded(home, 1)
    missing = tmp_path / "no-such-key"
    assert fleet("config", "set", f"signing_key={missing}").code == 0  # type: ignore[operator]
    head = git(home, "rev-parse", "refs/heads/main")
    result: Result = fleet("bd", "create", "signed?")  # type: ignore[operator]
    assert result.code == 1
    assert f"could not sign the commit with {missing}" in result.err
    assert "hint: check `signing_key`" in result.err
    assert git(home, "rev-parse", "refs/heads/main") == head
