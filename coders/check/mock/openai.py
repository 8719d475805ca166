"""A mock of the OpenAI Responses API (`POST /v1/responses`, SSE), for Codex.

The turn is read from the request's `input`: the number of tool outputs (`function_call_output`,
`custom_tool_call_output`) after the last user message says how far the agent got, so a resumed
thread replays the script from the start. Turn 1 states the plan and writes `hello.txt` in the
working directory named in the prompt; turn 2 writes the fleet result file; turn 3 answers. Files
are written with the tool the request offers: `apply_patch` (freeform or JSON), else
`exec_command`, else `shell`; `Script.extra["write_with"] == "shell"` writes `hello.txt` through
the command tool instead, which proves the agent may run commands.

Every answer reports the `Script`'s numbers the way OpenAI does: `input_tokens` includes the cached
and cache-write tokens, which `input_tokens_details` breaks out; `output_tokens` includes
`Script.extra["reasoning_tokens"]`. Mode `warn` answers with Codex's rate-limit headers: the
primary (5 h) window `Script.utilization` used until `Script.resets_at`, the secondary (weekly)
one 40 % used (`x-codex-{primary,secondary}-used-percent`, `-window-minutes` and `-reset-at`, which
Codex 0.169 records in its rollout file; `-reset-after-seconds`, which earlier versions read). The
refusals answer like the API: `rate_limit` a 429 `rate_limit_exceeded` with `retry-after: 1`
(Codex retries a 429 only when told when), `usage_limit` a 429 `usage_limit_reached` with
`resets_at`, `auth` a 401 `invalid_api_key`, `overloaded` a 503 `server_is_overloaded`. A
WebSocket upgrade (`GET /v1/responses`) is refused with 426 so that a client falls back to HTTP at
once.
"""

from __future__ import annotations

import json
import shlex
import time
import uuid
from typing import Any

from coders.check.mock.base import (
    ANSWERING,
    FINAL_TEXT,
    MockHandler,
    Recorded,
    find_paths,
    script_step,
)

OUTPUT_TYPES = ("function_call_output", "custom_tool_call_output")
SHELL_TOOLS = ("exec_command", "shell")
RETRY_AFTER = {"retry-after": "1"}
Item = dict[str, Any]
SseEvent = tuple[str | None, Any]


def _is_user_message(item: Any) -> bool:
    return isinstance(item, dict) and item.get("role") == "user"


def _input(body: dict[str, Any]) -> list[Any]:
    items = body.get("input")
    return items if isinstance(items, list) else []


def tool_outputs(body: dict[str, Any]) -> int:
    """How many tool outputs follow the last user message: the turn within this prompt."""
    items = _input(body)
    last_user = max((i for i, item in enumerate(items) if _is_user_message(item)), default=-1)
    return sum(
        1
        for item in items[last_user + 1 :]
        if isinstance(item, dict) and item.get("type") in OUTPUT_TYPES
    )


def _paths(body: dict[str, Any]) -> tuple[str, str]:
    """The working directory and result file named in the newest user message that has them."""
    users = [item.get("content") for item in _input(body) if _is_user_message(item)]
    return find_paths(reversed(users))


def _tools(body: dict[str, Any]) -> dict[str, str]:
    """The offered tools: name -> type ("function", "custom", ...)."""
    tools = body.get("tools") or []
    return {
        str(t["name"]): str(t.get("type") or "function")
        for t in tools
        if isinstance(t, dict) and "name" in t
    }


def is_agent_turn(body: Any) -> bool:
    """A request of the agent's own loop (it offers tools)."""
    return isinstance(body, dict) and bool(_tools(body))


def _call_id() -> str:
    return f"call_mock_{uuid.uuid4().hex[:16]}"


def write_call(tools: dict[str, str], path: str, content: str, write_with: Any) -> Item:
    """A tool call that writes `content` to `path` with a tool the request offers."""
    shell = next((t for t in SHELL_TOOLS if t in tools), None)
    if "apply_patch" in tools and not (write_with == "shell" and shell):
        lines = "".join(f"+{line}\n" for line in content.splitlines())
        patch = f"*** Begin Patch\n*** Add File: {path}\n{lines}*** End Patch\n"
        if tools["apply_patch"] == "custom":
            return {"type": "custom_tool_call", "name": "apply_patch", "input": patch}
        return _function_call("apply_patch", {"input": patch})
    if shell is None:
        raise ValueError(f"no tool to write a file among {sorted(tools)}")
    command = f"printf %s {shlex.quote(content)} > {shlex.quote(path)}"
    if shell == "exec_command":
        return _function_call(shell, {"cmd": command})
    return _function_call(shell, {"command": ["bash", "-lc", command]})


def _function_call(name: str, arguments: dict[str, Any]) -> Item:
    return {"type": "function_call", "name": name, "arguments": json.dumps(arguments)}


def _message(text: str) -> Item:
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


class OpenAIHandler(MockHandler):
    @staticmethod
    def is_counted(request: Recorded) -> bool:
        """The agent's own turns count."""
        path = request.path.split("?", 1)[0]
        is_post = request.method == "POST" and path.endswith("/responses")
        return is_post and is_agent_turn(request.body)

    def do_POST(self) -> None:
        body = self.read_body()
        path = self.path.split("?", 1)[0]
        mode = self.mock.script.mode
        if not path.endswith("/responses") or not isinstance(body, dict):
            self.send_error_json(404, "invalid_request_error", "not_found", f"no route {path}")
        elif mode in ANSWERING:
            self.answer(body)
        else:
            self.refuse(mode)

    def do_GET(self) -> None:
        self.read_body()
        if self.path.split("?", 1)[0].endswith("/responses"):
            message = "WebSocket transport is not offered; use HTTP streaming."
            self.send_error_json(426, "invalid_request_error", "upgrade_required", message)
        else:
            self.send_error_json(404, "invalid_request_error", "not_found", self.path)

    # -- answers -----------------------------------------------------------------------------

    def answer(self, body: dict[str, Any]) -> None:
        model = str(body.get("model") or "gpt-mock")
        headers = {"x-request-id": f"req_mock_{uuid.uuid4().hex[:12]}"}
        if self.mock.script.mode == "warn":
            headers |= self.limit_headers()
        self.send_sse(self.stream_events(model, self.turn(body)), headers)

    def turn(self, body: dict[str, Any]) -> list[Item]:
        """The output items of this turn of the script."""
        tools = _tools(body)
        if not tools:
            return [_message(FINAL_TEXT)]
        step = script_step(self.mock.script, tool_outputs(body), *_paths(body))
        items = [_message(step.text)] if step.text else []
        if step.path:
            items.append(write_call(tools, step.path, step.content, step.write_with))
        return items

    def usage(self) -> dict[str, Any]:
        script = self.mock.script
        reasoning = int(script.extra.get("reasoning_tokens", 0))
        prompt = script.input_tokens + script.cache_read_tokens + script.cache_write_tokens
        return {
            "input_tokens": prompt,
            "input_tokens_details": {
                "cached_tokens": script.cache_read_tokens,
                "cache_write_tokens": script.cache_write_tokens,
            },
            "output_tokens": script.output_tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + script.output_tokens,
        }

    def stream_events(self, model: str, items: list[Item]) -> list[SseEvent]:
        response_id = f"resp_mock_{uuid.uuid4().hex[:16]}"
        response = {
            "id": response_id,
            "object": "response",
            "created_at": int(time.time()),
            "model": model,
            "status": "in_progress",
            "output": [],
        }
        events: list[SseEvent] = [("response.created", _typed("response.created", response))]
        done: list[Item] = []
        for index, item in enumerate(items):
            item = self.identify(item, index)
            events.extend(self.item_events(index, item))
            done.append(item)
        completed = response | {"status": "completed", "output": done, "usage": self.usage()}
        events.append(("response.completed", _typed("response.completed", completed)))
        return events

    @staticmethod
    def identify(item: Item, index: int) -> Item:
        """The item with its ids, as the API sends it."""
        prefix = "msg" if item["type"] == "message" else "fc"
        item = {"id": f"{prefix}_mock_{uuid.uuid4().hex[:12]}_{index}"} | item
        if item["type"] in ("function_call", "custom_tool_call"):
            item["call_id"] = _call_id()
        return item | {"status": "completed"}

    @staticmethod
    def item_events(index: int, item: Item) -> list[SseEvent]:
        added = _typed(
            "response.output_item.added",
            {"output_index": index, "item": item | {"status": "in_progress"}},
        )
        events: list[SseEvent] = [("response.output_item.added", added)]
        if item["type"] == "message":
            delta = {
                "item_id": item["id"],
                "output_index": index,
                "content_index": 0,
                "delta": item["content"][0]["text"],
            }
            events.append(
                ("response.output_text.delta", _typed("response.output_text.delta", delta))
            )
        done = _typed("response.output_item.done", {"output_index": index, "item": item})
        events.append(("response.output_item.done", done))
        return events

    # -- refusals ----------------------------------------------------------------------------

    def refuse(self, mode: str) -> None:
        script = self.mock.script
        if mode == "rate_limit":
            message = "Rate limit reached for requests per min (RPM): Limit 500, Used 500."
            # Codex retries a 429 only when it says when to: `retry-after`.
            self.send_error_json(429, "requests", "rate_limit_exceeded", message, RETRY_AFTER)
        elif mode == "usage_limit":
            resets_at = script.reset_time()
            error = {
                "type": "usage_limit_reached",
                "message": "The usage limit has been reached",
                "plan_type": "plus",
                "resets_at": resets_at,
                "resets_in_seconds": max(0, resets_at - int(time.time())),
            }
            self.send_json(429, {"error": error}, self.request_id())
        elif mode == "auth":
            message = "Incorrect API key provided: sk-mock. You can find your API key at https://platform.openai.com/account/api-keys."
            self.send_error_json(401, "invalid_request_error", "invalid_api_key", message)
        elif mode == "overloaded":
            message = "Our servers are currently overloaded. Please try again later."
            self.send_error_json(503, "service_unavailable_error", "server_is_overloaded", message)
        else:
            self.send_error_json(500, "server_error", "unknown_mode", f"unknown mock mode {mode!r}")

    def limit_headers(self) -> dict[str, str]:
        """Codex's rate-limit headers: the primary (5 h) window `utilization` used."""
        script = self.mock.script
        resets_at = script.reset_time()
        return {
            "x-codex-primary-used-percent": f"{script.utilization * 100:.1f}",
            "x-codex-primary-window-minutes": "300",
            "x-codex-primary-reset-at": str(resets_at),
            "x-codex-primary-reset-after-seconds": str(max(0, resets_at - int(time.time()))),
            "x-codex-secondary-used-percent": "40.0",
            "x-codex-secondary-window-minutes": "10080",
        }

    def request_id(self) -> dict[str, str]:
        return {"x-request-id": f"req_mock_{uuid.uuid4().hex[:12]}"}

    def send_error_json(
        self, status: int, kind: str, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        payload = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        self.send_json(status, payload, self.request_id() | (headers or {}))


def _typed(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """An SSE payload: the event's type first, as the API sends it."""
    if kind in ("response.created", "response.completed"):
        return {"type": kind, "response": payload}
    return {"type": kind} | payload
