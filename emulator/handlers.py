"""Request handling: every DataSync operation the emulator serves, checked as DataSync
checks it, over the resources in :class:`~emulator.resources.State`.

``OPERATIONS`` maps an operation's name (``X-Amz-Target: FmrsService.<name>``) to its
handler, which takes the state and the request's parameters (already validated against
botocore's model by the server) and returns the response, or raises
:class:`~emulator.resources.ApiError`. Each holds ``st.lock`` for its whole run; starting
and cancelling executions hand over to :mod:`emulator.runner`. ``set_agent`` is the
control API's one change that needs the runner too.
"""

from __future__ import annotations

import base64
import copy
import datetime as _dt
import json
import posixpath
import time
from collections.abc import Callable

from . import runner, taskmode
from .filters import FilterError, FilterSet, validate_includes
from .resources import TERMINAL, Agent, ExecFailed, Execution, Location, State, Task, hex17, invalid, norm_nfs_subdir

MAX_QUEUED_PER_TASK = 50
MAX_TASKS = 100
MAX_TAGS = 50
DEFAULT_PAGE = 100

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


# ------------------------------------------------------ parameters and listings
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
        times = [_parse_time(v) for v in values]
        cmp = {
            "Equals": lambda a: any(a == v for v in times),
            "In": lambda a: any(a == v for v in times),
            "NotEquals": lambda a: all(a != v for v in times),
            "LessThan": lambda a: all(a < v for v in times),
            "LessThanOrEqual": lambda a: all(a <= v for v in times),
            "GreaterThan": lambda a: all(a > v for v in times),
            "GreaterThanOrEqual": lambda a: all(a >= v for v in times),
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


def _cmp_key(k):
    return (0, k, "") if isinstance(k, (int, float)) else (1, 0, str(k))


def _page(items: list, params: dict, key):
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


# ----------------------------------------------------------------------- agents
def op_ListAgents(st: State, p: dict) -> dict:
    with st.lock:
        items = sorted(st.agents.values(), key=lambda a: a.arn)
        page, nxt = _page(items, p, lambda a: a.arn)
        out = {"Agents": [{"AgentArn": a.arn, "Name": a.name, "Status": a.status,
                           "Platform": {"Version": "2.0.0-emulated"}} for a in page]}
        if nxt:
            out["NextToken"] = nxt
        return out


def op_DescribeAgent(st: State, p: dict) -> dict:
    with st.lock:
        a = st.get(st.agents, p["AgentArn"], "agent")
        last = time.time() if a.status == "ONLINE" else a.last_connection
        return {"AgentArn": a.arn, "Name": a.name, "Status": a.status,
                "LastConnectionTime": last, "CreationTime": a.created,
                "EndpointType": "PUBLIC", "Platform": {"Version": "2.0.0-emulated"}}


def set_agent(st: State, agent: Agent, status: str | None = None, bytes_per_second=...,
              last_contact_ago: float | None = None) -> None:
    """The control API's change to an agent: its status, its bandwidth (``...``: unchanged;
    0 or None: unlimited), or when it last spoke; then launch what that frees.

    ``last_contact_ago`` backdates the LastConnectionTime an OFFLINE agent reports (real
    agents are marked OFFLINE minutes after their last contact); running executions still
    get ``offline_error_delay`` from now."""
    with st.lock:
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
        runner.schedule_locked(st)
        st.cond.notify_all()


# -------------------------------------------------------------------- locations
def _check_agents(st: State, arns):
    for a in arns:
        st.get(st.agents, a, "agent")


def _new_location_tags(st: State, arn, p):
    st.tags[arn] = {t["Key"]: t.get("Value", "") for t in p.get("Tags") or []}
    if len(st.tags[arn]) > MAX_TAGS:
        raise invalid(f"Too many tags: at most {MAX_TAGS} per resource")


def op_CreateLocationNfs(st: State, p: dict) -> dict:
    with st.lock:
        agents = list(p["OnPremConfig"]["AgentArns"])
        _check_agents(st, agents)
        arn = st.arn("location", "loc")
        loc = Location(arn, "NFS", time.time(), norm_nfs_subdir(p["Subdirectory"]),
                       hostname=p["ServerHostname"], agents=agents,
                       mount_options=dict(p.get("MountOptions") or {"Version": "AUTOMATIC"}))
        loc.mount_options.setdefault("Version", "AUTOMATIC")
        _new_location_tags(st, arn, p)
        st.locations[arn] = loc
        return {"LocationArn": arn}


def op_DescribeLocationNfs(st: State, p: dict) -> dict:
    with st.lock:
        loc = st.get(st.locations, p["LocationArn"], "location")
        if loc.type != "NFS":
            raise invalid(f"Location {loc.arn} is not an NFS location")
        return {"LocationArn": loc.arn, "LocationUri": loc.uri,
                "OnPremConfig": {"AgentArns": list(loc.agents)},
                "MountOptions": dict(loc.mount_options), "CreationTime": loc.created}


def op_UpdateLocationNfs(st: State, p: dict) -> dict:
    with st.lock:
        loc = st.get(st.locations, p["LocationArn"], "location")
        if loc.type != "NFS":
            raise invalid(f"Location {loc.arn} is not an NFS location")
        if "Subdirectory" in p:
            loc.subdirectory = norm_nfs_subdir(p["Subdirectory"])
        if "ServerHostname" in p:
            loc.hostname = p["ServerHostname"]
        if "OnPremConfig" in p:
            agents = list(p["OnPremConfig"]["AgentArns"])
            _check_agents(st, agents)
            loc.agents = agents
        if "MountOptions" in p:
            loc.mount_options = dict(p["MountOptions"])
            loc.mount_options.setdefault("Version", "AUTOMATIC")
        return {}


def op_CreateLocationS3(st: State, p: dict) -> dict:
    with st.lock:
        agents = list(p.get("AgentArns") or [])
        _check_agents(st, agents)
        bucket = _bucket_from_arn(p["S3BucketArn"])
        if bucket in (".", "..") or not bucket.strip("."):
            raise invalid(f"Invalid bucket name {bucket!r} in S3BucketArn")
        arn = st.arn("location", "loc")
        loc = Location(arn, "S3", time.time(), _norm_s3_subdir(p.get("Subdirectory", "")),
                       agents=agents, bucket_arn=p["S3BucketArn"],
                       bucket=bucket,
                       storage_class=p.get("S3StorageClass", "STANDARD"),
                       s3_config=dict(p["S3Config"]))
        _new_location_tags(st, arn, p)
        st.locations[arn] = loc
        st.s3_locations[(bucket, loc.subdirectory)] = loc.storage_class
        return {"LocationArn": arn}


def op_DescribeLocationS3(st: State, p: dict) -> dict:
    with st.lock:
        loc = st.get(st.locations, p["LocationArn"], "location")
        if loc.type != "S3":
            raise invalid(f"Location {loc.arn} is not an S3 location")
        out = {"LocationArn": loc.arn, "LocationUri": loc.uri,
               "S3StorageClass": loc.storage_class, "S3Config": dict(loc.s3_config),
               "CreationTime": loc.created}
        if loc.agents:
            out["AgentArns"] = list(loc.agents)
        return out


def op_ListLocations(st: State, p: dict) -> dict:
    with st.lock:
        items = sorted(st.locations.values(), key=lambda loc: loc.arn)
        for f in p.get("Filters") or []:
            name, op, vals = f["Name"], f["Operator"], f["Values"]
            if name == "LocationUri":
                items = [loc for loc in items if _match_filter(name, op, vals, loc.uri, "str")]
            elif name == "LocationType":
                items = [loc for loc in items if _match_filter(name, op, vals, loc.type, "istr")]
            elif name == "CreationTime":
                items = [loc for loc in items if _match_filter(name, op, vals, loc.created, "time")]
        page, nxt = _page(items, p, lambda loc: loc.arn)
        out = {"Locations": [{"LocationArn": loc.arn, "LocationUri": loc.uri} for loc in page]}
        if nxt:
            out["NextToken"] = nxt
        return out


def op_DeleteLocation(st: State, p: dict) -> dict:
    with st.lock:
        loc = st.get(st.locations, p["LocationArn"], "location")
        users = [t.arn for t in st.tasks.values() if loc.arn in (t.source, t.dest)]
        if users:
            raise invalid(f"Location {loc.arn} is in use by task(s): {', '.join(sorted(users))}")
        del st.locations[loc.arn]
        st.tags.pop(loc.arn, None)
        return {}


# ------------------------------------------------------------------------ tasks
def _check_options(opts: dict):
    if opts.get("PreserveDeletedFiles") == "REMOVE" and opts.get("TransferMode") == "ALL":
        raise invalid("PreserveDeletedFiles=REMOVE cannot be used with TransferMode=ALL")


def _check_filters(p):
    try:
        validate_includes(p.get("Includes"))
        FilterSet.from_rules(p.get("Includes"), p.get("Excludes"))
    except FilterError as e:
        raise invalid(str(e)) from e


def _check_mode(st: State, mode: str, src: Location, dst: Location, p: dict):
    problem = (taskmode.option_problem(mode, p.get("Options") or {}, p.get("CloudWatchLogGroupArn"))
               or taskmode.pair_problem(mode, src.type, dst.type))
    if problem:
        raise invalid(problem)
    if src.type == "NFS" and not taskmode.usable_agents(mode, [(a, st.agents[a].mode) for a in src.agents]):
        raise invalid(f"Location {src.arn} has no {mode.title()} mode agent: a {mode} task uses only "
                      f"agents of its own mode")


def op_CreateTask(st: State, p: dict) -> dict:
    with st.lock:
        src = st.get(st.locations, p["SourceLocationArn"], "location")
        dst = st.get(st.locations, p["DestinationLocationArn"], "location")
        _check_filters(p)
        mode = p.get("TaskMode", "BASIC")
        _check_mode(st, mode, src, dst, p)
        opts = dict(DEFAULT_OPTIONS)
        if mode == "ENHANCED":
            opts["VerifyMode"] = "ONLY_FILES_TRANSFERRED"
        opts.update(p.get("Options") or {})
        _check_options(opts)
        if len(st.tasks) >= MAX_TASKS:
            raise invalid(f"Task quota exceeded: at most {MAX_TASKS} tasks")
        error = None
        if src.type == "NFS":  # DataSync mounts the export while the task is CREATING
            try:
                st.export_dir(src)
            except ExecFailed as exc:
                error = (exc.code, exc.detail)
        now = time.time()
        arn = st.arn("task", "task")
        t = Task(arn, p["SourceLocationArn"], p["DestinationLocationArn"], now, opts,
                 name=p.get("Name"), includes=copy.deepcopy(p.get("Includes") or []),
                 excludes=copy.deepcopy(p.get("Excludes") or []),
                 log_group=p.get("CloudWatchLogGroupArn"), schedule=p.get("Schedule"),
                 task_mode=mode, manifest=p.get("ManifestConfig"),
                 report_config=p.get("TaskReportConfig"), ready_at=now + st.task_create_delay,
                 error=error)
        st.tags[arn] = {tg["Key"]: tg.get("Value", "") for tg in p.get("Tags") or []}
        st.tasks[arn] = t
        return {"TaskArn": arn}


def op_DescribeTask(st: State, p: dict) -> dict:
    with st.lock:
        t = st.get(st.tasks, p["TaskArn"], "task")
        status = st.task_status(t)
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


def op_UpdateTask(st: State, p: dict) -> dict:
    with st.lock:
        t = st.get(st.tasks, p["TaskArn"], "task")
        _check_filters(p)
        problem = taskmode.option_problem(t.task_mode, p.get("Options") or {}, p.get("CloudWatchLogGroupArn"))
        if problem:
            raise invalid(problem)
        opts = dict(t.options)
        opts.update(p.get("Options") or {})
        _check_options(opts)
        t.options = opts
        # Whether an empty list clears a task's filter is not documented: a setting picks
        for key, attr in (("Includes", "includes"), ("Excludes", "excludes")):
            if key in p and (p[key] or st.empty_filter_list_clears):
                setattr(t, attr, copy.deepcopy(p[key]))
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


def op_ListTasks(st: State, p: dict) -> dict:
    with st.lock:
        items = sorted(st.tasks.values(), key=lambda t: t.arn)
        for f in p.get("Filters") or []:
            name, op, vals = f["Name"], f["Operator"], f["Values"]
            if name == "LocationId":
                items = [t for t in items
                         if _match_filter(name, op, vals, {t.source, t.dest}, "arnset")]
            elif name == "CreationTime":
                items = [t for t in items if _match_filter(name, op, vals, t.created, "time")]
        page, nxt = _page(items, p, lambda t: t.arn)
        tasks = []
        for t in page:
            e = {"TaskArn": t.arn, "Status": st.task_status(t), "TaskMode": t.task_mode}
            if t.name:
                e["Name"] = t.name
            tasks.append(e)
        out = {"Tasks": tasks}
        if nxt:
            out["NextToken"] = nxt
        return out


def op_DeleteTask(st: State, p: dict) -> dict:
    with st.lock:
        t = st.get(st.tasks, p["TaskArn"], "task")
        active = [e.arn for e in st.executions.values()
                  if e.task_arn == t.arn and e.status not in TERMINAL]
        if active:
            raise invalid(f"Task {t.arn} has executions that have not finished: "
                          f"{', '.join(active)}; cancel them first")
        del st.tasks[t.arn]
        st.tags.pop(t.arn, None)
        for e in [e for e in st.executions.values() if e.task_arn == t.arn]:
            del st.executions[e.arn]
            st.tags.pop(e.arn, None)
        return {}


# ------------------------------------------------------------------- executions
def op_StartTaskExecution(st: State, p: dict) -> dict:
    with st.lock:
        t = st.get(st.tasks, p["TaskArn"], "task")
        status = st.task_status(t)
        if status == "CREATING":
            raise invalid(f"Task {t.arn} is still being created (CREATING); start it once it is AVAILABLE")
        if t.error:
            raise invalid(f"Task {t.arn} is UNAVAILABLE: {t.error[0]}: {t.error[1]}")
        _check_filters(p)
        problem = taskmode.option_problem(t.task_mode, p.get("OverrideOptions") or {})
        if problem:
            raise invalid(problem)
        opts = dict(t.options)
        opts.update(p.get("OverrideOptions") or {})
        _check_options(opts)
        queued = [e for e in st.executions.values()
                  if e.task_arn == t.arn and e.status == "QUEUED"]
        if len(queued) >= MAX_QUEUED_PER_TASK:
            raise invalid(f"Task {t.arn} already has {MAX_QUEUED_PER_TASK} queued executions")
        agents = st.task_agents(t)
        agent = agents[0] if agents else None
        includes = p["Includes"] if "Includes" in p else t.includes
        excludes = p["Excludes"] if "Excludes" in p else t.excludes
        arn = f"{t.arn}/execution/exec-{hex17()}"
        st.seq += 1
        ex = Execution(arn, t.arn, st.seq, agent, opts, copy.deepcopy(includes),
                       copy.deepcopy(excludes), time.time(), task_mode=t.task_mode,
                       own_includes=copy.deepcopy(p.get("Includes")), own_excludes=copy.deepcopy(p.get("Excludes")))
        if t.task_mode == "ENHANCED":  # Files* count files only; directories count here
            ex.counters.update(EstimatedFoldersToTransfer=0, FoldersTransferred=0, FoldersSkipped=0,
                               FoldersVerified=0)
        st.executions[arn] = ex
        st.tags[arn] = {tg["Key"]: tg.get("Value", "") for tg in p.get("Tags") or []}
        t.current_exec = arn
        runner.schedule_locked(st)
        return {"TaskExecutionArn": arn}


def _exec_view(st: State, e: Execution) -> dict:
    out = {"TaskExecutionArn": e.arn, "Status": e.status, "Options": dict(e.options),
           "StartTime": e.start_time, "TaskMode": e.task_mode, "Result": dict(e.result)}
    if e.includes and st.echo_execution_filters:
        out["Includes"] = copy.deepcopy(e.includes)
    if e.excludes and st.echo_execution_filters:
        out["Excludes"] = copy.deepcopy(e.excludes)
    out.update(e.counters)
    if e.launch_time is not None:
        out["LaunchTime"] = e.launch_time
    if e.end_time is not None:
        out["EndTime"] = e.end_time
    return out


def op_DescribeTaskExecution(st: State, p: dict) -> dict:
    with st.lock:
        e = st.get(st.executions, p["TaskExecutionArn"], "task execution")
        return _exec_view(st, e)


def op_ListTaskExecutions(st: State, p: dict) -> dict:
    with st.lock:
        items = sorted(st.executions.values(), key=lambda e: e.seq)
        if p.get("TaskArn"):
            st.get(st.tasks, p["TaskArn"], "task")
            items = [e for e in items if e.task_arn == p["TaskArn"]]
        page, nxt = _page(items, p, lambda e: e.seq)
        out = {"TaskExecutions": [{"TaskExecutionArn": e.arn, "Status": e.status,
                                   "TaskMode": e.task_mode} for e in page]}
        if nxt:
            out["NextToken"] = nxt
        return out


def op_CancelTaskExecution(st: State, p: dict) -> dict:
    with st.lock:
        e = st.get(st.executions, p["TaskExecutionArn"], "task execution")
        if e.status in TERMINAL:
            raise invalid(f"Task execution {e.arn} has already finished with status {e.status}")
        if e.status == "CANCELLING":
            return {}
        e.cancel_requested = True
        if e.status == "QUEUED":  # never launched: drop it from the queue
            runner.finish_locked(st, e, "ERROR", "OperationAborted",
                                 "Task execution was cancelled before it launched")
        else:
            e.status = "CANCELLING"
        runner.schedule_locked(st)
        st.cond.notify_all()
        return {}


# ------------------------------------------------------------------------- tags
def _taggable(st: State, arn: str):
    if arn not in st.tags:
        raise invalid(f"Unable to find resource with ARN {arn}")


def op_TagResource(st: State, p: dict) -> dict:
    with st.lock:
        _taggable(st, p["ResourceArn"])
        new = dict(st.tags[p["ResourceArn"]])
        for tg in p["Tags"]:
            new[tg["Key"]] = tg.get("Value", "")
        if len(new) > MAX_TAGS:
            raise invalid(f"Too many tags: at most {MAX_TAGS} per resource")
        st.tags[p["ResourceArn"]] = new
        return {}


def op_UntagResource(st: State, p: dict) -> dict:
    with st.lock:
        _taggable(st, p["ResourceArn"])
        for k in p["Keys"]:
            st.tags[p["ResourceArn"]].pop(k, None)
        return {}


def op_ListTagsForResource(st: State, p: dict) -> dict:
    with st.lock:
        _taggable(st, p["ResourceArn"])
        items = sorted(st.tags[p["ResourceArn"]].items())
        page, nxt = _page(items, p, lambda kv: kv[0])
        out = {"Tags": [{"Key": k, "Value": v} for k, v in page]}
        if nxt:
            out["NextToken"] = nxt
        return out


OPERATIONS: dict[str, Callable[[State, dict], dict]] = {
    "ListAgents": op_ListAgents,
    "DescribeAgent": op_DescribeAgent,
    "CreateLocationNfs": op_CreateLocationNfs,
    "DescribeLocationNfs": op_DescribeLocationNfs,
    "UpdateLocationNfs": op_UpdateLocationNfs,
    "CreateLocationS3": op_CreateLocationS3,
    "DescribeLocationS3": op_DescribeLocationS3,
    "ListLocations": op_ListLocations,
    "DeleteLocation": op_DeleteLocation,
    "CreateTask": op_CreateTask,
    "DescribeTask": op_DescribeTask,
    "UpdateTask": op_UpdateTask,
    "ListTasks": op_ListTasks,
    "DeleteTask": op_DeleteTask,
    "StartTaskExecution": op_StartTaskExecution,
    "DescribeTaskExecution": op_DescribeTaskExecution,
    "ListTaskExecutions": op_ListTaskExecutions,
    "CancelTaskExecution": op_CancelTaskExecution,
    "TagResource": op_TagResource,
    "UntagResource": op_UntagResource,
    "ListTagsForResource": op_ListTagsForResource,
}
