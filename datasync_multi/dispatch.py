"""One check of the dispatcher: each chunk of a dynamic plan goes to the agent that frees first.

each check (the caller holds the arn file's lock): list agents -> adopt the run's starts
the ledger does not know (by their tags) -> finish the starts a crashed check decided ->
look at each chunk's latest execution (done, running, failed, stranded, or still queued
on a lost agent) -> cancel what is taken back -> assign the waiting chunks (``assign``)
to the agents that may serve the run -> for each: record the start in the ledger as an
intent, set the task's includes, start it tagged with the intent's name, record its ARN
-> give an agent that joined the run its tasks.

Why a chunk is never started twice nor lost: a start is saved in the ledger before
DataSync is asked for anything, and a check that finds a start without an execution
looks for the execution tagged with that start's name; it starts one only if there is
none, and gives the chunk back only when DataSync refused the start (so nothing runs
it). A check that cannot look for the run's unrecorded starts starts nothing. A chunk
whose execution failed goes back to the pool, barred from the agent that failed it; one
cancelled while still queued goes back as it was; either is handed out again only once
its execution is seen to have stopped. A take-back is saved before the cancel is sent.
The chunk's includes are set on its task before each start, and a task is handed a
chunk only when none of its executions is unfinished (each queue slot is a task of its
own), so an execution's includes equal its task's under every reading of how the two
combine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from . import datasync as ds
from .assign import AgentLoad, WaitingChunk, assign, measured_rate
from .decisions import FAILED, RUNNING, STRANDED, UNREAD, classify, oversized
from .errors import AgentRefused, SetupError
from .files import append_line
from .ledger import ChunkAttempt, ChunkRecord, Dispatch, Ledger, PlannedScope, Run, next_number
from .plan import task_name_for
from .records import Execution
from .statuses import AgentStatus, ExecutionStatus
from .watch import CHECK_ERRORS, Observer, Settings, adopt_or_say, failed_check, short, stall_note

log = logging.getLogger(__name__)

TASK_QUOTA = 100
"""Tasks DataSync allows per account and region (quotas page): a joining agent's lane must fit."""


class ChunkState:
    """Where a chunk stands."""

    DONE, RUNNING, WAITING, GIVEN_UP = "done", "running", "waiting", "given up"


@dataclass
class ChunkRow:
    chunk: int
    agent: str = ""
    execution: str = ""
    status: str = ChunkState.WAITING
    bytes_done: int = 0
    bytes: int = 0
    action: str = ""

    def add(self, action: str) -> None:
        self.action += ("; " if self.action else "") + action


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
    """Chunks per state (``ChunkState``)."""
    bytes_done: int = 0
    bytes_total: int = 0
    eta: float | None = None
    errors: list[str] = field(default_factory=list)
    """Chunks this check could not look at or act on (an AWS error): the next check tries again."""
    exhausted: list[str] = field(default_factory=list)
    """Chunks given up: failed more often than the retries allow, or on every agent of the plan."""
    waiting: list[str] = field(default_factory=list)
    """Chunks that wait and that no ONLINE agent may take, with nothing else running."""
    oversized: list[str] = field(default_factory=list)
    stalled: list[str] = field(default_factory=list)
    """What the table says of each chunk running on an OFFLINE agent and not yet moved."""

    @property
    def finished(self) -> bool:
        return not self.counts.get(ChunkState.RUNNING) and not self.counts.get(ChunkState.WAITING) \
            and not self.errors


def progress(chunk: ChunkRecord, described: Execution) -> float:
    """How much of the chunk an execution has moved, 0 to 1, by bytes (by items for a chunk of none)."""
    if chunk.bytes:
        return min(described.bytes_transferred / chunk.bytes, 1.0)
    return min(described.files_transferred / max(chunk.files + chunk.dirs, 1), 1.0)


class Dispatcher(Observer):
    """Holds the client, the ledger (with its run and dispatch records) and the settings for one check."""

    def __init__(self, client, ledger: Ledger, arn_file: str, settings: Settings):
        super().__init__(client, ledger)
        if ledger.dispatch is None or ledger.run is None:
            raise ValueError("the ledger holds no dispatch")
        self.dispatch: Dispatch = ledger.dispatch
        self.run: Run = ledger.run
        self.arn_file = arn_file
        self.settings = settings
        self.seen: dict[str, Execution] = {}
        self.usable: frozenset[str] = frozenset(self.dispatch.lanes)
        """The agents that may serve the run now, of those ListAgents shows (set by ``check``)."""
        self.possible: frozenset[str] = self.usable
        """The agents that may ever serve it: drained ones too (set by ``check``)."""
        self.stalled: dict[int, str] = {}
        """Chunks running on an OFFLINE agent, not yet moved: what the table says of each."""

    def check(self, now: float | None = None) -> DispatchResult:
        """Follow every chunk, take back what failed or is stranded, start what should start; the result."""
        now = time.time() if now is None else now
        statuses = {a.arn: a.status for a in ds.list_agents(self.client)}
        self.usable = self.run.usable(statuses)
        self.possible = self.run.possible(statuses) | self.usable
        result = DispatchResult()
        rows = {c.index: ChunkRow(c.index, bytes=c.bytes) for c in self.dispatch.chunks}
        may_act = adopt_or_say(lambda: self._adopt_unrecorded(now), result.errors)
        for chunk in self.dispatch.chunks:
            attempt = chunk.latest
            if attempt is None:
                continue
            row = rows[chunk.index]
            taken_back_earlier = not attempt.active
            try:
                if attempt.active and attempt.execution is None and may_act:
                    self._resume(chunk, attempt, statuses, row)
                if attempt.active and attempt.execution is not None:
                    self._follow(chunk, attempt, statuses, now, row, result)
                for earlier in chunk.attempts:  # a take-back still ending keeps its task busy
                    if not earlier.active and earlier.execution:
                        self.seen[earlier.execution] = self.describe(earlier.execution)
                if taken_back_earlier and attempt.execution:
                    self._finish_take_back(attempt, row)
            except CHECK_ERRORS as exc:
                row.action = failed_check(result.errors, row.action, f"chunk {chunk.index}",
                                          f"{ds.describe_error(exc)}; the next check tries again")
        if may_act:
            self._dispatch(statuses, now, rows, result)
            self._add_lanes(statuses, result)
        self.ledger.save()
        self._summarize(statuses, now, rows, result)
        return result

    # -- states ---------------------------------------------------------------------------

    def _described(self, execution: str | None) -> Execution | None:
        return self.seen.get(execution or "") or self.ledger.finished.get(execution or "")

    def _unfinished(self, attempt: ChunkAttempt) -> bool:
        """Whether the attempt may still run: an intent, or an execution not known to have ended."""
        if attempt.execution is None:
            return attempt.active
        described = self._described(attempt.execution)
        return described is None or described.status not in ExecutionStatus.TERMINAL_STATES

    def state(self, chunk: ChunkRecord) -> str:
        """Where the chunk stands; one that can no longer run is given up, and the ledger keeps
        that word (and why), so a watcher with other settings does not take it back."""
        state = chunk_state(chunk, self._described(chunk.latest.execution) if chunk.latest else None)
        if state != ChunkState.WAITING:
            return state
        if chunk.failures > self.settings.max_retries:
            chunk.given_up = (f"failed {chunk.failures} time(s), more than the {self.settings.max_retries} "
                              "retries allowed")
        elif not self.possible - chunk.barred:
            chunk.given_up = f"failed on every agent that may serve the run ({chunk.failures})"
        return ChunkState.GIVEN_UP if chunk.given_up else ChunkState.WAITING

    def _attempts_on(self, agent: str) -> Iterator[tuple[ChunkRecord, ChunkAttempt, Execution | None]]:
        for chunk in self.dispatch.chunks:
            for attempt in chunk.attempts:
                if attempt.agent == agent:
                    yield chunk, attempt, self._described(attempt.execution)

    def _busy_tasks(self, agent: str) -> set[str]:
        """The agent's tasks with something unfinished on them: they take no chunk now."""
        return {a.task for _, a, _ in self._attempts_on(agent) if self._unfinished(a)}

    # -- what the ledger does not know ---------------------------------------------------

    def _adopt_unrecorded(self, now: float) -> None:
        """Record the starts of this run the ledger does not know (a lost answer, or a ledger
        put back from an older copy), each in its chunk, and the task it ran on as a lane of
        its agent, so it is followed and never started again."""
        by_key = {c.key: c for c in self.dispatch.chunks}
        for execution, task, key, number in self.unrecorded_starts():
            chunk = by_key.get(key)
            if chunk is None:
                self.ledger.others.add(execution)
                continue
            agent = self.agent_of_task(task)
            lane = self.dispatch.lanes.setdefault(agent, [])
            if task not in lane:
                lane.append(task)
            self.adopt(chunk.attempts, ChunkAttempt(agent, task, now, self.run.start_tag(key, number), execution),
                       self.arn_file)

    # -- following what runs ----------------------------------------------------------

    def _follow(self, chunk: ChunkRecord, attempt: ChunkAttempt, statuses: dict[str, str], now: float,
                row: ChunkRow, result: DispatchResult) -> None:
        """Look at the chunk's execution; take the chunk back if it failed, if its agent is
        lost past the threshold, or at once if it is still queued or launching on a lost agent."""
        assert attempt.execution is not None
        described = self.describe(attempt.execution)
        self.seen[attempt.execution] = described
        agent_status = statuses.get(attempt.agent, AgentStatus.OFFLINE)
        offline_for = self.offline_for(attempt.agent, now) if agent_status == AgentStatus.OFFLINE else 0.0
        state = classify(described.status, agent_status, offline_for, self.settings.offline_threshold)
        if state not in (FAILED, STRANDED, UNREAD):
            if agent_status == AgentStatus.OFFLINE and state == RUNNING:
                self.stalled[chunk.index] = stall_note(now, offline_for, self.settings.offline_threshold)
                row.add(self.stalled[chunk.index])
            flag = oversized(described, PlannedScope(f"chunk {chunk.index}", chunk.includes, (), chunk.files,
                                                     chunk.dirs, chunk.bytes))
            if flag:
                result.oversized.append(f"chunk {chunk.index}")
                log.warning("%s (chunk %d): %s", attempt.execution, chunk.index, flag)
                row.add(flag)
            return
        if state == FAILED:
            attempt.failed = described.status + (f" ({described.error_code})" if described.error_code else "")
            row.add(f"failed on {short(attempt.agent)}: {attempt.failed}; back to the pool")
            log.warning("chunk %d failed on %s: %s (%s)", chunk.index, attempt.agent, attempt.failed,
                        attempt.execution)
            return
        if state == UNREAD:  # still queued, or launching, on an agent that is gone: it has read nothing
            attempt.returned = True
            said = f"{described.status.lower()} on lost agent {short(attempt.agent)}: cancelled, back to the pool"
        else:
            attempt.failed = f"{described.status} on offline agent"
            said = (f"stranded: agent {short(attempt.agent)} out of contact {offline_for:.0f}s; "
                    "cancelled, back to the pool")
        self.ledger.save()  # the take-back is durable before the cancel: a crash cannot make it a failure
        ended = self._cancel(attempt.execution)
        if ended is not None and ended.status in ExecutionStatus.SUCCESS_STATES:
            attempt.returned, attempt.failed = False, None
            row.add("ended by itself before it could be cancelled: done")
            return
        row.add(said)
        log.warning("chunk %d on lost agent %s (%s): %s", chunk.index, attempt.agent, attempt.execution, said)

    def _finish_take_back(self, attempt: ChunkAttempt, row: ChunkRow) -> None:
        """A chunk taken back is handed out again only once its execution has ended (or is
        CANCELLING): a cancel that failed, or a check killed before sending it, is sent
        again; one that ended with SUCCESS by itself meanwhile makes the chunk done."""
        assert attempt.execution is not None
        described = self.seen[attempt.execution]
        if described.status in ExecutionStatus.SUCCESS_STATES:
            attempt.failed, attempt.returned = None, False
            row.add("ended by itself after it was taken back: done")
        elif not taken_back(described):
            ended = self._cancel(attempt.execution)
            row.add("cancel sent again" if ended is None else f"ended by itself: {ended.status}")
            if ended is not None and ended.status in ExecutionStatus.SUCCESS_STATES:
                attempt.failed, attempt.returned = None, False

    def _cancel(self, execution: str) -> Execution | None:
        """Cancel; None if that worked (the execution is described again, so this check sees it
        stopping), else the execution as it ended by itself meanwhile."""
        try:
            ds.cancel_execution(self.client, execution)
            self.seen[execution] = self.describe(execution, fresh=True)
            return None
        except ds.AWSError:
            described = self.describe(execution, fresh=True)
            if described.status not in ExecutionStatus.TERMINAL_STATES:
                raise
            self.seen[execution] = described
            return described

    # -- handing out chunks -----------------------------------------------------------

    def _loads(self, statuses: dict[str, str], now: float) -> list[AgentLoad]:
        """Each ONLINE agent with a lane that may serve the run (not drained, not barred):
        its free tasks, the work it has left, its measured rate."""
        loads = []
        for agent, tasks in sorted(self.dispatch.lanes.items()):
            if statuses.get(agent) != AgentStatus.ONLINE or agent not in self.usable:
                continue
            backlog = sum(chunk.cost * (1 - (progress(chunk, described) if described else 0.0))
                          for chunk, attempt, described in self._attempts_on(agent)
                          if attempt.active and self._unfinished(attempt))
            busy = self._busy_tasks(agent)
            loads.append(AgentLoad(agent, sum(1 for t in tasks if t not in busy), backlog,
                                   measured_rate(self._samples(agent, now, by_bytes=False))))
        return loads

    def _samples(self, agent: str, now: float, by_bytes: bool) -> Iterator[tuple[float, float]]:
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
        by_index = {c.index: c for c in self.dispatch.chunks}
        waiting = [WaitingChunk(c.index, c.cost, c.barred) for c in self.dispatch.chunks
                   if self.state(c) == ChunkState.WAITING]
        loads = self._loads(statuses, now)
        assignment = assign(waiting, loads, pickup_delay=self.settings.poll / 2)
        result.eta = assignment.eta
        for index, agent in assignment.starts:
            chunk = by_index[index]
            busy = self._busy_tasks(agent)
            task = next(t for t in self.dispatch.lanes[agent] if t not in busy)
            attempt = ChunkAttempt(agent, task, now, self.run.start_tag(chunk.key, next_number(chunk.attempts)))
            chunk.attempts.append(attempt)
            self.ledger.save()  # the intent is durable before anything is changed or started
            try:
                self._start(chunk, attempt)
                rows[index].add(f"started on {short(agent)}")
            except CHECK_ERRORS as exc:
                rows[index].action = failed_check(result.errors, rows[index].action, f"chunk {index}",
                                                  f"starting it on {short(agent)} failed: {ds.describe_error(exc)}")
        if not any(self.state(c) == ChunkState.RUNNING for c in self.dispatch.chunks):
            joining = [a for a in self.usable if statuses.get(a) == AgentStatus.ONLINE and a not in self.dispatch.lanes]
            result.waiting = [f"chunk {c.index}" for c in waiting
                              if (c.index in assignment.unplaceable or not loads) and not joining]

    def _add_lanes(self, statuses: dict[str, str], result: DispatchResult) -> None:
        """Give each ONLINE agent that may serve the run and has no lane yet its tasks (one per
        queue slot), so it takes chunks from the next check: an agent OFFLINE at planning, or
        one activated during the migration. DataSync refusing its location or task for it
        (``AgentRefused``) bars the agent for the run, with the reason; the account's task
        quota is checked first. Anything else is an error this check, tried again at the next."""
        joining = sorted(a for a in self.usable if statuses.get(a) == AgentStatus.ONLINE
                         and a not in self.dispatch.lanes)
        if not joining or not any(self.state(c) == ChunkState.WAITING for c in self.dispatch.chunks):
            return
        target = self.run.target
        for agent in joining:
            names = [task_name_for(self.run.prefix, agent, slot) for slot in range(1, self.run.slots + 1)]
            try:
                existing = {t.get("Name") for t in ds.list_tasks(self.client)}
                new = [n for n in names if n not in existing]
                if len(existing) + len(new) > TASK_QUOTA:
                    log.error("agent %s cannot join the run: the account has %d tasks and DataSync allows %d per "
                              "region; delete tasks no longer needed", agent, len(existing), TASK_QUOTA)
                    result.errors.append(f"agent {short(agent)}")
                    continue
                loc, _ = ds.ensure_nfs_location(self.client, agent, target.nfs_server, target.sub_dir,
                                                target.nfs_version)
                tasks = [ds.ensure_task(self.client, source_arn=loc, dest_arn=target.dest_loc, name=name,
                                        includes=list(self.dispatch.chunks[0].includes), excludes=[],
                                        options=target.options, cloudwatch_arn=target.cloudwatch_arn,
                                        task_mode=target.task_mode)[0]["TaskArn"] for name in names]
                ds.wait_until_ready(self.client, {t: f"task of joining agent {short(agent)}" for t in tasks},
                                    timeout=self.settings.task_ready_timeout, on_wait=log.info)
            except AgentRefused as exc:
                self._bar(agent, str(exc))
                continue
            except CHECK_ERRORS as exc:
                failed_check(result.errors, "", f"agent {short(agent)}", f"adding its lane failed: "
                             f"{ds.describe_error(exc)}; the next check tries again")
                continue
            self.dispatch.lanes[agent] = tasks
            self.ledger.save()
            log.info("agent %s joins the run with %d task(s): %s", agent, len(tasks), ", ".join(tasks))

    def _bar(self, agent: str, why: str) -> None:
        self.run.barred[agent] = why
        self.ledger.save()
        log.error("agent %s is barred from this run: DataSync refused it (%s)", agent, why)

    def _resume(self, chunk: ChunkRecord, attempt: ChunkAttempt, statuses: dict[str, str], row: ChunkRow) -> None:
        """Finish a start an earlier check decided: adopt the execution tagged with its name,
        or give the chunk back if its agent is gone, or start it now."""
        found = ds.find_started(self.client, attempt.task, attempt.tag, self.ledger.accounted())
        if found:
            attempt.execution = found
            append_line(self.arn_file, found)
            self.ledger.save()
            row.add(f"start of {short(found)} recorded (an earlier check made it)")
            log.info("chunk %d: adopting %s, started before a restart", chunk.index, found)
        elif statuses.get(attempt.agent) != AgentStatus.ONLINE or attempt.agent not in self.usable:
            attempt.returned = True
            row.add(f"start decided for {short(attempt.agent)}, which may not take it now: back to the pool")
        else:
            self._start(chunk, attempt)
            row.add("start completed (an earlier check decided it)")

    def _start(self, chunk: ChunkRecord, attempt: ChunkAttempt) -> None:
        """Set the chunk's includes on the attempt's task and start it, tagged; record its ARN.

        A start DataSync refuses, or that the guard stops before it is asked, gives the chunk
        back (nothing runs it); one whose answer was lost is looked for by its tag before
        any new attempt (``datasync.once``), and if still unknown stays an intent, which the
        next check resolves by the tag.
        """
        try:
            unfinished = [e for e, s in ds.list_executions(self.client, attempt.task).items()
                          if s not in ExecutionStatus.TERMINAL_STATES]
            if unfinished:
                raise SetupError(f"task {attempt.task} still has {unfinished[0]} unfinished; the chunk waits "
                                 "for a free task")
            ds.set_task_includes(self.client, attempt.task, chunk.includes)
            execution = ds.start_execution(self.client, attempt.task, chunk.includes, [], attempt.tag,
                                           self.ledger.accounted())
        except CHECK_ERRORS as exc:
            if isinstance(exc, SetupError) or ds.refused(exc):
                attempt.returned = True
                self.ledger.save()
            raise
        append_line(self.arn_file, execution)  # first: a crash before the save is resolved by the tag
        attempt.execution = execution
        self.ledger.save()
        log.info("chunk %d started on %s: %s", chunk.index, attempt.agent, execution)

    # -- the summary --------------------------------------------------------------------

    def _summarize(self, statuses: dict[str, str], now: float, rows: dict[int, ChunkRow],
                   result: DispatchResult) -> None:
        for chunk in self.dispatch.chunks:
            row = rows[chunk.index]
            state = self.state(chunk)
            row.status = state
            latest = chunk.latest
            if latest is not None and latest.active:
                row.agent, row.execution = latest.agent, latest.execution or ""
                described = self._described(latest.execution)
                if described is not None:
                    row.status = described.status
                    row.bytes_done = chunk.bytes if state == ChunkState.DONE else described.bytes_transferred
            elif state == ChunkState.GIVEN_UP:
                result.exhausted.append(f"chunk {chunk.index}")
                row.add(f"given up: {chunk.given_up}")
            result.rows.append(row)
            result.counts[state] = result.counts.get(state, 0) + 1
            result.bytes_total += chunk.bytes
            result.bytes_done += row.bytes_done
        result.stalled = list(self.stalled.values())
        for agent in sorted(set(self.dispatch.lanes) | {a for a in self.usable if a in statuses}):
            done = sum(1 for c in self.dispatch.chunks if self.state(c) == ChunkState.DONE and c.latest
                       and c.latest.agent == agent)
            status = statuses.get(agent, "not listed")
            if agent in self.run.drained:
                status += " (drained)"
            elif agent in self.run.barred:
                status += " (barred)"
            elif agent not in self.dispatch.lanes:
                status += " (joining)"
            result.agents.append(AgentRow(agent, status, done,
                                          measured_rate(self._samples(agent, now, by_bytes=True))))


def taken_back(described: Execution) -> bool:
    """Whether an execution of a chunk taken back can no longer run it: ended, or on its way."""
    return described.status in ExecutionStatus.TERMINAL_STATES or described.status == ExecutionStatus.CANCELLING


def chunk_state(chunk: ChunkRecord, latest: Execution | None) -> str:
    """Where a chunk stands by its record alone (``latest``: its latest execution's description,
    if known): done, running (a start decided, an execution not known to have failed, or
    one taken back that is not known to have stopped), given up (recorded), or waiting."""
    attempt = chunk.latest
    if attempt is not None and attempt.active:
        if latest is not None and latest.status in ExecutionStatus.SUCCESS_STATES:
            return ChunkState.DONE
        return ChunkState.RUNNING
    if attempt is not None and attempt.execution and (latest is None or not taken_back(latest)):
        return ChunkState.RUNNING
    return ChunkState.GIVEN_UP if chunk.given_up else ChunkState.WAITING
