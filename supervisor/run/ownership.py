"""Proof that an attempt was started by a supervisor of this home: its token is signed.

An attempt's token (`FLEET_RUN_TOKEN` in its processes' environment, `run.token` in the task) is a
random nonce and an HMAC of it under the home's key. The key lives in `$FLEET_HOME/run.key` (0600),
outside the store's tree: an export, an import or a pushed commit never carries it. A supervisor
signals a process only through a token that verifies under its own home's key, so a record naming
another home's agent, or a crafted pid and start time, never makes it stop an unrelated process.
"""

from __future__ import annotations

import hmac
import os
import secrets
from hashlib import sha256
from pathlib import Path

KEY_FILE = "run.key"
NONCE_BYTES = 12
MAC_CHARS = 24


def key(home: Path) -> bytes:
    """The home's key, made on first use (0600, created exclusively: concurrent callers agree)."""
    path = home / KEY_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    if len(data) >= 32:
        return data
    tmp = home / f".{KEY_FILE}.{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_hex(32).encode())
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)  # fails if another process made it first: theirs is the key
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes()


def _mac(secret: bytes, nonce: str) -> str:
    return hmac.new(secret, nonce.encode(), sha256).hexdigest()[:MAC_CHARS]


def new_token(home: Path) -> str:
    nonce = secrets.token_hex(NONCE_BYTES)
    return nonce + _mac(key(home), nonce)


def owns(home: Path, token: str) -> bool:
    """Whether `token` was made by a supervisor of this home."""
    size = NONCE_BYTES * 2
    if len(token) != size + MAC_CHARS:
        return False
    nonce, mac = token[:size], token[size:]
    return hmac.compare_digest(mac, _mac(key(home), nonce))
