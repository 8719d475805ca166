"""The shared part of every mock model server: a threaded HTTP server on 127.0.0.1.

A mock is scripted: the first turn states a plan and writes `hello.txt` in the agent's working
directory with the CLI's own file-writing tool, the next writes the fleet result file, the last
answers. `mode` turns it into a failure case instead (429, usage limit, 401, 529, ...).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

WORKDIR_RE = re.compile(r"Working directory: (\S+)")
RESULT_RE = re.compile(r"Write your result as JSON to: (\S+)")
HELLO_NAME = "hello.txt"
HELLO_TEXT = "hello from the mock model\n"
PLAN_TEXT = "<plan>\n1. Write hello.txt\n2. Write the result file\n</plan>"
MODES = ("ok", "rate_limit", "usage_limit", "auth", "overloaded", "warn")


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


class MockServer:
    """Start with `with MockServer(Handler, script) as mock:`; `mock.url` is its base URL."""

    def __init__(self, handler: type[MockHandler], script: Script | None = None) -> None:
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


class MockHandler(BaseHTTPRequestHandler):
    mock: ClassVar[MockServer]
    protocol_version = "HTTP/1.1"

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
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def send_sse(
        self, events: list[tuple[str | None, Any]], headers: dict[str, str] | None = None
    ) -> None:
        """Events as `event:`/`data:` pairs (event None: data only), then close the stream."""
        chunks = []
        for name, payload in events:
            text = payload if isinstance(payload, str) else json.dumps(payload)
            chunks.append((f"event: {name}\n" if name else "") + f"data: {text}\n\n")
        data = "".join(chunks).encode()
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


def find_paths(text: str) -> tuple[str, str]:
    """The working directory and result file named in a fleet prompt ("" when absent)."""
    workdir = WORKDIR_RE.search(text)
    result = RESULT_RE.search(text)
    return (workdir.group(1) if workdir else "", result.group(1) if result else "")


def result_json() -> str:
    return json.dumps({"status": "done", "summary": "Wrote hello.txt.", "open_questions": []})
