"""The attempts on record, in a derived SQLite table of their own, for scorecards and risk.

Parsing every task's JSON costs most of a second at 10,000 tasks, so each task's attempts are
flattened into `cache/attempts.sqlite` (table `att`), stamped with the task's `updated_ts` and
the length of its JSON in the task cache; a read re-flattens only the tasks whose stamp changed,
then aggregates in SQL. Like the task cache it is derived: deleting it loses nothing.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from supervisor.scorecard import APPROVED, BLOCKING, NOT_FAILURES, REJECTED, Card
from supervisor.store.cache import Cache

FILE = "attempts.sqlite"
VERSION = "2"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stamps(task TEXT PRIMARY KEY, ts REAL NOT NULL, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS att(task TEXT NOT NULL, idx INTEGER NOT NULL, status TEXT, role TEXT,
    outcome TEXT, coder TEXT, model TEXT, account TEXT, ended TEXT, seconds REAL, tokens INTEGER,
    cost REAL, result_status TEXT, review TEXT, checks INTEGER, questions INTEGER, reason TEXT,
    diff TEXT);
CREATE INDEX IF NOT EXISTS att_account ON att(account, ended);
CREATE INDEX IF NOT EXISTS att_role ON att(role, ended);
CREATE INDEX IF NOT EXISTS att_task ON att(task, idx);
CREATE TABLE IF NOT EXISTS waits(task TEXT NOT NULL, depends_on TEXT NOT NULL);
"""
TOKEN_KINDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
KEYS = {"role": "role", "coder": "coder", "model": "model", "account": "account"}
CHUNK = 500  # ids per SELECT ... IN (...)


def _checks(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value:
        return int(value.lower() in APPROVED | {"ok", "green", "success", "true"})
    return None


def flatten(task: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The `att` rows of one task."""
    rows = []
    for index, attempt in enumerate(task.get("attempts") or []):
        if not isinstance(attempt, dict):
            continue
        usage = attempt.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        review = attempt.get("review")
        merge = attempt.get("merge")
        checks = merge.get("checks") if isinstance(merge, dict) else attempt.get("checks")
        verdict = review.get("verdict") if isinstance(review, dict) else attempt.get("verdict")
        rows.append(
            (
                str(task.get("id")),
                index,
                task.get("status"),
                task.get("role") or "",
                attempt.get("outcome"),
                attempt.get("coder") or "",
                attempt.get("model") or usage.get("model") or "",
                attempt.get("account") or "",
                str(attempt.get("ended_at") or attempt.get("started_at") or ""),
                float(attempt.get("seconds") or 0.0),
                sum(int(usage.get(kind) or 0) for kind in TOKEN_KINDS),
                float(usage.get("cost_usd") or 0.0),
                attempt.get("result_status") or "",
                str(verdict or "").lower(),
                _checks(checks),
                len(attempt.get("open_questions") or ()),
                str(attempt.get("reason") or ""),
                json.dumps(attempt["diff"]) if isinstance(attempt.get("diff"), dict) else None,
            )
        )
    return rows


def _waits(task: dict[str, Any]) -> list[tuple[str, str]]:
    """What a closed task that ran waited for (its handoffs)."""
    if task.get("status") != "closed" or not task.get("attempts"):
        return []
    return [
        (str(task.get("id")), str(d.get("depends_on_id")))
        for d in task.get("dependencies") or []
        if isinstance(d, dict) and d.get("type", "blocks") in BLOCKING
    ]


class Attempts:
    def __init__(self, cache: Cache, folder: Path) -> None:
        self.cache = cache
        self.db = sqlite3.connect(folder / FILE, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")  # derived: a torn write is rebuilt
        version = None
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
            version = row[0] if row else None
        except sqlite3.OperationalError:
            pass
        if version != VERSION:
            for table in ("meta", "stamps", "att", "waits"):
                self.db.execute(f"DROP TABLE IF EXISTS {table}")
            self.db.executescript(SCHEMA)
            self.db.execute("INSERT INTO meta VALUES('version', ?)", (VERSION,))

    def close(self) -> None:
        self.db.close()

    def sync(self) -> None:
        """Re-flatten the tasks that changed since the last read; forget the deleted ones."""
        self.cache.sync()
        stamps = {
            task_id: (ts, size)
            for task_id, ts, size in self.cache.db.execute(
                "SELECT id, updated_ts, length(body) FROM tasks_json"
            )
        }
        known = {
            t: (ts, size) for t, ts, size in self.db.execute("SELECT task, ts, size FROM stamps")
        }
        stale = [t for t, stamp in stamps.items() if known.get(t) != stamp]
        gone = [(t,) for t in known if t not in stamps]
        if not stale and not gone:
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for table in ("stamps", "att", "waits"):
                self.db.executemany(f"DELETE FROM {table} WHERE task=?", gone)
            for start in range(0, len(stale), CHUNK):
                ids = stale[start : start + CHUNK]
                marks = ",".join("?" * len(ids))
                sql = (
                    "SELECT id, updated_ts, length(body), body FROM tasks_json"
                    f" WHERE id IN ({marks})"
                )
                for task_id, ts, size, body in self.cache.db.execute(sql, ids):
                    task = json.loads(body)
                    for table in ("att", "waits"):
                        self.db.execute(f"DELETE FROM {table} WHERE task=?", (task_id,))
                    self.db.executemany(
                        f"INSERT INTO att VALUES({','.join('?' * 18)})", flatten(task)
                    )
                    self.db.executemany("INSERT INTO waits VALUES(?, ?)", _waits(task))
                    self.db.execute(
                        "INSERT OR REPLACE INTO stamps VALUES(?, ?, ?)", (task_id, ts, size)
                    )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def cards(self, by: str, since: str = "") -> list[Card]:
        """One scorecard per value of `by` over the attempts ended at or after `since` (ISO)."""
        self.sync()
        key = KEYS[by]
        failures = ",".join(f"'{o}'" for o in sorted(NOT_FAILURES))
        approved = ",".join(f"'{v}'" for v in sorted(APPROVED))
        rejected = ",".join(f"'{v}'" for v in sorted(REJECTED))
        window = "WITH w AS (SELECT * FROM att WHERE ended >= :since)"
        sql = f"""{window}
            SELECT {key}, count(*), sum(outcome = 'success'),
                sum(outcome IS NULL OR outcome NOT IN ({failures})), sum(idx > 0),
                sum(outcome = 'stalled'), sum(outcome = 'timed_out'),
                sum(result_status = 'partial'), sum(review IN ({approved})),
                sum(review IN ({rejected})), sum(checks = 1), sum(checks = 0), sum(questions),
                sum(seconds), sum(tokens), sum(cost), count(DISTINCT task),
                sum(EXISTS (SELECT 1 FROM att b WHERE b.task = w.task AND b.idx < w.idx
                            AND b.outcome = 'success'))
            FROM w GROUP BY {key}"""
        cards: dict[str, Card] = {}
        for row in self.db.execute(sql, {"since": since}):
            card = Card(str(row[0]))
            (
                card.attempts, card.successes, card.failures, card.retries, card.stalls,
                card.timeouts, card.partial, card.approved, card.rejected, card.checks_passed,
                card.checks_failed, card.questions, card.seconds, card.tokens, card.cost_usd,
                card.task_count, card.reopened,
            ) = row[1:]  # fmt: skip
            cards[card.key] = card
        closers = f"""{window}, closers AS (
            SELECT task, {key} AS k FROM (
                SELECT task, {key}, row_number() OVER (PARTITION BY task ORDER BY idx DESC) AS rn
                FROM w WHERE status = 'closed') WHERE rn = 1)"""
        for k, closed in self.db.execute(
            f"{closers} SELECT k, count(*) FROM closers GROUP BY k", {"since": since}
        ):
            cards[str(k)].closed = closed
        for k, handoffs in self.db.execute(
            f"{closers} SELECT c.k, count(*) FROM waits d JOIN closers c ON c.task = d.depends_on"
            " GROUP BY c.k",
            {"since": since},
        ):
            cards[str(k)].handoffs_accepted = handoffs
        return sorted(cards.values(), key=lambda c: (-c.closed, -c.attempts, c.key))

    def last(self, column: str, value: str, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` attempts whose `column` (account, role or task) is `value`, as
        records for `risk.operational`."""
        assert column in ("account", "role", "task")
        sql = (
            "SELECT task, idx, outcome, reason, diff FROM att"
            f" WHERE {column} = ? ORDER BY ended DESC, idx DESC LIMIT ?"
        )
        return [
            {
                "task": task,
                "index": idx,
                "outcome": outcome,
                "reason": reason,
                "diff": json.loads(diff) if diff else None,
            }
            for task, idx, outcome, reason, diff in self.db.execute(sql, (value, limit))
        ]

    def subjects(self) -> list[str]:
        """account:NAME and role:NAME of every account and role with attempts on record."""
        self.sync()
        found = [f"account:{a}" for (a,) in self.db.execute("SELECT DISTINCT account FROM att")]
        found += [f"role:{r}" for (r,) in self.db.execute("SELECT DISTINCT role FROM att")]
        return [s for s in found if not s.endswith(":")]
