"""The review pipeline end to end with the real `claude` CLI against fleet's mock model server,
no person in the loop but one `fleet approve`:

developer task -> review requests changes -> the developer reworks on the same branch -> the
review approves -> a person approves -> the gate opens (`gates.may_deliver` is true), and the
merge queue merges the developer's branch into the base branch. The store's events tell the
story in order.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from coders.check.mock.base import HELLO_NAME, HELLO_TEXT, Script
from supervisor import gates
from supervisor.model import Task
from supervisor.queue import roles as roles_store
from supervisor.store.paths import run_file
from supervisor.store.store import Store
from tests.support.cli_e2e import (
    QUICK_CONFIG,
    Fleet,
    create,
    mock_for,
    ok,
    point_at,
    run_supervisor,
    supervise_until,
    task_of,
    use_clis,
)

pytestmark = pytest.mark.cli
COMMENT = "hello.txt:1: end the greeting with a full stop"
REVIEW_MODEL = "claude-review-mock"  # the reviewer's model: not the author's


def first_review(store: Store, task_id: str) -> str:
    reviews = [
        Task.from_dict(b)
        for b in store.cache.select(None)
        if (b.get("origin") or {}).get("task") == task_id
    ]
    return min(reviews, key=lambda t: t.created_at).id


class Verdicts:
    """The result each agent writes, chosen by the task its result file belongs to: developers
    finish; the first review requests changes, the next approves."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.reviews: list[str] = []

    def __call__(self, result_file: str) -> str | None:
        task_id = Path(result_file).parent.parent.name
        store = Store.open(self.home)
        try:
            task = store.get(task_id)
        finally:
            store.close()
        if task.role != "reviewer":
            return json.dumps({"status": "done", "summary": "Wrote hello.txt with a greeting."})
        self.reviews.append(task_id)
        if len(self.reviews) == 1:
            body: dict[str, Any] = {"verdict": "changes_requested", "comments": [COMMENT]}
        else:
            body = {"verdict": "approved", "comments": []}
        return json.dumps({"status": "done", "summary": "Reviewed hello.txt.", **body})


def test_review_pipeline_with_the_real_claude_cli(
    fleet: Fleet, home: Path, git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_clis(monkeypatch, "claude")
    verdicts = Verdicts(home)
    ok(fleet("config", "set", *QUICK_CONFIG, "coder=claude"))
    ok(fleet("init", "--pipeline", "review"))
    ok(fleet("roles", "set", "reviewer", f"model={REVIEW_MODEL}"))
    with mock_for("claude", Script(extra={"result_for": verdicts})) as mock:
        point_at(monkeypatch, "claude", mock, "ANTHROPIC_API_KEY")
        dev = create(fleet, "Greet the reader", "--role", "developer", "--cwd", str(git_repo))

        def reviewed() -> Task | None:
            task = task_of(home, dev)
            done = [a for a in gates.approvals(task) if a.get("work") == gates.work(task)]
            return task if task.status == "closed" and done else None

        supervise_until(home, reviewed, "the developer's work approved by its reviewer")

    store = Store.open(home)
    try:
        config = roles_store.effective_config(store)
        task = store.get(dev)
        verdict = gates.may_deliver(task, gates.approvals(task), config)
        assert not verdict.ok and verdict.waiting_for == ["human"]  # the reviewer approved
        assert "waits for human" in ok(fleet("task", dev, "gate")).out
        shown = ok(fleet("task", dev)).out  # who reviewed, the verdicts, who approved
        assert f"review {first_review(store, dev)} by claude/{REVIEW_MODEL}/-" in shown
        assert "changes_requested" in shown and COMMENT in shown
        assert "approved by" in shown and "as role:reviewer" in shown
        waiting = [r for r in json.loads(ok(fleet("tasks", "--json")).out) if r["id"] == dev]
        assert waiting and waiting[0]["status"] == "gate"
        assert waiting[0]["why"].startswith("waits for human for ")

        assert (task.delivery or {}).get("state") == "gated"  # not merged before approval
        assert HELLO_NAME not in _main_files(git_repo)
        ok(fleet("approve", dev, "--comment", "ship it"))  # the one person in the loop
        task = store.get(dev)
        assert gates.may_deliver(task, gates.approvals(task), config).ok
        assert (task.delivery or {}).get("state") == "queued"  # the gate open: to the queue
        run_supervisor(home, "--until-idle")  # the merge queue delivers fleet/<dev>
        task = store.get(dev)
        assert (task.delivery or {}).get("state") == "merged", task.delivery
        assert HELLO_NAME in _main_files(git_repo)
        merges = _git(git_repo, "log", "--merges", "--format=%s", "main")
        assert f"fleet/{dev}" in merges

        # two developer attempts, the second on the same branch and worktree, with the review
        assert [a["outcome"] for a in task.attempts] == ["success", "success"]
        assert task.attempts[0]["workdir"] == task.attempts[1]["workdir"]
        rework = (store.read(run_file(dev, 2, "knowledge.md")) or b"").decode()
        assert COMMENT in rework and "changes_requested" in rework
        assert "## Your role: developer" in rework
        first, second = verdicts.reviews
        review_knowledge = (store.read(run_file(first, 1, "knowledge.md")) or b"").decode()
        assert f"+++ b/{HELLO_NAME}" in review_knowledge
        assert f"+{HELLO_TEXT.strip()}" in review_knowledge  # the developer's diff
        assert "Wrote hello.txt with a greeting." in review_knowledge  # and summary
        reviewer = store.get(second).attempts[-1]
        assert reviewer["model"] == REVIEW_MODEL != task.attempts[-1]["model"]
    finally:
        store.close()

    events = [json.loads(x) for x in ok(fleet("events", "--json")).out.splitlines()]
    mine = {dev, first, second}
    told = [(e["type"], e["task"]) for e in events if e["task"] in mine]
    story = [
        ("task.created", dev),
        ("task.claimed", dev),
        ("attempt.ended", dev),
        ("task.closed", dev),
        ("gate.waiting", dev),
        ("task.created", first),
        ("task.claimed", first),
        ("task.closed", first),
        ("review.verdict", first),
        ("task.reopened", dev),
        ("task.claimed", dev),
        ("task.closed", dev),
        ("task.created", second),
        ("review.verdict", second),
        ("gate.approved", dev),
        ("gate.approved", dev),
        ("gate.open", dev),
    ]
    position = 0
    for step in story:
        assert step in told[position:], f"{step} missing after {told[:position]}"
        position = told.index(step, position) + 1
    verdict_events = [e for e in events if e["type"] == "review.verdict"]
    assert [e["data"]["verdict"] for e in verdict_events] == ["changes_requested", "approved"]
    log = ok(fleet("log", "-n", "0")).out
    assert f"review.verdict {first} (changes_requested)" in log
    assert f"approve {dev} by" in log


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def _main_files(repo: Path) -> list[str]:
    return _git(repo, "ls-tree", "--name-only", "main").split()
