"""One running attempt: its live files, its output read as it grows, and its record at the end.

Live files sit under `$FLEET_HOME/live/<task>/<n>/`, outside the store's tree; the record is
committed to `run_dir(task, n)` (see `supervisor/store/paths.py`) when the attempt ends (and
checkpointed while it runs).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coders.base import Coder, Event, EventKind, Parser, RateLimit, RunSpec, Usage
from supervisor.model import iso
from supervisor.run.process import Handle
from supervisor.store import paths

MAX_LINE = 1 << 20  # a longer line is cut (the raw output keeps it whole)


@dataclass
class LiveFiles:
    root: Path

    @property
    def stdout(self) -> Path:
        return self.root / "output.log"

    @property
    def stderr(self) -> Path:
        return self.root / "stderr.log"

    @property
    def rc(self) -> Path:
        return self.root / "rc"

    @property
    def result(self) -> Path:
        return self.root / "result.json"

    @property
    def knowledge(self) -> Path:
        return self.root / "knowledge.md"

    @property
    def log(self) -> Path:
        return self.root / "log.txt"

    @property
    def handle(self) -> Path:
        return self.root / "handle.json"

    @property
    def status(self) -> Path:
        return self.root / "status.json"  # the running attempt's newest figures


def live_dir(home: Path, task_id: str) -> Path:
    """Where the live files of a task's attempts are: `$FLEET_HOME/live/<task>/`."""
    return home / "live" / task_id


def live_files(home: Path, task_id: str, n: int) -> LiveFiles:
    return LiveFiles(live_dir(home, task_id) / str(n))


def waiting_path(home: Path) -> Path:
    """Why the running supervisor left ready tasks waiting, by task id (JSON)."""
    return home / "live" / "waiting.json"


run_dir = paths.run_dir  # where attempt n's record lives in the tree: see store/paths.py


@dataclass
class Attempt:
    """What the supervisor holds in memory for one running attempt."""

    task_id: str
    n: int
    coder: Coder
    parser: Parser
    files: LiveFiles
    started_at: float
    model: str = ""
    account: str = ""
    workdir: str = ""
    handle: Handle | None = None
    last_output_at: float = 0.0
    offset: int = 0  # bytes of stdout read so far
    partial: bytes = b""
    lines: int = 0
    status_lines: int = 0  # `lines` when the status file was last written (none before output)
    status_at: float = 0.0  # when it was
    events: int = 0
    stop: str = ""  # why the supervisor is stopping it ("" while it runs on)
    checkpoint_at: float = 0.0
    spec: RunSpec | None = None  # what it was started with (None for an adopted attempt)
    limit: RateLimit | None = None  # the newest utilization the agent reported for its account
    warned: set[str] = field(default_factory=set)  # budgets already warned about
    retry_text: str = ""  # the CLI's retry message, while retries are all it prints

    @property
    def usage(self) -> Usage:
        return self.parser.usage

    def read_output(self, now: float) -> int:
        """Feed the lines written since the last call to the parser; return how many."""
        try:
            with open(self.files.stdout, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return 0
        if not chunk:
            return 0
        self.offset += len(chunk)
        *complete, self.partial = (self.partial + chunk).split(b"\n")
        if len(self.partial) > MAX_LINE:
            complete.append(self.partial)
            self.partial = b""
        self._consume(complete, now)
        return len(complete)

    def flush(self, now: float) -> None:
        """Read what is left, including a last line without a newline."""
        self.read_output(now)
        if self.partial:
            last, self.partial = self.partial, b""
            self._consume([last], now)

    def _consume(self, raw_lines: list[bytes], now: float) -> None:
        rendered: list[str] = []
        progress = False  # a line other than a retry: the agent is not just reconnecting
        for raw in raw_lines:
            line = raw[:MAX_LINE].decode(errors="replace").rstrip("\r")
            events = self.parser.feed(line)
            retries = [e for e in events if e.kind == EventKind.RETRY]
            if retries and len(retries) == len(events):
                self.retry_text = retries[-1].text
            else:
                progress = True
            for event in events:
                self.events += 1
                if event.limit is not None and event.limit.utilization is not None:
                    self.limit = event.limit
                text = render(event)
                if text:
                    rendered.append(text)
        self.lines += len(raw_lines)
        if progress:  # retries alone do not count: a reconnect loop ends as a stall would
            self.last_output_at, self.retry_text = now, ""
        if rendered:
            stamp = time.strftime("%H:%M:%S", time.gmtime(now))
            with open(self.files.log, "a", encoding="utf-8") as fh:
                fh.writelines(f"{stamp} {text}\n" for text in rendered)

    def summary(self) -> dict[str, Any]:
        """The live view of this attempt, kept in the task's `run` record."""
        return {
            "attempt": self.n,
            "coder": self.coder.name,
            "model": self.model or self.usage.model,
            "account": self.account,
            "workdir": self.workdir,
            "started_at": iso(self.started_at),
            "last_output_at": iso(self.last_output_at) if self.last_output_at else "",
            "lines": self.lines,
            "usage": self.usage.to_dict(),
            "session_id": self.parser.session_id,
            "handle": self.handle.to_dict() if self.handle else None,
        }


def render(event: Event) -> str:
    """One event as a line for people; "" for events not worth a line."""
    kind = event.kind
    if kind == EventKind.TEXT:
        return event.text
    if kind == EventKind.SESSION:
        return f"[session] {event.session_id} {event.model}".rstrip()
    if kind == EventKind.TOOL_USE:
        shown = json.dumps(event.tool_input, ensure_ascii=False)[:300] if event.tool_input else ""
        return f"[tool] {event.tool} {shown}".rstrip()
    if kind == EventKind.TOOL_RESULT:
        mark = "error" if event.is_error else "ok"
        return f"[tool {mark}] {event.text[:300]}".rstrip()
    if kind == EventKind.RATE_LIMIT and event.limit is not None:
        lim = event.limit
        util = f" {lim.utilization:.0%}" if lim.utilization is not None else ""
        reset = f" resets {iso(lim.resets_at)}" if lim.resets_at else ""
        return f"[limit] {lim.status} {lim.kind} {lim.window}{util}{reset}".replace("  ", " ")
    if kind == EventKind.ERROR:
        return f"[error] {event.text}"
    if kind == EventKind.RETRY:
        return f"[retry] {event.text}"
    if kind == EventKind.RESULT:
        return f"[result{' error' if event.is_error else ''}] {event.text}"
    return ""


# -- the live files' reading and writing (one atomic JSON writer for the loop and the service) --


def read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def write_json(path: Path, data: object) -> None:
    """Write `data` as JSON to `path` atomically (a reader sees the old file or the new one),
    readable by the user only, as everything in the home."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(data))
    tmp.replace(path)


class Written:
    """A JSON file written only when what it holds changes (the loop writes it every tick)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last: object = None

    def write(self, data: object) -> None:
        if data != self.last:
            write_json(self.path, data)
            self.last = data.copy() if isinstance(data, dict) else data


def load_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def merge_line(home: Path) -> dict[str, str]:
    """Where each task queued for its merge stands, as the running supervisor last wrote it
    (`live/merges.json`; read by `fleet tasks` without loading the merge queue)."""
    data = load_json(home / "live" / "merges.json")
    return {str(k): str(v) for k, v in data.items()} if data else {}
