"""What the dispatcher does about one chunk, decided without touching AWS or the disk.

A check gathers what it saw of a chunk's latest start (its execution's description, its
agent's status and last contact) and these rules say what happens: it runs on, it is
done, it failed (back to the pool, barred from that agent), it was stranded on a lost
agent past the threshold (cancelled, then back to the pool, as a failure), or it was
still queued or launching on a lost agent (cancelled, back to the pool unfailed: it read
nothing). A start taken back is handed out again only once its execution is seen to
stop; one that ended with SUCCESS by itself meanwhile is done. A chunk that waits is
given up when it failed more often than the retries allow, or failed on every agent
that may ever serve the run. ``dispatch.Dispatcher`` gathers and carries out.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass

from .decisions import FAILED, STRANDED, UNREAD, classify, oversized, short, stall_note
from .ledger import ChunkRecord, PlannedScope, stopped
from .records import Execution
from .statuses import AgentStatus, ExecutionStatus


class Step(enum.Enum):
    RUN_ON = "running"
    FAIL = "failed: back to the pool, never again on its agent"
    STRAND = "stranded on a lost agent: failed, cancelled, back to the pool"
    TAKE_BACK = "unread on a lost agent: cancelled, back to the pool unfailed"
    SUCCEEDED_AFTER_ALL = "taken back, yet it ended with SUCCESS: done"
    CANCEL_AGAIN = "taken back and not seen stopping: cancel again"
    STOPPING = "taken back and stopping: nothing to do"


@dataclass(frozen=True)
class ChunkSeen:
    """What a check saw of a chunk's latest start: all a decision needs from outside."""

    execution: Execution
    agent: str
    agent_status: str
    """Its agent's status in ListAgents (OFFLINE if the agent is not listed)."""
    offline_for: float
    """Seconds since an OFFLINE agent's last contact; 0 for an agent that is not OFFLINE."""
    now: float


@dataclass(frozen=True)
class ChunkDecision:
    step: Step
    failure: str = ""
    """For FAIL and STRAND: how the start failed, as the ledger records it."""
    note: str = ""
    """What the table's action column says: for RUN_ON, since when its agent is OFFLINE, or ''."""
    flag: str = ""
    """For RUN_ON: why the execution looks far larger than its chunk, or ''."""


def follow(chunk: ChunkRecord, seen: ChunkSeen, offline_threshold: float) -> ChunkDecision:
    """What to do about the chunk's active start, whose execution the check described."""
    described, agent = seen.execution, short(seen.agent)
    state = classify(described.status, seen.agent_status, seen.offline_for, offline_threshold)
    if state == FAILED:
        failure = described.status + (f" ({described.error_code})" if described.error_code else "")
        return ChunkDecision(Step.FAIL, failure, f"failed on {agent}: {failure}; back to the pool")
    if state == UNREAD:
        return ChunkDecision(Step.TAKE_BACK, note=f"{described.status.lower()} on lost agent {agent}: cancelled, "
                                                  "back to the pool")
    if state == STRANDED:
        return ChunkDecision(Step.STRAND, f"{described.status} on offline agent",
                             f"stranded: agent {agent} out of contact {seen.offline_for:.0f}s; cancelled, back to "
                             "the pool")
    note = ""
    if seen.agent_status == AgentStatus.OFFLINE and described.status not in ExecutionStatus.SUCCESS_STATES:
        note = stall_note(seen.now, seen.offline_for, offline_threshold)
    flag = oversized(described, PlannedScope(f"chunk {chunk.index}", chunk.includes, (), chunk.files, chunk.dirs,
                                             chunk.bytes))
    return ChunkDecision(Step.RUN_ON, note=note, flag=flag)


def after_take_back(described: Execution) -> Step:
    """What to do about a start taken back (failed or returned) whose execution still exists:
    it is handed out again only once that execution has stopped."""
    if described.status in ExecutionStatus.SUCCESS_STATES:
        return Step.SUCCEEDED_AFTER_ALL
    return Step.STOPPING if stopped(described) else Step.CANCEL_AGAIN


def give_up_reason(chunk: ChunkRecord, max_retries: int, possible: Collection[str]) -> str | None:
    """Why a waiting chunk can never run again, or None: it failed more often than the
    retries allow, or on every agent that may ever serve the run (drained ones count: a
    drain is lifted)."""
    if chunk.failures > max_retries:
        return f"failed {chunk.failures} time(s), more than the {max_retries} retries allowed"
    if not set(possible) - chunk.barred:
        return f"failed on every agent that may serve the run ({chunk.failures})"
    return None
