"""Risk: a logistic score per role, account or running agent from what its attempts did.

    risk = 1 / (1 + exp(-(bias + sum(weight[signal] * value[signal]))))

Operational signals come from the attempt records of the subject's last `risk_window` attempts
(a running agent: its task's attempts and its live state); diff signals from what the attempts
changed in their working tree (`diff` in each attempt record, or the live worktree of a running
agent). The weights live in the configuration (`risk_weights`, merged over `WEIGHTS`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# signal -> default weight, with what the signal's value is
WEIGHTS: dict[str, float] = {
    "bias": -4.0,  # the score of a subject with no signal at all: 1.8 %
    "error_rate": 3.0,  # failed attempts / attempts, 0..1
    "restarts": 0.3,  # attempts that were retries (after a task's first)
    "stalls": 0.8,  # attempts stopped as stalled
    "budget_overruns": 1.0,  # attempts stopped over a budget
    "silent": 1.5,  # a running agent's silence / stall_seconds
    "outside_cwd": 0.5,  # files changed outside the task's cwd
    "deleted_tests": 2.5,  # test files deleted, or tests disabled (skip, xfail, only, ...)
    "ci_files": 1.5,  # CI configuration touched
    "secrets_files": 2.0,  # secrets files touched (.env, keys, credentials)
    "diff_size": 1.0,  # lines changed, in thousands (the mean over the attempts)
}
SIGNALS = tuple(k for k in WEIGHTS if k != "bias")
DIFF_SIGNALS = ("outside_cwd", "deleted_tests", "ci_files", "secrets_files", "diff_size")
FAILED = {
    "failure",
    "stalled",
    "timed_out",
    "max_turns",
    "over_budget",
    "auth_error",
    "setup_error",
}

TEST_PATH = re.compile(
    r"(^|/)(tests?|__tests__|spec)/|(^|/)test_[^/]*\.py$|_test\.(py|go|rb)$|"
    r"\.(test|spec)\.[jt]sx?$|Test\.java$|Tests?\.cs$"
)
CI_PATH = re.compile(
    r"^\.github/(workflows|actions)/|^\.gitlab-ci\.yml$|^\.circleci/|^Jenkinsfile$|"
    r"^\.travis\.yml$|^azure-pipelines\.yml$|^\.buildkite/|^\.pre-commit-config\.yaml$"
)
SECRETS_PATH = re.compile(
    r"(^|/)\.env(\.[^/]*)?$|\.(pem|key|p12|pfx|keystore|jks)$|(^|/)id_(rsa|dsa|ecdsa|ed25519)$|"
    r"(^|/)(credentials|secrets?)(\.[a-z]+)?$|(^|/)\.npmrc$|(^|/)\.pypirc$|(^|/)\.netrc$"
)
DISABLES = re.compile(
    r"@pytest\.mark\.(skip|xfail)|pytest\.skip\(|@unittest\.skip|\b(it|describe|test)\.(skip|only)\(|"
    r"\bx(it|describe)\(|@Disabled\b|@Ignore\b|\bt\.Skip\(|#\[ignore\]"
)


def weights(overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    return {**WEIGHTS, **(overrides or {})}


@dataclass
class Assessment:
    subject: str  # kind:name, e.g. account:work, role:dev, task:fl-3k9x
    score: float
    signals: dict[str, float]
    contributions: dict[str, float]  # weight * value, for the signals that are not zero
    evidence: list[str] = field(default_factory=list)  # what happened, for people

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "score": round(self.score, 4),
            "signals": {k: round(v, 4) for k, v in self.signals.items()},
            "contributions": {k: round(v, 4) for k, v in self.contributions.items()},
            "evidence": self.evidence,
        }

    def explain(self) -> str:
        top = sorted(self.contributions.items(), key=lambda kv: -abs(kv[1]))
        parts = [f"{k} {self.signals[k]:g} ({v:+.2f})" for k, v in top]
        return f"risk {self.score:.2f}: " + (", ".join(parts) if parts else "no signal")


def assess(
    subject: str, signals: Mapping[str, float], weight: Mapping[str, float], evidence: list[str]
) -> Assessment:
    contributions = {
        name: weight.get(name, 0.0) * value for name, value in signals.items() if value
    }
    z = weight.get("bias", 0.0) + sum(contributions.values())
    score = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
    return Assessment(subject, score, dict(signals), contributions, evidence)


def operational(attempts: Iterable[Mapping[str, Any]]) -> tuple[dict[str, float], list[str]]:
    """Signals and evidence from attempt records (each: outcome, index, reason, task, diff)."""
    signals = dict.fromkeys(SIGNALS, 0.0)
    evidence: list[str] = []
    count = failed = diffs = 0
    for attempt in attempts:
        count += 1
        outcome = str(attempt.get("outcome") or "")
        where = f"{attempt.get('task', '?')}#{attempt.get('n') or int(attempt.get('index', 0)) + 1}"
        if outcome in FAILED:
            failed += 1
            evidence.append(f"{where} {outcome}: {str(attempt.get('reason') or '')[:80]}".rstrip())
        if int(attempt.get("index") or 0) > 0:
            signals["restarts"] += 1
        if outcome == "stalled":
            signals["stalls"] += 1
        if outcome == "over_budget":
            signals["budget_overruns"] += 1
        diff = attempt.get("diff")
        if isinstance(diff, Mapping):
            diffs += 1
            for name in DIFF_SIGNALS:
                value = float(diff.get(name) or 0.0)
                signals[name] += value
            for line in diff.get("evidence") or ():
                evidence.append(f"{where} {line}")
    signals["error_rate"] = failed / count if count else 0.0
    if diffs:
        signals["diff_size"] = round(signals["diff_size"] / diffs, 3)  # the mean: a retry sees
    return signals, evidence  # its task's earlier diff again


def diff_signals(
    changes: Iterable[tuple[str, str, int]], prefix: str, added_lines: Iterable[str]
) -> dict[str, Any]:
    """Diff signals from (status, path, lines changed) of each changed file (status as in
    `git diff --name-status`: A, M, D, R...), the task's cwd inside the repository (`prefix`,
    "" at its top) and the lines the diff adds; with the evidence."""
    out: dict[str, Any] = dict.fromkeys(DIFF_SIGNALS, 0.0)
    evidence: list[str] = []
    lines = 0
    for status, path, changed in changes:
        lines += changed
        if prefix and not path.startswith(prefix):
            out["outside_cwd"] += 1
            evidence.append(f"changed {path}, outside its cwd {prefix}")
        if status.startswith("D") and TEST_PATH.search(path):
            out["deleted_tests"] += 1
            evidence.append(f"deleted the test file {path}")
        if CI_PATH.search(path):
            out["ci_files"] += 1
            evidence.append(f"touched the CI file {path}")
        if SECRETS_PATH.search(path):
            out["secrets_files"] += 1
            evidence.append(f"touched the secrets file {path}")
    for line in added_lines:
        if DISABLES.search(line):
            out["deleted_tests"] += 1
            evidence.append(f"disabled a test: {line.strip()[:80]}")
    out["diff_size"] = round(lines / 1000, 3)
    if lines >= 1000:
        evidence.append(f"a diff of {lines} lines")
    out["evidence"] = evidence[:20]
    return out
