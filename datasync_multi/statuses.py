"""DataSync's status names, in one place, and how this tool reads each.

Statuses are plain strings, never an Enum: DataSync may answer with one this code does
not know (the user guide lists an execution status ``LAUNCHED`` that botocore's model
does not), and such a status must not break a check. Execution statuses fall into
running, success and failure, as Airflow's DataSync hook sorts them, plus ``CANCELLING``
(on its way to ``ERROR``); a status in none of them is unknown, and the watcher treats it
as unfinished, on purpose, and says so in its log rather than guess that it ended.
What each status means: docs/datasync-facts.md §4 (agents), §5 (tasks), §6 (executions).
"""

from __future__ import annotations


class ExecutionStatus:
    """DescribeTaskExecution's ``Status`` (botocore's TaskExecutionStatus, and LAUNCHED)."""

    QUEUED = "QUEUED"
    LAUNCHING = "LAUNCHING"
    LAUNCHED = "LAUNCHED"
    """In the user guide's table, not in botocore's enum."""
    PREPARING = "PREPARING"
    TRANSFERRING = "TRANSFERRING"
    VERIFYING = "VERIFYING"
    CANCELLING = "CANCELLING"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    UNKNOWN = "UNKNOWN"
    """Not DataSync's: what the watcher shows when it has no status for an execution."""

    RUNNING_STATES = (QUEUED, LAUNCHING, LAUNCHED, PREPARING, TRANSFERRING, VERIFYING)
    SUCCESS_STATES = (SUCCESS,)
    FAILURE_STATES = (ERROR,)
    TERMINAL_STATES = SUCCESS_STATES + FAILURE_STATES
    """An execution in one of these never changes again."""
    NOT_YET_PREPARED = (QUEUED, LAUNCHING, LAUNCHED)
    """Before PREPARING: DataSync has made no estimate of what the execution selects yet."""
    KNOWN_STATES = RUNNING_STATES + (CANCELLING,) + TERMINAL_STATES


class TaskStatus:
    """DescribeTask's and ListTasks' ``Status`` (botocore's TaskStatus)."""

    AVAILABLE = "AVAILABLE"
    CREATING = "CREATING"
    """A new task while DataSync mounts the export."""
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    UNAVAILABLE = "UNAVAILABLE"
    """An agent of the task is offline, or (with an ErrorCode) its creation failed."""

    READY_STATES = (AVAILABLE, QUEUED, RUNNING)
    """A task in one of these takes StartTaskExecution; any other status is waited on."""
    BUSY_STATES = (QUEUED, RUNNING)
    """An execution of the task is queued or running."""


class AgentStatus:
    """ListAgents' and DescribeAgent's ``Status`` (botocore's AgentStatus)."""

    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"
    """Out of contact with DataSync for about five minutes or longer."""
    UNKNOWN = "UNKNOWN"
    """Not DataSync's: what we record when a response carries no status."""
