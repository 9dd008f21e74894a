"""One check of the dispatcher: each chunk of a dynamic plan goes to the agent that frees first.

each check (the caller holds the arn file's lock): list agents -> finish starts a crashed
check decided -> look at each chunk's latest execution (done, running, failed, stranded)
-> cancel what is stranded, and what waits in the queue of a lost agent -> assign the
waiting chunks (``assign``) -> for each: record the start in the ledger as an intent, set
the task's includes, start it, record its ARN -> table.

Why it cannot start a chunk twice or lose one: a start is written to the ledger (and
saved) before DataSync is asked for anything, and a check that finds a start without an
execution first adopts the execution its task has that the ledger does not know, and
only starts one if there is none. A chunk whose execution failed goes back to the pool,
barred from the agent that failed it; one cancelled while still queued goes back as it
was. The chunk's includes are set on its task before each start, and a task is only
handed a chunk when it has no unfinished execution (each queue slot is a task of its
own), so an execution's includes equal its task's under every reading of how the two
combine.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from . import datasync as ds
from .assign import AgentLoad, WaitingChunk, assign, measured_rate
from .decisions import FAILED, STRANDED, classify, oversized
from .errors import SetupError
from .state import ChunkAttempt, ChunkRecord, Dispatch, Ledger, PlannedScope, append_line
from .states import AgentStatus, ExecutionStatus
from .watch import CHECK_ERRORS, Observer, failed_check, known_executions, short, started_after

log = logging.getLogger(__name__)

DONE, RUNNING, WAITING, GIVEN_UP = "done", "running", "waiting", "given up"


@dataclass(frozen=True)
class DispatchSettings:
    max_retries: int = 1
    """Failed attempts a chunk may have before it is given up, beyond its first."""
    offline_threshold: float = 600.0
    """Seconds since an OFFLINE agent's last contact before its chunks are taken back."""


@dataclass
class ChunkRow:
    chunk: int
    agent: str = ""
    execution: str = ""
    status: str = WAITING
    bytes_done: int = 0
    bytes: int = 0
    action: str = ""


@dataclass
class AgentRow:
    agent: str
    status: str
    chunks_done: int
    bytes_per_second: float | None


@dataclass
class DispatchResult:
    rows: list[ChunkRow] = field(default_factory=list)
    agents: list[AgentRow] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    """Chunks per state: done, running, waiting, given up."""
    bytes_done: int = 0
    bytes_total: int = 0
    eta: float | None = None
    errors: list[str] = field(default_factory=list)
    """Chunks this check could not look at or act on (an AWS error)."""
    given_up: list[int] = field(default_factory=list)
    stuck: list[int] = field(default_factory=list)
    """Waiting chunks that no ONLINE agent may take now, with nothing else running."""
    oversized: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return not self.counts.get(RUNNING) and not self.counts.get(WAITING) and not self.errors


def chunk_state(chunk: ChunkRecord, described: ds.Execution | None, max_retries: int) -> str:
    """Where a chunk stands, from its latest attempt (and that attempt's execution, if started)."""
    latest = chunk.latest
    if latest is not None and latest.active:
        if described is not None and described.status in ExecutionStatus.SUCCESS_STATES:
            return DONE
        return RUNNING
    return GIVEN_UP if chunk.failures > max_retries else WAITING


def progress(chunk: ChunkRecord, described: ds.Execution) -> float:
    """How much of the chunk an execution has moved, 0 to 1, by bytes (by items for a chunk of none)."""
    if chunk.bytes:
        return min(described.bytes_transferred / chunk.bytes, 1.0)
    return min(described.files_transferred / max(chunk.files + chunk.dirs, 1), 1.0)


class Dispatcher(Observer):
    """Holds the client, the ledger (with its dispatch record) and the settings for one check."""

    def __init__(self, client, ledger: Ledger, arn_file: str, settings: DispatchSettings):
        super().__init__(client, ledger)
        if ledger.dispatch is None:
            raise ValueError("the ledger holds no dispatch")
        self.dispatch: Dispatch = ledger.dispatch
        self.arn_file = arn_file
        self.settings = settings
        self.seen: dict[str, ds.Execution] = {}

    def check(self, now: float | None = None) -> DispatchResult:
        now = time.time() if now is None else now
        statuses = {a.arn: a.status for a in ds.list_agents(self.client)}
        result = DispatchResult()
        rows = {c.index: ChunkRow(c.index, bytes=c.bytes) for c in self.dispatch.chunks}
        for chunk in self.dispatch.chunks:
            attempt = chunk.latest
            if attempt is None or not attempt.active:
                continue
            row = rows[chunk.index]
            try:
                if attempt.execution is None:
                    self._start(chunk, attempt)
                    row.action = "start completed (an earlier check decided it); "
                self._follow(chunk, attempt, statuses, now, row, result)
            except CHECK_ERRORS as exc:
                row.action = failed_check(result.errors, row.action, f"chunk {chunk.index}",
                                          f"{ds.describe_error(exc)}; the next check tries again")
        self._dispatch(statuses, now, rows, result)
        self.ledger.save()
        self._summarize(statuses, now, rows, result)
        return result

    # -- following what runs ----------------------------------------------------------

    def _follow(self, chunk: ChunkRecord, attempt: ChunkAttempt, statuses: dict[str, str], now: float,
                row: ChunkRow, result: DispatchResult) -> None:
        """Look at the chunk's execution; take the chunk back if it failed, or if its agent is lost."""
        assert attempt.execution is not None
        described = self.describe(attempt.execution)
        self.seen[attempt.execution] = described
        agent_status = statuses.get(attempt.agent, AgentStatus.OFFLINE)
        offline_for = self.offline_for(attempt.agent, now) if agent_status == AgentStatus.OFFLINE else 0.0
        state = classify(described.status, agent_status, offline_for, self.settings.offline_threshold)
        if state not in (FAILED, STRANDED):
            flag = oversized(described, PlannedScope(f"chunk {chunk.index}", chunk.includes, (), chunk.files,
                                                     chunk.dirs, chunk.bytes))
            if flag:
                result.oversized.append(attempt.execution)
                log.warning("%s (chunk %d): %s", attempt.execution, chunk.index, flag)
                row.action += flag
            return
        if state == FAILED:
            attempt.failed = described.status + (f" ({described.error_code})" if described.error_code else "")
            row.action += f"failed on {short(attempt.agent)}: {attempt.failed}; back to the pool"
            log.warning("chunk %d failed on %s: %s (%s)", chunk.index, attempt.agent, attempt.failed,
                        attempt.execution)
            return
        # Still queued, or launching on an agent that is gone: it has read and moved nothing.
        queued = described.status in (ExecutionStatus.QUEUED, ExecutionStatus.LAUNCHING)
        ended = self._cancel(attempt.execution)
        if ended is not None and ended.status in ExecutionStatus.SUCCESS_STATES:
            row.action += "ended by itself before it could be cancelled: done"
            return
        if queued:
            attempt.returned = True
            row.action += (f"{described.status.lower()} on lost agent {short(attempt.agent)}: cancelled, "
                           "back to the pool")
        else:
            attempt.failed = f"{described.status} on offline agent"
            row.action += (f"stranded: agent {short(attempt.agent)} out of contact {offline_for:.0f}s; "
                           "cancelled, back to the pool")
        log.warning("chunk %d on lost agent %s (%s): %s", chunk.index, attempt.agent, attempt.execution, row.action)

    def _cancel(self, execution: str) -> ds.Execution | None:
        """Cancel; None if that worked, else the execution as it ended by itself meanwhile."""
        try:
            ds.cancel_execution(self.client, execution)
            return None
        except ds.AWSError:
            described = self.describe(execution, fresh=True)
            if described.status not in ExecutionStatus.TERMINAL_STATES:
                raise
            self.seen[execution] = described
            return described

    # -- handing out chunks -----------------------------------------------------------

    def _states(self) -> dict[int, str]:
        return {c.index: chunk_state(c, self.seen.get(c.latest.execution or "") if c.latest else None,
                                     self.settings.max_retries) for c in self.dispatch.chunks}

    def _loads(self, statuses: dict[str, str], now: float) -> list[AgentLoad]:
        """Each ONLINE agent of the plan: its free tasks, the work it has left, its measured rate."""
        loads = []
        for agent, tasks in sorted(self.dispatch.lanes.items()):
            if statuses.get(agent) != AgentStatus.ONLINE:
                continue
            busy: set[str] = set()
            backlog = 0.0
            for chunk, attempt, described in self._attempts_on(agent):
                if not attempt.active or (described and described.status in ExecutionStatus.TERMINAL_STATES):
                    continue
                busy.add(attempt.task)
                backlog += chunk.cost * (1 - (progress(chunk, described) if described else 0.0))
            rate = measured_rate(self._samples(agent, now, by_bytes=False))
            loads.append(AgentLoad(agent, sum(1 for t in tasks if t not in busy), backlog, rate))
        return loads

    def _attempts_on(self, agent: str):
        for chunk in self.dispatch.chunks:
            for attempt in chunk.attempts:
                if attempt.agent == agent:
                    described = self.seen.get(attempt.execution or "") or self.ledger.finished.get(
                        attempt.execution or "")
                    yield chunk, attempt, described

    def _samples(self, agent: str, now: float, by_bytes: bool):
        """(moved, seconds) for each chunk the agent ran or runs, from launch to end (or now)."""
        for chunk, attempt, described in self._attempts_on(agent):
            if described is None or described.launch_time is None or not attempt.active:
                continue
            done = described.status in ExecutionStatus.SUCCESS_STATES
            if not done and described.status in ExecutionStatus.TERMINAL_STATES:
                continue
            share = 1.0 if done else progress(chunk, described)
            end = described.end_time if done and described.end_time else now
            yield (described.bytes_transferred if by_bytes else chunk.cost * share), end - described.launch_time

    def _dispatch(self, statuses: dict[str, str], now: float, rows: dict[int, ChunkRow],
                  result: DispatchResult) -> None:
        states = self._states()
        by_index = {c.index: c for c in self.dispatch.chunks}
        waiting = [WaitingChunk(c.index, c.cost, c.barred) for c in self.dispatch.chunks
                   if states[c.index] == WAITING]
        loads = self._loads(statuses, now)
        assignment = assign(waiting, loads)
        result.eta = assignment.eta
        for index, agent in assignment.starts:
            chunk = by_index[index]
            busy = {a.task for _, a, d in self._attempts_on(agent)
                    if a.active and not (d and d.status in ExecutionStatus.TERMINAL_STATES)}
            task = next(t for t in self.dispatch.lanes[agent] if t not in busy)
            attempt = ChunkAttempt(agent, task, now)
            chunk.attempts.append(attempt)
            self.ledger.save()  # the intent is durable before anything is changed or started
            row = rows[index]
            try:
                self._start(chunk, attempt)
                row.action += ("; " if row.action else "") + f"started on {short(agent)}"
            except CHECK_ERRORS as exc:
                row.action = failed_check(result.errors, row.action, f"chunk {index}",
                                          f"starting it on {short(agent)} failed: {ds.describe_error(exc)}; "
                                          "the next check tries again")
        running = any(s == RUNNING for s in self._states().values())
        result.stuck = [] if running else sorted(c.index for c in waiting
                                                 if c.index in assignment.unplaceable or not loads)

    def _start(self, chunk: ChunkRecord, attempt: ChunkAttempt) -> None:
        """Adopt the execution a crashed check started for this intent, or start it; record it."""
        listed = ds.list_executions(self.client, attempt.task)
        known = known_executions(self.ledger)
        strangers = {e: s for e, s in listed.items() if e not in known}
        adopt = [e for e in strangers if started_after(self.describe(e), attempt.decided)]  # ended ones: cached
        if adopt:
            execution = adopt[-1]
            log.info("chunk %d: adopting %s, started before a restart", chunk.index, execution)
        else:
            # Its filters change only while nothing of it is unfinished: a cancel still ending,
            # or an execution someone else started, would wait; the next check tries again.
            running = [e for e, s in listed.items() if s not in ExecutionStatus.TERMINAL_STATES]
            if running:
                whose = "started by this dispatch" if running[0] in known else "that this dispatch did not start"
                raise SetupError(f"task {attempt.task} still has {running[0]} unfinished ({whose}); "
                                 "the chunk starts once it has ended")
            ds.set_task_includes(self.client, attempt.task, chunk.includes)
            execution = ds.start_execution(self.client, attempt.task, chunk.includes, [])
            log.info("chunk %d started on %s: %s", chunk.index, attempt.agent, execution)
        attempt.execution = execution
        self.ledger.save()
        append_line(self.arn_file, execution)

    # -- the summary --------------------------------------------------------------------

    def _summarize(self, statuses: dict[str, str], now: float, rows: dict[int, ChunkRow],
                   result: DispatchResult) -> None:
        states = self._states()
        for chunk in self.dispatch.chunks:
            row = rows[chunk.index]
            row.status = states[chunk.index]
            latest = chunk.latest
            if latest is not None and latest.active:
                row.agent, row.execution = latest.agent, latest.execution or ""
                described = self.seen.get(row.execution) or self.ledger.finished.get(row.execution)
                if described is not None:
                    row.status = described.status
                    row.bytes_done = chunk.bytes if states[chunk.index] == DONE else described.bytes_transferred
            elif states[chunk.index] == GIVEN_UP:
                result.given_up.append(chunk.index)
                row.action += f"failed {chunk.failures} time(s): given up"
            result.rows.append(row)
            result.counts[states[chunk.index]] = result.counts.get(states[chunk.index], 0) + 1
            result.bytes_total += chunk.bytes
            result.bytes_done += row.bytes_done
        for agent in sorted(self.dispatch.lanes):
            done = sum(1 for c in self.dispatch.chunks if states[c.index] == DONE and c.latest
                       and c.latest.agent == agent)
            result.agents.append(AgentRow(agent, statuses.get(agent, "not listed"), done,
                                          measured_rate(self._samples(agent, now, by_bytes=True))))
        if result.given_up:
            log.error("%d chunk(s) failed and will not be retried: %s", len(result.given_up),
                      ", ".join(map(str, result.given_up)))
