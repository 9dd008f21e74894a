"""The one place that speaks boto3: agents, locations, tasks and executions.

Everything here takes and returns plain values. Listing goes through boto3's
paginators; throttling and transient faults are absorbed by botocore's adaptive retry
mode, so no function here loops or sleeps on its own.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import boto3
import botocore.exceptions
import botocore.session
from botocore.config import Config

from .errors import UserError
from .filters import filter_value, split_value

log = logging.getLogger(__name__)

TAG_KEY = "created-by"
SCHEDULER_TAG = {"Key": TAG_KEY, "Value": "datasync-multi-agent-scheduler"}
WATCHER_TAG = {"Key": TAG_KEY, "Value": "datasync-agent-ha"}

RETRIES = {"mode": "adaptive", "max_attempts": 10}

TERMINAL_STATES = frozenset({"SUCCESS", "ERROR"})
RUNNING_STATES = frozenset({"QUEUED", "LAUNCHING", "LAUNCHED", "PREPARING", "TRANSFERRING", "VERIFYING"})

AWSError = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)
"""What a DataSync call can raise once botocore's retries are spent."""


def make_client(region: str | None = None, profile: str | None = None, endpoint_url: str | None = None):
    """A DataSync client on the standard credential chain, with adaptive retries.

    ``endpoint_url`` points it at the local emulator; boto3 also reads ``AWS_ENDPOINT_URL``.
    No credentials at all is the user's to fix, so it is a UserError (exit 2) before any call.
    """
    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
        client = session.client("datasync", endpoint_url=endpoint_url,
                                config=Config(retries=RETRIES, user_agent_extra="datasync-multi-agent"))
        if session.get_credentials() is None:
            raise UserError("no AWS credentials found: run `aws configure`, set AWS_PROFILE (or --profile), "
                            "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run with an instance role")
        return client
    except botocore.exceptions.ProfileNotFound:
        raise UserError(f"AWS profile {profile!r} is not configured") from None
    except botocore.exceptions.NoRegionError:
        raise UserError("no AWS region: pass --region or set AWS_DEFAULT_REGION") from None


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


def rules(patterns: Sequence[str]) -> list[dict]:
    """A FilterList: empty, or one SIMPLE_PATTERN rule joining the patterns with '|'."""
    return [{"FilterType": "SIMPLE_PATTERN", "Value": filter_value(patterns)}] if patterns else []


def patterns(filter_list: Sequence[dict] | None) -> list[str]:
    """The patterns of a FilterList as DescribeTask or DescribeTaskExecution return it."""
    return [p for rule in filter_list or () for p in split_value(rule.get("Value", ""))]


# --- agents ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Agent:
    arn: str
    name: str
    status: str


def list_agents(client) -> list[Agent]:
    """Every agent in the region with its status, in ARN order."""
    return sorted((Agent(a["AgentArn"], a.get("Name", ""), a.get("Status", "UNKNOWN"))
                   for page in client.get_paginator("list_agents").paginate()
                   for a in page.get("Agents", [])), key=lambda a: a.arn)


def describe_agent(client, arn: str) -> Agent:
    a = client.describe_agent(AgentArn=arn)
    return Agent(a["AgentArn"], a.get("Name", ""), a.get("Status", "UNKNOWN"))


# --- locations -------------------------------------------------------------------------


def location_exists(client, arn: str) -> bool:
    return any(loc["LocationArn"] == arn for loc in _locations(client))


def _locations(client, filters: list[dict] | None = None) -> Iterator[dict]:
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


def find_nfs_location(client, agent_arn: str, server: str, subdir: str) -> str | None:
    """An existing NFS location for exactly this agent, server and export path."""
    filters = [{"Name": "LocationUri", "Values": [f"nfs://{server}/"], "Operator": "BeginsWith"}]
    for loc in _locations(client, filters):
        if nfs_uri_matches(loc.get("LocationUri", ""), server, subdir):
            desc = client.describe_location_nfs(LocationArn=loc["LocationArn"])
            if desc.get("OnPremConfig", {}).get("AgentArns") == [agent_arn]:
                return loc["LocationArn"]
    return None


def ensure_nfs_location(client, agent_arn: str, server: str, subdir: str,
                        tag: dict = SCHEDULER_TAG) -> tuple[str, bool]:
    """Reuse or create the NFS source location of one agent; returns (arn, created)."""
    found = find_nfs_location(client, agent_arn, server, subdir)
    if found:
        return found, False
    arn = client.create_location_nfs(ServerHostname=server, Subdirectory=subdir,
                                     OnPremConfig={"AgentArns": [agent_arn]}, Tags=[tag])["LocationArn"]
    return arn, True


def describe_nfs_location(client, arn: str) -> dict:
    """An NFS location's agents, server and export path (read from its LocationUri)."""
    d = client.describe_location_nfs(LocationArn=arn)
    host, _, path = d.get("LocationUri", "nfs://").removeprefix("nfs://").partition("/")
    return {"agents": d.get("OnPremConfig", {}).get("AgentArns", []), "server": host,
            "subdir": "/" + path.strip("/")}


# --- tasks and executions ----------------------------------------------------------------


def task_options(verify_mode: str = "ONLY_FILES_TRANSFERRED", bytes_per_second: int = -1,
                 logging_on: bool = False) -> dict:
    """Options safe for several tasks writing to one destination.

    PRESERVE keeps files deleted at the source: with REMOVE, a task could delete files
    another task wrote (UNCONFIRMED how REMOVE scopes itself under filters). Verification
    covers only what this task moved, and only changed data is sent.
    """
    return {"VerifyMode": verify_mode, "TransferMode": "CHANGED", "PreserveDeletedFiles": "PRESERVE",
            "OverwriteMode": "ALWAYS", "TaskQueueing": "ENABLED", "BytesPerSecond": bytes_per_second,
            "LogLevel": "BASIC" if logging_on else "OFF"}


def list_tasks(client) -> list[dict]:
    """Every task in the region: TaskArn, Name and Status."""
    return [t for page in client.get_paginator("list_tasks").paginate() for t in page.get("Tasks", [])]


def find_task(client, source_arn: str, dest_arn: str, name: str) -> dict | None:
    """The task named ``name`` from this source to this destination, described; or None."""
    filters = [{"Name": "LocationId", "Values": [source_arn], "Operator": "Equals"}]
    for page in client.get_paginator("list_tasks").paginate(Filters=filters):
        for entry in page.get("Tasks", []):
            if entry.get("Name") != name:
                continue
            desc = client.describe_task(TaskArn=entry["TaskArn"])
            if desc.get("SourceLocationArn") == source_arn and desc.get("DestinationLocationArn") == dest_arn:
                return desc
    return None


def ensure_task(client, *, source_arn: str, dest_arn: str, name: str, includes: Sequence[str],
                excludes: Sequence[str], options: dict, cloudwatch_arn: str | None,
                tag: dict = SCHEDULER_TAG) -> tuple[dict, bool]:
    """Reuse (with its filters and options brought up to date) or create a task.

    Returns the task's description as it was before any update, and whether it was created.
    """
    common = {"Includes": rules(includes), "Excludes": rules(excludes), "Options": options}
    if cloudwatch_arn:
        common["CloudWatchLogGroupArn"] = cloudwatch_arn
    found = find_task(client, source_arn, dest_arn, name)
    if found:
        client.update_task(TaskArn=found["TaskArn"], **common)
        return found, False
    arn = client.create_task(SourceLocationArn=source_arn, DestinationLocationArn=dest_arn,
                             Name=name, Tags=[tag], **common)["TaskArn"]
    return {"TaskArn": arn}, True


def start_execution(client, task_arn: str, includes: Sequence[str], excludes: Sequence[str],
                    override_options: dict | None = None) -> str:
    """Start a run of the task with these filters.

    The filters are passed on the execution as well as stored on the task: whether an
    execution's filters replace or merge with the task's is UNCONFIRMED, and with both
    equal every reading selects the same scope.
    """
    kwargs = {"Includes": rules(includes), "Excludes": rules(excludes)}
    if override_options:
        kwargs["OverrideOptions"] = override_options
    return client.start_task_execution(TaskArn=task_arn, **kwargs)["TaskExecutionArn"]


def describe_execution(client, arn: str) -> dict:
    return client.describe_task_execution(TaskExecutionArn=arn)


def describe_task(client, arn: str) -> dict:
    return client.describe_task(TaskArn=arn)


def list_executions(client, task_arn: str) -> list[str]:
    """The ARNs of a task's executions (in no order we rely on)."""
    return [e["TaskExecutionArn"] for page in client.get_paginator("list_task_executions").paginate(TaskArn=task_arn)
            for e in page.get("TaskExecutions", [])]


def cancel_execution(client, arn: str) -> None:
    client.cancel_task_execution(TaskExecutionArn=arn)


def task_of(execution_arn: str) -> str:
    """The task ARN inside an execution ARN."""
    return execution_arn.split("/execution/", 1)[0]
