"""What looks like a credential: fleet never writes one into the store (config.toml is committed
and `fleet config show` prints it). Keys reach agents through `--key-env`, read at run time."""

from __future__ import annotations

import re

from supervisor.errors import BadInput

# Variable names that carry credentials.
SECRET_NAME = re.compile(
    r"(API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY|ACCESS_KEY|_AUTH$|^AUTH)",
    re.IGNORECASE,
)
# Values shaped like a key of a well-known service, or a URL with a password in it.
SECRET_VALUE = re.compile(
    r"^(sk-|sk_|rk_|pk_live|ghp_|gho_|ghs_|ghu_|github_pat_|glpat-|xox[abprs]-|AKIA[0-9A-Z]{12}"
    r"|AIza[0-9A-Za-z_-]{20}|ya29\.|eyJ[A-Za-z0-9_-]{10,}\.|Bearer\s)"
    r"|^[a-z][a-z0-9+.-]*://[^/@\s:]+:[^/@\s]+@",
)
# A long unbroken run of key characters (no '/', ':' or '.': not a path, URL or version).
OPAQUE = re.compile(r"^[A-Za-z0-9_\-+=]{40,}$")


def problem(name: str, value: str) -> str:
    """Why `name=value` must not be stored, or "" if it may."""
    if SECRET_NAME.search(name):
        return f"{name} is a credential variable"
    if SECRET_VALUE.search(value) or OPAQUE.match(value):
        return f"the value of {name} looks like a credential"
    return ""


def refuse(variables: dict[str, str], where: str) -> None:
    """BadInput if any of `variables` would put a credential into the store."""
    for name, value in variables.items():
        why = problem(name, str(value))
        if why:
            raise BadInput(
                f"{where}: {why}; fleet does not store keys (config.toml is committed)",
                hint="export the key in the supervisor's environment and name that variable "
                "with `fleet accounts add NAME --key-env VAR` (`--key-as` for the agent's)",
            )
