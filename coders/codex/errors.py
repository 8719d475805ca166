"""What a Codex error message means: a rate or usage limit (and when it lifts), refused
credentials, an overloaded server, or a plain failure.

Codex prints its errors as text (`turn.failed.error.message`, `error` lines), so the outcome is read
from the words it uses (measured with 0.169 and taken from its source):

- usage limit: `You've hit your usage limit. ... try again at 3:17 PM.` (or `at Nov 24th, 2026
  3:17 PM` when the reset is on another day), in the local time of the machine;
- rate limit: `exceeded retry limit, last status: 429 Too Many Requests`, `rate limit exceeded:
  ... Please try again in 1.5s.`, `Quota exceeded`;
- credentials: `unexpected status 401 Unauthorized: Incorrect API key provided`;
- overload: `Selected model is at capacity`, `... status 503 ...`.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta

from coders.base import Outcome, RateLimit, Verdict

USAGE_LIMIT = re.compile(r"hit your usage limit|usage_limit_(?:reached|exceeded)", re.I)
RATE_LIMIT = re.compile(r"status:? 429|too many requests|rate[ _]limit|quota", re.I)
AUTH = re.compile(
    r"status:? 40[13]|unauthorized|forbidden|invalid_api_key|incorrect api key|invalid api key"
    r"|access token could not be refreshed|log in again|missing environment variable",
    re.I,
)
OVERLOADED = re.compile(
    r"status:? 5\d\d|overloaded|at capacity|high demand|temporarily unavailable", re.I
)
TRY_AGAIN_AT = re.compile(
    r"try again at (?:(?P<month>[A-Z][a-z]{2}) (?P<day>\d{1,2})(?:st|nd|rd|th), (?P<year>\d{4}) )?"
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2}) (?P<half>[AP]M)",
    re.I,
)
TRY_AGAIN_IN = re.compile(r"try again in ((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)", re.I)
DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def reset_at(message: str, now: float) -> float | None:
    """When the limit a message names lifts, as an epoch; None when it does not say.

    `try again at 3:17 PM` is the end of that minute, local time, on the next such day after `now`;
    `try again in 1.5s` counts from `now`.
    """
    at = TRY_AGAIN_AT.search(message)
    if at is not None:
        return _clock_time(at, now)
    after = TRY_AGAIN_IN.search(message)
    if after is not None:
        parts = DURATION_PART.findall(after.group(1))
        return now + sum(float(number) * SECONDS[unit] for number, unit in parts)
    return None


def _clock_time(at: re.Match[str], now: float) -> float | None:
    hour = int(at["hour"]) % 12 + (12 if at["half"].upper() == "PM" else 0)
    minute = int(at["minute"])
    if at["month"]:
        month = at["month"].lower()
        if month not in MONTHS:
            return None
        day = datetime(int(at["year"]), MONTHS.index(month) + 1, int(at["day"]), hour, minute)
        return day.timestamp() + 60
    today = datetime.fromtimestamp(now).replace(hour=hour, minute=minute, second=0, microsecond=0)
    for candidate in (today, today + timedelta(days=1)):
        if candidate.timestamp() + 60 > now:
            return candidate.timestamp() + 60
    return None


def limit_of(message: str, now: float | None = None) -> RateLimit | None:
    """The account limit a message reports, or None when it reports none."""
    when = time.time() if now is None else now
    if USAGE_LIMIT.search(message):
        return RateLimit(status="rejected", kind="usage_limit", resets_at=reset_at(message, when))
    if RATE_LIMIT.search(message):
        return RateLimit(status="rejected", kind="rate_limit", resets_at=reset_at(message, when))
    return None


def verdict_for(message: str, exit_code: int, started: bool, now: float | None = None) -> Verdict:
    """The verdict of a run that did not end with a completed turn and exit 0."""
    if message:
        limit = limit_of(message, now)
        if limit is not None:
            return Verdict(Outcome.RATE_LIMITED, message, resets_at=limit.resets_at)
        if AUTH.search(message):
            return Verdict(Outcome.AUTH_ERROR, message)
        if OVERLOADED.search(message):
            return Verdict(Outcome.OVERLOADED, message)
    if exit_code < 0:
        return Verdict(Outcome.FAILURE, f"codex was killed by signal {-exit_code}")
    if message:
        return Verdict(Outcome.FAILURE, message)
    if exit_code == 0:
        return Verdict(Outcome.FAILURE, "codex exited 0 without completing its turn")
    if not started:
        return Verdict(Outcome.FAILURE, f"codex exited {exit_code} before starting (see stderr)")
    return Verdict(Outcome.FAILURE, f"codex exited {exit_code}")
