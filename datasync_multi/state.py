"""Files that must survive a crash: the arn file, the plan, the watcher's ledger.

Lines are appended and fsynced one at a time, so an ARN is on disk as soon as its
execution has started; whole files are replaced atomically (temp file, fsync, rename).
A write that fails (a full disk) leaves the file as it was and raises RecordError. The
ledger is read and written as typed records (``Ledger``, ``Scope``, ``Attempt``), in this
module only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import datasync as ds
from .errors import RecordError, UserError


def check_writable(path: str, flag: str) -> None:
    """Refuse, before anything is created, a file we will write that cannot be written:
    its directory is missing, is not a directory, or is not writable, or it is a directory."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UserError(f"{flag} {path!r} is a directory")
    if not os.path.isdir(directory):
        what = "does not exist" if not os.path.exists(directory) else "is not a directory"
        raise UserError(f"{flag} {path!r}: its directory {directory!r} {what}")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path!r}: its directory {directory!r} is not writable")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise UserError(f"{flag} {path!r} is not writable")


def append_line(path: str, line: str) -> None:
    """Append one line and make it durable before returning. A write that fails is undone,
    so no half line is left for the next append to run into (RecordError)."""
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as exc:
        raise record_error(path, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # appenders take turns, so undoing ours never cuts another's line
        size = os.fstat(fd).st_size
        try:
            rest = memoryview(data)
            while rest:
                rest = rest[os.write(fd, rest):]
            os.fsync(fd)
        except OSError as exc:
            os.ftruncate(fd, size)
            raise record_error(path, exc) from None
    finally:
        os.close(fd)


def record_error(path: str, exc: OSError) -> RecordError:
    """The one line for a record that could not be written: which file, why, that it is as it
    was, and what to do (the caller adds what happens next)."""
    directory = os.path.dirname(os.path.abspath(path))
    todo = (f"free space on {directory}" if exc.errno in (errno.ENOSPC, errno.EDQUOT)
            else f"fix that on {directory}")
    return RecordError(f"cannot write {path!r} ({exc.strerror or exc}): the file is as it was before; {todo}")


def read_lines(path: str) -> list[str]:
    """Non-blank, non-comment lines, stripped; a missing file reads as empty."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return [s for s in (line.strip() for line in fh) if s and not s.startswith("#")]
    except FileNotFoundError:
        return []


STALE_TEMP_AGE = 3600.0
"""Seconds after which a temp file of ``write_atomic`` is a leftover, whoever wrote it."""


def write_atomic(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old file or the new, never half.

    The temp file beside it is named ``.<name>.<pid>.<random>``; a write that fails removes it
    and raises RecordError, the file as it was. What a killed write left is removed by the
    next write of the same file (see ``remove_leftovers``)."""
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    remove_leftovers(directory, name)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.{os.getpid()}.", dir=directory)
    except OSError as exc:
        raise record_error(path, exc) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise record_error(path, exc) from None
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_leftovers(directory: str, name: str) -> None:
    """Remove the temp files that killed writes of ``name`` left behind: those of a process
    that is gone, and any an hour old (a writer on another host, or one from before the pid
    was in the name). A live writer's is kept: removing it would fail its rename."""
    leftover = re.compile(rf"\.{re.escape(name)}\.(?:(\d{{1,9}})\.)?[a-z0-9_]{{8}}")
    try:
        with os.scandir(directory) as entries:
            found = [(e.path, m[1]) for e in entries if (m := leftover.fullmatch(e.name))]
    except OSError:
        return  # the write itself says what is wrong with the directory
    for tmp, pid in found:
        with contextlib.suppress(FileNotFoundError):
            if (pid and not _alive(int(pid))) or time.time() - os.lstat(tmp).st_mtime > STALE_TEMP_AGE:
                os.unlink(tmp)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        pass
    return True


def write_json(path: str, value: object) -> None:
    """Replace ``path`` with ``value`` as JSON, atomically (see ``write_atomic``)."""
    write_atomic(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def read_json(path: str, default: object = None, what: str = "", if_damaged: str = "") -> object:
    """The JSON value in ``path``; ``default`` if there is no such file; a UserError naming it
    (as ``what``) if it cannot be read, or is damaged (not JSON: ``if_damaged`` says what to do)."""
    name = f"{what} {path!r}".lstrip()
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default
    except OSError as exc:
        raise UserError(f"cannot read {name}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UserError(f"{name} is damaged ({exc}){if_damaged}") from None


@contextlib.contextmanager
def exclusive_lock(path: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing), waiting for it.

    ``on_wait`` is called once if another process holds it. The kernel drops the lock
    when its holder dies, so a crash never leaves it stuck.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


LEDGER_VERSION = 1
DISPATCH_LEDGER_VERSION = 2
"""The shape of the ledger file: version 2 holds a dispatch record, version 1 none (and is
written as before, so an older watcher still reads a static ledger). Any other version is
refused, never guessed at: an older watcher refuses a version 2 ledger rather than ignore
its dispatch."""
READABLE_LEDGER_VERSIONS = (LEDGER_VERSION, DISPATCH_LEDGER_VERSION)
LEDGER_DAMAGED = (": the watcher will not guess at it; put back a copy of it (an older copy is safe: executions "
                  "this run started that it does not list are found by their tags and adopted), or pass another "
                  "--ledger_file")


@dataclass(frozen=True)
class PlannedScope:
    """What one scope must move, as the plan gave it: its filters and counts. A retry moves
    exactly these filters; the counts tell an execution that selects far more."""

    task_name: str
    includes: tuple[str, ...]
    excludes: tuple[str, ...] = ()
    files: int = 0
    dirs: int = 0
    bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"task_name": self.task_name, "includes": list(self.includes), "excludes": list(self.excludes),
                "files": self.files, "dirs": self.dirs, "bytes": self.bytes}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlannedScope:
        return cls(str(data["task_name"]), tuple(data["includes"]), tuple(data.get("excludes", ())),
                   int(data.get("files", 0)), int(data.get("dirs", 0)), int(data.get("bytes", 0)))


@dataclass
class Retry:
    """A retry as decided: everything needed to create its location and task and start it,
    so a later check can finish it after a crash without asking anything again."""

    of: str
    """The execution it replaces."""
    decided: float
    """When it was decided (epoch seconds): an execution of its task started before then is not its own."""
    task_name: str
    server: str
    subdir: str
    dest: str
    cloudwatch: str | None
    includes: list[str]
    excludes: list[str]
    options: dict[str, Any]
    nfs_version: str = "AUTOMATIC"
    task_mode: str = "BASIC"
    task: str | None = None
    """The retry task's ARN, once it exists."""


@dataclass
class Attempt:
    """One execution of a scope, or a retry of it decided and not yet seen started."""

    agent: str
    """The agent it runs on ('' in a ledger older than this field: read it from the execution's task)."""
    execution: str | None = None
    """None while a retry is only an intent."""
    failed: str | None = None
    """How it failed (its status, or '<status> on offline agent'), once it has."""
    retry: Retry | None = None
    """How it was started, if it is a retry."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"agent": self.agent}
        if self.execution is not None:
            out["execution"] = self.execution
        if self.failed is not None:
            out["failed"] = self.failed
        if self.retry is not None:
            r = self.retry
            out.update({"retry_of": r.of, "decided": r.decided, "task_name": r.task_name, "server": r.server,
                        "subdir": r.subdir, "nfs_version": r.nfs_version, "dest": r.dest, "cloudwatch": r.cloudwatch,
                        "task_mode": r.task_mode, "includes": list(r.includes), "excludes": list(r.excludes),
                        "options": dict(r.options)})
            if r.task is not None:
                out["task"] = r.task
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Attempt:
        retry = None
        if "retry_of" in data:
            retry = Retry(of=data["retry_of"], decided=float(data["decided"]), task_name=data["task_name"],
                          server=data["server"], subdir=data["subdir"], dest=data["dest"],
                          cloudwatch=data.get("cloudwatch"), includes=list(data["includes"]),
                          excludes=list(data["excludes"]), options=dict(data["options"]),
                          nfs_version=data.get("nfs_version", "AUTOMATIC"), task_mode=data.get("task_mode", "BASIC"),
                          task=data.get("task"))
        return cls(agent=data.get("agent") or "", execution=data.get("execution"), failed=data.get("failed"),
                   retry=retry)


@dataclass
class Scope:
    """One scope of work as the watcher follows it, kept under its first execution's ARN:
    every attempt in order (no agent that failed it is tried again), the retries spent,
    and what it must move (taken from the plan at first sight)."""

    attempts: list[Attempt]
    retries: int = 0
    planned: PlannedScope | None = None

    @property
    def latest(self) -> Attempt:
        return self.attempts[-1]

    def begin_retry(self, agent: str, retry: Retry) -> Attempt:
        """Spend one retry and record it as an intent: its execution is not started yet."""
        self.retries += 1
        self.attempts.append(Attempt(agent, retry=retry))
        return self.attempts[-1]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"attempts": [a.to_json() for a in self.attempts], "retries": self.retries}
        if self.planned is not None:
            out["scope"] = self.planned.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Scope:
        planned = data.get("scope")
        return cls([Attempt.from_json(a) for a in data["attempts"]], int(data.get("retries", 0)),
                   PlannedScope.from_json(planned) if planned is not None else None)


@dataclass(frozen=True)
class TaskFacts:
    """What the watcher keeps of a task (DescribeTask): none of it changes after creation."""

    name: str
    source: str
    dest: str
    cloudwatch: str | None = None
    mode: str = "BASIC"

    @classmethod
    def from_description(cls, task: Mapping[str, Any]) -> TaskFacts:
        return cls(task.get("Name", ""), task["SourceLocationArn"], task["DestinationLocationArn"],
                   task.get("CloudWatchLogGroupArn"), task.get("TaskMode", "BASIC"))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "dest": self.dest, "cloudwatch": self.cloudwatch,
                "mode": self.mode}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskFacts:
        return cls(data.get("name", ""), data["source"], data["dest"], data.get("cloudwatch"),
                   data.get("mode", "BASIC"))


@dataclass
class ChunkAttempt:
    """One start of a chunk on one of an agent's tasks, or a start decided and not yet seen done."""

    agent: str
    task: str
    """The task (the agent's queue slot) it runs as."""
    decided: float
    """When the start was decided (epoch seconds): an execution of the task started before
    then is not this one."""
    execution: str | None = None
    """None while the start is only an intent."""
    failed: str | None = None
    """How it failed, once it has: the chunk may go to another agent, and never back to this one."""
    returned: bool = False
    """Cancelled while still queued on a lost agent: back in the pool, and not a failure."""

    @property
    def active(self) -> bool:
        return self.failed is None and not self.returned

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"agent": self.agent, "task": self.task, "decided": self.decided}
        if self.execution is not None:
            out["execution"] = self.execution
        if self.failed is not None:
            out["failed"] = self.failed
        if self.returned:
            out["returned"] = True
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChunkAttempt:
        return cls(str(data["agent"]), str(data["task"]), float(data["decided"]), data.get("execution"),
                   data.get("failed"), bool(data.get("returned", False)))


@dataclass
class ChunkRecord:
    """One chunk of a dynamic plan as the dispatcher follows it: what it moves (copied from
    the plan, so the ledger alone can finish the job) and every start of it, in order."""

    index: int
    includes: tuple[str, ...]
    bytes: int
    files: int
    dirs: int
    cost: int
    attempts: list[ChunkAttempt] = field(default_factory=list)

    @property
    def latest(self) -> ChunkAttempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def failures(self) -> int:
        return sum(1 for a in self.attempts if a.failed is not None)

    @property
    def barred(self) -> frozenset[str]:
        """Agents that failed it."""
        return frozenset(a.agent for a in self.attempts if a.failed is not None)

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "includes": list(self.includes), "bytes": self.bytes, "files": self.files,
                "dirs": self.dirs, "cost": self.cost, "attempts": [a.to_json() for a in self.attempts]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChunkRecord:
        return cls(int(data["index"]), tuple(str(p) for p in data["includes"]), int(data["bytes"]),
                   int(data["files"]), int(data["dirs"]), int(data["cost"]),
                   [ChunkAttempt.from_json(a) for a in data["attempts"]])


@dataclass
class Dispatch:
    """A dynamic plan in progress: each agent's tasks (its queue slots) and every chunk."""

    id: str
    """Names this dispatch in the tag of each execution it starts (see ``start_tag``)."""
    lanes: dict[str, list[str]]
    """Agent ARN -> the ARNs of its tasks, one per queue slot."""
    chunks: list[ChunkRecord]

    def start_tag(self, chunk: ChunkRecord, attempt: ChunkAttempt) -> str:
        """The tag value of one start: which dispatch, which chunk, which attempt of it."""
        return f"{self.id}/{chunk.index}/{chunk.attempts.index(attempt) + 1}"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "lanes": {agent: list(tasks) for agent, tasks in self.lanes.items()},
                "chunks": [c.to_json() for c in self.chunks]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Dispatch:
        return cls(str(data["id"]), {str(agent): [str(t) for t in tasks] for agent, tasks in data["lanes"].items()},
                   [ChunkRecord.from_json(c) for c in data["chunks"]])

    def executions(self) -> set[str]:
        return {a.execution for c in self.chunks for a in c.attempts if a.execution}


def _location_to_json(loc: ds.NfsLocation) -> dict[str, Any]:
    return {"agents": list(loc.agents), "server": loc.server, "subdir": loc.subdir, "nfs_version": loc.nfs_version}


def _location_from_json(data: Mapping[str, Any]) -> ds.NfsLocation:
    return ds.NfsLocation(tuple(data["agents"]), data["server"], data["subdir"], data.get("nfs_version", "AUTOMATIC"))


@dataclass
class Ledger:
    """The watcher's memory, beside the arn file: what was retried, what is known for good.

    ``scopes`` maps the first execution of each scope to its ``Scope``; ``dispatch`` is
    the record of a dynamic plan (None for a static one). ``tasks`` and
    ``locations`` cache descriptions that do not change; ``finished`` keeps the last
    description of executions that ended (in DescribeTaskExecution's own field names), so
    they cost no call again. ``Ledger(path)`` is a new, empty ledger; ``Ledger.read(path)``
    the one a file holds.
    """

    path: str
    scopes: dict[str, Scope] = field(default_factory=dict)
    tasks: dict[str, TaskFacts] = field(default_factory=dict)
    locations: dict[str, ds.NfsLocation] = field(default_factory=dict)
    finished: dict[str, ds.Execution] = field(default_factory=dict)
    dispatch: Dispatch | None = None

    @classmethod
    def read(cls, path: str) -> Ledger:
        """The ledger in ``path``, or a new one if there is no such file. A damaged one is a
        UserError that says what to do: guessing at it could retry a scope twice."""
        data = read_json(path, what="ledger", if_damaged=LEDGER_DAMAGED)
        try:
            return cls(path) if data is None else cls.from_json(data, path)
        except UserError as exc:
            raise UserError(f"ledger {path!r}: {exc}") from None

    def save(self) -> None:
        write_json(self.path, self.to_json())

    def to_json(self) -> dict[str, Any]:
        return {"version": LEDGER_VERSION if self.dispatch is None else DISPATCH_LEDGER_VERSION,
                "scopes": {root: scope.to_json() for root, scope in self.scopes.items()},
                "tasks": {arn: task.to_json() for arn, task in self.tasks.items()},
                "locations": {arn: _location_to_json(loc) for arn, loc in self.locations.items()},
                "finished": {arn: ds.execution_to_description(e) for arn, e in self.finished.items()},
                **({"dispatch": self.dispatch.to_json()} if self.dispatch is not None else {})}

    @classmethod
    def from_json(cls, data: object, path: str) -> Ledger:
        """The ledger ``to_json`` wrote. Raises UserError for a ledger of another version,
        or one this version did not write: guessing at it could retry a scope twice."""
        if not isinstance(data, Mapping):
            raise UserError("not a ledger (it holds no JSON object)")
        version = data.get("version")
        if version not in READABLE_LEDGER_VERSIONS:
            readable = " and ".join(map(str, READABLE_LEDGER_VERSIONS))
            raise UserError(f"written by another version of the watcher (ledger version {version!r}; this one reads "
                            f"versions {readable}): finish the migration with the version that wrote it")
        try:
            return cls(path, scopes={root: Scope.from_json(s) for root, s in data.get("scopes", {}).items()},
                       tasks={arn: TaskFacts.from_json(t) for arn, t in data.get("tasks", {}).items()},
                       locations={arn: _location_from_json(loc) for arn, loc in data.get("locations", {}).items()},
                       finished={arn: ds.Execution.from_description(e)
                                 for arn, e in data.get("finished", {}).items()},
                       dispatch=Dispatch.from_json(data["dispatch"]) if "dispatch" in data else None)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            detail = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
            raise UserError(f"not a ledger this version wrote: {detail}") from None

    def scope_of(self, execution: str, agent: str) -> str:
        """The scope an execution belongs to (a new one starts with itself, on ``agent``)."""
        for root, scope in self.scopes.items():
            if any(a.execution == execution for a in scope.attempts):
                return root
        self.scopes[execution] = Scope([Attempt(agent, execution)])
        return execution
