"""`fleet bd create`: its options as data, a click-free parse of plain arguments, and its body.

`bd create` is the command scripts call in loops, and importing click costs it about 40 ms of its
80 ms budget. So its options are declared here once: `cli_bd` builds the click command from them,
and `supervisor.cli.entry` parses plain arguments itself. Whatever `parse` is not sure of (help, an
unknown option, a value that does not convert) goes to click, so usage errors and help still come
from one place. This module never imports click.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Option:
    """One option of `bd create`, declared once for click and for `parse`."""

    def __init__(
        self,
        flags: tuple[str, ...],
        dest: str,
        help: str,
        kind: str = "text",  # text, int, float, flag (no value) or many (repeatable text)
        default: Any = "",
        low: int | None = None,  # bounds of an int
        high: int | None = None,
    ) -> None:
        self.flags = flags
        self.dest = dest
        self.help = help
        self.kind = kind
        self.default = default
        self.low = low
        self.high = high


OPTIONS = (
    Option(("--title",), "title", "The title (instead of the TITLE argument).", default=None),
    Option(("-d", "--description"), "description", "What to do, in detail."),
    Option(("-p", "--priority"), "priority", "0 critical .. 4 backlog.", "int", 2, 0, 4),
    Option(("-t", "--type"), "issue_type", "task, bug, feature, epic, chore, ...", default="task"),
    Option(("-l", "--label"), "labels", "A label (repeatable).", "many", ()),
    Option(("--deps",), "deps", "Blocking dependencies: ID,ID or type:ID pairs."),
    Option(("--parent",), "parent", "Parent task (a parent-child dependency)."),
    Option(("--acceptance",), "acceptance", "Acceptance criteria."),
    Option(("--design",), "design", "Design notes."),
    Option(("--notes",), "notes", "Notes."),
    Option(("--coder",), "coder", "The coder that runs it (claude, codex, shell, ...)."),
    Option(("--model",), "model", "The model the coder uses."),
    Option(("--role",), "role", "The role whose handbook the agent gets."),
    Option(("--account",), "account", "Pin the task to this account."),
    Option(("--requires",), "requires", "Approvals before delivery: human,role:NAME."),
    Option(("--command",), "command", "The shell coder's command."),
    Option(("--cwd",), "cwd", "Working directory (default: the current one)."),
    Option(
        ("--isolation",),
        "isolation",
        "worktree (its own git worktree) or none (in --cwd itself); default: the configuration's.",
    ),
    Option(("--max-seconds",), "max_seconds", "Wall-clock limit of one attempt.", "float", None),
    Option(("--max-tokens",), "max_tokens", "Token budget of the task.", "int", None, 1),
    Option(("--max-cost",), "max_cost", "Cost budget of the task, in USD.", "float", None),
    Option(("--max-attempts",), "max_attempts", "Tries before it is blocked.", "int", None, 1, 100),
    Option(
        ("--after-children",),
        "after_children",
        "Once its subtasks close: close (default) or integrate (run it once more).",
    ),
    Option(
        ("--idempotency-key",),
        "idempotency_key",
        "Retry-safe: a create with a key used before prints that task's id, makes none.",
    ),
    Option(("--deliver",), "deliver", "Where its work goes: merge, branch or none."),
    Option(("--check",), "check", "The command its merge must pass (e.g. 'make test')."),
    Option(("--json",), "as_json", "Print the whole record as JSON.", "flag", False),
)
_BY_FLAG = {flag: option for option in OPTIONS for flag in option.flags}
_UNSURE = object()  # a value `parse` leaves to click


def parse(args: list[str]) -> dict[str, Any] | None:
    """The parameters click would pass the command for `args`, or None to let click parse them."""
    params: dict[str, Any] = {option.dest: option.default for option in OPTIONS}
    titles: list[str] = []
    rest = iter(args)
    for arg in rest:
        if arg == "--":
            titles.extend(rest)
        elif arg == "-" or not arg.startswith("-"):
            titles.append(arg)
        else:
            name, value = _split(arg)
            option = _BY_FLAG.get(name)
            if option is None or (option.kind == "flag" and value is not None):
                return None
            if option.kind == "flag":
                params[option.dest] = True
                continue
            if value is None:
                value = next(rest, None)
                if value is None or (value.startswith("-") and value != "-"):
                    return None
            converted = _convert(option, value)
            if converted is _UNSURE:
                return None
            params[option.dest] = (
                (*params[option.dest], converted) if option.kind == "many" else converted
            )
    if len(titles) > 1:
        return None
    params["title_arg"] = titles[0] if titles else None
    return params


def _split(arg: str) -> tuple[str, str | None]:
    """'--name=value' -> ('--name', 'value'); '-pVALUE' -> ('-p', 'VALUE'), as click reads them."""
    if arg.startswith("--"):
        name, eq, value = arg.partition("=")
        return name, value if eq else None
    return arg[:2], arg[2:] or None


def _convert(option: Option, value: str) -> Any:
    if option.kind == "float":
        try:
            return float(value)
        except ValueError:
            return _UNSURE
    if option.kind != "int":
        return value
    try:
        number = int(value)
    except ValueError:
        return _UNSURE
    too_low = option.low is not None and number < option.low
    too_high = option.high is not None and number > option.high
    return _UNSURE if too_low or too_high else number


def create(home: Path | None, params: dict[str, Any]) -> str:
    """Run `bd create` with click's parameters; the text to print."""
    from supervisor.errors import BadInput
    from supervisor.queue.mutations import NewTask
    from supervisor.queue.mutations import create as create_task
    from supervisor.store.store import Store

    fields = dict(params)
    title_arg, title = fields.pop("title_arg"), fields.pop("title")
    deps, labels, as_json = fields.pop("deps"), fields.pop("labels"), fields.pop("as_json")
    if title_arg and title and title_arg != title:
        raise BadInput("two titles given", hint="pass the title once, as TITLE or --title")
    fields["acceptance_criteria"] = fields.pop("acceptance")
    new = NewTask(
        title=title or title_arg or "",
        labels=list(labels),
        deps=deps.split(",") if deps else [],
        **fields,
    )
    from supervisor.cli import checks

    checks.known_coder(new.coder)
    store = Store.open(home)
    try:
        checks.resolve_links(store, new)
        task = create_task(store, new)
        checks.warn_after_create(store, task)
    finally:
        store.close()
    from supervisor.store.maintenance import start_if_due

    start_if_due(store)  # packing, when due, goes on in the background
    if as_json:
        from supervisor.cli.output import json_text

        return json_text(task.to_dict())
    return task.id
