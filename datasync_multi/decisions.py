"""What the watcher does about one execution, decided without touching AWS or the disk.

A check gathers what it saw (the execution's description, its agent's status and last
contact, the scope's record in the ledger, the other agents) and ``decide`` turns that
into a ``Decision``: wait, done, retry on agent X, cancel then retry, no healthy agent
yet, move unfailed (still queued on a lost agent), or give up and why; a wait or done may
carry a flag (the execution selects far more than its plan). ``watch.Watcher`` carries the decision out.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass

from .ledger import PlannedScope, Run, Scope
from .records import Execution
from .statuses import AgentStatus, ExecutionStatus

SUCCEEDED, RUNNING, FAILED, STRANDED, UNREAD = "succeeded", "running", "failed", "stranded", "unread"
"""UNREAD: still queued or launching on an agent that is OFFLINE. It has read nothing, so it
moves at once, unfailed; past LAUNCHING the offline threshold governs (STRANDED)."""


OVERSELECT_FACTOR, OVERSELECT_SLACK = 1.5, 100
"""An estimate above factor x the plan's items + slack means the scope selects more than
planned. With TransferMode=CHANGED the estimate is what differs between source and
destination, so it can rightly be far below the plan (0 on a rerun), never far above."""


def classify(status: str, agent_status: str, offline_for: float, threshold: float) -> str:
    """What an execution's state means for the watcher.

    CANCELLING is on its way to ERROR: failed, and never cancelled again. One still queued
    or launching on an OFFLINE agent is unread, whatever the threshold. Another unfinished
    execution whose agent has been out of contact past the threshold is stranded. An
    unknown status (see ``statuses``) counts as running, on purpose, like the running ones.
    """
    if status in ExecutionStatus.SUCCESS_STATES:
        return SUCCEEDED
    if status in ExecutionStatus.FAILURE_STATES or status == ExecutionStatus.CANCELLING:
        return FAILED
    if agent_status == AgentStatus.OFFLINE and status in (ExecutionStatus.QUEUED, ExecutionStatus.LAUNCHING):
        return UNREAD
    if agent_status == AgentStatus.OFFLINE and offline_for >= threshold:
        return STRANDED
    return RUNNING


def planned_scope(run: Run | None, task_name: str) -> tuple[PlannedScope | None, str]:
    """The scope the run recorded for a task (its filters and counts), or None and why not.

    The run's record is the scope of record: DescribeTaskExecution does not promise to
    echo an execution's filters, a retry built from an empty echo would move the whole
    export, and the plan file may since have been replaced by another command.
    """
    if run is None:
        return None, "the ledger holds no run record (the scheduler writes one at launch)"
    planned = run.scopes.get(task_name)
    if planned is None:
        return None, f"the run's record has no task named {task_name}"
    if not planned.includes:
        return None, f"the run's record gives task {task_name} no include filter"
    return planned, ""


def echo_differs(execution: Execution, planned: PlannedScope) -> bool:
    """Whether the filters DescribeTaskExecution echoed (when it did) differ from the scope's."""
    return any(echoed is not None and echoed != wanted
               for echoed, wanted in ((execution.includes, planned.includes), (execution.excludes, planned.excludes)))


def oversized(execution: Execution, planned: PlannedScope | None) -> str:
    """Flag an execution that selects well more than its plan: an overlap, a wrong reading of
    the filters, or a mount that is not the export. (Enhanced mode counts files only.)"""
    estimated = execution.estimated_files
    if not planned or not estimated or execution.status in ExecutionStatus.NOT_YET_PREPARED:
        return ""
    items = planned.files + (0 if execution.task_mode == "ENHANCED" else planned.dirs)
    if estimated <= items * OVERSELECT_FACTOR + OVERSELECT_SLACK:
        return ""
    return (f"CHECK: selects {estimated:,} items where the plan has {items:,}: overlapping scopes, "
            "filters read another way, or a mount that is not the export")


@dataclass(frozen=True)
class Seen:
    """What a check saw of one execution: all a decision needs from outside."""

    execution: Execution
    agent_status: str
    """Its agent's status in ListAgents (OFFLINE if the agent is not listed)."""
    offline_for: float
    """Seconds since an OFFLINE agent's last contact; 0 for an agent that is not OFFLINE."""
    planned: PlannedScope | None
    """What its scope must move, or None if that cannot be known (``why_not`` says why)."""
    why_not: str = ""


@dataclass(frozen=True)
class Fleet:
    """The agents a retry could go to, as the check found them."""

    statuses: Mapping[str, str]
    """Agent ARN -> status, from ListAgents."""
    busy: Mapping[str, int]
    """Agent ARN -> unfinished executions on it (retries decided in this check included)."""
    allowed: frozenset[str] | None = None
    """The agents that may serve the run now (``Run.usable``); None: any agent listed."""
    possible: frozenset[str] | None = None
    """The agents that may ever serve it (``Run.possible``: drained ones too); None: ``allowed``."""

    def may_use(self) -> frozenset[str]:
        return frozenset(self.statuses) if self.allowed is None else self.allowed

    def may_ever_use(self) -> frozenset[str]:
        return self.may_use() if self.possible is None else self.possible | self.may_use()


class Kind(enum.Enum):
    WAIT = "wait: still running"
    DONE = "done"
    RETRY = "retry on another agent"
    CANCEL_THEN_RETRY = "cancel, then retry on another agent"
    TAKE_BACK = "cancel, then move to another agent, unfailed"
    NO_HEALTHY_AGENT = "failed, and no healthy agent to retry on yet"
    GIVE_UP = "failed, and not retried"


@dataclass(frozen=True)
class Decision:
    kind: Kind
    action: str = ""
    """What the table's action column says (a retry then adds how the cancel went and where it moved)."""
    flag: str = ""
    """For WAIT and DONE: why the execution looks far larger than its plan, or ''."""
    failed: str = ""
    """For the failure kinds: how the attempt failed, as the ledger records it."""
    target: str | None = None
    """For RETRY and CANCEL_THEN_RETRY: the agent that takes the scope."""
    log: str = ""
    """For NO_HEALTHY_AGENT and GIVE_UP: what the log says after the execution's ARN ('' for nothing)."""


def tried(scope: Scope) -> frozenset[str]:
    """Agents that failed an attempt of the scope, and the agent of its latest attempt unless
    that was taken back unread."""
    latest = scope.latest
    failed = frozenset(a.agent for a in scope.attempts if a.failed_on_agent)
    return failed if latest.returned else failed | {latest.agent}


def healthy_agent(scope: Scope, fleet: Fleet) -> str | None:
    """The least busy ONLINE agent that may serve the run and has not been tried on this scope (ties by ARN)."""
    healthy = sorted((a for a in fleet.may_use() - tried(scope) if fleet.statuses.get(a) == AgentStatus.ONLINE),
                     key=lambda a: (fleet.busy.get(a, 0), a))
    return healthy[0] if healthy else None


def decide(seen: Seen, scope: Scope, fleet: Fleet, *, max_retries: int, offline_threshold: float) -> Decision:
    """What to do about the latest attempt of ``scope``, given what the check saw of it.

    A scope is retried on another agent while its budget lasts, its scope of record is
    known and some agent that may serve the run has not failed it; a stranded execution
    is cancelled first (one already CANCELLING never is); one still queued or launching on
    a lost agent is moved unfailed, spending nothing; with no healthy agent ONLINE yet the
    budget is kept for the next check. A scope given up stays given up.
    """
    status = seen.execution.status
    state = classify(status, seen.agent_status, seen.offline_for, offline_threshold)
    if state in (SUCCEEDED, RUNNING):
        flag = oversized(seen.execution, seen.planned)
        if state == SUCCEEDED:
            return Decision(Kind.DONE, flag or "done", flag=flag)
        return Decision(Kind.WAIT, flag or "running", flag=flag)
    if state == UNREAD or scope.latest.returned:  # read nothing, or taken back and not yet moved
        return _move_unfailed(seen, scope, fleet, state)
    failed = status if state == FAILED else f"{status} on offline agent"
    said = f"stranded: agent out of contact {seen.offline_for:.0f}s; " if state == STRANDED else ""
    if seen.execution.error_code:
        said += f"{seen.execution.error_code}; "
    if scope.given_up is not None:
        return Decision(Kind.GIVE_UP, f"given up earlier: {scope.given_up}", failed=failed)
    if scope.retries >= max_retries:
        return Decision(Kind.GIVE_UP, said + f"failed, no retries left ({scope.retries}/{max_retries})", failed=failed)
    if seen.planned is None:
        why = f"{seen.why_not}, so its scope cannot be rebuilt"
        return Decision(Kind.GIVE_UP, said + f"failed; not retried: {why}", failed=failed,
                        log=f"failed and is not retried: {why}")
    if not fleet.may_ever_use() - tried(scope):
        return Decision(Kind.GIVE_UP, said + "failed on every agent that may serve the run", failed=failed,
                        log="failed on every agent that may serve the run: given up")
    target = healthy_agent(scope, fleet)
    if target is None:
        return Decision(Kind.NO_HEALTHY_AGENT, said + "failed; no healthy agent to move to, retry budget kept",
                        failed=failed, log="failed and no agent that may take it is ONLINE; will try again next check")
    return Decision(Kind.CANCEL_THEN_RETRY if state == STRANDED else Kind.RETRY, said, failed=failed, target=target)


def _move_unfailed(seen: Seen, scope: Scope, fleet: Fleet, state: str) -> Decision:
    """A start that read nothing (unread on a lost agent, or taken back earlier) moves to a
    healthy agent, spending nothing; it is given up only when no agent may ever take it."""
    if scope.given_up is not None:
        return Decision(Kind.GIVE_UP, f"given up earlier: {scope.given_up}")
    target = healthy_agent(scope, fleet) if seen.planned is not None else None
    said = f"{seen.execution.status.lower()} on a lost agent" if state == UNREAD else "taken back unfailed earlier"
    if target is not None:
        return Decision(Kind.TAKE_BACK, f"{said}, read nothing; ", target=target)
    if scope.latest.returned and not fleet.may_ever_use() - tried(scope):
        return Decision(Kind.GIVE_UP, f"{said}; no agent that may serve the run can take it",
                        log="was taken back and no agent that may serve the run can take it: given up")
    why = seen.why_not if seen.planned is None else "no healthy agent to move it to yet"
    return Decision(Kind.WAIT, f"{said}; {why}")


def stall_note(now: float, offline_for: float, threshold: float) -> str:
    """What the table says of an execution whose agent is OFFLINE: since when, and when it moves."""
    since = now - offline_for
    return f"agent OFFLINE since {_clock(since)}, moves at {_clock(since + threshold)}"


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch))


def short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]
