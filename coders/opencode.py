"""The `opencode` coder: `opencode run --format json`, reading its JSON events.

Command: `opencode run --format json --dir <workdir> -m <provider/model> --title <t> [-s <session>]
[--auto] -- <prompt>`, configured through `OPENCODE_CONFIG_CONTENT`: autoupdate off, sharing
disabled, edits and commands allowed, the result file's directory allowed as an external directory
(in `run`, a permission that would ask is rejected), and, when the account names an
`ANTHROPIC_BASE_URL`, the anthropic provider pointed at it, with no fetch of the models.dev
catalogue (the bundled copy serves). `--dir` is needed because opencode takes its project
directory from `$PWD`, not from the process's working directory. `--title` spares the extra model
request opencode otherwise makes to title the session.

Usage is the sum of the `step_finish` events' tokens and cost; `tokens.input` excludes cache reads
and writes, as fleet's `Usage` does.
"""

from __future__ import annotations

import json
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
    Verdict,
    exit_reason,
)
from coders.parsing.jsonlines import JsonLinesParser, as_dict, count, number

EDIT_TOOLS = frozenset({"write", "edit", "patch", "multiedit"})
UNIFIED_RESET = "anthropic-ratelimit-unified-reset"
PERMISSION_MODES = {"": [], "acceptEdits": [], "bypassPermissions": ["--auto"]}


class OpencodeParser(JsonLinesParser):
    def __init__(self) -> None:
        super().__init__()
        self._error: dict[str, Any] | None = None
        self._error_time: float | None = None
        self._denied = ""
        self._finished_steps = 0
        self._last_reason = ""

    def line(self, data: dict[str, Any]) -> list[Event]:
        events = self._session(data)
        kind, part = data.get("type"), as_dict(data.get("part"))
        if kind == "text":
            self.tracker.text(str(part.get("text") or ""))
            events.append(Event(EventKind.TEXT, text=str(part.get("text") or "")))
        elif kind == "tool_use":
            events += self._tool(part)
        elif kind == "step_finish":
            events.append(self._step_finish(part))
        elif kind == "error":
            events += self._error_line(data)
        else:
            events.append(Event(EventKind.OTHER, text=str(kind or "")))
        return events

    def _session(self, data: dict[str, Any]) -> list[Event]:
        session = data.get("sessionID")
        if self.session_id or not isinstance(session, str) or not session:
            return []
        self.session_id = session
        return [Event(EventKind.SESSION, session_id=session)]

    def _tool(self, part: dict[str, Any]) -> list[Event]:
        tool = str(part.get("tool") or "")
        state = as_dict(part.get("state"))
        tool_input = as_dict(state.get("input"))
        self.tracker.tool(tool_input, is_todo=tool == "todowrite")
        failed = state.get("status") == "error"
        output = str(state.get("error") if failed else state.get("output") or "")
        if failed and tool in EDIT_TOOLS and "permission" in output and not self._denied:
            target = tool_input.get("filePath") or ""
            self._denied = f"opencode was not allowed to use {tool} {target}: {output}"
        return [
            Event(EventKind.TOOL_USE, tool=tool, tool_input=tool_input),
            Event(EventKind.TOOL_RESULT, tool=tool, text=output, is_error=failed),
        ]

    def _step_finish(self, part: dict[str, Any]) -> Event:
        tokens = as_dict(part.get("tokens"))
        cache = as_dict(tokens.get("cache"))
        usage = self.usage
        usage.input_tokens += count(tokens.get("input"))
        usage.output_tokens += count(tokens.get("output"))
        usage.reasoning_tokens += count(tokens.get("reasoning"))
        usage.cache_read_tokens += count(cache.get("read"))
        usage.cache_write_tokens += count(cache.get("write"))
        cost = number(part.get("cost"))
        if cost is not None:
            usage.cost_usd = (usage.cost_usd or 0.0) + cost
        self._finished_steps += 1
        self._last_reason = str(part.get("reason") or "")
        return self.usage_event()

    def _error_line(self, data: dict[str, Any]) -> list[Event]:
        error = self._error = as_dict(data.get("error"))
        if isinstance(data.get("timestamp"), int | float):
            self._error_time = float(data["timestamp"]) / 1000
        info = _error_info(error)
        events = [Event(EventKind.ERROR, text=info["message"], is_error=True)]
        if info["status"] == 429:
            limit = RateLimit(status="rejected", kind="rate_limit", resets_at=self._resets_at())
            events.append(Event(EventKind.RATE_LIMIT, text=info["message"], limit=limit))
        return events

    def _resets_at(self) -> float | None:
        """When the refusing server said to come back: its unified reset, else its retry-after."""
        headers = as_dict(as_dict(as_dict(self._error).get("data")).get("responseHeaders"))
        for name, value in headers.items():
            if name.lower() == UNIFIED_RESET:
                return _float(value)
        retry_after = _float(headers.get("retry-after"))
        if retry_after and self._error_time is not None:
            return self._error_time + retry_after
        return None

    def finish(self, exit_code: int) -> Verdict:
        if self._error is not None:
            return self._error_verdict()
        if self._denied:
            return Verdict(Outcome.FAILURE, self._denied)
        if exit_code != 0:
            return Verdict(Outcome.FAILURE, exit_reason("opencode", exit_code))
        if self._finished_steps == 0:
            return Verdict(Outcome.FAILURE, "opencode exited 0 without finishing a step")
        if self._last_reason == "tool-calls":
            return Verdict(Outcome.FAILURE, "opencode stopped after a tool call without answering")
        return Verdict(Outcome.SUCCESS)

    def _error_verdict(self) -> Verdict:
        info = _error_info(self._error or {})
        status, message, name = info["status"], info["message"], info["name"]
        if status == 429:
            return Verdict(Outcome.RATE_LIMITED, message, resets_at=self._resets_at())
        if status in (401, 403) or name == "ProviderAuthError":
            return Verdict(Outcome.AUTH_ERROR, message)
        if (isinstance(status, int) and status >= 500) or "overloaded" in message.lower():
            return Verdict(Outcome.OVERLOADED, message)
        return Verdict(Outcome.FAILURE, f"{name}: {message}" if name else message)


class OpencodeCoder(BaseCoder):
    name = "opencode"
    binary = "opencode"
    verified = True
    needs_result = True
    default_model = "anthropic/claude-sonnet-4-5"
    base_url_env = "ANTHROPIC_BASE_URL"
    key_env = "ANTHROPIC_API_KEY"

    def command(self, spec: RunSpec) -> Command:
        if spec.permission_mode not in PERMISSION_MODES:
            known = ", ".join(repr(m) for m in PERMISSION_MODES)
            raise ValueError(
                f"opencode has no permission mode {spec.permission_mode!r} (known: {known})"
            )
        argv = [self.binary, "run", "--format", "json", "--dir", str(spec.workdir)]
        argv += ["-m", spec.model or self.default_model]
        argv += ["--title", f"fleet {spec.task_id} attempt {spec.attempt}"]
        if spec.resume_session:
            argv += ["-s", spec.resume_session]
        argv += PERMISSION_MODES[spec.permission_mode]
        argv += ["--", spec.prompt]
        env = {"PWD": str(spec.workdir), "OPENCODE_CONFIG_CONTENT": json.dumps(config(spec))}
        if spec.account_env.get("ANTHROPIC_BASE_URL"):
            env["OPENCODE_DISABLE_MODELS_FETCH"] = "1"  # a gateway: no trip to models.dev
        if spec.config_dir is not None:
            env |= xdg_dirs(spec.config_dir)
        return Command(argv=argv, env=env | spec.account_env)

    def parser(self, spec: RunSpec | None = None) -> OpencodeParser:
        return OpencodeParser()


def config(spec: RunSpec) -> dict[str, Any]:
    """opencode's configuration for one attempt."""
    result_dir = spec.result_file.parent
    conf: dict[str, Any] = {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "permission": {
            "edit": "allow",
            "bash": "allow",
            "external_directory": {f"{result_dir}/*": "allow"},
        },
    }
    base_url = spec.account_env.get("ANTHROPIC_BASE_URL")
    if base_url:
        options = {"baseURL": base_url.rstrip("/") + "/v1"}
        conf["provider"] = {"anthropic": {"options": options}}
    return conf


def xdg_dirs(config_dir: Path) -> dict[str, str]:
    """The account's own config, data, cache and state directories."""
    return {
        "XDG_CONFIG_HOME": str(config_dir / "config"),
        "XDG_DATA_HOME": str(config_dir / "data"),
        "XDG_CACHE_HOME": str(config_dir / "cache"),
        "XDG_STATE_HOME": str(config_dir / "state"),
    }


def _error_info(error: dict[str, Any]) -> dict[str, Any]:
    data = as_dict(error.get("data"))
    status = data.get("statusCode")
    return {
        "name": str(error.get("name") or ""),
        "status": status if isinstance(status, int) else None,
        "message": str(data.get("message") or error.get("message") or error.get("name") or ""),
    }


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
