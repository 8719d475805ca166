"""The OpenAI Responses and Gemini API mocks over HTTP: the shapes the CLIs read, and the branches
the CLI tests do not reach (other tool sets, the router call, the refusal bodies)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from coders.check.mock.base import MockServer, Script
from coders.check.mock.gemini import GeminiHandler, function_responses, schema_value
from coders.check.mock.gemini import write_call as gemini_write
from coders.check.mock.openai import OpenAIHandler, tool_outputs, write_call
from tests.support.agent_cli import post_json, sse

PROMPT = "Do it.\nWorking directory: /w\nWrite your result as JSON to: /r/result.json\n"


def sse_data(text: str) -> list[dict[str, Any]]:
    return [data for _, data in sse(text)]


# -- OpenAI Responses --------------------------------------------------------------------------


def test_a_turn_streams_items_and_usage_in_openai_terms() -> None:
    script = Script(input_tokens=100, output_tokens=9, cache_read_tokens=30, cache_write_tokens=5)
    script.extra["reasoning_tokens"] = 4
    body = {
        "model": "gpt-5.5",
        "tools": [{"type": "function", "name": "exec_command"}],
        "input": [{"type": "message", "role": "user", "content": [{"text": PROMPT}]}],
    }
    with MockServer(OpenAIHandler, script) as mock:
        status, _, text = post_json(f"{mock.url}/v1/responses", body)
    events = sse_data(text)
    assert status == 200
    assert [e["type"] for e in events] == [
        "response.created",
        "response.output_item.added",
        "response.output_text.delta",
        "response.output_item.done",
        "response.output_item.added",
        "response.output_item.done",
        "response.completed",
    ]
    call = events[5]["item"]
    assert call["name"] == "exec_command" and "/w/hello.txt" in json.loads(call["arguments"])["cmd"]
    assert events[-1]["response"]["usage"] == {
        "input_tokens": 135,
        "input_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 5},
        "output_tokens": 9,
        "output_tokens_details": {"reasoning_tokens": 4},
        "total_tokens": 144,
    }


def test_the_turn_counts_tool_outputs_after_the_last_prompt() -> None:
    user = {"type": "message", "role": "user", "content": []}
    output = {"type": "function_call_output", "output": "ok"}
    custom = {"type": "custom_tool_call_output", "output": "ok"}
    assert tool_outputs({"input": [user, output, custom]}) == 2
    assert tool_outputs({"input": [user, output, custom, user, output]}) == 1
    assert tool_outputs({"input": "nonsense"}) == 0


@pytest.mark.parametrize(
    ("tools", "name", "key"),
    [
        ({"apply_patch": "custom", "exec_command": "function"}, "apply_patch", "input"),
        ({"apply_patch": "function"}, "apply_patch", "arguments"),
        ({"exec_command": "function"}, "exec_command", "arguments"),
        ({"shell": "function"}, "shell", "arguments"),
    ],
)
def test_files_are_written_with_the_tool_offered(
    tools: dict[str, str], name: str, key: str
) -> None:
    call = write_call(tools, "/w/a b.txt", "one\ntwo\n", None)
    assert call["name"] == name
    assert "/w/a b.txt" in call[key]


def test_shell_writes_when_asked_and_a_request_without_a_write_tool_is_an_error() -> None:
    tools = {"apply_patch": "custom", "exec_command": "function"}
    assert write_call(tools, "/w/x", "x", "shell")["name"] == "exec_command"
    with pytest.raises(ValueError, match="no tool to write a file"):
        write_call({"view_image": "function"}, "/w/x", "x", None)


@pytest.mark.parametrize(
    ("mode", "status", "kind"),
    [
        ("rate_limit", 429, "requests"),
        ("usage_limit", 429, "usage_limit_reached"),
        ("auth", 401, "invalid_request_error"),
        ("overloaded", 503, "service_unavailable_error"),
    ],
)
def test_openai_refusals(mode: str, status: int, kind: str) -> None:
    resets_at = int(time.time()) + 600
    with MockServer(OpenAIHandler, Script(mode=mode, resets_at=resets_at)) as mock:
        got, headers, text = post_json(f"{mock.url}/v1/responses", {"input": []})
    error = json.loads(text)["error"]
    assert (got, error["type"]) == (status, kind)
    if mode == "usage_limit":
        assert error["resets_at"] == resets_at and error["plan_type"] == "plus"
    if mode == "rate_limit":
        assert headers["retry-after"] == "1"


def test_warn_mode_sends_codexs_rate_limit_headers() -> None:
    body = {"tools": [{"type": "function", "name": "exec_command"}], "input": []}
    script = Script(mode="warn", utilization=0.93, resets_at=int(time.time()) + 600)
    with MockServer(OpenAIHandler, script) as mock:
        status, headers, _ = post_json(f"{mock.url}/v1/responses", body)
    assert status == 200
    codex = {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-codex-")}
    assert codex == {
        "x-codex-primary-used-percent": "93.0",
        "x-codex-primary-window-minutes": "300",
        "x-codex-primary-reset-at": str(script.resets_at),
        "x-codex-primary-reset-after-seconds": codex["x-codex-primary-reset-after-seconds"],
        "x-codex-secondary-used-percent": "40.0",
        "x-codex-secondary-window-minutes": "10080",
    }
    assert 595 <= int(codex["x-codex-primary-reset-after-seconds"]) <= 600


def test_the_websocket_upgrade_is_refused_and_recorded() -> None:
    with MockServer(OpenAIHandler) as mock:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{mock.url}/v1/responses", timeout=10)
        assert refused.value.code == 426
        assert [(r.method, r.path) for r in mock.requests] == [("GET", "/v1/responses")]


# -- Gemini ------------------------------------------------------------------------------------


def test_the_router_call_gets_json_of_its_schema() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "complexity_reasoning": {"type": "STRING"},
            "complexity_score": {"type": "INTEGER"},
            "next": {"type": "STRING", "enum": ["user", "model"]},
        },
    }
    body = {"contents": [], "generationConfig": {"responseJsonSchema": schema}}
    with MockServer(GeminiHandler) as mock:
        status, _, text = post_json(f"{mock.url}/v1beta/models/flash-lite:generateContent", body)
    answer = json.loads(text)
    part = answer["candidates"][0]["content"]["parts"][0]["text"]
    assert status == 200
    assert json.loads(part) == {
        "complexity_reasoning": "mock",
        "complexity_score": 1,
        "next": "user",
    }
    assert answer["usageMetadata"]["promptTokenCount"] == Script().input_tokens
    assert schema_value({"type": "ARRAY"}) == [] and schema_value({"type": "BOOLEAN"}) is False


def test_an_agent_turn_streams_its_parts() -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
        "tools": [{"functionDeclarations": [{"name": "write_file"}]}],
    }
    with MockServer(GeminiHandler) as mock:
        url = f"{mock.url}/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
        _, _, text = post_json(url, body)
    chunks = sse_data(text)
    parts = [c["candidates"][0]["content"]["parts"][0] for c in chunks]
    assert parts[0]["text"].startswith("<plan>")
    assert parts[1]["functionCall"]["args"]["file_path"] == "/w/hello.txt"
    assert "usageMetadata" in chunks[-1] and "usageMetadata" not in chunks[0]


def test_the_gemini_turn_counts_function_responses_after_the_last_prompt() -> None:
    prompt = {"role": "user", "parts": [{"text": "go"}]}
    answer = {"role": "user", "parts": [{"functionResponse": {"name": "write_file"}}]}
    call = {"role": "model", "parts": [{"functionCall": {"name": "write_file"}}]}
    assert function_responses({"contents": [prompt, call, answer, call, answer]}) == 2
    assert function_responses({"contents": [prompt, call, answer, prompt]}) == 0
    with pytest.raises(ValueError, match="no tool to write a file"):
        gemini_write(["read_file"], "/w/x", "x", None)
    assert (
        gemini_write(["write_file", "run_shell_command"], "/w/x", "x", "shell")["functionCall"][
            "name"
        ]
        == "run_shell_command"
    )


@pytest.mark.parametrize(
    ("mode", "status", "detail"),
    [
        ("rate_limit", 429, "PerMinute"),
        ("usage_limit", 429, "PerDay"),
        ("auth", 400, "API_KEY_INVALID"),
        ("overloaded", 503, "UNAVAILABLE"),
    ],
)
def test_gemini_refusals(mode: str, status: int, detail: str) -> None:
    resets_at = int(time.time()) + 120
    with MockServer(GeminiHandler, Script(mode=mode, resets_at=resets_at)) as mock:
        got, _, text = post_json(f"{mock.url}/v1beta/models/m:streamGenerateContent?alt=sse", {})
    assert got == status and detail in text
    if mode == "rate_limit":
        details = json.loads(text)["error"]["details"]
        delay = next(d["retryDelay"] for d in details if "retryDelay" in d)
        assert 118 <= int(delay.removesuffix("s")) <= 120
