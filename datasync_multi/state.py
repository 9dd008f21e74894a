"""Files that must survive a crash: the arn file, the plan, the watcher's ledger.

Lines are appended and fsynced one at a time, so an ARN is on disk as soon as its
execution has started; whole files are replaced atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator

from .errors import UserError


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
    """Append one line and make it durable before returning."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line.rstrip("\n") + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_lines(path: str) -> list[str]:
    """Non-blank, non-comment lines, stripped; a missing file reads as empty."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return [s for s in (line.strip() for line in fh) if s and not s.startswith("#")]
    except FileNotFoundError:
        return []


def write_atomic(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old file or the new, never half."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json(path: str, value: object) -> None:
    write_atomic(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def read_json(path: str, default: object = None) -> object:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None


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


class Ledger:
    """The watcher's memory, beside the arn file: what was retried, what is known for good.

    ``scopes`` maps the first execution of a scope to its attempts (each with the agent it
    ran on, so no agent that failed the scope is tried again), its retries, and its
    ``scope`` of record (the plan's filters and counts, taken at first sight); an attempt
    without an execution ARN is a recorded intent (the retry was decided, its start not yet
    seen). ``tasks`` and ``locations`` cache descriptions that do not change; ``finished``
    keeps the last description of executions that ended, so they cost no call again.
    """

    def __init__(self, path: str):
        self.path = path
        data = read_json(path, {}) or {}
        self.scopes: dict[str, dict] = data.get("scopes", {})
        self.tasks: dict[str, dict] = data.get("tasks", {})
        self.locations: dict[str, dict] = data.get("locations", {})
        self.finished: dict[str, dict] = data.get("finished", {})

    def save(self) -> None:
        write_json(self.path, {"version": 1, "scopes": self.scopes, "tasks": self.tasks,
                               "locations": self.locations, "finished": self.finished})

    def scope_of(self, execution: str, agent: str) -> str:
        """The scope an execution belongs to (a new one starts with itself, on ``agent``)."""
        for root, scope in self.scopes.items():
            if any(a.get("execution") == execution for a in scope["attempts"]):
                return root
        self.scopes[execution] = {"attempts": [{"execution": execution, "agent": agent}], "retries": 0}
        return execution
