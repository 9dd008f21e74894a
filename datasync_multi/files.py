"""Files that must survive a crash: the arn file, the plan, the ledger, and the locks.

Lines are appended and fsynced one at a time, so an ARN is on disk as soon as its
execution has started; whole files are replaced atomically (temp file, fsync, rename).
A write that fails (a full disk) leaves the file as it was and raises RecordError.
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
from collections.abc import Callable, Iterator

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


def append_line(path: str, line: str, durable: bool = True) -> None:
    """Append one line and make it durable before returning (``durable``: else it is only
    written, and reaches the disk with the file's next durable line). A write that fails is
    undone, so no half line is left for the next append to run into (RecordError)."""
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
            if durable:
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


@contextlib.contextmanager
def sole_holder(path: str, who: str, what: str) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` for as long as the block runs, or refuse at
    once (UserError naming the holder, as it wrote itself into the file) if another process
    holds it. ``who`` describes this process for the next one; ``what`` names the thing held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "another process"
            raise UserError(f"{what} is held by {holder}: wait for it to end (nothing was created or "
                            "started by this one)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, who.encode("utf-8"), 0)
        yield
    finally:
        os.close(fd)
