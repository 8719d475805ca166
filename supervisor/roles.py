"""Roles: a handbook (markdown the agent gets in its knowledge) plus the settings of its tasks.

A role lives in the store as `roles/NAME.md`: a TOML settings header between `+++` lines, then
the handbook. The header takes the keys of `config.RoleSettings` (coder, model, account, accounts,
max_concurrent, budgets, deliver, tools, requires). A `[roles.NAME]` table in `config.toml`, the
older way to configure a role, is still read: the file's keys win, the table fills in the rest
(`merged`). Templates ship in the package (`supervisor/templates/roles/`).

Pure: parsing, rendering and merging; reading and writing the store is `supervisor.queue.roles`.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import tomli_w
from pydantic import ValidationError

from supervisor.config import Config, RoleSettings, explain
from supervisor.errors import BadInput

ROLES_DIR = "roles"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,39}\Z")
FENCE = "+++"
TEMPLATES = (
    "developer",
    "reviewer",
    "tester",
    "release-manager",
    "product-owner",
    "triage",
    "docs-writer",
    "security-reviewer",
    "planner",
)
# Keys `fleet roles set` takes: the header's, and `handbook` (the body).
SETTABLE = tuple(k for k in RoleSettings.model_fields if k != "handbook")


def role_path(name: str) -> str:
    return f"{ROLES_DIR}/{name}.md"


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise BadInput(
            f"{name!r} is not a valid role name",
            hint="lowercase letters, digits, '-' and '_', starting with a letter (e.g. reviewer)",
        )
    return name


@dataclass
class Role:
    name: str
    settings: RoleSettings = field(default_factory=RoleSettings)
    handbook: str = ""
    source: str = "store"  # "store" (roles/NAME.md), "config" ([roles.NAME]) or "both"
    header: dict[str, Any] = field(default_factory=dict)  # the keys the file sets

    def to_dict(self) -> dict[str, Any]:
        data = self.settings.model_dump(exclude={"handbook"})
        return {"name": self.name, "source": self.source, **data, "handbook": self.handbook}


def parse(name: str, text: str) -> Role:
    """`roles/NAME.md` -> Role; BadInput naming the file and line of what is wrong."""
    where = role_path(name)
    lines = text.splitlines()
    header: dict[str, Any] = {}
    body = text
    if lines and lines[0].strip() == FENCE:
        end = next((i for i in range(1, len(lines)) if lines[i].strip() == FENCE), None)
        if end is None:
            raise BadInput(
                f"{where} line 1: the settings header opened with '+++' is never closed",
                hint="end the header with a line holding only '+++'",
            )
        head = "\n".join(lines[1:end])
        try:
            header = tomllib.loads(head)
        except tomllib.TOMLDecodeError as exc:
            raise BadInput(
                f"{where} line {_toml_line(exc, head) + 1}: {_toml_message(exc)}",
                hint='the header is TOML, e.g. coder = "claude"',
            ) from None
        body = "\n".join(lines[end + 1 :])
        if "handbook" in header:
            line = _key_line(lines[1:end], "handbook") + 1
            raise BadInput(
                f"{where} line {line}: the handbook is the text after the header, not a key",
                hint="move the text below the closing '+++'",
            )
    try:
        settings = RoleSettings.model_validate(header)
    except ValidationError as exc:
        key = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else ""
        line = _key_line(lines[1:], key) + 1 if key else 1
        raise BadInput(
            f"{where} line {line}: {explain(exc)}",
            hint=f"valid keys: {', '.join(SETTABLE)}",
        ) from None
    handbook = body.strip("\n")
    settings = settings.model_copy(update={"handbook": handbook})
    return Role(name, settings, handbook, "store", header)


def render(role: Role) -> str:
    """The file text of a role: its header (only the keys it sets), then its handbook."""
    head = tomli_w.dumps(role.header).strip()
    return (
        f"{FENCE}\n{head}\n{FENCE}\n\n{role.handbook.strip()}\n"
        if head
        else (f"{FENCE}\n{FENCE}\n\n{role.handbook.strip()}\n")
    )


def with_values(role: Role, values: dict[str, Any]) -> Role:
    """The role with `values` set (`handbook` replaces the text); BadInput on a bad key or value."""
    header = dict(role.header)
    handbook = role.handbook
    for key, value in values.items():
        if key == "handbook":
            handbook = str(value)
        elif key not in SETTABLE and key.split(".")[0] != "tools":
            raise BadInput(
                f"roles have no setting {key!r}", hint=f"valid keys: {', '.join(SETTABLE)}"
            )
        elif key.startswith("tools."):
            tools = dict(header.get("tools") or {})
            tools[key.split(".", 1)[1]] = value
            header["tools"] = tools
        else:
            header[key] = value
    text = render(Role(role.name, role.settings, handbook, role.source, header))
    return parse(role.name, text)


def template(name: str) -> str:
    """The text of a shipped template; BadInput when there is none of that name."""
    if name not in TEMPLATES:
        raise BadInput(
            f"no role template named {name!r}", hint=f"templates: {', '.join(TEMPLATES)}"
        )
    return (resources.files("supervisor") / "templates" / "roles" / f"{name}.md").read_text()


def merged(config: Config, stored: dict[str, Role]) -> dict[str, Role]:
    """Every role: the store's files, and the `[roles.NAME]` tables of the configuration.

    Where both name a role, the file's header keys win and the table fills in the rest.
    """
    out: dict[str, Role] = {}
    for name, settings in config.roles.items():
        out[name] = Role(name, settings, settings.handbook, "config", {})
    for name, role in stored.items():
        table = config.roles.get(name)
        if table is None:
            out[name] = role
            continue
        data = table.model_dump(exclude_unset=True)
        data.update(role.header)
        data["handbook"] = role.handbook or table.handbook
        settings = RoleSettings.model_validate(data)
        out[name] = Role(name, settings, settings.handbook, "both", role.header)
    return out


def effective_config(config: Config, stored: dict[str, Role]) -> Config:
    """The configuration with the store's roles in its `roles` table (what dispatch, launch and
    budgets read)."""
    if not stored:
        return config
    roles = {name: role.settings for name, role in merged(config, stored).items()}
    return config.model_copy(update={"roles": roles})


def check_usable(name: str, roles: dict[str, Role], known_coders: list[str]) -> Role:
    """The role a new task names; BadInput for an unknown role or one whose coder is missing."""
    role = roles.get(name)
    if role is None:
        known = ", ".join(sorted(roles)) or "none"
        raise BadInput(
            f"unknown role {name!r} (roles: {known})",
            hint=f"add it with `fleet roles add {name} --from developer`",
        )
    coder = role.settings.coder
    if coder and coder not in known_coders:
        raise BadInput(
            f"role {name!r} uses coder {coder!r}, which is not installed",
            hint=f"fleet roles set {name} coder=<one of {', '.join(known_coders)}>",
        )
    return role


def _toml_line(exc: tomllib.TOMLDecodeError, head: str) -> int:
    """The header line of a TOML error (its last line when the error is at the end)."""
    lineno = getattr(exc, "lineno", None)
    if isinstance(lineno, int):
        return lineno
    match = re.search(r"line (\d+)", str(exc))
    return int(match.group(1)) if match else max(1, len(head.splitlines()))


def _toml_message(exc: tomllib.TOMLDecodeError) -> str:
    msg = getattr(exc, "msg", None) or str(exc)
    return re.sub(r" \(at line \d+, column \d+\)", "", str(msg))


def _key_line(lines: list[str], key: str) -> int:
    """The 1-based line of `lines` that sets `key` (1 when none does)."""
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*[=.]")
    for number, line in enumerate(lines, 1):
        if pattern.match(line):
            return number
    return 1
