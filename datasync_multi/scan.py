"""Walk the mounted NFS tree and measure it, directory by directory.

The walk keeps one small record per directory and nothing per file, so memory grows with
directories, not files. It runs on threads because on NFS the time goes to metadata round
trips (one ``lstat`` per entry), which release the GIL and overlap well. It never follows
symlinks and never enters another file system.

The names of loose files are read later, and only for the directories the planner cuts by
name (:meth:`Tree.loose_names`): a second read of those few directories, counted into a
bounded histogram (``names.py``), rather than every file name of the share held in memory.
"""

from __future__ import annotations

import logging
import os
import queue
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

from .names import NameCount, histogram, refine

log = logging.getLogger(__name__)

DATASYNC_SKIPS_AT_ROOT = frozenset({".aws-datasync", ".awssync", ".zfs"})
"""Top-level names DataSync never transfers (its docs, 'Data excluded by default')."""

_S_IFMT, _S_IFDIR, _S_IFREG = stat.S_IFMT(0o170000), stat.S_IFDIR, stat.S_IFREG

UNREADABLE = "unreadable"
OTHER_FILE_SYSTEM = "other file system"


@dataclass(slots=True)
class Dir:
    """One directory: what lies directly in it and, after :func:`scan`, its whole subtree."""

    own_files: int = 0
    """Non-directory entries directly inside: files, symlinks, devices, sockets."""
    children: tuple[str, ...] = ()
    """Subdirectories, as paths relative to the mount: the same strings that key
    :attr:`Tree.dirs`, so a directory's name is stored once."""
    hardlinked: int = 0
    note: str = ""
    """Why this directory cannot be cut or made a unit of its own ('' when it can)."""
    bytes: int = 0
    """Bytes directly inside until :func:`aggregate`, then of the whole subtree."""
    files: int = 0
    dirs: int = 0
    """Directories in the subtree, this one included."""


LooseReader = Callable[[str], Iterator[tuple[str, int]]]
"""(name, size) of every non-directory entry directly in a directory (path relative to the mount)."""


@dataclass
class Tree:
    """The scanned directories, keyed by path relative to the mount ('' is the mount)."""

    dirs: dict[str, Dir]
    roots: tuple[str, ...]
    read_loose: LooseReader
    skipped: list[str] = field(default_factory=list)
    """Paths DataSync would skip by default, left out of every count."""
    largest_file: int = 0
    stat_errors: int = 0
    """Entries that could not be measured (EACCES, EIO, ESTALE...): left out of every count."""
    lone_roots: frozenset[str] = frozenset()
    """Manifest directories whose name no sibling's name extends."""
    _names: dict[str, list[NameCount]] = field(default_factory=dict)

    def children(self, rel: str) -> list[str]:
        return list(self.dirs[rel].children)

    def loose_names(self, rel: str, weigh: Callable[[NameCount], float]) -> list[NameCount] | None:
        """Exact counts of a directory's loose entries by name, no key heavier than the
        target (``weigh`` > 1) where the names allow; None when the directory can no longer
        be read."""
        if not self.dirs[rel].own_files:
            return []
        try:
            counts = self._names.get(rel)
            if counts is None:
                counts = histogram(self.read_loose(rel))
            counts = self._names[rel] = refine(counts, lambda: self.read_loose(rel), weigh)
        except OSError as exc:
            log.warning("cannot read /%s again to cut it by name (%s); it stays one unit", rel, exc.strerror)
            return None
        return counts


def join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def depth(rel: str) -> int:
    return rel.count("/") + 1 if rel else 0


class Progress:
    """A one-line progress report on a terminal; silent otherwise (cron, pipes, CI)."""

    def __init__(self, stream: TextIO | None = None, interval: float = 0.5):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self.interval = interval
        self.dirs = self.files = self.bytes = 0
        self._started = time.monotonic()
        self._shown = 0.0

    def add(self, d: Dir) -> None:
        self.dirs += 1
        self.files += d.own_files
        self.bytes += d.bytes

    def show(self, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self._shown < self.interval):
            return
        self._shown = now
        rate = self.dirs / max(now - self._started, 1e-9)
        self.stream.write(f"\rscanned {self.dirs:,} dirs, {self.files:,} files, "
                          f"{human_bytes(self.bytes)} ({rate:,.0f} dirs/s)" + ("\n" if final else ""))
        self.stream.flush()


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def scan(mount: str, roots: tuple[str, ...], workers: int | None = None,
         progress: Progress | None = None) -> Tree:
    """Scan each root (relative to ``mount``) and return the measured tree.

    ``workers`` defaults to :func:`default_workers` for the mount's file system.
    """
    mount = os.path.realpath(mount)
    workers = workers or default_workers(mount)
    mount_dev = os.lstat(mount).st_dev
    tree = Tree({}, roots, lambda rel: _loose_entries(mount, rel))
    work: queue.SimpleQueue[str | None] = queue.SimpleQueue()
    finished = threading.Event()
    lock = threading.Lock()
    pending = len(roots)

    def scan_one(rel: str) -> None:
        nonlocal pending
        try:
            d, todo, largest, errors = _read_dir(mount, rel, mount_dev, tree)
            tree.dirs[rel] = d
            if progress:
                progress.add(d)
            with lock:
                pending += len(todo)
                tree.largest_file = max(tree.largest_file, largest)
                tree.stat_errors += errors
            for child in todo:
                work.put(child)
        finally:
            with lock:
                pending -= 1
                if pending == 0:
                    finished.set()

    failures: list[BaseException] = []

    def worker() -> None:
        while (rel := work.get()) is not None:
            try:
                scan_one(rel)
            except BaseException as exc:  # a bug, not an I/O error: keep the pool alive, raise it once it is done
                failures.append(exc)

    threads = [threading.Thread(target=worker, daemon=True, name=f"scan-{i}") for i in range(max(1, workers))]
    for t in threads:
        t.start()
    for rel in roots:
        work.put(rel)
    while not finished.wait(0.2):
        if progress:
            progress.show()
    for _ in threads:
        work.put(None)
    for t in threads:
        t.join()
    if progress:
        progress.show(final=True)
    if failures:
        raise failures[0]  # with the worker's traceback, for the command to report (cli.run)
    aggregate(tree)
    tree.lone_roots = frozenset(r for r in roots if r and not _extended_by_sibling(mount, r))
    return tree


def _extended_by_sibling(mount: str, rel: str) -> bool:
    """Whether another entry beside ``rel`` has a name that starts with its name."""
    parent, _, name = rel.rpartition("/")
    try:
        return any(n != name and n.startswith(name) for n in os.listdir(os.path.join(mount, parent)))
    except OSError:
        return True


def _open_dir(mount: str, rel: str) -> int:
    # Read through a directory fd: each entry.stat() is then fstatat(fd, name), one lookup,
    # where lstat(full path) would walk every component again (a round trip each on NFS).
    # O_NOFOLLOW: a directory swapped for a symlink is not followed.
    return os.open(os.path.join(mount, rel) if rel else mount, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)


def _skipped_by_datasync(name: str, at_root: bool) -> bool:
    return name.endswith(".snapshot") or (at_root and name in DATASYNC_SKIPS_AT_ROOT)


def _stat(entry: os.DirEntry, rel: str) -> os.stat_result | None:
    """The entry's lstat; None when it vanished since readdir. Any other error (EACCES,
    EIO, ESTALE) is not a vanished file: it is logged and raised."""
    try:
        return entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot stat /%s (%s)", join(rel, entry.name), exc.strerror)
        raise


def _read_dir(mount: str, rel: str, mount_dev: int, tree: Tree) -> tuple[Dir, list[str], int, int]:
    """Read one directory: its record, the child directories still to scan, its largest
    loose file and how many entries could not be measured."""
    d = Dir()
    todo: list[str] = []
    try:
        fd = _open_dir(mount, rel)
    except OSError as exc:
        log.warning("cannot read /%s (%s); it stays whole inside its parent's share", rel, exc.strerror)
        d.note = UNREADABLE
        return d, todo, 0, 0
    try:
        largest, errors = _tally(d, todo, os.scandir(fd), rel, mount_dev, tree)
    finally:
        os.close(fd)
    return d, todo, largest, errors


def _tally(d: Dir, todo: list[str], it, rel: str, mount_dev: int, tree: Tree) -> tuple[int, int]:
    """Count one directory's entries into ``d``; its child directories to scan go to ``todo``.
    Returns the largest loose file and the number of entries that could not be measured.

    The hot loop: one lstat per entry, counters in locals.
    """
    files = nbytes = linked = largest = errors = 0
    children: list[str] = []
    at_root = not rel
    with it:
        for entry in it:
            name = entry.name
            if _skipped_by_datasync(name, at_root):
                tree.skipped.append(join(rel, name))
                continue
            try:
                st = _stat(entry, rel)
            except OSError:
                errors += 1
                continue
            if st is None:
                continue
            kind = st.st_mode & _S_IFMT
            if kind == _S_IFDIR:
                child = join(rel, name)
                children.append(child)
                if st.st_dev != mount_dev:
                    log.warning("/%s is another file system; it is not scanned and stays with its parent", child)
                    tree.dirs[child] = Dir(note=OTHER_FILE_SYSTEM)
                else:
                    todo.append(child)
                continue
            files += 1
            if kind == _S_IFREG:
                size = st.st_size
                nbytes += size
                if size > largest:
                    largest = size
                if st.st_nlink > 1:
                    linked += 1
    d.own_files, d.bytes, d.hardlinked = files, nbytes, linked
    d.children = tuple(sorted(children))
    return largest, errors


def _loose_entries(mount: str, rel: str) -> Iterator[tuple[str, int]]:
    """(name, size) of each non-directory entry of one directory, read again: the same
    entries :func:`_tally` counts (sizes of regular files; 0 for links and the like)."""
    fd = _open_dir(mount, rel)
    try:
        with os.scandir(fd) as it:
            for entry in it:
                if _skipped_by_datasync(entry.name, not rel):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:  # vanished, or already counted and reported by the scan
                    continue
                if st.st_mode & _S_IFMT == _S_IFDIR:
                    continue
                yield entry.name, st.st_size if st.st_mode & _S_IFMT == _S_IFREG else 0
    finally:
        os.close(fd)


def aggregate(tree: Tree) -> None:
    """Fill the subtree totals, deepest directories first (once: each directory's bytes
    start as its own)."""
    for rel in sorted(tree.dirs, key=depth, reverse=True):
        d = tree.dirs[rel]
        d.files, d.dirs = d.own_files, 1
        for child in tree.children(rel):
            c = tree.dirs[child]
            d.bytes += c.bytes
            d.files += c.files
            d.dirs += c.dirs
    tree.skipped.sort()


NETWORK_FILE_SYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "fuse.sshfs", "ceph", "glusterfs",
                                  "lustre", "9p", "afs", "gpfs"})
NETWORK_WORKERS = 16


def default_workers(path: str) -> int:
    """Threads for the walk: many on a network file system, where each lstat waits on a
    round trip; one on a local disk, where calls return at once and threads only queue
    for the interpreter lock (measured in bench/RESULTS.md)."""
    mount = mount_of(path)
    return NETWORK_WORKERS if mount and mount[1] in NETWORK_FILE_SYSTEMS else 1


def mount_of(path: str, mounts_file: str = "/proc/mounts") -> tuple[str, str, str] | None:
    """(mount point, file system type, source) of the mount holding ``path``."""
    real = os.path.realpath(path)
    try:
        with open(mounts_file, encoding="utf-8", errors="replace") as fh:
            entries = [line.split() for line in fh]
    except OSError:
        return None
    best = None
    for fields in entries:  # the longest mount point wins; of equals, the last mounted
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        if real == point or real.startswith(point.rstrip("/") + "/"):
            if best is None or len(point) >= len(best[0]):
                best = (point, fields[2], fields[0])
    return best


def nfs_mount_source(path: str, mounts_file: str = "/proc/mounts") -> tuple[str, str] | None:
    """(server, export path) that ``path`` shows, when it lies on an NFS mount."""
    mount = mount_of(path, mounts_file)
    if not mount or not mount[1].startswith("nfs") or ":" not in mount[2]:
        return None
    point, _, source = mount
    server, _, export = source.rpartition(":")
    below = os.path.relpath(os.path.realpath(path), point)
    return server.strip("[]"), os.path.normpath(os.path.join(export, below)) if below != "." else export
