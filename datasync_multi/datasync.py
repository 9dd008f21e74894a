"""The one place that speaks boto3: agents, locations, tasks and executions.

Everything here takes and returns plain values. Listing goes through boto3's
paginators; throttling and transient faults are absorbed by botocore's adaptive retry
mode, so no function here loops or sleeps on its own (``wait_until_ready`` polls on
purpose). Each function that calls DataSync names the operations it makes ("Calls:",
as the boto3 client's methods, e.g. ListAgents is ``client.list_agents``) and what it
raises: every one raises ``AWSError`` once botocore's retries are spent. DataSync's own
refusals arrive as InvalidRequestException, the one client error its model declares
(beside InternalException) for every operation.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Set
from typing import Any
from xml.etree import ElementTree

import boto3
import botocore.exceptions
import botocore.session
from botocore.config import Config

from .errors import AgentRefused, SetupError, UserError
from .records import Agent, Execution, NfsLocation, patterns, rules
from .statuses import AgentStatus, ExecutionStatus, TaskStatus

log = logging.getLogger(__name__)

TAG_KEY = "created-by"
SCHEDULER_TAG = {"Key": TAG_KEY, "Value": "datasync-multi-agent-scheduler"}
WATCHER_TAG = {"Key": TAG_KEY, "Value": "datasync-agent-ha"}

RETRIES = {"mode": "adaptive", "max_attempts": 10}

TASK_MODES = ("BASIC", "ENHANCED")
NFS_VERSIONS = ("AUTOMATIC", "NFS3", "NFS4_0", "NFS4_1")
ENHANCED_LOG_GROUP = "/aws/datasync"
"""Enhanced mode tasks log here and nowhere else."""
TASK_READY_TIMEOUT = 600.0
"""Seconds a new task may stay CREATING before the launch gives up on it."""

START_TAG = "datasync-multi-start"
"""The tag each start of a scope or chunk carries (its value: ``ledger.Run.start_tag``), so a
check that lost the answer, or a ledger put back from a copy, finds the execution and adopts it."""


class OutcomeUnknown(Exception):
    """A call that creates or starts something got no answer to trust (a 5xx, a throttle, a
    dropped connection): it may have taken effect. It is never repeated before looking."""


AWSError = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OutcomeUnknown)
"""What a DataSync call can raise once botocore's retries are spent."""

NOT_IDEMPOTENT = ("StartTaskExecution", "CreateTask", "CreateLocationNfs")
"""Calls that make something new each time they take effect: botocore must never repeat them."""
THROTTLING = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"})
UNKNOWN_OUTCOME_TRIES = 4
"""Attempts of a call that creates or starts something, each after looking whether the last took effect."""
UNKNOWN_OUTCOME_PAUSE = 1.0
"""Seconds before the first look (doubled each time): what a lost answer made has time to show."""
SETTLE_ENV = "DATASYNC_MULTI_SETTLE_SEC"
SETTLE_DEFAULT = 120.0
"""Seconds a call that makes something may still take effect, or stay out of the listings,
after its answer was lost: twice botocore's read timeout (60 s), a request still on its way
when its sender gave up. Nothing lost is made again before it is this old."""


def settling(since: float, now: float) -> bool:
    """Whether a start sent (or, never sent, decided) at ``since`` may still take effect at
    ``now`` (epoch seconds): while it may, nothing sends it again or gives its scope away."""
    return now - since < settle_seconds()


def settle_seconds() -> float:
    """SETTLE_DEFAULT, or the environment's DATASYNC_MULTI_SETTLE_SEC (the tests' emulator
    answers at once, so they wait seconds, not minutes)."""
    try:
        return max(float(os.environ.get(SETTLE_ENV, SETTLE_DEFAULT)), 0.0)
    except ValueError:
        return SETTLE_DEFAULT


def _no_blind_repeat(response=None, caught_exception=None, operation=None, **_) -> None:
    """botocore's needs-retry hook for the calls in NOT_IDEMPOTENT: where botocore would send
    the call again, raise OutcomeUnknown instead, so the caller looks first."""
    name = operation.name if operation is not None else "call"
    if caught_exception is not None:
        raise OutcomeUnknown(f"{name} got no answer ({caught_exception})")
    if response is None:
        return
    http, parsed = response
    code = (parsed or {}).get("Error", {}).get("Code", "")
    if http.status_code >= 500 or code in THROTTLING:
        raise OutcomeUnknown(f"{name} answered {code or 'an error'} (HTTP {http.status_code}): it may have "
                             "taken effect")


def _guarded(client):
    """The client, with botocore's retries of NOT_IDEMPOTENT calls replaced by OutcomeUnknown
    (registered once per client; reads keep botocore's retries)."""
    for op in NOT_IDEMPOTENT:
        client.meta.events.register(f"needs-retry.datasync.{op}", _no_blind_repeat,
                                    unique_id=f"datasync-multi-no-blind-repeat-{op}")
    return client


def once(what: str, make: Callable[[], Any], look: Callable[[], Any], defer: bool = False) -> tuple[Any, bool]:
    """Make something at most once: call ``make``; when its outcome is unknown, ``look`` for
    what it would have made, and adopt that. Only once nothing has shown for ``settle_seconds``
    since the lost call ended is it made again (up to UNKNOWN_OUTCOME_TRIES): a look can
    come before a late call takes effect. ``defer``: look once, and leave the rest to the
    caller's next check, whose record of the intent says how old it is (a check then holds
    no lock for minutes). Returns (the value, whether ``make`` answered it). Raises
    OutcomeUnknown when nothing was found: the caller's next check looks again."""
    for attempt in range(1, UNKNOWN_OUTCOME_TRIES + 1):
        try:
            return make(), True
        except OutcomeUnknown as exc:
            lost = time.monotonic()  # the request left no later than this (a wait before sending counts too)
            log.warning("%s: %s; looking whether it did (%d of %d)", what, exc, attempt, UNKNOWN_OUTCOME_TRIES)
            found = _look_until_settled(look, lost, defer)
            if found is not None:
                log.info("%s: it had taken effect; adopted", what)
                return found, False
            if defer or attempt == UNKNOWN_OUTCOME_TRIES:
                raise
    raise AssertionError("unreachable")


def _look_until_settled(look: Callable[[], Any], lost: float, once_only: bool) -> Any:
    """What ``look`` finds, looking after a pause and again (each pause twice as long) until
    something shows or the call lost at ``lost`` (monotonic) has settled; None if nothing did."""
    pause = UNKNOWN_OUTCOME_PAUSE
    while True:
        time.sleep(pause)
        found = look()
        left = lost + settle_seconds() - time.monotonic()
        if found is not None or once_only or left <= 0:
            return found
        pause = min(pause * 2, left)


def make_client(region: str | None = None, profile: str | None = None, endpoint_url: str | None = None):
    """A DataSync client on the standard credential chain, with adaptive retries (except for
    the calls that make something: see ``_guarded``).

    ``endpoint_url`` points it at the local emulator; boto3 also reads ``AWS_ENDPOINT_URL``.
    No credentials at all is the user's to fix, so it is a UserError (exit 2) before any call.

    Calls: nothing (reads the credential chain). Raises: UserError for no credentials, an
    unknown profile or no region.
    """
    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
        client = session.client("datasync", endpoint_url=endpoint_url,
                                config=Config(retries=RETRIES, user_agent_extra="datasync-multi-agent"))
        if session.get_credentials() is None:
            raise UserError("no AWS credentials found: run `aws configure`, set AWS_PROFILE (or --profile), "
                            "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run with an instance role")
        return _guarded(client)
    except botocore.exceptions.ProfileNotFound:
        raise UserError(f"AWS profile {profile!r} is not configured") from None
    except botocore.exceptions.NoRegionError:
        raise UserError("no AWS region: pass --region or set AWS_DEFAULT_REGION") from None


def make_s3_client(region: str | None = None, profile: str | None = None, endpoint_url: str | None = None,
                   connections: int = 10):
    """An S3 client for the audit, on the same credential chain and retries as DataSync's,
    keeping up to ``connections`` open (one for each thread that calls it at once). Where
    an endpoint is given (the local emulator; also ``AWS_ENDPOINT_URL``) it addresses
    buckets by path, as such endpoints serve them.

    Calls: nothing. Raises: UserError as :func:`make_client`."""
    custom = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
        if session.get_credentials() is None:
            raise UserError("no AWS credentials found: run `aws configure`, set AWS_PROFILE (or --profile), "
                            "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run with an instance role")
        client = session.client("s3", endpoint_url=endpoint_url,
                                config=Config(retries=RETRIES, user_agent_extra="datasync-multi-agent",
                                              max_pool_connections=connections,
                                              s3={"addressing_style": "path"} if custom else None))
        client.meta.events.register("before-parse.s3.ListObjectsV2", _listed_keys_and_sizes)
        return client
    except botocore.exceptions.ProfileNotFound:
        raise UserError(f"AWS profile {profile!r} is not configured") from None
    except botocore.exceptions.NoRegionError:
        raise UserError("no AWS region: pass --region or set AWS_DEFAULT_REGION") from None


def _listed_keys_and_sizes(response_dict: dict, customized_response_dict: dict, **_) -> None:
    """Read a ListObjectsV2 page's objects with ElementTree, keys and sizes only, and leave
    botocore the page without them: botocore's parser, shape by shape in Python, took most of
    the audit's CPU time (bench/README.md, question 11). Everything else of the page
    (continuation token, encoding type, errors) botocore parses as always, and its handlers
    decode the keys of ``Contents`` as they would have."""
    if response_dict["status_code"] != 200 or not response_dict["body"]:
        return
    page = ElementTree.fromstring(response_dict["body"])
    ns = page.tag[:page.tag.index("}") + 1] if page.tag.startswith("{") else ""
    listed = page.findall(ns + "Contents")
    customized_response_dict["Contents"] = [
        {"Key": obj.findtext(ns + "Key"), "Size": int(obj.findtext(ns + "Size", ""))} for obj in listed]
    for obj in listed:
        page.remove(obj)
    response_dict["body"] = ElementTree.tostring(page)


def s3_location(client, arn: str) -> tuple[str, str]:
    """(bucket, key prefix) of an S3 location: the prefix without a leading '/', ending in '/'
    unless empty. How DataSync joins the location's subdirectory and a file's path into a key
    is not documented (docs/datasync-facts.md §11): this is the plain reading.

    Calls: DescribeLocationS3. Raises: UserError when the location is not an S3 location."""
    try:
        uri = client.describe_location_s3(LocationArn=arn)["LocationUri"]
    except botocore.exceptions.ClientError as exc:
        if refused(exc):
            raise UserError(f"{arn} is not an S3 location of this account and region ({describe_error(exc)})") \
                from None
        raise
    if not uri.startswith("s3://"):
        raise UserError(f"{arn} is not an S3 location (its URI is {uri!r})")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    prefix = "/".join(p for p in prefix.split("/") if p)
    return bucket, prefix + "/" if prefix else ""


def list_objects(client, bucket: str, prefix: str):
    """Every object under ``prefix`` as {"Key", "Size"}, in S3's order (UTF-8 bytes), a page at a time. The next
    page is asked for while this one is read: the audit then waits on S3 only where it reads
    faster than S3 answers (on the emulator, a quarter of the run had been spent waiting).

    Calls: ListObjectsV2 (one per 1,000 keys)."""
    pages = iter(client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix))
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="s3-list") as pool:
        coming = pool.submit(next, pages, None)
        while (page := coming.result()) is not None:
            coming = pool.submit(next, pages, None)
            yield from page.get("Contents", ())


def object_metadata(client, bucket: str, key: str) -> dict[str, str]:
    """An object's user metadata (``x-amz-meta-*`` without the prefix).

    Calls: HeadObject."""
    return client.head_object(Bucket=bucket, Key=key).get("Metadata", {})


def describe_error(exc: BaseException) -> str:
    """One line for a failed call: the AWS error code and message, or botocore's text."""
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return str(exc)


@functools.cache
def model_pattern(shape: str) -> re.Pattern[str]:
    """The pattern botocore's DataSync model gives a string shape (AgentArn, NfsSubdirectory, ...)."""
    meta = botocore.session.get_session().get_service_model("datasync").shape_for(shape).metadata
    return re.compile(meta["pattern"].replace(r"\p{Zs}", r" \u00a0\u2000-\u200a\u202f\u205f\u3000"))


# --- agents ----------------------------------------------------------------------------


def list_agents(client) -> list[Agent]:
    """Every agent in the region with its status, in ARN order.

    Calls: ListAgents (paginated). Raises: AWSError.
    """
    return sorted((Agent(a["AgentArn"], a.get("Name", ""), a.get("Status", AgentStatus.UNKNOWN))
                   for page in client.get_paginator("list_agents").paginate()
                   for a in page.get("Agents", [])), key=lambda a: a.arn)


def describe_agent(client, arn: str) -> Agent:
    """An agent's status and last contact (LastConnectionTime).

    Calls: DescribeAgent. Raises: AWSError.
    """
    a = client.describe_agent(AgentArn=arn)
    last = a.get("LastConnectionTime")
    return Agent(a["AgentArn"], a.get("Name", ""), a.get("Status", AgentStatus.UNKNOWN),
                 last.timestamp() if last else None)


def describe_named_agent(client, arn: str) -> Agent:
    """An agent the user named (--agent_arns, --drain). DataSync refuses to describe an agent
    it does not know (InvalidRequestException): that is the user's ARN to fix.

    Calls: DescribeAgent. Raises: UserError for an unknown agent; AWSError for any other failure.
    """
    try:
        return describe_agent(client, arn)
    except botocore.exceptions.ClientError as exc:
        if refused(exc) and exc.response.get("Error", {}).get("Code") == "InvalidRequestException":
            raise UserError(f"agent {arn} is not in this account and region ({describe_error(exc)})") from None
        raise


# --- locations -------------------------------------------------------------------------


def location_exists(client, arn: str) -> bool:
    """Whether a location of this ARN exists in the account and region.

    Calls: ListLocations (paginated). Raises: AWSError.
    """
    return any(loc["LocationArn"] == arn for loc in _locations(client))


def _locations(client, filters: list[dict] | None = None) -> Iterator[dict]:
    """ListLocations' entries (paginated, optionally filtered)."""
    kwargs = {"Filters": filters} if filters else {}
    for page in client.get_paginator("list_locations").paginate(**kwargs):
        yield from page.get("Locations", [])


def nfs_uri_matches(uri: str, server: str, subdir: str) -> bool:
    """Whether a LocationUri names this server and export path (trailing '/' ignored:
    its exact form is UNCONFIRMED)."""
    if not uri.startswith("nfs://"):
        return False
    host, _, path = uri[len("nfs://"):].partition("/")
    return host == server and "/" + path.strip("/") == "/" + subdir.strip("/")


def find_nfs_location(client, agent_arn: str, server: str, subdir: str) -> dict | None:
    """An existing NFS location for exactly this agent, server and export path, described; or None.

    Calls: ListLocations (paginated, filtered by LocationUri), DescribeLocationNfs for each
    match. Raises: AWSError.
    """
    for loc in nfs_locations(client, server, subdir):
        desc = client.describe_location_nfs(LocationArn=loc["LocationArn"])
        if desc.get("OnPremConfig", {}).get("AgentArns") == [agent_arn]:
            return desc
    return None


def ensure_nfs_location(client, agent_arn: str, server: str, subdir: str, nfs_version: str = "AUTOMATIC",
                        tag: dict = SCHEDULER_TAG) -> tuple[str, bool]:
    """Reuse or create the NFS source location of one agent; returns (arn, created).

    A reused location that mounts another NFS version is updated, and the log says so: a
    location is never used with mount options other than those asked.

    Calls: ListLocations, DescribeLocationNfs (see ``find_nfs_location``), then
    UpdateLocationNfs or CreateLocationNfs (tagged). Raises: AgentRefused when DataSync
    refuses the new location; AWSError.
    """
    found = find_nfs_location(client, agent_arn, server, subdir)
    if found:
        arn = found["LocationArn"]
        current = (found.get("MountOptions") or {}).get("Version", "AUTOMATIC")
        if current != nfs_version:
            client.update_location_nfs(LocationArn=arn, MountOptions={"Version": nfs_version})
            log.warning("location %s mounted with NFS version %s; updated to %s", arn, current, nfs_version)
        return arn, False
    def found_now() -> str | None:
        desc = find_nfs_location(client, agent_arn, server, subdir)
        return desc["LocationArn"] if desc else None

    try:
        return once(f"creating the location of {agent_arn}", lambda: _guarded(client).create_location_nfs(
            ServerHostname=server, Subdirectory=subdir, OnPremConfig={"AgentArns": [agent_arn]},
            MountOptions={"Version": nfs_version}, Tags=[tag])["LocationArn"], found_now)
    except botocore.exceptions.ClientError as exc:
        if not refused(exc):
            raise
        raise AgentRefused(f"DataSync refused a source location on agent {agent_arn} for {server}:{subdir}: "
                           f"{describe_error(exc)}") from None


def nfs_locations(client, server: str, subdir: str) -> list[dict]:
    """Every NFS location (LocationArn, LocationUri) for this server and export path, whatever its agents.

    Calls: ListLocations (paginated, filtered by LocationUri). Raises: AWSError.
    """
    filters = [{"Name": "LocationUri", "Values": [f"nfs://{server}/"], "Operator": "BeginsWith"}]
    return [loc for loc in _locations(client, filters) if nfs_uri_matches(loc.get("LocationUri", ""), server, subdir)]


def delete_location(client, arn: str) -> None:
    """Delete a location. One already gone counts as deleted (an answer lost on the way, and
    botocore's retry refused): a refusal is looked into before it is raised.

    Calls: DeleteLocation; after a refusal, ListLocations. Raises: AWSError (a refusal of a
    location that still exists).
    """
    try:
        client.delete_location(LocationArn=arn)
    except botocore.exceptions.ClientError as exc:
        if not refused(exc) or location_exists(client, arn):
            raise
        log.info("location %s was already gone", arn)


def describe_nfs_location(client, arn: str) -> NfsLocation:
    """An NFS location's agents, server, export path (read from its LocationUri) and NFS version.

    Calls: DescribeLocationNfs. Raises: AWSError.
    """
    d = client.describe_location_nfs(LocationArn=arn)
    host, _, path = d.get("LocationUri", "nfs://").removeprefix("nfs://").partition("/")
    return NfsLocation(tuple(d.get("OnPremConfig", {}).get("AgentArns", [])), host, "/" + path.strip("/"),
                       (d.get("MountOptions") or {}).get("Version", "AUTOMATIC"))


# --- tasks and executions ----------------------------------------------------------------


def task_options(verify_mode: str = "ONLY_FILES_TRANSFERRED", bytes_per_second: int = -1,
                 logging_on: bool = False, task_mode: str = "BASIC") -> dict:
    """Options safe for several tasks writing to one destination.

    PRESERVE keeps files deleted at the source: with REMOVE, a task could delete files
    another task wrote (UNCONFIRMED how REMOVE scopes itself under filters). Verification
    covers only what this task moved, and only changed data is sent. LogLevel is always
    set: DataSync's default is OFF, so a log group alone would receive nothing. Enhanced
    mode takes no bandwidth limit, so none is sent (docs/datasync-facts.md §5).
    """
    options = {"VerifyMode": verify_mode, "TransferMode": "CHANGED", "PreserveDeletedFiles": "PRESERVE",
               "OverwriteMode": "ALWAYS", "TaskQueueing": "ENABLED", "BytesPerSecond": bytes_per_second,
               "LogLevel": "BASIC" if logging_on else "OFF"}
    return for_mode(options, task_mode)


def for_mode(options: dict, task_mode: str) -> dict:
    """Options without what a task of this mode does not take (Enhanced: BytesPerSecond)."""
    return {k: v for k, v in options.items() if not (task_mode == "ENHANCED" and k == "BytesPerSecond")}


def list_tasks(client) -> list[dict]:
    """Every task in the region: TaskArn, Name and Status.

    Calls: ListTasks (paginated). Raises: AWSError.
    """
    return [t for page in client.get_paginator("list_tasks").paginate() for t in page.get("Tasks", [])]


def find_task(client, source_arn: str, dest_arn: str, name: str) -> dict | None:
    """The task named ``name`` from this source to this destination, described; or None.

    Calls: ListTasks (paginated, filtered by LocationId), DescribeTask for each task of that
    name. Raises: AWSError.
    """
    filters = [{"Name": "LocationId", "Values": [source_arn], "Operator": "Equals"}]
    for page in client.get_paginator("list_tasks").paginate(Filters=filters):
        for entry in page.get("Tasks", []):
            if entry.get("Name") != name:
                continue
            desc = client.describe_task(TaskArn=entry["TaskArn"])
            if desc.get("SourceLocationArn") == source_arn and desc.get("DestinationLocationArn") == dest_arn:
                return desc
    return None


def _refuse_leftover_excludes(client, task_arn: str, name: str) -> None:
    """A task reused from an earlier plan carried an exclude filter, and whether UpdateTask
    with an empty list clears it is not documented: look (DescribeTask), and refuse a task
    that still has one, since it would leave out part of the scope. Raises SetupError."""
    left = client.describe_task(TaskArn=task_arn).get("Excludes")
    if left:
        raise SetupError(f"task {name} ({task_arn}) still carries the exclude filter {left[0].get('Value')!r} of "
                         "an earlier plan after UpdateTask asked to clear it: delete the task, or pass another "
                         "--task_name, and rerun")


def ensure_task(client, *, source_arn: str, dest_arn: str, name: str, includes: Sequence[str],
                excludes: Sequence[str], options: dict, cloudwatch_arn: str | None,
                task_mode: str = "BASIC", tag: dict = SCHEDULER_TAG) -> tuple[dict, bool]:
    """Reuse (with its filters and options brought up to date) or create a task
    (CreateTask, UpdateTask); it may still be CREATING: see ``wait_until_ready``. A task
    found whose creation failed (UNAVAILABLE with an ErrorCode) is deleted and created anew.

    Returns the task's description as it was before any update, and whether it was created.

    Calls: ListTasks, DescribeTask (see ``find_task``), DeleteTask for a task whose creation
    failed, then UpdateTask or CreateTask (tagged). Raises: SetupError when the task found
    has another mode (a mode never changes after creation); AgentRefused when DataSync
    refuses the mode for this location's agent; AWSError for any other failure.
    """
    common = {"Includes": rules(includes), "Excludes": rules(excludes), "Options": options}
    if cloudwatch_arn:
        common["CloudWatchLogGroupArn"] = cloudwatch_arn
    found = find_task(client, source_arn, dest_arn, name)
    if found and task_readiness(found) == "failed":
        client.delete_task(TaskArn=found["TaskArn"])  # it never became a task: nothing ran on it
        log.warning("task %s (%s) could not be created earlier (%s: %s): deleted, and created again", name,
                    found["TaskArn"], found.get("ErrorCode"), found.get("ErrorDetail", ""))
        found = None
    if found:
        mode = found.get("TaskMode", "BASIC")
        if mode != task_mode:
            raise SetupError(f"task {name} ({found['TaskArn']}) exists in {mode} mode and a task's mode cannot "
                             f"change: delete it, or pass another --task_name, to run {task_mode} tasks")
        client.update_task(TaskArn=found["TaskArn"], **common)
        if found.get("Excludes") and not excludes:
            _refuse_leftover_excludes(client, found["TaskArn"], name)
        return found, False
    def found_now() -> dict | None:
        return find_task(client, source_arn, dest_arn, name)

    try:
        made, created = once(f"creating task {name}", lambda: _guarded(client).create_task(
            SourceLocationArn=source_arn, DestinationLocationArn=dest_arn, Name=name, Tags=[tag],
            TaskMode=task_mode, **common)["TaskArn"], found_now)
    except botocore.exceptions.ClientError as exc:
        if "mode" not in describe_error(exc).lower():
            raise
        raise AgentRefused(f"DataSync refused to create {task_mode} task {name}: {describe_error(exc)}. A task "
                         f"uses only agents of its own mode, and ListAgents does not say an agent's mode: pass "
                         f"the {task_mode.title()} mode agents with --agent_arns") from None
    return ({"TaskArn": made, "Status": TaskStatus.CREATING}, True) if created else (made, False)


def delete_task(client, arn: str) -> None:
    """Delete a task and, with it, its execution history. One already gone counts as deleted
    (see ``delete_location``).

    Calls: DeleteTask; after a refusal, ListTasks. Raises: AWSError (a refusal of a task that
    still exists, e.g. one with an unfinished execution).
    """
    try:
        client.delete_task(TaskArn=arn)
    except botocore.exceptions.ClientError as exc:
        if not refused(exc) or any(t["TaskArn"] == arn for t in list_tasks(client)):
            raise
        log.info("task %s was already gone", arn)


def task_readiness(task: dict) -> str:
    """'ready', 'wait' or 'failed', from a DescribeTask.

    A new task is CREATING while DataSync mounts the export; a failed mount leaves it
    UNAVAILABLE with an ErrorCode. UNAVAILABLE without one (an agent offline, or a creation
    not yet settled) is waited on, as Terraform's provider does.
    """
    status = task.get("Status")
    if status in TaskStatus.READY_STATES:
        return "ready"
    if status == TaskStatus.UNAVAILABLE and task.get("ErrorCode"):
        return "failed"
    return "wait"


def wait_until_ready(client, labels: dict[str, str], timeout: float = TASK_READY_TIMEOUT,
                     on_wait: Callable[[str], None] | None = None) -> None:
    """Wait, backing off to 10 s between rounds, until every task in ``labels`` (task ARN ->
    how to name it to the user) can start. ``on_wait`` gets a progress line now and then.

    Calls: DescribeTask, for each task not yet ready, each round. Raises: AgentRefused naming
    the first task whose creation failed, with DataSync's error (its agent could not mount
    the export); SetupError naming the tasks still not ready after ``timeout``; AWSError.
    """
    started = time.monotonic()
    pending = dict(labels)
    pause, last_said = 0.2, 0.0
    while True:
        statuses = {}
        for arn in list(pending):
            task = describe_task(client, arn)
            readiness = task_readiness(task)
            if readiness == "failed":
                raise AgentRefused(f"{pending[arn]}: DataSync could not create task {arn}: {task.get('ErrorCode')}: "
                                 f"{task.get('ErrorDetail', '')}; fix the cause and rerun (the rerun deletes "
                                 "the tasks whose creation failed and creates them again)")
            if readiness == "ready":
                del pending[arn]
            else:
                statuses[arn] = task.get("Status", "?")
        if not pending:
            return
        waited = time.monotonic() - started
        if waited >= timeout:
            raise SetupError(f"{len(pending)} task(s) not ready after {timeout:.0f} s "
                             f"({', '.join(f'{pending[a]}: {s}' for a, s in statuses.items())}); rerun to continue")
        if on_wait and waited - last_said >= 10:
            last_said = waited
            on_wait(f"waiting for {len(pending)} task(s) to become AVAILABLE "
                    f"({', '.join(sorted(set(statuses.values())))}), {waited:.0f} s of {timeout:.0f} s")
        time.sleep(min(pause, timeout - waited))
        pause = min(pause * 1.5, 10.0)


def start_execution(client, task_arn: str, includes: Sequence[str], excludes: Sequence[str], tag: str,
                    known: Set[str] = frozenset(), override_options: dict | None = None, defer: bool = False) -> str:
    """Start a run of the task with these filters, tagged with its start tag; the execution's ARN.

    The filters are passed on the execution as well as stored on the task: whether an
    execution's filters replace or merge with the task's is UNCONFIRMED, and with both
    equal every reading selects the same scope. A start whose answer is lost is not sent
    again before looking for the execution carrying ``tag`` (``known`` executions are not
    looked at), nor before it has settled: see ``once`` (``defer``: its caller's next check
    finishes it, as ``dispatch`` does).

    Calls: StartTaskExecution; after a lost answer, ListTaskExecutions and ListTagsForResource.
    Raises: AWSError (OutcomeUnknown when no attempt was answered and none is found).
    """
    kwargs: dict[str, Any] = {"Includes": rules(includes), "Excludes": rules(excludes),
                              "Tags": [{"Key": START_TAG, "Value": tag}]}
    if override_options:
        kwargs["OverrideOptions"] = override_options
    return once(f"starting {tag}", lambda: _guarded(client).start_task_execution(TaskArn=task_arn, **kwargs)[
        "TaskExecutionArn"], lambda: find_started(client, task_arn, tag, known), defer)[0]


def find_started(client, task_arn: str, tag: str, known: Set[str] = frozenset()) -> str | None:
    """The execution of the task that carries this start tag, if any (``known`` ones skipped).

    Calls: ListTaskExecutions (paginated), ListTagsForResource for each other execution. Raises: AWSError.
    """
    return carrying(client, (e for e in list_executions(client, task_arn) if e not in known), tag)


def carrying(client, executions: Iterable[str], tag: str) -> str | None:
    """The first of these executions that carries this start tag, if any.

    Calls: ListTagsForResource for each execution looked at. Raises: AWSError.
    """
    return next((e for e in executions if tags_of(client, e).get(START_TAG) == tag), None)


def set_task_includes(client, task_arn: str, includes: Sequence[str]) -> None:
    """Make the task's own filters these includes and no exclude, and check that they are.

    The dispatcher calls this before each start on a task with no unfinished execution, so
    the execution's includes equal the task's and every reading of how the two combine
    (replace, or merge at start or at launch) selects the same chunk.

    Calls: UpdateTask, DescribeTask. Raises: SetupError if the task reads back otherwise
    (an empty exclude list that did not clear an old exclude); AWSError.
    """
    client.update_task(TaskArn=task_arn, Includes=rules(includes), Excludes=[])
    task = client.describe_task(TaskArn=task_arn)
    if patterns(task.get("Excludes")) or patterns(task.get("Includes")) != list(includes):
        raise SetupError(f"task {task_arn} does not hold the filters just set (includes "
                         f"{task.get('Includes')!r}, excludes {task.get('Excludes')!r}): it cannot run a chunk safely")


def describe_execution(client, arn: str) -> Execution:
    """An execution's status, filters, counters and result.

    Calls: DescribeTaskExecution. Raises: AWSError (also for an execution that no longer
    exists, as after its task was deleted).
    """
    return Execution.from_description(client.describe_task_execution(TaskExecutionArn=arn))


def describe_task(client, arn: str) -> dict:
    """A task's description: status, mode, filters, locations, and ErrorCode/ErrorDetail if its creation failed.

    Calls: DescribeTask. Raises: AWSError.
    """
    return client.describe_task(TaskArn=arn)


def list_executions(client, task_arn: str) -> dict[str, str]:
    """A task's executions: ARN -> status (in no order we rely on).

    Calls: ListTaskExecutions (paginated). Raises: AWSError.
    """
    return {e["TaskExecutionArn"]: e.get("Status") or ExecutionStatus.UNKNOWN
            for page in client.get_paginator("list_task_executions").paginate(TaskArn=task_arn)
            for e in page.get("TaskExecutions", [])}


def tags_of(client, arn: str) -> dict[str, str]:
    """A resource's tags.

    Calls: ListTagsForResource (paginated). Raises: AWSError.
    """
    return {t["Key"]: t.get("Value", "") for page in client.get_paginator("list_tags_for_resource").paginate(
        ResourceArn=arn) for t in page.get("Tags", [])}


def refused(exc: BaseException) -> bool:
    """Whether DataSync answered a request with a refusal (so it did nothing), as opposed to
    a request whose fate is unknown (a 5xx, a throttle, a lost connection)."""
    if not isinstance(exc, botocore.exceptions.ClientError):
        return False
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
    return status < 500 and exc.response.get("Error", {}).get("Code") not in THROTTLING


def cancel_execution(client, arn: str) -> None:
    """Cancel an execution in progress (it shows CANCELLING until it ends).

    Calls: CancelTaskExecution. Raises: AWSError (the execution may have ended meanwhile:
    the watcher then describes it again to see how).
    """
    client.cancel_task_execution(TaskExecutionArn=arn)


def task_of(execution_arn: str) -> str:
    """The task ARN inside an execution ARN."""
    return execution_arn.split("/execution/", 1)[0]
