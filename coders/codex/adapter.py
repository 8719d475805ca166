"""The `codex` coder: OpenAI's Codex CLI, run headless with `codex exec --json`.

Command: `codex exec --json --skip-git-repo-check --sandbox workspace-write -C <workdir>
[--add-dir <result dir>] -m <model> -c ... [resume <thread>] -- <prompt>`, with `CODEX_HOME` set to
the account's config dir. The sandbox lets the agent write inside its working directory (and the
result file's directory) and run commands there; `approval_policy="never"` means nobody is asked:
what the sandbox refuses fails and the model is told so. Codex 0.169 ignores `OPENAI_BASE_URL`, so
an account that names one gets a provider of its own through `-c` flags; only such a provider can
cap Codex's own retries (the built-in `openai` provider cannot be overridden).

Usage comes from `turn.completed`, which is cumulative over the thread: a resumed attempt subtracts
`options["previous_usage"]`, the thread's total when the previous attempt ended (that attempt's
`parser.thread_usage`). Codex's `input_tokens` includes cached and cache-write tokens; fleet's does
not. Codex reports no cost.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from coders.base import BaseCoder, Command, Event, EventKind, Outcome, RunSpec, Usage, Verdict
from coders.codex.errors import limit_of, verdict_for
from coders.codex.rollout import rate_limit_events
from coders.parsing.jsonlines import JsonLinesParser, as_dicts, count

SANDBOX_MODES = ("workspace-write", "read-only", "danger-full-access")
BYPASS = "bypass"  # --dangerously-bypass-approvals-and-sandbox: for externally sandboxed hosts
PROVIDER = "fleet"
MAX_RETRIES = 2  # of a provider fleet defines (Codex's default: 4 per request, 5 per stream)
QUIET = ("analytics.enabled=false", "feedback.enabled=false", "check_for_update_on_startup=false")
CREDENTIAL_ENV = ("OPENAI_API_KEY", "CODEX_API_KEY")
CONFIG_TOML = (
    "# Codex settings of one fleet account (CODEX_HOME). fleet passes its own settings with -c\n"
    "# on every run; settings of yours go here. Log in with `codex login` with CODEX_HOME set.\n"
)
TOOL_ITEMS = ("command_execution", "file_change", "mcp_tool_call", "web_search")
TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


def toml_string(text: str) -> str:
    """`text` as a TOML basic string (JSON's escapes are TOML's, but for DEL)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def thread_usage(raw: dict[str, Any], model: str) -> Usage:
    """A `turn.completed` usage in fleet's terms: input without the cached and written tokens."""
    cached = count(raw.get("cached_input_tokens"))
    written = count(raw.get("cache_write_input_tokens"))
    return Usage(
        input_tokens=max(0, count(raw.get("input_tokens")) - cached - written),
        output_tokens=count(raw.get("output_tokens")),
        cache_read_tokens=cached,
        cache_write_tokens=written,
        reasoning_tokens=count(raw.get("reasoning_output_tokens")),
        model=model,
    )


def minus(total: Usage, earlier: Usage) -> Usage:
    """What `total` adds to `earlier`, field by field, never below zero."""
    counts = {name: max(0, getattr(total, name) - getattr(earlier, name)) for name in TOKEN_FIELDS}
    return Usage(**counts, model=total.model)


class CodexParser(JsonLinesParser):
    def __init__(self, previous: Usage | None = None, model: str = "") -> None:
        super().__init__(model)
        self.thread_usage = Usage(model=model)  # the thread's total, as of the last turn
        self._previous = previous or Usage()
        self._started: set[str] = set()  # ids of tool items whose start was seen
        self._completed = False
        self._failure = ""  # turn.failed's message
        self._error = ""  # the last error line that was not a transient retry
        self._retry = ""  # the last transient retry ("Reconnecting... 2/5 (...)")

    def line(self, data: dict[str, Any]) -> list[Event]:
        kind = str(data.get("type") or "")
        if kind == "thread.started":
            self.session_id = str(data.get("thread_id") or "")
            return [Event(EventKind.SESSION, session_id=self.session_id, model=self.usage.model)]
        if kind.startswith("item."):
            item = data.get("item")
            return self._item(kind, item) if isinstance(item, dict) else []
        if kind == "turn.completed":
            usage = data.get("usage")
            return self._turn_completed(usage if isinstance(usage, dict) else {})
        if kind == "turn.failed":
            error = data.get("error")
            message = error.get("message") if isinstance(error, dict) else error
            self._failure = str(message or "the turn failed")
            return self._error_events(self._failure)
        if kind == "error":
            return self._error_line(str(data.get("message") or ""))
        return [Event(EventKind.OTHER, text=kind)]

    # -- lines ---------------------------------------------------------------------------------

    def _item(self, kind: str, item: dict[str, Any]) -> list[Event]:
        item_type = str(item.get("type") or "")
        if item_type in TOOL_ITEMS:
            return self._tool_item(kind, item)
        if kind != "item.completed" and item_type != "todo_list":
            return []  # messages and errors are whole only once completed
        if item_type == "agent_message":
            text = str(item.get("text") or "")
            self.tracker.text(text)
            return [Event(EventKind.TEXT, text=text)]
        if item_type == "todo_list":
            return [self._todos(item)]
        if item_type == "error":
            return [Event(EventKind.ERROR, text=str(item.get("message") or ""))]
        return [Event(EventKind.OTHER, text=str(item.get("text") or item_type))]

    def _todos(self, item: dict[str, Any]) -> Event:
        entries = as_dicts(item.get("items"))
        todos = [{"content": str(e.get("text") or "")} for e in entries]
        self.tracker.tool({"todos": todos}, is_todo=True)
        marks = [f"[{'x' if e.get('completed') else ' '}] {e.get('text', '')}" for e in entries]
        return Event(EventKind.OTHER, text="\n".join(marks))

    def _tool_item(self, kind: str, item: dict[str, Any]) -> list[Event]:
        item_id = str(item.get("id") or "")
        events = []
        if item_id not in self._started:
            self._started.add(item_id)
            self.tracker.tool()
            tool, tool_input = _tool_call(item)
            events.append(Event(EventKind.TOOL_USE, tool=tool, tool_input=tool_input))
        if kind == "item.completed":
            text, failed = _tool_result(item)
            events.append(Event(EventKind.TOOL_RESULT, text=text, is_error=failed))
        return events

    def _turn_completed(self, raw: dict[str, Any]) -> list[Event]:
        self._completed = True
        self.thread_usage = thread_usage(raw, self.usage.model)
        self.usage = minus(self.thread_usage, self._previous)
        return [self.usage_event()]

    def _error_line(self, message: str) -> list[Event]:
        if message.startswith("Reconnecting..."):
            self._retry = message
            return [Event(EventKind.RETRY, text=message)]
        self._error = message
        return self._error_events(message)

    def _error_events(self, message: str) -> list[Event]:
        events = [Event(EventKind.ERROR, text=message, is_error=True)]
        limit = limit_of(message)
        if limit is not None:
            events.append(Event(EventKind.RATE_LIMIT, text=message, limit=limit))
        return events

    # -- the verdict -------------------------------------------------------------------------

    def finish(self, exit_code: int) -> Verdict:
        if exit_code == 0 and self._completed and not self._failure:
            return Verdict(Outcome.SUCCESS)
        message = self._failure or self._error or self._retry
        return verdict_for(message, exit_code, self.session_id != "")


class CodexCoder(BaseCoder):
    name = "codex"
    binary = "codex"
    verified = True
    needs_result = True
    default_model = "gpt-5.5"
    base_url_env = "OPENAI_BASE_URL"
    key_env = "OPENAI_API_KEY"
    credential_env = CREDENTIAL_ENV

    def command(self, spec: RunSpec) -> Command:
        argv = [self.binary, "exec", "--json", "--skip-git-repo-check"]
        argv += _permission_flags(spec.permission_mode)
        argv += ["-C", str(spec.workdir)]
        if spec.outside_result_dir is not None:
            argv += ["--add-dir", str(spec.outside_result_dir)]
        argv += ["-m", spec.model or self.default_model]
        for setting in _settings(spec):
            argv += ["-c", setting]
        if spec.resume_session:
            argv += ["resume", spec.resume_session]
        argv += ["--", spec.prompt]
        env = dict(spec.account_env)
        files = {}
        if spec.config_dir is not None:
            env["CODEX_HOME"] = str(spec.config_dir)
            files[spec.config_dir / "config.toml"] = CONFIG_TOML  # Codex needs the dir to exist
        return Command(argv=argv, env=env, unset_env=self.unset_credentials(spec), files=files)

    def parser(self, spec: RunSpec | None = None) -> CodexParser:
        """A parser; with the attempt's spec it knows the model and the thread's earlier usage."""
        if spec is None:
            return CodexParser()
        previous = spec.options.get("previous_usage")
        return CodexParser(
            Usage.from_dict(previous) if isinstance(previous, dict) else None,
            spec.model or self.default_model,
        )

    def side_events(self, spec: RunSpec, session_id: str) -> list[Event]:
        """The account's rate-limit windows, as the thread's rollout file last recorded them."""
        return rate_limit_events(codex_home(spec), session_id)


def codex_home(spec: RunSpec) -> Path:
    """Where Codex keeps the attempt's state: the account's dir, else CODEX_HOME, else ~/.codex."""
    if spec.config_dir is not None:
        return spec.config_dir
    home = spec.account_env.get("CODEX_HOME") or os.environ.get("CODEX_HOME")
    return Path(home) if home else Path.home() / ".codex"


def _permission_flags(mode: str) -> list[str]:
    if mode == BYPASS:
        return ["--dangerously-bypass-approvals-and-sandbox"]
    if mode in ("", *SANDBOX_MODES):
        return ["--sandbox", mode or SANDBOX_MODES[0]]
    known = ", ".join((*SANDBOX_MODES, BYPASS))
    raise ValueError(f"unknown codex permission mode {mode!r} (known: {known})")


def _settings(spec: RunSpec) -> list[str]:
    """The `-c key=value` overrides of one attempt."""
    settings = ['approval_policy="never"', *QUIET]
    if spec.system_prompt:
        settings.append(f"developer_instructions={toml_string(spec.system_prompt)}")
    base_url = spec.account_env.get("OPENAI_BASE_URL", "")
    if base_url:
        retries = int(spec.options.get("max_retries", MAX_RETRIES))
        key = next((k for k in CREDENTIAL_ENV if k in spec.account_env), CREDENTIAL_ENV[0])
        provider = (
            f"{{name={toml_string(PROVIDER)}, base_url={toml_string(base_url)}, "
            f'env_key={toml_string(key)}, wire_api="responses", '
            f"request_max_retries={retries}, stream_max_retries={retries}}}"
        )
        settings += [
            f"model_provider={toml_string(PROVIDER)}",
            f"model_providers.{PROVIDER}={provider}",
        ]
    return settings


def _tool_call(item: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The tool name and input fleet shows for a Codex tool item."""
    item_type = item.get("type")
    if item_type == "command_execution":
        return "shell", {"command": item.get("command")}
    if item_type == "file_change":
        return "apply_patch", {"changes": as_dicts(item.get("changes"))}
    if item_type == "mcp_tool_call":
        name = f"{item.get('server', '')}/{item.get('tool', '')}"
        arguments = item.get("arguments")
        return f"mcp:{name}", arguments if isinstance(arguments, dict) else {"arguments": arguments}
    return str(item_type), {"query": item.get("query")}


def _tool_result(item: dict[str, Any]) -> tuple[str, bool]:
    """The text and error flag of a completed Codex tool item."""
    status = item.get("status")
    failed = status in ("failed", "declined")
    item_type = item.get("type")
    if item_type == "command_execution":
        code = item.get("exit_code")
        return str(item.get("aggregated_output") or ""), failed or (code not in (0, None))
    if item_type == "file_change":
        changes = as_dicts(item.get("changes"))
        return "\n".join(f"{c.get('kind', '')} {c.get('path', '')}" for c in changes), failed
    if item_type == "mcp_tool_call":
        error = item.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"]), True
        return json.dumps(item.get("result"), ensure_ascii=False), failed
    return str(item.get("query") or ""), failed
