"""The `claude` coder: Claude Code in print mode, reading its stream-json events.

Command: `claude -p --output-format stream-json --verbose --model M --permission-mode acceptEdits
--allowedTools=Bash [--add-dir=<result dir>] ... -- <prompt>`. `acceptEdits` lets the agent edit
files in its working directory and `--allowedTools=Bash` lets it run commands, with nobody to
answer a prompt; `bypassPermissions` would do both but Claude Code refuses it when run as root.
The result file's directory is added with `--add-dir` when it lies outside the working directory,
since `acceptEdits` denies writes outside the working directories.

Usage is the `result` line's `usage` (the sum over the run's API calls), never the per-block
snapshots on `assistant` lines. Cost is the sum of `model_usage_since_last_result[*].costUSD`,
which counts this process only; `total_cost_usd` is cumulative over a resumed session and is
used only when the former is missing.
"""

from __future__ import annotations

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
from coders.parsing.jsonlines import JsonLinesParser, number

DEFAULT_PERMISSION_MODE = "acceptEdits"
QUIET_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
}
MAX_RETRIES = "1"  # the CLI's own default (10) sits ~3 minutes on a limit before it says so
CREDENTIAL_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
EDIT_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
AUTH_ERRORS = frozenset(
    {"authentication_failed", "oauth_org_not_allowed", "account_on_hold", "billing_error"}
)
OVERLOAD_ERRORS = frozenset({"overloaded", "server_error"})


class ClaudeParser(JsonLinesParser):
    def __init__(self) -> None:
        super().__init__()
        self._result: dict[str, Any] | None = None
        self._api_error: dict[str, Any] = {}  # the synthetic assistant line of an API error
        self._rejection: RateLimit | None = None  # the last limit that refused a request
        self._denials: list[dict[str, Any]] = []

    def line(self, data: dict[str, Any]) -> list[Event]:
        kind = data.get("type")
        if kind == "system":
            return self._system(data)
        if kind == "assistant":
            return self._assistant(data)
        if kind == "user":
            return self._tool_results(data)
        if kind == "rate_limit_event":
            return [self._limit_event(data.get("rate_limit_info") or {}, "usage_limit")]
        if kind == "result":
            return self._result_line(data)
        return [Event(EventKind.OTHER, text=str(kind or ""))]

    # -- lines ---------------------------------------------------------------------------------

    def _system(self, data: dict[str, Any]) -> list[Event]:
        subtype = data.get("subtype")
        if subtype == "init":
            self.session_id = str(data.get("session_id") or "")
            self.usage.model = str(data.get("model") or "")
            return [Event(EventKind.SESSION, session_id=self.session_id, model=self.usage.model)]
        if subtype == "api_retry":
            text = (
                f"API retry {data.get('attempt')}/{data.get('max_retries')}: "
                f"{data.get('error')} ({data.get('error_status')})"
            )
            if data.get("error_status") == 429:
                self._rejection = RateLimit(status="rejected", kind="rate_limit")
                return [Event(EventKind.RATE_LIMIT, text=text, limit=self._rejection)]
            return [Event(EventKind.OTHER, text=text)]
        if subtype == "permission_denied":
            self._denials.append(data)
            text = str(data.get("message") or f"{data.get('tool_name')} was denied")
            return [Event(EventKind.ERROR, text=text, tool=str(data.get("tool_name") or ""))]
        return [Event(EventKind.OTHER, text=f"system/{subtype}")]

    def _assistant(self, data: dict[str, Any]) -> list[Event]:
        message = data.get("message") or {}
        if data.get("is_api_error_message") or data.get("error"):
            return self._api_error_line(data, message)
        events = []
        for block in message.get("content") or []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text":
                self.tracker.text(str(block.get("text") or ""))
                events.append(Event(EventKind.TEXT, text=str(block.get("text") or "")))
            elif block.get("type") == "tool_use":
                name, tool_input = str(block.get("name") or ""), block.get("input")
                tool_input = tool_input if isinstance(tool_input, dict) else {}
                self.tracker.tool(tool_input, is_todo=name == "TodoWrite")
                events.append(Event(EventKind.TOOL_USE, tool=name, tool_input=tool_input))
            else:
                events.append(Event(EventKind.OTHER, text=str(block.get("type") or "")))
        return events

    def _api_error_line(self, data: dict[str, Any], message: dict[str, Any]) -> list[Event]:
        self._api_error = data
        texts = [b.get("text", "") for b in message.get("content") or [] if isinstance(b, dict)]
        events = [Event(EventKind.ERROR, text="\n".join(texts), is_error=True)]
        info = (data.get("api_error_params") or {}).get("rate_limit_info")
        if isinstance(info, dict):
            events.append(self._limit_event(info, "usage_limit"))
        return events

    def _tool_results(self, data: dict[str, Any]) -> list[Event]:
        content = (data.get("message") or {}).get("content")
        events = []
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                text = _result_text(block.get("content"))
                events.append(
                    Event(EventKind.TOOL_RESULT, text=text, is_error=bool(block.get("is_error")))
                )
        return events or [Event(EventKind.OTHER, text="user")]

    def _limit_event(self, info: dict[str, Any], kind: str) -> Event:
        limit = RateLimit(
            status=str(info.get("status") or ""),
            kind=kind,
            window=str(info.get("rateLimitType") or ""),
            utilization=number(info.get("utilization")),
            resets_at=number(info.get("resetsAt")),
        )
        if limit.status == "rejected":
            self._rejection = limit
        return Event(EventKind.RATE_LIMIT, text=limit.status, limit=limit)

    def _result_line(self, data: dict[str, Any]) -> list[Event]:
        self._result = data
        self.session_id = str(data.get("session_id") or self.session_id)
        self.usage = _usage(data, self.usage.model)
        is_error = bool(data.get("is_error"))
        text = str(data.get("result") or "; ".join(map(str, data.get("errors") or [])))
        return [self.usage_event(), Event(EventKind.RESULT, text=text, is_error=is_error)]

    # -- the verdict -------------------------------------------------------------------------

    def finish(self, exit_code: int) -> Verdict:
        result = self._result
        if result is None:
            if self._rejection is not None:
                return self._rate_limited("the API refused a request with a rate limit")
            suffix = "" if exit_code < 0 else " without a result line"
            return Verdict(Outcome.FAILURE, exit_reason("claude", exit_code) + suffix)
        text = str(result.get("result") or "; ".join(map(str, result.get("errors") or [])))
        if result.get("is_error"):
            return self._error_verdict(result, text)
        denied = self._edit_denials(result)
        if denied:
            return Verdict(Outcome.FAILURE, denied)
        if exit_code != 0:
            return Verdict(Outcome.FAILURE, f"claude exited {exit_code}: {text}".rstrip(": "))
        return Verdict(Outcome.SUCCESS, text)

    def _error_verdict(self, result: dict[str, Any], text: str) -> Verdict:
        status = result.get("api_error_status") or self._api_error.get("api_error_status")
        api_error = result.get("api_error") or self._api_error.get("api_error")
        error = self._api_error.get("error")
        subtype = result.get("subtype")
        if api_error == "usage_limit_reached" or status == 429 or error == "rate_limit":
            return self._rate_limited(text)
        if status in (401, 403) or error in AUTH_ERRORS:
            return Verdict(Outcome.AUTH_ERROR, text)
        if (isinstance(status, int) and status >= 500) or error in OVERLOAD_ERRORS:
            return Verdict(Outcome.OVERLOADED, text)
        if subtype == "error_max_turns":
            return Verdict(Outcome.MAX_TURNS, text)
        if subtype == "error_max_budget_usd":
            return Verdict(Outcome.OVER_BUDGET, text)
        return Verdict(Outcome.FAILURE, text or f"claude reported an error ({subtype})")

    def _rate_limited(self, text: str) -> Verdict:
        resets_at = self._rejection.resets_at if self._rejection else None
        return Verdict(Outcome.RATE_LIMITED, text, resets_at=resets_at)

    def _edit_denials(self, result: dict[str, Any]) -> str:
        denials = list(result.get("permission_denials") or []) + self._denials
        for denial in denials:
            tool = denial.get("tool_name")
            if tool in EDIT_TOOLS:
                tool_input = denial.get("tool_input") or {}
                target = tool_input.get("file_path") or tool_input.get("notebook_path") or ""
                return f"claude was not allowed to use {tool} {target}".rstrip()
        return ""


class ClaudeCoder(BaseCoder):
    name = "claude"
    binary = "claude"
    verified = True
    needs_result = True
    default_model = "sonnet"
    base_url_env = "ANTHROPIC_BASE_URL"
    key_env = "ANTHROPIC_API_KEY"
    usage_limit_key_env = "CLAUDE_CODE_OAUTH_TOKEN"  # subscription limits show only with OAuth
    credential_env = CREDENTIAL_ENV

    def command(self, spec: RunSpec) -> Command:
        argv = [self.binary, "-p", "--output-format", "stream-json", "--verbose"]
        argv += ["--model", spec.model or self.default_model]
        argv += ["--permission-mode", spec.permission_mode or DEFAULT_PERMISSION_MODE]
        allowed = [str(t) for t in spec.options.get("allowed_tools") or ()]
        if not spec.permission_mode and not allowed:
            argv.append("--allowedTools=Bash")
        if allowed:  # a role's tools: exactly these (Write/Edit for files, Bash for commands)
            argv.append(f"--allowedTools={' '.join(allowed)}")
        denied = [str(t) for t in spec.options.get("denied_tools") or ()]
        if denied:
            argv.append(f"--disallowedTools={' '.join(denied)}")
        if spec.outside_result_dir is not None:
            argv.append(f"--add-dir={spec.outside_result_dir}")
        if spec.system_prompt:
            argv.append(f"--append-system-prompt={spec.system_prompt}")
        if spec.resume_session:
            argv += ["--resume", spec.resume_session]
        if spec.options.get("max_turns"):
            argv += ["--max-turns", str(int(spec.options["max_turns"]))]
        argv += ["--", spec.prompt]
        return Command(argv=argv, env=self._env(spec), unset_env=self.unset_credentials(spec))

    def _env(self, spec: RunSpec) -> dict[str, str]:
        env = {
            **QUIET_ENV,
            "CLAUDE_CODE_MAX_RETRIES": str(spec.options.get("max_retries", MAX_RETRIES)),
        }
        if spec.config_dir is not None:
            env["CLAUDE_CONFIG_DIR"] = str(spec.config_dir)
        return env | spec.account_env

    def parser(self, spec: RunSpec | None = None) -> ClaudeParser:
        return ClaudeParser()


def _usage(result: dict[str, Any], model: str) -> Usage:
    raw = result.get("usage") or {}
    by_model = result.get("model_usage_since_last_result")
    if isinstance(by_model, dict):
        cost: float | None = sum(float(m.get("costUSD") or 0) for m in by_model.values())
    else:
        cost = number(result.get("total_cost_usd"))
    models = list(by_model or result.get("modelUsage") or {})
    return Usage(
        input_tokens=int(raw.get("input_tokens") or 0),
        output_tokens=int(raw.get("output_tokens") or 0),
        cache_read_tokens=int(raw.get("cache_read_input_tokens") or 0),
        cache_write_tokens=int(raw.get("cache_creation_input_tokens") or 0),
        reasoning_tokens=int((raw.get("output_tokens_details") or {}).get("thinking_tokens") or 0),
        cost_usd=cost,
        model=model or (models[0] if models else ""),
    )


def _result_text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return "" if content is None else str(content)
