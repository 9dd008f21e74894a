"""Turn a plan into running executions: reuse or create, start, record at once."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from . import datasync as ds
from .plan import Plan
from .state import append_line
from .states import ExecutionStatus, TaskStatus

log = logging.getLogger(__name__)


def rotate_arn_file(path: str) -> None:
    """Keep the previous run's arn file as ``<path>.prev``: the watcher follows this run only."""
    if os.path.exists(path) and os.path.getsize(path):
        os.replace(path, path + ".prev")
        log.info("previous %s kept as %s.prev", path, path)


def launch(client, plan: Plan, *, nfs_server: str, sub_dir: str, dest_loc: str,
           cloudwatch_arn: str | None, options: dict, arn_file: str, task_mode: str = "BASIC",
           nfs_version: str = "AUTOMATIC", ready_timeout: float = ds.TASK_READY_TIMEOUT) -> list[str]:
    """Reuse or create each agent's location and task, wait until every task is ready,
    then start each and record its execution ARN.

    Returns the execution ARNs, one per task.

    Every step is logged as it happens and every ARN is on disk the moment its execution
    starts, so a failure midway leaves a record, and a rerun finds and reuses what exists
    (an execution still running the same scope is adopted rather than started twice).
    Nothing starts until every task is ready: a new task is CREATING while DataSync mounts
    the export, and an export that does not mount stops the run (SetupError) before any
    data moves.
    """
    warn_about_stale_runs(client, plan)
    rotate_arn_file(arn_file)
    prepared = []
    for task in plan.tasks:
        includes = list(task.includes)
        excludes: list[str] = []  # include-only; an update clears the excludes of an older run's task
        loc, loc_new = ds.ensure_nfs_location(client, task.agent_arn, nfs_server, sub_dir, nfs_version)
        log.info("source location %s for %s: %s", "created" if loc_new else "reused", task.agent_arn, loc)
        before, task_new = ds.ensure_task(client, source_arn=loc, dest_arn=dest_loc, name=task.name,
                                          includes=includes, excludes=excludes, options=options,
                                          cloudwatch_arn=cloudwatch_arn, task_mode=task_mode)
        log.info("task %s %s: %s", task.name, "created" if task_new else "reused, filters updated",
                 before["TaskArn"])
        prepared.append((task.name, task.agent_arn, includes, excludes, before, task_new))
    ds.wait_until_ready(client, {before["TaskArn"]: f"task {name} on agent {_short(agent)}, "
                                                    f"mounting {nfs_server}:{sub_dir}"
                                 for name, agent, _, _, before, _ in prepared},
                        timeout=ready_timeout, on_wait=log.info)
    done = []
    for _, _, includes, excludes, before, task_new in prepared:
        running = None if task_new else _running_same_scope(client, before, includes, excludes)
        if running:
            execution = running
            log.info("execution already running this scope, adopted: %s", execution)
        else:
            execution = ds.start_execution(client, before["TaskArn"], includes, excludes)
            log.info("execution started: %s", execution)
        append_line(arn_file, execution)
        done.append(execution)
    return done


def warn_about_stale_runs(client, plan: Plan) -> list[str]:
    """Tasks of an earlier run (same name prefix, an agent this plan does not use) that are
    still running: their old scope overlaps the new plan, so files may be sent twice."""
    prefix = plan.tasks[0].name.rsplit("agent-", 1)[0] if plan.tasks else ""
    mine = {t.name for t in plan.tasks}
    stale = [t["TaskArn"] for t in ds.list_tasks(client)
             if prefix and t.get("Name", "").startswith(prefix) and t.get("Name") not in mine
             and t.get("Status") in TaskStatus.BUSY_STATES]
    for arn in stale:
        log.warning("task %s from an earlier run is still running on an agent this plan does not use; "
                    "its scope overlaps this plan: cancel it, or let it finish before this run", arn)
    return stale


def _running_same_scope(client, task: dict, includes: Sequence[str], excludes: Sequence[str]) -> str | None:
    """The task's current execution if it is still running these very filters, else None."""
    current = task.get("CurrentTaskExecutionArn")
    if not current:
        return None
    ex = ds.describe_execution(client, current)
    same = list(ex.includes or ()) == list(includes) and list(ex.excludes or ()) == list(excludes)
    return current if same and ex.status in ExecutionStatus.RUNNING_STATES else None


def _short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]
