"""Split an NFS share across the online DataSync agents and start one task per agent.

parse flags -> check input -> hold the run -> find agents -> scan -> plan -> record the run
-> create or reuse tasks -> start (tagged) -> record each execution

Installed as ``datasync-multi-scheduler``; ``datasync_multi_agents_scheduler.py`` in a
checkout runs the same ``main``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from . import cost
from . import datasync as ds
from .cli import Parser, arn_list, run, setup_logging
from .cost import Rates
from .errors import EXIT_AWS, EXIT_OK, UserError
from .files import check_writable, read_json, sole_holder, write_json
from .journal import journal_path
from .launch import LiveRun, launch, start_dispatch, start_live
from .ledger import Target, ledger_path
from .live import Sizing
from .live_run import LIVE_CHUNKS_PER_AGENT, chunk_cost, dry_run, sizing_for
from .manifest import Manifest, read_manifest
from .plan import BASIC_MODE_ITEM_QUOTA, DEFAULT_PER_FILE_COST, Plan, make_plan
from .report import dispatch_table, plan_table
from .scan import Progress, nfs_mount_source, scan
from .statuses import AgentStatus

log = logging.getLogger("scheduler")
LOG_FILE = "ds_ma_sche.log"

EXIT_CODES = """exit codes:
  0   done (with --dry_run: the plan is written and nothing is created)
  1   an AWS call failed after retries: the log and the arn file say what was created;
      rerun to continue, nothing is duplicated
  2   bad input or environment (flags, manifest, files that cannot be written, no AWS
      credentials, an agent of --agent_arns not in this account and region, no boto3,
      another scheduler already running for this arn file): refused before anything was
      created
  3   DataSync could not get a task ready (the export does not mount, the task mode does
      not fit the agent, or it stayed CREATING too long): nothing was started
  70  an unexpected error (a bug): the line says where its traceback is
  74  a record (the plan, the arn file, the ledger) could not be written (a full disk):
      the file is as it was; free space and rerun, nothing is duplicated
  130 interrupted (Ctrl-C): what was created is recorded; rerun to go on, nothing is duplicated"""

USAGE = """%(prog)s --mount_path_dir DIR --nfs_server_name HOST --sub_dir PATH --dest_loc ARN [options]
       %(prog)s --mount_path_dir DIR --dry_run [options]"""


MAX_CHUNKS_PER_AGENT = 100
"""Beyond this, starting chunks costs far more than the balance gains (README, Choosing K)."""


def parse(argv: list[str] | None):
    p = Parser(description=__doc__.splitlines()[0], epilog=EXIT_CODES, usage=USAGE)
    p.add_flag("--task_name", default="Distributed_Tasks_", help="prefix of the task names (one task per agent)")
    p.add_flag("--nfs_server_name", metavar="HOST", help="NFS server of the source locations (host name or IP); "
                                                         "required unless --dry_run")
    p.add_flag("--sub_dir", metavar="PATH", help="export path on the NFS server, e.g. /vol1; required unless --dry_run")
    p.add_flag("--mount_path_dir", required=True, metavar="DIR",
               help="where that export is mounted on this VM, e.g. /fsx; required")
    p.add_flag("--dest_loc", metavar="ARN", help="ARN of the destination location; required unless --dry_run")
    p.add_flag("--cloudwatch_arn", help="ARN of the CloudWatch log group for the tasks' logs (sets LogLevel "
                                        "BASIC; without it LogLevel is OFF)")
    p.add_flag("--task_mode", default="BASIC", choices=ds.TASK_MODES,
               help="DataSync task mode; ENHANCED needs Enhanced mode agents (pick them with --agent_arns)")
    p.add_flag("--nfs_version", default="AUTOMATIC", choices=ds.NFS_VERSIONS,
               help="NFS version the source locations mount (NFS3 fixes FsNfsIdMappingEnabled)")
    p.add_flag("--task_ready_timeout_sec", type=int, default=int(ds.TASK_READY_TIMEOUT),
               help="seconds a new task may stay CREATING before the run gives up")
    p.add_flag("--source_file", default="source_file.manifest", help="directories to move, one per line")
    p.add_flag("--max_depth", type=int,
               help="how deep below a manifest entry the cut may go (default: as deep as balance needs)")
    p.add_flag("--per_file_cost", type=int, default=DEFAULT_PER_FILE_COST,
               help="bytes one file weighs in the balance, for its per-file overhead (default 512 KiB)")
    p.add_flag("--agent_arns", nargs="+", action="extend", metavar="ARN",
               help="the agents to use instead of every online agent, separated by commas or spaces")
    p.add_flag("--chunks_per_agent", type=int, default=1,
               help="1: each agent's task carries one even share (static). K > 1: cut about K x agents chunks "
                    "that the watcher hands to whichever agent frees first (dynamic; see the README for K)")
    p.add_flag("--queue_depth", type=int, default=1, choices=(1, 2),
               help="with --chunks_per_agent > 1: 2 keeps a chunk queued behind each running one (two tasks "
                    "per agent), to hide the start gap")
    p.add_flag("--live", action="store_true",
               help="scan, plan and dispatch at once: each chunk starts as soon as the scan has closed it "
                    "(dynamic dispatch; K defaults to 4; see Live mode in the README)")
    p.add_flag("--chunk_size", metavar="SIZE",
               help="with --live: each chunk's target, in bytes (200GiB, 500GB) or files (500000files); "
                    "default: the share's estimated size over K x agents, shrinking as the scan nears its end")
    p.add_flag("--live_check_sec", type=float, default=30.0,
               help="with --live: seconds between the scheduler's dispatch checks while it scans (it also checks "
                    "at once when a chunk closes, and when an agent should free for a chunk left waiting)")
    p.add_flag("--arn_file", default="arn_file.txt", help="where the execution ARNs are recorded")
    p.add_flag("--plan_file", default="plan.json", help="where the plan is written")
    p.add_flag("--ledger_file", help="a dynamic plan's dispatch record (default: <arn_file>.ledger.json, where "
                                     "the watcher looks)")
    p.add_flag("--dry_run", action="store_true", help="scan, plan and print; create nothing in AWS")
    p.add_flag("--scan_workers", type=int,
               help="threads walking the mount (default: 16 on a network file system, 1 on a local one)")
    p.add_flag("--verify_mode", default="ONLY_FILES_TRANSFERRED",
               choices=("ONLY_FILES_TRANSFERRED", "POINT_IN_TIME_CONSISTENT", "NONE"),
               help="what DataSync verifies (POINT_IN_TIME_CONSISTENT checks the whole destination, "
                    "which the other tasks write to)")
    p.add_flag("--bytes_per_second", type=int, default=-1, help="bandwidth limit per task, -1 for none "
                                                                "(not in ENHANCED mode)")
    p.add_flag("--price_per_gb", type=float,
               help=f"US$ DataSync charges per GB copied, for the cost estimate (default: list price of "
                    f"{cost.RATES_AS_OF}, {cost.PER_GB['BASIC']} in BASIC mode, {cost.PER_GB['ENHANCED']} in ENHANCED)")
    p.add_flag("--price_per_execution", type=float,
               help=f"US$ DataSync charges per task execution (default: {cost.PER_EXECUTION['ENHANCED']} in "
                    "ENHANCED mode, none in BASIC)")
    p.add_flag("--price_per_1000_puts", type=float,
               help="US$ per 1,000 PUT requests at the destination, one per file, link and directory (default: "
                    f"{cost.PER_1000_PUTS}, S3 Standard in US East)")
    p.add_aws_and_log_flags(LOG_FILE)
    return p.parse_args(argv)


@dataclass(frozen=True)
class SchedulerConfig:
    """The flags once checked: all the run reads, so nothing after the checks sees argparse's namespace."""

    mount_path_dir: str
    source_file: str
    nfs_server_name: str | None
    sub_dir: str | None
    agent_arns: tuple[str, ...]
    """The agents --agent_arns names, sorted; empty: every ONLINE agent."""
    task_name: str
    per_file_cost: int
    max_depth: int | None
    item_cap: int | None
    """Items one execution may list: Basic mode's quota, none in Enhanced mode."""
    chunks_per_agent: int
    queue_depth: int
    scan_workers: int | None
    arn_file: str
    plan_file: str
    ledger_file: str
    region: str | None
    profile: str | None
    endpoint_url: str | None
    target: Target | None
    """Where and how the tasks run; None with --dry_run, which creates none."""
    rates: Rates
    """The prices the cost estimate uses."""
    live: bool = False
    chunk_size: int | None = None
    """--chunk_size as a cost (``live_run.chunk_cost``); None: guided by the share's estimate."""
    live_check_sec: float = 30.0


def check_args(a: argparse.Namespace) -> SchedulerConfig:
    """Refuse bad input before anything is created (a UserError: one line, exit 2); return
    what the run reads."""
    _check_shapes(a)
    _check_numbers(a)
    _check_live(a)
    if a.task_mode == "ENHANCED":
        _check_enhanced(a)
    ledger_file = ledger_path(a.arn_file, a.ledger_file)
    _check_paths(a, ledger_file)
    options = ds.task_options(a.verify_mode, a.bytes_per_second, logging_on=bool(a.cloudwatch_arn),
                              task_mode=a.task_mode)
    target = None if a.dry_run else Target(a.nfs_server_name, a.sub_dir, a.dest_loc, a.cloudwatch_arn, options,
                                           a.task_mode, a.nfs_version, a.task_ready_timeout_sec)
    return SchedulerConfig(
        mount_path_dir=a.mount_path_dir, source_file=a.source_file, nfs_server_name=a.nfs_server_name,
        sub_dir=a.sub_dir, agent_arns=_named_agents(a.agent_arns), task_name=a.task_name,
        per_file_cost=a.per_file_cost, max_depth=a.max_depth,
        item_cap=BASIC_MODE_ITEM_QUOTA if a.task_mode == "BASIC" else None,
        chunks_per_agent=a.chunks_per_agent, queue_depth=a.queue_depth, scan_workers=a.scan_workers,
        arn_file=a.arn_file, plan_file=a.plan_file, ledger_file=ledger_file,
        region=a.region, profile=a.profile, endpoint_url=a.endpoint_url, target=target,
        rates=Rates.for_mode(a.task_mode, a.price_per_gb, a.price_per_execution, a.price_per_1000_puts),
        live=a.live, chunk_size=chunk_cost(a.chunk_size, a.per_file_cost) if a.chunk_size else None,
        live_check_sec=a.live_check_sec)


def _must_match(value: str | None, shape: str, what: str) -> None:
    if value is not None and not ds.model_pattern(shape).fullmatch(value):
        raise UserError(f"{what} {value!r} is not a valid {shape}")


def _check_shapes(a: argparse.Namespace) -> None:
    """What DataSync will be sent: present unless --dry_run, and of the shape its API takes."""
    if not a.dry_run:
        missing = [f"--{n}" for n in ("nfs_server_name", "sub_dir", "dest_loc") if not getattr(a, n)]
        if missing:
            raise UserError(f"{', '.join(missing)} required (unless --dry_run)")
    _must_match(a.task_name, "TagValue", "--task_name")
    _must_match(a.nfs_server_name, "ServerHostname", "--nfs_server_name")
    _must_match(a.sub_dir, "NfsSubdirectory", "--sub_dir")
    _must_match(a.dest_loc, "LocationArn", "--dest_loc")
    _must_match(a.cloudwatch_arn, "LogGroupArn", "--cloudwatch_arn")


def _check_numbers(a: argparse.Namespace) -> None:
    """Counts and limits in range; a queue only for a dynamic plan."""
    for flag in ("max_depth", "per_file_cost", "price_per_gb", "price_per_execution", "price_per_1000_puts"):
        if (getattr(a, flag) or 0) < 0:
            raise UserError(f"--{flag} must not be negative")
    if not 1 <= a.chunks_per_agent <= MAX_CHUNKS_PER_AGENT:
        raise UserError(f"--chunks_per_agent must be from 1 to {MAX_CHUNKS_PER_AGENT} (each chunk pays DataSync's "
                        "start overhead: see Choosing K in the README)")
    if a.queue_depth > 1 and a.chunks_per_agent == 1 and not a.live:
        raise UserError("--queue_depth 2 needs a dynamic plan (--chunks_per_agent above 1)")
    if a.scan_workers is not None and a.scan_workers < 1:
        raise UserError("--scan_workers must be at least 1")
    if a.bytes_per_second < -1 or a.bytes_per_second == 0:
        raise UserError("--bytes_per_second must be -1 (no limit) or positive")
    if a.task_ready_timeout_sec < 1:
        raise UserError("--task_ready_timeout_sec must be at least 1")


def _check_live(a: argparse.Namespace) -> None:
    """Live mode's flags only with --live; K of 1 means live mode's default."""
    if not a.live:
        for flag in ("chunk_size",):
            if getattr(a, flag) is not None:
                raise UserError(f"--{flag} needs --live")
        return
    if a.chunks_per_agent == 1:
        a.chunks_per_agent = LIVE_CHUNKS_PER_AGENT
    if a.live_check_sec <= 0:
        raise UserError("--live_check_sec must be positive")


def _check_enhanced(a: argparse.Namespace) -> None:
    """What a task in ENHANCED mode does not take."""
    if a.bytes_per_second != -1:
        raise UserError("--bytes_per_second does not apply to --task_mode ENHANCED")
    if a.verify_mode == "POINT_IN_TIME_CONSISTENT":
        raise UserError("--verify_mode POINT_IN_TIME_CONSISTENT is not supported in --task_mode ENHANCED")
    group = (a.cloudwatch_arn or "").split(":log-group:", 1)[-1].removesuffix(":*")
    if a.cloudwatch_arn and group != ds.ENHANCED_LOG_GROUP:
        raise UserError(f"--task_mode ENHANCED logs to the log group {ds.ENHANCED_LOG_GROUP}; pass its ARN "
                        "or leave --cloudwatch_arn out")


def _check_paths(a: argparse.Namespace, ledger_file: str) -> None:
    """The mount is a directory and every file the run writes can be written."""
    if not os.path.exists(a.mount_path_dir):
        raise UserError(f"mount directory {a.mount_path_dir!r} does not exist")
    if not os.path.isdir(a.mount_path_dir):
        raise UserError(f"--mount_path_dir {a.mount_path_dir!r} is not a directory")
    check_writable(a.plan_file, "--plan_file")
    if not a.dry_run:
        check_writable(a.arn_file, "--arn_file")
        check_writable(ledger_file, "--ledger_file")  # a dynamic run writes it; a static one may move it aside
        if a.chunks_per_agent > 1 or a.live:
            check_writable(a.arn_file + ".lock", "--arn_file")
        if a.live:
            check_writable(journal_path(ledger_file), "--ledger_file")


def _named_agents(agent_arns: list[str] | None) -> tuple[str, ...]:
    """The agents of --agent_arns (separated by commas or spaces), each checked, sorted and once."""
    agents = arn_list(agent_arns) or []
    for arn in agents:
        _must_match(arn, "AgentArn", "agent")
    if agent_arns is not None and not agents:
        raise UserError("--agent_arns lists no agent")
    return tuple(sorted(set(agents)))


def find_agents(client, given: Sequence[str]) -> list[str]:
    if given:
        offline = [g for g in given if ds.describe_named_agent(client, g).status != AgentStatus.ONLINE]
        if offline:
            raise UserError(f"agent(s) not ONLINE: {', '.join(offline)}")
        return list(given)
    agents = ds.list_agents(client)
    online = [a.arn for a in agents if a.status == AgentStatus.ONLINE]
    if not online:
        raise UserError(f"no online DataSync agent ({len(agents)} agent(s) found, none ONLINE)")
    log.info("online agents: %s", online)
    return online


def warn_if_mount_differs(config: SchedulerConfig) -> None:
    source = nfs_mount_source(config.mount_path_dir)
    if source and config.nfs_server_name and config.sub_dir:
        server, export = source
        wanted = (config.nfs_server_name, config.sub_dir.rstrip("/") or "/")
        if (server, export.rstrip("/") or "/") != wanted:
            log.warning("%s is mounted from %s:%s, not %s:%s; if that is not the same export, the tasks "
                        "will select nothing", config.mount_path_dir, server, export, config.nfs_server_name,
                        config.sub_dir)


def main(argv: list[str] | None = None) -> int:
    """The command: its exit code, with every error the user can act on as one line (see ``cli.run``)."""
    return run(schedule, argv, LOG_FILE)


def schedule(argv: list[str] | None) -> int:
    a = parse(argv)
    log_path = setup_logging(LOG_FILE, a.log_dir, a.verbose)
    config = check_args(a)
    manifest = read_manifest(config.source_file, config.mount_path_dir)
    warn_if_mount_differs(config)
    if config.target is None:  # --dry_run
        return plan_only(config, manifest)
    who = (f"scheduler pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')} "
           f"({shlex.join(sys.argv)})")
    with sole_holder(config.arn_file + ".scheduler.lock", who, f"the run recorded in {config.arn_file}"):
        return launch_run(config, config.target, manifest, log_path)


def plan_only(config: SchedulerConfig, manifest: Manifest) -> int:
    """--dry_run: scan, plan and print; create nothing, and never write over a run's plan file
    (one that names its run): the plan goes to a file of its own."""
    given = config.agent_arns
    agents = list(given) or find_agents(ds.make_client(config.region, config.profile, config.endpoint_url), given)
    plan = live_dry_run(config, agents, manifest) if config.live else make_and_show_plan(config, agents, manifest)
    path = config.plan_file
    existing = read_json(path) if os.path.isfile(path) else None
    if isinstance(existing, dict) and "run" in existing:
        root, ext = os.path.splitext(path)
        path = f"{root}.dry_run{ext or '.json'}"
        log.info("%s is the plan of run %s: this dry run's plan goes to %s instead", config.plan_file,
                 existing["run"], path)
        check_writable(path, "--plan_file")
    write_json(path, plan.to_json())
    log.info("dry run: plan written to %s; nothing created in AWS", path)
    return EXIT_OK


def make_and_show_plan(config: SchedulerConfig, agents: list[str], manifest: Manifest) -> Plan:
    log.info("scanning %d manifest entr%s under %s", len(manifest.entries),
             "y" if len(manifest.entries) == 1 else "ies", config.mount_path_dir)
    tree = scan(config.mount_path_dir, manifest.entries, config.scan_workers, Progress())
    plan = make_plan(tree, agents, task_name=config.task_name, per_file_cost=config.per_file_cost,
                     max_depth=config.max_depth, item_cap=config.item_cap, chunks_per_agent=config.chunks_per_agent,
                     queue_depth=config.queue_depth).with_cost(config.rates)
    if not plan.scopes:
        raise UserError("nothing to transfer under the manifest's directories")
    print(plan_table(plan), flush=True)
    return plan


def live_settings(config: SchedulerConfig, agents: list[str], manifest: Manifest) -> LiveRun:
    def sizing() -> tuple[Sizing, str]:
        log.info("estimating the share's size to size the chunks")
        return sizing_for(config.mount_path_dir, manifest.entries, len(agents), config.chunks_per_agent,
                          config.per_file_cost, config.chunk_size, max_depth=config.max_depth,
                          item_cap=config.item_cap)

    return LiveRun(config.mount_path_dir, manifest.entries, sizing, config.scan_workers, config.live_check_sec,
                   config.task_name, config.queue_depth)


def live_dry_run(config: SchedulerConfig, agents: list[str], manifest: Manifest) -> Plan:
    """--live --dry_run: the live plan, made as a live run would make it, journaled beside the plan file."""
    live = live_settings(config, agents, manifest)
    sizing, how = live.sizing()
    log.info("chunks sized from %s", how)
    plan = dry_run(live.mount, live.roots, sizing, how, tuple(agents), config.task_name, config.queue_depth,
                   live.workers, config.plan_file + ".journal").with_cost(config.rates)
    print(plan_table(plan), flush=True)
    return plan


def launch_run(config: SchedulerConfig, target: Target, manifest: Manifest, log_path: str) -> int:
    """Plan, then record the run and start it (the caller holds the run's scheduler lock)."""
    client = ds.make_client(config.region, config.profile, config.endpoint_url)
    given = config.agent_arns
    agents = find_agents(client, given)
    if not ds.location_exists(client, target.dest_loc):
        raise UserError(f"destination location {target.dest_loc} not found in this account and region")
    if config.live:
        result, plan = start_live(client, tuple(agents), target, config.arn_file, config.ledger_file,
                                  config.plan_file, bool(given), live_settings(config, agents, manifest))
        if plan is not None:
            print(plan_table(plan.with_cost(config.rates)), flush=True)
        if result is not None:
            print(dispatch_table(result), flush=True)
        log.info("the scan has ended; dispatch recorded in %s, executions in %s; run the watcher to hand out the "
                 "remaining chunks; log in %s", config.ledger_file, config.arn_file, log_path)
        return EXIT_AWS if result is not None and result.errors else EXIT_OK
    plan = make_and_show_plan(config, agents, manifest)
    if plan.dynamic:
        result = start_dispatch(client, plan, target, config.arn_file, config.ledger_file, config.plan_file,
                                named=bool(given))
        if result is not None:
            print(dispatch_table(result), flush=True)
        log.info("dispatch recorded in %s, executions in %s; run the watcher to hand out the remaining chunks; "
                 "log in %s", config.ledger_file, config.arn_file, log_path)
        return EXIT_AWS if result is not None and result.errors else EXIT_OK
    launched = launch(client, plan, target, config.arn_file, config.ledger_file, config.plan_file, named=bool(given))
    log.info("%d execution(s) recorded in %s; log in %s", len(launched), config.arn_file, log_path)
    return EXIT_OK
