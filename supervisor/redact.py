"""Secrets kept out of the store: every text fleet commits passes `text()` (or `data()`) first.

What is replaced, by `[redacted:<kind>]`:
- known key formats: Anthropic, OpenAI, AWS access keys, GitHub, Google API and OAuth tokens,
  Slack tokens and webhooks, JSON web tokens, private-key blocks, credentials and tokens in URLs,
  bearer tokens;
- high-entropy values assigned to a name that says secret (`password = ...`, `"api_key": ...`);
- the literal values given to `literals()`: the keys of the configured accounts and the variables
  the user names in `redact_env`.

A text that contains none of the cheap trigger strings is returned untouched after one scan, so
that `bd create` pays microseconds. The patterns only ever match characters that JSON keeps as
they are (no quote, no backslash), so a redacted JSON document stays valid JSON.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from functools import partial

MARK = "[redacted:{}]"
MIN_LITERAL = 8  # a configured value shorter than this is not worth hunting for
ENTROPY_MIN_LENGTH = 16
ENTROPY_BITS = 3.0  # bits per character a secret's value has at least
HEX = re.compile(r"[0-9a-fA-F\-]+")

# (kind, strings one of which every match contains, pattern). Where a pattern has a group named
# `v`, only that group is replaced. A pattern runs only on a text holding one of its strings (in
# lower case for the case-blind ones), which keeps ordinary text to a few substring searches.
# Where a key may start: not inside a word, but right after an escape (`\n` in JSON) it may.
START = r"(?:(?<![A-Za-z0-9_])|(?<=\\[nrt]))"
PATTERNS: list[tuple[str, tuple[str, ...], str]] = [
    (
        "private-key",
        ("PRIVATE KEY",),
        r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
        r"[\s\S]{0,20000}?-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----",
    ),
    ("anthropic-key", ("sk-ant-",), START + r"sk-ant-[a-z]{2,8}\d{0,3}-[A-Za-z0-9_\-]{20,}"),
    ("openai-key", ("sk-",), START + r"sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{32,}"),
    (
        "aws-access-key",
        ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "APKA"),
        START + r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}\b",
    ),
    (
        "github-token",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        START + r"(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{40,255})",
    ),
    ("google-key", ("AIza",), START + r"AIza[0-9A-Za-z_\-]{35}"),
    ("google-oauth", ("ya29.",), START + r"ya29\.[0-9A-Za-z_\-]{20,}"),
    ("slack-token", ("xox",), START + r"xox[abposre]-[0-9A-Za-z\-]{10,}"),
    (
        "slack-webhook",
        ("hooks.slack.com",),
        r"https://hooks\.slack\.com/services/[A-Za-z0-9/_]{20,}",
    ),
    ("jwt", ("eyJ",), START + r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    (
        "url-credentials",
        ("://",),
        r"://[^\s/:@'\"\\]{1,200}:(?P<v>[^\s/@'\"\\]{3,200})@",
    ),
    (
        "url-token",
        ("token=", "key=", "secret=", "password=", "sig=", "signature=", "auth="),
        r"(?i)[?&#](?:access_token|refresh_token|id_token|token|api_?key|apikey|key|secret|"
        r"client_secret|password|sig|signature|auth)=(?P<v>[^&\s'\"\\#<>]{8,})",
    ),
    (
        "bearer-token",
        ("bearer", "authorization"),
        START + r"(?i:bearer|authorization:[ \t]*(?:token|basic))[ \t]+"
        r"(?P<v>[A-Za-z0-9_\-.~+/]{16,}=*)",
    ),
    (
        "high-entropy",
        ("secret", "token", "passw", "pwd", "key", "credential", "authoriz"),
        r"(?i)(?:secret|token|passw(?:or)?d|passwd|pwd|api_?key|apikey|access_?key|private_?key|"
        r"credentials?|authorization|auth_?token|auth_?key)[A-Za-z0-9_.\-]*"
        r"[\"'\\]{0,8}[ \t]*(?::=|=|:)[ \t]*[\"'\\]{0,8}(?P<v>[A-Za-z0-9_\-.~+/=]{16,})",
    ),
]
CASE_BLIND = {"url-token", "bearer-token", "high-entropy"}

_compiled: dict[str, re.Pattern[str]] = {}  # compiled on first need: `bd create` rarely needs one
_literals: dict[str, str] = {}  # value -> kind
_literal_re: re.Pattern[str] | None = None


def _compile(kind: str, pattern: str) -> re.Pattern[str]:
    compiled = _compiled.get(kind)
    if compiled is None:
        compiled = _compiled[kind] = re.compile(pattern)
    return compiled


def literals(values: Mapping[str, str]) -> None:
    """Also redact these exact values (value -> kind), for the rest of the process."""
    global _literal_re
    fresh = {v: k for v, k in values.items() if len(v) >= MIN_LITERAL and v not in _literals}
    if not fresh:
        return
    _literals.update(fresh)
    ordered = sorted(_literals, key=len, reverse=True)  # the longest first
    _literal_re = re.compile("|".join(re.escape(v) for v in ordered))


def literals_from_env(names: Iterable[tuple[str, str]]) -> dict[str, str]:
    """(variable, kind) pairs -> value -> kind, for the variables set in this environment."""
    found: dict[str, str] = {}
    for name, kind in names:
        value = os.environ.get(name, "") if name else ""
        if len(value) >= MIN_LITERAL:
            found[value] = kind
    return found


def text(value: str, counts: dict[str, int] | None = None) -> str:
    """`value` with every secret replaced by its marker; adds what it replaced to `counts`."""
    if _literal_re is not None and _literal_re.search(value):
        value = _literal_re.sub(lambda m: _mark(_literals[m.group(0)], counts), value)
    lower = ""
    for kind, words, pattern in PATTERNS:
        if kind in CASE_BLIND:
            lower = lower or value.lower()
            hay = lower
        else:
            hay = value
        if any(word in hay for word in words):
            replace = partial(_replace, kind, counts=counts)
            changed = _compile(kind, pattern).sub(replace, value)
            if changed != value:
                value, lower = changed, ""
    return value


def data(value: bytes, counts: dict[str, int] | None = None) -> bytes:
    """`text()` for bytes: decoded as UTF-8 (bytes that are not stay as they are)."""
    decoded = value.decode("utf-8", errors="surrogateescape")
    clean = text(decoded, counts)
    return value if clean == decoded else clean.encode("utf-8", errors="surrogateescape")


def _replace(kind: str, match: re.Match[str], *, counts: dict[str, int] | None) -> str:
    whole = match.group(0)
    if kind == "openai-key" and not (_classes(whole[3:]) >= 2 and any(c.isdigit() for c in whole)):
        return whole  # words joined by dashes, not a key
    if match.re.groupindex.get("v") is None:
        return _mark(kind, counts)
    secret = match.group("v")
    if kind == "high-entropy" and not looks_random(secret):
        return whole
    start, end = match.span("v")
    base = match.start()
    return whole[: start - base] + _mark(kind, counts) + whole[end - base :]


def _mark(kind: str, counts: dict[str, int] | None) -> str:
    if counts is not None:
        counts[kind] = counts.get(kind, 0) + 1
    return MARK.format(kind)


def looks_random(value: str) -> bool:
    """Whether a value assigned to a secret-sounding name is a secret rather than a word, a
    path, a variable reference or a placeholder."""
    if len(value) < ENTROPY_MIN_LENGTH or value.startswith(("$", "<", "{", "%", "/", ".")):
        return False
    if value.startswith("[redacted") or set(value) <= set("x*.-_Xo0"):
        return False
    if HEX.fullmatch(value):  # hashes, UUIDs, fleet's run tokens: a hex secret is configured
        return False
    if _classes(value) < 2:
        return False
    return entropy(value) >= ENTROPY_BITS


def _classes(value: str) -> int:
    """How many of lower case, upper case and digits `value` has."""
    return sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
        )
    )


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    size = len(value)
    counts: dict[str, int] = {}
    for c in value:
        counts[c] = counts.get(c, 0) + 1
    return -sum(n / size * math.log2(n / size) for n in counts.values())


# The variables the coders read their keys from: redacted by default (`redact_env` replaces it).
DEFAULT_ENV = [
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "OPENAI_API_KEY",
    "CODEX_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GH_TOKEN",
    "GITHUB_TOKEN",
]
SECRET_NAME = re.compile(r"(?i)key|token|secret|passw|credential")


def configured(config_text: str) -> None:
    """Also redact, from now on, the values in this environment of the variables a configuration
    names: each account's `key_env`, its `env` entries whose names say secret, and `redact_env`
    (the coders' key variables when the configuration does not set it)."""
    import tomllib

    try:
        raw = tomllib.loads(config_text) if config_text.strip() else {}
    except tomllib.TOMLDecodeError:
        raw = {}
    names: list[tuple[str, str]] = []
    accounts = raw.get("accounts")
    for account in accounts.values() if isinstance(accounts, dict) else ():
        if not isinstance(account, dict):
            continue
        key_env = account.get("key_env")
        if isinstance(key_env, str):
            names.append((key_env, "account-key"))
        extra = account.get("env")
        for name, value in extra.items() if isinstance(extra, dict) else ():
            if isinstance(value, str) and SECRET_NAME.search(name) and len(value) >= MIN_LITERAL:
                literals({value: "account-key"})
    chosen = raw.get("redact_env", DEFAULT_ENV)
    names += (
        [(n, "env-value") for n in chosen if isinstance(n, str)] if isinstance(chosen, list) else []
    )
    literals(literals_from_env(names))


def redact_files(files: Mapping[str, bytes]) -> tuple[dict[str, bytes], dict[str, int]]:
    """Each file redacted, and how many secrets of each kind were replaced in all."""
    counts: dict[str, int] = {}
    return {path: data(value, counts) for path, value in files.items()}, counts
