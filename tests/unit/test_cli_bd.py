"""`fleet bd ...` through the CLI: every command, its --json shape, and every bad input.

A bad input exits 2 with a message naming the problem and a hint, and `refs/heads/main` does not
move.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import Result
from test_beads import DATA, raw_issues, reference_blocked, reference_ready

from supervisor.model import ID_PATTERN
from tests.support.store_checks import commits, head, tree_tasks

Fleet = Any  # the `fleet` fixture: fleet(*args) -> Result


def ok(fleet: Fleet, *args: str) -> Result:
    result: Result = fleet(*args)
    assert result.code == 0, f"fleet {' '.join(args)}: {result.err}"
    return result


def data(fleet: Fleet, *args: str) -> Any:
    return json.loads(ok(fleet, *args, "--json").out)


def make(fleet: Fleet, *args: str) -> str:
    task_id = ok(fleet, "bd", "create", *args).out.strip()
    assert ID_PATTERN.match(task_id), task_id
    return task_id


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in rows]


# --- create ----------------------------------------------------------------------------------


def test_create_records_every_field(
    fleet: Fleet, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ok(fleet, "roles", "add", "developer")  # a task's role must exist
    dep = make(fleet, "Dependency")
    parent = make(fleet, "Parent", "-t", "epic")
    work = tmp_path / "work"
    work.mkdir()
    record = data(
        fleet,
        "bd",
        "create",
        "Fix the login bug",
        "-d",
        "The form posts twice.",
        "-p",
        "1",
        "-t",
        "bug",
        "-l",
        "web",
        "-l",
        "auth",
        "--deps",
        f"{dep},related:{parent}",
        "--parent",
        parent,
        "--acceptance",
        "One request per click.",
        "--design",
        "Debounce the button.",
        "--coder",
        "codex",
        "--model",
        "gpt-5",
        "--role",
        "developer",
        "--cwd",
        "work",
        "--max-seconds",
        "600",
        "--max-attempts",
        "2",
    )
    assert ID_PATTERN.match(record["id"])
    expected = {
        "title": "Fix the login bug",
        "description": "The form posts twice.",
        "acceptance_criteria": "One request per click.",
        "design": "Debounce the button.",
        "status": "open",
        "priority": 1,
        "issue_type": "bug",
        "labels": ["auth", "web"],
        "cwd": str(work),
        "coder": "codex",
        "model": "gpt-5",
        "role": "developer",
        "max_seconds": 600.0,
        "max_attempts": 2,
    }
    assert {k: record[k] for k in expected} == expected
    assert [(d["depends_on_id"], d["type"]) for d in record["dependencies"]] == [
        (dep, "blocks"),
        (parent, "related"),
        (parent, "parent-child"),
    ]
    assert all(d["issue_id"] == record["id"] for d in record["dependencies"])
    assert record["created_at"] == record["updated_at"]
    assert tree_tasks(home)[record["id"]] == record


def test_create_takes_the_title_as_option_and_records_the_callers_cwd(
    fleet: Fleet, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    task_id = make(fleet, "--title", "From the option")
    stored = tree_tasks(home)[task_id]
    assert stored["title"] == "From the option"
    assert stored["cwd"] == str(tmp_path)
    assert stored["priority"] == 2 and stored["issue_type"] == "task"
    same = make(fleet, "Same", "--title", "Same")
    assert tree_tasks(home)[same]["title"] == "Same"


# --- list and show ---------------------------------------------------------------------------


def test_list_filters_and_orders_by_priority_then_age(fleet: Fleet) -> None:
    low = make(fleet, "Low", "-p", "3", "--coder", "shell", "--command", "true")
    high = make(fleet, "High", "-p", "0", "-l", "urgent")
    mid_old = make(fleet, "Mid old", "-p", "1", "-l", "urgent")
    mid_new = make(fleet, "Mid new", "-p", "1")
    gone = make(fleet, "Gone", "-p", "0")
    ok(fleet, "bd", "close", gone)
    ok(fleet, "bd", "update", mid_new, "-s", "blocked")

    assert ids(data(fleet, "bd", "list")) == [high, mid_old, mid_new, low]
    assert ids(data(fleet, "bd", "list", "--all")) == [high, gone, mid_old, mid_new, low]
    assert ids(data(fleet, "bd", "list", "--status", "closed")) == [gone]
    statuses = ("--status", "open", "--status", "blocked")
    assert ids(data(fleet, "bd", "list", *statuses)) == [high, mid_old, mid_new, low]
    assert ids(data(fleet, "bd", "list", "--label", "urgent")) == [high, mid_old]
    assert ids(data(fleet, "bd", "list", "--coder", "shell")) == [low]
    rows = data(fleet, "bd", "list")
    assert rows[0]["title"] == "High" and rows[0]["labels"] == ["urgent"]
    text = ok(fleet, "bd", "list").out.splitlines()
    assert text[0].split() == ["ID", "P", "STATUS", "TYPE", "CODER", "TITLE"]
    assert [line.split()[0] for line in text[1:]] == [high, mid_old, mid_new, low]
    assert ok(fleet, "bd", "list", "--label", "nothing").out == "no tasks\n"


def test_show_gives_dependencies_and_dependents(fleet: Fleet) -> None:
    base = make(fleet, "Base")
    epic = make(fleet, "Epic", "-t", "epic")
    work = make(fleet, "Work", "--deps", base, "--parent", epic, "-d", "Details here.")
    later = make(fleet, "Later", "--deps", work)
    shown = data(fleet, "bd", "show", work)
    assert shown["id"] == work and shown["title"] == "Work"
    assert shown["description"] == "Details here."
    assert shown["dependencies"] == [
        {"id": base, "type": "blocks", "status": "open", "title": "Base"},
        {"id": epic, "type": "parent-child", "status": "open", "title": "Epic"},
    ]
    assert shown["dependents"] == [
        {"id": later, "type": "blocks", "status": "open", "title": "Later"}
    ]
    assert data(fleet, "bd", "show", base)["dependents"] == [
        {"id": work, "type": "blocks", "status": "open", "title": "Work"}
    ]
    text = ok(fleet, "bd", "show", work).out
    assert text.startswith(f"{work}  Work\nstatus: open   priority: P2   type: task\n")
    assert (
        f"depends on:\n  {base} (blocks) [open] Base\n  {epic} (parent-child) [open] Epic" in text
    )
    assert f"dependents:\n  {later} (blocks) [open] Later" in text
    assert "description:\nDetails here." in text


# --- ready and blocked -----------------------------------------------------------------------


def test_ready_orders_by_priority_then_oldest_and_honours_the_limit(fleet: Fleet) -> None:
    p2_old = make(fleet, "P2 old")
    p1 = make(fleet, "P1", "-p", "1")
    p2_new = make(fleet, "P2 new")
    p0 = make(fleet, "P0", "-p", "0")
    blocker = make(fleet, "Blocker", "-p", "4")
    waiting = make(fleet, "Waits", "-p", "0", "--deps", blocker)
    parent = make(fleet, "Blocked parent", "-p", "0", "--deps", blocker)
    child = make(fleet, "Child of a blocked parent", "-p", "0", "--parent", parent)
    held = make(fleet, "Held")
    ok(fleet, "bd", "update", held, "-s", "blocked")
    done = make(fleet, "Done", "-p", "0")
    ok(fleet, "bd", "close", done)

    order = [p0, p1, p2_old, p2_new, blocker]
    assert ids(data(fleet, "bd", "ready")) == order
    assert ids(data(fleet, "bd", "ready", "--limit", "2")) == [p0, p1]
    assert ids(data(fleet, "bd", "ready", "--limit", "0")) == order
    assert data(fleet, "bd", "ready")[0]["title"] == "P0"
    assert not {waiting, parent, child, held, done} & set(ids(data(fleet, "bd", "ready")))

    ok(fleet, "bd", "close", blocker)
    assert ids(data(fleet, "bd", "ready")) == [p0, waiting, parent, child, p1, p2_old, p2_new]


def test_ready_leaves_out_deferred_work(fleet: Fleet, tmp_path: Path) -> None:
    source = tmp_path / "deferred.jsonl"
    rows = [
        {"id": "bd-later", "title": "Later", "defer_until": "2999-01-01T00:00:00Z"},
        {"id": "bd-past", "title": "Was deferred", "defer_until": "2001-01-01T00:00:00Z"},
        {"id": "bd-epic", "title": "Deferred epic", "status": "deferred", "issue_type": "epic"},
        {
            "id": "bd-kid",
            "title": "Child of a deferred epic",
            "dependencies": [{"depends_on_id": "bd-epic", "type": "parent-child"}],
        },
        {"id": "bd-now", "title": "Now", "priority": 3},
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ok(fleet, "bd", "import", str(source))
    assert ids(data(fleet, "bd", "ready")) == ["bd-past", "bd-now"]


def test_blocked_names_what_blocks_each_task(fleet: Fleet) -> None:
    first = make(fleet, "First blocker")
    second = make(fleet, "Second blocker")
    both = make(fleet, "Needs both", "-p", "1", "--deps", f"{first},{second}")
    kid = make(fleet, "Kid", "--parent", both)
    held = make(fleet, "Held", "-p", "3")
    ok(fleet, "bd", "update", held, "-s", "blocked")
    ok(fleet, "bd", "close", second)

    rows = data(fleet, "bd", "blocked")
    assert [(r["id"], r["blocked_by"], r["blocked_by_count"]) for r in rows] == [
        (both, [first], 1),
        (kid, [both], 1),
        (held, [], 0),
    ]
    assert rows[0]["title"] == "Needs both"
    table = ok(fleet, "bd", "blocked").out.splitlines()
    assert table[0].split() == ["ID", "P", "STATUS", "BLOCKED", "BY", "TITLE"]
    assert table[1].split()[:4] == [both, "P1", "open", first]
    ok(fleet, "bd", "close", first)
    assert ids(data(fleet, "bd", "blocked")) == [held]


# --- update, close, reopen -------------------------------------------------------------------


def test_update_changes_fields_and_labels(fleet: Fleet, home: Path, tmp_path: Path) -> None:
    task_id = make(fleet, "Before", "-l", "keep", "-l", "drop")
    updated = data(
        fleet,
        "bd",
        "update",
        task_id,
        "--title",
        "After",
        "-p",
        "0",
        "-d",
        "New text",
        "--coder",
        "gemini",
        "--cwd",
        str(tmp_path),
        "--add-label",
        "new",
        "--remove-label",
        "drop",
    )
    assert updated["title"] == "After" and updated["priority"] == 0
    assert updated["description"] == "New text" and updated["coder"] == "gemini"
    assert updated["cwd"] == str(tmp_path)
    assert updated["labels"] == ["keep", "new"]
    assert updated["updated_at"] > updated["created_at"]
    assert tree_tasks(home)[task_id] == updated
    assert ok(fleet, "bd", "update", task_id, "-a", "alice").out == f"updated {task_id}\n"
    assert tree_tasks(home)[task_id]["assignee"] == "alice"


def test_close_with_a_reason_and_reopen(fleet: Fleet, home: Path) -> None:
    one, two = make(fleet, "One"), make(fleet, "Two")
    result = ok(fleet, "bd", "close", one, two, "--reason", "shipped in v2")
    assert result.out == f"closed {one}\nclosed {two}\n"
    assert len(commits(home)) == 3  # both closed in one commit
    for task_id in (one, two):
        shown = data(fleet, "bd", "show", task_id)
        assert shown["status"] == "closed"
        assert shown["close_reason"] == "shipped in v2"
        assert shown["closed_at"] >= shown["created_at"]
    assert ok(fleet, "bd", "reopen", one).out == f"reopened {one}\n"
    shown = data(fleet, "bd", "show", one)
    assert shown["status"] == "open"
    assert "close_reason" not in shown and "closed_at" not in shown
    assert ids(data(fleet, "bd", "ready")) == [one]


# --- dependencies ----------------------------------------------------------------------------


def test_dep_add_remove_and_tree(fleet: Fleet) -> None:
    root, mid, leaf = make(fleet, "Root"), make(fleet, "Mid"), make(fleet, "Leaf")
    assert ok(fleet, "bd", "dep", "add", root, mid).out == f"{root} depends on {mid} (blocks)\n"
    ok(fleet, "bd", "dep", "add", mid, leaf, "--type", "parent-child")
    tree = data(fleet, "bd", "dep", "tree", root)
    assert tree == {
        "id": root,
        "type": "",
        "status": "open",
        "title": "Root",
        "dependencies": [
            {
                "id": mid,
                "type": "blocks",
                "status": "open",
                "title": "Mid",
                "dependencies": [
                    {
                        "id": leaf,
                        "type": "parent-child",
                        "status": "open",
                        "title": "Leaf",
                        "dependencies": [],
                    }
                ],
            }
        ],
    }
    assert ok(fleet, "bd", "dep", "tree", root).out == (
        f"{root} [open] Root\n  (blocks) {mid} [open] Mid\n    (parent-child) {leaf} [open] Leaf\n"
    )
    assert ids(data(fleet, "bd", "ready")) == [mid, leaf]  # a child waits only on a blocked parent
    removed = ok(fleet, "bd", "dep", "remove", root, mid)
    assert removed.out == f"{root} no longer depends on {mid}\n"
    assert data(fleet, "bd", "show", root)["dependencies"] == []
    assert ids(data(fleet, "bd", "ready")) == [root, mid, leaf]


# --- import and export -----------------------------------------------------------------------


def test_export_then_import_round_trips_through_the_cli(
    fleet: Fleet, home: Path, tmp_path: Path
) -> None:
    base = make(fleet, "Base", "-l", "x", "--coder", "claude", "--model", "opus")
    top = make(fleet, "Top", "-p", "0", "--deps", base, "--acceptance", "It works.")
    ok(fleet, "bd", "close", base, "--reason", "done")
    exported = tmp_path / "out.jsonl"
    assert ok(fleet, "bd", "export", "-o", str(exported)).err == f"exported 2 tasks to {exported}\n"
    assert exported.read_text() == ok(fleet, "bd", "export").out
    assert {json.loads(line)["id"] for line in exported.read_text().splitlines()} == {base, top}

    other = tmp_path / "other-home"
    report = json.loads(
        ok(fleet, "--home", str(other), "bd", "import", str(exported), "--json").out
    )
    assert (report["created"], report["updated"], report["unchanged"]) == (2, 0, 0)
    assert sorted(report["ids"]) == sorted([base, top])
    assert tree_tasks(other) == tree_tasks(home)
    assert ok(fleet, "--home", str(other), "bd", "export").out == exported.read_text()

    before = head(other)
    again = ok(fleet, "--home", str(other), "bd", "import", str(exported))
    assert again.out == f"imported 0 new, 0 updated, 2 unchanged from {exported}\n"
    assert head(other) == before


def test_import_updates_in_place_and_keeps_ids(fleet: Fleet, home: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id":"bd-a1","title":"One"}\n{"id":"bd-b2","title":"Two","priority":1}\n')
    ok(fleet, "bd", "import", str(source))
    source.write_text('{"id":"bd-a1","title":"One, renamed"}\n{"id":"bd-c3","title":"Three"}\n')
    report = data(fleet, "bd", "import", str(source))
    assert (report["created"], report["updated"], report["unchanged"]) == (1, 1, 0)
    tasks = tree_tasks(home)
    assert sorted(tasks) == ["bd-a1", "bd-b2", "bd-c3"]
    assert tasks["bd-a1"]["title"] == "One, renamed"
    assert tasks["bd-b2"]["priority"] == 1


def test_import_dry_run_changes_nothing(fleet: Fleet, home: Path, tmp_path: Path) -> None:
    make(fleet, "Existing")
    before = head(home)
    source = tmp_path / "in.jsonl"
    source.write_text('{"id":"bd-a1","title":"One"}\n{"id":"bd-b2","title":"Two"}\n')
    result = ok(fleet, "bd", "import", str(source), "--dry-run")
    assert result.out == f"would import 2 new, 0 updated, 0 unchanged from {source}\n"
    report = data(fleet, "bd", "import", str(source), "--dry-run")
    assert report["dry_run"] is True and report["created"] == 2
    assert head(home) == before
    assert len(tree_tasks(home)) == 1


def created_ts(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(record["created_at"].replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize(
    "name", ["steveyegge-beads.jsonl", "ttrei-beads.jsonl", "0xhoneyjar-loa.jsonl"]
)
def test_ready_and_blocked_of_a_real_beads_export(fleet: Fleet, home: Path, name: str) -> None:
    text = (DATA / name).read_text(encoding="utf-8")
    # an import brings no claim on a process: in_progress comes in as open
    issues = [
        {**r, "status": "open"} if r.get("status") == "in_progress" else r for r in raw_issues(text)
    ]
    report = data(fleet, "bd", "import", str(DATA / name))
    assert report["created"] == len(issues)
    assert len(commits(home)) == 1

    by_id = {r["id"]: r for r in issues}
    expected = reference_ready(issues, time.time())
    ready = ids(data(fleet, "bd", "ready", "--limit", "0"))
    assert set(ready) == expected
    assert ready == sorted(expected, key=lambda i: (by_id[i]["priority"], created_ts(by_id[i]), i))
    assert ids(data(fleet, "bd", "ready", "--limit", "3")) == ready[:3]

    blocked = {r["id"] for r in data(fleet, "bd", "blocked") if r["blocked_by"]}
    assert blocked == reference_blocked(issues)


# --- bad input: exit 2, the problem and its fix named, the store untouched ----------------------


@pytest.fixture
def seeded(fleet: Fleet, home: Path) -> dict[str, str]:
    """Two tasks, `b` blocked by `a`; the store's head."""
    a = make(fleet, "Task a")
    b = make(fleet, "Task b", "--deps", a)
    return {"a": a, "b": b}


def refused(fleet: Fleet, home: Path, args: list[str], *wanted: str) -> str:
    """Run a bad command: exit 2, each of `wanted` in its message, the ref and tree unmoved."""
    before, tasks = head(home), tree_tasks(home) if head(home) else {}
    result: Result = fleet(*args)
    assert result.code == 2, (args, result)
    for text in wanted:
        assert re.search(text, result.err), (args, text, result.err)
    assert re.search(r"hint: |Try '.* --help' for help", result.err), result.err
    assert head(home) == before
    assert (tree_tasks(home) if before else {}) == tasks
    assert result.out == ""
    return result.err


UNKNOWN = "fl-zzzz"
NOT_FOUND = rf"task {UNKNOWN} does not exist"


@pytest.mark.parametrize(
    "args",
    [
        ["bd", "show", UNKNOWN],
        ["bd", "update", UNKNOWN, "-p", "1"],
        ["bd", "close", UNKNOWN],
        ["bd", "reopen", UNKNOWN],
        ["bd", "dep", "add", UNKNOWN, "{a}"],
        ["bd", "dep", "remove", UNKNOWN, "{a}"],
        ["bd", "dep", "tree", UNKNOWN],
        ["bd", "close", "{a}", UNKNOWN],
    ],
)
def test_an_unknown_id_is_refused(
    fleet: Fleet, home: Path, seeded: dict[str, str], args: list[str]
) -> None:
    err = refused(fleet, home, [a.format(**seeded) for a in args], NOT_FOUND)
    assert "fleet bd list --all" in err


def test_an_unknown_dependency_target_is_refused(
    fleet: Fleet, home: Path, seeded: dict[str, str]
) -> None:
    refused(fleet, home, ["bd", "dep", "add", seeded["a"], UNKNOWN], NOT_FOUND)
    missing = f"dependency {UNKNOWN} does not exist"
    refused(fleet, home, ["bd", "create", "x", "--deps", UNKNOWN], missing, "create it first")
    refused(fleet, home, ["bd", "create", "x", "--deps", f"related:{UNKNOWN}"], missing)
    refused(fleet, home, ["bd", "create", "x", "--parent", UNKNOWN], missing)
    refused(fleet, home, ["bd", "create", "x", "--deps", f"{seeded['a']},{UNKNOWN}"], missing)


def test_removing_a_dependency_that_is_not_there_is_refused(
    fleet: Fleet, home: Path, seeded: dict[str, str]
) -> None:
    a, b = seeded["a"], seeded["b"]
    err = refused(fleet, home, ["bd", "dep", "remove", a, b], f"task {a} does not depend on {b}")
    assert f"fleet bd show {a}" in err


@pytest.mark.parametrize("kind", ["blocks", "parent-child"])
def test_a_dependency_that_makes_a_cycle_is_refused_naming_it(
    fleet: Fleet, home: Path, seeded: dict[str, str], kind: str
) -> None:
    a, b = seeded["a"], seeded["b"]
    c = make(fleet, "Task c", "--deps", b)
    err = refused(
        fleet,
        home,
        ["bd", "dep", "add", a, c, "--type", kind],
        re.escape(f"{a} -> {c} would make a cycle: {a} -> {c} -> {b} -> {a}"),
    )
    assert "fleet bd dep remove" in err
    refused(fleet, home, ["bd", "dep", "add", a, a], f"task {a} cannot depend on itself")


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["bd", "create", "x", "-p", "5"], "5 is not in the range 0<=x<=4"),
        (["bd", "create", "x", "-p", "-1"], "-1 is not in the range 0<=x<=4"),
        (["bd", "create", "x", "--priority", "high"], "'high' is not a valid integer range"),
        (["bd", "update", "{a}", "-p", "9"], "9 is not in the range 0<=x<=4"),
    ],
)
def test_a_priority_out_of_range_is_refused(
    fleet: Fleet, home: Path, seeded: dict[str, str], args: list[str], problem: str
) -> None:
    args = [a.format(**seeded) for a in args]
    refused(fleet, home, args, "Invalid value for '-p' / '--priority'", re.escape(problem))


def test_a_cwd_that_does_not_exist_is_refused(
    fleet: Fleet, home: Path, seeded: dict[str, str], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere"
    problem = f"working directory {missing} does not exist"
    refused(fleet, home, ["bd", "create", "x", "--cwd", str(missing)], problem, "--cwd DIR")
    refused(fleet, home, ["bd", "update", seeded["a"], "--cwd", str(missing)], problem)
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    refused(fleet, home, ["bd", "create", "x", "--cwd", str(a_file)], "does not exist")


BAD_IDS = ["FL-ABCD", "fl_abcd", "../etc", "fl-abcd/x", "fl-", "fl-abcd\n", "fl-ab\nc", "fl-a b"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_an_id_that_fails_the_pattern_is_refused(
    fleet: Fleet, home: Path, seeded: dict[str, str], bad: str
) -> None:
    a = seeded["a"]
    for args in (
        ["bd", "show", bad],
        ["bd", "update", bad, "-p", "1"],
        ["bd", "close", a, bad],
        ["bd", "reopen", bad],
        ["bd", "dep", "add", a, bad],
        ["bd", "dep", "add", bad, a],
        ["bd", "dep", "tree", bad],
        ["bd", "create", "x", "--deps", f"{a},{bad}" if bad.strip() == bad else bad + "x"],
        ["bd", "create", "x", "--parent", bad],
    ):
        err = refused(fleet, home, args, "is not valid: ids look like 'fl-3k9x'")
        assert "fleet bd list" in err


def test_malformed_jsonl_imports_nothing_and_names_the_lines(
    fleet: Fleet, home: Path, seeded: dict[str, str], tmp_path: Path
) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text(
        '{"id":"bd-ok1","title":"Fine"}\n'
        "{not json\n"
        '{"id":"bd-ok2","title":"Fine too"}\n'
        '{"id":"NOT VALID","title":"Bad id"}\n'
        '{"id":"bd-ok3","title":"Bad priority","priority":9}\n'
        '{"id":"bd-ok4\\n","title":"A newline in the id"}\n'
    )
    err = refused(
        fleet,
        home,
        ["bd", "import", str(source)],
        f"{source} has 4 malformed line\\(s\\), nothing was imported",
        "line 2: ",
        "line 4: ",
        "line 5: ",
        "line 6: ",
        "fix those lines",
    )
    assert "line 1:" not in err and "line 3:" not in err
    refused(fleet, home, ["bd", "import", str(source), "--dry-run"], "line 2: ")
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b'{"id":"bd-x1","title":"\xff\xfe"}\n')
    refused(fleet, home, ["bd", "import", str(binary)], "is not UTF-8 text")
    refused(fleet, home, ["bd", "import", str(tmp_path / "absent.jsonl")], "does not exist")


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["bd", "create"], "a task needs a title"),
        (["bd", "create", "   "], "a task needs a title"),
        (["bd", "create", "x" * 501], "longer than 500 characters"),
        (["bd", "create", "One", "--title", "Two"], "two titles given"),
        (["bd", "create", "x", "--deps", "weird type:{a}"], "dependency type 'weird type'"),
        (["bd", "create", "x", "--coder", "shell"], "a shell task needs a command"),
        (["bd", "create", "x", "--max-seconds", "0"], "--max-seconds must be a positive number"),
        (["bd", "update", "{a}", "-s", "done"], "status 'done' is not valid"),
        (["bd", "update", "{a}", "--title", " "], "the title cannot be empty"),
        (["bd", "update", "{a}", "--title", "x" * 501], "longer than 500 characters"),
        (["bd", "update", "{a}", "--max-seconds", "-5"], "--max-seconds must be a positive number"),
        (["bd", "update", "{a}", "--max-cost", "0"], "--max-cost must be a positive number"),
        (["bd", "create", "x", "--max-cost", "-1"], "--max-cost must be a positive number"),
        (["bd", "create", "x", "--max-cost", "nan"], "--max-cost must be a positive number"),
        (["bd", "update", "{a}", "--max-seconds", "inf"], "--max-seconds must be a positive"),
        (["bd", "update", "{a}", "--max-attempts", "0"], "0 is not in the range 1<=x<=100"),
        (["bd", "dep", "add", "{b}", "{a}", "--type", "Bad!"], "dependency type 'Bad!'"),
        (["bd", "list", "--status", "done"], "status 'done' is not valid"),
        (["bd", "ready", "--limit", "-1"], "--limit"),
        (["bd", "export", "-o", "/nonexistent/out.jsonl"], "cannot write /nonexistent/out.jsonl"),
    ],
)
def test_other_bad_input_is_refused(
    fleet: Fleet, home: Path, seeded: dict[str, str], args: list[str], problem: str
) -> None:
    refused(fleet, home, [a.format(**seeded) for a in args], re.escape(problem))
