"""A mock of the Anthropic Messages API (`POST /v1/messages`), for Claude Code and opencode.

The turn is read from the conversation: the number of `tool_result` blocks in `messages` says how
far the agent got. Turn 1 states the plan and writes `hello.txt` in the working directory named in
the prompt; turn 2 writes the fleet result file; turn 3 answers. The file-writing tool is picked
from the tools the request offers (Claude's `Write`, opencode's `write`); with
`Script.extra["write_with"] == "shell"` turn 1 writes through the shell tool instead (`Bash`,
`bash`), which proves the agent may run commands. A request without tools (opencode's title
request) gets a short text answer. Every answer reports the `Script`'s token numbers.
"""

from __future__ import annotations

import json
import shlex
import uuid
from typing import Any

from coders.check.mock.base import (
    ANSWERING,
    MockHandler,
    Recorded,
    find_paths,
    find_prompt,
    script_step,
)

WRITE_TOOLS = {"Write": ("file_path", "content"), "write": ("filePath", "content")}
SHELL_TOOLS = {"Bash": "command", "bash": "command"}
TITLE_TEXT = "Write hello.txt"
UNIFIED = "anthropic-ratelimit-unified"


def _tool_results(messages: list[Any]) -> int:
    count = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            count += sum(
                1 for b in content if isinstance(b, dict) and b.get("type") == "tool_result"
            )
    return count


def _paths(body: dict[str, Any]) -> tuple[str, str]:
    """The working directory and result file named in the newest user message that has them."""
    messages = body.get("messages")
    messages = messages if isinstance(messages, list) else []
    users = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return find_paths(reversed(users))


def _prompt(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    messages = messages if isinstance(messages, list) else []
    return find_prompt(m.get("content") for m in messages if isinstance(m, dict))


def _tool_names(body: dict[str, Any]) -> list[str]:
    return [t["name"] for t in body.get("tools") or [] if isinstance(t, dict) and "name" in t]


def is_agent_turn(body: Any) -> bool:
    """A request the scripted agent answers (it offers tools), not a side request (a title)."""
    return isinstance(body, dict) and bool(_tool_names(body))


class AnthropicHandler(MockHandler):
    @staticmethod
    def is_counted(request: Recorded) -> bool:
        """The agent's own turns count; side requests (a title) do not."""
        return request.method == "POST" and is_agent_turn(request.body)

    def do_POST(self) -> None:
        body = self.read_body()
        path = self.path.split("?", 1)[0]
        if path.endswith("/count_tokens"):
            self.send_json(200, {"input_tokens": self.mock.script.input_tokens})
        elif not path.endswith("/messages") or not isinstance(body, dict):
            self.send_error_json(404, "not_found_error", f"no route for POST {path}")
        elif self.mock.script.mode in ANSWERING:
            self.answer(body)
        else:
            self.refuse(self.mock.script.mode)

    def do_GET(self) -> None:
        self.read_body()
        self.send_error_json(404, "not_found_error", f"no route for GET {self.path}")

    def do_HEAD(self) -> None:
        self.read_body()
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    # -- answers -----------------------------------------------------------------------------

    def answer(self, body: dict[str, Any]) -> None:
        blocks, stop = self.turn(body)
        model = str(body.get("model") or "claude-mock")
        headers = self.limit_headers("allowed_warning") if self.mock.script.mode == "warn" else {}
        headers["request-id"] = f"req_mock_{uuid.uuid4().hex[:12]}"
        if body.get("stream"):
            self.send_sse(self.stream_events(model, blocks, stop), headers)
            return
        message = self.message(model, [], None) | {"content": blocks, "stop_reason": stop}
        message["usage"]["output_tokens"] = self.mock.script.output_tokens
        self.send_json(200, message, headers)

    def turn(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        """The content blocks and stop reason of this turn of the script."""
        tools = _tool_names(body)
        if not tools:
            return [{"type": "text", "text": TITLE_TEXT}], "end_turn"
        done = _tool_results(list(body.get("messages") or []))
        step = script_step(self.mock.script, done, *_paths(body), _prompt(body))
        blocks = [{"type": "text", "text": step.text}] if step.text else []
        if not step.path:
            return blocks, "end_turn"
        use = self.write_use(tools, step.path, step.content, step.write_with)
        return [*blocks, use], "tool_use"

    @staticmethod
    def write_use(tools: list[str], path: str, content: str, write_with: Any) -> dict[str, Any]:
        """A tool_use block that writes `content` to `path` with a tool the request offers."""
        shell = next((t for t in tools if t in SHELL_TOOLS), None)
        write = next((t for t in tools if t in WRITE_TOOLS), None)
        block = {"type": "tool_use", "id": f"toolu_mock_{uuid.uuid4().hex[:16]}"}
        if (write_with == "shell" and shell) or (write is None and shell):
            # through `sh -c`, which Claude's acceptEdits alone would not let run
            printf = f"printf %s {shlex.quote(content)} > {shlex.quote(path)}"
            command = f"sh -c {shlex.quote(printf)}"
            return block | {"name": shell, "input": {SHELL_TOOLS[shell]: command}}
        if write is None:
            raise ValueError(f"no file-writing tool among {tools}")
        path_key, content_key = WRITE_TOOLS[write]
        return block | {"name": write, "input": {path_key: path, content_key: content}}

    def message(self, model: str, content: list[Any], stop: str | None) -> dict[str, Any]:
        script = self.mock.script
        return {
            "id": f"msg_mock_{uuid.uuid4().hex[:16]}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {
                "input_tokens": script.input_tokens,
                "output_tokens": 1,
                "cache_creation_input_tokens": script.cache_write_tokens,
                "cache_read_input_tokens": script.cache_read_tokens,
            },
        }

    def stream_events(
        self, model: str, blocks: list[dict[str, Any]], stop: str
    ) -> list[tuple[str | None, Any]]:
        events: list[tuple[str | None, Any]] = [
            ("message_start", {"type": "message_start", "message": self.message(model, [], None)})
        ]
        for index, block in enumerate(blocks):
            events.extend(self.block_events(index, block))
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": self.mock.script.output_tokens},
        }
        events += [("message_delta", delta), ("message_stop", {"type": "message_stop"})]
        return events

    @staticmethod
    def block_events(index: int, block: dict[str, Any]) -> list[tuple[str | None, Any]]:
        start: dict[str, Any]
        if block["type"] == "text":
            start = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        return [
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            ),
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": index}),
        ]

    # -- refusals ----------------------------------------------------------------------------

    def refuse(self, mode: str) -> None:
        if mode == "rate_limit":
            message = "This request would exceed the rate limit for your organization."
            self.send_error_json(429, "rate_limit_error", message)
        elif mode == "usage_limit":
            headers = self.limit_headers("rejected")
            self.send_error_json(429, "rate_limit_error", "usage limit reached", headers)
        elif mode == "auth":
            self.send_error_json(401, "authentication_error", "invalid x-api-key")
        elif mode == "overloaded":
            self.send_error_json(529, "overloaded_error", "Overloaded")
        else:
            self.send_error_json(500, "api_error", f"unknown mock mode {mode!r}")

    def limit_headers(self, status: str) -> dict[str, str]:
        """The subscription (unified) rate-limit headers Claude Code reads with OAuth auth."""
        script = self.mock.script
        resets_at = str(script.reset_time())
        headers = {
            f"{UNIFIED}-status": status,
            f"{UNIFIED}-reset": resets_at,
            f"{UNIFIED}-representative-claim": "five_hour",
            f"{UNIFIED}-5h-status": status,
            f"{UNIFIED}-5h-reset": resets_at,
        }
        if status == "allowed_warning":
            headers[f"{UNIFIED}-5h-utilization"] = str(script.utilization)
            headers[f"{UNIFIED}-5h-surpassed-threshold"] = "0.9"
        else:
            headers[f"{UNIFIED}-5h-utilization"] = "1.0"
        return headers

    def send_error_json(
        self, status: int, kind: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        payload = {"type": "error", "error": {"type": kind, "message": message}}
        extra = {"x-should-retry": "false", "request-id": f"req_mock_{uuid.uuid4().hex[:12]}"}
        if status in (429, 529):
            extra["retry-after"] = "0"  # a CLI that retries anyway (opencode) does so at once
        self.send_json(status, payload, extra | (headers or {}))
