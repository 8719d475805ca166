"""`fleet attach --take-over` with the real claude CLI: the headless agent is held mid-request by
fleet's mock model server, then stopped, its task held, and its conversation opened in claude's
interactive session in a tmux window."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from coders.check.mock.anthropic import AnthropicHandler
from coders.check.mock.base import MockServer
from supervisor.cli import views
from supervisor.queue import configure
from supervisor.queue.mutations import NewTask, create
from supervisor.store.store import Store
from tests.conftest import fleet_process
from tests.e2e.test_attach import screen
from tests.e2e.test_attach import tmux as tmux  # the fixture
from tests.support.cli_e2e import DUMMY_KEY, agents_of, point_at, use_clis
from tests.support.waiting import wait_for

HOLD = threading.Event()


class Held(AnthropicHandler):
    """Answers only once the test lets it: the agent waits for its model meanwhile."""

    def do_POST(self) -> None:
        HOLD.wait(120)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            super().do_POST()  # (the agent it was for may have been stopped meanwhile)


def test_take_over_continues_the_conversation_in_tmux(
    store: Store, home: Path, tmp_path: Path, tmux: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_clis(monkeypatch, "claude")
    work = tmp_path / "work"
    work.mkdir()
    configure.set_values(store, ["isolation=none", "grace_seconds=1"])
    HOLD.clear()
    # a user of claude has been through its first-run screens (they need the network)
    settings = {
        "hasCompletedOnboarding": True,
        "projects": {str(work): {"hasTrustDialogAccepted": True}},
        "customApiKeyResponses": {"approved": [DUMMY_KEY[-20:]], "rejected": []},
    }
    (Path(os.environ["HOME"]) / ".claude.json").write_text(json.dumps(settings))
    monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    with MockServer(Held) as mock:
        point_at(monkeypatch, "claude", mock, "ANTHROPIC_API_KEY")
        task_id = create(store, NewTask(title="write hello", coder="claude", cwd=str(work))).id
        assert fleet_process("supervisor", "start", home=home).code == 0
        try:

            def session() -> str:
                task = store.get(task_id)
                return str(views.live_status(store, task).get("session_id") or "")

            sid = wait_for(session, 90, "the headless agent's session id")
            out = fleet_process("attach", task_id, "--take-over", "--no-attach", home=home)
            assert out.code == 0, out.err
            assert out.out.strip() == f"fleet-{task_id}"
            task = store.get(task_id)
            assert task.status == "blocked" and task.status_reason.startswith("taken over in tmux")
            assert not agents_of(home)  # the headless agent is gone
            panes = tmux(
                "list-panes",
                "-s",
                "-t",
                f"fleet-{task_id}",
                "-F",
                "#{window_name} #{pane_start_command}",
            ).stdout.splitlines()
            agent = [p for p in panes if p.startswith("agent ")]
            assert len(agent) == 1 and f"claude --resume {sid}" in agent[0]
            window = f"fleet-{task_id}:agent"
            # the conversation so far is on screen: the task's prompt, as the agent was given it
            wait_for(lambda: "write hello" in screen(tmux, window), 60, "the resumed conversation")
            HOLD.set()
            tmux("send-keys", "-t", window, "-l", "Say hi.")
            tmux("send-keys", "-t", window, "Enter")

            def asked() -> str:
                sent = [json.dumps(r.body) for r in list(mock.requests)]
                return next((body for body in sent if "Say hi." in body), "")

            # the person's message goes to the model with the headless agent's conversation
            sent = wait_for(asked, 60, "the interactive request")
            assert f"Task {task_id}: write hello" in sent
        finally:
            HOLD.set()
            fleet_process("supervisor", "stop", "--now", "--timeout", "30", home=home)
