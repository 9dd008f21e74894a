"""A mounted tree's entries in S3's key order, streamed: the audit merges them with an S3
listing (or a second mounted tree) without holding either side.

S3 lists keys in UTF-8 byte order. A depth-first walk gives that order when each
directory's entries are sorted by the bytes they add to a key: a file's name, or a
directory's name followed by '/' (so ``a-b`` sorts before the directory ``a``, whose keys
all start ``a/``). Memory then follows the walk's frontier; a directory with more entries
than :data:`SPILL_AT` is sorted in runs on disk and merged back, so even one flat
directory of millions of files stays bounded.

Directories are read ahead on a pool of threads, in the order the walk will need them:
on NFS the time goes to one ``lstat`` per entry, which overlaps across threads as in the
scan. With one thread (a local disk, where calls return at once) the walk reads each
directory itself: a pool of one only hands the interpreter lock back and forth, which
doubled the audit's time (bench/README.md, question 11).
"""

from __future__ import annotations

import heapq
import itertools
import os
import pickle
import stat
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from .scan import DATASYNC_MAX_PATH, _open_dir, _skipped_by_datasync, default_workers

FILE, DIR, LINK, OTHER, OBJECT = "file", "dir", "link", "other", "object"
"""Kinds of entry; OBJECT is an S3 object whose listing does not say whether it is a file or a link."""

SPILL_AT = 200_000
"""Entries of one directory sorted in memory; beyond, sorted in runs of this size on disk."""
READ_AHEAD = 8
"""Directories read ahead per thread."""
_BATCH = 4096
"""Entries per pickled record of a spilled run."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry as the audit compares it."""

    key: bytes
    """Its path relative to the location, without a leading '/', in the file system's bytes; a
    directory's ends with '/'."""
    kind: str
    size: int = 0
    mtime_ns: int | None = None
    """None where the side does not say (an S3 listing)."""
    error: str = ""
    """Why it could not be read (an unreadable directory, an entry lstat failed on)."""

    @property
    def path(self) -> str:
        """For people and reports: '/'-led, undecodable bytes escaped."""
        return "/" + self.key.decode("utf-8", "backslashreplace")


class _Listing:
    """One directory's entries, sorted by key: a list, or runs on disk merged back; or why
    the directory could not be read."""

    def __init__(self, entries: list[Entry], runs: list[str], error: str = "") -> None:
        self.entries = entries
        self.runs = runs
        self.error = error

    def __iter__(self) -> Iterator[Entry]:
        if not self.runs:
            yield from self.entries
            return
        try:
            yield from heapq.merge(*(_read_run(r) for r in self.runs), key=lambda e: e.key)
        finally:
            for run in self.runs:
                os.unlink(run)


def _read_run(path: str) -> Iterator[Entry]:
    with open(path, "rb") as fh:
        while True:
            try:
                batch = pickle.load(fh)
            except EOFError:
                return
            for key, kind, size, mtime, error in batch:
                yield Entry(key, kind, size, mtime, error)


def _write_run(entries: list[Entry], spill_dir: str | None) -> str:
    entries.sort(key=lambda e: e.key)
    fd, path = tempfile.mkstemp(prefix="audit-run-", dir=spill_dir)
    with os.fdopen(fd, "wb") as fh:
        for i in range(0, len(entries), _BATCH):
            pickle.dump([(e.key, e.kind, e.size, e.mtime_ns, e.error) for e in entries[i:i + _BATCH]], fh,
                        protocol=pickle.HIGHEST_PROTOCOL)
    return path


class OrderedWalk:
    """The entries under ``roots`` (paths relative to ``mount``; '' for all of it), in key
    order. Each root that is not the whole mount comes first as its own directory entry.
    Skipped as DataSync skips them: its default exclusions and paths past its length limit
    (counted in ``past_limit``). Another file system under the mount is listed as a
    directory and not entered."""

    def __init__(self, mount: str, roots: tuple[str, ...], workers: int | None = None,
                 spill_at: int = SPILL_AT, spill_dir: str | None = None) -> None:
        self.mount = os.path.realpath(mount)
        self.roots = tuple(sorted((r for r in roots), key=lambda r: os.fsencode(r + "/" if r else "")))
        self.workers = workers or default_workers(self.mount)
        self.spill_at = spill_at
        self.spill_dir = spill_dir
        self.past_limit = 0
        self.device = os.lstat(self.mount).st_dev
        self._pending: dict[str, Future[_Listing]] = {}
        self._pool: ThreadPoolExecutor | None = None

    def __iter__(self) -> Iterator[Entry]:
        if self.workers == 1:
            for root in self.roots:
                yield from self._subtree(root)
            return
        with ThreadPoolExecutor(self.workers, thread_name_prefix="audit-walk") as pool:
            self._pool = pool
            for root in self.roots:
                yield from self._subtree(root)

    def _subtree(self, root: str) -> Iterator[Entry]:
        """The root's own entry (unless it is the whole mount), then everything below it. A
        directory that cannot be listed comes with the error, and nothing below it."""
        listing = self._listing(root)
        if root:
            try:
                mtime = os.lstat(os.path.join(self.mount, root)).st_mtime_ns
            except OSError:
                mtime = None
            yield Entry(os.fsencode(root) + b"/", DIR, 0, mtime, listing.error)
        if listing.error:
            return
        stack = [iter(listing)]
        while stack:
            entry = next(stack[-1], None)
            if entry is None:
                stack.pop()
                continue
            if entry.kind == DIR and not entry.error:
                below = self._listing(os.fsdecode(entry.key[:-1]))
                if below.error:
                    entry = Entry(entry.key, DIR, 0, entry.mtime_ns, below.error)
                else:
                    stack.append(iter(below))
            yield entry

    def _listing(self, rel: str) -> _Listing:
        if self._pool is None:
            return self._read(rel)
        future = self._pending.pop(rel, None) or self._pool.submit(self._read, rel)
        listing = future.result()
        room = self.workers * READ_AHEAD - len(self._pending)
        if room > 0 and not listing.runs:
            for entry in itertools.islice((e for e in listing.entries if e.kind == DIR and not e.error), room):
                child = os.fsdecode(entry.key[:-1])
                self._pending[child] = self._pool.submit(self._read, child)
        return listing

    def _read(self, rel: str) -> _Listing:
        """One directory's entries, sorted (spilled to disk past ``spill_at``)."""
        prefix = os.fsencode(rel) + b"/" if rel else b""
        entries: list[Entry] = []
        runs: list[str] = []
        try:
            fd = _open_dir(self.mount, rel)
        except OSError as exc:
            return _Listing([], [], f"cannot read ({exc.strerror})")
        try:
            with os.scandir(fd) as it:
                for item in it:
                    entry = self._entry(item, prefix, not rel)
                    if entry is None:
                        continue
                    entries.append(entry)
                    if len(entries) >= self.spill_at:
                        runs.append(_write_run(entries, self.spill_dir))
                        entries = []
        finally:
            os.close(fd)
        if runs:
            if entries:
                runs.append(_write_run(entries, self.spill_dir))
            return _Listing([], runs)
        entries.sort(key=lambda e: e.key)
        return _Listing(entries, [])

    def _entry(self, item: os.DirEntry, prefix: bytes, at_root: bool) -> Entry | None:
        name = item.name
        if _skipped_by_datasync(name, at_root and not prefix):
            return None
        key = prefix + os.fsencode(name)
        if len(key) + 1 > DATASYNC_MAX_PATH:
            self.past_limit += 1
            return None
        try:
            st = item.stat(follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return Entry(key, OTHER, error=f"cannot stat ({exc.strerror})")
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            if st.st_dev != self.device:
                return Entry(key + b"/", DIR, 0, st.st_mtime_ns, error="another file system: not entered")
            return Entry(key + b"/", DIR, 0, st.st_mtime_ns)
        kind = FILE if stat.S_ISREG(mode) else LINK if stat.S_ISLNK(mode) else OTHER
        return Entry(key, kind, st.st_size if kind in (FILE, LINK) else 0, st.st_mtime_ns)
