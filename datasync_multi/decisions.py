"""What the watcher does about one execution, decided without touching AWS or the disk.

A check gathers what it saw (the execution's description, its agent's status and last
contact, the scope's record in the ledger, the other agents) and ``decide`` turns that
into a ``Decision``: wait, done, retry on agent X, cancel then retry, no healthy agent
yet, or give up and why; a wait or done may carry a flag (the execution selects far more
than its plan). ``watch.Watcher`` carries the decision out.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from .datasync import Execution
from .plan import Plan
from .state import PlannedScope, Scope
from .states import AgentStatus, ExecutionStatus

SUCCEEDED, RUNNING, FAILED, STRANDED = "succeeded", "running", "failed", "stranded"


OVERSELECT_FACTOR, OVERSELECT_SLACK = 1.5, 100
"""An estimate above factor x the plan's items + slack means the scope selects more than
planned. With TransferMode=CHANGED the estimate is what differs between source and
destination, so it can rightly be far below the plan (0 on a rerun), never far above."""


def classify(status: str, agent_status: str, offline_for: float, threshold: float) -> str:
    """What an execution's state means for the watcher.

    CANCELLING is on its way to ERROR: failed, and never cancelled again. An unfinished
    execution whose agent has been out of contact past the threshold is stranded. An
    unknown status (see ``states``) counts as running, on purpose, like the running ones.
    """
    if status in ExecutionStatus.SUCCESS_STATES:
        return SUCCEEDED
    if status in ExecutionStatus.FAILURE_STATES or status == ExecutionStatus.CANCELLING:
        return FAILED
    if agent_status == AgentStatus.OFFLINE and offline_for >= threshold:
        return STRANDED
    return RUNNING


def planned_scope(plan: Plan | None, task_name: str) -> tuple[PlannedScope | None, str]:
    """The scope the scheduler planned for a task (its filters and counts), or None and why not.

    The plan is the scope of record: DescribeTaskExecution does not promise to echo an
    execution's filters, and a retry built from an empty echo would move the whole export.
    """
    if plan is None:
        return None, "there is no plan file (--plan_file) to take its scope from"
    task = next((t for t in plan.tasks if t.name == task_name), None)
    if task is None:
        return None, f"the plan file has no task named {task_name}"
    if not task.includes:
        return None, f"the plan gives task {task_name} no include filter"
    return PlannedScope(task_name, task.includes, (), task.files, task.dirs, task.bytes), ""


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
    """The plan's agents (the user chose them, and their task mode fits); None: any agent."""


class Kind(enum.Enum):
    WAIT = "wait: still running"
    DONE = "done"
    RETRY = "retry on another agent"
    CANCEL_THEN_RETRY = "cancel, then retry on another agent"
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


def healthy_agent(scope: Scope, fleet: Fleet) -> str | None:
    """The least busy ONLINE agent allowed that has failed no attempt of this scope (ties by ARN)."""
    tried = {a.agent for a in scope.attempts}
    healthy = sorted((a for a, s in fleet.statuses.items() if s == AgentStatus.ONLINE and a not in tried
                      and (fleet.allowed is None or a in fleet.allowed)), key=lambda a: (fleet.busy.get(a, 0), a))
    return healthy[0] if healthy else None


def decide(seen: Seen, scope: Scope, fleet: Fleet, *, max_retries: int, offline_threshold: float) -> Decision:
    """What to do about the latest attempt of ``scope``, given what the check saw of it.

    A scope is retried on another agent while its budget lasts and its scope of record is
    known; a stranded execution is cancelled first (one already CANCELLING never is); with
    no healthy agent the budget is kept for the next check.
    """
    status = seen.execution.status
    state = classify(status, seen.agent_status, seen.offline_for, offline_threshold)
    if state in (SUCCEEDED, RUNNING):
        flag = oversized(seen.execution, seen.planned)
        if state == SUCCEEDED:
            return Decision(Kind.DONE, flag or "done", flag=flag)
        return Decision(Kind.WAIT, flag or "running", flag=flag)
    failed = status if state == FAILED else f"{status} on offline agent"
    said = f"stranded: agent out of contact {seen.offline_for:.0f}s; " if state == STRANDED else ""
    if seen.execution.error_code:
        said += f"{seen.execution.error_code}; "
    if scope.retries >= max_retries:
        return Decision(Kind.GIVE_UP, said + f"failed, no retries left ({scope.retries}/{max_retries})", failed=failed)
    if seen.planned is None:
        why = f"{seen.why_not}, so its scope cannot be rebuilt"
        return Decision(Kind.GIVE_UP, said + f"failed; not retried: {why}", failed=failed,
                        log=f"failed and is not retried: {why}")
    target = healthy_agent(scope, fleet)
    if target is None:
        return Decision(Kind.NO_HEALTHY_AGENT, said + "failed; no healthy agent to move to, retry budget kept",
                        failed=failed, log="failed and no healthy agent is ONLINE; will try again next check")
    return Decision(Kind.CANCEL_THEN_RETRY if state == STRANDED else Kind.RETRY, said, failed=failed, target=target)
