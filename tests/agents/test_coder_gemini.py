"""The gemini coder: its command, its parser over real Gemini CLI 0.61 output, and the real CLI
against the Gemini API mock."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from coders.base import EventKind, Outcome, RunSpec, Usage, Verdict
from coders.check.mock.base import HELLO_NAME, HELLO_TEXT, MockServer, Script
from coders.check.mock.gemini import GeminiHandler
from coders.check.trial import Attempt, Scratch
from coders.gemini import AUTH_METHOD_FIX, GeminiCoder, GeminiParser, settings_json
from supervisor.run.process import exit_code
from tests.support.agent_cli import capture, run_cli, tokens

PLAN = "1. Write hello.txt\n2. Write the result file"
BASE_URL = "GOOGLE_GEMINI_BASE_URL"


def spec_for(
    tmp_path: Path, account_env: dict[str, str] | None = None, **fields: object
) -> RunSpec:
    return Scratch.create(tmp_path).spec(
        "fl-test", account_env or {"GEMINI_API_KEY": "k"}, **fields
    )


def parse(lines: list[str], exit_code: int) -> tuple[GeminiParser, Verdict, list[EventKind]]:
    parser = GeminiParser()
    kinds = [e.kind for line in lines for e in parser.feed(line)]
    return parser, parser.finish(exit_code), kinds


def line(kind: str, **fields: object) -> str:
    return json.dumps({"type": kind, "timestamp": "2026-11-22T14:37:51.319Z", **fields})


# -- the command -------------------------------------------------------------------------------


def test_command_runs_headless_with_every_tool_approved(tmp_path: Path) -> None:
    spec = spec_for(tmp_path)
    command = GeminiCoder().command(spec)
    argv = command.argv
    assert argv[0] == "gemini"
    assert argv[argv.index("--output-format") + 1] == "stream-json"
    assert argv[argv.index("--approval-mode") + 1] == "yolo"
    assert "--skip-trust" in argv
    assert argv[argv.index("-m") + 1] == "gemini-2.5-pro"
    assert argv[argv.index("--include-directories") + 1] == str(spec.result_file.parent)
    assert argv[-1] == f"--prompt={spec.prompt}"
    assert command.env == {
        "GEMINI_API_KEY": "k",
        "GEMINI_CLI_HOME": str(spec.config_dir),
        "GEMINI_TELEMETRY_ENABLED": "false",
        "TMPDIR": str(spec.result_file.parent / "tmp"),
    }
    assert spec.result_file.parent / "tmp" / "README" in command.files
    assert command.unset_env == ["GOOGLE_API_KEY", "GOOGLE_APPLICATION_CREDENTIALS"]


def test_command_options(tmp_path: Path) -> None:
    spec = spec_for(
        tmp_path,
        model="gemini-2.5-flash",
        permission_mode="auto_edit",
        resume_session="0b1c",
        system_prompt="You review code.\n",
    )
    spec.result_file = spec.workdir / "result.json"
    argv = GeminiCoder().command(spec).argv
    assert argv[argv.index("-m") + 1] == "gemini-2.5-flash"
    assert argv[argv.index("--approval-mode") + 1] == "auto_edit"
    assert argv[argv.index("--resume") + 1] == "0b1c"
    assert "--include-directories" not in argv
    assert argv[-1] == f"--prompt=You review code.\n\n{spec.prompt}"


def test_an_unknown_approval_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown gemini approval mode 'bypass'"):
        GeminiCoder().command(spec_for(tmp_path, permission_mode="bypass"))


def test_settings_pick_the_api_key_auth_only_with_a_base_url(tmp_path: Path) -> None:
    plain = json.loads(settings_json(spec_for(tmp_path)))
    assert "security" not in plain
    assert plain["general"]["maxAttempts"] == 3
    assert plain["telemetry"] == {"enabled": False}
    assert plain["privacy"] == {"usageStatisticsEnabled": False}
    assert plain["general"]["enableAutoUpdate"] is False
    gateway = spec_for(tmp_path, {"GEMINI_API_KEY": "k", BASE_URL: "http://gw"})
    gateway.options["max_attempts"] = 1
    settings = json.loads(settings_json(gateway))
    assert settings["security"] == {"auth": {"selectedType": "gemini-api-key"}}
    assert settings["general"]["maxAttempts"] == 1
    command = GeminiCoder().command(gateway)
    settings_file = Scratch(tmp_path).config_dir / ".gemini" / "settings.json"
    assert command.files[settings_file] == settings_json(gateway)


def test_without_an_account_dir_or_an_outside_result_nothing_is_written(tmp_path: Path) -> None:
    spec = spec_for(tmp_path)
    spec.config_dir = None
    spec.result_file = spec.workdir / "result.json"
    command = GeminiCoder().command(spec)
    assert command.files == {}
    assert "GEMINI_CLI_HOME" not in command.env and "TMPDIR" not in command.env


# -- parsing real Gemini CLI output ------------------------------------------------------------


def test_parses_a_successful_run() -> None:
    parser, verdict, kinds = parse(capture("final-gemini-ok"), 0)
    assert verdict.outcome == Outcome.SUCCESS
    assert parser.session_id == "fee6f883-4fe6-4c72-bf41-0a45e270d2ae"
    assert parser.plan == "Plan:\n1. Create hello.txt.\n2. Report back."
    thoughts = 3153 - 3006 - 126
    assert parser.usage == Usage(
        input_tokens=2106,
        output_tokens=126 + thoughts,
        cache_read_tokens=900,
        reasoning_tokens=thoughts,
        model="auto",
    )
    assert kinds == [
        EventKind.SESSION,
        EventKind.OTHER,
        EventKind.TEXT,  # "Plan:\n1. Create hello.txt." as soon as its line ended
        EventKind.TEXT,  # "2. Report back." when the tool call ended the message
        EventKind.TOOL_USE,
        EventKind.TOOL_RESULT,
        EventKind.TEXT,
        EventKind.USAGE,
        EventKind.RESULT,
    ]


def test_a_daily_quota_is_a_usage_limit_without_a_reset_time() -> None:
    parser, verdict, kinds = parse(capture("gemini-429"), 429 & 0xFF)
    assert verdict.outcome == Outcome.RATE_LIMITED
    assert verdict.resets_at is None and "daily quota" in verdict.reason
    assert EventKind.RATE_LIMIT in kinds and parser.usage.input_tokens == 0


def test_a_per_minute_quota_resets_after_the_suggested_delay() -> None:
    before = time.time()
    _, verdict, _ = parse(capture("gemini-429min"), 429 & 0xFF)
    assert verdict.outcome == Outcome.RATE_LIMITED
    assert verdict.resets_at is not None
    assert before + 1 <= verdict.resets_at <= time.time() + 1


def test_assistant_text_is_shown_a_line_at_a_time() -> None:
    parser = GeminiParser()
    pieces = ["<plan>\n1. Re", "ad\n2. Fix\n</pl", "an>\nStarting", " now."]
    texts = [
        [e.text for e in parser.feed(line("message", role="assistant", content=p, delta=True))]
        for p in pieces
    ]
    tool = parser.feed(line("tool_use", tool_name="read_file", tool_id="t1", parameters={}))
    assert texts == [["<plan>"], ["1. Read\n2. Fix"], ["</plan>"], []]
    assert [e.text for e in tool if e.kind == EventKind.TEXT] == ["Starting now."]
    assert parser.plan == "1. Read\n2. Fix"


def test_the_todo_tool_is_a_plan_when_nothing_better_came() -> None:
    parser = GeminiParser()
    todos = [{"description": "read", "status": "pending"}, {"description": "fix"}]
    parser.feed(line("tool_use", tool_name="write_todos", tool_id="t", parameters={"todos": todos}))
    assert parser.plan == "- read\n- fix"


def test_tool_results_and_errors() -> None:
    parser = GeminiParser()
    failed = parser.feed(
        line("tool_result", tool_id="t", status="error", error={"message": "Path not in workspace"})
    )
    ok = parser.feed(line("tool_result", tool_id="u", status="success", output="done"))
    warning = parser.feed(line("error", severity="warning", message="Loop detected"))
    assert [(e.text, e.is_error) for e in failed + ok] == [
        ("Path not in workspace", True),
        ("done", False),
    ]
    assert warning[0].kind == EventKind.ERROR
    assert parser.finish(1) == Verdict(Outcome.FAILURE, "Loop detected")


@pytest.mark.parametrize(
    ("exit_code", "message", "outcome"),
    [
        (41, "", Outcome.AUTH_ERROR),
        (53, "Reached max session turns", Outcome.MAX_TURNS),
        (503 & 0xFF, "[API Error: The model is overloaded.]", Outcome.OVERLOADED),
        (
            429 & 0xFF,
            "[API Error: You have exhausted your capacity on this model.]",
            Outcome.OVERLOADED,
        ),
        (
            400 & 0xFF,
            "[API Error: API key not valid. Please pass a valid API key.]",
            Outcome.AUTH_ERROR,
        ),
        (1, "[API Error: ... PERMISSION_DENIED ...]", Outcome.AUTH_ERROR),
        (1, "[API Error: Resource has been exhausted (e.g. check quota).]", Outcome.RATE_LIMITED),
        (1, "something else", Outcome.FAILURE),
        (-9, "", Outcome.FAILURE),
    ],
)
def test_failures_are_classified(exit_code: int, message: str, outcome: Outcome) -> None:
    parser = GeminiParser()
    if message:
        parser.feed(line("result", status="error", error={"type": "unknown", "message": message}))
    verdict = parser.finish(exit_code)
    assert verdict.outcome == outcome
    if exit_code == 41:
        assert verdict.reason == AUTH_METHOD_FIX


def test_odd_lines_never_raise() -> None:
    parser = GeminiParser()
    odd = [
        "",
        "not json",
        "[]",
        '{"type": "result", "stats": 3}',
        '{"type": "tool_use"}',
        '{"type": "tool_use", "tool_name": "write_todos", "parameters": {"todos": 7}}',
        '{"type": "result", "status": "error", "error": "x", "stats": {"models": [1]}}',
        '{"type": "result", "status": "error", "stats": {"input_tokens": "n", "cached": null}}',
    ]
    for text in odd:
        parser.feed(text)
    assert parser.usage == Usage() and parser.plan == ""
    assert parser.finish(0).outcome == Outcome.FAILURE


# -- the real CLI against the mock ---------------------------------------------------------------


def run_gemini(
    tmp_path: Path, script: Script, account: dict[str, str] | None = None, **fields: object
) -> tuple[Attempt, MockServer]:
    with MockServer(GeminiHandler, script) as mock:
        env = {"GEMINI_API_KEY": "mock-key", BASE_URL: mock.url, **(account or {})}
        attempt = run_cli(GeminiCoder(), Scratch.create(tmp_path), env, timeout=40, **fields)
    return attempt, mock


@pytest.mark.cli
def test_cli_writes_the_files_and_reports_the_mocks_usage(tmp_path: Path) -> None:
    script = Script(cache_read_tokens=300, cache_write_tokens=20, extra={"reasoning_tokens": 7})
    attempt, mock = run_gemini(tmp_path, script, system_prompt="You are the reviewer on duty.")
    work = Scratch(tmp_path)
    assert attempt.verdict.outcome == Outcome.SUCCESS, (attempt.verdict, attempt.stderr[-2000:])
    assert (work.workdir / HELLO_NAME).read_text() == HELLO_TEXT
    assert json.loads(work.result_file.read_text())["status"] == "done"
    want = mock.expected_usage()
    assert tokens(attempt.parser, want) == want
    assert attempt.parser.usage.reasoning_tokens == len(mock.requests) * 7
    assert attempt.parser.usage.model == "gemini-2.5-pro"
    assert attempt.parser.plan == PLAN
    assert attempt.parser.session_id
    assert all("streamGenerateContent" in r.path for r in mock.requests)  # no router call
    assert "You are the reviewer on duty." in json.dumps(mock.requests[0].body)
    settings = json.loads((work.config_dir / ".gemini" / "settings.json").read_text())
    assert settings["security"]["auth"]["selectedType"] == "gemini-api-key"


@pytest.mark.cli
def test_cli_auto_model_asks_the_router_first(tmp_path: Path) -> None:
    attempt, mock = run_gemini(tmp_path, Script(), model="auto")
    assert attempt.verdict.outcome == Outcome.SUCCESS, (attempt.verdict, attempt.stderr[-2000:])
    assert mock.requests[0].path.endswith(":generateContent")  # the classifier, on flash-lite
    want = mock.expected_usage()  # the CLI counts the router's tokens too
    assert tokens(attempt.parser, want) == want
    assert (Scratch(tmp_path).workdir / HELLO_NAME).read_text() == HELLO_TEXT


@pytest.mark.cli
def test_cli_runs_commands_and_resumes_its_session(tmp_path: Path) -> None:
    work = Scratch.create(tmp_path)
    with MockServer(GeminiHandler, Script(extra={"write_with": "shell"})) as mock:
        env = {"GEMINI_API_KEY": "mock-key", BASE_URL: mock.url}
        first = run_cli(GeminiCoder(), work, env, timeout=40)
        assert first.verdict.outcome == Outcome.SUCCESS, first.stderr[-2000:]
        assert any(e.tool == "run_shell_command" for e in first.events)
        assert (work.workdir / HELLO_NAME).read_text() == HELLO_TEXT
        session = first.parser.session_id
        second = run_cli(GeminiCoder(), work, env, timeout=40, resume_session=session)
    assert second.verdict.outcome == Outcome.SUCCESS, second.stderr[-2000:]
    assert second.parser.session_id == first.parser.session_id
    resumed = mock.requests[-1].body["contents"]
    assert len(resumed) > len(mock.requests[2].body["contents"])  # the earlier turns came along


@pytest.mark.cli
def test_cli_rate_limit_fails_at_once_with_the_reset_time(tmp_path: Path) -> None:
    resets_at = int(time.time()) + 3600
    attempt, mock = run_gemini(tmp_path, Script(mode="rate_limit", resets_at=resets_at))
    assert attempt.verdict.outcome == Outcome.RATE_LIMITED, attempt.verdict
    # gemini exits 429 & 0xFF = 173; the agents' wrapper, a shell, cannot tell a status above 128
    # from a signal (128 + N): the supervisor, and so the check, record it as exit_code(173)
    assert attempt.exit_code == exit_code(429 & 0xFF) and len(mock.requests) == 1
    assert attempt.verdict.resets_at == pytest.approx(resets_at, abs=3)


@pytest.mark.cli
def test_cli_retries_a_short_quota_only_as_often_as_fleet_allows(tmp_path: Path) -> None:
    started = time.time()
    script = Script(mode="rate_limit", resets_at=int(started) + 1)
    attempt, mock = run_gemini(tmp_path, script, options={"max_attempts": 2})
    assert attempt.verdict.outcome == Outcome.RATE_LIMITED, attempt.verdict
    assert len(mock.requests) == 2
    assert attempt.verdict.resets_at is not None and attempt.verdict.resets_at > started


@pytest.mark.cli
@pytest.mark.parametrize(
    ("mode", "outcome"),
    [
        ("usage_limit", Outcome.RATE_LIMITED),
        ("auth", Outcome.AUTH_ERROR),
        ("overloaded", Outcome.OVERLOADED),
    ],
)
def test_cli_refusals(tmp_path: Path, mode: str, outcome: Outcome) -> None:
    attempt, mock = run_gemini(tmp_path, Script(mode=mode), options={"max_attempts": 1})
    assert attempt.verdict.outcome == outcome, attempt.verdict
    assert len(mock.requests) == 1
    reports = list((Scratch(tmp_path).result_file.parent / "tmp").glob("gemini-client-error-*"))
    assert reports, "the CLI's error report belongs beside the attempt's files"


@pytest.mark.cli
def test_cli_without_the_auth_setting_says_how_to_fix_it(tmp_path: Path) -> None:
    work = Scratch.create(tmp_path)
    (work.config_dir / ".gemini").mkdir(parents=True)
    (work.config_dir / ".gemini" / "settings.json").write_text("{}\n")
    attempt, mock = run_gemini(tmp_path, Script())
    assert attempt.exit_code == 41 and not mock.requests
    assert attempt.verdict == Verdict(Outcome.AUTH_ERROR, AUTH_METHOD_FIX)
