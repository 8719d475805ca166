"""`fleet dashboard` in a real headless Chromium: a real supervisor runs a shell task next to a
seeded history; the page shows the task table, the dependency graph and the usage plots, and they
change when the task does, without a reload.

Set FLEET_DASHBOARD_SCREENSHOT=docs/dashboard.png to refresh the picture the docs show.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor.model import iso
from supervisor.queue import configure
from supervisor.queue.mutations import NewTask, close, create
from supervisor.store.store import Change, Store
from tests.conftest import fleet_process
from tests.support.waiting import wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromedriver",
)
DAY = 86400.0


def seed_history(store: Store, cwd: Path) -> str:
    """Closed tasks with attempts over four days, three roles, two models, two accounts, as the
    supervisor records them; returns the first of them (what the running task depends on)."""
    now = time.time()
    roles = ["developer", "reviewer", "planner"]
    configure.set_values(store, [f"roles.{r}.coder=shell" for r in roles])
    models = [("claude", "claude-sonnet-4-5", "work"), ("codex", "gpt-5-codex", "personal")]
    ids = []
    for i in range(9):
        coder, model, account = models[i % 2]
        task = create(
            store,
            NewTask(
                title=f"history {i}", coder="shell", command="true", cwd=str(cwd), role=roles[i % 3]
            ),
        )
        ids.append(task.id)
        ended = now - (i % 4) * DAY - 600
        attempt = {
            "n": 1,
            "outcome": "success",
            "coder": coder,
            "model": model,
            "account": account,
            "started_at": iso(ended - 120),
            "ended_at": iso(ended),
            "seconds": 120.0,
            "usage": {
                "input_tokens": 20_000 + 5_000 * i,
                "output_tokens": 3_000 + 400 * i,
                "cost_usd": round(0.12 + 0.05 * i, 4),
                "model": model,
            },
        }

        def build(snap: Any, task_id: str = task.id, record: dict[str, Any] = attempt) -> Any:
            found = snap.need(task_id)
            found.attempts = [record]
            change = Change(f"seed {task_id}", "updated")
            change.put(found)
            return change, None

        store.mutate(build)
    close(store, ids, "done")
    return ids[0]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never look for a driver on the network
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1400,1500",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def dashboard(home: Path) -> Iterator[str]:
    """`fleet dashboard --port 0` as a real process; its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor", "dashboard", "--port", "0"],
        env={**os.environ, "FLEET_HOME": str(home)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        assert match, line
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_page_shows_the_fleet_and_follows_a_task(
    store: Store, home: Path, tmp_path: Path, browser: Any, dashboard: str
) -> None:
    from selenium.webdriver.common.by import By

    work = tmp_path / "work"
    work.mkdir()
    configure.set_values(
        store, ["coder=shell", "isolation=none", "grace_seconds=1", "daily_max_cost=5"]
    )
    first = seed_history(store, work)
    gate = work / "gate"
    command = f"echo started; until [ -e {gate} ]; do sleep 0.05; done; echo finished"
    running = create(
        store,
        NewTask(
            title="the agent at work",
            coder="shell",
            command=command,
            cwd=str(work),
            deps=[first],
            role="developer",
        ),
    ).id
    after = create(
        store,
        NewTask(
            title="what comes next",
            coder="shell",
            command="true",
            cwd=str(work),
            deps=[running],
            role="reviewer",
        ),
    ).id
    started = fleet_process("supervisor", "start", home=home)
    assert started.code == 0, started.err
    try:
        browser.get(dashboard)

        def row_status(task_id: str) -> str:
            rows = browser.find_elements(By.CSS_SELECTOR, f'#tasks tr[data-id="{task_id}"]')
            return str(rows[0].get_attribute("data-status")) if rows else ""

        def node_status(task_id: str) -> str:
            nodes = browser.find_elements(By.CSS_SELECTOR, f'#graph g.node[data-id="{task_id}"]')
            return str(nodes[0].get_attribute("data-status")) if nodes else ""

        wait_for(lambda: row_status(running) == "in_progress", 30, "the running task in the table")
        wait_for(lambda: row_status(after) == "open", 10, "the waiting task in the table")
        why = browser.find_element(By.CSS_SELECTOR, f'#tasks tr[data-id="{after}"] td.why').text
        assert why == f"waiting for {running} (in_progress)"
        # the running agent is selected: its family is drawn, its log is tailed
        wait_for(lambda: node_status(running) == "in_progress", 10, "the graph")
        assert node_status(first) == "closed" and node_status(after) == "open"
        assert len(browser.find_elements(By.CSS_SELECTOR, "#graph line.edge")) == 2
        wait_for(lambda: "started" in browser.find_element(By.ID, "log").text, 10, "the log")
        # usage: a bar per day with spend, bars per role
        wait_for(
            lambda: len(browser.find_elements(By.CSS_SELECTOR, "#usage-day rect.bar")) == 4,
            10,
            "the usage per day",
        )
        roles = {
            e.get_attribute("data-key")
            for e in browser.find_elements(By.CSS_SELECTOR, "#usage-role rect.bar")
        }
        assert roles == {"developer", "reviewer", "planner"}
        budget = browser.find_element(By.CSS_SELECTOR, '#budgets tr[data-scope="fleet"]').text
        assert budget.startswith("fleet cost") and budget.endswith(" of $5.00")
        assert browser.find_element(By.ID, "merge").text == "none"
        assert browser.find_element(By.ID, "gates").text == "none"
        summary = browser.find_element(By.ID, "summary").text
        assert summary.startswith("11 tasks: 1 running, 1 open, 9 closed")
        shot = os.environ.get("FLEET_DASHBOARD_SCREENSHOT")
        browser.save_screenshot(str(tmp_path / "dashboard.png"))
        if shot:
            shutil.copy(tmp_path / "dashboard.png", shot)

        gate.touch()  # the task ends: the page follows without a reload
        marker = browser.execute_script("window.__same_page = true; return 1")
        assert marker == 1
        wait_for(lambda: row_status(running) == "closed", 30, "the task to show as closed")
        wait_for(lambda: node_status(running) == "closed", 10, "the graph to follow")
        wait_for(lambda: "finished" in browser.find_element(By.ID, "log").text, 10, "the log")
        wait_for(
            lambda: len(browser.find_elements(By.CSS_SELECTOR, "#usage-role rect.bar")) == 3,
            10,
            "the plots",
        )
        assert browser.execute_script("return window.__same_page === true")
    finally:
        fleet_process("supervisor", "stop", "--now", "--timeout", "30", home=home)
