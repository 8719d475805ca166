"""The plan an agent states, from what it prints, in order of preference.

1. a `<plan>...</plan>` block anywhere in its text (fleet asks for one);
2. else the text it wrote before its first tool call;
3. else the first todo list it gave its todo tool (Claude's TodoWrite, opencode's todowrite).
"""

from __future__ import annotations

from typing import Any

from coders.base import first_plan_text

BLOCK, FIRST_TEXT, TODOS, NONE = 3, 2, 1, 0


class PlanTracker:
    def __init__(self) -> None:
        self.plan = ""
        self._rank = NONE
        self._seen_tool = False
        self._before_tool: list[str] = []

    def text(self, text: str) -> None:
        block = first_plan_text(text, seen_tool=True)
        if block:
            if self._rank < BLOCK:
                self.plan, self._rank = block, BLOCK
            return
        if self._seen_tool or self._rank > FIRST_TEXT or not text.strip():
            return
        self._before_tool.append(text.strip())
        self.plan, self._rank = "\n\n".join(self._before_tool), FIRST_TEXT

    def tool(self, tool_input: dict[str, Any] | None = None, is_todo: bool = False) -> None:
        self._seen_tool = True
        if not is_todo or self._rank >= TODOS:
            return
        todos = (tool_input or {}).get("todos")
        items = [t.get("content", "") for t in todos or [] if isinstance(t, dict)]
        lines = [f"- {item}" for item in items if item]
        if lines:
            self.plan, self._rank = "\n".join(lines), TODOS
