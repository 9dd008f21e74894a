"""``datasync_agent_ha.py --cleanup``: remove what a run created in DataSync, once it is over.

survey (what exists, what it is tagged, who uses it) -> decide (pure) -> list -> confirm -> delete

What goes, found and never guessed:
- a task is the run's when its name is the run's prefix (``--task_name``, from the run's
  record in the ledger) and an agent id, with a queue slot's ``_q<N>`` or a retry's
  ``_retry``, AND it carries our ``created-by`` tag (the scheduler's or the watcher's);
- a location goes when it is the source of such a task, or an NFS location of the run's
  server and export, AND carries our tag, AND no task that stays uses it.
Nothing else is touched: not the destination (you made it), not a task or location that
lacks our tag, not one another task still uses. Tasks go first, then the locations.

Nothing is deleted while any execution of the run's tasks is unfinished (exit 3), nor
without a "yes" typed on a terminal or ``--yes`` (exit 6: listed, nothing removed).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from . import datasync as ds
from .cli import FILE_ONLY, setup_logging
from .errors import EXIT_NOT_CONFIRMED, EXIT_OK, SetupError, UserError
from .files import exclusive_lock, sole_holder
from .ledger import ChunkState, Ledger, Run, ledger_path
from .statuses import ExecutionStatus

log = logging.getLogger("ha.cleanup")

EXIT_CODES = """

exit codes with --cleanup:
  0  the run's tasks and locations listed were removed (or there was nothing to remove)
  1  an AWS call failed: what was removed is in the log; run --cleanup again for the rest
  2  bad input (no run record in the ledger, --yes without --cleanup, no AWS credentials)
  3  refused, nothing removed: an execution of the run's tasks is unfinished, or what
     would be removed changed while you were asked
  6  listed, nothing removed: not confirmed (answer yes on a terminal, or pass --yes)"""

OUR_TAG_VALUES = frozenset({ds.SCHEDULER_TAG["Value"], ds.WATCHER_TAG["Value"]})
"""The values of ``created-by`` that mark a resource as this tool's."""


def run_task_names(prefix: str) -> re.Pattern[str]:
    """The names the run's tasks can have (``plan.task_name_for``, and the watcher's ``_retry``)."""
    return re.compile(re.escape(prefix) + r"agent-[0-9a-z]{17}(?:_q[0-9]+)?(?:_retry)?")


def ours(tags: Mapping[str, str]) -> bool:
    return tags.get(ds.TAG_KEY) in OUR_TAG_VALUES


@dataclass(frozen=True)
class TaskSeen:
    """A task whose name is the run's, as the survey found it."""

    arn: str
    name: str
    status: str
    tags: Mapping[str, str]
    source: str
    dest: str
    unfinished: tuple[str, ...] = ()
    """Its executions that have not ended (ARN and status)."""


@dataclass(frozen=True)
class LocationSeen:
    """A location the run may have created, as the survey found it."""

    arn: str
    uri: str
    tags: Mapping[str, str]
    users: frozenset[str]
    """Every task (of anyone) that reads from it or writes to it."""


@dataclass(frozen=True)
class Removal:
    """What --cleanup removes, and what it found but keeps (with why)."""

    tasks: tuple[TaskSeen, ...]
    locations: tuple[LocationSeen, ...]
    kept: tuple[str, ...] = ()

    @property
    def unfinished(self) -> list[str]:
        return [f"{t.name} ({e})" for t in self.tasks for e in t.unfinished]

    def arns(self) -> tuple[frozenset[str], frozenset[str]]:
        return frozenset(t.arn for t in self.tasks), frozenset(loc.arn for loc in self.locations)


def decide(prefix: str, dest_loc: str, tasks: Sequence[TaskSeen], locations: Sequence[LocationSeen]) -> Removal:
    """The run's tasks and the locations that go with them, from what the survey saw (no call)."""
    names = run_task_names(prefix)
    mine = tuple(sorted((t for t in tasks if names.fullmatch(t.name) and ours(t.tags)), key=lambda t: t.name))
    kept = [f"task {t.name} ({t.arn}): not tagged {ds.TAG_KEY} by this tool" for t in tasks
            if names.fullmatch(t.name) and not ours(t.tags)]
    going = {t.arn for t in mine}
    destinations = {dest_loc} | {t.dest for t in mine}
    removed = []
    for loc in locations:
        others = sorted(loc.users - going)
        if loc.arn in destinations:
            kept.append(f"location {loc.uri} ({loc.arn}): the destination")
        elif not ours(loc.tags):
            kept.append(f"location {loc.uri} ({loc.arn}): not tagged {ds.TAG_KEY} by this tool")
        elif others:
            kept.append(f"location {loc.uri} ({loc.arn}): used by {len(others)} other task(s): {', '.join(others)}")
        else:
            removed.append(loc)
    return Removal(mine, tuple(removed), tuple(kept))


def survey(client, run: Run) -> Removal:
    """Look at what exists now and decide what goes. Every task of the region is described once
    (DataSync's quota is 100 tasks a region), so a location another task uses, as source or as
    destination, is known to be in use.

    Calls: ListTasks, DescribeTask (each task), ListTagsForResource and ListTaskExecutions
    (the tasks named as the run's), ListLocations, ListTagsForResource (each candidate
    location). Raises: AWSError.
    """
    names = run_task_names(run.prefix)
    described = {t["TaskArn"]: ds.describe_task(client, t["TaskArn"]) for t in ds.list_tasks(client)}
    users: dict[str, set[str]] = {}
    for arn, d in described.items():
        for loc in (d.get("SourceLocationArn"), d.get("DestinationLocationArn")):
            users.setdefault(loc or "", set()).add(arn)
    tasks = [_task_seen(client, arn, d) for arn, d in described.items() if names.fullmatch(d.get("Name", ""))]
    uris = {loc["LocationArn"]: loc.get("LocationUri", "")
            for loc in ds.nfs_locations(client, run.target.nfs_server, run.target.sub_dir)}
    for t in tasks:
        uris.setdefault(t.source, "")
    locations = [LocationSeen(arn, uri or arn, ds.tags_of(client, arn), frozenset(users.get(arn, ())))
                 for arn, uri in sorted(uris.items())]
    return decide(run.prefix, run.target.dest_loc, tasks, locations)


def _task_seen(client, arn: str, described: Mapping) -> TaskSeen:
    unfinished = tuple(f"{e} {status}" for e, status in sorted(ds.list_executions(client, arn).items())
                       if status not in ExecutionStatus.TERMINAL_STATES)
    return TaskSeen(arn, described.get("Name", ""), described.get("Status", "?"), ds.tags_of(client, arn),
                    described.get("SourceLocationArn", ""), described.get("DestinationLocationArn", ""),
                    unfinished)


def listing(run: Run, removal: Removal, pending: int) -> list[str]:
    """The lines shown before anything is removed."""
    lines = [f"cleanup of run {run.id} (task names {run.prefix}agent-...): {len(removal.tasks)} task(s) and "
             f"{len(removal.locations)} location(s) tagged {ds.TAG_KEY} by this tool"]
    lines += [f"  task      {t.name}  {t.arn}  {t.status}" for t in removal.tasks]
    lines += [f"  location  {loc.uri}  {loc.arn}" for loc in removal.locations]
    lines += [f"  kept      {why}" for why in removal.kept]
    if pending:
        lines.append(f"  note      the run's record says {pending} chunk(s) have not succeeded: removing the tasks "
                     "ends the run")
    return lines


def pending_chunks(ledger: Ledger) -> int:
    """How many chunks of a dynamic run the ledger does not count as done or given up."""
    if ledger.dispatch is None:
        return 0
    return sum(1 for c in ledger.dispatch.chunks
               if c.state(ledger.finished.get(c.latest.execution or "") if c.latest else None)
               in (ChunkState.RUNNING, ChunkState.WAITING))


def confirmed(ask: Callable[[str], str]) -> bool:
    """Whether the user typed "yes" when asked."""
    try:
        return ask("remove them? type yes to confirm: ").strip().lower() == "yes"
    except EOFError:
        return False


def remove(client, removal: Removal) -> None:
    """Delete the tasks, then the locations, one call each, saying each in the log.

    Calls: DeleteTask, DeleteLocation (see ``datasync.delete_task``). Raises: AWSError (what
    was deleted before it is in the log; a second --cleanup finds the rest).
    """
    for t in removal.tasks:
        ds.delete_task(client, t.arn)
        log.info("deleted task %s (%s)", t.name, t.arn)
    for loc in removal.locations:
        ds.delete_location(client, loc.arn)
        log.info("deleted location %s (%s)", loc.uri, loc.arn)


@dataclass(frozen=True)
class CleanupConfig:
    arn_file: str
    ledger_file: str
    yes: bool
    region: str | None
    profile: str | None
    endpoint_url: str | None
    log_dir: str | None
    verbose: bool


def check_flags(a: argparse.Namespace) -> CleanupConfig:
    """The watcher's flags, read for --cleanup; a UserError (exit 2) for what cannot work."""
    if a.yes and not a.cleanup:
        raise UserError("--yes goes with --cleanup (it confirms the removal)")
    ledger_file = ledger_path(a.arn_file, a.ledger_file)
    if not os.path.isfile(ledger_file):
        raise UserError(f"ledger {ledger_file!r} does not exist: --cleanup finds the run's tasks by the record the "
                        "scheduler writes there (pass --arn_file, or --ledger_file, of the run to clean up)")
    return CleanupConfig(a.arn_file, ledger_file, a.yes, a.region, a.profile, a.endpoint_url, a.log_dir, a.verbose)


def main(config: CleanupConfig) -> int:
    """List what the run created, and remove it once confirmed (a "yes" typed on a terminal, or
    --yes); the exit code (see EXIT_CODES)."""
    ask = input if sys.stdin.isatty() else None
    setup_logging("ds_ha.log", config.log_dir, config.verbose)
    run = Ledger.read(config.ledger_file).run
    if run is None:
        raise UserError(f"ledger {config.ledger_file!r} holds no run record: --cleanup needs the task-name prefix "
                        "the scheduler records there")
    client = ds.make_client(config.region, config.profile, config.endpoint_url)
    who = f"datasync_agent_ha.py --cleanup (pid {os.getpid()} on {socket.gethostname()})"
    with sole_holder(config.arn_file + ".scheduler.lock", who, f"the run recorded in {config.arn_file}"), \
            exclusive_lock(config.arn_file + ".lock", on_wait=lambda: log.info("a watcher is checking %s; waiting "
                                                                                "for it", config.arn_file)):
        ledger = Ledger.read(config.ledger_file)  # as it is now that no scheduler or watcher can change it
        return _clean(client, ledger.run or run, pending_chunks(ledger), config.yes, ask)


def _clean(client, run: Run, pending: int, yes: bool, ask: Callable[[str], str] | None) -> int:
    removal = _refuse_unfinished(survey(client, run))
    if not removal.tasks and not removal.locations:
        print(f"cleanup of run {run.id}: nothing of this run left to remove")
        print("\n".join(f"  kept      {why}" for why in removal.kept), end="\n" if removal.kept else "")
        return EXIT_OK
    for line in listing(run, removal, pending):
        print(line)
        log.info("%s", line, extra=FILE_ONLY)  # the log keeps what was listed, and (below) what was removed
    sys.stdout.flush()
    if not yes:
        if ask is None:
            return _not_confirmed("no terminal to ask on")
        if not confirmed(ask):
            return _not_confirmed("not confirmed")
        if _refuse_unfinished(survey(client, run)).arns() != removal.arns():
            raise SetupError("what --cleanup would remove changed while you were asked: nothing was removed; run "
                             "--cleanup again to see it")
    remove(client, removal)
    print(f"removed {len(removal.tasks)} task(s) and {len(removal.locations)} location(s)")
    return EXIT_OK


def _not_confirmed(why: str) -> int:
    print(f"nothing removed ({why}): answer yes on a terminal, or pass --yes", file=sys.stderr)
    return EXIT_NOT_CONFIRMED


def _refuse_unfinished(removal: Removal) -> Removal:
    """The removal, or a SetupError (exit 3, nothing removed) naming the unfinished executions."""
    unfinished = removal.unfinished
    if unfinished:
        raise SetupError(f"{len(unfinished)} execution(s) of the run's tasks have not ended ("
                         f"{'; '.join(unfinished[:3])}{'; ...' if len(unfinished) > 3 else ''}): let them finish "
                         "or cancel them, then run --cleanup again; nothing was removed")
    return removal
