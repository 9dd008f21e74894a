"""The ledger: the run's record and everything the watcher and the dispatcher decided, as
typed records read and written in this module only. A start, a scope and a chunk change
only through named moves, which refuse a move the protocol does not allow (``MOVES``,
``MoveRefused``): the records are frozen to the outside."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import UserError
from .files import read_json, write_json
from .records import Execution, NfsLocation
from .statuses import ExecutionStatus

LEDGER_VERSION = 3
"""The shape of the ledger file. Version 3 holds the run's record (``Run``), written by the
scheduler at launch; versions 1 and 2, written before runs were recorded, took each
scope from the plan file, which a later command could replace: they are refused, never
guessed at."""
LIVE_LEDGER_VERSION = 4
"""A live run's ledger: version 3 and a dispatch whose chunks keep coming from the scan's
journal. Only live runs are written as version 4, so a watcher of the version before,
which would take the chunks known so far for all of them, refuses it."""
def ledger_path(arn_file: str, given: str | None = None) -> str:
    """The run's ledger: --ledger_file, or beside the arn file, where every command looks."""
    return given or arn_file + ".ledger.json"


LEDGER_DAMAGED = (": the watcher will not guess at it; put back a copy of it (an older copy is safe: executions "
                  "this run started that it does not list are found by their tags and adopted), or pass another "
                  "--ledger_file")


@dataclass(frozen=True)
class PlannedScope:
    """What one scope must move, as the plan gave it: its filters and counts. A retry moves
    exactly these filters; the counts tell an execution that selects far more."""

    task_name: str
    includes: tuple[str, ...]
    excludes: tuple[str, ...] = ()
    files: int = 0
    dirs: int = 0
    bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"task_name": self.task_name, "includes": list(self.includes), "excludes": list(self.excludes),
                "files": self.files, "dirs": self.dirs, "bytes": self.bytes}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlannedScope:
        return cls(str(data["task_name"]), tuple(data["includes"]), tuple(data.get("excludes", ())),
                   int(data.get("files", 0)), int(data.get("dirs", 0)), int(data.get("bytes", 0)))


@dataclass(frozen=True)
class Target:
    """Where the run's tasks read and write, and how they run: all a new agent's location
    and task need, so the watcher can add an agent the plan never saw."""

    nfs_server: str
    sub_dir: str
    dest_loc: str
    cloudwatch_arn: str | None
    options: dict
    task_mode: str = "BASIC"
    nfs_version: str = "AUTOMATIC"
    ready_timeout: float = 600.0

    def to_json(self) -> dict[str, Any]:
        return {"nfs_server": self.nfs_server, "sub_dir": self.sub_dir, "dest_loc": self.dest_loc,
                "cloudwatch_arn": self.cloudwatch_arn, "options": dict(self.options), "task_mode": self.task_mode,
                "nfs_version": self.nfs_version, "ready_timeout": self.ready_timeout}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Target:
        return cls(str(data["nfs_server"]), str(data["sub_dir"]), str(data["dest_loc"]), data.get("cloudwatch_arn"),
                   dict(data["options"]), str(data.get("task_mode", "BASIC")),
                   str(data.get("nfs_version", "AUTOMATIC")), float(data.get("ready_timeout", 600.0)))


@dataclass
class Policy:
    """The run's failover rules. Recorded with the run so that two watchers never disagree:
    a watcher started with other values changes the record, and says so."""

    max_retries: int = 1
    """Retries per scope or chunk, ever."""
    offline_threshold: float = 600.0
    """Seconds since an OFFLINE agent's last contact before its executions past LAUNCHING count as stranded."""

    def to_json(self) -> dict[str, Any]:
        return {"max_retries": self.max_retries, "offline_threshold": self.offline_threshold}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Policy:
        return cls(int(data["max_retries"]), float(data["offline_threshold"]))


@dataclass
class Run:
    """One migration run, as the scheduler recorded it before creating anything: the scope
    of record of each static task, the agents it was planned for, where its tasks read and
    write, and the rules the watcher applies. No later command (a dry run, another plan)
    can change what a retry moves: only this record says it.

    ``named``: the plan's agents were named (--agent_arns), so only they and the agents
    the operator ``added`` may serve the run; otherwise any ONLINE agent may. ``drained``
    agents take no new work; ``barred`` ones were refused by DataSync for this run (why)."""

    id: str
    prefix: str
    """--task_name: every task of the run is named with it."""
    agents: tuple[str, ...]
    named: bool
    target: Target
    scopes: dict[str, PlannedScope] = field(default_factory=dict)
    """Static runs: task name -> its scope. Dynamic runs keep their chunks in ``Dispatch``."""
    slots: int = 1
    """Tasks per agent (the queue depth of a dynamic run)."""
    policy: Policy = field(default_factory=Policy)
    added: list[str] = field(default_factory=list)
    drained: list[str] = field(default_factory=list)
    barred: dict[str, str] = field(default_factory=dict)

    def may_serve(self, agent: str) -> bool:
        """Whether the agent may take new work of this run (not drained, not barred, and
        among the agents allowed when they were named)."""
        if agent in self.drained or agent in self.barred:
            return False
        return not self.named or agent in self.agents or agent in self.added

    def usable(self, listed: Mapping[str, str]) -> frozenset[str]:
        """The agents that may serve the run now, of those ListAgents shows (any status)."""
        return frozenset(a for a in listed if self.may_serve(a))

    def possible(self, listed: Mapping[str, str]) -> frozenset[str]:
        """The agents that may ever serve the run, of those ListAgents shows: drained ones
        too (a drain is lifted), never barred ones. Work is given up only when none is left."""
        return frozenset(a for a in listed if a not in self.barred
                         and (not self.named or a in self.agents or a in self.added))

    def bar(self, agent: str, why: str) -> None:
        """DataSync refused the agent for this run (its location, its task mode, or a task): it
        takes no work of the run again, and is no reason to wait."""
        self.barred[agent] = why

    def add_agent(self, agent: str) -> bool:
        """Let an agent the plan did not name serve the run; whether that changed the record."""
        if not self.named or agent in self.agents or agent in self.added:
            return False
        self.added.append(agent)
        return True

    def drain(self, agent: str) -> bool:
        """The agent takes no new work (what it runs goes on); whether that changed the record."""
        if agent in self.drained:
            return False
        self.drained.append(agent)
        return True

    def undrain(self, agent: str) -> bool:
        if agent not in self.drained:
            return False
        self.drained.remove(agent)
        return True

    def start_tag(self, key: str, number: int) -> str:
        """The value of ``datasync.START_TAG`` on one start: which run, which scope or chunk
        (a task name, or ``chunk-N``), which attempt of it."""
        return f"{self.id}/{key}/{number}"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "prefix": self.prefix, "agents": list(self.agents), "named": self.named,
                "target": self.target.to_json(), "scopes": {n: s.to_json() for n, s in self.scopes.items()},
                "slots": self.slots, "policy": self.policy.to_json(), "added": list(self.added),
                "drained": list(self.drained), "barred": dict(self.barred)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Run:
        return cls(str(data["id"]), str(data["prefix"]), tuple(data["agents"]), bool(data["named"]),
                   Target.from_json(data["target"]),
                   {str(n): PlannedScope.from_json(s) for n, s in data.get("scopes", {}).items()},
                   int(data.get("slots", 1)), Policy.from_json(data["policy"]), list(data.get("added", [])),
                   list(data.get("drained", [])), {str(k): str(v) for k, v in data.get("barred", {}).items()})


def parse_start_tag(value: str) -> tuple[str, str, int] | None:
    """(run id, scope key, attempt number) of a start tag; None for a value of another shape."""
    run, _, rest = value.partition("/")
    key, _, number = rest.rpartition("/")
    return (run, key, int(number)) if run and key and number.isdigit() else None


def attempt_number(tag: str | None) -> int:
    """The attempt number a start tag carries (0 for none: a start adopted from an earlier run)."""
    parsed = parse_start_tag(tag or "")
    return parsed[2] if parsed else 0


def next_number(attempts: Sequence[Attempt] | Sequence[ChunkAttempt]) -> int:
    """The attempt number of the next start: one past every start known, adopted ones included."""
    return max((attempt_number(a.tag) for a in attempts), default=0) + 1


SUPERSEDED = "superseded by a later start this ledger did not know"
SECOND_EXECUTION = "a second execution of start "
"""How a second execution of one start is recorded: cancelled, and no failure of its agent."""


# --- how a record may change ---------------------------------------------------------------


class MoveRefused(Exception):
    """A change of a ledger record that the protocol does not allow. Always a bug: the record
    is left as it was, and the command stops (exit 70) before it could save a wrong state."""


class Phase(enum.Enum):
    """Where one start (an attempt of a scope, or of a chunk) stands, as the ledger records it."""

    INTENT = "intent"
    """Decided and saved; its execution not seen yet."""
    STARTED = "started"
    """Its execution is known and not known to have failed (it may since have succeeded)."""
    FAILED = "failed"
    """It failed, or was stranded on a lost agent, or a later start superseded it."""
    RETURNED = "returned"
    """Taken back unfailed: still queued on a lost agent, or refused before it started; it read nothing."""


MOVES: dict[str, dict[Phase, Phase]] = {
    "started": {Phase.INTENT: Phase.STARTED, Phase.RETURNED: Phase.RETURNED, Phase.FAILED: Phase.FAILED},
    "failed": {Phase.STARTED: Phase.FAILED, Phase.FAILED: Phase.FAILED},
    "taken_back": {Phase.INTENT: Phase.RETURNED, Phase.STARTED: Phase.RETURNED, Phase.RETURNED: Phase.RETURNED},
    "superseded": {Phase.INTENT: Phase.FAILED, Phase.STARTED: Phase.FAILED},
    "succeeded_after_all": {Phase.FAILED: Phase.STARTED, Phase.RETURNED: Phase.STARTED},
    "sending": {Phase.INTENT: Phase.INTENT},
}
"""Every move a start may make: move -> {phase before: phase after}; any other is refused.

``started`` records the execution a start made, once: an intent becomes started; a start
already taken back or superseded learns its execution and stays as it was (the latest of
them, taken back, is cancelled by the dispatcher's next check). ``failed`` may be said
again as the execution is seen again (how it failed reads more exactly once it ends).
``succeeded_after_all``: an execution taken back, or
stranded, that ended with SUCCESS by itself before the cancel landed is done, not failed.
``sending``: an intent is about to be sent (again); a lost send settles from then."""


class _Start:
    """The moves of one start, shared by a scope's ``Attempt`` and a chunk's ``ChunkAttempt``.
    Both are frozen to the outside: their state changes only through these methods."""

    agent: str
    tag: str | None
    execution: str | None
    failure: str | None
    returned: bool
    sent: float | None

    @property
    def phase(self) -> Phase:
        if self.returned:
            return Phase.RETURNED
        if self.failure is not None:
            return Phase.FAILED
        return Phase.INTENT if self.execution is None else Phase.STARTED

    @property
    def active(self) -> bool:
        """Whether this start is the one its scope or chunk runs (or is about to)."""
        return self.phase in (Phase.INTENT, Phase.STARTED)

    @property
    def failed_on_agent(self) -> bool:
        """Whether it failed in a way that counts against its agent and the retry budget (a second
        execution of one start, cancelled, does not)."""
        return self.failure is not None and not self.failure.startswith(SECOND_EXECUTION)

    def started(self, execution: str) -> None:
        """Its execution, learnt from the start's answer or found by its tag."""
        if self.execution is not None:
            raise MoveRefused(f"start {self.tag or self.agent} already has execution {self.execution}, "
                              f"not {execution}")
        self._move("started", execution=execution)

    def failed(self, how: str) -> None:
        """Its execution failed (its status), or was stranded on a lost agent."""
        if self.execution is None:
            raise MoveRefused(f"start {self.tag or self.agent} cannot fail: it has no execution")
        self._move("failed", failure=how)

    def sending(self, at: float) -> None:
        """Its start is about to be sent (again): saved first, so a lost send settles from now."""
        self._move("sending", sent=at)

    def taken_back(self) -> None:
        """It read nothing and goes back unfailed: queued on a lost agent, or refused before it ran."""
        self._move("taken_back", returned=True)

    def superseded(self) -> None:
        """A later start of its scope or chunk exists, which the ledger did not know."""
        self._move("superseded", failure=SUPERSEDED)

    def succeeded_after_all(self) -> None:
        """Taken back or stranded, its execution ended with SUCCESS before the cancel landed."""
        if self.execution is None:
            raise MoveRefused(f"start {self.tag or self.agent} has no execution that could have succeeded")
        self._move("succeeded_after_all", failure=None, returned=False)

    def _move(self, move: str, **changes: object) -> None:
        after = MOVES[move].get(self.phase)
        if after is None:
            raise MoveRefused(f"start {self.tag or self.agent}: '{move}' is not allowed for a start that is "
                              f"{self.phase.value}")
        for name, value in changes.items():
            object.__setattr__(self, name, value)
        assert self.phase is after, (move, self.phase, after)


@dataclass(frozen=True)
class Retry:
    """A retry as decided: everything needed to create its location and task and start it,
    so a later check can finish it after a crash without asking anything again."""

    of: str
    """The execution it replaces."""
    decided: float
    """When it was decided (epoch seconds): an execution of its task started before then is not its own."""
    task_name: str
    server: str
    subdir: str
    dest: str
    cloudwatch: str | None
    includes: list[str]
    excludes: list[str]
    options: dict[str, Any]
    nfs_version: str = "AUTOMATIC"
    task_mode: str = "BASIC"
    task: str | None = None
    """The retry task's ARN, once it exists."""


@dataclass(frozen=True)
class Attempt(_Start):
    """One execution of a scope, or a retry of it decided and not yet seen started."""

    agent: str
    execution: str | None = None
    """None while a retry is only an intent."""
    failure: str | None = None
    """How it failed (its status, or '<status> on offline agent'), once it has."""
    retry: Retry | None = None
    """How it was started, if it is a retry."""
    returned: bool = False
    """Taken back unfailed: it was still queued or launching on a lost agent, so it read nothing."""
    tag: str | None = None
    """Its start tag (``datasync.START_TAG``), if this run started it."""
    sent: float | None = None
    """When a retry's start was last about to be sent (epoch seconds), as ``ChunkAttempt.sent``."""

    def task_created(self, task: str) -> None:
        """The retry's task exists: a later check reuses it rather than create another."""
        if self.retry is None or self.retry.task not in (None, task):
            raise MoveRefused(f"start {self.tag or self.agent}: no retry, or its task is already "
                              f"{self.retry.task if self.retry else None}")
        object.__setattr__(self, "retry", dataclasses.replace(self.retry, task=task))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"agent": self.agent}
        for key, value in (("execution", self.execution), ("failed", self.failure), ("tag", self.tag),
                           ("sent", self.sent)):
            if value is not None:
                out[key] = value
        if self.returned:
            out["returned"] = True
        if self.retry is not None:
            r = self.retry
            out.update({"retry_of": r.of, "decided": r.decided, "task_name": r.task_name, "server": r.server,
                        "subdir": r.subdir, "nfs_version": r.nfs_version, "dest": r.dest, "cloudwatch": r.cloudwatch,
                        "task_mode": r.task_mode, "includes": list(r.includes), "excludes": list(r.excludes),
                        "options": dict(r.options)})
            if r.task is not None:
                out["task"] = r.task
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Attempt:
        retry = None
        if "retry_of" in data:
            retry = Retry(of=data["retry_of"], decided=float(data["decided"]), task_name=data["task_name"],
                          server=data["server"], subdir=data["subdir"], dest=data["dest"],
                          cloudwatch=data.get("cloudwatch"), includes=list(data["includes"]),
                          excludes=list(data["excludes"]), options=dict(data["options"]),
                          nfs_version=data.get("nfs_version", "AUTOMATIC"), task_mode=data.get("task_mode", "BASIC"),
                          task=data.get("task"))
        sent = data.get("sent")
        return cls(agent=str(data["agent"]), execution=data.get("execution"), failure=data.get("failed"),
                   retry=retry, returned=bool(data.get("returned", False)), tag=data.get("tag"),
                   sent=None if sent is None else float(sent))


class _Starts:
    """What a scope and a chunk share: their starts in order, and a final word once given up."""

    attempts: tuple
    given_up: str | None

    def give_up(self, why: str) -> None:
        """No start of it will be made again; the first reason given is kept (the word is final)."""
        if self.given_up is None:
            object.__setattr__(self, "given_up", why)

    def adopt(self, adopted: Attempt | ChunkAttempt) -> bool:
        """Record a start the ledger did not know (found by its tag). It is the execution of
        the intent with its tag, or takes its place in attempt-number order: only the newest
        start may be active, so an adopted newest one supersedes the active one before it,
        and an older one is superseded itself (a later start exists only because it ended
        or was taken back). True when it is a second execution of one start, which the
        caller cancels (recorded failed, so nothing follows it)."""
        if adopted.execution is None:
            raise MoveRefused("an adopted start has an execution")
        intent = next((a for a in self.attempts if a.tag == adopted.tag), None)
        if intent is not None and intent.execution is None:
            intent.started(adopted.execution)
            return False
        if intent is not None:  # recorded before its start's own, so the latest stays the one that runs
            adopted.failed(f"{SECOND_EXECUTION}{adopted.tag}: cancelled")
            at = next(i for i, a in enumerate(self.attempts) if a is intent)
            self._set_attempts((*self.attempts[:at], adopted, *self.attempts[at:]))
            return True
        number = attempt_number(adopted.tag)
        at = len(self.attempts)
        while at and attempt_number(self.attempts[at - 1].tag) > number:
            at -= 1
        self._set_attempts((*self.attempts[:at], adopted, *self.attempts[at:]))
        for attempt in self.attempts[:-1]:
            if attempt.active:
                attempt.superseded()
        return False

    def _set_attempts(self, attempts: tuple) -> None:
        object.__setattr__(self, "attempts", attempts)


@dataclass(frozen=True)
class Scope(_Starts):
    """One scope of work as the watcher follows it, kept under its first execution's ARN:
    every attempt in order (no agent that failed it is tried again), the retries spent,
    what it must move (the run's record of it), and, once given up, why: that word is
    final, whatever another watcher's settings."""

    attempts: tuple[Attempt, ...]
    retries: int = 0
    planned: PlannedScope | None = None
    given_up: str | None = None

    def __post_init__(self) -> None:
        self._set_attempts(tuple(self.attempts))

    @property
    def latest(self) -> Attempt:
        return self.attempts[-1]

    @property
    def key(self) -> str:
        """The name its start tags carry: the task it was planned for."""
        return self.planned.task_name if self.planned else ""

    def intend_retry(self, agent: str, retry: Retry, tag: str | None, spend: bool = True) -> Attempt:
        """Record a retry as an intent (its execution is not started yet), spending one retry
        unless the attempt it replaces was only taken back. Only once the latest attempt has
        failed or been taken back, and never for a scope given up."""
        if self.latest.active or self.given_up is not None:
            raise MoveRefused(f"scope {self.key}: a retry while its latest attempt is {self.latest.phase.value}"
                              f"{' and it is given up' if self.given_up else ''}")
        if spend:
            object.__setattr__(self, "retries", self.retries + 1)
        self._set_attempts((*self.attempts, Attempt(agent, retry=retry, tag=tag)))
        return self.latest

    def withdraw(self, attempt: Attempt) -> None:
        """Take back a retry DataSync refused before it started (its agent is barred): it goes,
        and the retry it spent comes back if it replaced a failure."""
        if attempt is not self.latest or attempt.execution is not None or len(self.attempts) < 2:
            raise MoveRefused(f"scope {self.key}: only the latest retry, not started, may be withdrawn")
        self._set_attempts(self.attempts[:-1])
        if self.latest.failure is not None:
            object.__setattr__(self, "retries", self.retries - 1)

    def record_plan(self, planned: PlannedScope) -> None:
        """What the scope must move, from the run's record, learnt once."""
        if self.planned not in (None, planned):
            raise MoveRefused(f"scope {self.key} already has its scope of record")
        object.__setattr__(self, "planned", planned)

    def adopt(self, adopted: Attempt | ChunkAttempt) -> bool:
        """As ``_Starts.adopt``; the retries spent are at least the failures before the latest."""
        second = super().adopt(adopted)
        failures = sum(1 for a in self.attempts[:-1] if a.failed_on_agent)
        object.__setattr__(self, "retries", max(self.retries, failures))
        return second

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"attempts": [a.to_json() for a in self.attempts], "retries": self.retries}
        if self.planned is not None:
            out["scope"] = self.planned.to_json()
        if self.given_up is not None:
            out["given_up"] = self.given_up
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Scope:
        planned = data.get("scope")
        return cls(tuple(Attempt.from_json(a) for a in data["attempts"]), int(data.get("retries", 0)),
                   PlannedScope.from_json(planned) if planned is not None else None, data.get("given_up"))


@dataclass(frozen=True)
class TaskFacts:
    """What the watcher keeps of a task (DescribeTask): none of it changes after creation."""

    name: str
    source: str
    dest: str
    cloudwatch: str | None = None
    mode: str = "BASIC"

    @classmethod
    def from_description(cls, task: Mapping[str, Any]) -> TaskFacts:
        return cls(task.get("Name", ""), task["SourceLocationArn"], task["DestinationLocationArn"],
                   task.get("CloudWatchLogGroupArn"), task.get("TaskMode", "BASIC"))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "dest": self.dest, "cloudwatch": self.cloudwatch,
                "mode": self.mode}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskFacts:
        return cls(data.get("name", ""), data["source"], data["dest"], data.get("cloudwatch"),
                   data.get("mode", "BASIC"))


@dataclass(frozen=True)
class ChunkAttempt(_Start):
    """One start of a chunk on one of an agent's tasks, or a start decided and not yet seen done."""

    agent: str
    task: str
    """The task (the agent's queue slot) it runs as."""
    decided: float
    """When the start was decided (epoch seconds)."""
    tag: str
    """Its start tag (``datasync.START_TAG``): how a check that lost the answer finds the execution."""
    execution: str | None = None
    """None while the start is only an intent."""
    failure: str | None = None
    """How it failed, once it has: the chunk may go to another agent, and never back to this one."""
    returned: bool = False
    """Cancelled while still queued on a lost agent, or refused before it started: back in
    the pool, and not a failure."""
    sent: float | None = None
    """When its start was last about to be sent (epoch seconds): a start whose answer was lost
    is not sent again before it has settled from then (``datasync.settle_seconds``)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"agent": self.agent, "task": self.task, "decided": self.decided, "tag": self.tag}
        if self.sent is not None:
            out["sent"] = self.sent
        if self.execution is not None:
            out["execution"] = self.execution
        if self.failure is not None:
            out["failed"] = self.failure
        if self.returned:
            out["returned"] = True
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChunkAttempt:
        sent = data.get("sent")
        return cls(str(data["agent"]), str(data["task"]), float(data["decided"]), str(data["tag"]),
                   data.get("execution"), data.get("failed"), bool(data.get("returned", False)),
                   None if sent is None else float(sent))


class ChunkState:
    """Where a chunk stands."""

    DONE, RUNNING, WAITING, GIVEN_UP = "done", "running", "waiting", "given up"


def stopped(described: Execution) -> bool:
    """Whether an execution can no longer run its chunk: ended, or on its way (CANCELLING)."""
    return described.status in ExecutionStatus.TERMINAL_STATES or described.status == ExecutionStatus.CANCELLING


@dataclass(frozen=True)
class ChunkRecord(_Starts):
    """One chunk of a dynamic plan as the dispatcher follows it: what it moves (copied from
    the plan, so the ledger alone can finish the job), every start of it in order, and,
    once given up, why (final, whatever another watcher's settings)."""

    index: int
    includes: tuple[str, ...]
    bytes: int
    files: int
    dirs: int
    cost: int
    attempts: tuple[ChunkAttempt, ...] = ()
    given_up: str | None = None

    def __post_init__(self) -> None:
        self._set_attempts(tuple(self.attempts))

    @property
    def key(self) -> str:
        """The name its start tags carry."""
        return f"chunk-{self.index}"

    @property
    def latest(self) -> ChunkAttempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def failures(self) -> int:
        return sum(1 for a in self.attempts if a.failed_on_agent)

    @property
    def barred(self) -> frozenset[str]:
        """Agents that failed it."""
        return frozenset(a.agent for a in self.attempts if a.failed_on_agent)

    def intend_start(self, agent: str, task: str, decided: float, tag: str) -> ChunkAttempt:
        """Record a start as an intent, before anything is asked of DataSync. Only for a chunk
        that waits: no start of it active, not given up."""
        latest = self.latest
        if self.given_up is not None:
            raise MoveRefused(f"chunk {self.index}: a start while it is given up")
        if latest is not None and latest.active:
            raise MoveRefused(f"chunk {self.index}: a start while start {latest.tag} is active")
        self._set_attempts((*self.attempts, ChunkAttempt(agent, task, decided, tag)))
        return self.attempts[-1]

    def state(self, latest: Execution | None) -> str:
        """Where the chunk stands by its record alone (``latest``: its latest execution's
        description, if known): done, running (a start decided, an execution not known to have
        failed, or one taken back that is not known to have stopped), given up (recorded), or
        waiting."""
        attempt = self.latest
        if attempt is not None and attempt.active:
            if latest is not None and latest.status in ExecutionStatus.SUCCESS_STATES:
                return ChunkState.DONE
            return ChunkState.RUNNING
        if attempt is not None and attempt.execution and (latest is None or not stopped(latest)):
            return ChunkState.RUNNING
        return ChunkState.GIVEN_UP if self.given_up else ChunkState.WAITING

    def to_json(self) -> dict[str, Any]:
        out = {"index": self.index, "includes": list(self.includes), "bytes": self.bytes, "files": self.files,
               "dirs": self.dirs, "cost": self.cost, "attempts": [a.to_json() for a in self.attempts]}
        if self.given_up is not None:
            out["given_up"] = self.given_up
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChunkRecord:
        return cls(int(data["index"]), tuple(str(p) for p in data["includes"]), int(data["bytes"]),
                   int(data["files"]), int(data["dirs"]), int(data["cost"]),
                   tuple(ChunkAttempt.from_json(a) for a in data["attempts"]), data.get("given_up"))


@dataclass
class Dispatch:
    """A dynamic plan in progress: each agent's tasks (its queue slots) and every chunk.
    Agents that join the run get their lane on first use."""

    lanes: dict[str, list[str]]
    """Agent ARN -> the ARNs of its tasks, one per queue slot."""
    chunks: list[ChunkRecord]
    live: bool = False
    """Live mode: the scan journals chunks while the run goes on (``journal.py``); each check
    takes the new ones (:meth:`take`)."""

    def take(self, chunks: Sequence[Any]) -> int:
        """Record the journal's chunks this dispatch does not hold yet (by index); how many."""
        known = {c.index for c in self.chunks}
        new = [ChunkRecord(c.index, c.includes, c.bytes, c.files, c.dirs, c.cost) for c in chunks
               if c.index not in known]
        self.chunks += new
        return len(new)

    def add_task(self, agent: str, task: str) -> None:
        """A task of the agent's lane: created for it, or found running one of the run's chunks."""
        lane = self.lanes.setdefault(agent, [])
        if task not in lane:
            lane.append(task)

    def to_json(self) -> dict[str, Any]:
        return {"lanes": {agent: list(tasks) for agent, tasks in self.lanes.items()},
                "chunks": [c.to_json() for c in self.chunks], **({"live": True} if self.live else {})}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Dispatch:
        return cls({str(agent): [str(t) for t in tasks] for agent, tasks in data["lanes"].items()},
                   [ChunkRecord.from_json(c) for c in data["chunks"]], bool(data.get("live", False)))

    def executions(self) -> set[str]:
        return {a.execution for c in self.chunks for a in c.attempts if a.execution}


def _location_to_json(loc: NfsLocation) -> dict[str, Any]:
    return {"agents": list(loc.agents), "server": loc.server, "subdir": loc.subdir, "nfs_version": loc.nfs_version}


def _location_from_json(data: Mapping[str, Any]) -> NfsLocation:
    return NfsLocation(tuple(data["agents"]), data["server"], data["subdir"], data.get("nfs_version", "AUTOMATIC"))


@dataclass
class Ledger:
    """The run's memory, beside the arn file: what the run is (``run``, written by the
    scheduler at launch), what was retried, what is known for good.

    ``scopes`` maps the first execution of each scope to its ``Scope``; ``dispatch`` is
    the record of a dynamic plan (None for a static one). ``tasks`` and ``locations``
    cache descriptions that do not change; ``finished`` keeps the last description of
    executions that ended (in DescribeTaskExecution's own field names), so they cost no
    call again; ``others`` are executions of the run's tasks whose tags show another
    run's, so their tags are read once. ``Ledger(path)`` is a new, empty ledger;
    ``Ledger.read(path)`` the one a file holds.
    """

    path: str
    run: Run | None = None
    scopes: dict[str, Scope] = field(default_factory=dict)
    tasks: dict[str, TaskFacts] = field(default_factory=dict)
    locations: dict[str, NfsLocation] = field(default_factory=dict)
    finished: dict[str, Execution] = field(default_factory=dict)
    dispatch: Dispatch | None = None
    others: set[str] = field(default_factory=set)
    changed: bool = field(default=False, repr=False, compare=False)
    """A save wrote something other than what was read (or last saved): the run moved on."""
    _saved: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def read(cls, path: str) -> Ledger:
        """The ledger in ``path``, or a new one if there is no such file. A damaged one is a
        UserError that says what to do: guessing at it could retry a scope twice."""
        data = read_json(path, what="ledger", if_damaged=LEDGER_DAMAGED)
        try:
            ledger = cls(path) if data is None else cls.from_json(data, path)
        except UserError as exc:
            raise UserError(f"ledger {path!r}: {exc}") from None
        ledger._saved = ledger.to_json()
        return ledger

    def save(self) -> None:
        data = self.to_json()
        write_json(self.path, data)
        self.changed = self.changed or data != self._saved
        self._saved = data

    def to_json(self) -> dict[str, Any]:
        live = self.dispatch is not None and self.dispatch.live
        return {"version": LIVE_LEDGER_VERSION if live else LEDGER_VERSION,
                **({"run": self.run.to_json()} if self.run is not None else {}),
                "scopes": {root: scope.to_json() for root, scope in self.scopes.items()},
                "tasks": {arn: task.to_json() for arn, task in self.tasks.items()},
                "locations": {arn: _location_to_json(loc) for arn, loc in self.locations.items()},
                "finished": {arn: e.to_description() for arn, e in self.finished.items()},
                **({"dispatch": self.dispatch.to_json()} if self.dispatch is not None else {}),
                "others": sorted(self.others)}

    @classmethod
    def from_json(cls, data: object, path: str) -> Ledger:
        """The ledger ``to_json`` wrote. Raises UserError for a ledger of another version,
        or one this version did not write: guessing at it could retry a scope twice."""
        if not isinstance(data, Mapping):
            raise UserError("not a ledger (it holds no JSON object)")
        version = data.get("version")
        if version not in (LEDGER_VERSION, LIVE_LEDGER_VERSION):
            raise UserError(f"written by another version of the watcher (ledger version {version!r}; this one reads "
                            f"versions {LEDGER_VERSION} and {LIVE_LEDGER_VERSION}): finish the migration with the "
                            "version that wrote it")
        try:
            return cls(path, run=Run.from_json(data["run"]) if "run" in data else None,
                       scopes={root: Scope.from_json(s) for root, s in data.get("scopes", {}).items()},
                       tasks={arn: TaskFacts.from_json(t) for arn, t in data.get("tasks", {}).items()},
                       locations={arn: _location_from_json(loc) for arn, loc in data.get("locations", {}).items()},
                       finished={arn: Execution.from_description(e)
                                 for arn, e in data.get("finished", {}).items()},
                       dispatch=Dispatch.from_json(data["dispatch"]) if "dispatch" in data else None,
                       others={str(e) for e in data.get("others", [])})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            detail = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
            raise UserError(f"not a ledger this version wrote: {detail}") from None

    def scope_of(self, execution: str, agent: str) -> str:
        """The scope an execution belongs to (a new one starts with itself, on ``agent``)."""
        for root, scope in self.scopes.items():
            if any(a.execution == execution for a in scope.attempts):
                return root
        self.scopes[execution] = Scope((Attempt(agent, execution),))
        return execution

    def known(self) -> set[str]:
        """Every execution the ledger has recorded (scopes, retries and chunks)."""
        known = {a.execution for s in self.scopes.values() for a in s.attempts if a.execution}
        return known | (self.dispatch.executions() if self.dispatch else set())

    def accounted(self) -> set[str]:
        """Every execution the ledger has recorded, and those known to be another run's: none
        of them can be a start whose answer was lost."""
        return self.known() | self.others
