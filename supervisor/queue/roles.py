"""Roles as the store holds them (`roles/NAME.md`): read them, add one, change one. One commit each.

The file format and the rules are `supervisor.roles`; this module is where they meet the store.
"""

from __future__ import annotations

from typing import Any

from supervisor import config as config_mod
from supervisor import roles
from supervisor.errors import BadInput, NotFound
from supervisor.store.store import Change, Snapshot, Store


def stored(store: Store, commit: str | None = None) -> dict[str, roles.Role]:
    """The roles the store's files define, as of `commit` (default: the newest).

    Read from the trees in-process and remembered by the `roles/` tree: the supervisor asks at
    every new commit, and roles rarely change.
    """
    commit = commit if commit is not None else store.cache.sync()
    if commit is None:
        return {}
    trees = store.git.trees
    entry = trees.entries(trees.commit_tree(commit)).get(roles.ROLES_DIR)
    if entry is None:
        return {}
    if entry[1] in _PARSED:
        return dict(_PARSED[entry[1]])
    names = sorted(n[:-3] for n in trees.entries(entry[1]) if n.endswith(".md"))
    found: dict[str, roles.Role] = {}
    blobs = store.git.cat_batch([f"{commit}:{roles.role_path(n)}" for n in names])
    for name, (_, data) in zip(names, blobs, strict=True):
        if data is not None:
            found[name] = roles.parse(name, data.decode("utf-8", errors="replace"))
    if len(_PARSED) > 64:
        _PARSED.clear()
    _PARSED[entry[1]] = found
    return dict(found)


_PARSED: dict[str, dict[str, roles.Role]] = {}  # roles/ tree sha -> its roles


def all_roles(store: Store) -> dict[str, roles.Role]:
    """Every role: the store's files merged with the configuration's `[roles.NAME]` tables."""
    commit = store.cache.sync()
    config = config_mod.load(store.cache.config_text())
    return roles.merged(config, stored(store, commit))


def effective_config(store: Store) -> config_mod.Config:
    """The configuration with the store's roles folded into its `roles` table."""
    commit = store.cache.sync()
    config = config_mod.load(store.cache.config_text())
    return roles.effective_config(config, stored(store, commit))


def get(store: Store, name: str) -> roles.Role:
    roles.check_name(name)
    found = all_roles(store).get(name)
    if found is None:
        raise NotFound(
            f"role {name} does not exist",
            hint=f"see the roles with `fleet roles`, or add it: `fleet roles add {name}`",
        )
    return found


def add(store: Store, name: str, source: str = "", actor: str | None = None) -> roles.Role:
    """Add role `name`, from template `source` (default: the template of that name, else empty)."""
    roles.check_name(name)
    if source:
        text = roles.template(source)
    elif name in roles.TEMPLATES:
        text = roles.template(name)
    else:
        text = f"{roles.FENCE}\n{roles.FENCE}\n\n# {name}\n\nDescribe how this role works.\n"
    role = roles.parse(name, text)
    _check_coder(role)

    def build(snap: Snapshot) -> tuple[Change | None, roles.Role]:
        if snap.read(roles.role_path(name)) is not None:
            raise BadInput(
                f"role {name} already exists",
                hint=f"change it with `fleet roles set {name} KEY=VALUE`",
            )
        summary = f"role {name}: added" + (f" from {source}" if source else "")
        change = Change(summary, "role_changed", files={roles.role_path(name): text.encode()})
        return change, role

    return store.mutate(build, actor)


def set_values(store: Store, name: str, pairs: list[str], actor: str | None = None) -> roles.Role:
    """Apply KEY=VALUE pairs to role `name` in one commit; refuse all when one is bad."""
    roles.check_name(name)
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"{pair!r} is not KEY=VALUE", hint=f"fleet roles set {name} model=opus")
        values[key.strip()] = config_mod.parse_value(value.strip())

    def build(snap: Snapshot) -> tuple[Change | None, roles.Role]:
        data = snap.read(roles.role_path(name))
        if data is None:
            # a role only the configuration defines gets its file now
            config = config_mod.load((snap.read(config_mod.CONFIG_PATH) or b"").decode())
            if name not in config.roles:
                raise NotFound(
                    f"role {name} does not exist",
                    hint=f"add it first with `fleet roles add {name}`",
                )
            base = roles.Role(name, handbook=config.roles[name].handbook)
        else:
            base = roles.parse(name, data.decode())
        role = roles.with_values(base, values)
        _check_coder(role)
        text = roles.render(role)
        if data is not None and text == data.decode():
            return None, role
        summary = f"role {name}: " + ", ".join(pairs)
        return Change(summary, "role_changed", files={roles.role_path(name): text.encode()}), role

    return store.mutate(build, actor)


def _check_coder(role: roles.Role) -> None:
    import coders

    coder = role.settings.coder
    if coder and coder not in coders.names():
        raise BadInput(
            f"unknown coder {coder!r} for role {role.name}",
            hint=f"known coders: {', '.join(coders.names())}",
        )


def check_role(store: Store, name: str) -> roles.Role:
    """The role a new task names, if it may: known, and its coder installed."""
    import coders

    roles.check_name(name)
    return roles.check_usable(name, all_roles(store), coders.names())
