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

from . import datasync as ds
from .assign import AgentLoad, Speed, WaitingChunk, Work, assign, fit_speed, progress, work_of, work_samples
from .decisions import short
from .dispatch_rules import ChunkSeen, Step, after_take_back, follow, give_up_reason
from .errors import AgentRefused, SetupError
from .files import append_line
from .journal import Journal, journal_path, scan_alive
from .ledger import ChunkAttempt, ChunkRecord, ChunkState, Dispatch, Ledger, Run, next_number
from .plan import task_name_for
from .records import Execution
from .report import ChunkRow, DispatchResult, ScanState, summarize
from .statuses import AgentStatus, ExecutionStatus
from .watch import CHECK_ERRORS, Observer, Settings, adopt_or_say, failed_check

log = logging.getLogger(__name__)

TASK_QUOTA = 100
"""Tasks DataSync allows per account and region (docs/datasync-facts.md §3): a joining agent's lane must fit."""


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
        self.usable: frozenset[str] = frozenset(self.dispatch.lanes)
        """The agents that may serve the run now, of those ListAgents shows (set by ``check``)."""
        self.possible: frozenset[str] = self.usable
        """The agents that may ever serve it: drained ones too (set by ``check``)."""
        self.stalled: dict[int, str] = {}
        """Chunks running on an OFFLINE agent, not yet moved: what the table says of each."""
        self.acted = False
        """A cancel was sent again this check (which changes nothing in the ledger)."""

    def check(self, now: float | None = None) -> DispatchResult:
        """Follow every chunk, take back what failed or is stranded, start what should start; the result."""
        now = time.time() if now is None else now
        statuses = self.statuses = {a.arn: a.status for a in ds.list_agents(self.client)}
        self.usable = self.run.usable(statuses)
        self.possible = self.run.possible(statuses) | self.usable
        result = DispatchResult()
        if self.dispatch.live:
            result.scan = self._take_journaled()
        rows = {c.index: ChunkRow(c.index, bytes=c.bytes) for c in self.dispatch.chunks}
        may_act = adopt_or_say(lambda: self._adopt_unrecorded(now), result.errors)
        for chunk in self.dispatch.chunks:
            try:
                self._look(chunk, statuses, now, rows[chunk.index], result, may_act)
            except CHECK_ERRORS as exc:
                row = rows[chunk.index]
                row.action = failed_check(result.errors, row.action, f"chunk {chunk.index}",
                                          f"{ds.describe_error(exc)}; the next check tries again")
        if may_act:
            scanning = result.scan is not None and not result.scan.ended
            if scanning:  # more chunks come: a joining agent gets its tasks now, and asks in this check
                self._add_lanes(statuses, result, scanning)
            self._dispatch(statuses, now, rows, result, scanning)
            if not scanning:
                self._add_lanes(statuses, result, scanning)
        states = {c.index: self.state(c) for c in self.dispatch.chunks}  # a chunk given up now is saved with it
        self.ledger.save()
        summarize(result, self.dispatch, self.run, rows, states, self._described, self._attempts_on, statuses,
                  self.usable, now)
        result.stalled = list(self.stalled.values())
        result.acted = self.acted
        return result

    def _take_journaled(self) -> ScanState:
        """Live mode: take the chunks the scan has journaled since the last check (saved before
        any of them starts); where the scan stands."""
        path = journal_path(self.ledger.path)
        journal = Journal.read(path)
        if self.dispatch.take(journal.chunks):
            self.ledger.save()
        p = journal.progress
        return ScanState(p.dirs, p.files, p.bytes, len(journal.chunks), journal.ended,
                         journal.ended or scan_alive(path))

    def _look(self, chunk: ChunkRecord, statuses: dict[str, str], now: float, row: ChunkRow,
              result: DispatchResult, may_act: bool) -> None:
        """Follow the chunk's latest start: finish it if it is only an intent, follow its
        execution, or see a taken-back one stop."""
        attempt = chunk.latest
        if attempt is None:
            return
        taken_back_earlier = not attempt.active
        if attempt.active and attempt.execution is None and may_act:
            self._resume(chunk, attempt, statuses, now, row)
        if attempt.active and attempt.execution is not None:
            self._follow(chunk, attempt, statuses, now, row, result)
        for earlier in chunk.attempts:  # a take-back still ending keeps its task busy
            if not earlier.active and earlier.execution:
                self.seen[earlier.execution] = self.describe(earlier.execution)
        if taken_back_earlier and attempt.execution:
            self._finish_take_back(attempt, row)

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
        state = chunk.state(self._described(chunk.latest.execution) if chunk.latest else None)
        if state != ChunkState.WAITING:
            return state
        why = give_up_reason(chunk, self.settings.max_retries, self.possible)
        if why is None:
            return ChunkState.WAITING
        chunk.give_up(why)
        return ChunkState.GIVEN_UP

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
            self.dispatch.add_task(agent, task)
            self.adopt(chunk, ChunkAttempt(agent, task, now, self.run.start_tag(key, number), execution),
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
        decision = follow(chunk, ChunkSeen(described, attempt.agent, agent_status, offline_for, now),
                          self.settings.offline_threshold)
        if decision.step is Step.RUN_ON:
            if decision.note:
                self.stalled[chunk.index] = decision.note
                row.add(decision.note)
            if decision.flag:
                result.oversized.append(f"chunk {chunk.index}")
                log.warning("%s (chunk %d): %s", attempt.execution, chunk.index, decision.flag)
                row.add(decision.flag)
            return
        if decision.step is Step.FAIL:
            attempt.failed(decision.failure)
            row.add(decision.note)
            log.warning("chunk %d failed on %s: %s (%s)", chunk.index, attempt.agent, decision.failure,
                        attempt.execution)
            return
        if decision.step is Step.TAKE_BACK:
            attempt.taken_back()
        else:
            attempt.failed(decision.failure)
        self.ledger.save()  # the take-back is durable before the cancel: a crash cannot make it a failure
        ended = self._cancel(attempt.execution)
        if ended is not None and ended.status in ExecutionStatus.SUCCESS_STATES:
            attempt.succeeded_after_all()
            row.add("ended by itself before it could be cancelled: done")
            return
        row.add(decision.note)
        log.warning("chunk %d on lost agent %s (%s): %s", chunk.index, attempt.agent, attempt.execution,
                    decision.note)

    def _finish_take_back(self, attempt: ChunkAttempt, row: ChunkRow) -> None:
        """A chunk taken back is handed out again only once its execution has ended (or is
        CANCELLING): a cancel that failed, or a check killed before sending it, is sent
        again; one that ended with SUCCESS by itself meanwhile makes the chunk done."""
        assert attempt.execution is not None
        step = after_take_back(self.seen[attempt.execution])
        if step is Step.SUCCEEDED_AFTER_ALL:
            attempt.succeeded_after_all()
            row.add("ended by itself after it was taken back: done")
        elif step is Step.CANCEL_AGAIN:
            self.acted = True
            ended = self._cancel(attempt.execution)
            row.add("cancel sent again" if ended is None else f"ended by itself: {ended.status}")
            if ended is not None and ended.status in ExecutionStatus.SUCCESS_STATES:
                attempt.succeeded_after_all()

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

    def _per_file_cost(self) -> float:
        """The weight the plan gave an entry, as its chunks carry it (each chunk's cost is its
        bytes plus that much per entry)."""
        entries = sum(c.files + c.dirs for c in self.dispatch.chunks)
        return sum(c.cost - c.bytes for c in self.dispatch.chunks) / entries if entries else 0.0

    def _loads(self, statuses: dict[str, str], now: float, per_file_cost: float) -> list[AgentLoad]:
        """Each ONLINE agent with a lane that may serve the run (not drained, not barred):
        its free tasks, the work it has left, its measured speed."""
        unmeasured = Speed.of_cost(1.0, per_file_cost)
        loads = []
        for agent, tasks in sorted(self.dispatch.lanes.items()):
            if statuses.get(agent) != AgentStatus.ONLINE or agent not in self.usable:
                continue
            left = [work_of(chunk).scaled(1 - (progress(chunk, described) if described else 0.0))
                    for chunk, attempt, described in self._attempts_on(agent)
                    if attempt.active and self._unfinished(attempt)]
            busy = self._busy_tasks(agent)
            speed = fit_speed(work_samples(self._attempts_on(agent), now), per_file_cost)
            soonest = min(left, key=(speed or unmeasured).seconds, default=Work())
            loads.append(AgentLoad(agent, sum(1 for t in tasks if t not in busy), sum(left, Work()), speed,
                                   len(tasks), soonest))
        return loads

    def _dispatch(self, statuses: dict[str, str], now: float, rows: dict[int, ChunkRow],
                  result: DispatchResult, scanning: bool) -> None:
        """Start what ``assign`` says; ``scanning``: a live scan still runs (more chunks come, so
        no agent is left idle while a chunk it may take waits)."""
        by_index = {c.index: c for c in self.dispatch.chunks}
        waiting = [WaitingChunk(c.index, work_of(c), c.barred) for c in self.dispatch.chunks
                   if self.state(c) == ChunkState.WAITING]
        per_file_cost = self._per_file_cost()
        loads = self._loads(statuses, now, per_file_cost)
        assignment = assign(waiting, loads, pickup_delay=self.settings.poll / 2, conserving=scanning,
                            per_file_cost=per_file_cost,
                            mix=sum(map(work_of, self.dispatch.chunks), Work()))
        result.eta = assignment.eta if result.scan is None or result.scan.ended else None
        result.frees, result.appetites, result.reach = assignment.frees, assignment.appetites, assignment.reach
        result.askers = assignment.askers
        for index, agent in assignment.starts:
            chunk = by_index[index]
            busy = self._busy_tasks(agent)
            task = next(t for t in self.dispatch.lanes[agent] if t not in busy)
            attempt = chunk.intend_start(agent, task, now, self.run.start_tag(chunk.key, next_number(chunk.attempts)))
            self.ledger.save()  # the intent is durable before anything is changed or started
            try:
                self._start(chunk, attempt)
                rows[index].add(f"started on {short(agent)}")
                result.started += 1
            except CHECK_ERRORS as exc:
                rows[index].action = failed_check(result.errors, rows[index].action, f"chunk {index}",
                                                  f"starting it on {short(agent)} failed: {ds.describe_error(exc)}")
        if not any(self.state(c) == ChunkState.RUNNING for c in self.dispatch.chunks):
            joining = self._joining(statuses)
            result.waiting = [f"chunk {c.index}" for c in waiting
                              if (c.index in assignment.unplaceable or not loads) and not joining]

    def _joining(self, statuses: dict[str, str]) -> list[str]:
        """The ONLINE agents that may serve the run and have no task for it yet, in order."""
        return sorted(a for a in self.usable if statuses.get(a) == AgentStatus.ONLINE and a not in self.dispatch.lanes)

    def _add_lanes(self, statuses: dict[str, str], result: DispatchResult, scanning: bool) -> None:
        """Give each ONLINE agent that may serve the run and has no lane yet its tasks (one per
        queue slot): an agent OFFLINE at planning, or one activated during the migration. Once
        a chunk waits, after the dispatch, so it takes chunks from the next check; while a live
        scan runs (``scanning``), before it, once the run has a chunk (a task is made with a
        chunk's filter), waiting or not: the scan packs a chunk only for an agent that asks,
        and one with no task cannot. DataSync refusing its location or task for it
        (``AgentRefused``) bars the agent for the run, with the reason; the account's task
        quota is checked first. Anything else is an error this check, tried again at the next."""
        joining = self._joining(statuses)
        waits = any(self.state(c) == ChunkState.WAITING for c in self.dispatch.chunks)
        if not joining or not self.dispatch.chunks or not (scanning or waits):
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
            for task in tasks:
                self.dispatch.add_task(agent, task)
            self.ledger.save()
            log.info("agent %s joins the run with %d task(s): %s", agent, len(tasks), ", ".join(tasks))

    def _bar(self, agent: str, why: str) -> None:
        self.run.bar(agent, why)
        self.ledger.save()
        log.error("agent %s is barred from this run: DataSync refused it (%s)", agent, why)

    def _resume(self, chunk: ChunkRecord, attempt: ChunkAttempt, statuses: dict[str, str], now: float,
                row: ChunkRow) -> None:
        """Finish a start an earlier check decided: adopt the execution tagged with its name;
        while none shows and the start may still take effect (sent, or if never sent decided,
        less than ``ds.settle_seconds`` ago: its sender may have died with the request on its
        way, or lost the answer), wait; then give the chunk back if its agent is gone, or start it."""
        found = ds.find_started(self.client, attempt.task, attempt.tag, self.ledger.accounted())
        since = attempt.sent or attempt.decided
        if found:
            attempt.started(found)
            append_line(self.arn_file, found)
            self.ledger.save()
            row.add(f"start of {short(found)} recorded (an earlier check made it)")
            log.info("chunk %d: adopting %s, started before a restart", chunk.index, found)
        elif ds.settling(since, now):
            row.add(f"start {now - since:.0f}s old, not seen yet: left to settle ({ds.settle_seconds():.0f}s)")
        elif statuses.get(attempt.agent) != AgentStatus.ONLINE or attempt.agent not in self.usable:
            attempt.taken_back()
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
            own = ds.carrying(self.client, unfinished, attempt.tag)
            if own:  # this very start, sent earlier, showing only now
                self._record(chunk, attempt, own)
                return
            if unfinished:
                raise SetupError(f"task {attempt.task} still has {unfinished[0]} unfinished; the chunk waits "
                                 "for a free task")
            ds.set_task_includes(self.client, attempt.task, chunk.includes)
            attempt.sending(time.time())
            self.ledger.save()  # a lost send settles from now, whoever looks for it next
            execution = ds.start_execution(self.client, attempt.task, chunk.includes, [], attempt.tag,
                                           self.ledger.accounted(), defer=True)
        except CHECK_ERRORS as exc:
            if isinstance(exc, SetupError) or ds.refused(exc):
                attempt.taken_back()
                self.ledger.save()
            raise
        self._record(chunk, attempt, execution)

    def _record(self, chunk: ChunkRecord, attempt: ChunkAttempt, execution: str) -> None:
        append_line(self.arn_file, execution)  # first: a crash before the save is resolved by the tag
        attempt.started(execution)
        self.ledger.save()
        log.info("chunk %d started on %s: %s", chunk.index, attempt.agent, execution)
