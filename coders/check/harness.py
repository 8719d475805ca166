"""`fleet coders check NAME`: run an installed agent CLI against fleet's mock model server.

Each case runs the real CLI through the coder's own `command()` and parser (`coders.check.trial`: a
scratch tree of its own with the result file outside the working directory, stdin closed, its own
session, a wall-clock timeout), against a mock on 127.0.0.1 scripted for the case. `ok` passes
when the agent wrote hello.txt and the result file, the outcome is success, the usage equals what
the mock reported and the plan was found; a limit case passes when the outcome is the expected
class (and a reset time, when the coder reports one, is the mock's to the minute).

A coder takes part by having a mock here (`MOCKS`: the built-in coders'; a coder from a plugin
may name its own with a `mock_handler = "module:Class"` attribute) and by the variables that point
its CLI at it (`base_url_env`, `key_env`, and `usage_limit_key_env` the variable of a subscription
key, for CLIs that show usage limits only to subscriptions: see `coders.base.Coder`). The check is
no part of the `Coder` protocol: the supervisor never needs it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from coders import get, names
from coders.base import Coder, Outcome, Parser, Usage, first_plan_text, which
from coders.check.mock.base import (
    HELLO_NAME,
    HELLO_TEXT,
    PLAN_TEXT,
    MockHandler,
    MockServer,
    Script,
)
from coders.check.trial import Attempt, Runner, Scratch, missing_cli, run_attempt, scratch_dir

EXPECTED = {
    "ok": Outcome.SUCCESS,
    "rate_limit": Outcome.RATE_LIMITED,
    "usage_limit": Outcome.RATE_LIMITED,
    "auth": Outcome.AUTH_ERROR,
    "overloaded": Outcome.OVERLOADED,
}
CHECK_CASES = tuple(EXPECTED)  # the cases every coder with a mock supports
# coder name -> "module:Class" of its mock model server
MOCKS = {
    "claude": "coders.check.mock.anthropic:AnthropicHandler",
    "codex": "coders.check.mock.openai:OpenAIHandler",
    "gemini": "coders.check.mock.gemini:GeminiHandler",
    "opencode": "coders.check.mock.anthropic:AnthropicHandler",
}
DUMMY_KEY = "sk-fleet-check-dummy"
RESET_SLACK = 60.0  # some CLIs state the reset time to the minute ("try again at 3:17 PM")


class CheckError(Exception):
    """The check cannot run at all: unknown coder, no mock, CLI not installed, unknown case."""


@dataclass
class CaseResult:
    case: str
    passed: bool
    detail: str
    seconds: float


def check(
    name: str,
    cases: list[str] | None = None,
    *,
    runner: Runner,
    timeout: float = 60.0,
    path: str | None = None,
) -> list[CaseResult]:
    """Run coder `name`'s CLI against its mock, one result per case (all it supports by default).

    `path` is searched for the CLI before PATH. Raises CheckError when the check cannot run.
    """
    try:
        coder = get(name)
    except KeyError:
        raise CheckError(f"no coder named {name!r} (known: {', '.join(names())})") from None
    handler = mock_handler(coder)
    supported = CHECK_CASES
    unknown = [c for c in cases or [] if c not in supported]
    if unknown:
        raise CheckError(
            f"{name} has no check case {', '.join(unknown)} (known: {', '.join(supported)})"
        )
    search = path + os.pathsep + os.environ.get("PATH", "") if path else None
    if which(coder.binary, path=search) is None:
        raise CheckError(missing_cli(coder.binary, name))
    return [
        run_case(coder, handler, case, timeout, path, runner=runner) for case in cases or supported
    ]


def mock_handler(coder: Coder) -> type[MockHandler]:
    """The mock server handler class a coder names; CheckError when it names none."""
    named = MOCKS.get(coder.name) or str(getattr(coder, "mock_handler", "") or "")
    if not named:
        raise CheckError(f"no built-in mock for {coder.name}: it cannot be checked")
    module, _, attr = named.partition(":")
    handler: type[MockHandler] = getattr(import_module(module), attr)
    return handler


def case_script(case: str) -> Script:
    """The mock's script for a case: distinct token numbers, a fixed reset an hour ahead."""
    return Script(
        mode=case,
        input_tokens=1000,
        output_tokens=40,
        cache_read_tokens=300,
        cache_write_tokens=200,
        resets_at=int(time.time()) + 3600,
    )


def case_env(coder: Coder, case: str, url: str) -> dict[str, str]:
    """The account variables that point the coder's CLI at the mock, with a dummy key."""
    if not coder.base_url_env or not coder.key_env:
        raise CheckError(f"{coder.name} names a mock but not its base_url_env and key_env")
    key_env = coder.key_env
    if case == "usage_limit" and coder.usage_limit_key_env:
        key_env = coder.usage_limit_key_env
    return {coder.base_url_env: url, key_env: DUMMY_KEY}


def run_case(
    coder: Coder,
    handler: type[MockHandler],
    case: str,
    timeout: float,
    path: str | None = None,
    *,
    runner: Runner,
) -> CaseResult:
    started = time.monotonic()
    with (
        MockServer(handler, case_script(case)) as mock,
        scratch_dir(f"fleet-check-{coder.name}-{case}-") as scratch,
    ):
        spec = scratch.spec(f"check-{case}", case_env(coder, case, mock.url))
        attempt = run_attempt(coder, spec, scratch, timeout, path, runner=runner)
        problems = judge(case, attempt, mock, scratch)
        detail = "; ".join(problems) if problems else summary(attempt)
        if problems and attempt.stderr.strip():
            detail += f" (stderr: {attempt.stderr.strip()[-300:]})"
    return CaseResult(case, not problems, detail, time.monotonic() - started)


def judge(case: str, attempt: Attempt, mock: MockServer, scratch: Scratch) -> list[str]:
    """What is wrong with an attempt for its case ([] when it passed)."""
    if attempt.timed_out:
        return [f"timed out after {attempt.seconds:.0f} s"]
    verdict, problems = attempt.verdict, []
    if verdict.outcome != EXPECTED[case]:
        reason = verdict.reason or "no reason given"
        problems.append(f"outcome {verdict.outcome}, expected {EXPECTED[case]} ({reason})")
    if case == "ok":
        problems += judge_ok(attempt.parser, mock, scratch)
    elif case == "usage_limit" and not _near(verdict.resets_at, mock.script.resets_at):
        problems.append(f"resets_at {verdict.resets_at}, the mock said {mock.script.resets_at}")
    return problems


def _near(reported: float | None, actual: int) -> bool:
    """A reset time the CLI did not report is no error; one it did must be the mock's."""
    return reported is None or abs(reported - actual) <= RESET_SLACK


def judge_ok(parser: Parser, mock: MockServer, scratch: Scratch) -> list[str]:
    problems = []
    hello = scratch.workdir / HELLO_NAME
    if not hello.is_file() or hello.read_text() != HELLO_TEXT:
        problems.append(f"{HELLO_NAME} was not written in the working directory")
    if _result_status(scratch.result_file) != "done":
        problems.append("the result file was not written with status done")
    want = mock.expected_usage()
    got = {name: getattr(parser.usage, name) for name in want}
    if got != want:
        problems.append(f"usage {got}, the mock reported {want}")
    plan = first_plan_text(PLAN_TEXT, seen_tool=False)
    if parser.plan != plan:
        problems.append(f"plan {parser.plan!r}, expected {plan!r}")
    return problems


def _result_status(path: Path) -> str:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return ""
    return str(data.get("status", "")) if isinstance(data, dict) else ""


def summary(attempt: Attempt) -> str:
    verdict, usage = attempt.verdict, attempt.parser.usage
    if verdict.outcome != Outcome.SUCCESS:
        resets = f", resets at {verdict.resets_at:.0f}" if verdict.resets_at else ""
        return f"{verdict.outcome}{resets}: {verdict.reason}"
    return f"success; wrote hello.txt and the result; {_usage_text(usage)}"


def _usage_text(usage: Usage) -> str:
    cost = "" if usage.cost_usd is None else f", ${usage.cost_usd:.5f}"
    return (
        f"tokens in {usage.input_tokens}, out {usage.output_tokens}, "
        f"cache read {usage.cache_read_tokens}, cache write {usage.cache_write_tokens}{cost}"
    )
