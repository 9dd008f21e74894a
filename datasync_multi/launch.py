"""Turn a plan into a recorded run and running executions: record, reuse or create, start, record at once."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from . import datasync as ds
from .dispatch import Dispatcher
from .errors import SetupError
from .files import append_line, exclusive_lock, write_json
from .journal import Journal, journal_path, scanning
from .ledger import (
    Attempt,
    ChunkRecord,
    ChunkState,
    Dispatch,
    Ledger,
    PlannedScope,
    Run,
    Scope,
    Target,
    parse_start_tag,
)
from .live import Demand, Sizing
from .live_run import CHECK_GAP, LiveScan, check_loop, lanes, live_plan, move_aside, resumable, write_plan
from .plan import Plan, TaskPlan
from .report import DispatchResult
from .scan import Progress, human_bytes
from .statuses import ExecutionStatus
from .watch import Settings

log = logging.getLogger(__name__)


def rotate_arn_file(path: str) -> None:
    """Keep the previous run's arn file as ``<path>.prev``: the watcher follows this run only."""
    if os.path.exists(path) and os.path.getsize(path):
        os.replace(path, path + ".prev")
        log.info("previous %s kept as %s.prev", path, path)


class Prepared(NamedTuple):
    """One task of the plan, ready to start."""

    task: TaskPlan
    includes: list[str]
    before: dict
    """Its description before any update."""


def prepare_tasks(client, plan: Plan, target: Target) -> list[Prepared]:
    """Reuse or create each task's location and task, and wait until every task is ready.

    A dynamic plan's tasks are created with the first chunk's includes (a task never holds
    an empty filter, which would select everything); the dispatcher sets each chunk's
    before starting it.

    Every step is logged as it happens, so a failure midway leaves a record, and a rerun
    finds and reuses what exists. A new task is CREATING while DataSync mounts the export,
    and an export that does not mount stops the run (SetupError) before any data moves.
    """
    prepared = []
    for task in plan.tasks:
        includes = list(task.includes or plan.chunks[0].includes)
        excludes: list[str] = []  # include-only; an update clears the excludes of an older run's task
        loc, loc_new = ds.ensure_nfs_location(client, task.agent_arn, target.nfs_server, target.sub_dir,
                                              target.nfs_version)
        log.info("source location %s for %s: %s", "created" if loc_new else "reused", task.agent_arn, loc)
        before, task_new = ds.ensure_task(client, source_arn=loc, dest_arn=target.dest_loc, name=task.name,
                                          includes=includes, excludes=excludes, options=target.options,
                                          cloudwatch_arn=target.cloudwatch_arn, task_mode=target.task_mode)
        log.info("task %s %s: %s", task.name, "created" if task_new else "reused, filters updated",
                 before["TaskArn"])
        prepared.append(Prepared(task, includes, before))
    ds.wait_until_ready(client, {p.before["TaskArn"]: f"task {p.task.name} on agent {_short(p.task.agent_arn)}, "
                                                      f"mounting {target.nfs_server}:{target.sub_dir}"
                                 for p in prepared},
                        timeout=target.ready_timeout, on_wait=log.info)
    return prepared


def new_run(plan: Plan, target: Target, named: bool) -> Run:
    """The record of a new run of this plan: each static task's scope, the agents, where
    the tasks read and write, and the default policy (a watcher may change it, saying so)."""
    return Run(uuid.uuid4().hex, _prefix(plan), plan.agents, named, target,
               scopes={t.name: PlannedScope(t.name, t.includes, (), t.files, t.dirs, t.bytes) for t in plan.tasks
                       if t.includes},
               slots=plan.slots)


def _begin(earlier: Ledger, arn_file: str, plan: Plan, plan_file: str, run: Run, dispatch: Dispatch | None,
           adopted: Collection[str] = (), live: bool = False) -> Ledger:
    """Record the new run before anything is created: the earlier ledger and arn file are kept
    as ``.prev``, the ledger holds the run, and the plan file names it. The earlier run's
    executions (but those adopted) are known from the start as another run's, so no check
    reads their tags."""
    rotate_arn_file(arn_file)
    if os.path.exists(earlier.path):
        os.replace(earlier.path, earlier.path + ".prev")
        log.info("previous ledger kept as %s.prev", earlier.path)
    ledger = Ledger(earlier.path, run=run, dispatch=dispatch,
                    others=(earlier.others | earlier.known()) - set(adopted))
    ledger.save()
    write_json(plan_file, {**plan.to_json(), "run": run.id, **({"live": True} if live else {})})
    log.info("run %s recorded in %s; plan written to %s%s", run.id, earlier.path, plan_file,
             " (its chunks once the scan has ended)" if live else "")
    return ledger


def _lock_run(arn_file: str):
    """The arn file's lock: watchers' checks wait while a run is recorded and launched."""
    return exclusive_lock(arn_file + ".lock", on_wait=lambda: log.info("a watcher is checking %s; waiting for it",
                                                                       arn_file))


def launch(client, plan: Plan, target: Target, arn_file: str, ledger_file: str, plan_file: str,
           named: bool) -> list[str]:
    """Record the run, prepare every task of a static plan, then start each and record its
    execution ARN. Returns the execution ARNs, one per task.

    Every ARN is on disk the moment its execution starts, and each start carries the run's
    tag, so one whose answer is lost is found, not started twice. An execution still
    running the very scope a task of this plan gives it (an earlier run's) is adopted; any
    other unfinished execution of the prefix refuses the run before anything is written.
    Nothing starts until every task is ready.
    """
    with _lock_run(arn_file):
        earlier = Ledger.read(ledger_file)  # an unreadable ledger stops the run here, before anything is written
        adoptable = _unfinished_of_earlier_runs(client, plan, earlier)
        run = new_run(plan, target, named)
        ledger = _begin(earlier, arn_file, plan, plan_file, run, None, adoptable.values())
        done = []
        for task, includes, before in prepare_tasks(client, plan, target):
            tag = run.start_tag(task.name, 1)
            running = adoptable.get(task.name)
            if running:
                execution = running
                log.info("execution already running this scope, adopted: %s", execution)
            else:
                execution = ds.start_execution(client, before["TaskArn"], includes, [], tag,
                                               ledger.accounted())
                log.info("execution started: %s", execution)
            append_line(arn_file, execution)
            ledger.scopes[execution] = Scope((Attempt(task.agent_arn, execution, tag=None if running else tag),),
                                             planned=run.scopes.get(task.name))
            ledger.save()
            done.append(execution)
        return done


def start_dispatch(client, plan: Plan, target: Target, arn_file: str, ledger_file: str, plan_file: str,
                   named: bool) -> DispatchResult | None:
    """Record the run, prepare the tasks of a dynamic plan and run the first check, which
    starts one chunk per agent, largest first. Returns that check's result, or None when it
    resumed an unfinished dispatch of this same plan instead (the watcher hands out the
    rest, with the run's policy).

    All under the arn file's lock, so no watcher checks meanwhile. A new dispatch keeps the
    earlier ledger and arn file as ``.prev``, and does not begin while a task of this name
    prefix still has an unfinished execution (an earlier run's scope overlaps this plan:
    SetupError, before anything is written or changed).
    """
    with _lock_run(arn_file):
        ledger = Ledger.read(ledger_file)
        if _unfinished_same_plan(ledger, plan):
            log.info("the dispatch of this same plan recorded in %s is unfinished: resuming it; the watcher "
                     "hands out the remaining chunks", ledger_file)
            return None
        _unfinished_of_earlier_runs(client, plan, ledger)  # a dynamic plan's tasks adopt nothing
        run = new_run(plan, target, named)
        dispatch = Dispatch({}, [ChunkRecord(c.index, c.includes, c.bytes, c.files, c.dirs, c.cost)
                                 for c in plan.chunks])
        ledger = _begin(ledger, arn_file, plan, plan_file, run, dispatch)
        for prepared in prepare_tasks(client, plan, target):
            dispatch.add_task(prepared.task.agent_arn, prepared.before["TaskArn"])
            ledger.save()
        policy = run.policy
        return Dispatcher(client, ledger, arn_file, Settings(policy.max_retries, policy.offline_threshold)).check()


def _unfinished_of_earlier_runs(client, plan: Plan, earlier: Ledger) -> dict[str, str]:
    """Look at every unfinished execution of a task named with the plan's prefix (either queue
    slot, a retry task, any agent's, whatever its agent's state: a task of an OFFLINE agent
    shows UNAVAILABLE). One that runs, on a task of this plan, the very scope the plan gives
    that task is returned for adoption (task name -> execution); any other refuses the run
    (SetupError): changing its task's filters could widen what it selects, and its scope
    overlaps this plan, so running both could copy a file twice at once."""
    prefix = _prefix(plan)
    mine = {t.name: t.includes for t in plan.tasks if t.includes}
    adoptable: dict[str, str] = {}
    for task in ds.list_tasks(client):
        name = task.get("Name", "")
        if not name.startswith(prefix):
            continue
        for execution, status in ds.list_executions(client, task["TaskArn"]).items():
            if status in ExecutionStatus.TERMINAL_STATES:
                continue
            if name in mine and name not in adoptable and _runs_scope(client, execution, mine[name], earlier):
                adoptable[name] = execution
                continue
            raise SetupError(f"task {name} ({task['TaskArn']}) still has an unfinished execution of an earlier run "
                             f"({execution}), whose scope overlaps this plan: let it finish or cancel it, then rerun")
    return adoptable


def _runs_scope(client, execution: str, includes: Sequence[str], earlier: Ledger) -> bool:
    """Whether an execution runs exactly these includes: known by its start tag from the earlier
    run's record, or else by the filters DescribeTaskExecution echoes (not promised: without
    them, it is not known, and so not adopted)."""
    tag = parse_start_tag(ds.tags_of(client, execution).get(ds.START_TAG, ""))
    if tag is not None and earlier.run is not None and tag[0] == earlier.run.id:
        recorded = earlier.run.scopes.get(tag[1])
        return recorded is not None and recorded.includes == tuple(includes) and not recorded.excludes
    described = ds.describe_execution(client, execution)
    return described.includes == tuple(includes) and not described.excludes


def _prefix(plan: Plan) -> str:
    """The name prefix of the plan's tasks (``--task_name``)."""
    return plan.tasks[0].name.rsplit("agent-", 1)[0] if plan.tasks else ""


def _unfinished_same_plan(ledger: Ledger, plan: Plan | None) -> bool:
    """Whether the ledger's run is this plan's (same agents, slots and chunks; any plan: None)
    and some chunk of it may still run (by what the ledger alone knows: no call is made)."""
    run, dispatch = ledger.run, ledger.dispatch
    if run is None or dispatch is None:
        return False
    same = plan is None or (sorted(run.agents) == sorted(plan.agents) and run.slots == plan.slots
                            and [c.includes for c in dispatch.chunks] == [c.includes for c in plan.chunks])
    return same and any(c.state(ledger.finished.get(c.latest.execution or "") if c.latest else None)
                        in (ChunkState.RUNNING, ChunkState.WAITING) for c in dispatch.chunks)


def _untaken(journal: Journal, ledger: Ledger) -> bool:
    """Whether the journal, of the ledger's run, holds chunks no check has taken into the ledger
    (the scheduler was killed between the journal's end and its last check): they are still to run."""
    assert ledger.run is not None and ledger.dispatch is not None
    known = {c.index for c in ledger.dispatch.chunks}
    return journal.run == ledger.run.id and any(c.index not in known for c in journal.chunks)


def _short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class LiveRun:
    """What a live run scans and how it checks: the scheduler's flags for it."""

    mount: str
    roots: tuple[str, ...]
    sizing: Callable[[], tuple[Sizing, str]]
    """How chunks are sized, and why (asked only for a new run: a resume keeps the journal's)."""
    workers: int | None
    check_every: float
    task_name: str
    slots: int


def start_live(client, agents: tuple[str, ...], target: Target, arn_file: str, ledger_file: str, plan_file: str,
               named: bool, live: LiveRun) -> tuple[DispatchResult | None, Plan | None]:
    """Record a live run (or resume the one a kill stopped mid-scan), then scan, plan and
    dispatch together until the scan ends. Returns the last check's result and the whole
    plan; no result when the ledger's live run has finished its scan and only the watcher
    has work left."""
    journal_file = journal_path(ledger_file)
    skeleton = Plan(lanes(agents, live.task_name, live.slots), tuple(sorted(agents)), live.roots, 0, None, 1, 1)
    with _lock_run(arn_file):
        ledger = Ledger.read(ledger_file)
        journal = Journal.read(journal_file, units=True)
        if ledger.dispatch is not None and ledger.dispatch.live and ledger.run is not None:
            if resumable(journal, ledger.run.id):
                journal.mend()
                log.info("resuming the scan of run %s from %s: %d chunk(s), %d unit(s) waiting in the pool and "
                         "%d cut(s) kept as they are", ledger.run.id, journal_file, len(journal.chunks),
                         len(journal.resume().pooled), len(journal.cuts))
            elif journal.ended and (_unfinished_same_plan(ledger, None) or _untaken(journal, ledger)):
                log.info("the live run recorded in %s has finished its scan and has chunks left: the watcher "
                         "hands them out", ledger_file)
                plan = live_plan(journal, agents, live.roots, live.task_name, live.slots)
                write_plan(plan_file, plan, ledger.run.id)  # a kill may have come before the scan's run wrote it
                return None, plan
            else:
                ledger, journal = _begin_live(client, ledger, arn_file, skeleton, plan_file, target, named, live,
                                              journal_file)
        else:
            ledger, journal = _begin_live(client, ledger, arn_file, skeleton, plan_file, target, named, live,
                                          journal_file)
        run_id = ledger.run.id if ledger.run else ""
    last: list[DispatchResult] = []
    demand = Demand()

    def check(final: bool) -> tuple[tuple[float, ...], int]:
        """One check: when each busy agent should free, and how many chunks it started
        (``Cadence``). The last one leaves the rest to the watcher, so a busy agent's pickup
        is charged the watcher's default interval, not the scheduler's next check. An AWS
        error in the dispatcher's check is logged, and the scan goes on: the next check tries
        again, as soon as for an agent overdue (an idle fleet packs nothing until a check
        asks, so waiting the full interval would leave it idle that long). One while the
        run's tasks are made ends the run, as in batch: the rerun resumes the scan and finds
        by name what was made."""
        with _lock_run(arn_file):
            ledger = Ledger.read(ledger_file)
            assert ledger.dispatch is not None and ledger.run is not None
            if not ledger.dispatch.lanes and journal.chunks:
                first = live_plan(journal, agents, live.roots, live.task_name, live.slots)
                for prepared in prepare_tasks(client, dataclasses.replace(first, chunks=first.chunks[:1]), target):
                    ledger.dispatch.add_task(prepared.task.agent_arn, prepared.before["TaskArn"])
                    ledger.save()
            if not ledger.dispatch.lanes:
                demand.set((1.0,) * len(agents), ())  # no task yet: every agent waits for the first chunks
                return (), 0
            policy = ledger.run.policy
            settings = Settings(policy.max_retries, policy.offline_threshold)
            began = time.monotonic()  # what the check measures is as of its start
            try:
                result = Dispatcher(client, ledger, arn_file,
                                    settings if final else dataclasses.replace(settings, poll=CHECK_GAP)).check()
            except ds.AWSError as exc:
                log.warning("this check failed (%s); the scan goes on and the next check tries again",
                            ds.describe_error(exc))
                return (0.0,), 0  # as an agent overdue: asked again soon, backing off (Cadence)
        last[:] = [result]
        demand.set(result.appetites, result.reach, result.askers, at=began)
        log.info("%s", result.summary())
        return result.frees, result.started

    with scanning(journal_file):
        scan = LiveScan(live.mount, live.roots, journal, len(agents), live.workers, Progress(), demand)
        check_loop(scan, check, live.check_every)
        scan.join()
    if scan.outcome.failure is not None:
        raise scan.outcome.failure
    tree = scan.outcome.tree
    plan = live_plan(journal, agents, live.roots, live.task_name, live.slots, tree.largest_file if tree else 0)
    write_plan(plan_file, plan, run_id)
    return (last[0] if last else None), plan


def _begin_live(client, ledger: Ledger, arn_file: str, skeleton: Plan, plan_file: str, target: Target,
                named: bool, live: LiveRun, journal_file: str) -> tuple[Ledger, Journal]:
    """A new live run: nothing of the name prefix may still run; the ledger, plan file and
    journal begin (the earlier ones kept as ``.prev``)."""
    _unfinished_of_earlier_runs(client, skeleton, ledger)
    sizing, how = live.sizing()
    log.info("chunks sized from %s: about %s each at first, units cut at %s", how,
             human_bytes(sizing.target(0, 0)), human_bytes(sizing.threshold))
    run = new_run(skeleton, target, named)
    ledger = _begin(ledger, arn_file, skeleton, plan_file, run, Dispatch({}, [], live=True), live=True)
    move_aside(journal_file)
    journal = Journal(journal_file)
    journal.begin(run.id, live.roots, sizing, how)
    return ledger, journal
