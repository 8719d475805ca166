"""The redactor: every kind of key is replaced by its marker, JSON stays JSON, ordinary code and
data (hashes, UUIDs, variable references) pass untouched, and the store never holds a secret."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from supervisor import redact
from supervisor.queue.mutations import NewTask, create
from supervisor.store.store import Store

# Built from pieces so that no scanner mistakes this file for a leak.
KEYS = {
    "anthropic-key": "sk-ant-" + "api03-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" * 3,
    "openai-key": "sk-" + "proj-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0F" * 2,
    "aws-access-key": "AKIA" + "IOSFODNN7EXAMPLE",
    "github-token": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "google-key": "AIza" + "SyDa1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6",
    "google-oauth": "ya29." + "a0AfH6SMBx1y2z3Q4w5E6r7T8y9U0iOp",
    "slack-token": "xoxb-" + "1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx",
    "jwt": "eyJ" + "hbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n",
    "private-key": "-----BEGIN RSA "
    + "PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgwMbRvI0MBZhpF\n"
    "-----END RSA " + "PRIVATE KEY-----",
}
# (text, the secret in it, its kind): secrets that only their context gives away
IN_CONTEXT = [
    (
        "git clone https://bob:" + "Hunter2Secret9@github.com/x/y.git",
        "Hunter2Secret9",
        "url-credentials",
    ),
    ("GET /v1/items?access_token=" + "Zk29fjs82Jd91kdA&page=2", "Zk29fjs82Jd91kdA", "url-token"),
    (
        "Authorization: Bearer " + "abcDEF123456ghiJKL789mno",
        "abcDEF123456ghiJKL789mno",
        "bearer-token",
    ),
    ('DB_PASSWORD="' + 'q8Zr2LmN4xWb7TyK9pVs"', "q8Zr2LmN4xWb7TyK9pVs", "high-entropy"),
    ('{"api_key": "' + 'R7tY2uI9oP3aS5dF8gH1jK"}', "R7tY2uI9oP3aS5dF8gH1jK", "high-entropy"),
]
ORDINARY = """\
commit 3f786850e387550fdab836ed7e6dc881de23001b
Merge: 8084343 fa060dc
id = "123e4567-e89b-12d3-a456-426614174000"
TASK_ID = "550e8400-e29b-41d4-a716-446655440000"
sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
digest = sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
def get_token(self): return self.token_cache[key]
password = getpass.getpass()
token = os.environ["GITHUB_TOKEN"]
api_key = "${OPENAI_API_KEY}"
secret_file = /etc/app/secret.key
author = "Jane Doe <jane@example.com>"
max_tokens: 4096
input_tokens=1000 output_tokens=40 cache_read_tokens=300
# Heading #2, see https://example.com/docs?page=2#section
api_key = "<your key here>"
password: xxxxxxxxxxxxxxxxxxxx
task-force-deployment-configuration-manager-service
base64 = "aGVsbG8gd29ybGQ="
  "token": "3f786850e387550fdab836ed7e6dc881",
session_token = 123e4567-e89b-12d3-a456-426614174000
fleet/fl-3k9x fl-abc123 runs/fl-3k9x/2/output.log
https://github.com/anthropics/claude-code/blob/main/README.md
"""


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_each_known_key_is_replaced_by_its_marker(kind: str) -> None:
    counts: dict[str, int] = {}
    out = redact.text(f"here: {KEYS[kind]} (end)", counts)
    assert out == f"here: [redacted:{kind}] (end)"
    assert counts == {kind: 1}


@pytest.mark.parametrize(("text", "secret", "kind"), IN_CONTEXT)
def test_secrets_given_away_by_their_context(text: str, secret: str, kind: str) -> None:
    counts: dict[str, int] = {}
    out = redact.text(text, counts)
    assert secret not in out
    assert f"[redacted:{kind}]" in out
    assert counts == {kind: 1}
    assert out.replace(f"[redacted:{kind}]", secret) == text  # only the secret went


def test_json_stays_valid_json() -> None:
    doc = {"description": "\n".join([*KEYS.values(), *(t for t, _, _ in IN_CONTEXT)])}
    out = redact.text(json.dumps(doc, indent=2))
    back = json.loads(out)["description"]
    for secret in [*KEYS.values(), *(s for _, s, _ in IN_CONTEXT)]:
        assert secret not in back


def test_ordinary_code_and_data_pass_untouched() -> None:
    counts: dict[str, int] = {}
    assert redact.text(ORDINARY, counts) == ORDINARY
    assert counts == {}


def test_configured_values_are_redacted_literally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORK_ACCOUNT_KEY", "plain-looking-account-key-1")
    monkeypatch.setenv("MY_DB_PASS", "correct horse battery")
    redact.configured(
        '[accounts.work]\ncoder = "claude"\nkey_env = "WORK_ACCOUNT_KEY"\n'
        '[accounts.work.env]\nSERVICE_TOKEN = "tok-value-12345"\n'
        'redact_env = ["MY_DB_PASS"]\n'.replace("redact_env", "\nredact_env", 0)
    )
    redact.configured('redact_env = ["MY_DB_PASS"]\n')
    counts: dict[str, int] = {}
    out = redact.text(
        "key plain-looking-account-key-1, token tok-value-12345, pass correct horse battery",
        counts,
    )
    assert out == (
        "key [redacted:account-key], token [redacted:account-key], pass [redacted:env-value]"
    )
    assert counts == {"account-key": 2, "env-value": 1}


def test_bytes_that_are_not_utf8_survive() -> None:
    data = b"\xff\xfe binary " + KEYS["github-token"].encode() + b" \x80"
    assert redact.data(data) == b"\xff\xfe binary [redacted:github-token] \x80"
    assert redact.data(b"\xff plain") == b"\xff plain"


def all_objects(home: Path) -> bytes:
    return subprocess.run(
        ["git", f"--git-dir={home / '.git'}", "cat-file", "--batch-all-objects", "--batch"],
        capture_output=True,
        check=True,
    ).stdout


def test_nothing_the_store_commits_holds_a_secret(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "home")
    try:
        secrets = "\n".join(KEYS.values())
        task = create(store, NewTask(title=f"leak {KEYS['openai-key']}", description=secrets))
        stored = store.get(task.id)
        assert "[redacted:private-key]" in stored.description  # the cache reads what git holds
        from supervisor.store.store import Change

        def build(snap: object) -> tuple[Change, None]:
            return Change("record", "noted", files={"runs/x/1/output.log": secrets.encode()}), None

        store.mutate(build)  # type: ignore[arg-type]
        store.blob(secrets.encode() + b"!")  # written ahead of a commit
    finally:
        store.close()
    objects = all_objects(tmp_path / "home")
    assert b"[redacted:anthropic-key]" in objects
    for secret in [*KEYS.values(), *(s for _, s, _ in IN_CONTEXT)]:
        assert secret.encode() not in objects
