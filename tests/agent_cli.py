"""Running an agent CLI through its coder as the supervisor would, for the coder tests: the real
CLIs (found with `clis.cli_bin`) against a mock model server, or a stand-in on a test's PATH."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from coders.base import Coder, Event, Parser, RunSpec, Verdict

KILL_GRACE = 5.0


@dataclass
class Workspace:
    """One attempt's directories: the working directory, the result file outside it, the account."""

    root: Path

    def __post_init__(self) -> None:
        for directory in (self.workdir, self.result_file.parent):
            directory.mkdir(parents=True, exist_ok=True)

    @property
    def workdir(self) -> Path:
        return self.root / "work"

    @property
    def result_file(self) -> Path:
        return self.root / "live" / "result.json"

    @property
    def config_dir(self) -> Path:
        return self.root / "account"

    def spec(self, account_env: dict[str, str], **fields: Any) -> RunSpec:
        prompt = (
            "Write hello.txt in your working directory, then write your result.\n"
            f"Working directory: {self.workdir}\n"
            f"Write your result as JSON to: {self.result_file}\n"
        )
        return RunSpec(
            task_id="fl-test",
            attempt=1,
            prompt=prompt,
            workdir=self.workdir,
            result_file=self.result_file,
            config_dir=self.config_dir,
            account_env=account_env,
            **fields,
        )


@dataclass
class Run:
    exit_code: int
    lines: list[str]
    stderr: str
    verdict: Verdict
    parser: Parser
    seconds: float
    events: list[Event] = field(default_factory=list)


def run_coder(
    coder: Coder,
    spec: RunSpec,
    parser: Parser | None = None,
    *,
    bin_dir: Path | str,
    timeout: float = 60.0,
    argv_tail: list[str] | None = None,
) -> Run:
    """Run the coder's command for `spec` as the supervisor would, and parse its output.

    `argv_tail` is inserted before the command's final `--` (extra flags for a test).
    """
    command = coder.command(spec)
    for path, text in command.files.items():
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    for name in command.unset_env:
        env.pop(name, None)
    env.update(command.env)
    argv = list(command.argv)
    if argv_tail:
        cut = len(argv) - 1 - argv[::-1].index("--") if "--" in argv else len(argv)
        argv[cut:cut] = argv_tail
    started = time.monotonic()
    exit_code, out, err = _spawn(argv, env, spec.workdir, timeout)
    parser = parser or coder.parser()
    lines = out.splitlines()
    events = [event for line in lines for event in parser.feed(line)]
    verdict = parser.finish(exit_code)
    return Run(exit_code, lines, err, verdict, parser, time.monotonic() - started, events)


def _spawn(argv: list[str], env: dict[str, str], cwd: Path, timeout: float) -> tuple[int, str, str]:
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, err = proc.communicate(timeout=KILL_GRACE)
        pytest.fail(f"{argv[0]} ran past {timeout} s\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}")
    _kill_group(proc.pid)  # whatever the CLI left running in its session
    return proc.returncode, out, err


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
