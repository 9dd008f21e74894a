"""In-memory DataSync state, the API operations and the execution workers."""

from __future__ import annotations

import base64
import copy
import datetime as _dt
import json
import os
import posixpath
import random
import stat
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from . import taskmode, transfer
from .filters import DEFAULT_READING, FilterError, FilterSet, Reading, validate_includes

ACCOUNT = "111122223333"
TERMINAL = ("SUCCESS", "ERROR")
OCCUPYING = ("LAUNCHING", "PREPARING", "TRANSFERRING", "VERIFYING", "CANCELLING")
RUNNING_PHASES = ("PREPARING", "TRANSFERRING", "VERIFYING")
MAX_QUEUED_PER_TASK = 50
MAX_TASKS = 100
MAX_TAGS = 50
BASIC_ITEM_QUOTA = 50_000_000
DEFAULT_PAGE = 100
CHUNK = 64 * 1024

DEFAULT_OPTIONS = {
    "VerifyMode": "POINT_IN_TIME_CONSISTENT",
    "OverwriteMode": "ALWAYS",
    "Atime": "BEST_EFFORT",
    "Mtime": "PRESERVE",
    "Uid": "INT_VALUE",
    "Gid": "INT_VALUE",
    "PreserveDeletedFiles": "PRESERVE",
    "PreserveDevices": "NONE",
    "PosixPermissions": "PRESERVE",
    "BytesPerSecond": -1,
    "TaskQueueing": "ENABLED",
    "LogLevel": "OFF",
    "TransferMode": "CHANGED",
    "SecurityDescriptorCopyFlags": "OWNER_DACL",
    "ObjectTags": "PRESERVE",
}


class ApiError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def invalid(message: str) -> ApiError:
    return ApiError("InvalidRequestException", message)


def _hex17() -> str:
    return uuid.uuid4().hex[:17]


# --- exceptions used inside execution workers ------------------------------
class _Cancelled(Exception):
    pass


class _AgentOffline(Exception):
    pass


class _Stopping(Exception):
    pass


class _ExecFailed(Exception):
    def __init__(self, code, detail):
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass
class Agent:
    arn: str
    id: str
    name: str
    index: int
    created: float
    status: str = "ONLINE"
    last_connection: float = 0.0
    offline_since: float | None = None
    bytes_per_second: int | None = None
    mode: str = "BASIC"


@dataclass
class Location:
    arn: str
    type: str  # "NFS" | "S3"
    created: float
    subdirectory: str  # normalised ("/vol1/sub" for NFS, "prefix/x" for S3 ("" = root))
    hostname: str = ""
    agents: list = field(default_factory=list)
    mount_options: dict = field(default_factory=lambda: {"Version": "AUTOMATIC"})
    bucket_arn: str = ""
    bucket: str = ""
    storage_class: str = "STANDARD"
    s3_config: dict = field(default_factory=dict)

    @property
    def uri(self) -> str:
        if self.type == "NFS":
            sub = self.subdirectory.rstrip("/")
            return f"nfs://{self.hostname}{sub}/"
        sub = self.subdirectory.strip("/")
        return f"s3://{self.bucket}/{sub}/" if sub else f"s3://{self.bucket}/"


@dataclass
class Task:
    arn: str
    source: str
    dest: str
    created: float
    options: dict
    name: str | None = None
    includes: list = field(default_factory=list)
    excludes: list = field(default_factory=list)
    log_group: str | None = None
    schedule: dict | None = None
    task_mode: str = "BASIC"
    manifest: dict | None = None
    report_config: dict | None = None
    current_exec: str | None = None
    ready_at: float = 0.0
    """CREATING until then (DataSync mounts the source while it creates a task)."""
    error: tuple[str, str] | None = None
    """(ErrorCode, ErrorDetail) of a creation that failed: the task stays UNAVAILABLE."""


@dataclass
class Execution:
    arn: str
    task_arn: str
    seq: int
    agent_arn: str | None
    options: dict
    includes: list
    excludes: list
    start_time: float
    task_mode: str = "BASIC"
    status: str = "QUEUED"
    launch_time: float | None = None
    end_time: float | None = None
    cancel_requested: bool = False
    counters: dict = field(default_factory=lambda: {
        "EstimatedFilesToTransfer": 0, "EstimatedBytesToTransfer": 0,
        "FilesTransferred": 0, "BytesWritten": 0, "BytesTransferred": 0,
        "BytesCompressed": 0, "FilesDeleted": 0, "FilesSkipped": 0,
        "FilesVerified": 0, "EstimatedFilesToDelete": 0,
    })
    result: dict = field(default_factory=lambda: {
        "PrepareStatus": "PENDING", "TransferStatus": "PENDING", "VerifyStatus": "PENDING",
        "PrepareDuration": 0, "TransferDuration": 0, "VerifyDuration": 0, "TotalDuration": 0,
    })
    source_dir: str | None = None
    dest_dir: str | None = None
    thread: threading.Thread | None = None


def _norm_nfs_subdir(sub: str) -> str:
    n = posixpath.normpath("/" + sub.strip())
    if n.startswith("//"):
        n = "/" + n.lstrip("/")
    if "/../" in n + "/" or n == "/..":
        raise invalid(f"Subdirectory {sub!r} is invalid")
    return n


def _norm_s3_subdir(sub: str) -> str:
    if not sub or not sub.strip("/"):
        return ""
    n = posixpath.normpath("/" + sub).lstrip("/")
    if n == ".." or n.startswith("../"):
        raise invalid(f"Subdirectory {sub!r} is invalid")
    return n


def _bucket_from_arn(arn: str) -> str:
    tail = arn.split(":", 5)[-1]
    if "/" in tail:  # access point or outposts ARN: use the last component
        tail = tail.rsplit("/", 1)[-1]
    elif tail.startswith("accesspoint:"):
        tail = tail.split(":", 1)[1]
    return tail


def _parse_time(v: str) -> float:
    try:
        return float(v)
    except ValueError:
        pass
    try:
        d = _dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"Invalid time value {v!r} in filter") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return d.timestamp()


def _match_filter(name: str, op: str, values: list[str], actual, kind: str) -> bool:
    """Evaluate one ListLocations/ListTasks filter.

    kind: "str" (case-sensitive), "istr" (case-insensitive), "time", "arnset".
    Multi-valued: Equals/In/Contains/BeginsWith hold when any value matches;
    NotEquals/NotContains when no value matches; ordered comparisons when
    they hold against every value.
    """
    if kind == "time":
        vals = [_parse_time(v) for v in values]
        cmp = {
            "Equals": lambda a: any(a == v for v in vals),
            "In": lambda a: any(a == v for v in vals),
            "NotEquals": lambda a: all(a != v for v in vals),
            "LessThan": lambda a: all(a < v for v in vals),
            "LessThanOrEqual": lambda a: all(a <= v for v in vals),
            "GreaterThan": lambda a: all(a > v for v in vals),
            "GreaterThanOrEqual": lambda a: all(a >= v for v in vals),
        }
        if op not in cmp:
            raise invalid(f"Operator {op} is not supported for filter {name}")
        return cmp[op](actual)
    if kind == "arnset":  # actual: set of ARNs
        if op in ("Equals", "In"):
            return any(v in actual for v in values)
        if op == "NotEquals":
            return not any(v in actual for v in values)
        raise invalid(f"Operator {op} is not supported for filter {name}")
    a = actual
    vals = values
    if kind == "istr":
        a = a.lower()
        vals = [v.lower() for v in values]
    ops = {
        "Equals": lambda: any(a == v for v in vals),
        "In": lambda: any(a == v for v in vals),
        "NotEquals": lambda: all(a != v for v in vals),
        "Contains": lambda: any(v in a for v in vals),
        "NotContains": lambda: all(v not in a for v in vals),
        "BeginsWith": lambda: any(a.startswith(v) for v in vals),
    }
    if op not in ops:
        raise invalid(f"Operator {op} is not supported for filter {name}")
    return ops[op]()


class State:
    def __init__(self, region="us-east-1", agents=3, exports=None, s3_root=".",
                 phase_delay=0.05, offline_error_delay=1.0, enhanced_agents=0,
                 task_create_delay=0.1, item_quota=BASIC_ITEM_QUOTA, reading: Reading = DEFAULT_READING):
        self.region = region
        self.reading = reading
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.phase_delay = float(phase_delay)
        self.offline_error_delay = float(offline_error_delay)
        self.task_create_delay = float(task_create_delay)
        self.item_quota = int(item_quota)
        self.echo_execution_filters = True
        self.s3_root = os.path.abspath(s3_root)
        # exports: list of (host, export path, local dir)
        self.exports = []
        for spec, local in (exports or {}).items():
            host, _, path = spec.partition(":")
            if not host or not path:
                raise ValueError(f"bad export {spec!r}: want HOST:/EXPORT")
            self.exports.append((host, _norm_nfs_subdir(path), os.path.abspath(local)))
        self.agents: dict[str, Agent] = {}
        self.locations: dict[str, Location] = {}
        self.tasks: dict[str, Task] = {}
        self.executions: dict[str, Execution] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.writes: dict[str, int] = defaultdict(int)
        # how many successful prepares selected each file or link, written or not: a test's
        # evidence that two tasks' filters overlap even where CHANGED skips the second copy
        self.selections: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)
        self.throttled: dict[str, int] = defaultdict(int)
        self.throttle_fraction = 0.0
        self.throttle_rng = random.Random(1)
        self.seq = 0
        self.stopping = False
        now = time.time()
        for i in range(1, agents + enhanced_agents + 1):
            aid = f"agent-{i:017x}"
            arn = f"arn:aws:datasync:{region}:{ACCOUNT}:agent/{aid}"
            self.agents[arn] = Agent(arn, aid, f"emulated-agent-{i}", i, now, last_connection=now,
                                     mode="BASIC" if i <= agents else "ENHANCED")
            self.tags[arn] = {}

    # ------------------------------------------------------------------ utils
    def _arn(self, kind: str, prefix: str) -> str:
        return f"arn:aws:datasync:{self.region}:{ACCOUNT}:{kind}/{prefix}-{_hex17()}"

    def _get(self, table: dict, arn: str, what: str):
        obj = table.get(arn)
        if obj is None:
            raise invalid(f"Unable to find {what} with ARN {arn}")
        return obj

    def _page(self, items: list, params: dict, key):
        """items sorted by key(); NextToken encodes the last key returned."""
        max_results = params.get("MaxResults") or DEFAULT_PAGE
        token = params.get("NextToken")
        if token:
            try:
                after = json.loads(base64.urlsafe_b64decode(token.encode()).decode())["after"]
            except Exception:
                raise invalid("Invalid NextToken") from None
            items = [it for it in items if _cmp_key(key(it)) > _cmp_key(after)]
        page = items[:max_results]
        nxt = None
        if len(items) > max_results:
            nxt = base64.urlsafe_b64encode(
                json.dumps({"after": key(page[-1])}).encode()).decode()
        return page, nxt

    def agent_by_ref(self, ref: str) -> Agent:
        with self.lock:
            for a in self.agents.values():
                if ref in (a.arn, a.id, a.name, str(a.index)):
                    return a
        raise KeyError(ref)

    # ------------------------------------------------------------------ agents
    def op_ListAgents(self, p):
        with self.lock:
            items = sorted(self.agents.values(), key=lambda a: a.arn)
            page, nxt = self._page(items, p, lambda a: a.arn)
            out = {"Agents": [{"AgentArn": a.arn, "Name": a.name, "Status": a.status,
                               "Platform": {"Version": "2.0.0-emulated"}} for a in page]}
            if nxt:
                out["NextToken"] = nxt
            return out

    def op_DescribeAgent(self, p):
        with self.lock:
            a = self._get(self.agents, p["AgentArn"], "agent")
            last = time.time() if a.status == "ONLINE" else a.last_connection
            return {"AgentArn": a.arn, "Name": a.name, "Status": a.status,
                    "LastConnectionTime": last, "CreationTime": a.created,
                    "EndpointType": "PUBLIC", "Platform": {"Version": "2.0.0-emulated"}}

    def set_agent(self, agent: Agent, status=None, bytes_per_second=..., last_contact_ago=None):
        """``last_contact_ago`` backdates the LastConnectionTime an OFFLINE agent reports (real
        agents are marked OFFLINE minutes after their last contact); running executions still
        get ``offline_error_delay`` from now."""
        with self.lock:
            if status is not None:
                if status not in ("ONLINE", "OFFLINE"):
                    raise ValueError("status must be ONLINE or OFFLINE")
                if status != agent.status:
                    now = time.time()
                    if status == "OFFLINE":
                        agent.offline_since = now
                        agent.last_connection = now
                    else:
                        agent.offline_since = None
                        agent.last_connection = now
                    agent.status = status
            if last_contact_ago is not None:
                if agent.status != "OFFLINE":
                    raise ValueError("last_contact_ago applies to an OFFLINE agent")
                agent.last_connection = time.time() - float(last_contact_ago)
            if bytes_per_second is not ...:
                agent.bytes_per_second = int(bytes_per_second) if bytes_per_second else None
            self._schedule_locked()
            self.cond.notify_all()

    # --------------------------------------------------------------- locations
    def _check_agents(self, arns):
        for a in arns:
            self._get(self.agents, a, "agent")

    def _new_location_tags(self, arn, p):
        self.tags[arn] = {t["Key"]: t.get("Value", "") for t in p.get("Tags") or []}
        if len(self.tags[arn]) > MAX_TAGS:
            raise invalid(f"Too many tags: at most {MAX_TAGS} per resource")

    def op_CreateLocationNfs(self, p):
        with self.lock:
            agents = list(p["OnPremConfig"]["AgentArns"])
            self._check_agents(agents)
            arn = self._arn("location", "loc")
            loc = Location(arn, "NFS", time.time(), _norm_nfs_subdir(p["Subdirectory"]),
                           hostname=p["ServerHostname"], agents=agents,
                           mount_options=dict(p.get("MountOptions") or {"Version": "AUTOMATIC"}))
            loc.mount_options.setdefault("Version", "AUTOMATIC")
            self._new_location_tags(arn, p)
            self.locations[arn] = loc
            return {"LocationArn": arn}

    def op_DescribeLocationNfs(self, p):
        with self.lock:
            loc = self._get(self.locations, p["LocationArn"], "location")
            if loc.type != "NFS":
                raise invalid(f"Location {loc.arn} is not an NFS location")
            return {"LocationArn": loc.arn, "LocationUri": loc.uri,
                    "OnPremConfig": {"AgentArns": list(loc.agents)},
                    "MountOptions": dict(loc.mount_options), "CreationTime": loc.created}

    def op_UpdateLocationNfs(self, p):
        with self.lock:
            loc = self._get(self.locations, p["LocationArn"], "location")
            if loc.type != "NFS":
                raise invalid(f"Location {loc.arn} is not an NFS location")
            if "Subdirectory" in p:
                loc.subdirectory = _norm_nfs_subdir(p["Subdirectory"])
            if "ServerHostname" in p:
                loc.hostname = p["ServerHostname"]
            if "OnPremConfig" in p:
                agents = list(p["OnPremConfig"]["AgentArns"])
                self._check_agents(agents)
                loc.agents = agents
            if "MountOptions" in p:
                loc.mount_options = dict(p["MountOptions"])
                loc.mount_options.setdefault("Version", "AUTOMATIC")
            return {}

    def op_CreateLocationS3(self, p):
        with self.lock:
            agents = list(p.get("AgentArns") or [])
            self._check_agents(agents)
            bucket = _bucket_from_arn(p["S3BucketArn"])
            if bucket in (".", "..") or not bucket.strip("."):
                raise invalid(f"Invalid bucket name {bucket!r} in S3BucketArn")
            arn = self._arn("location", "loc")
            loc = Location(arn, "S3", time.time(), _norm_s3_subdir(p.get("Subdirectory", "")),
                           agents=agents, bucket_arn=p["S3BucketArn"],
                           bucket=bucket,
                           storage_class=p.get("S3StorageClass", "STANDARD"),
                           s3_config=dict(p["S3Config"]))
            self._new_location_tags(arn, p)
            self.locations[arn] = loc
            return {"LocationArn": arn}

    def op_DescribeLocationS3(self, p):
        with self.lock:
            loc = self._get(self.locations, p["LocationArn"], "location")
            if loc.type != "S3":
                raise invalid(f"Location {loc.arn} is not an S3 location")
            out = {"LocationArn": loc.arn, "LocationUri": loc.uri,
                   "S3StorageClass": loc.storage_class, "S3Config": dict(loc.s3_config),
                   "CreationTime": loc.created}
            if loc.agents:
                out["AgentArns"] = list(loc.agents)
            return out

    def op_ListLocations(self, p):
        with self.lock:
            items = sorted(self.locations.values(), key=lambda loc: loc.arn)
            for f in p.get("Filters") or []:
                name, op, vals = f["Name"], f["Operator"], f["Values"]
                if name == "LocationUri":
                    items = [loc for loc in items if _match_filter(name, op, vals, loc.uri, "str")]
                elif name == "LocationType":
                    items = [loc for loc in items if _match_filter(name, op, vals, loc.type, "istr")]
                elif name == "CreationTime":
                    items = [loc for loc in items if _match_filter(name, op, vals, loc.created, "time")]
            page, nxt = self._page(items, p, lambda loc: loc.arn)
            out = {"Locations": [{"LocationArn": loc.arn, "LocationUri": loc.uri} for loc in page]}
            if nxt:
                out["NextToken"] = nxt
            return out

    def op_DeleteLocation(self, p):
        with self.lock:
            loc = self._get(self.locations, p["LocationArn"], "location")
            users = [t.arn for t in self.tasks.values() if loc.arn in (t.source, t.dest)]
            if users:
                raise invalid(f"Location {loc.arn} is in use by task(s): {', '.join(sorted(users))}")
            del self.locations[loc.arn]
            self.tags.pop(loc.arn, None)
            return {}

    # ------------------------------------------------------------------- tasks
    @staticmethod
    def _check_options(opts: dict):
        if opts.get("PreserveDeletedFiles") == "REMOVE" and opts.get("TransferMode") == "ALL":
            raise invalid("PreserveDeletedFiles=REMOVE cannot be used with TransferMode=ALL")

    @staticmethod
    def _check_filters(p):
        try:
            validate_includes(p.get("Includes"))
            FilterSet.from_rules(p.get("Includes"), p.get("Excludes"))
        except FilterError as e:
            raise invalid(str(e)) from e

    def _task_agents(self, t: Task) -> list[str]:
        """The agents of the task's source location that have the task's mode."""
        src = self.locations.get(t.source)
        if src is None:
            return []
        return taskmode.usable_agents(t.task_mode, [(a, self.agents[a].mode) for a in src.agents if a in self.agents])

    def _task_status(self, t: Task) -> str:
        if time.time() < t.ready_at:
            return "CREATING"
        if t.error:
            return "UNAVAILABLE"
        if any(self.agents[a].status == "OFFLINE" for a in self._task_agents(t)):
            return "UNAVAILABLE"
        statuses = [e.status for e in self.executions.values()
                    if e.task_arn == t.arn and e.status not in TERMINAL]
        if any(s in OCCUPYING for s in statuses):
            return "RUNNING"
        if statuses:
            return "QUEUED"
        return "AVAILABLE"

    def _check_mode(self, mode: str, src: Location, dst: Location, p: dict):
        problem = (taskmode.option_problem(mode, p.get("Options") or {}, p.get("CloudWatchLogGroupArn"))
                   or taskmode.pair_problem(mode, src.type, dst.type))
        if problem:
            raise invalid(problem)
        if src.type == "NFS" and not taskmode.usable_agents(mode, [(a, self.agents[a].mode) for a in src.agents]):
            raise invalid(f"Location {src.arn} has no {mode.title()} mode agent: a {mode} task uses only "
                          f"agents of its own mode")

    def op_CreateTask(self, p):
        with self.lock:
            src = self._get(self.locations, p["SourceLocationArn"], "location")
            dst = self._get(self.locations, p["DestinationLocationArn"], "location")
            self._check_filters(p)
            mode = p.get("TaskMode", "BASIC")
            self._check_mode(mode, src, dst, p)
            opts = dict(DEFAULT_OPTIONS)
            if mode == "ENHANCED":
                opts["VerifyMode"] = "ONLY_FILES_TRANSFERRED"
            opts.update(p.get("Options") or {})
            self._check_options(opts)
            if len(self.tasks) >= MAX_TASKS:
                raise invalid(f"Task quota exceeded: at most {MAX_TASKS} tasks")
            error = None
            if src.type == "NFS":  # DataSync mounts the export while the task is CREATING
                try:
                    self._export_dir(src)
                except _ExecFailed as exc:
                    error = (exc.code, exc.detail)
            now = time.time()
            arn = self._arn("task", "task")
            t = Task(arn, p["SourceLocationArn"], p["DestinationLocationArn"], now, opts,
                     name=p.get("Name"), includes=copy.deepcopy(p.get("Includes") or []),
                     excludes=copy.deepcopy(p.get("Excludes") or []),
                     log_group=p.get("CloudWatchLogGroupArn"), schedule=p.get("Schedule"),
                     task_mode=mode, manifest=p.get("ManifestConfig"),
                     report_config=p.get("TaskReportConfig"), ready_at=now + self.task_create_delay,
                     error=error)
            self.tags[arn] = {tg["Key"]: tg.get("Value", "") for tg in p.get("Tags") or []}
            self.tasks[arn] = t
            return {"TaskArn": arn}

    def op_DescribeTask(self, p):
        with self.lock:
            t = self._get(self.tasks, p["TaskArn"], "task")
            status = self._task_status(t)
            out = {"TaskArn": t.arn, "Status": status,
                   "SourceLocationArn": t.source, "DestinationLocationArn": t.dest,
                   "Options": dict(t.options), "Includes": copy.deepcopy(t.includes),
                   "Excludes": copy.deepcopy(t.excludes), "CreationTime": t.created,
                   "TaskMode": t.task_mode, "SourceNetworkInterfaceArns": [],
                   "DestinationNetworkInterfaceArns": []}
            if t.name:
                out["Name"] = t.name
            if t.current_exec:
                out["CurrentTaskExecutionArn"] = t.current_exec
            if t.log_group:
                out["CloudWatchLogGroupArn"] = t.log_group
            if t.schedule:
                out["Schedule"] = dict(t.schedule)
            if t.manifest:
                out["ManifestConfig"] = copy.deepcopy(t.manifest)
            if t.report_config:
                out["TaskReportConfig"] = copy.deepcopy(t.report_config)
            if t.error and status != "CREATING":
                out["ErrorCode"], out["ErrorDetail"] = t.error
            return out

    def op_UpdateTask(self, p):
        with self.lock:
            t = self._get(self.tasks, p["TaskArn"], "task")
            self._check_filters(p)
            problem = taskmode.option_problem(t.task_mode, p.get("Options") or {}, p.get("CloudWatchLogGroupArn"))
            if problem:
                raise invalid(problem)
            opts = dict(t.options)
            opts.update(p.get("Options") or {})
            self._check_options(opts)
            t.options = opts
            if "Includes" in p:
                t.includes = copy.deepcopy(p["Includes"])
            if "Excludes" in p:
                t.excludes = copy.deepcopy(p["Excludes"])
            if "Name" in p:
                t.name = p["Name"] or None
            if "CloudWatchLogGroupArn" in p:
                t.log_group = p["CloudWatchLogGroupArn"] or None
            if "Schedule" in p:
                t.schedule = p["Schedule"]
            if "ManifestConfig" in p:
                t.manifest = p["ManifestConfig"] or None
            if "TaskReportConfig" in p:
                t.report_config = p["TaskReportConfig"] or None
            return {}

    def op_ListTasks(self, p):
        with self.lock:
            items = sorted(self.tasks.values(), key=lambda t: t.arn)
            for f in p.get("Filters") or []:
                name, op, vals = f["Name"], f["Operator"], f["Values"]
                if name == "LocationId":
                    items = [t for t in items
                             if _match_filter(name, op, vals, {t.source, t.dest}, "arnset")]
                elif name == "CreationTime":
                    items = [t for t in items if _match_filter(name, op, vals, t.created, "time")]
            page, nxt = self._page(items, p, lambda t: t.arn)
            out = {"Tasks": []}
            for t in page:
                e = {"TaskArn": t.arn, "Status": self._task_status(t), "TaskMode": t.task_mode}
                if t.name:
                    e["Name"] = t.name
                out["Tasks"].append(e)
            if nxt:
                out["NextToken"] = nxt
            return out

    def op_DeleteTask(self, p):
        with self.lock:
            t = self._get(self.tasks, p["TaskArn"], "task")
            active = [e.arn for e in self.executions.values()
                      if e.task_arn == t.arn and e.status not in TERMINAL]
            if active:
                raise invalid(f"Task {t.arn} has executions that have not finished: "
                              f"{', '.join(active)}; cancel them first")
            del self.tasks[t.arn]
            self.tags.pop(t.arn, None)
            for e in [e for e in self.executions.values() if e.task_arn == t.arn]:
                del self.executions[e.arn]
                self.tags.pop(e.arn, None)
            return {}

    # -------------------------------------------------------------- executions
    def op_StartTaskExecution(self, p):
        with self.lock:
            t = self._get(self.tasks, p["TaskArn"], "task")
            status = self._task_status(t)
            if status == "CREATING":
                raise invalid(f"Task {t.arn} is still being created (CREATING); start it once it is AVAILABLE")
            if t.error:
                raise invalid(f"Task {t.arn} is UNAVAILABLE: {t.error[0]}: {t.error[1]}")
            self._check_filters(p)
            problem = taskmode.option_problem(t.task_mode, p.get("OverrideOptions") or {})
            if problem:
                raise invalid(problem)
            opts = dict(t.options)
            opts.update(p.get("OverrideOptions") or {})
            self._check_options(opts)
            queued = [e for e in self.executions.values()
                      if e.task_arn == t.arn and e.status == "QUEUED"]
            if len(queued) >= MAX_QUEUED_PER_TASK:
                raise invalid(f"Task {t.arn} already has {MAX_QUEUED_PER_TASK} queued executions")
            agents = self._task_agents(t)
            agent = agents[0] if agents else None
            includes = p["Includes"] if "Includes" in p else t.includes
            excludes = p["Excludes"] if "Excludes" in p else t.excludes
            arn = f"{t.arn}/execution/exec-{_hex17()}"
            self.seq += 1
            ex = Execution(arn, t.arn, self.seq, agent, opts, copy.deepcopy(includes),
                           copy.deepcopy(excludes), time.time(), task_mode=t.task_mode)
            if t.task_mode == "ENHANCED":  # Files* count files only; directories count here
                ex.counters.update(EstimatedFoldersToTransfer=0, FoldersTransferred=0, FoldersSkipped=0,
                                   FoldersVerified=0)
            self.executions[arn] = ex
            self.tags[arn] = {tg["Key"]: tg.get("Value", "") for tg in p.get("Tags") or []}
            t.current_exec = arn
            self._schedule_locked()
            return {"TaskExecutionArn": arn}

    def _exec_view(self, e: Execution) -> dict:
        out = {"TaskExecutionArn": e.arn, "Status": e.status, "Options": dict(e.options),
               "StartTime": e.start_time, "TaskMode": e.task_mode, "Result": dict(e.result)}
        if e.includes and self.echo_execution_filters:
            out["Includes"] = copy.deepcopy(e.includes)
        if e.excludes and self.echo_execution_filters:
            out["Excludes"] = copy.deepcopy(e.excludes)
        out.update(e.counters)
        if e.launch_time is not None:
            out["LaunchTime"] = e.launch_time
        if e.end_time is not None:
            out["EndTime"] = e.end_time
        return out

    def op_DescribeTaskExecution(self, p):
        with self.lock:
            e = self._get(self.executions, p["TaskExecutionArn"], "task execution")
            return self._exec_view(e)

    def op_ListTaskExecutions(self, p):
        with self.lock:
            items = sorted(self.executions.values(), key=lambda e: e.seq)
            if p.get("TaskArn"):
                self._get(self.tasks, p["TaskArn"], "task")
                items = [e for e in items if e.task_arn == p["TaskArn"]]
            page, nxt = self._page(items, p, lambda e: e.seq)
            out = {"TaskExecutions": [{"TaskExecutionArn": e.arn, "Status": e.status,
                                       "TaskMode": e.task_mode} for e in page]}
            if nxt:
                out["NextToken"] = nxt
            return out

    def op_CancelTaskExecution(self, p):
        with self.lock:
            e = self._get(self.executions, p["TaskExecutionArn"], "task execution")
            if e.status in TERMINAL:
                raise invalid(f"Task execution {e.arn} has already finished with status {e.status}")
            if e.status == "CANCELLING":
                return {}
            e.cancel_requested = True
            if e.status == "QUEUED":  # never launched: drop it from the queue
                self._finish_locked(e, "ERROR", "OperationAborted",
                                    "Task execution was cancelled before it launched")
            else:
                e.status = "CANCELLING"
            self._schedule_locked()
            self.cond.notify_all()
            return {}

    # -------------------------------------------------------------------- tags
    def _taggable(self, arn: str):
        if arn not in self.tags:
            raise invalid(f"Unable to find resource with ARN {arn}")

    def op_TagResource(self, p):
        with self.lock:
            self._taggable(p["ResourceArn"])
            new = dict(self.tags[p["ResourceArn"]])
            for tg in p["Tags"]:
                new[tg["Key"]] = tg.get("Value", "")
            if len(new) > MAX_TAGS:
                raise invalid(f"Too many tags: at most {MAX_TAGS} per resource")
            self.tags[p["ResourceArn"]] = new
            return {}

    def op_UntagResource(self, p):
        with self.lock:
            self._taggable(p["ResourceArn"])
            for k in p["Keys"]:
                self.tags[p["ResourceArn"]].pop(k, None)
            return {}

    def op_ListTagsForResource(self, p):
        with self.lock:
            self._taggable(p["ResourceArn"])
            items = sorted(self.tags[p["ResourceArn"]].items())
            page, nxt = self._page(items, p, lambda kv: kv[0])
            out = {"Tags": [{"Key": k, "Value": v} for k, v in page]}
            if nxt:
                out["NextToken"] = nxt
            return out

    # ---------------------------------------------------------------- scheduling
    def _schedule_locked(self):
        """Launch every QUEUED execution whose agent and task are free (FIFO)."""
        if self.stopping:
            return
        busy_agents = {e.agent_arn for e in self.executions.values()
                       if e.status in OCCUPYING and e.agent_arn is not None}
        ordered = sorted(self.executions.values(), key=lambda e: e.seq)
        for e in ordered:
            if e.status != "QUEUED":
                continue
            if e.agent_arn is not None and e.agent_arn in busy_agents:
                continue
            blocked = any(o.task_arn == e.task_arn and o.seq < e.seq and o.status not in TERMINAL
                          for o in ordered)
            if blocked:
                continue
            e.status = "LAUNCHING"
            e.launch_time = time.time()
            if e.agent_arn is not None:
                busy_agents.add(e.agent_arn)
            e.thread = threading.Thread(target=self._run, args=(e,), daemon=True,
                                        name=f"exec-{e.arn[-17:]}")
            e.thread.start()
        self.cond.notify_all()

    def _finish_locked(self, e: Execution, status, code=None, detail=None):
        now = time.time()
        e.status = status
        e.end_time = now
        r = e.result
        if status == "ERROR":
            for ph in ("PrepareStatus", "TransferStatus", "VerifyStatus"):
                if r[ph] == "PENDING":
                    r[ph] = "ERROR"
                    break
            r["ErrorCode"] = code or "Error"
            r["ErrorDetail"] = detail or ""
        r["TotalDuration"] = int((now - (e.launch_time or e.start_time)) * 1000)
        self._schedule_locked()
        self.cond.notify_all()

    # ----------------------------------------------------------------- workers
    def _gate(self, e: Execution, running: bool):
        """Raise if the execution must stop; block while its agent is OFFLINE.

        Must be called with the lock held.  Returns when the agent is ONLINE.
        """
        while True:
            if self.stopping:
                raise _Stopping()
            if e.cancel_requested:
                raise _Cancelled()
            ag = self.agents.get(e.agent_arn) if e.agent_arn else None
            if ag is None or ag.status == "ONLINE":
                return
            if running:
                left = (ag.offline_since or time.time()) + self.offline_error_delay - time.time()
                if left <= 0:
                    raise _AgentOffline(ag)
                self.cond.wait(left)
            else:
                self.cond.wait(1.0)

    def _wait(self, e: Execution, seconds: float, running: bool):
        """Wait `seconds` (wall clock) while honouring cancel/offline/stop."""
        deadline = time.time() + seconds
        with self.lock:
            while True:
                self._gate(e, running)
                left = deadline - time.time()
                if left <= 0:
                    return
                self.cond.wait(left)

    def _set_status(self, e: Execution, status: str):
        with self.lock:
            self._gate(e, running=e.status in RUNNING_PHASES)
            e.status = status
            self.cond.notify_all()

    def _resolve_dirs(self, e: Execution):
        with self.lock:
            t = self.tasks.get(e.task_arn)
            src = self.locations.get(t.source) if t else None
            dst = self.locations.get(t.dest) if t else None
        if src is None or dst is None:
            raise _ExecFailed("InvalidLocation", "The task's locations no longer exist")
        if src.type != "NFS" or dst.type != "S3":
            raise _ExecFailed("UnsupportedTransfer",
                              "The emulator transfers only from an NFS location to an S3 location")
        src_dir = self._export_dir(src)
        sub = dst.subdirectory.strip("/")
        dst_dir = os.path.join(self.s3_root, dst.bucket, *sub.split("/")) if sub \
            else os.path.join(self.s3_root, dst.bucket)
        return src_dir, dst_dir

    def _export_dir(self, src: Location) -> str:
        """The local directory an NFS location mounts; NfsMountFailed if it mounts nothing."""
        best = None
        for host, exp, local in self.exports:
            if host != src.hostname:
                continue
            if src.subdirectory == exp or src.subdirectory.startswith(exp.rstrip("/") + "/"):
                if best is None or len(exp) > len(best[0]):
                    best = (exp, local)
        if best is None:
            raise _ExecFailed("NfsMountFailed",
                              f"mount.nfs: access denied by server while mounting "
                              f"{src.hostname}:{src.subdirectory} (no emulator export matches)")
        exp, local = best
        rest = src.subdirectory[len(exp):].strip("/")
        src_dir = os.path.join(local, *rest.split("/")) if rest else local
        if not os.path.isdir(src_dir):
            raise _ExecFailed("NfsMountFailed",
                              f"mount.nfs: mounting {src.hostname}:{src.subdirectory} failed, "
                              f"reason given by server: No such file or directory")
        return src_dir

    def _estimate(self, e: Execution, entries, dst_dir: str):
        """What is left to transfer: in CHANGED mode the difference between source and
        destination (0 over a complete copy), in ALL mode everything selected."""
        if e.options.get("TransferMode") == "ALL":
            todo = entries
        else:
            never = e.options.get("OverwriteMode") == "NEVER"
            todo = [en for en in entries if not transfer.is_current(en, transfer.dest_path(dst_dir, en.rel), never)]
        folders = sum(1 for en in todo if en.kind == "dir") if e.task_mode == "ENHANCED" else 0
        with self.lock:
            e.counters["EstimatedFilesToTransfer"] = len(todo) - folders
            e.counters["EstimatedBytesToTransfer"] = sum(x.size for x in todo)
            if e.task_mode == "ENHANCED":
                e.counters["EstimatedFoldersToTransfer"] = folders

    def _count(self, e: Execution, entry, what: str):
        """Count one entry as Transferred, Skipped or Verified: Enhanced mode counts
        directories as folders, Basic mode as files."""
        kind = "Folders" if e.task_mode == "ENHANCED" and entry.kind == "dir" else "Files"
        self._bump(e, **{kind + what: 1})

    def _rate(self, e: Execution):
        with self.lock:
            rates = []
            ag = self.agents.get(e.agent_arn) if e.agent_arn else None
            if ag and ag.bytes_per_second:
                rates.append(ag.bytes_per_second)
            bps = e.options.get("BytesPerSecond", -1)
            if bps and bps > 0:
                rates.append(bps)
            return min(rates) if rates else None

    def _run(self, e: Execution):
        phase_t0 = time.time()
        try:
            try:
                # LAUNCHING: stuck while the agent is OFFLINE
                self._wait(e, self.phase_delay, running=False)
                src_dir, dst_dir = self._resolve_dirs(e)
                e.source_dir, e.dest_dir = src_dir, dst_dir
                try:
                    filters = FilterSet.from_rules(e.includes, e.excludes, self.reading)
                except FilterError as exc:
                    raise _ExecFailed("InvalidFilter", str(exc)) from exc
                # PREPARING
                self._set_status(e, "PREPARING")
                phase_t0 = time.time()
                entries = transfer.plan(src_dir, filters)
                if e.task_mode == "BASIC" and len(entries) > self.item_quota:
                    raise _ExecFailed("ItemQuotaExceeded",
                                      f"{len(entries)} items exceed the Basic mode quota of {self.item_quota} "
                                      f"items per task execution")
                with self.lock:
                    for x in entries:
                        if x.kind != "dir":
                            self.selections[f"{src_dir}:{x.rel}"] += 1
                self._estimate(e, entries, dst_dir)
                self._wait(e, self.phase_delay - (time.time() - phase_t0), running=True)
                with self.lock:
                    e.result["PrepareStatus"] = "SUCCESS"
                    e.result["PrepareDuration"] = int((time.time() - phase_t0) * 1000)
                # TRANSFERRING
                self._set_status(e, "TRANSFERRING")
                phase_t0 = time.time()
                transferred = self._transfer(e, entries, dst_dir)
                self._wait(e, self.phase_delay - (time.time() - phase_t0), running=True)
                with self.lock:
                    e.result["TransferStatus"] = "SUCCESS"
                    e.result["TransferDuration"] = int((time.time() - phase_t0) * 1000)
                # VERIFYING
                self._set_status(e, "VERIFYING")
                phase_t0 = time.time()
                mode = e.options.get("VerifyMode", "POINT_IN_TIME_CONSISTENT")
                if mode != "NONE":
                    todo = entries if mode == "POINT_IN_TIME_CONSISTENT" else transferred
                    self._verify(e, todo, dst_dir)
                self._wait(e, self.phase_delay - (time.time() - phase_t0), running=True)
                with self.lock:
                    e.result["VerifyStatus"] = "SUCCESS"
                    e.result["VerifyDuration"] = int((time.time() - phase_t0) * 1000)
                    self._finish_locked(e, "SUCCESS")
            except _Cancelled:
                self._fail(e, phase_t0, "OperationAborted", "Task execution was cancelled by the user")
            except _AgentOffline as exc:
                ag = exc.args[0]
                self._fail(e, phase_t0, "AgentOffline",
                           f"The DataSync agent {ag.arn} ({ag.name}) went offline during the "
                           f"task execution and did not reconnect within "
                           f"{self.offline_error_delay:g} seconds")
            except _ExecFailed as exc:
                self._fail(e, phase_t0, exc.code, exc.detail)
            except OSError as exc:
                self._fail(e, phase_t0, "TransferFailed", f"{type(exc).__name__}: {exc}")
        except _Stopping:
            return
        except Exception as exc:  # pragma: no cover - defensive
            try:
                self._fail(e, phase_t0, "InternalError", repr(exc))
            except Exception:
                pass

    def _fail(self, e: Execution, phase_t0: float, code: str, detail: str):
        with self.lock:
            if self.stopping:
                return
            dur = int((time.time() - phase_t0) * 1000)
            for st, du in (("PrepareStatus", "PrepareDuration"),
                           ("TransferStatus", "TransferDuration"),
                           ("VerifyStatus", "VerifyDuration")):
                if e.result[st] == "PENDING":
                    if e.status in RUNNING_PHASES or e.status == "CANCELLING":
                        e.result[du] = dur
                    break
            self._finish_locked(e, "ERROR", code, detail)

    # ---------------------------------------------------------------- copying
    def _count_write(self, path: str):
        with self.lock:
            self.writes[path] += 1

    def _bump(self, e: Execution, **kw):
        with self.lock:
            for k, v in kw.items():
                e.counters[k] += v

    def _checkpoint(self, e: Execution):
        with self.lock:
            self._gate(e, running=True)

    def _transfer(self, e: Execution, entries, dst_root: str):
        opts = e.options
        mode_all = opts.get("TransferMode") == "ALL"
        never_overwrite = opts.get("OverwriteMode") == "NEVER"
        keep_perm = opts.get("PosixPermissions", "PRESERVE") == "PRESERVE"
        keep_mtime = opts.get("Mtime", "PRESERVE") == "PRESERVE"
        os.makedirs(dst_root, exist_ok=True)
        real_root = os.path.realpath(dst_root)
        real_s3 = os.path.realpath(self.s3_root)
        if not _inside(real_root, real_s3):
            raise _ExecFailed("TransferFailed",
                              f"destination {dst_root} resolves outside the S3 root")
        transferred = []
        dir_modes = []
        for en in entries:
            self._checkpoint(e)
            dst = transfer.dest_path(dst_root, en.rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if not _inside(os.path.realpath(os.path.dirname(dst)), real_root):
                # a symlink copied earlier sits where a directory is expected
                raise _ExecFailed("TransferFailed",
                                  f"{en.rel}: a parent directory at the destination is a "
                                  f"symbolic link; refusing to write through it")
            current = transfer.is_current(en, dst, never_overwrite)
            if en.kind == "dir":
                if current:
                    dir_modes.append((dst, en))
                    if mode_all:
                        self._count(e, en, "Transferred")
                        transferred.append(en)
                    else:
                        self._count(e, en, "Skipped")
                    continue
                os.mkdir(dst, 0o700)
                self._count_write(dst)
                dir_modes.append((dst, en))
            else:
                if current and (never_overwrite or not mode_all):
                    self._count(e, en, "Skipped")
                    continue
                if en.kind == "symlink":
                    transfer.write_symlink(en, dst)
                else:
                    self._copy_file(e, en, dst, keep_perm, keep_mtime)
                self._count_write(dst)
            self._count(e, en, "Transferred")
            transferred.append(en)
        # directory metadata last (a read-only source dir must not block writes)
        for dst, en in reversed(dir_modes):
            os.chmod(dst, en.mode if keep_perm else 0o755)
            if keep_mtime:
                os.utime(dst, ns=(en.atime_ns, en.mtime_ns))
        return transferred

    def _copy_file(self, e: Execution, en, dst: str, keep_perm: bool, keep_mtime: bool):
        src = os.path.join(e.source_dir, *en.rel.strip("/").split("/"))
        tmp = transfer.temp_name(dst)
        try:
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                while True:
                    rate = self._rate(e)
                    n = CHUNK if not rate else max(1024, min(CHUNK, rate // 10))
                    buf = fin.read(n)
                    if not buf:
                        break
                    fout.write(buf)
                    self._bump(e, BytesTransferred=len(buf), BytesWritten=len(buf))
                    if rate:
                        self._wait(e, len(buf) / rate, running=True)
                    else:
                        self._checkpoint(e)
            os.chmod(tmp, en.mode if keep_perm else 0o644)
            if keep_mtime:
                os.utime(tmp, ns=(en.atime_ns, en.mtime_ns))
            self._checkpoint(e)
            os.replace(tmp, dst)
        except BaseException:
            transfer.discard(tmp)
            raise

    def _verify(self, e: Execution, entries, dst_root: str):
        for en in entries:
            self._checkpoint(e)
            dst = transfer.dest_path(dst_root, en.rel)
            try:
                st = os.lstat(dst)
            except FileNotFoundError:
                raise _ExecFailed("VerificationFailed", f"{en.rel} is missing at the destination") from None
            ok = ((en.kind == "dir" and stat.S_ISDIR(st.st_mode))
                  or (en.kind == "symlink" and stat.S_ISLNK(st.st_mode))
                  or (en.kind == "file" and stat.S_ISREG(st.st_mode) and st.st_size == en.size))
            if not ok:
                raise _ExecFailed("VerificationFailed",
                                  f"{en.rel} differs between source and destination")
            self._count(e, en, "Verified")

    # ----------------------------------------------------------------- control
    def dump(self) -> dict:
        with self.lock:
            return {
                "region": self.region,
                "config": {"phase_delay": self.phase_delay,
                           "offline_error_delay": self.offline_error_delay,
                           "task_create_delay": self.task_create_delay,
                           "item_quota": self.item_quota,
                           "echo_execution_filters": self.echo_execution_filters,
                           "s3_root": self.s3_root,
                           "exports": [{"host": host, "export": export, "local": local}
                                       for host, export, local in self.exports],
                           "throttle_fraction": self.throttle_fraction},
                "agents": [{"arn": a.arn, "id": a.id, "name": a.name, "status": a.status,
                            "mode": a.mode, "bytes_per_second": a.bytes_per_second,
                            "offline_since": a.offline_since, "last_connection": a.last_connection}
                           for a in sorted(self.agents.values(), key=lambda a: a.arn)],
                "locations": [{"arn": loc.arn, "type": loc.type, "uri": loc.uri,
                               "subdirectory": loc.subdirectory, "hostname": loc.hostname,
                               "bucket": loc.bucket, "agents": list(loc.agents),
                               "created": loc.created}
                              for loc in sorted(self.locations.values(), key=lambda loc: loc.arn)],
                "tasks": [{"arn": t.arn, "name": t.name, "status": self._task_status(t),
                           "mode": t.task_mode, "error": list(t.error) if t.error else None,
                           "source": t.source, "destination": t.dest,
                           "includes": t.includes, "excludes": t.excludes,
                           "options": t.options, "current_execution": t.current_exec}
                          for t in sorted(self.tasks.values(), key=lambda t: t.arn)],
                "executions": [{"arn": e.arn, "task": e.task_arn, "seq": e.seq,
                                "status": e.status, "agent": e.agent_arn, "mode": e.task_mode,
                                "includes": e.includes, "excludes": e.excludes,
                                "options": e.options, "start_time": e.start_time,
                                "launch_time": e.launch_time, "end_time": e.end_time,
                                "counters": dict(e.counters), "result": dict(e.result),
                                "source_dir": e.source_dir, "dest_dir": e.dest_dir}
                               for e in sorted(self.executions.values(), key=lambda e: e.seq)],
                "writes": dict(sorted(self.writes.items())),
                "selections": dict(sorted(self.selections.items())),
                "tags": {k: v for k, v in self.tags.items() if v},
                "calls": dict(self.calls),
                "throttled": dict(self.throttled),
            }

    def stop(self, timeout=5.0):
        with self.lock:
            self.stopping = True
            self.cond.notify_all()
            threads = [e.thread for e in self.executions.values() if e.thread is not None]
        deadline = time.time() + timeout
        for th in threads:
            th.join(max(0.0, deadline - time.time()))


def _cmp_key(k):
    return (0, k, "") if isinstance(k, (int, float)) else (1, 0, str(k))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
