"""`fleet tasks --watch` in a real terminal (tmux on the test's own server): full screen, live,
and gone cleanly on Ctrl-C."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from supervisor.queue.mutations import NewTask, create
from supervisor.store.store import Store
from tests.e2e.test_attach import alive, screen
from tests.e2e.test_attach import tmux as tmux  # the fixture
from tests.support.waiting import wait_for

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


def test_watch_follows_the_store_until_ctrl_c(store: Store, home: Path, tmux: Any) -> None:
    first = create(store, NewTask(title="the first", coder="shell", command="true", cwd="/tmp")).id
    watch = shlex.join(
        [sys.executable, "-m", "supervisor", "--home", str(home), "tasks", "--watch"]
    )
    tmux("new-session", "-d", "-s", "view", "-x", "120", "-y", "30", watch)
    wait_for(lambda: first in screen(tmux, "view"), 20, "the first frame")
    text = screen(tmux, "view")
    assert text.splitlines()[0].startswith("fleet tasks")
    assert "1 ready, no supervisor running" in text
    second = create(
        store, NewTask(title="the second", coder="shell", command="true", cwd="/tmp")
    ).id
    wait_for(lambda: second in screen(tmux, "view"), 10, "the new task on screen")
    assert "2 tasks: 2 open (2 ready)" in screen(tmux, "view")
    tmux("send-keys", "-t", "view", "C-c")
    wait_for(lambda: not alive(tmux, "view"), 10, "the view to end on Ctrl-C")
