"""The codex coder: its command, its parser over real Codex 0.169 output, and the real CLI against
the OpenAI Responses mock."""

from __future__ import annotations

import json
import time
import tomllib
from datetime import datetime
from pathlib import Path

import pytest

from coders.base import Command, EventKind, Outcome, RunSpec, Usage, Verdict
from coders.check.mock.base import HELLO_NAME, HELLO_TEXT, PLAN_TEXT, MockServer, Script
from coders.check.mock.openai import OpenAIHandler
from coders.check.trial import Attempt, Scratch
from coders.codex.adapter import MAX_RETRIES, CodexCoder, CodexParser, toml_string
from coders.codex.errors import reset_at, verdict_for
from tests.support.agent_cli import capture, exit_code_of, feed, replay, run_cli, tokens

PLAN = "1. Write hello.txt\n2. Write the result file"


def spec_for(
    tmp_path: Path, account_env: dict[str, str] | None = None, **fields: object
) -> RunSpec:
    account = account_env or {"OPENAI_API_KEY": "sk-test"}
    return Scratch.create(tmp_path).spec("fl-test", account, **fields)


def parse(
    lines: list[str], exit_code: int, parser: CodexParser | None = None
) -> tuple[CodexParser, Verdict]:
    parser = parser or CodexParser()
    return parser, replay(parser, lines, exit_code)[1]


# -- the command -------------------------------------------------------------------------------


def test_command_runs_exec_in_the_workdir_with_the_result_dir_writable(tmp_path: Path) -> None:
    spec = spec_for(tmp_path)
    command = CodexCoder().command(spec)
    argv = command.argv
    assert argv[:4] == ["codex", "exec", "--json", "--skip-git-repo-check"]
    assert argv[argv.index("--sandbox") + 1] == "workspace-write"
    assert argv[argv.index("-C") + 1] == str(spec.workdir)
    assert argv[argv.index("--add-dir") + 1] == str(spec.result_file.parent)
    assert argv[argv.index("-m") + 1] == "gpt-5.5"
    assert argv[-2:] == ["--", spec.prompt]
    settings = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-c"]
    assert 'approval_policy="never"' in settings
    assert "analytics.enabled=false" in settings
    account = spec.config_dir
    assert account is not None
    assert command.env == {"OPENAI_API_KEY": "sk-test", "CODEX_HOME": str(account)}
    assert list(command.files) == [account / "config.toml"]
    assert not any(s.startswith("model_provider") for s in settings)


def test_command_leaves_out_add_dir_when_the_result_file_is_inside_the_workdir(
    tmp_path: Path,
) -> None:
    spec = spec_for(tmp_path, model="gpt-5.4")
    spec.result_file = spec.workdir / ".fleet" / "result.json"
    argv = CodexCoder().command(spec).argv
    assert "--add-dir" not in argv
    assert argv[argv.index("-m") + 1] == "gpt-5.4"


def test_command_resumes_a_thread_before_the_prompt(tmp_path: Path) -> None:
    argv = CodexCoder().command(spec_for(tmp_path, resume_session="thread-1")).argv
    assert argv[-4:-2] == ["resume", "thread-1"]
    assert argv.index("-C") < argv.index("resume")


@pytest.mark.parametrize(
    ("mode", "flags"),
    [
        ("", ["--sandbox", "workspace-write"]),
        ("read-only", ["--sandbox", "read-only"]),
        ("danger-full-access", ["--sandbox", "danger-full-access"]),
        ("bypass", ["--dangerously-bypass-approvals-and-sandbox"]),
    ],
)
def test_permission_modes(tmp_path: Path, mode: str, flags: list[str]) -> None:
    argv = CodexCoder().command(spec_for(tmp_path, permission_mode=mode)).argv
    assert argv[4 : 4 + len(flags)] == flags


def test_an_unknown_permission_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown codex permission mode 'acceptEdits'"):
        CodexCoder().command(spec_for(tmp_path, permission_mode="acceptEdits"))


def test_a_base_url_becomes_a_provider_with_capped_retries(tmp_path: Path) -> None:
    spec = spec_for(
        tmp_path,
        {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "http://gw.example/v1"},
        options={"max_retries": 1},
    )
    argv = CodexCoder().command(spec).argv
    settings = dict(argv[i + 1].split("=", 1) for i, arg in enumerate(argv) if arg == "-c")
    assert tomllib.loads(f"p = {settings['model_provider']}")["p"] == "fleet"
    provider = tomllib.loads(f"p = {settings['model_providers.fleet']}")["p"]
    assert provider == {
        "name": "fleet",
        "base_url": "http://gw.example/v1",
        "env_key": "OPENAI_API_KEY",
        "wire_api": "responses",
        "request_max_retries": 1,
        "stream_max_retries": 1,
    }


def test_the_system_prompt_becomes_developer_instructions(tmp_path: Path) -> None:
    handbook = 'Be "careful" \\ check twice.\nTabs\tand DEL \x7f and 😀'
    argv = CodexCoder().command(spec_for(tmp_path, system_prompt=handbook)).argv
    setting = next(
        argv[i + 1] for i, a in enumerate(argv) if a == "-c" and "developer" in argv[i + 1]
    )
    assert tomllib.loads(setting)["developer_instructions"] == handbook


def test_toml_string_round_trips_every_character() -> None:
    text = "".join(chr(c) for c in range(0, 0x250)) + "\U0001f600"
    assert tomllib.loads(f"v = {toml_string(text)}")["v"] == text


def test_an_account_key_unsets_the_inherited_one_and_is_the_providers(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, {"CODEX_API_KEY": "k", "OPENAI_BASE_URL": "http://gw/v1"})
    command = CodexCoder().command(spec)
    assert command.unset_env == ["OPENAI_API_KEY"]
    assert any('env_key="CODEX_API_KEY"' in arg for arg in command.argv)


# -- parsing real Codex output -----------------------------------------------------------------


def test_parses_a_successful_run() -> None:
    parser, verdict = parse(capture("final-codex-ok"), exit_code_of("final-codex-ok"))
    assert verdict.outcome == Outcome.SUCCESS
    assert parser.session_id == "01a203b1-1d0f-7f31-bd9f-bdfd403a8059"
    assert parser.plan == "Plan:\n1. Create hello.txt with the requested content.\n2. Report back."
    assert parser.usage == Usage(
        input_tokens=2003 - 600,
        output_tokens=84,
        cache_read_tokens=600,
        cache_write_tokens=0,
        reasoning_tokens=14,
    )
    assert parser.usage.cost_usd is None


def test_events_of_a_successful_run() -> None:
    events = feed(CodexParser(), capture("final-codex-ok"))
    kinds = [e.kind for e in events]
    assert kinds == [
        EventKind.SESSION,
        EventKind.OTHER,
        EventKind.TEXT,
        EventKind.TOOL_USE,
        EventKind.TOOL_RESULT,
        EventKind.TEXT,
        EventKind.USAGE,
    ]
    tool = events[3]
    assert tool.tool == "shell" and "hello.txt" in str(tool.tool_input)
    assert not events[4].is_error


def test_an_error_item_is_reported_but_not_a_failure() -> None:
    parser = CodexParser()
    events = feed(parser, capture("codex-ok"))
    errors = [e for e in events if e.kind == EventKind.ERROR]
    assert len(errors) == 1 and "Model metadata" in errors[0].text
    assert parser.finish(0).outcome == Outcome.SUCCESS


def test_a_usage_limit_is_rate_limited_until_the_time_it_names() -> None:
    before = time.time()
    _, verdict = parse(capture("codex-usage_limit"), exit_code_of("codex-usage_limit"))
    assert verdict.outcome == Outcome.RATE_LIMITED
    assert "usage limit" in verdict.reason
    assert verdict.resets_at is not None
    assert verdict.resets_at == reset_at(verdict.reason, before)  # "3:17 PM", next one from now
    assert before < verdict.resets_at <= before + 86400 + 60


def test_a_usage_limit_line_also_gives_a_rate_limit_event() -> None:
    events = feed(CodexParser(), capture("codex-usage_limit"))
    limits = [e.limit for e in events if e.kind == EventKind.RATE_LIMIT and e.limit]
    assert limits and {lim.kind for lim in limits} == {"usage_limit"}
    assert all(lim.status == "rejected" and lim.resets_at for lim in limits)


@pytest.mark.parametrize(
    ("case", "outcome"),
    [
        ("codex-rate_limit", Outcome.RATE_LIMITED),
        ("codex-rate_limit-defaultretries", Outcome.RATE_LIMITED),
        ("codex-stream_fail", Outcome.RATE_LIMITED),
        ("codex-auth", Outcome.AUTH_ERROR),
    ],
)
def test_failed_runs_are_classified(case: str, outcome: Outcome) -> None:
    parser, verdict = parse(capture(case), exit_code_of(case))
    assert verdict.outcome == outcome
    assert parser.usage == Usage()


def test_a_rate_limit_that_says_when_resets_then() -> None:
    before = time.time()
    _, verdict = parse(capture("codex-stream_fail"), 1)
    assert verdict.resets_at is not None
    assert before + 1.5 <= verdict.resets_at <= time.time() + 1.5


def test_reconnect_lines_are_transient() -> None:
    events = feed(CodexParser(), capture("codex-rate_limit-defaultretries"))
    retries = [e for e in events if e.text.startswith("Reconnecting...")]
    assert len(retries) == 5 and {e.kind for e in retries} == {EventKind.RETRY}


def test_a_run_killed_while_reconnecting_is_a_failure() -> None:
    _, verdict = parse(capture("codex-flags", "envbase.jsonl"), -9)
    assert verdict.outcome == Outcome.FAILURE
    assert verdict.reason == "codex was killed by signal 9"


def test_a_resumed_thread_counts_only_its_own_tokens() -> None:
    first, _ = parse(capture("codex-resume", "run1.jsonl"), 0)
    second, _ = parse(
        capture("codex-resume", "run2.jsonl"), 0, CodexParser(previous=first.thread_usage)
    )
    assert second.thread_usage.input_tokens == 3006 - 900
    assert second.usage == Usage(
        input_tokens=(3006 - 900) - (2003 - 600),
        output_tokens=126 - 84,
        cache_read_tokens=900 - 600,
        reasoning_tokens=21 - 14,
    )
    assert second.session_id == first.session_id


def test_the_parser_takes_the_previous_usage_from_the_spec(tmp_path: Path) -> None:
    previous = Usage(input_tokens=10, output_tokens=2, cache_read_tokens=5)
    spec = spec_for(tmp_path, options={"previous_usage": previous.to_dict()})
    parser = CodexCoder().parser(spec)
    done = {"input_tokens": 115, "cached_input_tokens": 5, "output_tokens": 7}
    parser.feed(json.dumps({"type": "turn.completed", "usage": done}))
    assert parser.usage == Usage(input_tokens=100, output_tokens=5, model="gpt-5.5")


def item(kind: str, item_type: str, item_id: str, **fields: object) -> str:
    return json.dumps(
        {"type": f"item.{kind}", "item": {"id": item_id, "type": item_type, **fields}}
    )


def test_other_item_types() -> None:
    todos = [{"text": "read the code", "completed": True}, {"text": "fix it", "completed": False}]
    search = {"server": "gh", "tool": "search"}
    lines = [
        item("started", "todo_list", "t", items=todos),
        item("completed", "reasoning", "r", text="thinking"),
        item("started", "mcp_tool_call", "m", arguments={"q": "x"}, **search),
        item("completed", "mcp_tool_call", "m", error={"message": "boom"}, **search),
        item("completed", "web_search", "w", query="fleet"),
        item(
            "completed",
            "file_change",
            "f",
            status="failed",
            changes=[{"path": "/x", "kind": "update"}],
        ),
        item("completed", "command_execution", "c", command="false", exit_code=1, status="failed"),
        item("completed", "agent_message", "a", text="Done."),
    ]
    parser = CodexParser()
    events = feed(parser, lines)
    assert parser.plan == "- read the code\n- fix it"
    uses = [(e.tool, e.tool_input) for e in events if e.kind == EventKind.TOOL_USE]
    assert uses == [
        ("mcp:gh/search", {"q": "x"}),
        ("web_search", {"query": "fleet"}),
        ("apply_patch", {"changes": [{"path": "/x", "kind": "update"}]}),
        ("shell", {"command": "false"}),
    ]
    results = [(e.text, e.is_error) for e in events if e.kind == EventKind.TOOL_RESULT]
    assert results == [("boom", True), ("fleet", False), ("update /x", True), ("", True)]
    assert events[0].text == "[x] read the code\n[ ] fix it"
    assert parser.finish(0).reason == "codex exited 0 without completing its turn"


def test_odd_lines_never_raise() -> None:
    parser = CodexParser()
    odd = [
        "",
        "not json",
        "[1, 2]",
        "{}",
        '{"type": "item.completed", "item": 3}',
        '{"type": "item.updated", "item": {"id": "t", "type": "todo_list", "items": 5}}',
        '{"type": "item.completed", "item": {"id": "f", "type": "file_change", "changes": "x"}}',
        '{"type": "turn.completed", "usage": [1]}',
        '{"type": "turn.completed", "usage": {"input_tokens": "many", "output_tokens": true}}',
    ]
    for line in odd:
        parser.feed(line)
    assert parser.usage == Usage()
    assert parser.finish(2).reason == "codex exited 2 before starting (see stderr)"
    parser.feed('{"type": "turn.failed", "error": "a plain string"}')
    assert parser.finish(1) == Verdict(Outcome.FAILURE, "a plain string")


# -- the rollout's rate limits -----------------------------------------------------------------

THREAD = "01a2073b-7e8d-7231-8cd8-dcaff65cc7ad"


def token_count(when: str, rate_limits: object) -> str:
    payload = {"type": "token_count", "info": None, "rate_limits": rate_limits}
    return json.dumps({"timestamp": when, "type": "event_msg", "payload": payload})


def window(used: float, minutes: int, **reset: object) -> dict[str, object]:
    return {"used_percent": used, "window_minutes": minutes, **reset}


def write_rollout(home: Path, day: str, stamp: str, lines: list[str], thread: str = THREAD) -> None:
    path = home / "sessions" / day / f"rollout-{stamp}-{thread}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


def limits_of(spec: RunSpec, thread: str = THREAD) -> list[tuple[object, ...]]:
    return [
        (e.limit.window, e.limit.status, e.limit.kind, e.limit.utilization, e.limit.resets_at)
        for e in CodexCoder().side_events(spec, thread)
        if e.kind == EventKind.RATE_LIMIT and e.limit is not None
    ]


def test_side_events_are_the_newest_token_counts_windows(tmp_path: Path) -> None:
    spec = spec_for(tmp_path)
    assert spec.config_dir is not None
    older = {"primary": window(50.0, 300, resets_at=1_900_000_000), "secondary": None}
    newer = {
        "primary": window(91.5, 300, resets_at=1_900_000_100),
        "secondary": window(40.0, 10080, resets_at=None),
    }
    write_rollout(
        spec.config_dir,
        "2026/11/23",
        "2026-11-23T07-07-49",
        [
            '{"timestamp": "2026-11-23T07:07:49.000Z", "type": "session_meta", "payload": {}}',
            token_count("2026-11-23T07:07:49.500Z", older),
            token_count("2026-11-23T07:07:50.000Z", newer),
            token_count("2026-11-23T07:07:51.000Z", None),  # an answer without the headers
            "not json, token_count",
        ],
    )
    assert limits_of(spec) == [  # the most used window last
        ("secondary", "allowed", "usage_limit", 0.40, None),
        ("primary", "allowed", "usage_limit", 0.915, 1_900_000_100),
    ]
    assert limits_of(spec, "01a2073b-0000-7231-8cd8-dcaff65cc7ad") == []
    assert limits_of(spec, "../*") == []


def test_side_events_count_an_older_reset_delay_from_the_lines_time(tmp_path: Path) -> None:
    spec = spec_for(tmp_path)
    assert spec.config_dir is not None
    when = "2026-11-23T07:00:00Z"
    limits = {"primary": window(20.0, 300, resets_in_seconds=600)}
    write_rollout(spec.config_dir, "2026/11/22", "2026-11-22T23-59-00", [token_count(when, limits)])
    write_rollout(spec.config_dir, "2026/11/23", "2026-11-23T07-00-00", ["{}"])  # a resume's file
    started = datetime.fromisoformat(when).timestamp()
    assert limits_of(spec) == [("primary", "allowed", "usage_limit", 0.2, started + 600)]


def test_side_events_read_codex_home_when_the_account_has_no_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for home, used in (("env", 10.0), ("acct", 30.0)):
        limits = {"primary": window(used, 300)}
        write_rollout(tmp_path / home, "2026/11/23", "t", [token_count("x", limits)])
    spec = spec_for(tmp_path / "run")
    spec.config_dir = None
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "env"))
    assert limits_of(spec) == [("primary", "allowed", "usage_limit", 0.1, None)]
    spec.account_env["CODEX_HOME"] = str(tmp_path / "acct")
    assert limits_of(spec) == [("primary", "allowed", "usage_limit", 0.3, None)]
    monkeypatch.delenv("CODEX_HOME")
    spec.account_env.clear()
    assert limits_of(spec) == []  # ~/.codex, in the tests' scratch home, has no rollouts


# -- reading Codex's error messages ------------------------------------------------------------


def local(year: int, month: int, day: int, hour: int, minute: int) -> float:
    return datetime(year, month, day, hour, minute).timestamp()


@pytest.mark.parametrize(
    ("message", "now", "expected"),
    [
        ("try again at 3:17 PM.", local(2026, 11, 22, 14, 0), local(2026, 11, 22, 15, 18)),
        ("try again at 3:17 PM.", local(2026, 11, 22, 15, 30), local(2026, 11, 23, 15, 18)),
        ("Try again at 12:05 AM.", local(2026, 11, 22, 23, 0), local(2026, 11, 23, 0, 6)),
        ("Try again at 12:30 PM.", local(2026, 11, 22, 9, 0), local(2026, 11, 22, 12, 31)),
        ("or try again at Nov 24th, 2026 3:17 PM.", 0.0, local(2026, 11, 24, 15, 18)),
        ("or try again at Mar 1st, 2027 9:05 AM.", 0.0, local(2027, 3, 1, 9, 6)),
        ("Please try again in 1.5s.", 1000.0, 1001.5),
        ("Please try again in 6m0s.", 1000.0, 1360.0),
        ("Please try again in 120ms.", 1000.0, 1000.12),
        ("exceeded retry limit, last status: 429 Too Many Requests", 1000.0, None),
    ],
)
def test_reset_times(message: str, now: float, expected: float | None) -> None:
    assert reset_at(message, now) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("message", "outcome"),
    [
        ("Quota exceeded. Check your plan and billing details.", Outcome.RATE_LIMITED),
        ("unexpected status 403 Forbidden: nope", Outcome.AUTH_ERROR),
        ("Missing environment variable: `OPENAI_API_KEY`.", Outcome.AUTH_ERROR),
        ("Selected model is at capacity. Please try a different model.", Outcome.OVERLOADED),
        ("exceeded retry limit, last status: 503 Service Unavailable", Outcome.OVERLOADED),
        ("stream disconnected before completion", Outcome.FAILURE),
    ],
)
def test_error_messages(message: str, outcome: Outcome) -> None:
    assert verdict_for(message, 1, True).outcome == outcome


# -- the real CLI against the mock ---------------------------------------------------------------


def run_codex(tmp_path: Path, script: Script, **fields: object) -> tuple[Attempt, MockServer]:
    with MockServer(OpenAIHandler, script) as mock:
        env = {"OPENAI_API_KEY": "sk-mock", "OPENAI_BASE_URL": f"{mock.url}/v1"}
        attempt = run_cli(CodexCoder(), Scratch.create(tmp_path), env, timeout=30, **fields)
    return attempt, mock


@pytest.mark.cli
def test_cli_writes_the_files_and_reports_the_mocks_usage(tmp_path: Path) -> None:
    script = Script(cache_read_tokens=300, cache_write_tokens=20, extra={"reasoning_tokens": 7})
    attempt, mock = run_codex(tmp_path, script, system_prompt="You are the reviewer on duty.")
    work = Scratch(tmp_path)
    assert attempt.verdict.outcome == Outcome.SUCCESS, (attempt.verdict, attempt.stderr[-2000:])
    assert (work.workdir / HELLO_NAME).read_text() == HELLO_TEXT
    assert json.loads(work.result_file.read_text())["status"] == "done"
    usage = attempt.parser.usage
    turns = mock.expected_usage()
    assert tokens(attempt.parser, turns) == turns
    assert usage.reasoning_tokens == 3 * 7 and usage.model == "gpt-5.5"
    assert (
        attempt.parser.plan == PLAN == PLAN_TEXT.removeprefix("<plan>\n").removesuffix("\n</plan>")
    )
    assert attempt.parser.session_id
    developer = json.dumps([r.body["input"][:3] for r in mock.requests])
    assert "You are the reviewer on duty." in developer


@pytest.mark.cli
def test_cli_runs_commands_in_the_workdir(tmp_path: Path) -> None:
    attempt, _ = run_codex(tmp_path, Script(extra={"write_with": "shell"}))
    assert attempt.verdict.outcome == Outcome.SUCCESS, attempt.stderr[-2000:]
    assert any(e.kind == EventKind.TOOL_USE and e.tool == "shell" for e in attempt.events)
    assert (Scratch(tmp_path).workdir / HELLO_NAME).read_text() == HELLO_TEXT


@pytest.mark.cli
def test_cli_resume_counts_only_the_new_turns(tmp_path: Path) -> None:
    coder = CodexCoder()
    work = Scratch.create(tmp_path)
    with MockServer(OpenAIHandler, Script(cache_read_tokens=100)) as mock:
        env = {"OPENAI_API_KEY": "sk-mock", "OPENAI_BASE_URL": mock.url}
        first = run_cli(coder, work, env, timeout=30)
        assert first.verdict.outcome == Outcome.SUCCESS, first.stderr[-2000:]
        one_run = mock.expected_usage()
        work.result_file.unlink()
        assert isinstance(first.parser, CodexParser)
        previous = first.parser.thread_usage.to_dict()
        thread = first.parser.session_id
        options = {"previous_usage": previous}
        second = run_cli(coder, work, env, timeout=30, resume_session=thread, options=options)
    assert second.verdict.outcome == Outcome.SUCCESS, second.stderr[-2000:]
    assert second.parser.session_id == first.parser.session_id
    assert tokens(second.parser, one_run) == one_run
    assert isinstance(second.parser, CodexParser)
    assert second.parser.thread_usage.input_tokens == 2 * one_run["input_tokens"]
    assert work.result_file.exists()


@pytest.mark.cli
def test_cli_rate_limit_is_retried_only_as_often_as_fleet_allows(tmp_path: Path) -> None:
    attempt, mock = run_codex(tmp_path, Script(mode="rate_limit"))
    assert attempt.verdict.outcome == Outcome.RATE_LIMITED, attempt.verdict
    assert len(mock.requests) == MAX_RETRIES + 1


@pytest.mark.cli
def test_cli_usage_limit_gives_the_reset_time(tmp_path: Path) -> None:
    resets_at = int(time.time()) + 2 * 3600
    attempt, mock = run_codex(tmp_path, Script(mode="usage_limit", resets_at=resets_at))
    assert attempt.verdict.outcome == Outcome.RATE_LIMITED, attempt.verdict
    assert attempt.verdict.resets_at is not None
    assert resets_at <= attempt.verdict.resets_at <= resets_at + 60  # Codex shows minutes
    assert len(mock.requests) == 1


@pytest.mark.cli
@pytest.mark.parametrize(
    ("mode", "outcome"), [("auth", Outcome.AUTH_ERROR), ("overloaded", Outcome.OVERLOADED)]
)
def test_cli_refusals(tmp_path: Path, mode: str, outcome: Outcome) -> None:
    attempt, _ = run_codex(tmp_path, Script(mode=mode))
    assert attempt.verdict.outcome == outcome, attempt.verdict


@pytest.mark.cli
def test_cli_rate_limit_headers_become_side_events(tmp_path: Path) -> None:
    resets_at = int(time.time()) + 1800
    script = Script(mode="warn", utilization=0.95, resets_at=resets_at)
    attempt, _ = run_codex(tmp_path, script)
    assert attempt.verdict.outcome == Outcome.SUCCESS, attempt.stderr[-2000:]
    spec = Scratch(tmp_path).spec("fl-test", {})
    events = CodexCoder().side_events(spec, attempt.parser.session_id)
    assert {e.kind for e in events} == {EventKind.RATE_LIMIT}
    limits = [e.limit for e in events if e.limit is not None]
    assert [(lim.window, lim.status, lim.utilization, lim.resets_at) for lim in limits] == [
        ("secondary", "allowed", 0.40, None),
        ("primary", "allowed", 0.95, resets_at),
    ]
    assert events[-1].text == "primary window (300 min): 95% used"
    assert CodexCoder().side_events(spec, "another-thread") == []


class WebSocketCodex(CodexCoder):
    """Codex on its built-in provider, pointed at `url` the way that provider takes one."""

    def __init__(self, url: str) -> None:
        self.url = url

    def command(self, spec: RunSpec) -> Command:
        command = super().command(spec)
        end = len(command.argv) - 2  # before `-- <prompt>`
        command.argv[end:end] = ["-c", f"openai_base_url={toml_string(self.url + '/v1')}"]
        return command


@pytest.mark.cli
def test_cli_falls_back_from_websocket_at_once(tmp_path: Path) -> None:
    """The built-in provider tries a WebSocket first; the mock's 426 sends it to HTTP."""
    with MockServer(OpenAIHandler, Script()) as mock:
        env = {"OPENAI_API_KEY": "sk-mock"}
        attempt = run_cli(WebSocketCodex(mock.url), Scratch.create(tmp_path), env, timeout=30)
    assert attempt.verdict.outcome == Outcome.SUCCESS, attempt.stderr[-2000:]
    methods = [r.method for r in mock.requests]
    assert methods[0] == "GET" and methods.count("GET") == 1 and "POST" in methods
    assert attempt.seconds < 10
