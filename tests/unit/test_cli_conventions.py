"""The command line's conventions: ids by a unique start, did-you-mean, `--json` on writes,
`--home` anywhere, refusals at create, the overview of one task, the supervisor's `stopping`
state, one style of numbers. Each bad input exits 2 and leaves the store's ref where it was."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Result

from supervisor.model import ID_PATTERN, Run
from supervisor.store.store import Store
from tests.support.store_checks import head

Fleet = Any


def ok(fleet: Fleet, *args: str) -> Result:
    result: Result = fleet(*args)
    assert result.code == 0, f"fleet {' '.join(args)}: {result.err}"
    return result


def refused(fleet: Fleet, home: Path, *args: str) -> Result:
    before = head(home)
    result: Result = fleet(*args)
    assert result.code == 2, (args, result)
    assert result.err.startswith("fleet: ") and "hint: " in result.err, result.err
    assert head(home) == before
    return result


def make(fleet: Fleet, title: str = "t", *args: str) -> str:
    out = ok(fleet, "bd", "create", title, "--coder", "shell", "--command", "true", *args).out
    task_id = out.strip()
    assert ID_PATTERN.match(task_id), out
    return task_id


# -- ids: a unique start, did-you-mean, ambiguity ------------------------------------------------


def test_a_unique_start_of_an_id_names_the_task_in_every_command(fleet: Fleet, home: Path) -> None:
    a, b = make(fleet, "first"), make(fleet, "second")
    hash_a = a.split("-", 1)[1]
    start = next(
        hash_a[:n]
        for n in range(1, 6)
        if not b.split("-", 1)[1].startswith(hash_a[:n]) and not a.startswith(hash_a[:n])
    )  # a start of a's hash only: not of b's, nor of every id ("f" starts "fl-...")
    assert json.loads(ok(fleet, "bd", "show", start, "--json").out)["id"] == a
    assert json.loads(ok(fleet, "task", start, "--json").out)["id"] == a
    assert json.loads(ok(fleet, "bd", "update", start, "-p", "1", "--json").out)["priority"] == 1
    ok(fleet, "bd", "dep", "add", b, start)
    assert json.loads(ok(fleet, "bd", "show", b, "--json").out)["dependencies"][0]["id"] == a
    c = ok(fleet, "bd", "create", "third", "--deps", start, "--parent", start[:4] + "").out.strip()
    deps = {d["id"] for d in json.loads(ok(fleet, "bd", "show", c, "--json").out)["dependencies"]}
    assert deps == {a}
    ok(fleet, "bd", "close", start)
    assert json.loads(ok(fleet, "bd", "show", a, "--json").out)["status"] == "closed"
    log = json.loads(ok(fleet, "log", "--task", start, "--json").out)
    assert log and all(a in e["tasks"] for e in log)


def test_an_ambiguous_start_is_refused_with_its_candidates(fleet: Fleet, home: Path) -> None:
    ids = [make(fleet, f"t{i}") for i in range(3)]
    prefix = ids[0].split("-")[0] + "-"
    result = refused(fleet, home, "bd", "show", prefix[:-1])
    assert "ambiguous" in result.err
    for task_id in ids:
        assert task_id in result.err
    refused(fleet, home, "bd", "close", prefix[:-1])


def test_an_unknown_id_suggests_the_nearest(fleet: Fleet, home: Path) -> None:
    task_id = make(fleet)
    last = task_id[-1]
    typo = task_id[:-1] + ("0" if last != "0" else "1")
    for args in (["bd", "show", typo], ["task", typo], ["task", typo, "log"], ["retry", typo]):
        result = refused(fleet, home, *args)
        assert f"task {typo} does not exist" in result.err
        assert f"did you mean {task_id!r}?" in result.err


def test_a_mistyped_command_gets_did_you_mean(fleet: Fleet, home: Path) -> None:
    result = refused(fleet, home, "taks")
    assert result.err.splitlines()[0] == "fleet: fleet has no command 'taks'"
    assert "did you mean 'tasks'" in result.err
    result = refused(fleet, home, "bd", "lst")
    assert "did you mean 'list'" in result.err
    result = refused(fleet, home, "bd", "list", "--jsn")
    assert "did you mean '--json'" in result.err


# -- `fleet task ID` alone, and `--help` whatever the id -----------------------------------------


def test_task_alone_shows_an_overview(fleet: Fleet, home: Path) -> None:
    task_id = make(fleet, "Fix the login bug")
    out = ok(fleet, "task", task_id).out
    assert out.splitlines()[0] == f"{task_id}  Fix the login bug"
    assert "status: open" in out and "coder: shell" in out and "attempts: 0" in out
    assert "it has not run yet" in out
    data = json.loads(ok(fleet, "task", task_id, "--json").out)
    assert data["status"] == "open" and data["attempts"] == 0 and data["coder"] == "shell"
    assert set(data["usage"]) >= {"input_tokens", "output_tokens", "cost_usd", "seconds"}


@pytest.mark.parametrize("task_id", ["nosuch", "fl-zzzz", "NOT AN ID"])
def test_help_works_whatever_the_id(fleet: Fleet, task_id: str) -> None:
    for sub in ("log", "plan", "knowledge", "result", "usage", "attempts"):
        result = ok(fleet, "task", task_id, sub, "--help")
        assert result.out.startswith(f"Usage: fleet task TASK_ID {sub}")
    assert ok(fleet, "task", task_id, "--help").out.startswith("Usage: fleet task")


# -- `--home` after the subcommand ---------------------------------------------------------------


def test_home_is_accepted_after_the_subcommand(fleet: Fleet, tmp_path: Path, home: Path) -> None:
    other = tmp_path / "other-home"
    task_id = ok(fleet, "bd", "create", "elsewhere", "--home", str(other)).out.strip()
    assert ID_PATTERN.match(task_id)
    ids = [t["id"] for t in json.loads(ok(fleet, "bd", "list", "--json", f"--home={other}").out)]
    assert ids == [task_id]
    assert json.loads(ok(fleet, "bd", "list", "--json").out) == []
    assert ok(fleet, "task", task_id, "--home", str(other), "--json").code == 0
    # after `--`, `--home` is a title
    titled = ok(fleet, "--home", str(other), "bd", "create", "--", "--home").out.strip()
    assert (
        json.loads(ok(fleet, "--home", str(other), "bd", "show", titled, "--json").out)["title"]
        == "--home"
    )


# -- refused or warned at create -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("coder", "meant"), [("shel", "shell"), ("claud", "claude"), ("nosuch", "")]
)
def test_an_unknown_coder_is_refused_at_create(
    fleet: Fleet, home: Path, coder: str, meant: str
) -> None:
    make(fleet)  # the store exists: its ref must not move
    result = refused(fleet, home, "bd", "create", "t", "--coder", coder, "--command", "true")
    assert f"unknown coder {coder!r}" in result.err
    if meant:
        assert f"did you mean {meant!r}?" in result.err
    assert "shell" in result.err  # the known coders are named


def test_a_missing_coder_cli_is_warned_of_at_create(
    fleet: Fleet, tmp_path: Path, git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "sh"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    monkeypatch.setenv("PATH", str(bin_dir))
    result = ok(fleet, "bd", "create", "t", "--cwd", str(git_repo))
    assert "fleet: warning:" in result.err
    assert "runs with claude (the default" in result.err and "`claude` is not on PATH" in result.err
    task_id = result.out.strip()
    listed = ok(fleet, "bd", "list").out
    assert re.search(rf"{task_id}\s+P2\s+open\s+task\s+claude\s+t", listed), listed
    result = ok(
        fleet, "bd", "create", "t", "--coder", "shell", "--command", "x", "--cwd", str(git_repo)
    )
    assert result.err == ""


def test_a_directory_outside_git_is_said_at_create(
    fleet: Fleet, tmp_path: Path, git_repo: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    result = ok(
        fleet, "bd", "create", "t", "--coder", "shell", "--command", "x", "--cwd", str(plain)
    )
    assert f"{plain} is not in a git repository" in result.err and "in place" in result.err
    result = ok(
        fleet,
        *["bd", "create", "t", "--coder", "shell", "--command", "x", "--isolation", "none"],
        "--cwd",
        str(plain),
    )
    assert result.err == ""
    task_id = result.out.strip()
    assert json.loads(ok(fleet, "bd", "show", task_id, "--json").out)["isolation"] == "none"


def test_isolation_is_checked_at_create_and_update(fleet: Fleet, home: Path) -> None:
    task_id = make(fleet)
    result = refused(
        fleet,
        home,
        "bd",
        "create",
        "t",
        "--coder",
        "shell",
        "--command",
        "x",
        "--isolation",
        "sandbox",
    )
    assert "isolation 'sandbox' is not valid" in result.err
    refused(fleet, home, "bd", "update", task_id, "--isolation", "sandbox")
    ok(fleet, "bd", "update", task_id, "--isolation", "worktree")
    assert json.loads(ok(fleet, "bd", "show", task_id, "--json").out)["isolation"] == "worktree"


def test_an_account_whose_key_variable_is_unset_is_warned_of(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLEET_TEST_UNSET_KEY", raising=False)
    result = ok(
        fleet, "accounts", "add", "work", "--coder", "shell", "--key-env", "FLEET_TEST_UNSET_KEY"
    )
    assert "$FLEET_TEST_UNSET_KEY is not set here" in result.err
    assert "FLEET_TEST_UNSET_KEY is not set here" in ok(fleet, "accounts").out
    assert json.loads(ok(fleet, "accounts", "--json").out)[0]["key_missing"] is True
    monkeypatch.setenv("FLEET_TEST_UNSET_KEY", "k")
    assert json.loads(ok(fleet, "accounts", "--json").out)[0]["key_missing"] is False


def test_each_built_in_coder_runs_a_cli_of_its_own_name() -> None:
    import coders

    for name in coders.BUILTINS:
        assert coders.get(name).binary == ("sh" if name == "shell" else name)


def test_the_default_coder_constant_is_the_configurations() -> None:
    from supervisor.cli.checks import DEFAULT_CODER
    from supervisor.config import Config

    assert Config().coder == DEFAULT_CODER


# -- --json on writes ----------------------------------------------------------------------------


def test_writes_answer_in_json(fleet: Fleet, home: Path) -> None:
    a, b = make(fleet, "a"), make(fleet, "b")
    assert json.loads(ok(fleet, "bd", "dep", "add", b, a, "--json").out)["id"] == b
    assert (
        json.loads(ok(fleet, "bd", "dep", "remove", b, a, "--json").out).get("dependencies") is None
    )
    closed = json.loads(ok(fleet, "bd", "close", a, b, "-r", "done", "--json").out)
    assert [t["status"] for t in closed] == ["closed", "closed"]
    assert json.loads(ok(fleet, "bd", "reopen", a, "--json").out)["status"] == "open"
    assert json.loads(ok(fleet, "retry", b, "--force", "--json").out)["status"] == "open"
    assert json.loads(ok(fleet, "pause", "--json").out) == {"paused": True}
    assert json.loads(ok(fleet, "resume", "--json").out) == {"paused": False}
    assert (
        json.loads(ok(fleet, "config", "set", "max_concurrent=5", "--json").out)["max_concurrent"]
        == 5
    )
    assert json.loads(ok(fleet, "config", "get", "max_concurrent", "--json").out) == {
        "key": "max_concurrent",
        "value": 5,
    }
    assert json.loads(ok(fleet, "init", "--json").out) == {"home": str(home)}
    added = json.loads(ok(fleet, "accounts", "add", "w", "--coder", "shell", "--json").out)
    assert added == {"name": "w", "coder": "shell"}
    assert json.loads(ok(fleet, "accounts", "disable", "w", "--json").out)["disabled"] is True
    assert json.loads(ok(fleet, "accounts", "remove", "w", "--json").out)["removed"] is True
    status = json.loads(ok(fleet, "supervisor", "status", "--json").out)
    assert status["state"] == "stopped" and status["running"] is False
    stopped = json.loads(ok(fleet, "supervisor", "stop", "--json").out)
    assert stopped == {"was_running": False, "pid": None}


# -- the supervisor's stopping state -------------------------------------------------------------


def test_status_shows_a_stopping_supervisor_and_what_it_waits_for(fleet: Fleet, home: Path) -> None:
    from supervisor.run import daemon as service
    from supervisor.run import stopping

    task_id = make(fleet)
    store = Store.open(home)

    def claim(snap: Any) -> Any:
        from supervisor.store.store import Change

        task = snap.need(task_id)
        task.status = "in_progress"
        task.run = Run(1, started_at="2026-01-01T00:00:00Z")
        change = Change(f"claim {task_id}", "claimed")
        change.put(task)
        return change, task

    store.mutate(claim)
    lock = service.acquire(store, "test")  # this process stands for the supervisor
    try:
        assert json.loads(ok(fleet, "supervisor", "status", "--json").out)["state"] == "running"
        stopping.mark(store, os.getpid(), "graceful")
        data = json.loads(ok(fleet, "supervisor", "status", "--json").out)
        assert data["state"] == "stopping" and data["stopping_how"] == "graceful"
        assert data["waiting_for"] == [task_id]
        out = ok(fleet, "supervisor", "status").out
        assert out.startswith("supervisor: stopping (graceful, for ") and task_id in out
        stopping.mark(store, os.getpid() + 1, "now")  # another supervisor's note means nothing
        assert json.loads(ok(fleet, "supervisor", "status", "--json").out)["state"] == "running"
    finally:
        lock.release()
        store.close()


def test_a_run_ends_with_what_it_ran() -> None:
    from supervisor.cli.supervising import summary_line

    data = {
        "ran": 4,
        "attempts": 5,
        "statuses": {"blocked": 1, "closed": 3},
        "running": 0,
        "waiting": 0,
    }
    assert summary_line(data) == "ran 4 task(s) (5 attempts): 3 closed, 1 blocked"
    data = {"ran": 0, "attempts": 0, "statuses": {}, "running": 0, "waiting": 2}
    assert summary_line(data) == "ran nothing: no task was ready; 2 waiting"


# -- one style of numbers; titles that fit -------------------------------------------------------


def test_usage_tables_share_one_header_and_number_style(fleet: Fleet) -> None:
    from supervisor.cli.numbers import money, tokens

    task_id = make(fleet)
    usage = ok(fleet, "task", task_id, "usage").out.splitlines()[0]
    total = ok(fleet, "usage").out.splitlines()[0]
    for header in (usage, total):
        assert "CACHE READ" in header and "CACHE WRITE" in header and "_" not in header
    assert money(0.5) == "$0.5000" and money(12.345) == "$12.35" and money(None) == "-"
    assert tokens(1234567) == "1,234,567"
    assert "$0.0000" in ok(fleet, "usage").out


def test_titles_are_cut_to_the_terminal_width() -> None:
    from supervisor.cli.fit import fit_last

    rows = [["fl-abcd", "P2", "\x1b[32mopen\x1b[0m", "x" * 200]]
    fitted = fit_last(rows, ["ID", "P", "STATUS", "TITLE"], 60)
    width = len("fl-abcd") + 2 + len("P2") + 2 + len("STATUS") + 2
    assert len(fitted[0][-1]) == 60 - width and fitted[0][-1].endswith("…")
    assert fit_last(rows, ["ID", "P", "STATUS", "TITLE"], None)[0][-1] == "x" * 200


# -- the demo ------------------------------------------------------------------------------------


def test_the_demo_hint_names_fleet_as_it_was_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from supervisor.cli.demo_home import explore_hint

    monkeypatch.setattr(sys, "argv", [".venv/bin/fleet", "demo"])
    monkeypatch.setenv("PATH", str(tmp_path))  # no `fleet` on PATH, as after the README's steps
    hint = explore_hint(Path("/tmp/h"), given=False)
    assert (
        hint
        == "Explore it: export FLEET_HOME=/tmp/h; .venv/bin/fleet tasks --all; .venv/bin/fleet log"
    )
    monkeypatch.setattr(sys, "argv", ["/x/supervisor/__main__.py", "demo"])
    assert f"{sys.executable} -m supervisor tasks --all" in explore_hint(Path("/tmp/h"), False)


def test_the_demo_refuses_a_home_that_holds_tasks(fleet: Fleet, home: Path) -> None:
    make(fleet)
    result = refused(fleet, home, "demo")
    assert "the demo needs an empty home" in result.err


def test_log_follow_refuses_a_task_that_will_not_start(fleet: Fleet, home: Path) -> None:
    task_id = make(fleet)
    ok(fleet, "bd", "close", task_id)
    result = refused(fleet, home, "task", task_id, "log", "-f")
    assert f"task {task_id} is closed and never ran" in result.err
    result = refused(fleet, home, "task", task_id, "log")
    assert "has not run yet" in result.err


def test_home_without_a_directory_is_refused(fleet: Fleet, home: Path) -> None:
    result = fleet("tasks", "--home")
    assert result.code == 2 and result.err.startswith("fleet: --home needs a directory")
    bare = fleet("bd")  # a bare group shows its help, and exits 2
    assert bare.code == 2 and "Usage: fleet bd" in bare.err


def test_the_effective_coder_is_shown_and_an_unknown_one_refused_at_update(
    fleet: Fleet, home: Path
) -> None:
    task_id = ok(fleet, "bd", "create", "no coder named").out.strip()
    assert "coder: claude (the default)" in ok(fleet, "bd", "show", task_id).out
    ok(fleet, "config", "set", "coder=shell")
    assert "coder: shell (the default)" in ok(fleet, "bd", "show", task_id).out
    result = refused(fleet, home, "bd", "update", task_id, "--coder", "codx")
    assert "did you mean 'codex'?" in result.err
