"""The configuration: `config.toml` in the store's tree, validated by a pydantic model.

This module holds the model and its rules; `supervisor.queue.configure` reads it from the store and
changes it there (every change is a commit). A running supervisor reads it again at every tick.
"""

from __future__ import annotations

import tomllib
from typing import Any, Literal, get_args

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from supervisor import secrets
from supervisor.accounts import Account
from supervisor.errors import BadInput
from supervisor.limits import NOT_UTF8
from supervisor.redact import DEFAULT_ENV

CONFIG_PATH = "config.toml"
KIND_NAMES: dict[Any, str] = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
}


class CoderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_concurrent: int | None = Field(None, ge=1, description="agents of this coder at once")
    model: str = Field("", description="model for this coder's tasks that name none")
    permission_mode: str = Field("", description="the CLI's permission/sandbox mode")
    max_seconds: float | None = Field(None, gt=0, description="budget of each of its tasks")
    max_tokens: int | None = Field(None, gt=0, description="token budget of each of its tasks")
    max_cost: float | None = Field(None, gt=0, description="USD budget of each of its tasks")


class ToolRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allow: list[str] = Field(default_factory=list, description="tools the agent may use")
    deny: list[str] = Field(default_factory=list, description="tools the agent may not use")


class RoleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    handbook: str = Field("", description="appended to the agent's system prompt")
    coder: str = Field("", description="coder for its tasks that name none")
    model: str = Field("", description="model for its tasks that name none")
    account: str = Field("", description="account for its tasks that name none")
    max_seconds: float | None = Field(None, gt=0, description="budget of each of its tasks")
    max_tokens: int | None = Field(None, gt=0, description="token budget of each of its tasks")
    max_cost: float | None = Field(None, gt=0, description="USD budget of each of its tasks")
    after_children: Literal["", "close", "integrate"] = Field(
        "", description="once a task's subtasks close: close it, or run it again to integrate"
    )
    ready_when: list[Literal["description", "acceptance", "estimate", "design"]] = Field(
        default_factory=list,
        description="what a task of this role needs before it may start (else it is refined)",
    )
    # roles and handoffs (`supervisor.roles`): also the settings header of `roles/NAME.md`
    accounts: list[str] = Field(default_factory=list, description="accounts its tasks may use")
    max_concurrent: int | None = Field(None, ge=1, description="agents of this role at once")
    deliver: Literal["", "merge", "branch", "none"] = Field(
        "", description="how its finished work is delivered (a task's --deliver overrides)"
    )
    tools: ToolRules = Field(default_factory=lambda: ToolRules(), description="tools it may use")
    requires: list[str] = Field(
        default_factory=list, description='approvals before delivery: "human", "role:NAME"'
    )


class RouteRule(BaseModel):
    """`[[route]]`: a task created without role or coder goes to `role` when it matches."""

    model_config = ConfigDict(extra="forbid")

    role: str = Field(description="the role the matching tasks go to")
    labels: list[str] = Field(default_factory=list, description="any of these labels")
    words: list[str] = Field(default_factory=list, description="any of these words in the title")
    paths: list[str] = Field(
        default_factory=list, description="globs the task's cwd matches (`~/src/docs/**`)"
    )
    types: list[str] = Field(default_factory=list, description="any of these issue types")


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: float = Field(0.0, ge=0, description="USD per million input tokens")
    output: float = Field(0.0, ge=0, description="USD per million output tokens")
    cache_read: float = Field(0.0, ge=0, description="USD per million cache-read tokens")
    cache_write: float = Field(0.0, ge=0, description="USD per million cache-write tokens")


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id_prefix: str = Field("fl", pattern=r"^[a-z][a-z0-9_]{0,15}$", description="prefix of new ids")
    max_concurrent: int = Field(3, ge=1, le=1024, description="agents running at once, in all")
    coder: str = Field("claude", description="coder for tasks that name none")
    coders: dict[str, CoderSettings] = Field(default_factory=dict, description="per-coder settings")
    isolation: Literal["worktree", "none"] = Field(
        "worktree", description="run tasks inside a git repository in a worktree of their own"
    )
    max_attempts: int = Field(3, ge=1, le=100, description="tries before a task is blocked")
    max_seconds: float = Field(3600, gt=0, description="wall-clock limit of one attempt")
    stall_seconds: float = Field(600, gt=0, description="an attempt silent this long is stalled")
    grace_seconds: float = Field(10, ge=0, description="TERM, then KILL after this long")
    backoff_seconds: float = Field(10, ge=0, description="first retry delay (doubles, jittered)")
    backoff_max_seconds: float = Field(600, ge=0, description="the longest retry delay")
    checkpoint_seconds: float = Field(30, gt=0, description="commit a running log this often")
    paused: bool = Field(False, description="claim nothing new (`fleet pause` / `fleet resume`)")
    shell_env: list[str] = Field(
        default_factory=list,
        description="variables shell tasks get besides PATH, HOME, LANG, ... (NAME or PREFIX*)",
    )
    accounts: dict[str, Account] = Field(default_factory=dict, description="credentials")
    roles: dict[str, RoleSettings] = Field(default_factory=dict, description="job descriptions")
    prices: dict[str, Price] = Field(default_factory=dict, description="by model-name prefix")
    limit_threshold: float = Field(
        0.9, gt=0, le=1, description="utilization above which an account gets no new work"
    )
    budget_warning: float = Field(0.8, gt=0, le=1, description="fraction of a budget that warns")
    daily_max_cost: float | None = Field(None, gt=0, description="USD per UTC day, whole fleet")
    daily_max_tokens: int | None = Field(None, gt=0, description="tokens per UTC day, whole fleet")
    max_children: int = Field(20, ge=1, le=200, description="subtasks one result may create")
    max_depth: int = Field(
        3, ge=1, le=4, description="levels of subtasks below a top-level task (`fl-ab.1.2` is 2)"
    )
    after_children: Literal["close", "integrate"] = Field(
        "close", description="once a task's subtasks close: close it, or run it again to integrate"
    )
    route: list[RouteRule] = Field(
        default_factory=list, description="rules that choose a role for unassigned tasks"
    )
    triage_role: str = Field(
        "triage", description="the role that routes a task no rule matches (when configured)"
    )
    refine_role: str = Field(
        "product-owner", description="the role that refines a task its role is not ready for"
    )
    # subscriptions and gates (`supervisor.subscriptions`, `supervisor.gates`)
    on: list[dict[str, Any]] = Field(default_factory=list, description="[[on]] rules")
    max_reopens: int = Field(3, ge=0, description="reopens by rules before a task is blocked")
    max_chain: int = Field(8, ge=1, description="tasks a chain of rules may create in a row")
    gate_timeout_seconds: float | None = Field(
        None, gt=0, description="a gate waiting this long raises gate.timeout"
    )
    # governance
    redact_env: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ENV),
        description="variables whose values are redacted from everything committed",
    )
    risk_threshold: float = Field(
        0.9, gt=0, le=1, description="a risk score at or above this quarantines its subject"
    )
    risk_quarantine: bool = Field(True, description="quarantine past the threshold by itself")
    risk_stop_running: bool = Field(
        False, description="a quarantine also stops the subject's running attempts"
    )
    risk_window: int = Field(10, ge=1, le=1000, description="last attempts a risk score reads")
    risk_every: float = Field(5.0, gt=0, description="seconds between two risk assessments")
    risk_weights: dict[str, float] = Field(
        default_factory=dict, description="logistic weights over the defaults (docs: governance)"
    )
    sandbox_roles: list[str] = Field(
        default_factory=list, description="roles whose agents run in bubblewrap ('*': all)"
    )
    sandbox_network: Literal["host", "none"] = Field(
        "host", description="a sandboxed agent's network: the host's, or none at all"
    )
    signing_key: str = Field("", description="SSH private key that signs every commit")
    # delivery: where a task's work goes (see docs/delivery.md)
    deliver: Literal["merge", "branch", "none"] = Field(
        "merge", description="merge (the merge queue), branch (left for you) or none"
    )
    check: str = Field("", description="the command a merge must pass, run in the merged tree")
    check_seconds: float = Field(1800, gt=0, description="the check's time limit")
    prune_merged: bool = Field(True, description="remove a task's worktree once it is merged")


# Tables of named entries, and the model of each entry.
TABLES: dict[str, type[BaseModel]] = {
    "coders": CoderSettings,
    "accounts": Account,
    "roles": RoleSettings,
    "prices": Price,
}


REPAIR = "fix it with `fleet config edit` (or `fleet config set KEY=VALUE`)"


def load(text: str) -> Config:
    loaded = Config.model_validate(parse(text))
    if loaded.on:
        from supervisor.subscriptions import parse_rules

        parse_rules(text, loaded.on)  # a malformed [[on]] rule: BadInput naming its line
    return loaded


def parse(text: str) -> dict[str, Any]:
    """The TOML tables of config.toml's text, validated; BadInput naming the line if not."""
    data = tables(text)
    try:
        Config.model_validate(data)
    except ValidationError as exc:
        raise BadInput(f"config.toml is not valid: {explain(exc, text)}", hint=REPAIR) from None
    return data


def tables(text: str) -> dict[str, Any]:
    """config.toml's tables as TOML reads them (values unchecked, so that a bad one can be set
    right); BadInput naming the line when the text is not UTF-8 or not TOML."""
    if text.startswith(NOT_UTF8):
        raise BadInput(
            f"config.toml is not valid: {text[1:]}", hint="fix it with `fleet config edit`"
        )
    try:
        return tomllib.loads(text) if text.strip() else {}
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(
            f"config.toml is not valid TOML: {exc}", hint="fix it with `fleet config edit`"
        ) from None


def keys() -> list[str]:
    out = []
    for name in Config.model_fields:
        if name in TABLES:
            out += [f"{name}.<name>.{k}" for k in TABLES[name].model_fields]
        else:
            out.append(name)
    return out


def get(config: Config, key: str) -> Any:
    path = key.split(".")
    if path[0] == "coders" and len(path) == 3:  # a coder without settings has the defaults
        check_key(path)
        check_coders(Config(coders={path[1]: CoderSettings()}))
        settings = config.coders.get(path[1], CoderSettings())
        return settings.model_dump()[path[2]]
    if path[0] in TABLES and len(path) >= 2 and path[1] not in getattr(config, path[0]):
        raise BadInput(
            f"no {path[0]} entry named {path[1]!r}", hint="see them with `fleet config show`"
        )
    data: Any = config.model_dump()
    for part in path:
        if not isinstance(data, dict) or part not in data:
            raise BadInput(f"unknown config key {key!r}", hint=f"valid keys: {', '.join(keys())}")
        data = data[part]
    return data


def parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def check_key(path: list[str]) -> None:
    top = Config.model_fields
    table = TABLES.get(path[0])
    ok = (len(path) == 1 and path[0] in top and table is None) or (
        table is not None
        and len(path) >= 3
        and path[2] in table.model_fields
        and (len(path) == 3 or (len(path) == 4 and path[2] == "env"))
    )
    if not ok:
        raise BadInput(
            f"unknown config key {'.'.join(path)!r}", hint=f"valid keys: {', '.join(keys())}"
        )


def check_coders(config: Config) -> None:
    import coders

    known = coders.names()
    named = [a.coder for a in config.accounts.values()] + [r.coder for r in config.roles.values()]
    for name in [config.coder, *config.coders, *[n for n in named if n]]:
        if name not in known:
            raise BadInput(f"unknown coder {name!r}", hint=f"known coders: {', '.join(known)}")


def explain(exc: Exception, text: str = "") -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{_line_of(text, err['loc'])}{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors()
        )
    return str(exc)


def _line_of(text: str, loc: tuple[int | str, ...]) -> str:
    """'line N: ' for the line of `text` that sets the last key of `loc`, if one does."""
    import re

    if not text or not loc:
        return ""
    key = re.compile(rf"^\s*\"?{re.escape(str(loc[-1]))}\"?\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        if key.match(line):
            return f"line {number}: "
    return ""


def choices(exc: ValidationError) -> str:
    """What the first bad value may be: its choices, or its type and range."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    if err["type"] == "literal_error":
        return f"valid values: {err['ctx']['expected']}"
    table = TABLES.get(loc[0])
    fields = table.model_fields if table is not None else Config.model_fields
    info = fields.get(loc[2] if table is not None and len(loc) > 2 else loc[0])
    if info is None:
        return f"valid keys: {', '.join(keys())}"
    return f"{'.'.join(loc)} takes {_describe(info)}"


def _describe(info: FieldInfo) -> str:
    kinds = [k for k in get_args(info.annotation) or (info.annotation,) if k is not type(None)]
    limits = []
    for item in info.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(item, attr, None) is not None:
                limits.append(f"{sign} {getattr(item, attr)}")
        if getattr(item, "pattern", None):
            limits.append(f"matching {item.pattern}")
    text = " ".join([KIND_NAMES.get(kinds[0], "a value") if kinds else "a value", *limits[:1]])
    text += "".join(f" and {limit}" for limit in limits[1:])
    return f"{text}: {info.description}" if info.description else text


def show(config: Config) -> str:
    data = config.model_dump(exclude_none=True)
    for account in data.get("accounts", {}).values():  # one stored by an older fleet
        env = account.get("env", {})
        for name, value in env.items():
            if secrets.problem(name, str(value)):
                env[name] = "<hidden: a credential; replace the account without it>"
    return tomli_w.dumps(data)
