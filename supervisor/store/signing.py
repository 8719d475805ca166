"""Signed commits: with `signing_key` configured (an SSH private key, no passphrase or held by
ssh-agent), every commit fleet writes carries an SSH signature in its `gpgsig` header, as
`git commit -S` with `gpg.format=ssh` would make it; `fleet log --verify` checks them with git
against the key's public half."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from supervisor.errors import StoreError

NAMESPACE = "git"


def key_path(configured: str) -> Path | None:
    return Path(os.path.expanduser(configured)) if configured else None


def body(tree: str, parent: str | None, message: str, who: str, when: int) -> bytes:
    """A commit object's content, byte for byte as `Git.commit` writes it."""
    lines = [f"tree {tree}"]
    if parent:
        lines.append(f"parent {parent}")
    lines.append(f"author {who} {when} +0000")
    lines.append(f"committer {who} {when} +0000")
    return ("\n".join(lines) + "\n\n" + message.rstrip("\n") + "\n").encode()


def sign(payload: bytes, key: Path) -> bytes:
    """`payload` with an SSH signature by `key` in a `gpgsig` header."""
    proc = subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-n", NAMESPACE, "-f", str(key)],
        input=payload,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0 or b"BEGIN SSH SIGNATURE" not in proc.stdout:
        raise StoreError(
            f"could not sign the commit with {key}: {proc.stderr.decode(errors='replace').strip()}",
            hint="check `signing_key` (`fleet config get signing_key`): a private SSH key without"
            " a passphrase, or one ssh-agent holds",
        )
    signature = proc.stdout.decode().strip().splitlines()
    header, _, rest = payload.partition(b"\n\n")
    gpgsig = "gpgsig " + "\n ".join(signature)
    return header + b"\n" + gpgsig.encode() + b"\n\n" + rest


def public_key(key: Path) -> str:
    public = key.with_name(key.name + ".pub")
    if public.exists():
        return public.read_text().strip()
    proc = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], capture_output=True, check=False)
    return proc.stdout.decode().strip()


def unsigned(git_dir: Path, commits: list[str], key: Path) -> list[tuple[str, str]]:
    """The commits among `commits` without a good signature by `key`: (commit, git's %G? code:
    N none, B bad, U/E unknown key or not checkable)."""
    if not commits:
        return []
    with tempfile.NamedTemporaryFile("w", suffix=".signers") as signers:
        signers.write(f"fleet {public_key(key)}\n")
        signers.flush()
        proc = subprocess.run(
            [
                "git", f"--git-dir={git_dir}", "-c", "gpg.format=ssh",
                "-c", f"gpg.ssh.allowedSignersFile={signers.name}",
                "log", "--no-walk=unsorted", "--format=%H %G?", "--stdin",
            ],
            input="\n".join(commits) + "\n",
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
    found = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    return [(c, found.get(c, "N")) for c in commits if found.get(c, "N") != "G"]
