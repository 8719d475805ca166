"""The Anthropic Messages mock, spoken to over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from coders.check.mock.anthropic import AnthropicHandler
from coders.check.mock.base import HELLO_TEXT, PLAN_TEXT, MockServer, Script
from tests.support.agent_cli import post_json, sse

PROMPT = "Do it.\nWorking directory: /w/work\nWrite your result as JSON to: /w/out/result.json"
CLAUDE_TOOLS = [{"name": "Bash"}, {"name": "Write"}, {"name": "Read"}]
OPENCODE_TOOLS = [{"name": "bash"}, {"name": "write"}, {"name": "todowrite"}]


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    with MockServer(AnthropicHandler) as started:
        yield started


@pytest.fixture
def mock(server: MockServer, request: pytest.FixtureRequest) -> MockServer:
    """The module's server, with this test's script (a parameter) and no requests yet."""
    script = getattr(request, "param", None) or Script(cache_read_tokens=30, cache_write_tokens=20)
    server.script = script
    server.requests.clear()
    return server


def post(
    mock: MockServer, body: dict[str, Any], path: str = "/v1/messages?beta=true"
) -> tuple[int, dict[str, str], str]:
    return post_json(mock.url + path, body)


def conversation(tool_results: int, tools: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": PROMPT}]},
        {"role": "system", "content": "tolerated", "unknown_field": 1},
    ]
    for n in range(tool_results):
        messages.append({"role": "assistant", "content": [{"type": "tool_use", "id": f"t{n}"}]})
        messages.append(
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{n}"}]}
        )
    return {"model": "claude-test", "messages": messages, "tools": tools, **extra}


def test_the_first_turn_states_the_plan_and_writes_hello(mock: MockServer) -> None:
    status, _, raw = post(mock, conversation(0, CLAUDE_TOOLS, stream=False))
    assert status == 200
    message = json.loads(raw)
    assert message["content"][0] == {"type": "text", "text": PLAN_TEXT}
    write = message["content"][1]
    assert (write["type"], write["name"]) == ("tool_use", "Write")
    assert write["input"] == {"file_path": "/w/work/hello.txt", "content": HELLO_TEXT}
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {
        "input_tokens": 1000,
        "output_tokens": 40,
        "cache_creation_input_tokens": 20,
        "cache_read_input_tokens": 30,
    }


def test_the_turn_follows_the_tool_results(mock: MockServer) -> None:
    second = json.loads(post(mock, conversation(1, OPENCODE_TOOLS, stream=False))[2])
    assert second["content"][0]["name"] == "write"
    assert second["content"][0]["input"]["filePath"] == "/w/out/result.json"
    assert json.loads(second["content"][0]["input"]["content"])["status"] == "done"
    third = json.loads(post(mock, conversation(2, OPENCODE_TOOLS, stream=False))[2])
    assert [b["type"] for b in third["content"]] == ["text"]
    assert third["stop_reason"] == "end_turn"


def test_a_streamed_turn(mock: MockServer) -> None:
    status, headers, raw = post(mock, conversation(0, CLAUDE_TOOLS, stream=True))
    assert status == 200 and headers["content-type"] == "text/event-stream"
    events = sse(raw)
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0][1]["message"]["usage"]["input_tokens"] == 1000
    assert events[2][1]["delta"] == {"type": "text_delta", "text": PLAN_TEXT}
    assert events[4][1]["content_block"]["name"] == "Write"
    tool_input = json.loads(events[5][1]["delta"]["partial_json"])
    assert tool_input["file_path"] == "/w/work/hello.txt"
    assert events[7][1]["delta"]["stop_reason"] == "tool_use"
    assert events[7][1]["usage"] == {"output_tokens": 40}


@pytest.mark.parametrize("mock", [Script(extra={"write_with": "shell"})], indirect=True)
def test_hello_can_be_written_through_the_shell(mock: MockServer) -> None:
    message = json.loads(post(mock, conversation(0, OPENCODE_TOOLS, stream=False))[2])
    use = message["content"][1]
    assert use["name"] == "bash"
    assert use["input"]["command"].startswith("sh -c ")
    assert "/w/work/hello.txt" in use["input"]["command"]


def test_side_requests_get_text_and_do_not_count(mock: MockServer) -> None:
    title = json.loads(post(mock, conversation(0, [], stream=False))[2])
    assert title["content"][0]["type"] == "text"
    post(mock, conversation(0, CLAUDE_TOOLS, stream=True))
    assert len(mock.requests) == 2
    assert mock.expected_usage() == {
        "input_tokens": 1000,
        "output_tokens": 40,
        "cache_read_tokens": 30,
        "cache_write_tokens": 20,
    }


@pytest.mark.parametrize(
    ("mock", "status", "kind"),
    [
        (Script(mode="rate_limit"), 429, "rate_limit_error"),
        (Script(mode="usage_limit", resets_at=1900000000), 429, "rate_limit_error"),
        (Script(mode="auth"), 401, "authentication_error"),
        (Script(mode="overloaded"), 529, "overloaded_error"),
    ],
    indirect=["mock"],
)
def test_failure_modes(mock: MockServer, status: int, kind: str) -> None:
    got, headers, raw = post(mock, conversation(0, CLAUDE_TOOLS, stream=True))
    assert (got, json.loads(raw)["error"]["type"]) == (status, kind)
    assert headers["x-should-retry"] == "false"
    assert headers.get("retry-after") == ("0" if status in (429, 529) else None)
    unified = headers.get("anthropic-ratelimit-unified-status")
    assert unified == ("rejected" if mock.script.mode == "usage_limit" else None)
    if unified:
        assert headers["anthropic-ratelimit-unified-reset"] == "1900000000"
        assert headers["anthropic-ratelimit-unified-representative-claim"] == "five_hour"


@pytest.mark.parametrize("mock", [Script(mode="warn", utilization=0.91)], indirect=True)
def test_a_warning_rides_on_a_success(mock: MockServer) -> None:
    status, headers, _ = post(mock, conversation(0, CLAUDE_TOOLS, stream=True))
    assert status == 200
    assert headers["anthropic-ratelimit-unified-status"] == "allowed_warning"
    assert headers["anthropic-ratelimit-unified-5h-utilization"] == "0.91"


def test_every_request_is_recorded(mock: MockServer) -> None:
    status, _, raw = post(mock, {"messages": []}, path="/v1/messages/count_tokens")
    assert (status, json.loads(raw)) == (200, {"input_tokens": 1000})
    assert post(mock, {}, path="/v1/other")[0] == 404
    assert [(r.method, r.path) for r in mock.requests] == [
        ("POST", "/v1/messages/count_tokens"),
        ("POST", "/v1/other"),
    ]
