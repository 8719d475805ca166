"""What the coder and mock tests share: where the real agent CLIs are, running one through its
coder against a mock model server (`coders.check.trial`, as `fleet coders check` does), the captured
output of real runs (`tests/data/captures/`), and speaking HTTP to a mock.

`scripts/install-agent-clis` links the CLIs into `$FLEET_CLI_CACHE/bin` (default
`${XDG_CACHE_HOME:-~/.cache}/fleet/agent-clis/bin`). A missing CLI skips the test with the
command that installs it, except in CI (`CI` set), where it fails: there every CLI must be there.
The user's home comes from the password database, since the tests' HOME is a scratch directory.
"""

from __future__ import annotations

import json
import os
import pwd
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from coders.base import Coder, Event, Parser, RunSpec, Verdict
from coders.check.mock.base import Script
from coders.check.trial import Attempt, Scratch, run_attempt
from supervisor.cli.coders import seam_runner

CAPTURES = Path(__file__).parents[1] / "data" / "captures"


def cli_cache() -> Path:
    cache = os.environ.get("FLEET_CLI_CACHE")
    if cache:
        return Path(cache)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path(pwd.getpwuid(os.getuid()).pw_dir, ".cache"))
    return Path(xdg) / "fleet" / "agent-clis"


def cli_bin(name: str) -> str:
    """The bin directory holding CLI `name`; skips the test when it is missing (fails in CI)."""
    bin_dir = cli_cache() / "bin"
    if not os.access(bin_dir / name, os.X_OK):
        why = f"the {name} CLI is not installed in {bin_dir}: run scripts/install-agent-clis {name}"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return str(bin_dir)


def run(coder: Coder, spec: RunSpec, scratch: Scratch, bin_dir: str, timeout: float) -> Attempt:
    """Run the coder for `spec` with `bin_dir` first on PATH; fails the test on a timeout."""
    attempt = run_attempt(coder, spec, scratch, timeout, path=bin_dir, runner=seam_runner())
    if attempt.timed_out:
        out = "\n".join(attempt.lines)[-2000:]
        pytest.fail(f"{coder.name} ran past {timeout} s\nstdout: {out}\nstderr: {attempt.stderr}")
    return attempt


def run_cli(
    coder: Coder, scratch: Scratch, account_env: dict[str, str], timeout: float, **fields: Any
) -> Attempt:
    """Run the coder's real CLI for the scratch tree's task, with these account variables."""
    spec = scratch.spec("fl-test", account_env, **fields)
    return run(coder, spec, scratch, cli_bin(coder.binary), timeout)


def ok_script(**extra: object) -> Script:
    """The successful script with a distinct number for every kind of token."""
    return Script(
        input_tokens=1000,
        output_tokens=40,
        cache_read_tokens=300,
        cache_write_tokens=200,
        extra=dict(extra),
    )


def tokens(parser: Parser, names: Iterable[str]) -> dict[str, int]:
    """The parser's usage in the token fields `names` (e.g. the keys of a mock's usage)."""
    return {name: getattr(parser.usage, name) for name in names}


def capture(case: str, name: str = "stdout.jsonl") -> list[str]:
    """The lines a real CLI printed in a captured run."""
    return (CAPTURES / case / name).read_text().splitlines()


def exit_code_of(case: str) -> int:
    return int(json.loads((CAPTURES / case / "meta.json").read_text())["rc"])


def feed(parser: Parser, lines: list[str]) -> list[Event]:
    return [event for line in lines for event in parser.feed(line)]


def replay(parser: Parser, lines: list[str], exit_code: int) -> tuple[list[Event], Verdict]:
    """The events of `lines` and the verdict at `exit_code`."""
    return feed(parser, lines), parser.finish(exit_code)


def post_json(url: str, body: Any) -> tuple[int, dict[str, str], str]:
    """POST `body` as JSON; the status, headers and text of the answer, errors included."""
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers.items()), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read().decode()


def sse(text: str) -> list[tuple[str | None, Any]]:
    """Server-Sent Events as (event name or None, decoded data) pairs."""
    events: list[tuple[str | None, Any]] = []
    for chunk in text.strip().split("\n\n"):
        name, data = None, None
        for line in chunk.splitlines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
        events.append((name, data))
    return events
