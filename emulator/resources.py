"""What the emulator holds: agents, locations, tasks and executions as data, under one lock.

:class:`State` is the whole in-memory account: the four tables, the tags, the counters the
tests read (calls, writes, selections) and the settings the control API changes. It answers
questions about its data (a task's status, the local directory an NFS location mounts, a
dump for ``GET /_emulator/state``) and changes nothing by itself: the request handlers
(``handlers``) and the execution runner (``runner``) do, holding ``lock``.
"""

from __future__ import annotations

import os
import posixpath
import random
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field

from . import taskmode
from .filters import DEFAULT_READING, Reading

ACCOUNT = "111122223333"
TERMINAL = ("SUCCESS", "ERROR")
OCCUPYING = ("LAUNCHING", "PREPARING", "TRANSFERRING", "VERIFYING", "CANCELLING")
"""Execution statuses that hold the agent (and make the task RUNNING)."""
BASIC_ITEM_QUOTA = 50_000_000


class ApiError(Exception):
    """An error the API answers with: its __type, message and HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def invalid(message: str) -> ApiError:
    return ApiError("InvalidRequestException", message)


def hex17() -> str:
    """The 17 hex digits DataSync puts in its resource ids."""
    return uuid.uuid4().hex[:17]


class ExecFailed(Exception):
    """An execution, or a task's creation, fails with this ErrorCode and ErrorDetail."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass
class Fault:
    """An answer to lose on purpose (``POST /_emulator/faults``): as HTTP 500 or a dropped
    connection, ``after`` carrying the call out, ``before``, or ``late``: carried out ``delay``
    seconds after the answer was lost (a request still on its way when its sender gave up,
    or a change the listings show only later), for ``times`` more calls (-1: all)."""

    fault: str
    times: int
    when: str
    delay: float = 0.0


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
    """The Includes DescribeTaskExecution echoes: the execution's own, else the task's at start."""
    excludes: list
    start_time: float
    task_mode: str = "BASIC"
    own_includes: list | None = None
    """The Includes StartTaskExecution gave (None: none), which ``merge`` adds to the task's."""
    own_excludes: list | None = None
    used_includes: list | None = None
    """The filters the run selected by, fixed when LAUNCHING ends (None until then)."""
    used_excludes: list | None = None
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


def norm_nfs_subdir(sub: str) -> str:
    """An NFS export path as the emulator keys it: absolute, normalised, never climbing out."""
    n = posixpath.normpath("/" + sub.strip())
    if n.startswith("//"):
        n = "/" + n.lstrip("/")
    if "/../" in n + "/" or n == "/..":
        raise invalid(f"Subdirectory {sub!r} is invalid")
    return n


class State:
    """The emulator's resources, counters and settings; see the module's docstring."""

    def __init__(self, region="us-east-1", agents=3, exports=None, s3_root=".",
                 phase_delay=0.05, offline_error_delay=1.0, enhanced_agents=0,
                 task_create_delay=0.1, item_quota=BASIC_ITEM_QUOTA, reading: Reading = DEFAULT_READING,
                 launch_delay=0.0, file_delay=0.0, execution_filters="replace",
                 agent_bytes_per_second: list[int] | None = None):
        self.region = region
        self.reading = reading
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.phase_delay = float(phase_delay)
        self.offline_error_delay = float(offline_error_delay)
        self.task_create_delay = float(task_create_delay)
        self.item_quota = int(item_quota)
        self.launch_delay = float(launch_delay)
        self.file_delay = float(file_delay)
        self.execution_filters = execution_filters
        self.echo_execution_filters = True
        self.empty_filter_list_clears = True
        self.s3_root = os.path.abspath(s3_root)
        # exports: list of (host, export path, local dir)
        self.exports = []
        for spec, local in (exports or {}).items():
            host, _, path = spec.partition(":")
            if not host or not path:
                raise ValueError(f"bad export {spec!r}: want HOST:/EXPORT")
            self.exports.append((host, norm_nfs_subdir(path), os.path.abspath(local)))
        self.agents: dict[str, Agent] = {}
        self.locations: dict[str, Location] = {}
        self.tasks: dict[str, Task] = {}
        self.executions: dict[str, Execution] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.s3_locations: dict[tuple[str, str], str] = {}
        """(bucket, subdirectory) -> storage class of every S3 location created, deleted ones too
        (their copies stay): the S3 side (``s3store``) presents their directories as no object."""
        self.writes: dict[str, int] = defaultdict(int)
        # how many successful prepares selected each file or link, written or not: a test's
        # evidence that two tasks' filters overlap even where CHANGED skips the second copy
        self.selections: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)
        self.throttled: dict[str, int] = defaultdict(int)
        self.faulted: dict[str, int] = defaultdict(int)
        self.faults: dict[str, Fault] = {}
        """By operation: the answers still to lose."""
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
        for agent, rate in zip(self.agents.values(), agent_bytes_per_second or [], strict=False):
            agent.bytes_per_second = rate or None

    def arn(self, kind: str, prefix: str) -> str:
        """A new ARN for a resource of this kind, in this account and region."""
        return f"arn:aws:datasync:{self.region}:{ACCOUNT}:{kind}/{prefix}-{hex17()}"

    def get(self, table: dict, arn: str, what: str):
        """The resource with this ARN, or the InvalidRequestException DataSync answers."""
        obj = table.get(arn)
        if obj is None:
            raise invalid(f"Unable to find {what} with ARN {arn}")
        return obj

    def agent_by_ref(self, ref: str) -> Agent:
        """The agent a control call names by ARN, id, name or 1-based index (KeyError if none)."""
        with self.lock:
            for a in self.agents.values():
                if ref in (a.arn, a.id, a.name, str(a.index)):
                    return a
        raise KeyError(ref)

    def task_agents(self, t: Task) -> list[str]:
        """The agents of the task's source location that have the task's mode."""
        src = self.locations.get(t.source)
        if src is None:
            return []
        return taskmode.usable_agents(t.task_mode, [(a, self.agents[a].mode) for a in src.agents if a in self.agents])

    def task_status(self, t: Task) -> str:
        """The task's Status, derived from its creation, its agents and its executions."""
        if time.time() < t.ready_at:
            return "CREATING"
        if t.error:
            return "UNAVAILABLE"
        if any(self.agents[a].status == "OFFLINE" for a in self.task_agents(t)):
            return "UNAVAILABLE"
        statuses = [e.status for e in self.executions.values()
                    if e.task_arn == t.arn and e.status not in TERMINAL]
        if any(s in OCCUPYING for s in statuses):
            return "RUNNING"
        if statuses:
            return "QUEUED"
        return "AVAILABLE"

    def export_dir(self, src: Location) -> str:
        """The local directory an NFS location mounts; NfsMountFailed if it mounts nothing."""
        best = None
        for host, exp, local in self.exports:
            if host != src.hostname:
                continue
            if src.subdirectory == exp or src.subdirectory.startswith(exp.rstrip("/") + "/"):
                if best is None or len(exp) > len(best[0]):
                    best = (exp, local)
        if best is None:
            raise ExecFailed("NfsMountFailed",
                             f"mount.nfs: access denied by server while mounting "
                             f"{src.hostname}:{src.subdirectory} (no emulator export matches)")
        exp, local = best
        rest = src.subdirectory[len(exp):].strip("/")
        src_dir = os.path.join(local, *rest.split("/")) if rest else local
        if not os.path.isdir(src_dir):
            raise ExecFailed("NfsMountFailed",
                             f"mount.nfs: mounting {src.hostname}:{src.subdirectory} failed, "
                             f"reason given by server: No such file or directory")
        return src_dir

    def dump(self) -> dict:
        """Everything, as JSON-ready data, for ``GET /_emulator/state``."""
        with self.lock:
            return {
                "region": self.region,
                "config": {"phase_delay": self.phase_delay,
                           "offline_error_delay": self.offline_error_delay,
                           "task_create_delay": self.task_create_delay,
                           "item_quota": self.item_quota,
                           "echo_execution_filters": self.echo_execution_filters,
                           "empty_filter_list_clears": self.empty_filter_list_clears,
                           "launch_delay": self.launch_delay, "file_delay": self.file_delay,
                           "execution_filters": self.execution_filters,
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
                "tasks": [{"arn": t.arn, "name": t.name, "status": self.task_status(t),
                           "mode": t.task_mode, "error": list(t.error) if t.error else None,
                           "source": t.source, "destination": t.dest,
                           "includes": t.includes, "excludes": t.excludes,
                           "options": t.options, "current_execution": t.current_exec}
                          for t in sorted(self.tasks.values(), key=lambda t: t.arn)],
                "executions": [{"arn": e.arn, "task": e.task_arn, "seq": e.seq,
                                "status": e.status, "agent": e.agent_arn, "mode": e.task_mode,
                                "includes": e.includes, "excludes": e.excludes,
                                "used_includes": e.used_includes, "used_excludes": e.used_excludes,
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
                "faulted": dict(self.faulted),
                "faults": self.fault_list(),
            }

    def fault_list(self) -> dict[str, dict]:
        """The faults still set, by operation, as ``GET /_emulator/faults`` lists them (hold ``lock``)."""
        return {op: {k: v for k, v in asdict(f).items() if k != "delay" or f.when == "late"}
                for op, f in sorted(self.faults.items())}
