"""The Coder protocol and the normalized events every adapter produces.

A coder turns a `RunSpec` (what to run, where, for which account) into a `Command`, and parses the
agent's output, one line at a time, into `Event`s. At the end its parser classifies the run into an
`Outcome`; what the CLI wrote elsewhere (a session file) comes from `side_events`. Adapters import
only this package and the standard library; they never touch the store. `BaseCoder` holds the
defaults of the protocol's optional members; a third-party coder may subclass it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


class EventKind(StrEnum):
    SESSION = "session"  # the agent's session started: `session_id`, `model`
    TEXT = "text"  # assistant text: `text`
    TOOL_USE = "tool_use"  # the agent calls a tool: `tool`, `tool_input`
    TOOL_RESULT = "tool_result"  # a tool answered: `text`, `is_error`
    USAGE = "usage"  # tokens and cost so far: `usage` (the parser's running total)
    RATE_LIMIT = "rate_limit"  # limit info, a warning or a rejection: `limit`
    ERROR = "error"  # an error the agent reported: `text`
    RESULT = "result"  # the agent's final answer: `text`, `is_error`
    OTHER = "other"  # a line the adapter does not model (kept in the raw log)
    RETRY = "retry"  # the CLI retries a request (reconnecting): `text`; not progress


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    STALLED = "stalled"  # no output for stall_seconds
    TIMED_OUT = "timed_out"  # the wall-clock limit
    RATE_LIMITED = "rate_limited"  # the account's rate or usage limit: not a failed try
    OVERLOADED = "overloaded"  # the model server is overloaded: not the account's fault
    AUTH_ERROR = "auth_error"  # the account's credentials were refused
    MAX_TURNS = "max_turns"  # the CLI's own turn limit
    SETUP_ERROR = "setup_error"  # cwd gone, binary missing: blocked at once, no retry
    KILLED = "killed"  # stopped by `fleet kill` or a supervisor stop
    OVER_BUDGET = "over_budget"  # a budget's hard limit stopped it


@dataclass
class Usage:
    """Tokens by kind and cost. `input_tokens` excludes cache reads and writes."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None  # None: the CLI reported none; priced from config later
    model: str = ""

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": self.cost_usd,
            "model": self.model,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        cost = data.get("cost_usd")
        return cls(
            input_tokens=int(data.get("input_tokens") or 0),
            output_tokens=int(data.get("output_tokens") or 0),
            cache_read_tokens=int(data.get("cache_read_tokens") or 0),
            cache_write_tokens=int(data.get("cache_write_tokens") or 0),
            reasoning_tokens=int(data.get("reasoning_tokens") or 0),
            cost_usd=None if cost is None else float(cost),
            model=str(data.get("model") or ""),
        )


@dataclass
class RateLimit:
    """What an agent said about its account's limits."""

    status: str  # "allowed", "allowed_warning", "rejected"
    kind: str = ""  # "rate_limit", "usage_limit", ...
    window: str = ""  # "five_hour", "seven_day", "primary", ...
    utilization: float | None = None  # 0.0-1.0
    resets_at: float | None = None  # epoch seconds


@dataclass
class Event:
    kind: EventKind
    text: str = ""
    session_id: str = ""
    model: str = ""
    tool: str = ""
    tool_input: dict[str, Any] | None = None
    is_error: bool = False
    usage: Usage | None = None
    limit: RateLimit | None = None


@dataclass
class Verdict:
    """How an attempt ended, as the coder judges it from its output and exit code."""

    outcome: Outcome
    reason: str = ""
    resets_at: float | None = None  # for RATE_LIMITED: when the account is usable again


@dataclass
class RunSpec:
    """Everything a coder needs to build one attempt's command."""

    task_id: str
    attempt: int
    prompt: str  # the knowledge: the exact text the agent receives
    workdir: Path
    result_file: Path
    model: str = ""  # "" = the coder's default
    system_prompt: str = ""  # the role's handbook, appended to the CLI's system prompt
    command: str = ""  # the shell coder's command
    resume_session: str = ""  # continue this session when the CLI supports it
    permission_mode: str = ""  # "" = the coder's default (edit files and run commands)
    config_dir: Path | None = None  # the account's config dir (CLAUDE_CONFIG_DIR, CODEX_HOME, ...)
    account_env: dict[str, str] = field(default_factory=dict)  # the account's variables
    options: dict[str, Any] = field(default_factory=dict)  # coder options from config

    @property
    def outside_result_dir(self) -> Path | None:
        """The result file's directory when it lies outside the working directory, else None.

        CLIs that confine the agent to its working directory must be told to allow this one too.
        """
        result_dir = self.result_file.parent
        return None if result_dir.is_relative_to(self.workdir) else result_dir

    def handbook_and_prompt(self) -> str:
        """The role's handbook, a blank line, then the prompt: for CLIs that cannot add to their
        own system prompt."""
        if not self.system_prompt:
            return self.prompt
        return f"{self.system_prompt.rstrip()}\n\n{self.prompt}"


@dataclass
class Command:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # added to the inherited environment
    unset_env: list[str] = field(default_factory=list)  # removed from it
    files: dict[Path, str] = field(default_factory=dict)  # written before the start if absent


@runtime_checkable
class Parser(Protocol):
    """Reads one attempt's output. One parser per attempt; it keeps the running totals."""

    usage: Usage  # the attempt's usage so far, as the CLI counts it
    session_id: str  # the agent's session id, once known ("" before)
    plan: str  # the plan the agent stated ("" until known)

    def feed(self, line: str) -> list[Event]:
        """Parse one line of output (no trailing newline). Never raises on odd input."""
        ...

    def finish(self, exit_code: int) -> Verdict:
        """Classify the attempt once the process has exited with `exit_code`."""
        ...


@runtime_checkable
class Coder(Protocol):
    name: str  # registry name, as in `fleet bd create --coder NAME`
    binary: str  # the executable looked up on PATH ("" when none is needed)
    verified: bool  # tested against the real CLI in CI
    needs_result: bool  # success also requires the result file the agent writes
    default_model: str  # what runs when neither task, role nor config names a model
    key_env: str  # the variable an account's key is passed in ("" when the CLI takes none)
    base_url_env: str  # the account variable that points the CLI at a gateway ("" = none)
    usage_limit_key_env: str  # the key variable that shows usage limits ("" = key_env)

    def command(self, spec: RunSpec) -> Command:
        """The argv and environment of one attempt."""
        ...

    def parser(self, spec: RunSpec | None = None) -> Parser:
        """A fresh parser for one attempt's output; given the attempt's spec where it matters."""
        ...

    def side_events(self, spec: RunSpec, session_id: str) -> list[Event]:
        """Events the CLI wrote elsewhere than its output (e.g. a session file), read after or
        during the attempt of `spec` whose agent session is `session_id`."""
        ...


class BaseCoder:
    """The defaults of `Coder`'s optional members, and helpers for subclasses.

    A coder must still set `name`, `binary`, `verified`, `needs_result`, `default_model` and
    define `command` and `parser`.
    """

    key_env = ""
    base_url_env = ""
    usage_limit_key_env = ""
    credential_env: tuple[str, ...] = ()  # the variables that carry the CLI's credentials

    def side_events(self, spec: RunSpec, session_id: str) -> list[Event]:
        return []

    def unset_credentials(self, spec: RunSpec) -> list[str]:
        """The inherited credentials to remove: an account that brings one of its own must not mix
        with another's."""
        if not any(name in spec.account_env for name in self.credential_env):
            return []
        return [name for name in self.credential_env if name not in spec.account_env]


def which(binary: str, path: str | None = None) -> str | None:
    return shutil.which(binary, path=path)


def version_of(binary: str, timeout: float = 10.0) -> str | None:
    """The first line `BINARY --version` prints, or None when it cannot run."""
    exe = which(binary)
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--version"],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "NO_COLOR": "1"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if lines else None


def first_plan_text(text: str, seen_tool: bool) -> str:
    """The plan rule shared by agents: a <plan> block, else text before the first tool use."""
    start, end = text.find("<plan>"), text.find("</plan>")
    if start != -1 and end > start:
        return text[start + len("<plan>") : end].strip()
    return "" if seen_tool else text.strip()


def exit_reason(who: str, exit_code: int) -> str:
    """`who exited N`, or `who was killed by signal N` for a negative exit code."""
    if exit_code < 0:
        return f"{who} was killed by signal {-exit_code}"
    return f"{who} exited {exit_code}"
