"""The opencode coder: its command, its parser over real opencode output, and the real CLI
against the Anthropic mock (`cli` tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coders.base import Event, EventKind, Outcome, RunSpec, Verdict, first_plan_text
from coders.check.mock.anthropic import AnthropicHandler
from coders.check.mock.base import HELLO_NAME, HELLO_TEXT, PLAN_TEXT, MockServer, Script
from coders.check.trial import Attempt, Scratch
from coders.opencode import OpencodeCoder, OpencodeParser
from tests.support.agent_cli import capture, ok_script, replay, run_cli, tokens

KEY = "sk-ant-test-key"


def parse(case: str, exit_code: int) -> tuple[OpencodeParser, list[Event], Verdict]:
    parser = OpencodeParser()
    events, verdict = replay(parser, capture(case), exit_code)
    return parser, events, verdict


# -- parsing real output ---------------------------------------------------------------------


def test_parses_a_successful_run() -> None:
    parser, events, verdict = parse("opencode-ok", 0)
    assert [e.kind for e in events] == [
        EventKind.SESSION,
        EventKind.OTHER,  # step_start
        EventKind.TEXT,
        EventKind.TOOL_USE,
        EventKind.TOOL_RESULT,
        EventKind.USAGE,
        EventKind.OTHER,
        EventKind.TEXT,
        EventKind.USAGE,
    ]
    assert parser.session_id == "ses_dfc5a4d73ffekiS28TakfKQGgQ"
    write = events[3]
    assert write.tool == "write"
    assert write.tool_input == {
        "filePath": "<lab>/cap/opencode-ok/work/hello.txt",
        "content": "hello from mock\n",
    }
    assert events[4].text == "Wrote file successfully." and not events[4].is_error
    usage = parser.usage
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens) == (2050, 84, 0)
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (600, 400)
    assert usage.cost_usd == pytest.approx(0.00453 + 0.00456)
    assert events[5].usage is not None and events[5].usage.input_tokens == 1020  # running total
    assert parser.plan == (
        "Plan:\n1. Create the file hello.txt with the requested content.\n2. Report back."
    )
    assert verdict.outcome == Outcome.SUCCESS


def test_a_429_is_rate_limited() -> None:
    parser, events, verdict = parse("opencode-429", 1)
    assert verdict.outcome == Outcome.RATE_LIMITED
    assert verdict.reason.startswith("This request would exceed the rate limit")
    assert verdict.resets_at is None  # retry-after 0, no subscription reset
    assert [e.kind for e in events] == [EventKind.SESSION, EventKind.ERROR, EventKind.RATE_LIMIT]
    assert parser.session_id == "ses_dfc4f46d1ffeVz4gZMiAAoMiM9"


def test_a_rejected_write_fails_the_run_despite_exit_0() -> None:
    parser, events, verdict = parse("opencode-denied", 0)
    assert verdict.outcome == Outcome.FAILURE
    assert verdict.reason.startswith("opencode was not allowed to use write <tmp>/result.json")
    assert [e.is_error for e in events if e.kind == EventKind.TOOL_RESULT] == [False, True]
    assert parser.plan == "1. Write hello.txt\n2. Write the result file"


def error_line(status: int, message: str, headers: dict[str, str]) -> str:
    data = {"message": message, "statusCode": status, "responseHeaders": headers}
    error = {"name": "APIError", "data": data}
    return json.dumps({"type": "error", "timestamp": 1_800_000_000_000, "error": error})


@pytest.mark.parametrize(
    ("status", "message", "headers", "outcome", "resets_at"),
    [
        (
            429,
            "limit",
            {"anthropic-ratelimit-unified-reset": "1800003600"},
            "rate_limited",
            1800003600,
        ),
        (429, "slow down", {"retry-after": "30"}, "rate_limited", 1_800_000_030),
        (401, "invalid x-api-key", {}, "auth_error", None),
        (529, "Overloaded", {}, "overloaded", None),
        (500, "boom", {}, "overloaded", None),
        (400, "bad request", {}, "failure", None),
    ],
)
def test_classifies_errors(
    status: int, message: str, headers: dict[str, str], outcome: str, resets_at: float | None
) -> None:
    parser = OpencodeParser()
    parser.feed(error_line(status, message, headers))
    verdict = parser.finish(1)
    assert (verdict.outcome, verdict.resets_at) == (outcome, resets_at)
    assert message in verdict.reason


def test_odd_output_is_not_success() -> None:
    parser = OpencodeParser()
    assert [e.kind for e in parser.feed("garbage")] == [EventKind.OTHER]
    assert parser.finish(0).reason == "opencode exited 0 without finishing a step"
    assert parser.finish(-15).reason == "opencode was killed by signal 15"


def test_plan_falls_back_to_the_todo_list() -> None:
    parser = OpencodeParser()
    todos = {"todos": [{"content": "Read the code"}, {"content": "Fix the bug"}]}
    part = {"tool": "todowrite", "state": {"status": "completed", "input": todos, "output": ""}}
    parser.feed(json.dumps({"type": "tool_use", "sessionID": "ses_1", "part": part}))
    assert parser.plan == "- Read the code\n- Fix the bug"


# -- the command -------------------------------------------------------------------------------


def spec_at(tmp_path: Path, **fields: object) -> RunSpec:
    return RunSpec(
        task_id="fl-1",
        attempt=2,
        prompt="-do it",
        workdir=tmp_path / "work",
        result_file=tmp_path / "live" / "result.json",
        **fields,  # type: ignore[arg-type]
    )


def test_command(tmp_path: Path) -> None:
    spec = spec_at(
        tmp_path,
        config_dir=tmp_path / "acct",
        resume_session="ses_1",
        account_env={"ANTHROPIC_BASE_URL": "http://127.0.0.1:9/", "ANTHROPIC_API_KEY": "k"},
    )
    command = OpencodeCoder().command(spec)
    argv = " ".join(command.argv)
    assert argv.startswith(f"opencode run --format json --dir {tmp_path / 'work'} ")
    assert "-m anthropic/claude-sonnet-4-5 --title fleet fl-1 attempt 2 -s ses_1" in argv
    assert command.argv[-2:] == ["--", "-do it"]
    assert command.env["PWD"] == str(tmp_path / "work")
    assert command.env["XDG_DATA_HOME"] == str(tmp_path / "acct" / "data")
    assert command.env["ANTHROPIC_API_KEY"] == "k"
    assert command.env["OPENCODE_DISABLE_MODELS_FETCH"] == "1"
    config = json.loads(command.env["OPENCODE_CONFIG_CONTENT"])
    assert (config["autoupdate"], config["share"]) == (False, "disabled")
    assert config["permission"]["external_directory"] == {f"{tmp_path / 'live'}/*": "allow"}
    assert config["provider"]["anthropic"]["options"] == {"baseURL": "http://127.0.0.1:9/v1"}
    assert "apiKey" not in json.dumps(config)  # the key stays in the environment


def test_command_permission_modes(tmp_path: Path) -> None:
    coder = OpencodeCoder()
    assert "--auto" in coder.command(spec_at(tmp_path, permission_mode="bypassPermissions")).argv
    assert "--auto" not in coder.command(spec_at(tmp_path)).argv
    with pytest.raises(ValueError, match="no permission mode 'plan'"):
        coder.command(spec_at(tmp_path, permission_mode="plan"))


# -- the real CLI against the mock ---------------------------------------------------------------


@pytest.fixture
def scratch(tmp_path: Path) -> Scratch:
    return Scratch.create(tmp_path)


def run_opencode(scratch: Scratch, mock: MockServer, **fields: object) -> Attempt:
    env = {"ANTHROPIC_BASE_URL": mock.url, "ANTHROPIC_API_KEY": KEY}
    return run_cli(OpencodeCoder(), scratch, env, timeout=40, **fields)


@pytest.mark.cli
def test_cli_ok_and_resume(scratch: Scratch) -> None:
    """One run as the mock scripts it, then a resume of its session (a run costs opencode ~5 s)."""
    with MockServer(AnthropicHandler, ok_script()) as mock:
        attempt = run_opencode(scratch, mock)
        assert attempt.verdict.outcome == Outcome.SUCCESS, attempt.stderr
        assert (scratch.workdir / HELLO_NAME).read_text() == HELLO_TEXT
        assert json.loads(scratch.result_file.read_text())["status"] == "done"
        assert len(mock.requests) == 3  # no title request: --title names the session
        usage = attempt.parser.usage
        assert (
            tokens(attempt.parser, mock.expected_usage())
            == mock.expected_usage()
            == {
                "input_tokens": 3000,
                "output_tokens": 120,
                "cache_read_tokens": 900,
                "cache_write_tokens": 600,
            }
        )
        assert usage.cost_usd is not None and usage.cost_usd > 0
        assert attempt.parser.plan == first_plan_text(PLAN_TEXT, seen_tool=False)
        first = mock.requests[0]
        assert first.headers["x-api-key"] == KEY
        assert first.body["model"] == "claude-sonnet-4-5"
        assert attempt.parser.session_id.startswith("ses_")
        assert (scratch.config_dir / "data" / "opencode").is_dir()  # state in the account's dirs
        second = run_opencode(scratch, mock, resume_session=attempt.parser.session_id)
        resumed = mock.requests[3].body["messages"]
    assert second.verdict.outcome == Outcome.SUCCESS, second.verdict.reason
    assert second.parser.session_id == attempt.parser.session_id
    assert sum("tool_result" in json.dumps(m) for m in resumed) == 2  # the history was replayed
    assert second.parser.usage.input_tokens == 1000  # this run's one call only


@pytest.mark.cli
def test_cli_may_run_commands(scratch: Scratch) -> None:
    with MockServer(AnthropicHandler, ok_script(write_with="shell")) as mock:
        attempt = run_opencode(scratch, mock)
    assert next(e.tool for e in attempt.events if e.kind == EventKind.TOOL_USE) == "bash"
    assert attempt.verdict.outcome == Outcome.SUCCESS, attempt.verdict.reason
    assert (scratch.workdir / HELLO_NAME).read_text() == HELLO_TEXT


@pytest.mark.cli
@pytest.mark.parametrize(
    ("mode", "outcome", "resets_at"),
    [
        ("rate_limit", Outcome.RATE_LIMITED, None),
        ("usage_limit", Outcome.RATE_LIMITED, 1900000000),
        ("auth", Outcome.AUTH_ERROR, None),
        ("overloaded", Outcome.OVERLOADED, None),
    ],
)
def test_cli_limits(scratch: Scratch, mode: str, outcome: Outcome, resets_at: int | None) -> None:
    with MockServer(AnthropicHandler, Script(mode=mode, resets_at=1900000000)) as mock:
        attempt = run_opencode(scratch, mock)
    assert attempt.exit_code == 1
    assert attempt.verdict.outcome == outcome, attempt.verdict.reason
    assert attempt.verdict.resets_at == resets_at
    assert not (scratch.workdir / HELLO_NAME).exists()
