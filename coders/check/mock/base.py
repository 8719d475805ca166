"""The shared part of every mock model server: a threaded HTTP server on 127.0.0.1, the script
every mock follows, and the request and answer plumbing.

A mock is scripted (`script_step`): the first turn states a plan and writes `hello.txt` in the
agent's working directory with the CLI's own file-writing tool, the next writes the fleet result
file, the last answers. Each mock reads how far the agent got from the conversation it is sent and
words the step in its API's shapes. `mode` turns it into a failure case instead (429, usage limit,
401, 529, ...); `warn` answers normally with the API's early-warning rate-limit headers.
`extra["forget_result"]` makes the agent end without the result file, and write it only when a
later message (a nudge that names the result file but no working directory) asks for it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

WORKDIR_RE = re.compile(r"Working directory: (\S+)")
RESULT_RE = re.compile(r"Write your result as JSON to: (\S+)")
TASK_RE = re.compile(r"^# Task (\S+): (.*)$", re.M)
HELLO_NAME = "hello.txt"
HELLO_TEXT = "hello from the mock model\n"
PLAN_TEXT = "<plan>\n1. Write hello.txt\n2. Write the result file\n</plan>"
FINAL_TEXT = "Done. I wrote hello.txt and the result file."
MODES = ("ok", "rate_limit", "usage_limit", "auth", "overloaded", "warn")
ANSWERING = ("ok", "warn")  # the modes that answer rather than refuse
PATH_END = "\"'`.,;:)]}"  # punctuation a prompt may put right after a path


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Script:
    """What the mock answers and how many tokens each answer reports."""

    mode: str = "ok"
    input_tokens: int = 1000
    output_tokens: int = 40
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    resets_at: int = 0  # epoch seconds for usage-limit modes (0: an hour from now)
    utilization: float = 0.95  # for "warn"
    extra: dict[str, Any] = field(default_factory=dict)
    # (regular expression, result object): the result written for a task whose prompt (its
    # knowledge, "# Task ID: TITLE" first) matches; the first that matches wins, else
    # `result_json()`.
    results: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def result_for(self, prompt: str) -> str:
        for pattern, result in self.results:
            if re.search(pattern, prompt):
                return json.dumps(result)
        return result_json()

    def reset_time(self) -> int:
        """`resets_at`, or an hour from now when it is unset."""
        return self.resets_at or int(time.time()) + 3600


@dataclass
class Step:
    """One turn of the script: text to say, then at most one file to write with a tool."""

    text: str = ""
    path: str = ""  # "" = no file: the turn ends the run
    content: str = ""
    write_with: Any = None  # "shell": through the command tool rather than the file tool


def script_step(script: Script, done: int, workdir: str, result: str, prompt: str = "") -> Step:
    """The turn after `done` tool results, for the paths the prompt named (and the prompt)."""
    if done == 0:
        hello = f"{workdir}/{HELLO_NAME}" if workdir else HELLO_NAME
        return Step(PLAN_TEXT, hello, HELLO_TEXT, script.extra.get("write_with"))
    if done == 1 and result:
        if script.extra.get("forget_result") and workdir:
            return Step(FINAL_TEXT)  # ends cleanly without the result file, until asked for it
        chosen = script.extra.get("result_for")  # a test's own result, by result file
        text = chosen(result) if callable(chosen) else None
        return Step("", result, (text or script.result_for(prompt)) + "\n")
    return Step(FINAL_TEXT)


class MockServer:
    """Start with `with MockServer(Handler, script) as mock:`; `mock.url` is its base URL."""

    def __init__(self, handler: type[MockHandler], script: Script | None = None) -> None:
        self.handler = handler
        self.script = script or Script()
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        server_self = self

        class Bound(handler):  # type: ignore[valid-type,misc]
            mock: ClassVar[MockServer] = server_self

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Bound)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> MockServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def expected_usage(self) -> dict[str, int]:
        """The tokens the answers told the agent it used, in fleet's terms (`Usage` fields)."""
        return self.handler.expected_usage(self)


class MockHandler(BaseHTTPRequestHandler):
    mock: ClassVar[MockServer]
    protocol_version = "HTTP/1.1"

    @staticmethod
    def is_counted(request: Recorded) -> bool:
        """Whether the answer to `request` reported usage the agent counts."""
        return request.method == "POST"

    @staticmethod
    def usage_per_answer(script: Script) -> dict[str, int]:
        """What one answer reports, in fleet's terms."""
        return {
            "input_tokens": script.input_tokens,
            "output_tokens": script.output_tokens,
            "cache_read_tokens": script.cache_read_tokens,
            "cache_write_tokens": script.cache_write_tokens,
        }

    @classmethod
    def expected_usage(cls, mock: MockServer) -> dict[str, int]:
        """The usage of every counted answer, summed."""
        answers = sum(1 for request in mock.requests if cls.is_counted(request))
        return {k: answers * v for k, v in cls.usage_per_answer(mock.script).items()}

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet

    def read_body(self) -> Any:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        with self.mock.lock:
            self.mock.requests.append(
                Recorded(self.command, self.path, dict(self.headers.items()), body)
            )
        return body

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self.send_body(status, "application/json", json.dumps(payload).encode(), headers or {})

    def send_sse(
        self, events: list[tuple[str | None, Any]], headers: dict[str, str] | None = None
    ) -> None:
        """Events as `event:`/`data:` pairs (event None: data only), then close the stream."""
        chunks = []
        for name, payload in events:
            text = payload if isinstance(payload, str) else json.dumps(payload)
            chunks.append((f"event: {name}\n" if name else "") + f"data: {text}\n\n")
        data = "".join(chunks).encode()
        headers = {"cache-control": "no-cache", **(headers or {})}
        self.send_body(200, "text/event-stream", data, headers)

    def send_body(self, status: int, kind: str, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


def texts(value: Any) -> Iterable[str]:
    """Every string under a message's content, whatever its shape."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from texts(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from texts(item)


def find_paths(messages: Iterable[Any]) -> tuple[str, str]:
    """The working directory and result file named in the first of `messages` (any shape) that
    names either, as a fleet prompt does ("" when absent)."""
    for message in messages:
        for text in texts(message):
            workdir, result = WORKDIR_RE.search(text), RESULT_RE.search(text)
            if workdir or result:
                return (
                    workdir.group(1).rstrip(PATH_END) if workdir else "",
                    result.group(1).rstrip(PATH_END) if result else "",
                )
    return "", ""


def find_prompt(messages: Iterable[Any]) -> str:
    """The text of the first of `messages` that holds a fleet task ("# Task ID: TITLE")."""
    for message in messages:
        for text in texts(message):
            if TASK_RE.search(text):
                return text
    return ""


def result_json() -> str:
    return json.dumps({"status": "done", "summary": "Wrote hello.txt.", "open_questions": []})
