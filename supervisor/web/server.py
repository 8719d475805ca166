"""`fleet dashboard`: a local web page of the fleet, served by the standard library's
ThreadingHTTPServer from assets shipped in the package (no build step, nothing fetched).

The page polls small JSON endpoints (`/api/state` every second, the rest less often), so it
updates without reloading and works with or without a supervisor. Only reads: nothing here
writes to the store.

Access: bound to 127.0.0.1 by default, where only requests naming a loopback host are answered
(a page elsewhere cannot reach it through DNS rebinding). Bound to any other address, every
request must carry the random token printed in the URL (`?token=`), compared in constant time.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from supervisor.errors import BadInput, FleetError
from supervisor.model import check_id
from supervisor.store.store import Store
from supervisor.web import data

LOOPBACK = ("127.0.0.1", "localhost", "::1")
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}


class PortBusy(FleetError):
    """The address asked for cannot be bound (exit 1: the host lacks it)."""


class Dashboard:
    """The server and what its handlers share: the home, the token, the usage ledger."""

    def __init__(self, home: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.home = home
        self.host = host
        self.token = "" if host in LOOPBACK else secrets.token_urlsafe(18)
        self._ledger_lock = threading.Lock()
        self.ledger = data.Ledger()
        try:
            self.httpd = ThreadingHTTPServer((host, port), _handler(self))
        except OSError as exc:
            raise PortBusy(
                f"cannot serve on {host}:{port}: {exc.strerror or exc}",
                hint="choose another port with --port, or --port 0 for any free one",
            ) from None
        self.httpd.daemon_threads = True

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = f"/?token={self.token}" if self.token else "/"
        return f"http://{host}:{self.port}{query}"

    def serve(self) -> None:
        try:
            self.httpd.serve_forever(poll_interval=0.2)
        finally:
            self.httpd.server_close()

    def stop(self) -> None:
        self.httpd.shutdown()

    # -- what each endpoint answers ----------------------------------------------------------

    def answer(self, path: str, query: dict[str, str]) -> Any:
        """The JSON for one request, read from a store opened for it (each request runs in a
        thread of its own, and a store's SQLite connection belongs to one thread)."""
        if not path.startswith("/api/"):
            raise LookupError(path)
        store = Store.open(self.home)
        try:
            return self._answer(store, path, query)
        finally:
            store.close()

    def _answer(self, store: Store, path: str, query: dict[str, str]) -> Any:
        if path == "/api/state":
            return data.state(store)
        if path == "/api/graph":
            task_id = query.get("id", "")
            return data.graph(store, check_id(task_id) if task_id else "")
        if path == "/api/log":
            try:
                offset = int(query.get("offset", "-1"))
            except ValueError:
                raise BadInput("offset must be a number", hint="offset=0") from None
            return data.log_tail(store, check_id(query.get("id", "")), offset)
        if path == "/api/usage":
            with self._ledger_lock:
                tasks = self.ledger.load(store)
            return {"usage": data.usage(tasks), "budgets": data.budgets(store, tasks)}
        if path == "/api/merge":
            return {"merge_queue": data.merge_queue(store), "gates": data.gates(store)}
        raise LookupError(path)


def _handler(board: Dashboard) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "fleet-dashboard"

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            if not self._allowed(query):
                self._send(403, b"forbidden: this dashboard needs its token\n", "text/plain")
                return
            if parts.path in ASSETS:
                name, kind = ASSETS[parts.path]
                body = resources.files("supervisor.web").joinpath("assets", name).read_bytes()
                self._send(200, body, kind)
                return
            try:
                answer = board.answer(parts.path, query)
            except LookupError:
                self._json(404, {"error": f"no such page: {parts.path}"})
            except FleetError as exc:
                self._json(400 if exc.exit_code == 2 else 500, {"error": exc.message})
            else:
                self._json(200, answer)

        def _allowed(self, query: dict[str, str]) -> bool:
            if board.token:
                return hmac.compare_digest(query.get("token", ""), board.token)
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
            return host in LOOPBACK

        def _json(self, code: int, payload: Any) -> None:
            body = json.dumps(payload, default=str).encode()
            self._send(code, body, "application/json")

        def _send(self, code: int, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)  # the page went away

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: the terminal shows the URL, not every poll

    return Handler
