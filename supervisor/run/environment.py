"""What a shell task's command sees of the supervisor's environment: an allow-list.

An agent CLI needs the supervisor's environment (its login, its proxy settings); a shell command
from a task does not, and a task may come from a file someone else wrote. So a shell task gets
only the variables below, those `shell_env` in config.toml adds (`fleet config set
'shell_env=["MY_VAR", "AWS_REGION"]'`; a trailing `*` matches a prefix), and fleet's own
(`FLEET_HOME`, `FLEET_TASK_ID`, `TMPDIR`, ...). Tokens such as GH_TOKEN stay out unless named.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

SHELL_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TERM",
    "TZ",
    "NO_COLOR",
)


def allowed(name: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if pattern.endswith("*") and name.startswith(pattern[:-1]):
            return True
        if name == pattern:
            return True
    return False


def shell_env(environ: Mapping[str, str], extra: Iterable[str] = ()) -> dict[str, str]:
    """The part of `environ` a shell task gets: SHELL_ENV and `extra`."""
    patterns = (*SHELL_ENV, *extra)
    return {k: v for k, v in environ.items() if allowed(k, patterns)}
