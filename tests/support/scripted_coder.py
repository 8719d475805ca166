"""A coder for the supervisor loop's unit tests: each output line says what a real CLI would.

Lines (anything else is plain text):

    plan: TEXT                 the plan the agent states
    usage: N                   N more output tokens
    rate limited until EPOCH   the account's limit was hit; it resets at EPOCH
    session: ID                the agent's session (resumed with `--resume ID`)

Unlike the shell coder, it needs the result file (as the agent CLIs do).
"""

from __future__ import annotations

from coders.base import (
    BaseCoder,
    Command,
    Event,
    EventKind,
    Outcome,
    RateLimit,
    RunSpec,
    Usage,
    Verdict,
)

NAME = "scripted"
MODULE = "tests.support.scripted_coder:ScriptedCoder"  # for coders.BUILTINS
BINARY = "scripted-agent"
LIMITED = "rate limited until "


class ScriptedParser:
    def __init__(self) -> None:
        self.usage = Usage()
        self.session_id = ""
        self.plan = ""
        self.resets_at: float | None = None

    def feed(self, line: str) -> list[Event]:
        if line.startswith("session: "):
            self.session_id = line.removeprefix("session: ")
            return [Event(EventKind.SESSION, session_id=self.session_id)]
        if line.startswith("plan: "):
            self.plan = line.removeprefix("plan: ")
        elif line.startswith("usage: "):
            self.usage.output_tokens += int(line.removeprefix("usage: "))
            return [Event(EventKind.USAGE, usage=self.usage)]
        elif line.startswith("cost: "):
            self.usage.cost_usd = (self.usage.cost_usd or 0.0) + float(line.removeprefix("cost: "))
            return [Event(EventKind.USAGE, usage=self.usage)]
        elif line.startswith("utilization: "):
            used, _, resets = line.removeprefix("utilization: ").partition(" ")
            limit = RateLimit(
                "allowed_warning", "five_hour", utilization=float(used), resets_at=float(resets)
            )
            return [Event(EventKind.RATE_LIMIT, limit=limit)]
        elif line.startswith(LIMITED):
            self.resets_at = float(line.removeprefix(LIMITED))
            limit = RateLimit("rejected", "rate_limit", resets_at=self.resets_at)
            return [Event(EventKind.RATE_LIMIT, limit=limit)]
        return [Event(EventKind.TEXT, text=line)]

    def finish(self, exit_code: int) -> Verdict:
        if self.resets_at is not None:
            return Verdict(Outcome.RATE_LIMITED, "the account hit its limit", self.resets_at)
        if exit_code != 0:
            return Verdict(Outcome.FAILURE, f"exited with {exit_code}")
        return Verdict(Outcome.SUCCESS)


class ScriptedCoder(BaseCoder):
    name = NAME
    binary = BINARY
    verified = False
    needs_result = True
    default_model = "scripted-1"
    key_env = "SCRIPTED_API_KEY"
    base_url_env = "SCRIPTED_BASE_URL"

    def command(self, spec: RunSpec) -> Command:
        env = {"SCRIPTED_MODEL": spec.model}
        if spec.config_dir is not None:
            env["SCRIPTED_HOME"] = str(spec.config_dir)
        resume = ["--resume", spec.resume_session] if spec.resume_session else []
        return Command(argv=[BINARY, *resume, "--prompt", spec.prompt], env=env)

    def parser(self, spec: RunSpec | None = None) -> ScriptedParser:
        return ScriptedParser()
