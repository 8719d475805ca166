"""The canary: agents (a shell command and the real claude CLI against the mock model) print keys
of every kind, to stdout and stderr, into their result and files; tasks carry them in their text.
Afterwards no object of the store (`git cat-file --batch-all-objects --batch`) holds one of them,
each attempt counts what was redacted, and the home stays private."""

from __future__ import annotations

import json
import secrets
import stat
import subprocess
from pathlib import Path

import pytest

from coders.check.mock import base as mock_base
from tests.support.agent_cli import ok_script
from tests.support.cli_e2e import (
    QUICK_CONFIG,
    Fleet,
    create,
    mock_for,
    ok,
    point_at,
    run_supervisor,
    task_of,
    use_clis,
)
from tests.unit.test_redact import IN_CONTEXT, KEYS


def canaries(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every key kind, plus an account's key and a variable the user names: values no pattern
    knows, redacted only because the configuration names them."""
    account_key = "acct-" + secrets.token_hex(12)
    named = "named-" + secrets.token_hex(12)
    monkeypatch.setenv("CANARY_ACCOUNT_KEY", account_key)
    monkeypatch.setenv("CANARY_NAMED_SECRET", named)
    found = dict(KEYS)
    found.update({f"context-{i}": secret for i, (_, secret, _) in enumerate(IN_CONTEXT)})
    found["account-key"] = account_key
    found["env-value"] = named
    return found


def leak_text(values: dict[str, str]) -> str:
    lines = [*KEYS.values(), *(text for text, _, _ in IN_CONTEXT)]
    lines += [f"account key: {values['account-key']}", f"named: {values['env-value']}"]
    return "\n".join(lines) + "\n"


def all_objects(home: Path) -> bytes:
    git = ["git", f"--git-dir={home / '.git'}", "cat-file", "--batch-all-objects", "--batch"]
    return subprocess.run(git, capture_output=True, check=True).stdout


def assert_no_canary(home: Path, values: dict[str, str]) -> None:
    objects = all_objects(home)
    assert b"[redacted:" in objects
    leaked = [kind for kind, value in values.items() if value.encode() in objects]
    assert leaked == [], f"in the store: {leaked}"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700  # the unredacted live files are private
    for sub in ("live", "cache", "tmp", "logs"):
        assert stat.S_IMODE((home / sub).stat().st_mode) & 0o077 == 0, sub


def configure(fleet: Fleet) -> None:
    ok(fleet("config", "set", *QUICK_CONFIG))
    ok(fleet("config", "set", 'redact_env=["CANARY_NAMED_SECRET"]'))


@pytest.mark.slow
def test_a_shell_agent_leaks_nothing_into_the_store(
    tmp_path: Path, fleet: Fleet, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = canaries(monkeypatch)
    configure(fleet)
    ok(
        fleet(
            "config",
            "set",
            "accounts.canary.coder=shell",
            "accounts.canary.key_env=CANARY_ACCOUNT_KEY",
        )
    )
    work = tmp_path / "work"
    work.mkdir()
    keys = tmp_path / "keys.txt"  # outside the store: the agent reads its secrets from here
    keys.write_text(leak_text(values))
    result = {"status": "done", "summary": leak_text(values), "open_questions": [leak_text(values)]}
    (tmp_path / "result.json").write_text(json.dumps(result))
    command = (
        f"cat {keys}; cat {keys} >&2; cp {keys} leaked.txt; "
        f'cp {tmp_path / "result.json"} "$FLEET_RESULT_FILE"'
    )
    task_id = create(
        fleet,
        f"print {KEYS['github-token']}",
        "--coder", "shell", "--command", command, "--cwd", str(work),
        "--description", leak_text(values),
        "--notes", leak_text(values),
        "--acceptance", KEYS["aws-access-key"],
    )  # fmt: skip
    run_supervisor(home, "--until-idle")
    task = task_of(home, task_id)
    [attempt] = task.attempts
    assert attempt["outcome"] == "success", attempt["reason"]
    assert (work / "leaked.txt").read_text() == leak_text(values)  # the agent did leak them
    counted = attempt["redactions"]
    for kind in (*KEYS, "account-key", "env-value", "high-entropy", "url-credentials"):
        assert counted.get(kind, 0) >= 2, (kind, counted)  # stdout and stderr at least
    assert_no_canary(home, values)


@pytest.mark.cli
def test_the_claude_cli_leaks_nothing_into_the_store(
    tmp_path: Path, fleet: Fleet, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = canaries(monkeypatch)
    configure(fleet)
    leak = leak_text(values)
    # The model says the keys, writes them into a file and into its result.
    monkeypatch.setattr(mock_base, "PLAN_TEXT", mock_base.PLAN_TEXT + "\n" + leak)
    monkeypatch.setattr(mock_base, "HELLO_TEXT", leak)
    monkeypatch.setattr(
        mock_base,
        "result_json",
        lambda: json.dumps({"status": "done", "summary": leak, "open_questions": [leak]}),
    )
    use_clis(monkeypatch, "claude")
    work = tmp_path / "work"
    work.mkdir()
    with mock_for("claude", ok_script()) as mock:
        point_at(monkeypatch, "claude", mock, "CANARY_ACCOUNT_KEY")
        monkeypatch.setenv("CANARY_ACCOUNT_KEY", values["account-key"])
        ok(
            fleet(
                "config",
                "set",
                "accounts.canary.coder=claude",
                "accounts.canary.key_env=CANARY_ACCOUNT_KEY",
            )
        )
        task_id = create(
            fleet, "write hello", "--coder", "claude", "--account", "canary",
            "--cwd", str(work), "--description", leak,
        )  # fmt: skip
        run_supervisor(home, "--until-idle")
        assert any(values["account-key"] in str(r.headers) for r in mock.requests)
    [attempt] = task_of(home, task_id).attempts
    assert attempt["outcome"] == "success", attempt["reason"]
    assert (work / "hello.txt").read_text() == leak
    assert attempt["redactions"].get("anthropic-key", 0) >= 1, attempt["redactions"]
    assert_no_canary(home, values)
