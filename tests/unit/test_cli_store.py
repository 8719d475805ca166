"""`fleet store status|migrate|gc`."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.conftest import Result

Fleet = Callable[..., Result]


def test_status_gc_and_migrate_on_a_current_store(fleet: Fleet) -> None:
    for n in range(5):
        assert fleet("bd", "create", f"task {n}").code == 0
    status = json.loads(fleet("store", "status", "--json").out)
    assert status["format"] == status["fleet_format"] == 2
    assert status["tasks"] == 5 and status["loose_objects"] > 0 and status["packs"] == 0

    out = fleet("store", "gc")
    assert out.code == 0 and "packed in" in out.out, out
    after = json.loads(fleet("store", "status", "--json").out)
    assert after["loose_objects"] == 0 and after["packs"] == 1 and after["tasks"] == 5

    text = fleet("store", "status").out
    assert "format 2, 5 tasks" in text and "1 packs" in text
    again = fleet("store", "migrate")
    assert again.code == 0 and "already at format 2" in again.out
    assert json.loads(fleet("store", "migrate", "--json").out)["migrated"] is False
    assert fleet("bd", "create", "after gc").code == 0
    assert json.loads(fleet("store", "status", "--json").out)["tasks"] == 6


def test_an_empty_store(fleet: Fleet) -> None:
    status = json.loads(fleet("store", "status", "--json").out)
    assert status["tasks"] == 0 and status["format"] == 2
    assert fleet("store", "gc").code == 0
    out = fleet("store", "migrate", "--json")
    assert json.loads(out.out) == {"migrated": False, "format": 2, "reason": "empty store"}
