"""One check of the HA watcher: look at every watched execution, move what failed.

For each execution the check gathers what it needs (descriptions, cached in the ledger
where they cannot change), asks ``decisions.decide`` what to do, and carries that out.
The order inside a check is what makes it safe under restarts and cron: the caller holds
a lock for the whole check; the run's starts the ledger does not know are adopted first
(by their tags; a check that cannot look starts nothing); a retry is written to the
ledger as an intent (and its budget spent) before anything is created or started, and
its execution carries the intent's tag; a later check that finds an intent without an
execution adopts the execution with that tag, or starts it. The worst a crash can leave
is a recorded intent, never a second retry.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import datasync as ds
from .decisions import Decision, Fleet, Kind, Seen, decide, echo_differs, planned_scope, short, stall_note
from .errors import AgentRefused, SetupError
from .files import append_line, read_lines
from .ledger import (
    Attempt,
    ChunkAttempt,
    ChunkRecord,
    ChunkState,
    Ledger,
    PlannedScope,
    Retry,
    Scope,
    TaskFacts,
    next_number,
    parse_start_tag,
)
from .records import Execution, NfsLocation
from .report import CheckResult, Row
from .statuses import AgentStatus, ExecutionStatus

log = logging.getLogger(__name__)

EXECUTION_ARN = re.compile(
    r"^arn:[a-z-]+:datasync:[a-z0-9-]+:\d{12}:task/task-[0-9a-f]{17}/execution/exec-[0-9a-f]{17}$")

CHECK_ERRORS = (*ds.AWSError, SetupError)
"""What can stop a check from looking at or acting on one execution; the next check retries."""

OFFLINE_AFTER = 300.0
"""DataSync marks an agent OFFLINE after about five minutes without contact (docs/datasync-facts.md
§4): an OFFLINE agent that reports no LastConnectionTime has been out of contact at least that long."""


@dataclass(frozen=True)
class Settings:
    """How one check runs. ``max_retries`` and ``offline_threshold`` are the run's policy
    (``ledger.Policy``) as the watcher resolved it against the run's record."""

    max_retries: int = 1
    offline_threshold: float = 600.0
    """Seconds since an OFFLINE agent's last contact before its executions past LAUNCHING count as stranded."""
    task_ready_timeout: float = ds.TASK_READY_TIMEOUT
    """Seconds a retry's or a new lane's task may stay CREATING before this check gives up on
    it (the next one resumes)."""
    poll: float = 300.0
    """The watcher's loop interval (``--timeout_sec``): seconds the loop sleeps between checks
    (a live scheduler's checks during its scan: ``live_run.CHECK_GAP``, since it checks when an
    agent should free; its last check keeps this default, as the watcher takes over).
    Under cron (``--once``) it is still ``--timeout_sec``, whose default of 300 s matches the
    usual five-minute crontab line: the watcher cannot know cron's own interval. A chunk left
    for a busy agent waits, on average, half of it before a check hands it over."""


def read_arn_file(path: str) -> list[str]:
    """The execution ARNs to watch; a malformed line is reported and skipped."""
    arns = []
    for line in read_lines(path):
        if EXECUTION_ARN.match(line):
            if line not in arns:
                arns.append(line)
        else:
            log.warning("%s: not an execution ARN, skipped: %r", path, line[:200])
    return arns



class Observer:
    """What a check of the watcher or of the dispatcher reads through: the client, and the
    ledger's cache of what cannot change (ended executions, tasks, locations) or changes
    rarely (an agent's last contact, read once per check)."""

    def __init__(self, client, ledger: Ledger):
        self.client = client
        self.ledger = ledger
        self._last_contact: dict[str, float | None] = {}
        self.seen: dict[str, Execution] = {}
        """What the check described (those that ended are in the ledger's ``finished`` too)."""
        self.statuses: dict[str, str] = {}
        """Each agent's status as the check's ListAgents read it."""

    def describe(self, execution: str, fresh: bool = False) -> Execution:
        """The execution's description; ended ones come from the ledger at no cost."""
        if execution in self.ledger.finished and not fresh:
            return self.ledger.finished[execution]
        described = ds.describe_execution(self.client, execution)
        if described.status in ExecutionStatus.TERMINAL_STATES:
            self.ledger.finished[execution] = described
        return described

    def offline_for(self, agent: str, now: float) -> float:
        """Seconds since an OFFLINE agent last spoke to DataSync (DescribeAgent's
        LastConnectionTime), so the threshold counts from when the agent was really lost,
        whenever the watcher first noticed it."""
        if agent not in self._last_contact:
            self._last_contact[agent] = ds.describe_agent(self.client, agent).last_contact
        last = self._last_contact[agent]
        return OFFLINE_AFTER if last is None else max(0.0, now - last)

    def task(self, task_arn: str) -> TaskFacts:
        if task_arn not in self.ledger.tasks:
            self.ledger.tasks[task_arn] = TaskFacts.from_description(ds.describe_task(self.client, task_arn))
        return self.ledger.tasks[task_arn]

    def location(self, loc_arn: str) -> NfsLocation:
        if loc_arn not in self.ledger.locations:
            self.ledger.locations[loc_arn] = ds.describe_nfs_location(self.client, loc_arn)
        return self.ledger.locations[loc_arn]

    def agent_of_task(self, task_arn: str) -> str:
        agents = self.location(self.task(task_arn).source).agents
        return agents[0] if agents else ""

    def agent_of(self, execution: str) -> str:
        return self.agent_of_task(ds.task_of(execution))

    def unrecorded_starts(self) -> list[tuple[str, str, str, int]]:
        """Executions this run started that the ledger does not know (a lost answer, or a
        ledger put back from an older copy): (execution, task, scope key, attempt number),
        oldest attempt first. Every task named with the run's prefix is looked at; an
        execution whose tags show another run's is remembered in ``others`` so its tags are
        read once."""
        run = self.ledger.run
        if run is None:
            return []
        known = self.ledger.accounted()
        found = []
        for task in ds.list_tasks(self.client):
            if not task.get("Name", "").startswith(run.prefix):
                continue
            for execution in ds.list_executions(self.client, task["TaskArn"]):
                if execution in known:
                    continue
                parsed = parse_start_tag(ds.tags_of(self.client, execution).get(ds.START_TAG, ""))
                if parsed is None or parsed[0] != run.id:
                    self.ledger.others.add(execution)
                    continue
                found.append((execution, task["TaskArn"], parsed[1], parsed[2]))
        return sorted(found, key=lambda f: (f[2], f[3]))

    def adopt(self, record: Scope | ChunkRecord, adopted: Attempt | ChunkAttempt, arn_file: str) -> None:
        """Record an unrecorded start in its scope or chunk (``Scope.adopt``); in the arn file
        first, then in the ledger, so a crash between the two is found again by the tag. A
        second execution of one start (which no path here makes) is cancelled."""
        assert adopted.execution is not None
        if record.adopt(adopted):
            log.error("%s is a second execution of start %s: cancelling it", adopted.execution, adopted.tag)
            with contextlib.suppress(*ds.AWSError):
                ds.cancel_execution(self.client, adopted.execution)
        if adopted.execution not in read_arn_file(arn_file):
            append_line(arn_file, adopted.execution)
        self.ledger.save()
        log.warning("%s: started by this run (%s) and missing from the ledger: adopted, not started again",
                    adopted.execution, adopted.tag)


class Watcher(Observer):
    """Holds the client, the ledger and the settings for one check."""

    def __init__(self, client, ledger: Ledger, arn_file: str, settings: Settings):
        super().__init__(client, ledger)
        self.arn_file = arn_file
        self.settings = settings
        self.may_act = True
        """False for a check that could not look for this run's unrecorded starts: it starts nothing."""

    # -- the check ------------------------------------------------------------------------

    def check(self, now: float | None = None) -> CheckResult:
        now = time.time() if now is None else now
        agents = self.statuses = {a.arn: a.status for a in ds.list_agents(self.client)}
        result = CheckResult()
        self.may_act = adopt_or_say(self._adopt_unrecorded, result.errors)
        watched = read_arn_file(self.arn_file)
        views: dict[str, tuple[Execution, str]] = {}
        for execution in watched:
            try:
                views[execution] = (self.describe(execution), self.agent_of(execution))
            except ds.AWSError as exc:
                row = Row(execution, "?", "?", ExecutionStatus.UNKNOWN)
                result.rows.append(row)
                _failed_check(result, row, f"describe failed: {ds.describe_error(exc)}")
        busy: dict[str, int] = {}
        for described, agent in views.values():
            if described.status not in ExecutionStatus.TERMINAL_STATES:
                busy[agent] = busy.get(agent, 0) + 1
        run = self.ledger.run
        fleet = Fleet(agents, busy, run.usable(agents) if run else None,  # busy grows with retries
                      run.possible(agents) if run else None)
        if self.may_act:
            self._complete_intents(result)
        for execution, (described, agent) in views.items():
            row = Row(execution, self.task(ds.task_of(execution)).name, agent, described.status,
                      described.bytes_transferred, described.estimated_bytes, described.files_transferred,
                      described.estimated_files, described.files_skipped)
            result.rows.append(row)
            if row.status not in ExecutionStatus.KNOWN_STATES:
                log.warning("%s: status %s is not one this tool knows; treated as unfinished", execution, row.status)
            try:
                self._handle(execution, described, agent, fleet, busy, now, row, result)
            except CHECK_ERRORS as exc:
                _failed_check(result, row, f"{ds.describe_error(exc)}; the next check tries again")
        self.ledger.save()
        self.seen = {e: d for e, (d, _) in views.items()}
        self._tally(result, self.seen, now)
        return result

    def _tally(self, result: CheckResult, seen: dict[str, Execution], now: float) -> None:
        """The job at a glance: each scope's state, bytes against its scope of record, the
        rate of what runs now (all agents together), and when the rest should be moved."""
        rate = 0.0
        for scope in self.ledger.scopes.values():
            latest = scope.latest
            described = seen.get(latest.execution or "") or self.ledger.finished.get(latest.execution or "")
            planned = scope.planned.bytes if scope.planned else 0
            if described is not None and latest.active and described.status in ExecutionStatus.SUCCESS_STATES:
                state, result.bytes_done = ChunkState.DONE, result.bytes_done + (planned or described.bytes_transferred)
            elif scope.given_up is not None:
                state = ChunkState.GIVEN_UP
            elif latest.active:
                state = ChunkState.RUNNING
                if described is not None:
                    result.bytes_done += min(described.bytes_transferred, planned or described.bytes_transferred)
                    if described.launch_time and described.status not in ExecutionStatus.TERMINAL_STATES:
                        rate += described.bytes_transferred / max(now - described.launch_time, 1.0)
            else:
                state = ChunkState.WAITING
            result.counts[state] = result.counts.get(state, 0) + 1
            result.bytes_total += planned
        result.rate = rate or None
        if result.rate and result.bytes_total > result.bytes_done:
            result.eta = (result.bytes_total - result.bytes_done) / result.rate

    def _adopt_unrecorded(self) -> None:
        """Record the starts of this run the ledger does not know (see ``unrecorded_starts``),
        each in its scope, so it is followed and never started again."""
        run = self.ledger.run
        for execution, task, key, number in self.unrecorded_starts():
            assert run is not None
            adopted = Attempt(self.agent_of_task(task), execution, tag=run.start_tag(key, number))
            scope = next((s for s in self.ledger.scopes.values() if s.key == key), None)
            if scope is None:
                self.ledger.scopes[execution] = Scope((), planned=run.scopes.get(key))
                scope = self.ledger.scopes[execution]
            self.adopt(scope, adopted, self.arn_file)

    def _handle(self, execution: str, described: Execution, agent: str, fleet: Fleet, busy: dict[str, int],
                now: float, row: Row, result: CheckResult) -> None:
        """Gather what the decision needs, decide, and carry the decision out."""
        root = self.ledger.scope_of(execution, agent)
        scope = self.ledger.scopes[root]
        if scope.latest.execution != execution:
            row.action = f"moved earlier: {short(scope.latest.execution or 'retry pending')}"
            return
        planned, why_not = self._scope_of_record(scope, root, described)
        agent_status = fleet.statuses.get(agent, AgentStatus.OFFLINE)
        offline_for = self.offline_for(agent, now) if agent_status == AgentStatus.OFFLINE else 0.0
        seen = Seen(described, agent_status, offline_for, planned, why_not)
        decision = decide(seen, scope, fleet, max_retries=self.settings.max_retries,
                          offline_threshold=self.settings.offline_threshold)
        if decision.kind == Kind.WAIT and agent_status == AgentStatus.OFFLINE:
            unread = described.status in (ExecutionStatus.QUEUED, ExecutionStatus.LAUNCHING)  # nowhere to go yet
            note = decision.action if unread else stall_note(now, offline_for, self.settings.offline_threshold)
            row.action = "" if unread else note
            result.stalled.append(note)
        self._carry_out_decision(decision, execution, root, scope, seen, busy, now, row, result)

    def _carry_out_decision(self, decision: Decision, execution: str, root: str, scope: Scope, seen: Seen,
                            busy: dict[str, int], now: float, row: Row, result: CheckResult) -> None:
        """Record the decision in the ledger, the table and the result; cancel, create and start what it asks."""
        row.action = ", ".join(filter(None, (decision.action, row.action if decision.kind == Kind.WAIT else "")))
        if decision.kind == Kind.DONE and not scope.latest.active:  # taken back or stranded, yet it ended well
            scope.latest.succeeded_after_all()
        if decision.kind in (Kind.WAIT, Kind.DONE):
            if decision.flag:
                result.oversized.append(execution)
                log.warning("%s: %s", execution, decision.flag)
            if decision.kind == Kind.WAIT:
                result.unfinished += 1
            return
        if not self.may_act and decision.kind not in (Kind.GIVE_UP, Kind.NO_HEALTHY_AGENT):
            row.action += "not moved this check: it could not look for this run's unrecorded starts"
            result.unfinished += 1
            return
        if decision.kind in (Kind.GIVE_UP, Kind.NO_HEALTHY_AGENT):
            self._record_failure(decision, execution, root, scope, result)
            return
        self._move(decision, execution, scope, seen, busy, now, row, result)

    def _record_failure(self, decision: Decision, execution: str, root: str, scope: Scope,
                        result: CheckResult) -> None:
        """A failure that moves nowhere: given up (a final word), or waiting for a healthy agent."""
        if decision.kind == Kind.GIVE_UP:
            if decision.failed:  # a start taken back unread and given up did not fail
                scope.latest.failed(decision.failed)
            scope.give_up(decision.action)
            result.exhausted.append(root)
            if decision.log:
                log.error("%s %s", execution, decision.log)
            return
        scope.latest.failed(decision.failed)
        result.waiting.append(root)
        log.warning("%s %s", execution, decision.log)

    def _move(self, decision: Decision, execution: str, scope: Scope, seen: Seen, busy: dict[str, int],
              now: float, row: Row, result: CheckResult) -> None:
        """Take the latest attempt back (failed, or unfailed), cancel it if it may still run,
        record the retry as an intent, then create and start it."""
        latest = scope.latest
        planned = seen.planned
        assert decision.target is not None and planned is not None  # decide() moves only with both
        if decision.kind == Kind.TAKE_BACK:
            latest.taken_back()
        else:
            latest.failed(decision.failed)
        if decision.kind in (Kind.CANCEL_THEN_RETRY, Kind.TAKE_BACK):
            self.ledger.save()  # the take-back is durable before the cancel
            if not self._cancel(execution, row):
                latest.succeeded_after_all()
                return
        task = self.task(ds.task_of(execution))
        loc = self.location(task.source)
        base = task.name.removesuffix("_retry")
        run = self.ledger.run
        attempt = scope.intend_retry(decision.target, Retry(
            of=execution, decided=now, task_name=base + "_retry", server=loc.server, subdir=loc.subdir,
            dest=task.dest, cloudwatch=task.cloudwatch, includes=list(planned.includes),
            excludes=list(planned.excludes), options=ds.for_mode(dict(seen.execution.options), task.mode),
            nfs_version=loc.nfs_version, task_mode=task.mode),
            tag=run.start_tag(scope.key, next_number(scope.attempts)) if run else None,
            spend=decision.kind != Kind.TAKE_BACK)
        self.ledger.save()  # the intent is durable before anything is created or started
        busy[decision.target] = busy.get(decision.target, 0) + 1
        new = self._carry_out(attempt, scope)
        result.unfinished += 1
        row.action += f"moved to {short(decision.target)}: {short(new or '')}"

    def _scope_of_record(self, scope: Scope, root: str, described: Execution) -> tuple[PlannedScope | None, str]:
        """What this scope must move, from the run's record; None and why if unknown."""
        if scope.planned is None:
            planned, why_not = planned_scope(self.ledger.run, self.task(ds.task_of(root)).name)
            if planned is None:
                return None, why_not
            scope.record_plan(planned)
        planned = scope.planned
        assert planned is not None
        if echo_differs(described, planned):
            return None, "the filters it ran with differ from the run's record"
        return planned, ""

    def _cancel(self, execution: str, row: Row) -> bool:
        """Cancel a stranded execution before moving it; False if it ended by itself with
        SUCCESS meanwhile (nothing to move). A cancel that loses the race to an ERROR is fine."""
        try:
            ds.cancel_execution(self.client, execution)
            row.action += "cancelled; "
            return True
        except ds.AWSError:
            described = self.describe(execution, fresh=True)
            if described.status not in ExecutionStatus.TERMINAL_STATES:
                raise
        row.status = described.status
        if row.status in ExecutionStatus.SUCCESS_STATES:
            row.action = "ended by itself before it could be cancelled: done"
            return False
        row.action += "ended by itself before it could be cancelled; "
        return True

    def _carry_out(self, attempt: Attempt, scope: Scope, settling: bool = False) -> str | None:
        """Create or reuse the retry's location and task, then adopt or start its execution.
        An agent DataSync refuses them for is barred for the run, and the retry given back.
        A start whose answer was lost stays an intent (``datasync.once``, deferred); finishing
        one (``settling``), None while it may still take effect (its task existed, and it was
        sent, or if never sent decided, less than ``ds.settle_seconds`` ago): it is left to settle. Once it has
        settled unseen, an intent for an agent that may not take it now (not ONLINE, or
        drained) is withdrawn, None too: the scope moves as a failure does, its retry not spent."""
        retry = attempt.retry
        assert retry is not None
        sendable = retry.task is not None  # a start needs its task: without one, nothing was sent
        if not retry.task:
            try:
                loc, _ = ds.ensure_nfs_location(self.client, attempt.agent, retry.server, retry.subdir,
                                                retry.nfs_version, tag=ds.WATCHER_TAG)
                task, _ = ds.ensure_task(
                    self.client, source_arn=loc, dest_arn=retry.dest, name=retry.task_name, includes=retry.includes,
                    excludes=retry.excludes, options=retry.options, cloudwatch_arn=retry.cloudwatch,
                    task_mode=retry.task_mode, tag=ds.WATCHER_TAG)
            except AgentRefused as exc:
                if self.ledger.run is not None:
                    self._bar(attempt, scope, str(exc))
                raise
            attempt.task_created(task["TaskArn"])
            retry = attempt.retry
            self.ledger.save()
        assert retry is not None and retry.task is not None
        known = self.ledger.accounted()
        tag = attempt.tag
        found = ds.find_started(self.client, retry.task, tag, known) if tag else None
        if found:
            execution = found
            log.info("adopting retry execution %s started before a restart", execution)
        elif tag is None:
            raise SetupError("the ledger holds no run record, so a retry cannot be tagged and checked: not started")
        elif settling and sendable and ds.settling(attempt.sent or retry.decided, time.time()):
            return None
        elif settling and not self._may_take(attempt.agent):
            scope.withdraw(attempt)
            self.ledger.save()
            log.warning("the retry of %s decided for %s was never seen started, and that agent may not take it now: "
                        "withdrawn", retry.of, attempt.agent)
            return None
        else:
            try:
                ds.wait_until_ready(self.client, {retry.task: f"retry task {retry.task_name} on agent "
                                                              f"{short(attempt.agent)}"},
                                    timeout=self.settings.task_ready_timeout, on_wait=log.info)
            except AgentRefused as exc:
                if self.ledger.run is not None:
                    self._bar(attempt, scope, str(exc))
                raise
            attempt.sending(time.time())
            self.ledger.save()  # a lost send settles from now, whoever looks for it next
            execution = ds.start_execution(self.client, retry.task, retry.includes, retry.excludes, tag, known,
                                           defer=True)
            log.info("retry of %s started on %s: %s", retry.of, attempt.agent, execution)
        append_line(self.arn_file, execution)  # first: a crash before the save is resolved by the tag
        attempt.started(execution)
        self.ledger.save()
        return execution

    def _may_take(self, agent: str) -> bool:
        """Whether the agent may be handed a retry now: ONLINE, and (in a run) not drained or barred."""
        run = self.ledger.run
        return self.statuses.get(agent) == AgentStatus.ONLINE and (run is None or agent in run.usable(self.statuses))

    def _bar(self, attempt: Attempt, scope: Scope, why: str) -> None:
        """DataSync refused the retry's location or task on its agent: bar the agent for the
        run, and take the intent back (nothing was started; its retry is not spent), so the
        next check moves the scope to another agent."""
        run = self.ledger.run
        assert run is not None
        run.bar(attempt.agent, why)
        scope.withdraw(attempt)
        self.ledger.save()
        log.error("agent %s is barred from this run: DataSync refused it (%s); the scope moves elsewhere at the "
                  "next check", attempt.agent, why)

    def _complete_intents(self, result: CheckResult) -> None:
        """Finish retries a crashed check decided but did not see started."""
        for root, scope in self.ledger.scopes.items():
            attempt = scope.latest
            if attempt.execution or attempt.retry is None:
                continue
            row = Row(attempt.retry.task or "?", attempt.retry.task_name, attempt.agent, "STARTED")
            result.rows.append(row)
            try:
                execution = self._carry_out(attempt, scope, settling=True)
                result.unfinished += 1
                if execution is None and scope.latest is not attempt:
                    row.action = (f"retry of {short(attempt.retry.of)} never seen started, and its agent may not take "
                                  "it now: withdrawn, it moves elsewhere")
                    continue
                if execution is None:
                    row.action = f"retry of {short(attempt.retry.of)} decided, not seen yet: left to settle"
                    continue
                row.execution = execution
                row.action = f"retry of {short(attempt.retry.of)} completed (an earlier check decided it)"
            except CHECK_ERRORS as exc:
                row.status = "PENDING"
                _failed_check(result, row, f"completing the retry of {short(root)} failed: "
                                           f"{ds.describe_error(exc)}; the next check tries again")


def adopt_or_say(adopt: Callable[[], None], errors: list[str]) -> bool:
    """Run a check's adoption of unrecorded starts; False (said once, and in the errors) if it
    failed: that check must start nothing, or it could start again what is already running."""
    try:
        adopt()
        return True
    except CHECK_ERRORS as exc:
        errors.append("run")
        log.error("could not look for executions of this run the ledger does not know: %s; nothing is started "
                  "this check, the next one tries again", ds.describe_error(exc))
        return False


def failed_check(errors: list[str], row_action: str, name: str, message: str) -> str:
    """Record what a check could not do: once in the log and in the errors (so in the exit
    code); returns the row's action with the message added."""
    errors.append(name)
    log.error("%s: %s", name, message)
    return row_action + message


def _failed_check(result: CheckResult, row: Row, message: str) -> None:
    """Record what a check could not do: in the row, once in the log, and in the exit code."""
    row.action = failed_check(result.errors, row.action, row.execution, message)
