"""Delivery in the loop: each attempt's work committed on `fleet/<id>`, recorded, stacked on
its blockers, and merged onto the base branch by the merge queue (real git repositories; the
agents are fake processes whose work the test writes into their worktrees)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from supervisor.run import merge, merges
from tests.support.rig import T0, Rig

pytestmark = pytest.mark.loop


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def commit_file(repo: Path, name: str, text: str, message: str = "user change") -> None:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "-c", "user.name=user", "-c", "user.email=u@x.invalid", "commit", "-qm", message)


@pytest.fixture
def repo_rig(rig: Rig, git_repo: Path) -> Rig:
    rig.configure("isolation=worktree", "max_attempts=3")
    git(git_repo, "config", "user.name", "the user")
    git(git_repo, "config", "user.email", "user@example.invalid")
    rig.work = git_repo
    return rig


def work(rig: Rig, task_id: str, files: dict[str, str], summary: str = "did it") -> None:
    """The running agent of `task_id` writes `files` and finishes with a result."""
    run = rig.run_of(task_id)
    for name, text in files.items():
        (run.cwd / name).parent.mkdir(parents=True, exist_ok=True)
        (run.cwd / name).write_text(text)
    rig.finish(task_id, result={"status": "done", "summary": summary})


def settle(rig: Rig, ticks: int = 3) -> None:
    for _ in range(ticks):
        rig.tick(rig.now + 3)


def test_attempt_work_is_committed_authored_by_the_agent_and_recorded(repo_rig: Rig) -> None:
    rig = repo_rig
    task_id = rig.task("write a", deliver="branch")
    rig.tick(T0)
    run = rig.run_of(task_id)
    (run.cwd / ".gitignore").write_text("*.log\n")
    (run.cwd / "debug.log").write_text("noise\n")
    work(rig, task_id, {"a.txt": "a\n"}, "Wrote a.txt\n\nwith care")
    rig.tick(T0 + 1)
    task = rig.get(task_id)
    assert task.status == "closed"
    record = task.attempts[-1]["work"]
    assert record["branch"] == f"fleet/{task_id}" and record["files"] == 2
    assert {f["path"] for f in record["stat"]} == {".gitignore", "a.txt"}
    assert record["added"] == 2 and not record["diff_cut"]
    diff = rig.committed(task_id, 1, "diff.patch") or b""
    assert b"+a\n" in diff and b"debug.log" not in diff
    log = git(rig.work, "log", "-1", "--format=%an|%ae|%cn|%B", f"fleet/{task_id}")
    author, email, committer, body = log.split("|", 3)
    assert author == "scripted (m-7)" or author.startswith("shell")
    assert email.endswith("@fleet.invalid") and committer == "the user"
    assert body.startswith("Wrote a.txt\n\nwith care\n")
    assert f"Fleet-Task: {task_id}" in body and "Fleet-Attempt: 1" in body
    assert "Fleet-Coder: shell" in body and "Fleet-Model:" in body
    assert (run.cwd / "debug.log").exists()  # ignored, and never deleted
    assert task.delivery == {"state": "branch", "branch": f"fleet/{task_id}"}
    assert git(rig.work, "log", "-1", "--format=%s", "main").strip() == "init"


def knowledge_of(rig: Rig, task_id: str) -> str:
    run = rig.run_of(task_id)
    return Path(run.env["FLEET_RESULT_FILE"]).with_name("knowledge.md").read_text()


def test_three_parallel_tasks_all_arrive_on_the_base_branch(repo_rig: Rig) -> None:
    rig = repo_rig
    ids = [rig.task(f"write {n}") for n in "abc"]
    rig.tick(T0)
    assert len(rig.fake.running()) == 3
    for n, task_id in zip("abc", ids, strict=True):
        work(rig, task_id, {f"{n}.txt": f"{n}\n"}, f"Wrote {n}.txt")
    settle(rig, 5)
    for n, task_id in zip("abc", ids, strict=True):
        task = rig.get(task_id)
        assert task.status == "closed", (task.status_reason, task.delivery)
        assert task.delivery and task.delivery["state"] == "merged", task.delivery
        assert git(rig.work, "show", f"main:{n}.txt") == f"{n}\n"
        assert (rig.work / f"{n}.txt").read_text() == f"{n}\n"  # the user's tree, fast-forwarded
    authors = git(rig.work, "log", "--format=%an", "main").split("\n")
    assert sum(1 for a in authors if a.startswith("shell")) == 3
    subjects = git(rig.work, "log", "--merges", "--format=%s", "main").splitlines()
    assert len(subjects) == 3 and all(s.startswith("Merge fleet/") for s in subjects)
    assert git(rig.work, "status", "--porcelain") == ""
    events = rig.store.git.out("log", "--format=%B", "refs/heads/main")
    assert events.count("Fleet-Event: merged") == 3
    # merged work is pruned: no worktree, no branch
    assert not list((rig.store.home / "worktrees").glob("repo-*/fl-*"))
    assert git(rig.work, "branch", "--list", "fleet/*") == ""


def test_same_line_conflict_reopens_with_the_conflict_then_merges(repo_rig: Rig) -> None:
    rig = repo_rig
    first, second = rig.task("one"), rig.task("two")
    rig.tick(T0)
    work(rig, first, {"README.md": "first\n"})
    rig.tick(rig.now + 1)  # first closes and merges
    work(rig, second, {"README.md": "second\n"})
    settle(rig, 2)
    assert rig.get(first).delivery["state"] == "merged"  # type: ignore[index]
    task = rig.get(second)
    assert task.status == "open" and task.delivery
    assert task.delivery["state"] == "reopened" and "README.md" in task.delivery["handoff"]
    assert "reopened by the merge queue" in task.status_reason
    assert git(rig.work, "show", "main:README.md") == "first\n"
    settle(rig, 1)
    while not rig.runs_of(second)[1:]:
        rig.tick(rig.now + 60)
    run = rig.run_of(second)
    text = knowledge_of(rig, second)
    assert "Your work did not merge" in text and "conflicted in: README.md" in text
    assert "conflict markers" in text
    assert "<<<<<<<" in (run.cwd / "README.md").read_text()
    work(rig, second, {"README.md": "first\nsecond\n"}, "resolved")
    settle(rig, 3)
    task = rig.get(second)
    assert task.status == "closed" and task.delivery and task.delivery["state"] == "merged"
    assert git(rig.work, "show", "main:README.md") == "first\nsecond\n"


def test_failing_check_reopens_with_its_output_and_base_stays(repo_rig: Rig) -> None:
    rig = repo_rig
    before = git(rig.work, "rev-parse", "main")
    task_id = rig.task(
        "bad", check="echo checking; test -f good.txt || { echo no good.txt; exit 3; }"
    )
    rig.tick(T0)
    work(rig, task_id, {"bad.txt": "x\n"})
    settle(rig, 2)
    task = rig.get(task_id)
    assert git(rig.work, "rev-parse", "main") == before
    assert task.status == "open" and task.delivery and task.delivery["state"] == "reopened"
    assert "no good.txt" in task.delivery["handoff"] and "exit code 3" in task.delivery["handoff"]
    while not rig.runs_of(task_id)[1:]:
        rig.tick(rig.now + 60)
    assert "no good.txt" in knowledge_of(rig, task_id)
    work(rig, task_id, {"good.txt": "ok\n"})
    settle(rig, 3)
    assert rig.get(task_id).delivery["state"] == "merged"  # type: ignore[index]
    assert git(rig.work, "show", "main:good.txt") == "ok\n"


def test_red_check_after_max_attempts_blocks_with_the_reason(repo_rig: Rig) -> None:
    rig = repo_rig
    rig.configure("check=exit 1")
    task_id = rig.task("never green", max_attempts=1)
    rig.tick(T0)
    work(rig, task_id, {"x.txt": "x\n"})
    settle(rig, 2)
    task = rig.get(task_id)
    assert task.status == "blocked" and "its merge failed 1 times" in task.status_reason


def test_dependent_starts_with_its_blockers_files_and_summary(repo_rig: Rig) -> None:
    rig = repo_rig
    blocker = rig.task("make lib", deliver="branch")
    dependent = rig.task("use lib", deps=[blocker])
    rig.tick(T0)
    work(rig, blocker, {"lib.py": "X = 1\n"}, "Made lib.py")
    settle(rig, 2)
    run = rig.run_of(dependent)
    assert (run.cwd / "lib.py").read_text() == "X = 1\n"
    text = knowledge_of(rig, dependent)
    assert "Made lib.py" in text and "- lib.py +1 -0" in text


def test_dirty_user_tree_is_never_touched_and_the_merge_waits(repo_rig: Rig) -> None:
    rig = repo_rig
    (rig.work / "README.md").write_text("my edit, not committed\n")
    task_id = rig.task("add file")
    rig.tick(T0)
    before = git(rig.work, "rev-parse", "main")
    work(rig, task_id, {"new.txt": "new\n"})
    settle(rig, 2)
    task = rig.get(task_id)
    assert task.status == "closed" and task.delivery and task.delivery["state"] == "queued"
    assert "uncommitted changes" in task.delivery["waiting"]
    assert "uncommitted changes" in merges.waiting(rig.store.home)[task_id]
    assert rig.reports[-1].merging == 0  # `supervisor run --until-idle` does not wait for a person
    assert git(rig.work, "rev-parse", "main") == before
    assert (rig.work / "README.md").read_text() == "my edit, not committed\n"
    assert not (rig.work / "new.txt").exists()
    git(rig.work, "checkout", "README.md")  # the user cleans up
    settle(rig, 2)
    assert rig.get(task_id).delivery["state"] == "merged"  # type: ignore[index]
    assert (rig.work / "new.txt").read_text() == "new\n"


def test_base_not_checked_out_advances_by_ref(repo_rig: Rig) -> None:
    rig = repo_rig
    git(rig.work, "checkout", "-q", "-b", "topic")
    task_id = rig.task("on topic")
    git(rig.work, "checkout", "-q", "main")
    rig.tick(T0)
    work(rig, task_id, {"t.txt": "t\n"})
    settle(rig, 2)
    assert rig.get(task_id).delivery["state"] == "merged"  # type: ignore[index]
    assert git(rig.work, "show", "topic:t.txt") == "t\n"
    assert not (rig.work / "t.txt").exists()


def test_retry_brings_a_stale_worktree_up_to_date(repo_rig: Rig) -> None:
    rig = repo_rig
    task_id = rig.task("flaky", deliver="branch")
    rig.tick(T0)
    rig.finish(task_id, code=1)
    rig.tick(rig.now + 1)
    commit_file(rig.work, "fix.txt", "merged by hand\n")
    while not rig.runs_of(task_id)[1:]:
        rig.tick(rig.now + 60)
    assert (rig.run_of(task_id).cwd / "fix.txt").read_text() == "merged by hand\n"


def test_setup_failure_leaves_no_branch_or_worktree(repo_rig: Rig) -> None:
    rig = repo_rig
    rig.fake.missing.add("/bin/sh")
    ids = [rig.task(f"cannot start {n}") for n in range(3)]
    rig.tick(T0)
    for task_id in ids:
        assert rig.get(task_id).status == "blocked"
    assert not list((rig.store.home / "worktrees").glob("*/*"))
    assert git(rig.work, "branch", "--list", "fleet/*") == ""


def test_cli_names_the_branch_shows_the_diff_and_merges_on_demand(
    repo_rig: Rig, fleet: Any, home: Path
) -> None:
    rig = repo_rig
    task_id = rig.task("left on a branch", deliver="branch")
    rig.tick(T0)
    work(rig, task_id, {"b.txt": "one\ntwo\n"}, "Wrote b.txt")
    rig.tick(rig.now + 1)
    h = ("--home", str(home))
    shown = fleet(*h, "task", task_id)
    assert shown.code == 0
    assert f"branch: fleet/{task_id}" in shown.out and "base branch: main" in shown.out
    assert "worktree: " + str(home / "worktrees") in shown.out
    assert "changed: 1 file +2 -0" in shown.out
    as_json = json.loads(fleet(*h, "bd", "show", task_id, "--json").out)
    assert as_json["branch"] == f"fleet/{task_id}" and as_json["worktree"].startswith(str(home))
    stat = fleet(*h, "task", task_id, "diff", "--stat")
    assert stat.code == 0 and " b.txt | +2 -0" in stat.out
    patch = fleet(*h, "task", task_id, "diff", "--attempt", "1")
    assert "+++ b/b.txt" in patch.out and "+two" in patch.out
    data = json.loads(fleet(*h, "task", task_id, "diff", "--json").out)
    assert data["files"] == 1 and data["branch"] == f"fleet/{task_id}" and "+one" in data["diff"]
    listed = fleet(*h, "tasks", "--all")
    assert "1f +2 -0" in listed.out
    assert git(rig.work, "log", "-1", "--format=%s", "main").strip() == "init"
    merged = fleet(*h, "task", task_id, "merge")
    assert merged.code == 0 and f"merged fleet/{task_id} into main" in merged.out
    assert (rig.work / "b.txt").read_text() == "one\ntwo\n"
    assert rig.get(task_id).delivery["state"] == "merged"  # type: ignore[index]
    again = fleet(*h, "task", task_id, "merge")
    assert again.code == 0 and "already merged" in again.out
    assert "merged" in rig.store.git.out("log", "-1", "--format=%B", "refs/heads/main")


def test_cli_bad_inputs_change_nothing(repo_rig: Rig, fleet: Any, home: Path) -> None:
    rig = repo_rig
    task_id = rig.task("not run yet", deliver="branch")
    h = ("--home", str(home))
    head = rig.store.head()
    merged = fleet(*h, "task", task_id, "merge")
    assert merged.code == 2 and "only a closed task's work is merged" in merged.err
    assert "hint:" in merged.err
    nothing = fleet(*h, "task", task_id, "diff")
    assert nothing.code == 2 and "has not run yet" in nothing.err
    bad = fleet(*h, "bd", "create", "x", "--deliver", "somewhere", "--cwd", str(rig.work))
    assert bad.code == 2 and "is not a delivery mode" in bad.err
    assert rig.store.head() == head


def test_merge_waiting_is_said_by_tasks_and_task(repo_rig: Rig, fleet: Any, home: Path) -> None:
    rig = repo_rig
    (rig.work / "README.md").write_text("dirty\n")
    task_id = rig.task("wait for me")
    rig.tick(T0)
    work(rig, task_id, {"w.txt": "w\n"})
    settle(rig, 2)
    h = ("--home", str(home))
    listed = {r["id"]: r for r in json.loads(fleet(*h, "tasks", "--all", "--json").out)}
    assert "waits for" in listed[task_id]["why"]
    shown = fleet(*h, "task", task_id)
    assert "merge: waits for" in shown.out and "uncommitted changes" in shown.out


def test_worktrees_listing_and_prune_never_delete_unmerged_work(
    repo_rig: Rig, fleet: Any, home: Path
) -> None:
    rig = repo_rig
    unmerged = rig.task("has work", deliver="branch")
    empty = rig.task("no change", deliver="branch")
    dirty = rig.task("dirty later", deliver="branch")
    rig.tick(T0)
    work(rig, unmerged, {"u.txt": "u\n"})
    rig.finish(empty, result={"status": "done", "summary": "nothing to do"})
    rig.finish(dirty, result={"status": "done", "summary": "nothing"})
    rig.tick(rig.now + 1)
    dirty_place = next((home / "worktrees").glob(f"*/{dirty}"))
    (dirty_place / "scratch.txt").write_text("someone's uncommitted file\n")
    h = ("--home", str(home))
    listing = json.loads(fleet(*h, "worktrees", "--json").out)
    by_task = {p["task"]: p for p in listing}
    assert by_task[unmerged]["ahead"] == 1 and not by_task[unmerged]["merged"]
    assert by_task[empty]["merged"] and not by_task[empty]["dirty"]
    assert by_task[dirty]["dirty"] and by_task[unmerged]["size"] > 0
    table = fleet(*h, "worktrees")
    assert "AHEAD/BEHIND" in table.out and f"fleet/{unmerged}" in table.out
    dry = fleet(*h, "worktrees", "prune", "--dry-run")
    assert f"would remove {by_task[empty]['path']}" in dry.out
    assert (home / "worktrees").glob(f"*/{empty}")
    pruned = fleet(*h, "worktrees", "prune")
    assert pruned.code == 0 and f"removed {by_task[empty]['path']}" in pruned.out
    assert "1 commit(s) not merged" in pruned.out and "uncommitted changes" in pruned.out
    assert (Path(by_task[unmerged]["path"]) / "u.txt").exists()
    assert (dirty_place / "scratch.txt").exists()
    assert not Path(by_task[empty]["path"]).exists()
    assert git(rig.work, "rev-parse", f"fleet/{unmerged}")
    assert git(rig.work, "branch", "--list", f"fleet/{empty}") == ""


def test_the_agents_own_commits_are_kept_as_made(repo_rig: Rig) -> None:
    rig = repo_rig
    task_id = rig.task("commits itself", deliver="branch")
    rig.tick(T0)
    run = rig.run_of(task_id)
    (run.cwd / "own.txt").write_text("own\n")
    git(run.cwd, "add", "own.txt")
    git(run.cwd, "-c", "user.name=agent self", "-c", "user.email=a@x", "commit", "-qm", "mine")
    own = git(run.cwd, "rev-parse", "HEAD").strip()
    work(rig, task_id, {"left.txt": "left over\n"}, "finished")
    rig.tick(rig.now + 1)
    log = git(rig.work, "log", "--format=%H %an %s", f"fleet/{task_id}").splitlines()
    assert log[1] == f"{own} agent self mine"  # untouched
    assert log[0].endswith(" finished") and " shell " in log[0]
    record = rig.get(task_id).attempts[-1]["work"]
    assert {f["path"] for f in record["stat"]} == {"own.txt", "left.txt"}


def test_retry_after_blocked_merges_starts_a_fresh_count(repo_rig: Rig, fleet: Any) -> None:
    rig = repo_rig
    rig.configure("check=exit 1")
    task_id = rig.task("red", max_attempts=1)
    rig.tick(T0)
    work(rig, task_id, {"r.txt": "r\n"})
    settle(rig, 2)
    assert rig.get(task_id).status == "blocked"
    code = fleet("--home", str(rig.store.home), "retry", task_id).code
    assert code == 0
    next_start = len(rig.runs_of(task_id)) + 1
    while len(rig.runs_of(task_id)) < next_start:
        rig.tick(rig.now + 60)
    rig.configure("check=exit 0")
    work(rig, task_id, {"r.txt": "r2\n"})
    settle(rig, 3)
    task = rig.get(task_id)
    assert task.delivery and task.delivery["state"] == "merged", (task.status_reason, task.delivery)


def test_dependent_whose_blocker_conflicts_with_the_base_is_told_not_crashed(
    repo_rig: Rig,
) -> None:
    rig = repo_rig
    blocker = rig.task("edit readme", deliver="branch")
    dependent = rig.task("build on it", deps=[blocker], deliver="branch")
    rig.tick(T0)
    work(rig, blocker, {"README.md": "the blocker's line\n"})
    commit_file(rig.work, "README.md", "the user's line\n")  # meanwhile, on main
    settle(rig, 2)
    run = rig.run_of(dependent)
    text = knowledge_of(rig, dependent)
    assert "## Your branch" in text
    assert f"Merging fleet/{blocker} into your branch conflicted in: README.md" in text
    assert "<<<<<<<" in (run.cwd / "README.md").read_text()
    (run.cwd / "README.md").write_text("both lines\n")
    rig.finish(dependent, result={"status": "done", "summary": "resolved"})
    rig.tick(rig.now + 1)
    assert rig.get(dependent).status == "closed"
    parents = git(rig.work, "log", "-1", "--format=%P", f"fleet/{dependent}").split()
    assert len(parents) == 2  # the resolution concluded the merge
    assert git(rig.work, "show", f"fleet/{dependent}:README.md") == "both lines\n"


def test_a_merge_waiting_on_untracked_files_is_not_checked_again(repo_rig: Rig) -> None:
    rig = repo_rig
    runs = rig.work.parent / "check-runs"
    task_id = rig.task("adds n.txt", check=f"echo run >> {runs}")
    (rig.work / "n.txt").write_text("the user's untracked file\n")  # git would overwrite it
    rig.tick(T0)
    work(rig, task_id, {"n.txt": "agent\n"})
    settle(rig, 4)
    task = rig.get(task_id)
    assert task.delivery and task.delivery["state"] == "queued"
    assert "would not fast-forward" in task.delivery["waiting"]
    assert (rig.work / "n.txt").read_text() == "the user's untracked file\n"
    assert runs.read_text() == "run\n"  # checked once, not at every look
    (rig.work / "n.txt").unlink()
    settle(rig, 2)
    assert rig.get(task_id).delivery["state"] == "merged"  # type: ignore[index]
    assert (rig.work / "n.txt").read_text() == "agent\n" and runs.read_text() == "run\n"


def test_a_merge_that_keeps_raising_is_retried_then_blocked(
    repo_rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = repo_rig
    task_id = rig.task("unlucky")
    rig.tick(T0)
    work(rig, task_id, {"u.txt": "u\n"})
    rig.tick(rig.now + 1)

    calls: list[str] = []

    def broken(*args: object) -> merge.Merged:
        calls.append(rig.get(task_id).status)
        raise OSError("No space left on device")

    monkeypatch.setattr(merge, "merge_one", broken)
    for _ in range(40):
        rig.tick(rig.now + 30)
        if rig.get(task_id).status != "closed":
            break
    assert calls == ["closed"] * merges.RETRIES  # hiccups are tried again, up to RETRIES
    task = rig.get(task_id)
    assert task.status == "blocked" and "No space left on device" in task.status_reason
    assert git(rig.work, "branch", "--list", f"fleet/{task_id}").strip()  # the work is kept


def test_task_merge_with_a_red_check_says_why_and_reopens(
    repo_rig: Rig, fleet: Any, home: Path
) -> None:
    rig = repo_rig
    task_id = rig.task("branch only", deliver="branch", check="echo 'lint: 3 problems'; exit 1")
    rig.tick(T0)
    work(rig, task_id, {"l.txt": "l\n"})
    rig.tick(rig.now + 1)
    before = git(rig.work, "rev-parse", "main")
    done = fleet("--home", str(home), "task", task_id, "merge")
    assert done.code == 1
    assert f"fleet: {task_id} did not merge: the check" in done.err and "3 problems" in done.err
    assert "hint: the task is now open: reopened by the merge queue" in done.err
    assert git(rig.work, "rev-parse", "main") == before
    assert "Fleet-Event: check_failed" in rig.store.git.out("log", "-1", "--format=%B", "main")


def test_bd_update_deliver_branch_takes_a_queued_task_out_of_the_queue(
    repo_rig: Rig, fleet: Any, home: Path
) -> None:
    rig = repo_rig
    (rig.work / "README.md").write_text("dirty: the merge waits\n")
    task_id = rig.task("queued")
    rig.tick(T0)
    work(rig, task_id, {"q.txt": "q\n"})
    settle(rig, 2)
    assert rig.get(task_id).delivery["state"] == "queued"  # type: ignore[index]
    h = ("--home", str(home))
    bad = fleet(*h, "bd", "update", task_id, "--deliver", "later")
    assert bad.code == 2 and "not a delivery mode" in bad.err
    assert fleet(*h, "bd", "update", task_id, "--deliver", "branch").code == 0
    git(rig.work, "checkout", "README.md")
    settle(rig, 2)
    task = rig.get(task_id)
    assert task.deliver == "branch" and task.delivery and task.delivery["state"] == "branch"
    assert not (rig.work / "q.txt").exists()


def test_unresolved_conflict_markers_never_reach_the_base(repo_rig: Rig) -> None:
    rig = repo_rig
    task_id = rig.task("sloppy")
    rig.tick(T0)
    marked = "<<<<<<< HEAD\nmine\n=======\ntheirs\n>>>>>>> fleet/x\n"
    work(rig, task_id, {"README.md": marked})
    settle(rig, 2)
    task = rig.get(task_id)
    assert task.status == "open" and task.delivery
    assert "still holds conflict markers in: README.md" in task.delivery["handoff"]
    assert git(rig.work, "show", "main:README.md") == "test repo\n"


def test_work_behind_a_gate_waits_for_its_approvals_then_the_queue_merges_it(
    repo_rig: Rig,
) -> None:
    from supervisor.queue.approvals import approve

    rig = repo_rig
    task_id = rig.task("needs a person's approval", requires="human")
    rig.tick(T0)
    work(rig, task_id, {"gated.txt": "g\n"})
    settle(rig, 4)
    task = rig.get(task_id)
    assert task.status == "closed"
    assert (task.delivery or {}).get("state") == "gated"
    assert task.delivery["waiting"] == "approval: human"
    assert "gated.txt" not in git(rig.work, "ls-tree", "--name-only", "main")  # not merged
    verdict = approve(rig.store, task_id, "looks right", actor="alice")
    assert verdict.ok
    assert (rig.get(task_id).delivery or {}).get("state") == "queued"
    settle(rig, 4)
    assert (rig.get(task_id).delivery or {}).get("state") == "merged"
    assert "gated.txt" in git(rig.work, "ls-tree", "--name-only", "main")


def test_a_quarantined_roles_work_is_not_merged_until_it_is_released(repo_rig: Rig) -> None:
    from supervisor.store import quarantine

    rig = repo_rig
    rig.configure("roles.dev.coder=shell")
    task_id = rig.task("risky change", role="dev")
    rig.tick(T0)
    work(rig, task_id, {"risky.txt": "r\n"})
    quarantine.add(rig.store, "role:dev", "deletes tests", "alice", T0)
    settle(rig, 4)
    assert (rig.get(task_id).delivery or {}).get("state") == "queued"
    assert "risky.txt" not in git(rig.work, "ls-tree", "--name-only", "main")
    why = merges.waiting(rig.store.home).get(task_id, "")
    assert why.startswith("its merge waits: role:dev is quarantined (deletes tests)")
    quarantine.release(rig.store, "role:dev", "alice", "looked at it")
    settle(rig, 4)
    assert (rig.get(task_id).delivery or {}).get("state") == "merged"
    assert "risky.txt" in git(rig.work, "ls-tree", "--name-only", "main")
