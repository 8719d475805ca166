"""beads JSONL import/export over real exports, readiness against beads' rules, graph basics.

Expectations about the real files are computed here from the raw JSON, independently of
`supervisor.queue.beads`, and cross-checked against the figures in `tests/data/beads/README.md`.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from supervisor.graph import Node, blocked_by, find_cycle
from supervisor.model import FLEET_FIELDS, TASK_FIELDS, Dependency, Run, Task
from supervisor.queue.beads import (
    FLEET_KEYS,
    ImportPlan,
    export_jsonl,
    from_beads,
    parse_jsonl,
    to_beads,
)
from supervisor.store.store import Change, Snapshot, Store

DATA = Path(__file__).parents[1] / "data" / "beads"
FILES = sorted(p.name for p in DATA.glob("*.jsonl"))

# The README's table: issues (lines), statuses, dependency edges by type.
README_TABLE: dict[str, tuple[int, dict[str, int], dict[str, int]]] = {
    "ttrei-beads.jsonl": (
        484,
        {"closed": 451, "open": 29, "in_progress": 4},
        {"parent-child": 92, "blocks": 88, "discovered-from": 24, "related": 1},
    ),
    "steveyegge-beads.jsonl": (
        704,
        {"closed": 403, "open": 291, "hooked": 4, "pinned": 3, "in_progress": 3},
        {"blocks": 377, "parent-child": 359, "discovered-from": 7, "tracks": 2},
    ),
    "navarrepratt-atari.jsonl": (
        131,
        {"closed": 130, "tombstone": 1},
        {"blocks": 111, "parent-child": 96, "discovered-from": 1},
    ),
    "0xhoneyjar-loa.jsonl": (
        82,
        {"closed": 65, "open": 16, "in_progress": 1},
        {"parent-child": 24, "blocks": 11},
    ),
    "sermakarevich-fleet.jsonl": (9, {"closed": 9}, {}),
    "nvidia-skyhook.jsonl": (7, {"closed": 6, "open": 1}, {"blocks": 11, "parent-child": 6}),
}

NOW = datetime.fromisoformat("2026-06-01T00:00:00+00:00").timestamp()


def read(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def raw_lines(text: str) -> list[tuple[int, dict[str, Any]]]:
    return [(n, json.loads(line)) for n, line in enumerate(text.split("\n"), 1) if line.strip()]


def raw_issues(text: str) -> list[dict[str, Any]]:
    return [
        r
        for _, r in raw_lines(text)
        if r.get("_type", "issue") == "issue" and r.get("status") != "tombstone"
    ]


def edges(record: dict[str, Any], kinds: set[str]) -> list[str]:
    deps = record.get("dependencies") or []
    return [d["depends_on_id"] for d in deps if d.get("type", "blocks") in kinds]


def imported(text: str) -> ImportPlan:
    plan = parse_jsonl(text)
    assert plan.errors == []
    return plan


# --- reference readiness: beads' documented rules, written out plainly -------------------------

BLOCKING = {"blocks", "conditional-blocks", "waits-for"}
NOT_WORK = {"merge-request", "gate", "molecule", "message", "agent", "role", "rig"}
RESOLVED = {"closed", "pinned"}

# A dependency whose target is not among the records (steveyegge's file has 30 such edges, to
# wisps and issues that were not exported; `external:` targets are never in a file) does not
# block here. bd's own import skips such edges and reports them as `skipped_dependencies`, so
# they cannot block in bd either; fleet keeps the edge so that it round-trips, and
# `supervisor.graph` treats a target it does not have as resolved.


def reference_blocked(records: list[dict[str, Any]]) -> set[str]:
    by_id = {r["id"]: r for r in records}

    def status(issue_id: str) -> str:
        return str(by_id[issue_id].get("status") or "open")

    def is_blocked(issue_id: str, path: frozenset[str]) -> bool:
        if status(issue_id) in RESOLVED or issue_id in path:
            return False
        record = by_id[issue_id]
        if any(t in by_id and status(t) not in RESOLVED for t in edges(record, BLOCKING)):
            return True
        parents = [p for p in edges(record, {"parent-child"}) if p in by_id]
        return any(is_blocked(p, path | {issue_id}) for p in parents)

    return {i for i in by_id if is_blocked(i, frozenset())}


def reference_ready(records: list[dict[str, Any]], now: float) -> set[str]:
    by_id = {r["id"]: r for r in records}
    blocked = reference_blocked(records)

    def later(record: dict[str, Any]) -> bool:
        value = record.get("defer_until") or ""
        return bool(value) and datetime.fromisoformat(value).timestamp() > now

    def deferred(record: dict[str, Any]) -> bool:
        parents = [by_id[p] for p in edges(record, {"parent-child"}) if p in by_id]
        return later(record) or any(p.get("status") == "deferred" or later(p) for p in parents)

    return {
        r["id"]
        for r in records
        if (r.get("status") or "open") == "open"
        and r["id"] not in blocked
        and not r.get("ephemeral")
        and not r.get("is_template")
        and (r.get("issue_type") or "task") not in NOT_WORK
        and not deferred(r)
    }


def graph_of(plan: ImportPlan) -> dict[str, Node]:
    return {t.id: Node.of(t) for t in plan.tasks}


def ready(tasks: list[Task], now: float) -> list[str]:
    """The ready set as fleet computes it (one SQL query over its cache), in dispatch order."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "home")

        def build(snap: Snapshot) -> tuple[Change, None]:
            change = Change("import", "imported")
            for task in tasks:
                change.put(task)
            return change, None

        store.mutate(build)
        store.cache.sync()
        found = store.cache.ready(now)
        store.close()
    return found


# --- the real exports ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", FILES)
def test_import_matches_the_raw_json(name: str) -> None:
    text = read(name)
    lines = raw_lines(text)
    issues = raw_issues(text)
    plan = imported(text)
    assert [t.id for t in plan.tasks] == [r["id"] for r in issues]
    assert Counter(t.status for t in plan.tasks) == Counter(r["status"] for r in issues)
    assert Counter(t.issue_type for t in plan.tasks) == Counter(r["issue_type"] for r in issues)
    got_edges = Counter(d.type for t in plan.tasks for d in t.dependencies)
    assert got_edges == Counter(d["type"] for r in issues for d in r.get("dependencies") or [])
    tombstones = [n for n, r in lines if r.get("status") == "tombstone"]
    assert [n for n, _ in plan.skipped] == tombstones


@pytest.mark.parametrize("name", FILES)
def test_import_agrees_with_the_readme_table(name: str) -> None:
    lines, statuses, dep_edges = README_TABLE[name]
    plan = imported(read(name))
    assert len(plan.tasks) + len(plan.skipped) == lines
    found = Counter(t.status for t in plan.tasks) + Counter(tombstone=len(plan.skipped))
    assert found == Counter(statuses)
    assert Counter(d.type for t in plan.tasks for d in t.dependencies) == Counter(dep_edges)


@pytest.mark.parametrize("name", FILES)
def test_ready_set_follows_beads_rules(name: str) -> None:
    text = read(name)
    assert set(ready(imported(text).tasks, NOW)) == reference_ready(raw_issues(text), NOW)


@pytest.mark.parametrize("name", FILES)
def test_blocked_set_follows_beads_rules(name: str) -> None:
    text = read(name)
    issues = raw_issues(text)
    by_id = {r["id"]: r for r in issues}
    got = blocked_by(graph_of(imported(text)))
    assert set(got) == reference_blocked(issues)
    for issue_id, why in got.items():
        open_targets = [
            t
            for t in edges(by_id[issue_id], BLOCKING)
            if t in by_id and by_id[t]["status"] not in RESOLVED
        ]
        if open_targets:
            assert why == open_targets
        else:  # blocked through a blocked parent
            assert len(why) == 1 and why[0] in got
            assert why[0] in edges(by_id[issue_id], {"parent-child"})


def test_steveyegge_queue_shapes() -> None:
    text = read("steveyegge-beads.jsonl")
    plan = imported(text)
    ids = {t.id for t in plan.tasks}
    open_ids = {t.id for t in plan.tasks if t.status == "open"}
    blocked_by_open = [t for t in plan.tasks if set(t.blockers()) & open_ids]
    assert len(blocked_by_open) == 238  # README: "238 issues blocked by an open issue"
    wisps = {t.id for t in plan.tasks if t.extra.get("ephemeral")}
    assert len(wisps) == 552
    assert not wisps & set(ready(plan.tasks, NOW))
    missing = [d for t in plan.tasks for d in t.dependencies if d.depends_on_id not in ids]
    assert len(missing) == 30


@pytest.mark.parametrize("name", FILES)
def test_import_export_import_gives_equal_tasks(name: str) -> None:
    first = imported(read(name))
    second = imported(export_jsonl(first.tasks))
    assert {t.id: t for t in second.tasks} == {t.id: t for t in first.tasks}
    assert second.skipped == []


@pytest.mark.parametrize("name", FILES)
def test_export_import_export_gives_identical_text(name: str) -> None:
    text = export_jsonl(imported(read(name)).tasks)
    assert export_jsonl(imported(text).tasks) == text
    assert len(text.splitlines()) == len(raw_issues(read(name)))


@pytest.mark.parametrize("name", FILES)
def test_export_keeps_every_field_but_the_counts(name: str) -> None:
    text = read(name)
    exported = {r["id"]: r for _, r in raw_lines(export_jsonl(imported(text).tasks))}
    for record in raw_issues(text):
        mine = exported[record["id"]]
        assert mine["_type"] == "issue"
        assert comparable(mine) == comparable(record)


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A record without the derived fields, and without the empty values of the fields fleet
    models (bd's export leaves those out too)."""
    derived = {"_type", "dependency_count", "dependent_count", "comment_count"}
    modeled = set(TASK_FIELDS)
    return {
        k: v
        for k, v in record.items()
        if k not in derived and not (k in modeled and v in ("", [], {}))
    }


def test_current_format_export_is_reproduced_byte_for_byte() -> None:
    text = read("sermakarevich-fleet.jsonl")  # written by bd 1.0.x: `_type`, comments, counts
    assert export_jsonl(imported(text).tasks) == text


# --- fields, defaults, counts, order ------------------------------------------------------------


def issue(issue_id: str, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"id": issue_id, "title": f"title of {issue_id}"}
    record.update(fields)
    return record


def jsonl(*records: dict[str, Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_fleet_fields_travel_in_metadata_fleet() -> None:
    task = Task(
        id="fl-3k9x",
        title="fix the parser",
        created_at="2026-05-01T10:00:00Z",
        metadata={"team": "core"},
        cwd="/work/repo",
        coder="claude",
        model="opus",
        max_seconds=600.0,
        max_attempts=3,
        not_before="2026-05-01T11:00:00Z",
        status_reason="rate limited",
        attempts=[{"n": 1, "outcome": "rate_limited"}],
        run=Run.from_dict({"pid": 4242, "actor": "host/1/0"}),
    )
    assert {*FLEET_FIELDS, "status_reason", "not_before", "attempts", "run"} <= set(FLEET_KEYS)
    record = to_beads(task)
    assert not set(FLEET_KEYS) & set(record)
    assert record["metadata"]["team"] == "core"
    assert record["metadata"]["fleet"]["cwd"] == "/work/repo"
    assert record["metadata"]["fleet"]["run"] == {"pid": 4242, "actor": "host/1/0"}
    assert from_beads(record) == task
    assert parse_jsonl(export_jsonl([task])).tasks == [task]


def test_unknown_keys_in_metadata_fleet_are_kept() -> None:
    record = issue("fl-a1", metadata={"fleet": {"coder": "codex", "later_field": 1}, "x": 2})
    task = from_beads(record)
    assert task.coder == "codex"
    assert task.metadata == {"x": 2, "fleet": {"later_field": 1}}
    assert to_beads(task)["metadata"] == {"x": 2, "fleet": {"later_field": 1, "coder": "codex"}}


def test_missing_fields_take_beads_import_defaults() -> None:
    task = from_beads(issue("bd-a1"))
    assert (task.priority, task.status, task.issue_type) == (0, "open", "task")
    assert Task(id="bd-a1", title="x").priority == 2  # what fleet itself defaults to
    assert to_beads(task)["priority"] == 0


def test_counts_are_dropped_on_import_and_computed_on_export() -> None:
    comments = [{"id": "c1", "issue_id": "bd-c", "author": "a", "text": "t", "created_at": "x"}]
    records = [
        issue("bd-a", dependencies=[{"depends_on_id": "bd-b"}, {"depends_on_id": "bd-c"}]),
        issue("bd-b", dependencies=[{"depends_on_id": "bd-c", "type": "parent-child"}]),
        issue("bd-c", comments=comments * 2, dependency_count=7, comment_count=9),
    ]
    plan = imported(jsonl(*records))
    assert not any(k in t.extra for t in plan.tasks for k in ("dependency_count", "comment_count"))
    out = {r["id"]: r for _, r in raw_lines(export_jsonl(plan.tasks))}
    counts = {
        i: (r["dependency_count"], r["dependent_count"], r["comment_count"]) for i, r in out.items()
    }
    assert counts == {"bd-a": (2, 0, 0), "bd-b": (1, 1, 0), "bd-c": (0, 2, 2)}


def test_export_order_is_priority_then_newest_then_id() -> None:
    records = [
        issue("bd-old", priority=1, created_at="2026-01-01T10:00:00+02:00"),  # 08:00 UTC
        issue("bd-new", priority=1, created_at="2026-01-01T09:00:00Z"),
        issue("bd-zz", priority=0, created_at="2025-01-01T00:00:00Z"),
        issue("bd-tie", priority=1, created_at="2026-01-01T09:00:00Z"),
    ]
    out = [r["id"] for _, r in raw_lines(export_jsonl(imported(jsonl(*records)).tasks))]
    assert out == ["bd-zz", "bd-new", "bd-tie", "bd-old"]


def test_times_dependency_metadata_and_external_targets_are_kept_as_given() -> None:
    dep = {
        "issue_id": "bd-a",
        "depends_on_id": "external:billing:invoices",
        "type": "blocks",
        "created_at": "2025-10-27T14:48:57.123456789-07:00",
        "metadata": '{"gate": "all-children"}',
        "thread_id": "",
    }
    record = issue("bd-a", created_at="2025-11-02T21:58:07+01:00", dependencies=[dep])
    line = export_jsonl(imported(jsonl(record)).tasks)
    back = json.loads(line)
    assert back["created_at"] == "2025-11-02T21:58:07+01:00"
    assert back["dependencies"] == [dep]


def test_strings_are_escaped_as_bd_writes_them() -> None:
    title = "render <b> & <i> \u2028 ünïcode"
    line = export_jsonl([from_beads(issue("bd-a", title=title))])
    assert "<" not in line and "&" not in line and "\\u003c" in line and "ünïcode" in line
    assert parse_jsonl(line).tasks[0].title == title


def test_legacy_wisp_flag_reads_as_ephemeral() -> None:
    task = from_beads(issue("bd-wisp-a1", wisp=True))
    assert task.extra == {"ephemeral": True}
    assert ready([task], NOW) == []  # a wisp is never ready work


# --- what is skipped, what is an error ----------------------------------------------------------


def test_non_issue_records_and_tombstones_are_skipped_and_reported() -> None:
    text = "\n".join(
        [
            json.dumps({"_schema": "beads-jsonl/1", "_sort": "stable-v1"}),
            json.dumps({"_type": "memory", "key": "k", "value": "v"}),
            "",
            json.dumps({"_type": "issue", **issue("bd-a1")}),
            "   ",
            json.dumps(issue("bd-gone", status="tombstone", deleted_at="2026-01-01T00:00:00Z")),
            json.dumps({"_type": "interaction", "id": "int-1"}),
            json.dumps(issue("bd-a2")),
        ]
    )
    plan = parse_jsonl(text)
    assert plan.errors == []
    assert [t.id for t in plan.tasks] == ["bd-a1", "bd-a2"]
    assert [n for n, _ in plan.skipped] == [1, 2, 6, 7]
    reasons = " ".join(why for _, why in plan.skipped)
    for word in ("header", "memory", "tombstone", "interaction"):
        assert word in reasons


def test_bad_lines_are_errors_by_line_number_and_nothing_else_is_lost() -> None:
    text = "\n".join(
        [
            json.dumps(issue("bd-ok1")),
            '{"id": "bd-x1", "title": ',
            "",
            json.dumps(issue("Not An Id")),
            json.dumps(issue("bd-p7", priority=7)),
            json.dumps({"id": "bd-nt", "status": "open"}),
            json.dumps({"_type": "memory", "key": "k", "value": "v"}),
            json.dumps(issue("bd-ok2")),
        ]
    )
    plan = parse_jsonl(text)
    assert [n for n, _ in plan.errors] == [2, 4, 5, 6]
    messages = dict(plan.errors)
    assert "JSON" in messages[2]
    assert "Not An Id" in messages[4]
    assert "priority 7" in messages[5]
    assert "title" in messages[6]
    assert [t.id for t in plan.tasks] == ["bd-ok1", "bd-ok2"]
    assert [n for n, _ in plan.skipped] == [7]


@pytest.mark.parametrize(
    ("record", "words"),
    [
        (issue("bd-a", status="closed"), "closed_at is missing"),
        (issue("bd-a", closed_at="2026-01-01T00:00:00Z"), "status is open"),
        (issue("bd-a", created_at="yesterday"), "RFC 3339"),
        (issue("bd-a", started_at="2026-13-01T00:00:00Z"), "RFC 3339"),
        (issue("bd-a", status="archived"), "status 'archived'"),
        (issue("bd-a", estimated_minutes=-5), "estimated_minutes"),
        (issue("bd-a", comments="none"), "comments"),
        (issue("bd-a", cwd="/tmp"), "metadata.fleet"),
        (issue("bd-a", metadata={"fleet": "claude"}), "metadata.fleet"),
        (issue("bd-a", metadata={"fleet": {"max_attempts": 0}}), "max_attempts"),
        (issue("bd-a", dependencies=[{"depends_on_id": "Bad Target"}]), "dependency target"),
        (issue("bd-a", dependencies=[{"depends_on_id": "bd-a"}]), "itself"),
        (issue("bd-a", dependencies=[{"issue_id": "bd-b", "depends_on_id": "bd-c"}]), "bd-b"),
        (issue("bd-a", dependencies=[{"depends_on_id": "bd-b", "type": "Blocks!"}]), "type"),
        (issue("bd-a", priority=True), "priority"),
    ],
)
def test_invalid_issues_are_errors(record: dict[str, Any], words: str) -> None:
    plan = parse_jsonl(json.dumps(issue("bd-ok")) + "\n" + json.dumps(record) + "\n")
    assert [t.id for t in plan.tasks] == ["bd-ok"]
    assert len(plan.errors) == 1
    line, message = plan.errors[0]
    assert line == 2
    assert words in message and "bd-a" in message


def test_other_malformed_lines_are_errors() -> None:
    text = "[1, 2]\n" + '{"id": "bd-n", "title": "t", "priority": NaN}\n'
    text += json.dumps(issue("bd-d")) + "\n" + json.dumps(issue("bd-d")) + "\n"
    plan = parse_jsonl(text)
    assert [n for n, _ in plan.errors] == [1, 2, 4]
    assert "not a JSON object" in plan.errors[0][1]
    assert "NaN" in plan.errors[1][1]
    assert "repeats line 3" in plan.errors[2][1]


# --- readiness on a hand-made queue that touches every rule -------------------------------------

FUTURE = "2099-01-01T00:00:00Z"
PAST = "2020-01-01T00:00:00Z"


def dep(target: str, kind: str = "blocks") -> dict[str, str]:
    return {"depends_on_id": target, "type": kind}


def child_of(parent: str) -> list[dict[str, str]]:
    return [dep(parent, "parent-child")]


RULES_QUEUE = [
    issue("t-open"),
    issue("t-blk", dependencies=[dep("t-open")]),
    issue("t-done", status="closed", closed_at=PAST),
    issue("t-after", dependencies=[dep("t-done")]),
    issue("t-pin", status="pinned"),
    issue("t-onpin", dependencies=[dep("t-pin")]),
    issue("t-cond", dependencies=[dep("t-open", "conditional-blocks")]),
    issue("t-wait", dependencies=[dep("t-open", "waits-for")]),
    issue("t-rel", dependencies=[dep("t-open", "related"), dep("t-open", "discovered-from")]),
    issue("t-ext", dependencies=[dep("external:other:cap")]),
    issue("t-gone", dependencies=[dep("t-missing1")]),
    issue("e-blk", issue_type="epic", dependencies=[dep("t-open")]),
    issue("e-blk.1", dependencies=child_of("e-blk")),
    issue("e-blk.1.1", dependencies=child_of("e-blk.1")),
    issue("e-blk.2", status="closed", closed_at=PAST, dependencies=child_of("e-blk")),
    issue("e-ok", issue_type="epic"),
    issue("e-ok.1", dependencies=child_of("e-ok")),
    issue("t-wisp", ephemeral=True),
    issue("t-tmpl", is_template=True),
    issue("t-msg", issue_type="message"),
    issue("t-gate", issue_type="gate"),
    issue("t-later", defer_until=FUTURE),
    issue("t-past", defer_until=PAST),
    issue("e-def", status="deferred"),
    issue("e-def.1", dependencies=child_of("e-def")),
    issue("e-fut", defer_until=FUTURE),
    issue("e-fut.1", dependencies=child_of("e-fut")),
    issue("t-prog", status="in_progress"),
    issue("t-hook", status="hooked"),
]


def test_every_readiness_rule_on_a_hand_made_queue() -> None:
    expected = {"t-open", "t-after", "t-onpin", "t-rel", "t-ext", "t-gone"}
    expected |= {"e-ok", "e-ok.1", "t-past"}
    plan = imported(jsonl(*RULES_QUEUE))
    assert set(ready(plan.tasks, NOW)) == expected
    assert reference_ready(RULES_QUEUE, NOW) == expected
    blocked = blocked_by(graph_of(plan))
    assert set(blocked) == {"t-blk", "t-cond", "t-wait", "e-blk", "e-blk.1", "e-blk.1.1"}
    assert set(blocked) == reference_blocked(RULES_QUEUE)


# --- graph: blocked_by and find_cycle on small graphs -------------------------------------------


def node(
    node_id: str, status: str = "open", blocks: tuple[str, ...] = (), parent: str = ""
) -> Node:
    deps = [Dependency(node_id, b) for b in blocks]
    deps += [Dependency(node_id, parent, "parent-child")] if parent else []
    closed_at = "2026-01-02T00:00:00Z" if status == "closed" else ""
    task = Task(node_id, node_id, status=status, dependencies=deps, closed_at=closed_at)
    return Node.of(task)


def graph(*nodes: Node) -> dict[str, Node]:
    return {n.id: n for n in nodes}


def test_blocked_by_a_chain() -> None:
    nodes = graph(node("x-a"), node("x-b", blocks=("x-a",)), node("x-c", blocks=("x-b",)))
    assert blocked_by(nodes) == {"x-b": ["x-a"], "x-c": ["x-b"]}
    nodes["x-a"].status = "closed"
    assert blocked_by(nodes) == {"x-c": ["x-b"]}


def test_blocked_by_a_diamond() -> None:
    nodes = graph(
        node("x-a"),
        node("x-b", blocks=("x-a",)),
        node("x-c", blocks=("x-a",)),
        node("x-d", blocks=("x-b", "x-c")),
    )
    assert blocked_by(nodes) == {"x-b": ["x-a"], "x-c": ["x-a"], "x-d": ["x-b", "x-c"]}
    nodes["x-a"].status = "closed"
    nodes["x-b"].status = "pinned"
    assert blocked_by(nodes) == {"x-d": ["x-c"]}


def test_blocked_parent_blocks_its_descendants() -> None:
    nodes = graph(
        node("x-gate"),
        node("x-epic", blocks=("x-gate",)),
        node("x-epic.1", parent="x-epic"),
        node("x-epic.1.1", parent="x-epic.1"),
        node("x-epic.2", status="closed", parent="x-epic"),
        node("x-free", parent="x-gate"),  # an open parent alone does not block
    )
    assert blocked_by(nodes) == {
        "x-epic": ["x-gate"],
        "x-epic.1": ["x-epic"],
        "x-epic.1.1": ["x-epic.1"],
    }


def test_a_missing_target_does_not_block() -> None:
    nodes = graph(node("x-a", blocks=("x-nowhere", "external:proj:cap")))
    assert blocked_by(nodes) == {}


def test_find_cycle_names_the_path() -> None:
    chain = {"x-a": ["x-b"], "x-b": ["x-c"], "x-c": []}
    assert find_cycle(chain, "x-c", "x-a") == ["x-c", "x-a", "x-b", "x-c"]
    assert find_cycle(chain, "x-a", "x-c") is None
    assert find_cycle(chain, "x-a", "x-a") == ["x-a", "x-a"]


def test_find_cycle_in_a_diamond() -> None:
    diamond = {"x-d": ["x-b", "x-c"], "x-b": ["x-a"], "x-c": ["x-a"], "x-a": []}
    assert find_cycle(diamond, "x-d", "x-a") is None  # another edge down the diamond
    assert find_cycle(diamond, "x-a", "x-d") in (
        ["x-a", "x-d", "x-b", "x-a"],
        ["x-a", "x-d", "x-c", "x-a"],
    )


def test_dependency_edges_of_an_import_feed_find_cycle() -> None:
    records = [
        issue("bd-a", dependencies=[dep("bd-b")]),
        issue("bd-b", dependencies=[dep("bd-c", "parent-child")]),
        issue("bd-c"),
    ]
    tasks = imported(jsonl(*records)).tasks
    out_edges = {t.id: [d.depends_on_id for d in t.dependencies] for t in tasks}
    assert find_cycle(out_edges, "bd-c", "bd-a") == ["bd-c", "bd-a", "bd-b", "bd-c"]


def test_the_six_real_exports_are_all_here() -> None:
    assert sorted(README_TABLE) == FILES
