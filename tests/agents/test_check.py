"""`coders.check.harness`: the real claude CLI against its mock, and the check's own failures."""

from __future__ import annotations

import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from coders.base import Outcome, Verdict
from coders.check.harness import CheckError, check, judge, run_case
from coders.check.mock.anthropic import AnthropicHandler
from coders.check.mock.base import MockServer, Script
from coders.check.trial import Attempt, run_attempt, scratch_dir
from coders.claude import ClaudeCoder, ClaudeParser
from coders.shell import ShellCoder
from supervisor.cli.coders import seam_runner
from tests.support.agent_cli import cli_bin
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def bin_dir() -> str:
    return cli_bin("claude")


def leftovers() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("fleet-check-claude-*"))


@pytest.mark.cli
def test_every_claude_case_passes(bin_dir: str) -> None:
    before = leftovers()
    results = check("claude", path=bin_dir, runner=seam_runner())
    assert [r.case for r in results] == ["ok", "rate_limit", "usage_limit", "auth", "overloaded"]
    assert all(r.passed for r in results), [r for r in results if not r.passed]
    assert results[0].detail.startswith("success; wrote hello.txt and the result; tokens in 3000")
    assert results[2].detail.startswith("rate_limited, resets at ")
    assert all(0 < r.seconds < 30 for r in results)
    assert leftovers() <= before  # each case's scratch tree is gone


@pytest.mark.cli
def test_a_chosen_case_only(bin_dir: str) -> None:
    results = check("claude", ["auth"], path=bin_dir, runner=seam_runner())
    assert [(r.case, r.passed) for r in results] == [("auth", True)]
    assert results[0].detail.startswith("auth_error: ")


class InflatedHandler(AnthropicHandler):
    """Claims twice the tokens it reports, so the usage comparison must fail."""

    @staticmethod
    def usage_per_answer(script: Script) -> dict[str, int]:
        return {"input_tokens": 2 * script.input_tokens, "output_tokens": 2 * script.output_tokens}


class AlwaysAnswers(AnthropicHandler):
    """Ignores the failure mode: a limit case then ends in success, which the check must catch."""

    def refuse(self, mode: str) -> None:
        body: Any = self.mock.requests[-1].body
        self.answer(body)


@pytest.mark.cli
def test_a_usage_mismatch_fails_the_ok_case(bin_dir: str) -> None:
    result = run_case(
        ClaudeCoder(), InflatedHandler, "ok", timeout=30, path=bin_dir, runner=seam_runner()
    )
    assert not result.passed
    assert "usage {'input_tokens': 3000" in result.detail
    assert "the mock reported {'input_tokens': 6000" in result.detail


@pytest.mark.cli
def test_a_wrong_outcome_fails_a_limit_case(bin_dir: str) -> None:
    result = run_case(
        ClaudeCoder(), AlwaysAnswers, "rate_limit", timeout=30, path=bin_dir, runner=seam_runner()
    )
    assert not result.passed
    assert result.detail.startswith("outcome success, expected rate_limited")


@pytest.mark.parametrize(("offset", "problems"), [(0, 0), (59, 0), (-59, 0), (61, 1), (3600, 1)])
def test_a_reset_time_must_be_the_mocks_to_the_minute(offset: int, problems: int) -> None:
    verdict = Verdict(Outcome.RATE_LIMITED, "limit", resets_at=1_900_000_000 + offset)
    attempt = Attempt(1, [], "", 0.1, False, verdict, ClaudeParser(), [])
    with (
        MockServer(AnthropicHandler, Script(resets_at=1_900_000_000)) as mock,
        scratch_dir("fleet-test-judge-") as scratch,
    ):
        assert len(judge("usage_limit", attempt, mock, scratch)) == problems


@pytest.mark.parametrize(
    ("name", "cases", "message"),
    [
        ("shell", None, "no built-in mock for shell"),
        ("no-such-coder", None, "no coder named 'no-such-coder'"),
        ("claude", ["bogus"], "claude has no check case bogus"),
    ],
)
def test_what_cannot_be_checked(name: str, cases: list[str] | None, message: str) -> None:
    with pytest.raises(CheckError, match=message):
        check(name, cases, runner=seam_runner())


def test_a_missing_cli_names_the_installer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CheckError, match=r"scripts/install-agent-clis claude"):
        check("claude", runner=seam_runner())


@pytest.mark.parametrize("start", ["", "setsid "])
def test_a_run_past_its_timeout_is_stopped_with_all_it_started(start: str) -> None:
    """Through the supervisor's process seam: a child that left the session (setsid) is found
    by the run token and stopped too."""
    with scratch_dir("fleet-test-timeout-") as scratch:
        pid_file = scratch.root / "child.pid"
        command = f"{start}sleep 60 & echo $! > {pid_file}; sleep 60"
        spec = scratch.spec("fl-timeout", {}, command=command)
        started = time.monotonic()
        attempt = run_attempt(ShellCoder(), spec, scratch, timeout=0.5, runner=seam_runner())
        assert time.monotonic() - started < 10
        child = int(pid_file.read_text())
    assert attempt.timed_out
    assert attempt.exit_code in (-signal.SIGTERM, -signal.SIGKILL)
    wait_for(lambda: not _alive(child), what="the background child to die")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
