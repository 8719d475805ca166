"""The claude coder: its command, its parser over real Claude Code output, and the real CLI
against the Anthropic mock (`cli` tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coders.base import EventKind, Outcome, RunSpec, first_plan_text
from coders.check.mock.anthropic import AnthropicHandler
from coders.check.mock.base import HELLO_NAME, HELLO_TEXT, PLAN_TEXT, MockServer, Script
from coders.check.trial import Attempt, Scratch
from coders.claude import ClaudeCoder, ClaudeParser
from tests.support.agent_cli import capture, ok_script, replay, run_cli, tokens

CAPTURE_PLAN = "Plan:\n1. Create the file hello.txt with the requested content.\n2. Report back."
KEY = "sk-ant-test-key"


def parse(case: str, exit_code: int, name: str = "stdout.jsonl") -> tuple[ClaudeParser, list]:
    parser = ClaudeParser()
    events, verdict = replay(parser, capture(case, name), exit_code)
    return parser, [*events, verdict]


def kinds(events: list) -> list[EventKind]:
    return [e.kind for e in events[:-1]]


# -- parsing real output ---------------------------------------------------------------------


def test_parses_a_successful_run() -> None:
    parser, events = parse("claude-ok", 0)
    assert kinds(events) == [
        EventKind.SESSION,
        EventKind.TEXT,
        EventKind.TOOL_USE,
        EventKind.TOOL_RESULT,
        EventKind.TEXT,
        EventKind.USAGE,
        EventKind.RESULT,
    ]
    assert parser.session_id == "141a2d90-d7ec-4f10-bac9-7da44f296e44"
    assert events[2].tool == "Write"
    assert events[2].tool_input == {
        "file_path": "<lab>/cap/claude-ok/work/hello.txt",
        "content": "hello from mock\n",
    }
    usage = parser.usage
    assert (usage.input_tokens, usage.output_tokens) == (2030, 84)
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (600, 400)
    assert usage.cost_usd == pytest.approx(0.01192)
    assert usage.model == "claude-opus-5-5"
    assert parser.plan == CAPTURE_PLAN
    assert events[-1].outcome == Outcome.SUCCESS
    assert events[-1].reason == "Done. I created hello.txt."


def test_a_plain_429_is_rate_limited_without_a_reset_time() -> None:
    parser, events = parse("claude-429", 1)
    assert events[-1].outcome == Outcome.RATE_LIMITED
    assert events[-1].resets_at is None
    assert "429" in events[-1].reason
    assert EventKind.ERROR in kinds(events)
    assert parser.usage.input_tokens == 0


def test_a_subscription_usage_limit_carries_its_reset_time() -> None:
    _, events = parse("claude-oauth-usage_limit", 1)
    verdict = events[-1]
    assert verdict.outcome == Outcome.RATE_LIMITED
    assert verdict.resets_at == 1795367720
    assert verdict.reason.startswith("You've hit your 5-hour limit")
    limits = [e.limit for e in events[:-1] if e.kind == EventKind.RATE_LIMIT]
    assert limits and all(lim.status == "rejected" and lim.window == "five_hour" for lim in limits)


def test_a_usage_warning_is_a_rate_limit_event_on_a_successful_run() -> None:
    _, events = parse("claude-oauth-warn", 0)
    limits = [e.limit for e in events[:-1] if e.kind == EventKind.RATE_LIMIT]
    assert len(limits) == 1
    assert limits[0].status == "allowed_warning"
    assert limits[0].utilization == pytest.approx(0.93)
    assert limits[0].resets_at == 1795364110
    assert limits[0].window == "five_hour"
    assert events[-1].outcome == Outcome.SUCCESS


def test_retries_on_429_are_early_rejections() -> None:
    _, events = parse("claude-429-retry", 1)
    early = [e for e in events[:-1] if e.kind == EventKind.RATE_LIMIT]
    assert len(early) == 10
    assert all(e.limit.status == "rejected" and e.limit.kind == "rate_limit" for e in early)
    assert events[-1].outcome == Outcome.RATE_LIMITED


@pytest.mark.parametrize(
    ("case", "exit_code", "outcome", "reason"),
    [
        ("claude-auth", 1, Outcome.AUTH_ERROR, "Invalid API key · Fix external API key"),
        ("claude-overloaded", 1, Outcome.OVERLOADED, "API Error: 529 Overloaded."),
        ("claude-maxturns1", 1, Outcome.MAX_TURNS, "Reached maximum number of turns (1)"),
        ("claude-defaultperm", 0, Outcome.FAILURE, "claude was not allowed to use Write"),
        ("claude-planmode", 0, Outcome.FAILURE, "claude was not allowed to use Write"),
    ],
)
def test_classifies_failures(case: str, exit_code: int, outcome: Outcome, reason: str) -> None:
    _, events = parse(case, exit_code)
    assert events[-1].outcome == outcome
    assert events[-1].reason.startswith(reason)


def test_retries_that_are_not_limits_are_not_rate_limit_events() -> None:
    _, events = parse("claude-auth", 1)
    assert EventKind.RATE_LIMIT not in kinds(events)
    retries = [e.text for e in events[:-1] if e.text.startswith("API retry")]
    assert len(retries) == 10
    assert retries[0] == "API retry 1/10: authentication_failed (401)"


def test_a_limit_after_a_tool_call_keeps_the_usage_so_far() -> None:
    parser, events = parse("claude-fail_after_tool", 1)
    assert events[-1].outcome == Outcome.RATE_LIMITED
    assert (parser.usage.input_tokens, parser.usage.output_tokens) == (1010, 42)
    assert parser.usage.cost_usd == pytest.approx(0.00594)


def test_a_resumed_run_counts_only_its_own_cost() -> None:
    first, _ = parse("claude-resume", 0, "run1.jsonl")
    second, events = parse("claude-resume", 0, "run2.jsonl")
    assert second.session_id == first.session_id
    assert second.usage.input_tokens == 1030
    assert second.usage.cost_usd == pytest.approx(0.00602)  # total_cost_usd says 0.01794
    assert events[-1].outcome == Outcome.SUCCESS


def test_odd_lines_are_kept_as_other_events() -> None:
    parser = ClaudeParser()
    for line in ("not json", "[1, 2]", '{"type": "brand_new_event"}', '{"type": "system"}'):
        assert [e.kind for e in parser.feed(line)] == [EventKind.OTHER]
    assert parser.finish(1).outcome == Outcome.FAILURE
    assert "without a result line" in parser.finish(1).reason
    assert parser.finish(-9).reason == "claude was killed by signal 9"


def test_plan_prefers_a_plan_block_then_text_then_todos() -> None:
    def assistant(*blocks: dict) -> str:
        return json.dumps({"type": "assistant", "message": {"content": list(blocks)}})

    todo = {"type": "tool_use", "name": "TodoWrite", "input": {"todos": [{"content": "Step A"}]}}
    parser = ClaudeParser()
    parser.feed(assistant(todo))
    assert parser.plan == "- Step A"
    parser.feed(assistant({"type": "text", "text": "after the tool"}))
    assert parser.plan == "- Step A"
    parser.feed(assistant({"type": "text", "text": "x <plan>the plan</plan> y"}))
    assert parser.plan == "the plan"


# -- the command -------------------------------------------------------------------------------


def spec_at(tmp_path: Path, **fields: object) -> RunSpec:
    fields.setdefault("result_file", tmp_path / "live" / "result.json")
    return RunSpec(
        task_id="fl-1",
        attempt=1,
        prompt="-do it",
        workdir=tmp_path / "work",
        **fields,  # type: ignore[arg-type]
    )


def test_command_defaults(tmp_path: Path) -> None:
    command = ClaudeCoder().command(spec_at(tmp_path))
    assert command.argv[:5] == ["claude", "-p", "--output-format", "stream-json", "--verbose"]
    assert command.argv[-2:] == ["--", "-do it"]
    argv = " ".join(command.argv)
    assert "--model sonnet --permission-mode acceptEdits --allowedTools=Bash" in argv
    assert f"--add-dir={tmp_path / 'live'}" in command.argv
    assert command.env["CLAUDE_CODE_MAX_RETRIES"] == "1"
    for name in (
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
        "DISABLE_TELEMETRY",
        "DISABLE_ERROR_REPORTING",
        "DISABLE_AUTOUPDATER",
    ):
        assert command.env[name] == "1"
    assert "CLAUDE_CONFIG_DIR" not in command.env
    assert command.unset_env == []


def test_command_options(tmp_path: Path) -> None:
    spec = spec_at(
        tmp_path,
        model="opus",
        permission_mode="plan",
        system_prompt="You review code.",
        resume_session="abc",
        config_dir=tmp_path / "acct",
        account_env={"CLAUDE_CODE_OAUTH_TOKEN": "tok"},
        options={"max_turns": 7},
        result_file=tmp_path / "work" / ".fleet" / "result.json",
    )
    command = ClaudeCoder().command(spec)
    argv = " ".join(command.argv)
    assert "--model opus --permission-mode plan" in argv
    assert "--allowedTools=Bash" not in argv
    assert "--add-dir" not in argv  # the result file is inside the working directory
    assert "--append-system-prompt=You review code." in command.argv
    assert "--resume abc" in argv and "--max-turns 7" in argv
    assert command.env["CLAUDE_CONFIG_DIR"] == str(tmp_path / "acct")
    assert command.env["CLAUDE_CODE_OAUTH_TOKEN"] == "tok"
    assert sorted(command.unset_env) == ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"]


# -- the real CLI against the mock ---------------------------------------------------------------


@pytest.fixture
def scratch(tmp_path: Path) -> Scratch:
    return Scratch.create(tmp_path)


def run_claude(
    scratch: Scratch, mock: MockServer, key_env: str = "ANTHROPIC_API_KEY", **fields: object
) -> Attempt:
    env = {"ANTHROPIC_BASE_URL": mock.url, key_env: KEY}
    return run_cli(ClaudeCoder(), scratch, env, timeout=30, **fields)


@pytest.mark.cli
def test_cli_ok(scratch: Scratch) -> None:
    with MockServer(AnthropicHandler, ok_script()) as mock:
        attempt = run_claude(scratch, mock, system_prompt="- Handbook: be brief.")
        assert attempt.verdict.outcome == Outcome.SUCCESS, attempt.stderr
        assert (scratch.workdir / HELLO_NAME).read_text() == HELLO_TEXT
        assert json.loads(scratch.result_file.read_text())["status"] == "done"
        assert len(mock.requests) == 3
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
        assert attempt.parser.usage.cost_usd is not None and attempt.parser.usage.cost_usd > 0
        assert attempt.parser.plan == first_plan_text(PLAN_TEXT, seen_tool=False)
        first = mock.requests[0]
        assert first.headers["x-api-key"] == KEY
        assert "sonnet" in first.body["model"]
        assert "- Handbook: be brief." in json.dumps(first.body["system"])
    assert attempt.parser.session_id
    assert (scratch.config_dir / "projects").is_dir()  # the transcript is in the account's dir


@pytest.mark.cli
def test_cli_may_run_commands(scratch: Scratch) -> None:
    with MockServer(AnthropicHandler, ok_script(write_with="shell")) as mock:
        attempt = run_claude(scratch, mock)
    assert next(e.tool for e in attempt.events if e.kind == EventKind.TOOL_USE) == "Bash"
    assert attempt.verdict.outcome == Outcome.SUCCESS
    assert (scratch.workdir / HELLO_NAME).read_text() == HELLO_TEXT


@pytest.mark.cli
@pytest.mark.parametrize(
    ("mode", "key_env", "outcome"),
    [
        ("rate_limit", "ANTHROPIC_API_KEY", Outcome.RATE_LIMITED),
        ("usage_limit", "CLAUDE_CODE_OAUTH_TOKEN", Outcome.RATE_LIMITED),
        ("auth", "ANTHROPIC_API_KEY", Outcome.AUTH_ERROR),
        ("overloaded", "ANTHROPIC_API_KEY", Outcome.OVERLOADED),
    ],
)
def test_cli_limits(scratch: Scratch, mode: str, key_env: str, outcome: Outcome) -> None:
    script = Script(mode=mode, resets_at=1900000000)
    with MockServer(AnthropicHandler, script) as mock:
        attempt = run_claude(scratch, mock, key_env=key_env)
        assert len(mock.requests) <= 2  # CLAUDE_CODE_MAX_RETRIES=1
    assert attempt.exit_code == 1
    assert attempt.verdict.outcome == outcome, attempt.verdict.reason
    assert attempt.verdict.resets_at == (1900000000 if mode == "usage_limit" else None)
    assert not (scratch.workdir / HELLO_NAME).exists()


@pytest.mark.cli
def test_cli_usage_warning(scratch: Scratch) -> None:
    script = Script(mode="warn", resets_at=1900000000, utilization=0.95)
    with MockServer(AnthropicHandler, script) as mock:
        attempt = run_claude(scratch, mock, key_env="CLAUDE_CODE_OAUTH_TOKEN")
        assert mock.requests[0].headers["Authorization"] == f"Bearer {KEY}"
    limits = [e.limit for e in attempt.events if e.kind == EventKind.RATE_LIMIT]
    assert [(lim.status, lim.window, lim.utilization, lim.resets_at) for lim in limits] == [
        ("allowed_warning", "five_hour", 0.95, 1900000000)
    ]
    assert attempt.verdict.outcome == Outcome.SUCCESS


@pytest.mark.cli
def test_cli_max_turns(scratch: Scratch) -> None:
    with MockServer(AnthropicHandler, ok_script()) as mock:
        attempt = run_claude(scratch, mock, options={"max_turns": 1})
    assert attempt.verdict.outcome == Outcome.MAX_TURNS
    assert attempt.verdict.reason == "Reached maximum number of turns (1)"


@pytest.mark.cli
def test_cli_resume_continues_the_session(scratch: Scratch) -> None:
    with MockServer(AnthropicHandler, ok_script()) as mock:
        first = run_claude(scratch, mock, options={"max_turns": 1})
        assert first.verdict.outcome == Outcome.MAX_TURNS
        session = first.parser.session_id
        second = run_claude(scratch, mock, resume_session=session)
        resumed = mock.requests[1].body["messages"]
    assert second.verdict.outcome == Outcome.SUCCESS, second.verdict.reason
    assert second.parser.session_id == session
    assert any("tool_result" in json.dumps(m) for m in resumed)  # the history was replayed
    assert json.loads(scratch.result_file.read_text())["status"] == "done"
    assert second.parser.usage.input_tokens == 2 * 1000  # this run's two calls only
