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

import logging
import os
import time

from . import datasync as ds
from .cli import EXIT_AWS, EXIT_OK, FILE_ONLY, Parser, run, setup_logging
from .dispatch import Dispatcher, DispatchResult
from .errors import RecordError, UserError
from .plan import Plan
from .report import dispatch_table, watch_table
from .state import Ledger, check_writable, exclusive_lock, read_json
from .watch import CheckResult, Settings, Watcher

EXIT_EXHAUSTED = 3
"""A scope failed and will not be retried: no retries left, or no scope of record."""
EXIT_NO_HEALTHY_AGENT = 4
"""A scope failed and no healthy agent could take it (the next check tries again)."""
EXIT_OVERSIZED = 5
"""An execution selects well more than the plan gives its scope."""

EXIT_CODES = """exit codes (with --once; the loop ends only when every scope has ended):
  0  every scope succeeded, or everything still running is healthy
  1  the check could not look at or act on an execution (an AWS error): see the table
  2  bad input (flags, the arn file, a damaged ledger, files that cannot be written, no
     AWS credentials, no boto3)
  3  a scope failed and will not be retried (no retries left, or its scope is not in
     the plan file)
  4  a scope failed and no healthy agent could take it; the next check tries again
  5  an execution selects well more than its plan: overlapping scopes, or a mount that
     is not the export
  70 an unexpected error (a bug): the line says where its traceback is
  74 the ledger or the arn file could not be written (a full disk): the file is as it
     was; the loop logs it and checks again"""

log = logging.getLogger("ha")
LOG_FILE = "ds_ha.log"


def parse(argv: list[str] | None):
    p = Parser(description=__doc__.splitlines()[0], epilog=EXIT_CODES)
    p.add_flag("--arn_file", default="arn_file.txt", help="execution ARNs to watch, one per line")
    p.add_flag("--timeout_sec", type=float, default=300, help="seconds to sleep between checks")
    p.add_flag("--once", action="store_true", help="one check, then exit (for cron)")
    p.add_flag("--max_retries", type=int, default=1, help="retries per scope (or chunk), ever")
    p.add_flag("--offline_threshold_sec", type=int, default=600,
               help="how long since an OFFLINE agent's last contact (LastConnectionTime) before its "
                    "unfinished executions are moved")
    p.add_flag("--plan_file", default="plan.json",
               help="the scheduler's plan: each scope's filters (a retry moves exactly those) and counts")
    p.add_flag("--ledger_file", help="the retry ledger (default: <arn_file>.ledger.json)")
    p.add_aws_and_log_flags(LOG_FILE)
    a = p.parse_args(argv)
    for flag in ("timeout_sec", "max_retries", "offline_threshold_sec"):
        if getattr(a, flag) < 0:
            raise UserError(f"--{flag} must not be negative")
    if a.timeout_sec <= 0 and not a.once:
        raise UserError("--timeout_sec must be above 0 between checks (or use --once)")
    if not os.path.isfile(a.arn_file):
        raise UserError(f"arn file {a.arn_file!r} does not exist")
    check_writable(a.arn_file, "--arn_file")  # retries are appended to it, its lock sits beside it
    check_writable(a.ledger_file or a.arn_file + ".ledger.json", "--ledger_file")
    return a


def main(argv: list[str] | None = None) -> int:
    """The command: its exit code, with every error the user can act on as one line (see ``cli.run``)."""
    return run(watch, argv, LOG_FILE)


def watch(argv: list[str] | None) -> int:
    a = parse(argv)
    setup_logging(LOG_FILE, a.log_dir, a.verbose)
    plan = read_plan(a.plan_file)
    settings = Settings(max_retries=a.max_retries, offline_threshold=a.offline_threshold_sec, plan=plan,
                        poll=a.timeout_sec)
    client = ds.make_client(a.region, a.profile, a.endpoint_url)
    ledger_file = a.ledger_file or a.arn_file + ".ledger.json"
    while True:
        try:
            code, finished = check_once(client, a.arn_file, ledger_file, settings)
        except (*ds.AWSError, RecordError) as exc:  # the next check may well succeed: the files are as they were
            if a.once:
                raise
            log.error("check failed, next one in %gs: %s", a.timeout_sec, ds.describe_error(exc))
            code, finished = EXIT_OK, False
        if a.once or finished:
            return code
        log.info("sleeping %g sec", a.timeout_sec)
        time.sleep(a.timeout_sec)


def show(table: str) -> None:
    print(table, flush=True)  # once: on stdout; the log file keeps its own copy
    for line in table.splitlines():
        log.info("%s", line, extra=FILE_ONLY)


def read_plan(path: str) -> Plan | None:
    """The scheduler's plan, or None if there is no plan file (then no scope can be rebuilt,
    so nothing is retried); a plan of another version is a UserError naming the file."""
    if not os.path.isfile(path):
        return None
    data = read_json(path, what="plan file")
    try:
        return Plan.from_json(data)
    except UserError as exc:
        raise UserError(f"plan file {path!r}: {exc}") from None


def check_once(client, arn_file: str, ledger_file: str, settings: Settings) -> tuple[int, bool]:
    """One locked check (of the watcher, or of the dispatcher for a dynamic plan); returns
    (exit code, whether every scope or chunk has ended)."""
    with exclusive_lock(arn_file + ".lock", on_wait=lambda: log.info("another watcher is checking %s; "
                                                                     "waiting for it", arn_file)):
        ledger = Ledger.read(ledger_file)
        check_plan_matches(settings.plan, ledger, ledger_file)
        result: CheckResult | DispatchResult
        if ledger.dispatch is not None:
            result = Dispatcher(client, ledger, arn_file, settings).check()
        else:
            result = Watcher(client, ledger, arn_file, settings).check()
    if isinstance(result, DispatchResult):
        show(dispatch_table(result))
        what = "chunk(s)"
    else:
        show(watch_table(result.rows))
        what = "scope(s)"
    if result.exhausted:
        log.error("%d %s failed and will not be retried", len(result.exhausted), what)
        return EXIT_EXHAUSTED, result.finished
    if result.errors:
        log.error("this check could not look at or act on %d %s; it is not complete", len(result.errors),
                  "chunk(s)" if what == "chunk(s)" else "execution(s)")
        return EXIT_AWS, False
    if result.waiting:
        if isinstance(result, DispatchResult):  # the watcher has said it per execution
            log.error("%d chunk(s) wait and no ONLINE agent may take them: %s", len(result.waiting),
                      ", ".join(result.waiting))
        return EXIT_NO_HEALTHY_AGENT, False
    if result.oversized:
        return EXIT_OVERSIZED, result.finished
    if result.finished:
        log.info("every %s has succeeded", "chunk" if what == "chunk(s)" else "watched scope")
    return EXIT_OK, result.finished


def check_plan_matches(plan: Plan | object, ledger: Ledger, ledger_file: str) -> None:
    """Refuse a plan file and a ledger of two different runs: the dispatcher would follow
    the old one, or the watcher ignore the chunks."""
    if not isinstance(plan, Plan):
        return
    if ledger.dispatch is None and plan.dynamic:
        raise UserError(f"the plan is dynamic and the ledger {ledger_file!r} holds no dispatch record: "
                        "run the scheduler, or pass the --ledger_file it wrote")
    if ledger.dispatch is not None and [c.includes for c in ledger.dispatch.chunks] != \
            [c.includes for c in plan.chunks]:
        raise UserError(f"the ledger {ledger_file!r} records the dispatch of another plan than the plan file's: "
                        "pass the --plan_file and --ledger_file of the same run")
