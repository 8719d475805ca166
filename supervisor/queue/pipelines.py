"""Presets of roles and rules (`fleet init --pipeline NAME`), and replacing config.toml as a whole
(`fleet config load FILE`, the way to write `[[on]]` rules). One commit each.

A commit that installs rules also marks where reactions start (`state/reactions.json`), so the
rules react to what happens from then on, never to the history before them.
"""

from __future__ import annotations

import tomllib
from typing import Any

import tomli_w

from supervisor import config as config_mod
from supervisor import roles
from supervisor.errors import BadInput
from supervisor.handoffs import start_reactions
from supervisor.store.store import Change, Snapshot, Store

PIPELINES = ("review",)

REVIEW_RULES: list[dict[str, Any]] = [
    {
        "event": "task.closed",
        "where": {"role": "developer"},
        "create": {
            "role": "reviewer",
            "title": "Review {task.id}: {task.title}",
            "description": "Review the change made for {task.id} (its diff and its author's "
            "summary are below) and give your verdict.",
            "knowledge": ["diff", "summary"],
        },
    },
    {"event": "review.verdict", "where": {"data.verdict": "changes_requested"}, "reopen": "origin"},
    {"event": "review.verdict", "where": {"data.verdict": "approved"}, "approve": "origin"},
]


def install(store: Store, name: str, actor: str | None = None) -> list[str]:
    """Install pipeline `name`; what it did, one line each."""
    if name not in PIPELINES:
        raise BadInput(f"no pipeline named {name!r}", hint=f"pipelines: {', '.join(PIPELINES)}")

    def build(snap: Snapshot) -> tuple[Change | None, list[str]]:
        text = (snap.read(config_mod.CONFIG_PATH) or b"").decode()
        data = tomllib.loads(text) if text.strip() else {}
        if data.get("on"):
            raise BadInput(
                "config.toml already has [[on]] rules; the pipeline would mix with them",
                hint="see them with `fleet config show`; edit and `fleet config load FILE`",
            )
        did: list[str] = []
        files: dict[str, bytes | None] = {}
        for role_name in ("developer", "reviewer"):
            path = roles.role_path(role_name)
            if snap.read(path) is not None:
                did.append(f"role {role_name}: kept the one in the store")
                continue
            role = roles.parse(role_name, roles.template(role_name))
            if role_name == "developer":
                role = roles.with_values(
                    role, {"deliver": "merge", "requires": ["role:reviewer", "human"]}
                )
            files[path] = roles.render(role).encode()
            did.append(f"role {role_name}: added from its template")
        data["on"] = REVIEW_RULES
        new_text = tomli_w.dumps(data)
        config_mod.load(new_text)
        files[config_mod.CONFIG_PATH] = new_text.encode()
        did.append(f"config.toml: {len(REVIEW_RULES)} [[on]] rules (close -> review -> verdict)")
        _start_reactions(snap, files)
        change = Change(f"pipeline {name}: installed", "config_changed", files=files)
        return change, did

    return store.mutate(build, actor)


def load_config(store: Store, text: str, actor: str | None = None) -> config_mod.Config:
    """Replace config.toml with `text`, if it is valid (a bad rule is refused naming its line)."""
    cfg = config_mod.load(text)
    config_mod.check_coders(cfg)

    def build(snap: Snapshot) -> tuple[Change | None, config_mod.Config]:
        old = (snap.read(config_mod.CONFIG_PATH) or b"").decode()
        if old == text:
            return None, cfg
        files: dict[str, bytes | None] = {config_mod.CONFIG_PATH: text.encode()}
        if cfg.on:
            _start_reactions(snap, files)
        return Change("config: loaded from a file", "config_changed", files=files), cfg

    return store.mutate(build, actor)


def _start_reactions(snap: Snapshot, files: dict[str, bytes | None]) -> None:
    files.update(start_reactions(snap))
