"""Coder adapters: the built-ins, and third-party ones from the `fleet.coders` entry points."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coders.base import Coder

# name -> "module:Class" of the built-ins; imported only when asked for.
BUILTINS: dict[str, str] = {
    "claude": "coders.claude:ClaudeCoder",
    "codex": "coders.codex.adapter:CodexCoder",
    "gemini": "coders.gemini:GeminiCoder",
    "opencode": "coders.opencode:OpencodeCoder",
    "agy": "coders.agy:AgyCoder",
    "shell": "coders.shell:ShellCoder",
}

ENTRY_POINT_GROUP = "fleet.coders"


def names() -> list[str]:
    """Every coder fleet knows: the built-ins, then the installed third-party ones."""
    from importlib.metadata import entry_points  # 50 ms: only when third parties are asked for

    third = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return list(BUILTINS) + [n for n in third if n not in BUILTINS]


def get(name: str) -> Coder:
    """The coder called `name`; KeyError when there is none."""
    from importlib.metadata import entry_points

    if name in BUILTINS:
        module, _, attr = BUILTINS[name].partition(":")
        coder: Coder = getattr(import_module(module), attr)()
        return coder
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            loaded = ep.load()
            third: Coder = loaded() if isinstance(loaded, type) else loaded
            return third
    raise KeyError(name)
