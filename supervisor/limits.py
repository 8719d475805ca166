"""How big and what shape stored text may be, checked where it comes in (`bd create`,
`bd update`, `bd import`) so that no task file is too large to read or breaks a table row. Pure."""

from __future__ import annotations

import json
from typing import Any

from supervisor.errors import BadInput

TITLE_MAX = 500  # characters
TEXT_MAX = 256 * 1024  # characters of a description, design, acceptance criteria, notes, command
TEXT_FIELDS = ("description", "design", "acceptance_criteria", "notes", "command")
LINE_MAX = 4 * 1024 * 1024  # bytes of one line of a beads JSONL file
FILE_MAX = 256 * 1024 * 1024  # bytes of a beads JSONL file
DEPTH_MAX = 32  # nesting of objects and lists in one record
# How the cache holds a config.toml that is not UTF-8 (no TOML text starts with NUL).
NOT_UTF8 = "\x00not UTF-8: "
TITLE_CONTROLS = frozenset(chr(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)])


def title_problem(title: str) -> str:
    """Why `title` cannot be a task's title, or ""."""
    if len(title) > TITLE_MAX:
        return f"the title is longer than {TITLE_MAX} characters"
    bad = next((ch for ch in title if ch in TITLE_CONTROLS), None)
    if bad is not None:
        what = "a newline" if bad in "\r\n" else f"a control character ({bad!r})"
        return f"the title holds {what}; a title is one line"
    return ""


def check_title(title: str) -> None:
    why = title_problem(title)
    if why:
        raise BadInput(why, hint="keep the title to one line; put details in -d/--description")


def text_problem(fields: dict[str, Any]) -> str:
    """Why one of the text fields is too long, or ""."""
    for name in TEXT_FIELDS:
        value = fields.get(name)
        if isinstance(value, str) and len(value) > TEXT_MAX:
            return f"{name} is longer than {TEXT_MAX} characters ({len(value)})"
    return ""


def check_text(fields: dict[str, Any]) -> None:
    why = text_problem(fields)
    if why:
        raise BadInput(why, hint="keep long material in a file the task names")


def shape_problem(record: Any) -> str:
    """Why a parsed JSON record cannot be stored: nested too deeply, or a string that is not
    text (a lone surrogate, which `\\ud800` in JSON makes and no file can hold)."""
    stack: list[tuple[Any, int]] = [(record, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > DEPTH_MAX:
                return f"it is nested more than {DEPTH_MAX} levels deep"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and (why := _surrogate(key)):
                    return why
                stack.append((item, depth + 1))
        elif isinstance(value, str) and (why := _surrogate(value)):
            return why
    return ""


def _surrogate(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"a string holds a lone surrogate ({json.dumps(text[exc.start])}), not text"
    return ""


def decode_config(data: bytes) -> str:
    """config.toml's text, or NOT_UTF8 and where it is not UTF-8 (then every reader says so)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return f"{NOT_UTF8}byte {exc.start} (line {line}) is {data[exc.start : exc.start + 1]!r}"
