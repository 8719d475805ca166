"""The `agy` coder: Google's Antigravity CLI in print mode. Unverified.

agy is a closed-source binary from a curl installer, not on npm, so fleet cannot install it to test
against; this adapter follows its published flags and is marked `verified = False`. Command:
`agy --dangerously-skip-permissions --print-timeout <d> [--add-dir <result dir>]
[--conversation <id>] --print <prompt>`. Skipping permissions is what lets a headless agy edit
files and run commands (nobody can answer a prompt); the print timeout (5 minutes by default) is
raised so that fleet's own wall-clock limit is the one that applies. The prompt comes last, right
after `--print`, which reads the same whether the CLI takes it as that flag's value or as the
positional prompt.

agy prints plain text, no events: every line is a text event, the plan is a `<plan>` block when
it prints one, there is no usage or session id, and success is exit 0 plus the result file. Its
state lives in `~/.gemini/antigravity-cli/`, so an account's config dir becomes `HOME`.
"""

from __future__ import annotations

import re

from coders.base import (
    BaseCoder,
    Command,
    Event,
    EventKind,
    Outcome,
    RunSpec,
    Usage,
    Verdict,
    exit_reason,
    first_plan_text,
)

PRINT_TIMEOUT = "24h"
TAIL = 5  # the last lines of output that are searched for why a run failed
LIMIT = re.compile(r"quota|rate.?limit|resource.?exhausted|\b429\b|too many requests", re.I)
AUTH = re.compile(r"unauthenticated|unauthori[sz]ed|\b40[13]\b|sign in|log ?in|credentials", re.I)
OVERLOADED = re.compile(r"overloaded|unavailable|\b503\b|capacity", re.I)


class AgyParser:
    def __init__(self) -> None:
        self.usage = Usage()  # agy reports no usage
        self.session_id = ""
        self.plan = ""
        self._text: list[str] = []
        self._tail: list[str] = []

    def feed(self, line: str) -> list[Event]:
        self._text.append(line)
        if line.strip():
            self._tail = [*self._tail[1 - TAIL :], line.strip()]
        if not self.plan and "</plan>" in line:
            self.plan = first_plan_text("\n".join(self._text), seen_tool=True)
        return [Event(EventKind.TEXT, text=line)]

    def finish(self, exit_code: int) -> Verdict:
        if exit_code == 0:
            return Verdict(Outcome.SUCCESS)
        if exit_code < 0:
            return Verdict(Outcome.FAILURE, exit_reason("agy", exit_code))
        tail = "\n".join(self._tail)
        reason = exit_reason("agy", exit_code) + (f": {self._tail[-1]}" if self._tail else "")
        if LIMIT.search(tail):
            return Verdict(Outcome.RATE_LIMITED, reason)
        if AUTH.search(tail):
            return Verdict(Outcome.AUTH_ERROR, reason)
        if OVERLOADED.search(tail):
            return Verdict(Outcome.OVERLOADED, reason)
        return Verdict(Outcome.FAILURE, reason)


class AgyCoder(BaseCoder):
    name = "agy"
    binary = "agy"
    verified = False  # not installable here: built from its published flags, never run
    needs_result = True
    default_model = ""  # agy's own setting; it has no published model flag

    def command(self, spec: RunSpec) -> Command:
        if spec.model:
            raise ValueError(
                f"agy has no model flag: choose the model in agy's settings, not {spec.model!r}"
            )
        if spec.permission_mode not in ("", "dangerously-skip-permissions"):
            raise ValueError(
                f"agy runs headless only with --dangerously-skip-permissions, "
                f"not {spec.permission_mode!r}"
            )
        timeout = str(spec.options.get("print_timeout", PRINT_TIMEOUT))
        argv = [self.binary, "--dangerously-skip-permissions", "--print-timeout", timeout]
        if spec.outside_result_dir is not None:
            argv += ["--add-dir", str(spec.outside_result_dir)]
        if spec.resume_session:
            argv += ["--conversation", spec.resume_session]
        argv += ["--print", spec.handbook_and_prompt()]
        env = {"AGY_CLI_DISABLE_AUTO_UPDATE": "T", **spec.account_env}
        if spec.config_dir is not None:
            env["HOME"] = str(spec.config_dir)
        return Command(argv=argv, env=env)

    def parser(self, spec: RunSpec | None = None) -> AgyParser:
        return AgyParser()
