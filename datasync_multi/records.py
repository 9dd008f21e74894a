"""What DataSync says of agents, locations and executions, as plain records. No AWS library
is imported here: ``datasync`` builds these from boto3's answers, and the ledger and the
decisions read them without loading boto3."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .filters import filter_value, split_value
from .statuses import ExecutionStatus


def rules(patterns: Sequence[str]) -> list[dict]:
    """A FilterList: empty, or one SIMPLE_PATTERN rule joining the patterns with '|'."""
    return [{"FilterType": "SIMPLE_PATTERN", "Value": filter_value(patterns)}] if patterns else []


def patterns(filter_list: Sequence[dict] | None) -> list[str]:
    """The patterns of a FilterList as DescribeTask or DescribeTaskExecution return it."""
    return [p for rule in filter_list or () for p in split_value(rule.get("Value", ""))]


@dataclass(frozen=True)
class Agent:
    arn: str
    name: str
    status: str
    last_contact: float | None = None
    """When the agent last spoke to DataSync (epoch seconds; DescribeAgent only)."""


@dataclass(frozen=True)
class NfsLocation:
    """An NFS location as the watcher needs it to build a retry's location on another agent."""

    agents: tuple[str, ...]
    server: str
    subdir: str
    """The export path, read from the LocationUri."""
    nfs_version: str = "AUTOMATIC"


@dataclass(frozen=True)
class Execution:
    """What DescribeTaskExecution says of one execution: the fields this tool reads."""

    status: str
    includes: tuple[str, ...] | None = None
    """The include patterns DataSync echoed, or None if it echoed none (it does not promise to)."""
    excludes: tuple[str, ...] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    error_code: str | None = None
    task_mode: str | None = None
    bytes_transferred: int = 0
    estimated_bytes: int = 0
    """What differs from the destination with TransferMode=CHANGED, not the scope's size."""
    files_transferred: int = 0
    estimated_files: int = 0
    files_skipped: int = 0
    start_time: float | None = None
    """When the start was requested (epoch seconds)."""
    launch_time: float | None = None
    """When it left the queue and began launching (epoch seconds); None while queued."""
    end_time: float | None = None

    @classmethod
    def from_description(cls, d: Mapping[str, Any]) -> Execution:
        """From a DescribeTaskExecution response, or from what ``execution_to_description`` kept of one."""
        def epoch(value: object) -> float | None:
            return value.timestamp() if isinstance(value, datetime) else value  # type: ignore[return-value]

        return cls(status=d.get("Status") or ExecutionStatus.UNKNOWN,
                   includes=None if d.get("Includes") is None else tuple(patterns(d["Includes"])),
                   excludes=None if d.get("Excludes") is None else tuple(patterns(d["Excludes"])),
                   options=dict(d.get("Options") or {}), error_code=(d.get("Result") or {}).get("ErrorCode"),
                   task_mode=d.get("TaskMode"), bytes_transferred=d.get("BytesTransferred") or 0,
                   estimated_bytes=d.get("EstimatedBytesToTransfer") or 0,
                   files_transferred=d.get("FilesTransferred") or 0,
                   estimated_files=d.get("EstimatedFilesToTransfer") or 0, files_skipped=d.get("FilesSkipped") or 0,
                   start_time=epoch(d.get("StartTime")), launch_time=epoch(d.get("LaunchTime")),
                   end_time=epoch(d.get("EndTime")))


    def to_description(self) -> dict[str, Any]:
        """In DescribeTaskExecution's own field names (``from_description`` reads it back)."""
        return {"Status": self.status, "Includes": None if self.includes is None else rules(self.includes),
                "Excludes": None if self.excludes is None else rules(self.excludes), "Options": dict(self.options),
                "Result": {"ErrorCode": self.error_code} if self.error_code else None, "TaskMode": self.task_mode,
                "BytesTransferred": self.bytes_transferred, "EstimatedBytesToTransfer": self.estimated_bytes,
                "FilesTransferred": self.files_transferred, "EstimatedFilesToTransfer": self.estimated_files,
                "FilesSkipped": self.files_skipped, "StartTime": self.start_time, "LaunchTime": self.launch_time,
                "EndTime": self.end_time}
