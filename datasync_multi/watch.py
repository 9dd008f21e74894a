"""One check of the HA watcher: look at every watched execution, move what failed.

The order inside a check is what makes it safe under restarts and cron: the caller holds
a lock for the whole check; a retry is written to the ledger as an intent (and its
budget spent) before anything is created or started; a later check that finds an intent
without an execution adopts the execution the retry task already has, or starts it.
The worst a crash can leave is a recorded intent, never a second retry.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field

from . import datasync as ds
from .errors import SetupError
from .state import Ledger, append_line, read_lines

log = logging.getLogger(__name__)

EXECUTION_ARN = re.compile(r"^arn:[a-z-]+:datasync:[a-z0-9-]+:\d{12}:task/task-[0-9a-f]{17}/execution/exec-[0-9a-f]{17}$")

SUCCEEDED, RUNNING, FAILED, STRANDED = "succeeded", "running", "failed", "stranded"


@dataclass(frozen=True)
class Settings:
    max_retries: int = 1
    offline_threshold: float = 600.0
    """Seconds an agent must have been OFFLINE before its unfinished executions count as stranded."""
    plan: dict | None = None
    task_ready_timeout: float = ds.TASK_READY_TIMEOUT
    """Seconds a retry's new task may stay CREATING before this check gives up on it (the next one resumes)."""


@dataclass
class Row:
    execution: str
    task: str
    agent: str
    status: str
    bytes_done: int = 0
    bytes_estimated: int = 0
    files_done: int = 0
    files_estimated: int = 0
    action: str = ""


@dataclass
class CheckResult:
    rows: list[Row] = field(default_factory=list)
    exhausted: list[str] = field(default_factory=list)
    """Scopes that failed with no retry left."""
    waiting: list[str] = field(default_factory=list)
    """Scopes that failed and found no healthy agent this time."""
    unfinished: int = 0
    """Scopes still moving (running, or about to be retried)."""

    @property
    def finished(self) -> bool:
        return self.unfinished == 0 and not self.waiting


def classify(status: str, agent_status: str, offline_for: float, threshold: float) -> str:
    """What an execution's state means for the watcher.

    Unknown statuses (the user guide lists LAUNCHED, botocore does not) count as running.
    """
    if status == "SUCCESS":
        return SUCCEEDED
    if status == "ERROR":
        return FAILED
    if status == "CANCELLING":
        return FAILED
    if agent_status == "OFFLINE" and offline_for >= threshold:
        return STRANDED
    return RUNNING


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


class Watcher:
    """Holds the client, the ledger and the settings for one check."""

    def __init__(self, client, ledger: Ledger, arn_file: str, settings: Settings):
        self.client = client
        self.ledger = ledger
        self.arn_file = arn_file
        self.settings = settings

    # -- cached descriptions ------------------------------------------------------------

    def task(self, task_arn: str) -> dict:
        if task_arn not in self.ledger.tasks:
            t = ds.describe_task(self.client, task_arn)
            self.ledger.tasks[task_arn] = {
                "name": t.get("Name", ""), "source": t["SourceLocationArn"], "dest": t["DestinationLocationArn"],
                "cloudwatch": t.get("CloudWatchLogGroupArn"), "mode": t.get("TaskMode", "BASIC")}
        return self.ledger.tasks[task_arn]

    def location(self, loc_arn: str) -> dict:
        if loc_arn not in self.ledger.locations:
            self.ledger.locations[loc_arn] = ds.describe_nfs_location(self.client, loc_arn)
        return self.ledger.locations[loc_arn]

    def agent_of(self, execution: str) -> str:
        agents = self.location(self.task(ds.task_of(execution))["source"])["agents"]
        return agents[0] if agents else ""

    def describe(self, execution: str) -> dict:
        """The execution's description; ended ones come from the ledger at no cost."""
        if execution in self.ledger.finished:
            return self.ledger.finished[execution]
        d = ds.describe_execution(self.client, execution)
        keep = {k: d.get(k) for k in ("Status", "Includes", "Excludes", "Options", "Result",
                                      "BytesTransferred", "EstimatedBytesToTransfer",
                                      "FilesTransferred", "EstimatedFilesToTransfer")}
        if keep["Status"] in ds.TERMINAL_STATES:
            self.ledger.finished[execution] = keep
        return keep

    # -- the check ------------------------------------------------------------------------

    def check(self, now: float | None = None) -> CheckResult:
        now = time.time() if now is None else now
        agents = {a.arn: a.status for a in ds.list_agents(self.client)}
        for arn, status in agents.items():
            if status == "ONLINE":
                self.ledger.offline_since.pop(arn, None)
            else:
                self.ledger.offline_since.setdefault(arn, now)
        watched = read_arn_file(self.arn_file)
        result = CheckResult()
        views: dict[str, tuple[dict, str]] = {}
        for execution in watched:
            try:
                views[execution] = (self.describe(execution), self.agent_of(execution))
            except ds.AWSError as exc:
                log.error("cannot describe %s: %s", execution, ds.describe_error(exc))
                result.rows.append(Row(execution, "?", "?", "UNKNOWN", action=f"describe failed: {ds.describe_error(exc)}"))
        busy = {}
        for desc, agent in views.values():
            if desc.get("Status") not in ds.TERMINAL_STATES:
                busy[agent] = busy.get(agent, 0) + 1
        self._complete_intents(result, agents, busy)
        for execution, (desc, agent) in views.items():
            try:
                self._handle(execution, desc, agent, agents, busy, now, result)
            except (ds.AWSError, SetupError) as exc:
                log.error("handling %s failed: %s", execution, ds.describe_error(exc))
                result.unfinished += 1
                result.rows.append(Row(execution, "?", agent, desc.get("Status", "?"),
                                       action=f"AWS error, next check retries: {ds.describe_error(exc)}"))
        self.ledger.save()
        return result

    def _handle(self, execution, desc, agent, agents, busy, now, result: CheckResult) -> None:
        root = self.ledger.scope_of(execution)
        scope = self.ledger.scopes[root]
        status = desc.get("Status", "UNKNOWN")
        offline_for = now - self.ledger.offline_since.get(agent, now)
        state = classify(status, agents.get(agent, "OFFLINE"), offline_for, self.settings.offline_threshold)
        row = Row(execution, self.task(ds.task_of(execution))["name"], agent, status,
                  desc.get("BytesTransferred") or 0, desc.get("EstimatedBytesToTransfer") or 0,
                  desc.get("FilesTransferred") or 0, desc.get("EstimatedFilesToTransfer") or 0)
        result.rows.append(row)
        latest = scope["attempts"][-1]
        if latest.get("execution") != execution:
            row.action = f"moved earlier: {_short(latest.get('execution') or 'retry pending')}"
            return
        if state == SUCCEEDED:
            row.action = self._plan_mismatch(desc) or "done"
            return
        if state == RUNNING:
            result.unfinished += 1
            row.action = self._plan_mismatch(desc) or "running"
            return
        latest["failed"] = status if state == FAILED else f"{status} on offline agent"
        if state == STRANDED:
            row.action = f"stranded: agent offline {offline_for:.0f}s; "
        error = (desc.get("Result") or {}).get("ErrorCode")
        if error:
            row.action += f"{error}; "
        if scope["retries"] >= self.settings.max_retries:
            result.exhausted.append(root)
            row.action += f"failed, no retries left ({scope['retries']}/{self.settings.max_retries})"
            return
        failed_agents = {a.get("agent") for a in scope["attempts"]} | {agent}
        healthy = sorted((a for a, s in agents.items() if s == "ONLINE" and a not in failed_agents),
                         key=lambda a: (busy.get(a, 0), a))
        if not healthy:
            result.waiting.append(root)
            row.action += "failed; no healthy agent to move to, retry budget kept"
            log.warning("%s failed and no healthy agent is ONLINE; will try again next check", execution)
            return
        if state == STRANDED and status != "CANCELLING":  # only once it can be moved: it may yet resume
            ds.cancel_execution(self.client, execution)
            row.action += "cancelled; "
        target = healthy[0]
        task = self.task(ds.task_of(execution))
        loc = self.location(task["source"])
        scope["retries"] += 1
        mode = task.get("mode", "BASIC")
        scope["attempts"].append({"agent": target, "retry_of": execution, "decided": now,
                                  "task_name": task["name"] + "_retry", "server": loc["server"],
                                  "subdir": loc["subdir"], "nfs_version": loc.get("nfs_version", "AUTOMATIC"),
                                  "dest": task["dest"], "cloudwatch": task["cloudwatch"], "task_mode": mode,
                                  "includes": ds.patterns(desc.get("Includes")),
                                  "excludes": ds.patterns(desc.get("Excludes")),
                                  "options": ds.for_mode(desc.get("Options") or {}, mode)})
        self.ledger.save()  # the intent is durable before anything is created or started
        new = self._carry_out(scope["attempts"][-1])
        busy[target] = busy.get(target, 0) + 1
        result.unfinished += 1
        row.action += f"moved to {_short(target)}: {_short(new)}"

    def _carry_out(self, attempt: dict) -> str:
        """Create or reuse the retry's location and task, then adopt or start its execution."""
        if not attempt.get("task"):
            loc, _ = ds.ensure_nfs_location(self.client, attempt["agent"], attempt["server"], attempt["subdir"],
                                            attempt.get("nfs_version", "AUTOMATIC"), tag=ds.WATCHER_TAG)
            task, _ = ds.ensure_task(
                self.client, source_arn=loc, dest_arn=attempt["dest"], name=attempt["task_name"],
                includes=attempt["includes"], excludes=attempt["excludes"], options=attempt["options"],
                cloudwatch_arn=attempt.get("cloudwatch"), task_mode=attempt.get("task_mode", "BASIC"),
                tag=ds.WATCHER_TAG)
            attempt["task"] = task["TaskArn"]
            self.ledger.save()
        ds.wait_until_ready(self.client, {attempt["task"]: f"retry task {attempt['task_name']} on agent "
                                                           f"{_short(attempt['agent'])}"},
                            timeout=self.settings.task_ready_timeout, on_wait=log.info)
        known = {a.get("execution") for s in self.ledger.scopes.values() for a in s["attempts"]}
        adopt = [e for e in ds.list_executions(self.client, attempt["task"]) if e not in known
                 and _started_after(ds.describe_execution(self.client, e), attempt["decided"])]
        if adopt:
            execution = adopt[-1]
            log.info("adopting retry execution %s started before a restart", execution)
        else:
            execution = ds.start_execution(self.client, attempt["task"], attempt["includes"], attempt["excludes"])
            log.info("retry of %s started on %s: %s", attempt["retry_of"], attempt["agent"], execution)
            _failpoint("after_retry_start")
        attempt["execution"] = execution
        self.ledger.save()
        append_line(self.arn_file, execution)
        return execution

    def _complete_intents(self, result: CheckResult, agents, busy) -> None:
        """Finish retries a crashed check decided but did not see started."""
        for root, scope in self.ledger.scopes.items():
            attempt = scope["attempts"][-1]
            if attempt.get("execution") or "retry_of" not in attempt:
                continue
            try:
                execution = self._carry_out(attempt)
                result.unfinished += 1
                result.rows.append(Row(execution, attempt["task_name"], attempt["agent"], "STARTED",
                                       action=f"retry of {_short(attempt['retry_of'])} completed after a restart"))
            except (ds.AWSError, SetupError) as exc:
                log.error("completing the retry of %s failed: %s", root, ds.describe_error(exc))
                result.unfinished += 1

    def _plan_mismatch(self, desc: dict) -> str:
        """Flag an execution that selected nothing where the plan expected files."""
        plan = self.settings.plan
        if not plan or desc.get("EstimatedFilesToTransfer") is None or desc.get("Status") in ("QUEUED", "LAUNCHING", "PREPARING"):
            return ""
        includes = ds.patterns(desc.get("Includes"))
        planned = next((t for t in plan.get("tasks", []) if t.get("includes") == includes), None)
        if planned and planned.get("files", 0) > 0 and desc.get("EstimatedFilesToTransfer") == 0:
            return (f"CHECK: selected 0 files, the plan has {planned['files']:,}; on a first run this means "
                    "the mount is not the export")
        return ""


def _started_after(execution: dict, decided: float) -> bool:
    """Whether an execution may be the one a crashed check started (a minute of clock skew allowed)."""
    start = execution.get("StartTime")
    return start is None or start.timestamp() >= decided - 60


def _failpoint(name: str) -> None:
    """Die here, as a crash or a kill would, when the tests ask for it by name."""
    if os.environ.get("DATASYNC_HA_FAILPOINT") == name:
        os._exit(137)


def _short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]
