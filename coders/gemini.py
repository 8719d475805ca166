"""The `gemini` coder: Google's Gemini CLI in headless mode, reading its stream-json events.

Command: `gemini --output-format stream-json --approval-mode yolo --skip-trust -m <model>
[--include-directories <result dir>] [--resume <session>] --prompt=<prompt>`. `yolo` approves every
tool call, so the agent edits its working directory and runs commands with nobody to ask; the
result file's directory is added to the workspace when it lies outside the working directory
(Gemini's file tools refuse paths outside it). Pinning the model skips the CLI's per-turn router
call. Gemini CLI has no option for extra system instructions that keeps its own, so a role's
handbook is put before the prompt.

`GEMINI_CLI_HOME` (where `.gemini/` lives) is the account's config dir; `HOME` stays the user's, so
the agent's own commands see the usual home. When that dir has no `.gemini/settings.json`, fleet
writes one: no telemetry, usage statistics or update checks, `general.maxAttempts` capped (the CLI
retries a per-minute quota for about five minutes by default), and, for an account that names
`GOOGLE_GEMINI_BASE_URL`, the `gemini-api-key` auth type, without which headless mode exits 41.
`TMPDIR` is a `tmp/` beside the result file (when that lies outside the working directory), so the
CLI's error reports, which quote the conversation, stay with the attempt's files, which fleet
removes, instead of piling up in the shared /tmp.

Usage is the `result` line's `stats`: `input_tokens` includes the cached tokens, `output_tokens`
excludes the thinking tokens (`total_tokens` holds them). Gemini CLI reports no cost.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from coders.base import (
    BaseCoder,
    Command,
    Event,
    EventKind,
    Outcome,
    RateLimit,
    RunSpec,
    Usage,
    Verdict,
    exit_reason,
)
from coders.parsing.jsonlines import JsonLinesParser, as_dict, as_dicts, count

APPROVAL_MODES = ("yolo", "auto_edit", "default", "plan")
TMP_README = "Temporary files of one attempt's agent (its TMPDIR), removed with the attempt.\n"
MAX_ATTEMPTS = 3  # of each model request: two retries, about 15 s, before a limit is reported
CREDENTIAL_ENV = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_APPLICATION_CREDENTIALS")
EXIT_AUTH_METHOD = 41  # "Invalid auth method selected."
EXIT_TURN_LIMIT = 53
EXIT_QUOTA = 429 & 0xFF  # the CLI exits with the HTTP status, truncated to a byte
EXIT_AUTH = (400 & 0xFF, 401 & 0xFF, 403 & 0xFF)
EXIT_OVERLOADED = (500 & 0xFF, 503 & 0xFF, 529 & 0xFF)
CAPACITY = re.compile(r"capacity|overloaded|\bUNAVAILABLE\b|status: 5\d\d", re.I)
QUOTA = re.compile(r"quota|exhausted|RESOURCE_EXHAUSTED|rate limit", re.I)
AUTH = re.compile(r"api key|API_KEY_INVALID|UNAUTHENTICATED|PERMISSION_DENIED|credentials", re.I)
RETRY_AFTER = re.compile(r"(?:retry after|retry in) ([\d.]+)(ms|s)\b", re.I)
AUTH_METHOD_FIX = (
    "gemini refused its auth method (exit 41): with GOOGLE_GEMINI_BASE_URL it needs "
    '{"security": {"auth": {"selectedType": "gemini-api-key"}}} in the account\'s '
    ".gemini/settings.json (fleet writes it only when that file is absent)"
)


class GeminiParser(JsonLinesParser):
    def __init__(self) -> None:
        super().__init__()
        self._pending = ""  # assistant text not yet ended by a newline
        self._message = ""  # the assistant message being streamed
        self._answer: list[str] = []  # assistant text since the last tool call
        self._result: dict[str, Any] | None = None
        self._error = ""  # the last error the CLI reported

    def line(self, data: dict[str, Any]) -> list[Event]:
        kind = str(data.get("type") or "")
        if kind == "message" and data.get("role") == "assistant":
            return self._delta(str(data.get("content") or ""))
        events = self._flush()
        if kind == "init":
            self.session_id = str(data.get("session_id") or "")
            self.usage.model = str(data.get("model") or "")
            events.append(
                Event(EventKind.SESSION, session_id=self.session_id, model=self.usage.model)
            )
        elif kind == "tool_use":
            events.append(self._tool_use(data))
        elif kind == "tool_result":
            events.append(self._tool_result(data))
        elif kind == "error":
            self._error = str(data.get("message") or "")
            events.append(Event(EventKind.ERROR, text=self._error, is_error=True))
        elif kind == "result":
            events += self._result_line(data)
        else:
            events.append(Event(EventKind.OTHER, text=str(data.get("content") or kind)))
        return events

    # -- lines ---------------------------------------------------------------------------------

    def _delta(self, content: str) -> list[Event]:
        """Assistant text arrives in pieces; it is shown a whole line at a time."""
        self._answer.append(content)
        self._message += content
        self._pending += content
        done, newline, self._pending = self._pending.rpartition("\n")
        return [Event(EventKind.TEXT, text=done)] if newline and done.strip() else []

    def _flush(self) -> list[Event]:
        """Ends the current assistant message: its rest is shown, its whole counts for the plan."""
        text, self._pending = self._pending, ""
        if self._message:
            self.tracker.text(self._message)
            self._message = ""
        return [Event(EventKind.TEXT, text=text)] if text.strip() else []

    def _tool_use(self, data: dict[str, Any]) -> Event:
        self._answer = []
        name = str(data.get("tool_name") or "")
        params = as_dict(data.get("parameters"))
        entries = as_dicts(params.get("todos"))
        todos = [{"content": str(t.get("description") or "")} for t in entries]
        self.tracker.tool({"todos": todos}, is_todo=name == "write_todos")
        return Event(EventKind.TOOL_USE, tool=name, tool_input=params)

    @staticmethod
    def _tool_result(data: dict[str, Any]) -> Event:
        error = data.get("error")
        failed = data.get("status") != "success"
        if isinstance(error, dict) and error.get("message"):
            return Event(EventKind.TOOL_RESULT, text=str(error["message"]), is_error=True)
        text = str(data.get("output") or data.get("status") or "")
        return Event(EventKind.TOOL_RESULT, text=text, is_error=failed)

    def _result_line(self, data: dict[str, Any]) -> list[Event]:
        self._result = data
        stats = data.get("stats")
        if isinstance(stats, dict):
            self.usage = _usage(stats, self.usage.model)
        events = [self.usage_event()]
        error = data.get("error")
        if data.get("status") == "success":
            return [*events, Event(EventKind.RESULT, text="".join(self._answer).strip())]
        self._error = str(error.get("message") or "") if isinstance(error, dict) else self._error
        events.append(Event(EventKind.RESULT, text=self._error, is_error=True))
        limit = _limit(self._error, None, time.time())
        if limit is not None:
            events.append(Event(EventKind.RATE_LIMIT, text=self._error, limit=limit))
        return events

    # -- the verdict -------------------------------------------------------------------------

    def finish(self, exit_code: int) -> Verdict:
        result = self._result or {}
        if exit_code == 0 and result.get("status") == "success":
            return Verdict(Outcome.SUCCESS)
        return verdict_for(self._error, exit_code, time.time())


def verdict_for(message: str, exit_code: int, now: float) -> Verdict:
    """The verdict of a run that did not end with a successful result and exit 0."""
    if exit_code == EXIT_AUTH_METHOD:
        return Verdict(Outcome.AUTH_ERROR, AUTH_METHOD_FIX)
    if exit_code == EXIT_TURN_LIMIT:
        return Verdict(Outcome.MAX_TURNS, message or "gemini reached its session turn limit")
    reason = message or exit_reason("gemini", exit_code) + (
        " without a result" if exit_code == 0 else ""
    )
    if exit_code in EXIT_OVERLOADED or CAPACITY.search(message):
        return Verdict(Outcome.OVERLOADED, reason)
    limit = _limit(message, exit_code, now)
    if limit is not None:
        return Verdict(Outcome.RATE_LIMITED, reason, resets_at=limit.resets_at)
    if exit_code in EXIT_AUTH or AUTH.search(message):
        return Verdict(Outcome.AUTH_ERROR, reason)
    if exit_code < 0:
        return Verdict(Outcome.FAILURE, exit_reason("gemini", exit_code))
    return Verdict(Outcome.FAILURE, reason)


def _limit(message: str, exit_code: int | None, now: float) -> RateLimit | None:
    """The quota a message (or a 429 exit) reports; a capacity shortage is not the account's."""
    if CAPACITY.search(message) or not (exit_code == EXIT_QUOTA or QUOTA.search(message)):
        return None
    after = RETRY_AFTER.search(message)
    resets_at = None
    if after is not None:
        seconds = float(after.group(1)) / (1000 if after.group(2).lower() == "ms" else 1)
        resets_at = now + seconds
    kind = "usage_limit" if "daily" in message.lower() else "rate_limit"
    return RateLimit(status="rejected", kind=kind, resets_at=resets_at)


def _usage(stats: dict[str, Any], model: str) -> Usage:
    prompt, cached = count(stats.get("input_tokens")), count(stats.get("cached"))
    output = count(stats.get("output_tokens"))
    thoughts = max(0, count(stats.get("total_tokens")) - prompt - output)
    by_model = stats.get("models")
    models = list(by_model) if isinstance(by_model, dict) else []
    return Usage(
        input_tokens=max(0, prompt - cached),
        output_tokens=output + thoughts,
        cache_read_tokens=cached,
        reasoning_tokens=thoughts,
        model=models[0] if len(models) == 1 else model,
    )


class GeminiCoder(BaseCoder):
    name = "gemini"
    binary = "gemini"
    verified = True
    needs_result = True
    default_model = "gemini-2.5-pro"
    base_url_env = "GOOGLE_GEMINI_BASE_URL"
    key_env = "GEMINI_API_KEY"
    credential_env = CREDENTIAL_ENV

    def command(self, spec: RunSpec) -> Command:
        env = {"GEMINI_TELEMETRY_ENABLED": "false", **spec.account_env}
        files: dict[Path, str] = {}
        result_dir = spec.outside_result_dir
        if result_dir is not None:
            env["TMPDIR"] = str(result_dir / "tmp")
            files[result_dir / "tmp" / "README"] = TMP_README
        if spec.config_dir is not None:
            env["GEMINI_CLI_HOME"] = str(spec.config_dir)
            files[spec.config_dir / ".gemini" / "settings.json"] = settings_json(spec)
        unset = self.unset_credentials(spec)
        return Command(argv=self._argv(spec), env=env, unset_env=unset, files=files)

    def _argv(self, spec: RunSpec) -> list[str]:
        mode = spec.permission_mode or APPROVAL_MODES[0]
        if mode not in APPROVAL_MODES:
            known = ", ".join(APPROVAL_MODES)
            raise ValueError(f"unknown gemini approval mode {mode!r} (known: {known})")
        argv = [self.binary, "--output-format", "stream-json", "--approval-mode", mode]
        argv += ["--skip-trust", "-m", spec.model or self.default_model]
        if spec.outside_result_dir is not None:
            argv += ["--include-directories", str(spec.outside_result_dir)]
        if spec.resume_session:
            argv += ["--resume", spec.resume_session]
        return [*argv, f"--prompt={spec.handbook_and_prompt()}"]

    def parser(self, spec: RunSpec | None = None) -> GeminiParser:
        return GeminiParser()


def settings_json(spec: RunSpec) -> str:
    """The `.gemini/settings.json` fleet gives an account dir that has none."""
    settings: dict[str, Any] = {
        "general": {
            "enableAutoUpdate": False,
            "enableAutoUpdateNotification": False,
            "maxAttempts": int(spec.options.get("max_attempts", MAX_ATTEMPTS)),
        },
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
    }
    if "GOOGLE_GEMINI_BASE_URL" in spec.account_env:
        settings["security"] = {"auth": {"selectedType": "gemini-api-key"}}
    return json.dumps(settings, indent=2) + "\n"
