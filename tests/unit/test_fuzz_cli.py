"""`fleet bd import` and `fleet bd create` over random bytes, JSON shapes and argument strings:
every run exits 0 or 2 (never 1, a host failure, nor 3, a bug), and the store's ref moves only on 0.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervisor.cli.entry import main
from tests.support.store_checks import head

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Values as JSON holds them, and the keys beads and fleet give meaning to.
# text with lone surrogates too: JSON's `"\\ud800"` makes one, and no file can hold it
texts = st.text(
    st.one_of(st.characters(), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)),
    max_size=30,
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), texts,
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)  # fmt: skip
KEYS = [
    "id", "title", "description", "status", "priority", "issue_type", "labels", "dependencies",
    "created_at", "closed_at", "defer_until", "metadata", "_type", "assignee", "estimated_minutes",
    "comments", "started_at",
]  # fmt: skip
ids = st.sampled_from(["fl-aaaa", "fl-bbbb", "bd-1", "fl-aaaa.1", "FL-x", "", "fl-" + "z" * 20])
dependency = st.fixed_dictionaries(
    {"issue_id": ids, "depends_on_id": ids},
    optional={"type": st.sampled_from(["blocks", "parent-child", "related", "Bad Type", ""])},
)
issue = st.fixed_dictionaries(
    {"id": ids, "title": texts},
    optional={
        "status": st.sampled_from(["open", "in_progress", "closed", "blocked", "deferred", "x"]),
        "priority": st.one_of(st.integers(-1, 5), st.text(max_size=2)),
        "dependencies": st.lists(dependency, max_size=3),
        "closed_at": st.sampled_from(["2026-01-01T00:00:00Z", "yesterday", ""]),
        "metadata": st.one_of(
            json_values,
            st.fixed_dictionaries({"fleet": st.dictionaries(
                st.sampled_from(["coder", "command", "run", "max_cost", "cwd", "attempts"]),
                json_values, max_size=3)}),
        ),
        "labels": st.one_of(st.lists(st.text(max_size=5), max_size=3), json_values),
    },
)  # fmt: skip
records = st.one_of(issue, st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6),
                    json_values)  # fmt: skip


def run(*args: str) -> int:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    assert "Traceback" not in err.getvalue(), err.getvalue()
    return code


def check(home: Path, *args: str) -> None:
    before = head(home)
    code = run(*args)
    assert code in (0, 2), (code, args)
    if code != 0:
        assert head(home) == before, f"the ref moved on exit {code}: {args}"


def import_bytes(home: Path, tmp_path: Path, data: bytes, *flags: str) -> None:
    source = tmp_path / "fuzz.jsonl"
    source.write_bytes(data)
    check(home, "bd", "import", *flags, str(source))


@FUZZ
@given(data=st.binary(max_size=400))
def test_import_of_random_bytes(home: Path, tmp_path: Path, data: bytes) -> None:
    import_bytes(home, tmp_path, data)


deep = st.integers(1, 5000).map(
    lambda n: '{"id":"fl-aaaa","title":"deep","metadata":' + "[" * n + "]" * n + "}"
)


@FUZZ
@given(
    lines=st.lists(st.one_of(records.map(json.dumps), deep), min_size=1, max_size=4),
    dry=st.booleans(),
)
def test_import_of_json_shapes(home: Path, tmp_path: Path, lines: list[str], dry: bool) -> None:
    text = "".join(line + "\n" for line in lines)
    import_bytes(home, tmp_path, text.encode(), *(["--dry-run"] if dry else []))


OPTIONS = [
    "--title", "-d", "-p", "-t", "-l", "--deps", "--parent", "--coder", "--command", "--cwd",
    "--max-seconds", "--max-tokens", "--max-cost", "--max-attempts", "--json",
    "--idempotency-key", "--", "-p9", "--priority=1", "--deps=fl-aaaa", "--bogus",
]  # fmt: skip
argument = st.one_of(
    st.sampled_from(OPTIONS),
    st.text(max_size=20),
    st.binary(max_size=8).map(lambda b: b.decode("utf-8", "surrogateescape")),  # as argv holds it
    st.sampled_from(["0", "-1", "1e309", "nan", "fl-aaaa", "blocks:fl-zzzz", "/", "shell", "x\n"]),
)


@FUZZ
@given(args=st.lists(argument, max_size=6))
def test_create_with_random_arguments(home: Path, args: list[str]) -> None:
    os.makedirs(home, exist_ok=True)
    check(home, "bd", "create", *args)
