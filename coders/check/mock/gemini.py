"""A mock of the Gemini API (`/v1beta/models/<model>:generateContent` and
`:streamGenerateContent?alt=sse`), for Gemini CLI.

The turn is read from `contents`: the number of `functionResponse` parts after the last user text
says how far the agent got. Turn 1 states the plan and calls `write_file {file_path, content}` for
`hello.txt` in the working directory named in the prompt; turn 2 writes the fleet result file;
turn 3 answers. `Script.extra["write_with"] == "shell"` writes `hello.txt` with
`run_shell_command` instead. A request without tools (the CLI's router or another utility call)
gets a JSON or text answer shaped by its `responseJsonSchema`.

Every answer's `usageMetadata` reports the `Script`'s numbers the way Gemini does:
`promptTokenCount` includes `cachedContentTokenCount`; Gemini has no cache writes, so
`Script.cache_write_tokens` count as plain prompt tokens; `Script.extra["reasoning_tokens"]` are
`thoughtsTokenCount`. The limit modes answer like the API: `rate_limit` is a per-minute quota with
a `RetryInfo` delay of `Script.resets_at - now` (an hour when unset: beyond the CLI's 300 s retry
ceiling, so it gives up at once), `usage_limit` a per-day quota (never retried), `auth` an invalid
API key (400 `API_KEY_INVALID`), `overloaded` a 503.
"""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

from coders.check.mock.base import ANSWERING, MockHandler, Recorded, Script, find_paths, script_step

QUOTA_TYPE = "type.googleapis.com/google.rpc.QuotaFailure"
RETRY_TYPE = "type.googleapis.com/google.rpc.RetryInfo"
INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"
QUOTA_METRIC = "generativelanguage.googleapis.com/generate_content_paid_tier_input_token_count"
QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
)
Part = dict[str, Any]


def _contents(body: dict[str, Any]) -> list[dict[str, Any]]:
    contents = body.get("contents")
    return [c for c in contents if isinstance(c, dict)] if isinstance(contents, list) else []


def _parts(content: dict[str, Any]) -> list[Part]:
    parts = content.get("parts")
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def _is_user_text(content: dict[str, Any]) -> bool:
    return content.get("role") == "user" and any("text" in p for p in _parts(content))


def function_responses(body: dict[str, Any]) -> int:
    """How many tool answers follow the last user text: the turn within this prompt."""
    contents = _contents(body)
    last = max((i for i, c in enumerate(contents) if _is_user_text(c)), default=-1)
    return sum(1 for c in contents[last + 1 :] for p in _parts(c) if "functionResponse" in p)


def _paths(body: dict[str, Any]) -> tuple[str, str]:
    """The working directory and result file named in the newest user text that has them."""
    users = [
        [part.get("text") for part in _parts(content)]
        for content in _contents(body)
        if content.get("role") == "user"
    ]
    return find_paths(reversed(users))


def _tools(body: dict[str, Any]) -> list[str]:
    names = []
    for tool in body.get("tools") or []:
        for decl in tool.get("functionDeclarations") or [] if isinstance(tool, dict) else []:
            if isinstance(decl, dict) and "name" in decl:
                names.append(str(decl["name"]))
    return names


def is_agent_turn(body: Any) -> bool:
    """A request of the agent's own loop (it offers tools), not a router or utility call."""
    return isinstance(body, dict) and bool(_tools(body))


def write_call(tools: list[str], path: str, content: str, write_with: Any) -> Part:
    """A functionCall part that writes `content` to `path` with a tool the request offers."""
    if "write_file" in tools and not (write_with == "shell" and "run_shell_command" in tools):
        return {
            "functionCall": {"name": "write_file", "args": {"file_path": path, "content": content}}
        }
    if "run_shell_command" not in tools:
        raise ValueError(f"no tool to write a file among {tools}")
    command = f"printf %s {shlex.quote(content)} > {shlex.quote(path)}"
    return {"functionCall": {"name": "run_shell_command", "args": {"command": command}}}


def schema_value(schema: Any) -> Any:
    """A small value that satisfies a (Gemini-style, upper-case typed) JSON schema."""
    if not isinstance(schema, dict):
        return ""
    if schema.get("enum"):
        return schema["enum"][0]
    kind = str(schema.get("type") or "string").lower()
    if kind == "object":
        props = schema.get("properties") or {}
        return {key: schema_value(value) for key, value in props.items()}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return False
    return "mock"


class GeminiHandler(MockHandler):
    @staticmethod
    def is_counted(request: Recorded) -> bool:
        """Every answered request counts, the router's included: the CLI counts them all."""
        return request.method == "POST" and isinstance(request.body, dict)

    @staticmethod
    def usage_per_answer(script: Script) -> dict[str, int]:
        """Gemini has no cache writes (they are plain prompt tokens); thoughts are output."""
        reasoning = int(script.extra.get("reasoning_tokens", 0))
        return {
            "input_tokens": script.input_tokens + script.cache_write_tokens,
            "output_tokens": script.output_tokens + reasoning,
            "cache_read_tokens": script.cache_read_tokens,
            "cache_write_tokens": 0,
        }

    def do_POST(self) -> None:
        body = self.read_body()
        path = self.path.split("?", 1)[0]
        method = path.rsplit(":", 1)[-1]
        mode = self.mock.script.mode
        if method not in ("generateContent", "streamGenerateContent") or not isinstance(body, dict):
            self.send_error_json(404, "NOT_FOUND", f"no route for POST {path}")
        elif mode not in ANSWERING:
            self.refuse(mode)
        elif method == "streamGenerateContent":
            self.send_sse([(None, chunk) for chunk in self.chunks(path, body)])
        else:
            self.send_json(200, self.response(path, self.utility_parts(body), True))

    # -- answers -----------------------------------------------------------------------------

    def chunks(self, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The streamed answer: one chunk per part, usage and finish reason on the last."""
        parts = self.turn(body) if is_agent_turn(body) else self.utility_parts(body)
        out = [self.response(path, [part], False) for part in parts[:-1]]
        return [*out, self.response(path, parts[-1:], True)]

    def turn(self, body: dict[str, Any]) -> list[Part]:
        """The parts of this turn of the script."""
        step = script_step(self.mock.script, function_responses(body), *_paths(body))
        parts: list[Part] = [{"text": step.text}] if step.text else []
        if step.path:
            parts.append(write_call(_tools(body), step.path, step.content, step.write_with))
        return parts

    @staticmethod
    def utility_parts(body: dict[str, Any]) -> list[Part]:
        config = body.get("generationConfig") or {}
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        if schema:
            return [{"text": json.dumps(schema_value(schema))}]
        return [{"text": "mock"}]

    def response(self, path: str, parts: list[Part], last: bool) -> dict[str, Any]:
        model = path.rsplit("/", 1)[-1].split(":", 1)[0]
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        out: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
        if last:
            candidate["finishReason"] = "STOP"
            out["usageMetadata"] = self.usage()
        return out

    def usage(self) -> dict[str, int]:
        script = self.mock.script
        prompt = script.input_tokens + script.cache_write_tokens + script.cache_read_tokens
        thoughts = int(script.extra.get("reasoning_tokens", 0))
        return {
            "promptTokenCount": prompt,
            "cachedContentTokenCount": script.cache_read_tokens,
            "candidatesTokenCount": script.output_tokens,
            "thoughtsTokenCount": thoughts,
            "totalTokenCount": prompt + script.output_tokens + thoughts,
        }

    # -- refusals ----------------------------------------------------------------------------

    def refuse(self, mode: str) -> None:
        script = self.mock.script
        if mode == "rate_limit":
            delay = max(1, script.reset_time() - int(time.time()))
            details = [
                self.quota_failure("GenerateRequestsPerMinutePerProjectPerModel"),
                {"@type": RETRY_TYPE, "retryDelay": f"{delay}s"},
            ]
            self.send_error_json(429, "RESOURCE_EXHAUSTED", QUOTA_MESSAGE, details)
        elif mode == "usage_limit":
            details = [self.quota_failure("GenerateRequestsPerDayPerProjectPerModel")]
            self.send_error_json(429, "RESOURCE_EXHAUSTED", QUOTA_MESSAGE, details)
        elif mode == "auth":
            info = {
                "@type": INFO_TYPE,
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
            message = "API key not valid. Please pass a valid API key."
            self.send_error_json(400, "INVALID_ARGUMENT", message, [info])
        elif mode == "overloaded":
            message = "The model is overloaded. Please try again later."
            self.send_error_json(503, "UNAVAILABLE", message, [])
        else:
            self.send_error_json(500, "INTERNAL", f"unknown mock mode {mode!r}", [])

    @staticmethod
    def quota_failure(quota_id: str) -> dict[str, Any]:
        violation = {
            "quotaMetric": QUOTA_METRIC,
            "quotaId": quota_id,
            "quotaDimensions": {"location": "global", "model": "gemini-mock"},
            "quotaValue": "1000000",
        }
        return {"@type": QUOTA_TYPE, "violations": [violation]}

    def send_error_json(
        self, status: int, kind: str, message: str, details: list[Any] | None = None
    ) -> None:
        error = {"code": status, "message": message, "status": kind, "details": details or []}
        self.send_json(status, {"error": error})
