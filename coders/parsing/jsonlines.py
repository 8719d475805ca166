"""Reading a CLI that prints one JSON object a line: the parsers' common part, and the helpers
that take values out of decoded JSON without trusting its shape."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import replace
from typing import Any

from coders.base import Event, EventKind, Usage, Verdict
from coders.parsing.plan import PlanTracker


class JsonLinesParser(ABC):
    """Decodes each line and hands the objects to `line`; anything else is kept as `OTHER`.

    Subclasses feed the text and tool calls they see to `self.tracker`; `plan` follows it.
    """

    def __init__(self, model: str = "") -> None:
        self.usage = Usage(model=model)
        self.session_id = ""
        self.plan = ""
        self.tracker = PlanTracker()

    def feed(self, line: str) -> list[Event]:
        try:
            data = json.loads(line)
        except ValueError:
            return [Event(EventKind.OTHER, text=line)]
        if not isinstance(data, dict):
            return [Event(EventKind.OTHER, text=line)]
        events = self.line(data)
        self.plan = self.tracker.plan
        return events

    @abstractmethod
    def line(self, data: dict[str, Any]) -> list[Event]:
        """The events of one decoded line."""

    @abstractmethod
    def finish(self, exit_code: int) -> Verdict: ...

    def usage_event(self) -> Event:
        """A `USAGE` event with a copy of the running total."""
        return Event(EventKind.USAGE, usage=replace(self.usage))


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def count(value: Any) -> int:
    """A token count: a JSON number, else 0."""
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def number(value: Any) -> float | None:
    """A JSON number as a float, else None."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
