"""Watch the executions in the arn file and move a failed or stranded share to a healthy agent.

each check: lock -> read arn file -> list agents -> describe executions -> cancel what is
stranded -> retry on a healthy agent (intent in the ledger first) -> table -> sleep or exit

For a dynamic plan (the scheduler's --chunks_per_agent above 1) the watcher is the
dispatcher: each check hands the waiting chunks to the agents that free first (see
``dispatch``), under the same lock, with the same ledger, retry and offline rules.

Installed as ``datasync-multi-watcher``; ``datasync_agent_ha.py`` in a checkout runs the
same ``main``.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from dataclasses import dataclass, field

from . import cleanup
from . import datasync as ds
from .cli import Parser, arn_list, run, setup_logging
from .dispatch import Dispatcher
from .display import Display
from .errors import EXIT_OK, RecordError, UserError
from .files import check_writable, exclusive_lock
from .ledger import Ledger, Policy, Run, ledger_path
from .page import Page
from .watch import Settings, Watcher, read_arn_file

EXIT_CODES = """exit codes (with --once; the loop ends only when every scope has ended):
  0   every scope succeeded, or everything still running is healthy
  1   the check could not look at or act on an execution (an AWS error): see the table
  2   bad input (flags, an arn file that lists nothing, an unknown agent, a damaged
      ledger, files that cannot be written, no AWS credentials, no boto3)
  3   a scope failed and will not be retried (no retries left, failed on every agent
      that may serve the run, or its scope is not in the run's record); that word is
      recorded and final
  4   a scope failed and no agent that may take it is ONLINE; the next check tries again
  5   an execution selects well more than its plan: overlapping scopes, or a mount that
      is not the export
  70  an unexpected error (a bug): the line says where its traceback is
  74  the ledger or the arn file could not be written (a full disk): the file is as it
      was; the loop logs it and checks again
  130 interrupted (Ctrl-C): the ledger is as the last check left it; run it again to go on"""

log = logging.getLogger("ha")
LOG_FILE = "ds_ha.log"


def parse(argv: list[str] | None):
    p = Parser(description=__doc__.splitlines()[0], epilog=EXIT_CODES + cleanup.EXIT_CODES)
    p.add_flag("--arn_file", default="arn_file.txt", help="execution ARNs to watch, one per line")
    p.add_flag("--timeout_sec", type=float, default=300, help="seconds to sleep between checks")
    p.add_flag("--once", action="store_true", help="one check, then exit (for cron)")
    p.add_flag("--max_retries", type=int,
               help="retries per scope (or chunk), ever; the run's policy: given, it changes the run's record "
                    "for every watcher (default: the run's, 1 at launch)")
    p.add_flag("--offline_threshold_sec", type=int,
               help="how long since an OFFLINE agent's last contact (LastConnectionTime) before its executions "
                    "past LAUNCHING are moved (queued or launching ones move at once); the run's policy, like "
                    "--max_retries (default: the run's, 600 at launch)")
    p.add_flag("--agent_arns", nargs="+", action="extend", metavar="ARN",
               help="agents to add to a run whose agents were named (the scheduler's --agent_arns), separated "
                    "by commas or spaces: retries and chunks may go to them too")
    p.add_flag("--drain", action="append", default=[], metavar="AGENT_ARN",
               help="give this agent no new chunk or retry; its current work finishes (repeatable; recorded "
                    "with the run until --undrain)")
    p.add_flag("--undrain", action="append", default=[], metavar="AGENT_ARN", help="lift --drain (repeatable)")
    p.add_flag("--plan_file", default="plan.json",
               help="not read: each scope of record is in the run's ledger, written at launch (kept so that "
                    "older wrappers still run)")
    p.add_flag("--ledger_file", help="the run's ledger (default: <arn_file>.ledger.json)")
    p.add_flag("--html", metavar="FILE",
               help="write a picture of the run to FILE at each check: a self-contained page (no network needed) "
                    "with each agent's executions or chunks on a timeline, bytes moved against the plan, the ETA")
    p.add_flag("--table", action="store_true",
               help="print the full table at every check (default: a summary line each check, the table when "
                    "something started, ended, failed or moved)")
    p.add_flag("--cleanup", action="store_true",
               help="once the run is over: list the tasks and NFS locations it created (by their created-by tag "
                    "and the run's task names) and remove them, after a yes on a terminal or with --yes; refused "
                    "while any of their executions is unfinished. The destination is never touched")
    p.add_flag("--yes", action="store_true", help="with --cleanup: remove without asking")
    p.add_aws_and_log_flags(LOG_FILE)
    return p.parse_args(argv)


@dataclass(frozen=True)
class WatcherConfig:
    """The flags once checked: all the loop reads, so nothing after the checks sees argparse's namespace."""

    arn_file: str
    ledger_file: str
    timeout_sec: float
    once: bool
    max_retries: int | None
    offline_threshold_sec: int | None
    agent_arns: tuple[str, ...]
    drain: tuple[str, ...]
    undrain: tuple[str, ...]
    region: str | None
    profile: str | None
    endpoint_url: str | None
    table: bool = False
    html: str | None = None


def check_args(a: argparse.Namespace) -> WatcherConfig:
    """Refuse bad input before anything is looked at (a UserError: one line, exit 2); return
    what the loop reads."""
    for flag in ("timeout_sec", "max_retries", "offline_threshold_sec"):
        if (getattr(a, flag) or 0) < 0:
            raise UserError(f"--{flag} must not be negative")
    if a.timeout_sec <= 0 and not a.once:
        raise UserError("--timeout_sec must be above 0 between checks (or use --once)")
    ledger_file = ledger_path(a.arn_file, a.ledger_file)
    if not os.path.isfile(a.arn_file) and Ledger.read(ledger_file).dispatch is None:  # a live run has none
        raise UserError(f"arn file {a.arn_file!r} does not exist")                      # before its first start
    check_writable(a.arn_file, "--arn_file")  # retries are appended to it, its lock sits beside it
    check_writable(ledger_file, "--ledger_file")
    if a.html:
        check_writable(a.html, "--html")
    agent_arns = tuple(arn_list(a.agent_arns) or ())
    for flag, arns in (("agent_arns", agent_arns), ("drain", a.drain), ("undrain", a.undrain)):
        for arn in arns:
            if not ds.model_pattern("AgentArn").fullmatch(arn):
                raise UserError(f"--{flag}: {arn!r} is not a valid AgentArn")
    return WatcherConfig(arn_file=a.arn_file, ledger_file=ledger_file, timeout_sec=a.timeout_sec, once=a.once,
                         max_retries=a.max_retries, offline_threshold_sec=a.offline_threshold_sec,
                         agent_arns=agent_arns, drain=tuple(a.drain), undrain=tuple(a.undrain),
                         region=a.region, profile=a.profile, endpoint_url=a.endpoint_url, table=a.table,
                         html=a.html)


@dataclass
class Steering:
    """What the operator asked of the run on this watcher's command line: applied to the run's
    record once, at the first check, so that later checks and other watchers follow the record."""

    max_retries: int | None = None
    offline_threshold: float | None = None
    add: list[str] = field(default_factory=list)
    drain: list[str] = field(default_factory=list)
    undrain: list[str] = field(default_factory=list)
    applied: bool = False

    def apply(self, run: Run | None) -> list[str]:
        """Change the run's record as asked; what changed, in words (nothing the second time)."""
        if self.applied or run is None:
            return []
        self.applied = True
        said = []
        policy = run.policy
        if self.max_retries is not None and self.max_retries != policy.max_retries:
            said.append(f"max retries {policy.max_retries} -> {self.max_retries}")
            policy.max_retries = self.max_retries
        if self.offline_threshold is not None and self.offline_threshold != policy.offline_threshold:
            said.append(f"offline threshold {policy.offline_threshold:g}s -> {self.offline_threshold:g}s")
            policy.offline_threshold = self.offline_threshold
        for agent in self.add:
            if run.add_agent(agent):
                said.append(f"agent {agent} added")
            elif not run.named:
                log.info("--agent_arns %s: this run's agents were discovered, so any ONLINE agent may serve it",
                         agent)
        said += [f"agent {agent} drained" for agent in self.drain if run.drain(agent)]
        said += [f"agent {agent} no longer drained" for agent in self.undrain if run.undrain(agent)]
        return said

    def settings(self, run: Run | None, poll: float) -> Settings:
        """The check's settings: the run's policy, or without a run record this command line's."""
        if run is not None:
            return Settings(run.policy.max_retries, run.policy.offline_threshold, poll=poll)
        default = Policy()
        return Settings(default.max_retries if self.max_retries is None else self.max_retries,
                        default.offline_threshold if self.offline_threshold is None else self.offline_threshold,
                        poll=poll)


def main(argv: list[str] | None = None) -> int:
    """The command: its exit code, with every error the user can act on as one line (see ``cli.run``)."""
    return run(watch, argv, LOG_FILE)


def watch(argv: list[str] | None) -> int:
    a = parse(argv)
    if a.cleanup or a.yes:
        return cleanup.main(cleanup.check_flags(a))
    config = check_args(a)
    setup_logging(LOG_FILE, a.log_dir, a.verbose)
    steering = Steering(config.max_retries, config.offline_threshold_sec, list(config.agent_arns),
                        list(config.drain), list(config.undrain))
    if not read_arn_file(config.arn_file) and Ledger.read(config.ledger_file).dispatch is None:
        raise UserError(f"arn file {config.arn_file!r} lists no execution: nothing to watch (the scheduler writes "
                        "each execution there as it starts it; rerun the scheduler if it stopped before)")
    client = ds.make_client(config.region, config.profile, config.endpoint_url)
    for arn in dict.fromkeys(config.agent_arns + config.drain + config.undrain):
        ds.describe_named_agent(client, arn)
    display = Display(config.ledger_file + ".shown", table_always=config.table)
    page = Page(config.html, refresh=config.timeout_sec) if config.html else None
    try:
        while True:
            try:
                code, finished = check_once(client, config.arn_file, config.ledger_file, steering,
                                            config.timeout_sec, display, page)
            except (*ds.AWSError, RecordError) as exc:  # the next check may well succeed: the files are as they were
                if config.once:
                    raise
                display.close()
                log.error("check failed, next one in %gs: %s", config.timeout_sec, ds.describe_error(exc))
                code, finished = EXIT_OK, False
            if config.once or finished:
                return code
            log.debug("sleeping %g sec", config.timeout_sec)
            time.sleep(config.timeout_sec)
    finally:
        display.close()


def check_once(client, arn_file: str, ledger_file: str, steering: Steering, poll: float,
               display: Display, page: Page | None = None) -> tuple[int, bool]:
    """One locked check (of the watcher, or of the dispatcher for a dynamic plan), and the
    page drawn from it (under the lock, so two watchers keep one history); returns (exit
    code, whether every scope or chunk has ended)."""
    with exclusive_lock(arn_file + ".lock", on_wait=lambda: log.info("another watcher is checking %s; "
                                                                     "waiting for it", arn_file)):
        ledger = Ledger.read(ledger_file)
        changed = steering.apply(ledger.run)
        if changed:
            ledger.save()
            log.warning("this watcher changed the run's record (every watcher follows it now): %s",
                        "; ".join(changed))
        settings = steering.settings(ledger.run, poll)
        checker = (Dispatcher if ledger.dispatch is not None else Watcher)(client, ledger, arn_file, settings)
        result = checker.check()
        result.acted = result.acted or ledger.changed
        dest = ledger.run.target.dest_loc if ledger.run is not None else "<destination location ARN>"
        if page is not None:
            page.write(ledger, checker.seen, checker.statuses, result, time.time())
    display.show(result, time.time())
    if result.exit_code != EXIT_OK or result.finished:
        display.close()
    result.say()
    if result.finished and result.exit_code == EXIT_OK:
        log.info("to check the destination as a whole (after the final pass): datasync_multi_audit.py "
                 "--mount_path_dir <the export's mount> --dest_loc %s --arn_file %s (README: Auditing the "
                 "migration)", dest, arn_file)
    return result.exit_code, result.finished
