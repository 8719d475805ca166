"""A trial run of a coder's CLI: its own scratch tree, its own session, a wall-clock timeout.

`run_attempt` runs the coder's `command()` for a spec the way the supervisor does, through the
same process seam (a `Runner`: the supervisor's `Processes`, given by `fleet coders check` and the
tests: the agent's wrapper, its run token, the sweep of what it leaves behind), with HOME and
TMPDIR inside the scratch tree so that nothing the CLI writes outlives it, then feeds the output to
the coder's parser. This package never imports the supervisor: the runner is passed in.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from coders.base import Coder, Event, Parser, RunSpec, Verdict, which


class Runner(Protocol):
    """Run `argv` in `cwd` with exactly `env` to its end, or stop it (its whole tree) after
    `timeout` seconds; its stdout and stderr go to `logs`/stdout.log and stderr.log. Returns
    (exit code, whether it timed out)."""

    def __call__(
        self, argv: list[str], env: dict[str, str], cwd: Path, timeout: float, logs: Path
    ) -> tuple[int, bool]: ...


@dataclass
class Scratch:
    """One trial's private directories, all under `root`."""

    root: Path

    @classmethod
    def create(cls, root: Path) -> Scratch:
        """The scratch tree under `root`, its directories made."""
        scratch = cls(root)
        for directory in (
            scratch.workdir,
            scratch.result_file.parent,
            scratch.home,
            scratch.tmp,
            scratch.logs,
        ):
            directory.mkdir(parents=True, exist_ok=True)
        return scratch

    @property
    def workdir(self) -> Path:
        return self.root / "work"

    @property
    def result_file(self) -> Path:
        return self.root / "out" / "result.json"

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def logs(self) -> Path:
        return self.root / "logs"  # the CLI's stdout and stderr

    def spec(self, task_id: str, account_env: dict[str, str], **fields: Any) -> RunSpec:
        prompt = (
            "Write hello.txt in your working directory, then write your result.\n"
            f"Working directory: {self.workdir}\n"
            f"Write your result as JSON to: {self.result_file}\n"
        )
        return RunSpec(
            task_id=task_id,
            attempt=1,
            prompt=prompt,
            workdir=self.workdir,
            result_file=self.result_file,
            config_dir=self.config_dir,
            account_env=account_env,
            **fields,
        )


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Scratch]:
    """A fresh scratch tree, removed afterwards with whatever the CLI left in it."""
    scratch = Scratch.create(Path(tempfile.mkdtemp(prefix=prefix)))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch.root, ignore_errors=True)


@dataclass
class Attempt:
    """One run of a CLI and what its parser made of it."""

    exit_code: int
    lines: list[str]
    stderr: str
    seconds: float
    timed_out: bool
    verdict: Verdict
    parser: Parser
    events: list[Event]


def run_attempt(
    coder: Coder,
    spec: RunSpec,
    scratch: Scratch,
    timeout: float,
    path: str | None = None,
    *,
    runner: Runner,
) -> Attempt:
    """Run the coder's command for `spec` to the end (or the timeout) and parse its output."""
    command = coder.command(spec)
    for file, text in command.files.items():
        if not file.exists():
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(text)
    env = {**os.environ, "HOME": str(scratch.home), "TMPDIR": str(scratch.tmp)}
    if path:
        env["PATH"] = path + os.pathsep + env.get("PATH", "")
    for name in command.unset_env:
        env.pop(name, None)
    env.update(command.env)
    exe = which(command.argv[0], path=env.get("PATH"))
    if exe is None:
        raise FileNotFoundError(missing_cli(command.argv[0], coder.name))
    for log in ("stdout.log", "stderr.log"):  # a resumed session runs in the same scratch tree
        (scratch.logs / log).unlink(missing_ok=True)
    started = time.monotonic()
    exit_code, timed_out = runner(
        [str(exe), *command.argv[1:]], env, spec.workdir, timeout, scratch.logs
    )
    out = _text(scratch.logs / "stdout.log")
    err = _text(scratch.logs / "stderr.log")
    parser = coder.parser(spec)
    lines = out.splitlines()
    events = [event for line in lines for event in parser.feed(line)]
    verdict = parser.finish(exit_code)
    seconds = time.monotonic() - started
    return Attempt(exit_code, lines, err, seconds, timed_out, verdict, parser, events)


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def missing_cli(binary: str, name: str) -> str:
    return (
        f"{binary} is not on PATH: install it (scripts/install-agent-clis {name}) "
        "or put its directory on PATH"
    )
