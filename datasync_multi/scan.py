"""Walk the mounted NFS tree and measure it, directory by directory.

The walk keeps one small record per directory and nothing per file, so memory grows with
directories, not files. It runs on threads because on NFS the time goes to metadata round
trips (one ``lstat`` per entry), which release the GIL and overlap well. It never follows
symlinks and never enters another file system.

Each directory is opened by its path, piece by piece where the path is longer than one
system call takes (PATH_MAX), so a tree of any depth is read. What lies past DataSync's
own path limit (:data:`DATASYNC_MAX_PATH`) is counted apart (:class:`PastLimit`): DataSync
cannot transfer it, so no total of the plan includes it.

The names of loose files are read later, and only for the directories the planner cuts by
name (:meth:`Tree.loose_names`): a second read of those few directories, counted into a
bounded histogram (``names.py``), rather than every file name of the share held in memory.
"""

from __future__ import annotations

import bisect
import collections
import heapq
import itertools
import logging
import os
import random
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TextIO

from .names import NameCount, histogram, refine

log = logging.getLogger(__name__)

DATASYNC_SKIPS_AT_ROOT = frozenset({".aws-datasync", ".awssync", ".zfs"})
"""Top-level names DataSync never transfers (docs/datasync-facts.md §2, 'Left out by default'), beside
any name ending in '.snapshot'."""
DATASYNC_SKIPS = "a name ending in '.snapshot', or a top-level .zfs, .aws-datasync or .awssync"
"""What DataSync skips by default, for messages."""

DATASYNC_MAX_PATH = 4096
"""DataSync's limit on a file's path, in bytes (its quotas page). Counted here on the path
relative to the location, '/'-led, in the bytes the file system holds: the path DataSync's
filters and reports show. Whether DataSync also counts the location's own path is not
documented (docs/datasync-facts.md §3)."""
NAME_MAX = 255
"""The longest name, in bytes, a Linux file system holds."""
EXAMPLES = 3
"""Paths past the limit named in the plan's warnings."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
_ONE_CALL = 4000
"""Bytes of path opened in one call: under the kernel's PATH_MAX (4,096 with its NUL)."""

_S_IFMT, _S_IFDIR, _S_IFREG = stat.S_IFMT(0o170000), stat.S_IFDIR, stat.S_IFREG

UNREADABLE = "unreadable"
OTHER_FILE_SYSTEM = "other file system"


@dataclass(slots=True)
class Dir:
    """One directory: what lies directly in it and, after :func:`scan`, its whole subtree;
    only what is within DataSync's path limit (see :class:`PastLimit`)."""

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


@dataclass
class PastLimit:
    """What lies past :data:`DATASYNC_MAX_PATH`: on disk, but DataSync cannot transfer it, so
    no count of the tree includes it. The directories above it are counted as usual."""

    files: int = 0
    """Files, links and other non-directories."""
    bytes: int = 0
    dirs: int = 0
    examples: list[str] = field(default_factory=list)
    """The first few (in path order) of the entries where paths cross the limit."""
    names: dict[str, list[str]] = field(default_factory=dict)
    """Per directory within the limit, its entries past it: a cut by name still gives each to
    exactly one unit, so that they move once should DataSync count paths more leniently."""


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
    skipped_roots: tuple[str, ...] = ()
    """Manifest directories DataSync skips by default: not scanned, not in :attr:`roots`."""
    past_limit: PastLimit = field(default_factory=PastLimit)
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
        be read. Entries past DataSync's path limit come as keys that weigh nothing."""
        far = [NameCount(name, 0, 0) for name in sorted(self.past_limit.names.get(rel, ()))]
        if not self.dirs[rel].own_files:
            return far
        try:
            counts = self._names.get(rel)
            if counts is None:
                counts = histogram(self.read_loose(rel))
            counts = self._names[rel] = refine(counts, lambda: self.read_loose(rel), weigh)
        except OSError as exc:
            log.warning("cannot read /%s again to cut it by name (%s); it stays one unit", rel, exc.strerror)
            return None
        return sorted(counts + far, key=lambda c: c.key) if far else counts

    def warnings(self) -> list[str]:
        """What the scan left out that the plan must say: manifest entries DataSync skips,
        and what lies past its path limit."""
        out = []
        if self.skipped_roots:
            out.append(f"{len(self.skipped_roots)} manifest entr{'y is' if len(self.skipped_roots) == 1 else 'ies are'}"
                       f" a path DataSync skips by default ({DATASYNC_SKIPS}), left out of the plan: "
                       + ", ".join(_abbreviated("/" + r) for r in self.skipped_roots[:EXAMPLES])
                       + (", ..." if len(self.skipped_roots) > EXAMPLES else ""))
        far = self.past_limit
        if far.files or far.dirs:
            out.append(f"{far.files:,} file(s) ({human_bytes(far.bytes)}) and {far.dirs:,} directory(ies) lie past "
                       f"DataSync's {DATASYNC_MAX_PATH:,}-byte path limit: DataSync cannot transfer them, and the "
                       "plan's totals leave them out; where paths cross it: "
                       + "; ".join(_abbreviated(p) for p in far.examples))
        return out


def join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def path_bytes(rel: str) -> int:
    """The length DataSync's path limit counts: bytes of '/' + ``rel`` (0 for the location)."""
    return len(os.fsencode(rel)) + 1 if rel else 0


def datasync_skips(rel: str) -> bool:
    """Whether DataSync skips this path by default: the walk would skip one of its names."""
    return bool(rel) and any(_skipped_by_datasync(name, i == 0) for i, name in enumerate(rel.split("/")))


def _abbreviated(path: str, keep: int = 40) -> str:
    """A path for a message: its ends only when long, escaped where it holds line breaks or
    bytes that are not UTF-8, with its length in bytes when past DataSync's limit."""
    n = len(os.fsencode(path.rstrip("/")))
    text = path if len(path) <= 2 * keep + 3 else f"{path[:keep]}...{path[-keep:]}"
    shown = repr(text) if text.isprintable() else ascii(text)
    return f"{shown} ({n:,} bytes)" if n > DATASYNC_MAX_PATH else shown


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

    def add(self, d: Dir, dirs: int = 1) -> None:
        self.dirs += dirs
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
    """Scan each root (relative to ``mount``, within DataSync's path limit) and return the
    measured tree. Roots DataSync skips by default are left out (:attr:`Tree.skipped_roots`).

    ``workers`` defaults to :func:`default_workers` for the mount's file system.
    """
    def keep(tree: Tree, rel: str, d: Dir, within: bool, far: list[tuple[str, bool, int]], _: Loose | None) -> None:
        if within:
            tree.dirs[rel] = d

    tree = _walk_tree(mount, roots, workers, progress, keep)
    aggregate(tree)
    tree.lone_roots = lone_roots(os.path.realpath(mount), tree.roots)
    return tree


Loose = list[tuple[str, int]]
"""A directory's loose entries as its listing read them: (name, bytes), as :func:`loose_entries` gives them."""
Listed = Callable[[str, Dir, list[str], "Loose | None"], None]
"""live mode's feed: (path, the directory's own record, its entries' names past DataSync's path
limit, its loose entries where there are at most :data:`LOOSE_HANDED_OVER`)."""
LOOSE_HANDED_OVER = 50_000
"""Loose entries a live scan hands over with a directory's listing, so that cutting it by name
needs no second read (on a slow mount, a fifth of the scan's time went to such reads). A
directory with more is read again. A live scan also reads up to this many entries of each
directory before measuring any (to offer it :class:`InParts`): each walk thread holds at
most those entries and one such list (about 150 bytes an entry each, 15 MB a thread), and
a directory read in parts holds its entries until its last part (at most about twice the
walk's threads such directories at once: :class:`_ParallelWalk`)."""


PARTS_MIN = 256
"""Loose entries from which a live scan offers a directory to be read in parts (:class:`InParts`)."""


@dataclass(frozen=True)
class InParts:
    """live mode's planner, for a directory of many loose entries: told its names first
    (``opened``), it may cut it by them at once and have each part measured and handed over
    on its own (``part_listed``, then ``listing_done``), as ``LivePlanner.opened`` says."""

    opened: Callable[[str, Dir, list[str], list[str], int], list[tuple[str, list[str]]] | None]
    part_listed: Callable[[str, str, int, int], None]
    listing_done: Callable[[str, Dir], None]


def scan_live(mount: str, roots: tuple[str, ...], listed: Listed, skip: Callable[[str], bool],
              workers: int | None = None, progress: Progress | None = None, in_parts: InParts | None = None) -> Tree:
    """Walk each root as :func:`scan` does, handing each directory to ``listed`` as soon as
    it is read (before any of its subdirectories) instead of keeping it: memory follows
    the walk's frontier. Subdirectories ``skip`` names are not entered. Returns what the
    plan's warnings need (skips, errors, what lies past the path limit); its ``dirs`` stay
    empty. ``listed`` (and ``in_parts``) are called from the walk's threads, one call at a time.

    With ``in_parts``, a directory of at least :data:`PARTS_MIN` loose entries (and at most
    :data:`LOOSE_HANDED_OVER`) is offered to it by name before any entry is measured; if it
    takes it, its entries are measured part by part, in the order given, each part handed
    over as it is done: the planner can send a heavy directory's first groups while the
    walk is still measuring the rest."""
    def hand_over(tree: Tree, rel: str, d: Dir, within: bool, far: list[tuple[str, bool, int]],
                  loose: Loose | None) -> None:
        tree.past_limit.names.pop(rel, None)  # the planner holds them while the directory is open
        if within:
            listed(rel, d, [name for name, _, _ in far], loose)
            for child in d.children:  # another file system: recorded, not entered
                if child in tree.dirs:
                    listed(child, tree.dirs.pop(child), [], None)

    tree = _walk_tree(mount, roots, workers, progress, hand_over, skip, keep_loose=LOOSE_HANDED_OVER,
                      in_parts=_PartsReader(in_parts, listed) if in_parts else None)
    tree.skipped.sort()
    return tree


Take = Callable[[Tree, str, Dir, bool, list[tuple[str, bool, int]], "Loose | None"], None]
"""What a walk does with each directory it reads: (tree, path, record, within DataSync's path
limit, entries past it, its loose entries if kept), called under the walk's lock."""


def _walk_tree(mount: str, roots: tuple[str, ...], workers: int | None, progress: Progress | None, take: Take,
               skip: Callable[[str], bool] = lambda rel: False, keep_loose: int = 0,
               in_parts: _PartsReader | None = None) -> Tree:
    """Read every directory under the roots (but those ``skip`` names) on the walk's threads,
    counting what every scan counts into a new Tree, and handing each to ``take`` (with its
    loose entries where there are at most ``keep_loose``), or to ``in_parts`` where it takes it."""
    mount = os.path.realpath(mount)
    workers = workers or default_workers(mount)
    mount_dev = os.lstat(mount).st_dev
    kept = tuple(r for r in roots if not datasync_skips(r))
    tree = Tree({}, kept, lambda rel: loose_entries(mount, rel),
                skipped_roots=tuple(r for r in roots if datasync_skips(r)))
    lock = threading.Lock()
    offer = partial(in_parts.read, tree, mount_dev, lock, progress) if in_parts else None

    def measure(rel: str) -> list[WalkItem]:
        """Read one directory; return its subdirectories, to be read next (and its parts, if
        it is read in parts)."""
        within = path_bytes(rel) <= DATASYNC_MAX_PATH
        read = _read_dir(mount, rel, mount_dev, tree, keep_loose, offer if within else None)
        if isinstance(read, list):  # read in parts: each part is handed over as it is measured
            return [item for item in read if not isinstance(item, str) or not skip(item)]
        d, todo, largest, errors, far, loose = read
        if progress:
            progress.add(d)
        with lock:
            tree.largest_file = max(tree.largest_file, largest)
            tree.stat_errors += errors
            if far:
                _count_past_limit(tree.past_limit, rel, far, within)
            take(tree, rel, d, within, far, loose)
        return [child for child in todo if not skip(child)]

    walk = _ParallelWalk(measure, tuple(r for r in kept if not skip(r)))
    walk.run(max(1, workers), progress, Scout(mount, mount_dev, skip) if in_parts else None)
    if progress:
        progress.show(final=True)
    if walk.failures:
        raise walk.failures[0]  # with the worker's traceback, for the command to report (cli.run)
    return tree


def has_entries(mount: str, rel: str) -> bool:
    """Whether a directory holds an entry DataSync would move (one read, stopped at the first)."""
    fd = _open_dir(mount, rel)
    try:
        with os.scandir(fd) as it:
            return any(not _skipped_by_datasync(entry.name, not rel) for entry in it)
    finally:
        os.close(fd)


class Part:
    """Work for the walk beside directories: one slice of a part of a directory read in parts,
    measured on whichever thread is free, as urgent work (:class:`_ParallelWalk`)."""

    __slots__ = ("rel", "measure")

    def __init__(self, rel: str, measure: Callable[[], None]) -> None:
        self.rel = rel
        self.measure = measure


WalkItem = str | Part
"""What the walk's threads take: a directory to read, or a part of one to measure."""


class _ParallelWalk:
    """Directories handed to worker threads until none is left, apart from what is read in
    each: a visit returns the subdirectories to visit next (and, for a directory read in
    parts, its parts). Workers take the waiting item first in depth-first order
    (:func:`preorder`), so the walk finishes one subtree after another, as one depth-first
    walk would, while ``workers`` items are read at once: live mode's planner can then close
    subtrees long before the end. Urgent work goes first, first come first taken, on at most
    half the threads while other work waits: parts (each closes its group at once, and a
    large directory's parts are measured by every thread free), and the directories a
    :class:`Scout` found large ahead of the walk, with the directories above them. Once
    ``workers`` directories are held open in parts, parts go first on every thread, so that
    few more are opened (each holds its fd and entries until its last part). An exception in
    a visit (a bug, not an I/O error) keeps the pool alive, and waits in ``failures`` for the
    caller to raise."""

    def __init__(self, visit: Callable[[str], list[WalkItem]], roots: tuple[str, ...]) -> None:
        assert len(set(roots)) == len(roots), "a root given twice would be visited once and waited for twice"
        self.visit = visit
        self.roots = roots
        self.waiting: list[tuple[str, int, WalkItem]] = []
        self.promoted: list[tuple[str, int, WalkItem]] = []
        self.parts: list[tuple[str, int, WalkItem]] = []
        self.waiting_dirs: set[str] = set()
        self.wanted: set[str] = set()
        self.in_parts: collections.Counter[str] = collections.Counter()
        """Directories held open in parts: their parts not yet measured."""
        self.front = ""
        """The furthest directory taken in depth-first order: one before it not yet taken is
        below a directory being read, and about to be taken."""
        self.pushed = 0
        self.on_urgent = 0
        self.urgent_share = self.parts_cap = 1
        self.ready = threading.Condition()
        self.pending = len(roots)
        self.failures: list[BaseException] = []

    def run(self, workers: int, progress: Progress | None, scout: Scout | None = None) -> None:
        """Visit every directory on ``workers`` threads (and ``scout`` on :data:`SCOUTS` more); show
        progress while they run."""
        self._push(list(self.roots))
        self.urgent_share, self.parts_cap = max(1, round(workers * URGENT_SHARE)), workers
        threads = [threading.Thread(target=self._worker, daemon=True, name=f"scan-{i}") for i in range(workers)]
        if scout:
            scout.start(self, SCOUTS)
        for t in threads:
            t.start()
        with self.ready:
            while self.pending and not self.ready.wait(0.2):
                if progress:
                    progress.show()
        for t in threads:
            t.join()

    def promote(self, rel: str) -> None:
        """Make ``rel`` urgent, and the directories above it up to its root: each is visited
        as soon as a thread may take urgent work, if not visited yet, and its parts (if read
        in parts) measured."""
        chain = [rel]
        while chain[-1] not in self.roots and chain[-1]:
            chain.append(chain[-1].rpartition("/")[0])
        with self.ready:
            self.wanted.update(chain)
            for up in chain:
                if up in self.waiting_dirs:  # visited when first taken, from either heap
                    self.pushed += 1
                    heapq.heappush(self.promoted, ("", self.pushed, up))
                    self.ready.notify()

    def passed(self, rel: str) -> bool:
        """Whether the walk has taken ``rel`` and every directory below it already, as far as
        depth-first order tells: the first directory waiting in that order (or, with none
        waiting, the last taken) comes after its subtree. The share's top, whose subtree is
        everything, is passed only once the walk has ended."""
        with self.ready:
            if not self.pending:
                return True
            bound = self.waiting[0][0] if self.waiting else self.front
            return bool(rel) and preorder(rel) + "\x01" <= bound

    def _push(self, items: list[WalkItem]) -> None:
        for item in items:
            self.pushed += 1  # ties (a directory's parts) in the order given
            if isinstance(item, Part):
                self.in_parts[item.rel] += 1
                heapq.heappush(self.parts, ("", self.pushed, item))
                continue
            self.waiting_dirs.add(item)
            if item in self.wanted:
                heapq.heappush(self.promoted, ("", self.pushed, item))
            else:
                heapq.heappush(self.waiting, (preorder(item), self.pushed, item))

    def _heap(self) -> list[tuple[str, int, WalkItem]]:
        """Where the next item comes from (see the class)."""
        if self.parts and len(self.in_parts) >= self.parts_cap:
            return self.parts
        urgent = [h for h in (self.parts, self.promoted) if h]
        if urgent and (self.on_urgent < self.urgent_share or not self.waiting):
            return min(urgent, key=lambda h: h[0][1])
        return self.waiting

    def _next(self) -> tuple[WalkItem, bool] | None:
        """The item to take next, and whether it is urgent."""
        with self.ready:
            while True:
                while not self.waiting and not self.promoted and not self.parts:
                    if not self.pending:
                        return None
                    self.ready.wait()
                heap = self._heap()
                key, _, item = heapq.heappop(heap)
                if isinstance(item, str):
                    if item not in self.waiting_dirs:  # the second entry of a directory promoted while it waited
                        continue
                    self.waiting_dirs.discard(item)
                if heap is self.waiting:
                    self.front = max(self.front, key)
                urgent = heap is not self.waiting
                self.on_urgent += urgent
                return item, urgent

    def _worker(self) -> None:
        while (taken := self._next()) is not None:
            item, urgent = taken
            todo: list[WalkItem] = []
            try:
                if isinstance(item, str):
                    todo = self.visit(item)
                else:
                    item.measure()
            except BaseException as exc:  # a bug, not an I/O error: keep the pool alive, raise it once it is done
                self.failures.append(exc)
            with self.ready:
                self._push(todo)
                self.pending += len(todo) - 1
                self.on_urgent -= urgent
                if isinstance(item, Part):
                    self.in_parts[item.rel] -= 1
                    if not self.in_parts[item.rel]:
                        del self.in_parts[item.rel]
                self.ready.notify_all()


URGENT_SHARE = 0.5
"""Of the walk's threads, the share that may take urgent work while other work waits. In a
trial on the bench's tree over sshfs (units then a sixteenth of a chunk; the planner timed
alone, not by a command of the repo), all of them closed the work sooner but scanned 3 to
12% slower, its threads then mostly stat'ing in one directory; half keeps the depth-first
walk going."""
SCOUTS = 2
"""Threads of a :class:`Scout`: it reads names only, a few round trips a directory, and has
to keep ahead of the walk's many threads."""
SCOUT_MIN = 1024
"""Loose entries from which the scout makes a directory urgent: a large one costs most when
read late, and a share of directories just past :data:`PARTS_MIN` would otherwise have the
scout reorder most of the walk."""
SCOUTED = 100_000
"""Directories a :class:`Scout` keeps waiting to be read at most (about 100 bytes each):
past that, it leaves out those the walk will reach first."""


class Scout:
    """Reads directory names ahead of a live walk, on threads of its own, to find large
    directories before the depth-first walk reaches them: one of at least :data:`SCOUT_MIN`
    loose entries is made urgent (:meth:`_ParallelWalk.promote`). A large directory late in
    the walk's order would otherwise be read near the end of the scan, and its bytes could
    not move before. The scout walks depth first from the other end (the last
    subdirectory first), so it finds first what the walk would reach last, and stops where
    it meets the walk. Only names and types are read (so each directory ahead of the walk
    is read twice: once here, once by the walk); another file system is not entered.
    Nothing it reads is counted: it only orders the walk, so a directory it misses or
    misjudges is read as any other."""

    def __init__(self, mount: str, mount_dev: int, skip: Callable[[str], bool]) -> None:
        self.mount = mount
        self.mount_dev = mount_dev
        self.skip = skip
        self.todo: list[tuple[str, str]] = []
        """Directories to look at, as (:func:`preorder` key, path), in the walk's order:
        none is below another, so a directory's subdirectories go in one place."""
        self.looking = 0
        self.turn = threading.Condition()

    def start(self, walk: _ParallelWalk, threads: int) -> None:
        """Look ahead of ``walk`` on ``threads`` threads of the scout's own, which end once
        they have met the walk (or the walk has ended)."""
        self.todo = sorted((preorder(r), r) for r in walk.roots)
        for i in range(threads):
            threading.Thread(target=self._run, args=(walk,), daemon=True, name=f"scan-scout-{i}").start()

    def _run(self, walk: _ParallelWalk) -> None:
        while (rel := self._next(walk)) is not None:
            subdirs: list[tuple[str, str]] = []
            try:
                look = self._look(rel)
                if look is not None:
                    names, loose = look
                    if loose >= SCOUT_MIN:
                        walk.promote(rel)
                    subdirs = sorted((preorder(c), c) for c in names if not self.skip(c))
            finally:
                with self.turn:
                    if subdirs:
                        at = bisect.bisect_left(self.todo, subdirs[0])
                        self.todo[at:at] = subdirs
                    del self.todo[:len(self.todo) - SCOUTED]  # the nearest the walk: it reaches them first
                    self.looking -= 1
                    self.turn.notify_all()

    def _next(self, walk: _ParallelWalk) -> str | None:
        """The directory to look at next, the last in the walk's order; None once the walk
        has passed it (and so every one still to look at: each comes before it, and none is
        above it)."""
        with self.turn:
            while not self.todo:
                if not self.looking:
                    return None
                self.turn.wait()
            _, rel = self.todo.pop()
            if walk.passed(rel):
                self.todo.clear()
                self.turn.notify_all()
                return None
            self.looking += 1
            return rel

    def _look(self, rel: str) -> tuple[list[str], int] | None:
        """A directory's subdirectories on this file system and how many loose entries it
        names; None where it cannot be read. An entry whose type cannot be read is left out."""
        subdirs: list[str] = []
        loose = 0
        try:
            fd = _open_dir(self.mount, rel)
        except OSError:
            return None
        try:
            with os.scandir(fd) as it:
                for entry in it:
                    if _skipped_by_datasync(entry.name, not rel):
                        continue
                    try:
                        if not entry.is_dir(follow_symlinks=False):
                            loose += 1
                        elif entry.stat(follow_symlinks=False).st_dev == self.mount_dev:
                            subdirs.append(join(rel, entry.name))
                    except OSError:
                        continue
        except OSError:
            return None
        finally:
            os.close(fd)
        return subdirs, loose


def preorder(rel: str) -> str:
    """A directory's place in a depth-first walk, as a key that sorts so: '/' becomes NUL,
    which sorts before every character a name holds, so a directory's subtree comes right
    after it and before its next sibling ('a/b' before 'a-c')."""
    return rel.replace("/", "\0")


def _count_past_limit(far: PastLimit, rel: str, entries: list[tuple[str, bool, int]], within: bool) -> None:
    """Count one directory's entries past the limit (name, is a directory, bytes); where the
    directory itself is within it, keep their names and the first few paths."""
    for _, is_dir, size in entries:
        far.dirs += is_dir
        far.files += not is_dir
        far.bytes += size
    if within:
        far.names[rel] = [name for name, _, _ in entries]
        paths = ["/" + join(rel, name) + ("/" if is_dir else "") for name, is_dir, _ in entries]
        far.examples = sorted(far.examples + paths)[:EXAMPLES]


def lone_roots(mount: str, roots: tuple[str, ...]) -> frozenset[str]:
    """The roots whose name no sibling's name extends, listing each parent once: the names
    that extend ``name`` follow it in sorted order, so one look past it decides."""
    by_parent: dict[str, list[str]] = {}
    for rel in roots:
        if rel:
            parent, _, name = rel.rpartition("/")
            by_parent.setdefault(parent, []).append(name)
    lone = []
    for parent, names in by_parent.items():
        try:
            fd = _open_dir(mount, parent)
            try:
                siblings = sorted(os.listdir(fd))
            finally:
                os.close(fd)
        except OSError:
            continue  # extended, as far as we know
        for name in names:
            after = bisect.bisect_right(siblings, name)
            if after == len(siblings) or not siblings[after].startswith(name):
                lone.append(join(parent, name))
    return frozenset(lone)


def _open_dir(mount: str, rel: str) -> int:
    """A directory fd for ``rel``, at any depth: a path longer than one call takes is opened
    piece by piece, each piece relative to the last.

    Read through a directory fd: each entry.stat() is then fstatat(fd, name), one lookup,
    where lstat(full path) would walk every component again (a round trip each on NFS).
    O_NOFOLLOW: a directory swapped for a symlink is not followed."""
    path = os.path.join(mount, rel) if rel else mount
    if len(os.fsencode(path)) < _ONE_CALL:
        return os.open(path, _DIR_FLAGS)
    fd = os.open(mount, _DIR_FLAGS)
    try:
        for piece in _pieces(rel):
            inner = os.open(piece, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def _pieces(rel: str) -> Iterator[str]:
    """``rel`` cut at slashes into relative paths of under :data:`_ONE_CALL` bytes each."""
    piece: list[str] = []
    size = 0
    for name in rel.split("/"):
        n = len(os.fsencode(name)) + 1
        if piece and size + n > _ONE_CALL:
            yield "/".join(piece)
            piece, size = [], 0
        piece.append(name)
        size += n
    yield "/".join(piece)


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


def _room(rel: str) -> int:
    """Bytes a name in ``rel`` may take within DataSync's path limit (negative past it)."""
    return DATASYNC_MAX_PATH - path_bytes(rel) - 1


ReadInParts = Callable[[int, str, list[os.DirEntry]], list[WalkItem] | None]


def _read_dir(mount: str, rel: str, mount_dev: int, tree: Tree, keep_loose: int = 0,
              in_parts: ReadInParts | None = None
              ) -> tuple[Dir, list[str], int, int, list[tuple[str, bool, int]], Loose | None] | list[WalkItem]:
    """Read one directory: its record, the child directories still to scan, its largest
    loose file, how many entries could not be measured, its entries past the limit, and its
    loose entries if there are at most ``keep_loose`` (else None). With ``in_parts``, a
    directory of up to LOOSE_HANDED_OVER entries is offered to it first (fd, path, entries
    read): where it takes the directory, what the walk does next comes back (its child
    directories, its parts)."""
    d = Dir()
    todo: list[str] = []
    far: list[tuple[str, bool, int]] = []
    try:
        fd = _open_dir(mount, rel)
    except OSError as exc:
        log.warning("cannot read /%s (%s); it stays whole inside its parent's share", rel, exc.strerror)
        d.note = UNREADABLE
        return d, todo, 0, 0, far, None
    loose: Loose = []
    handed_over = False
    try:
        with os.scandir(fd) as it:
            head: list[os.DirEntry] = []
            if in_parts is not None:
                head = list(itertools.islice(it, LOOSE_HANDED_OVER + 1))
                in_parts_next = in_parts(fd, rel, head) if len(head) <= LOOSE_HANDED_OVER else None
                if in_parts_next is not None:
                    handed_over = True  # its parts measure through fd, and close it
                    return in_parts_next
            largest, errors = _tally(d, todo, far, itertools.chain(head, it), rel, mount_dev, tree, loose,
                                     keep_loose)
    finally:
        if not handed_over:
            os.close(fd)
    return d, todo, largest, errors, far, loose if keep_loose and d.own_files <= keep_loose else None


def _tally(d: Dir, todo: list[str], far: list[tuple[str, bool, int]], it, rel: str, mount_dev: int,
           tree: Tree, loose: Loose, keep_loose: int = 0) -> tuple[int, int]:
    """Count one directory's entries into ``d``; its child directories to scan go to ``todo``,
    and its entries past DataSync's path limit (name, is a directory, bytes) to ``far``: they
    are not counted in ``d``, but a directory among them is still scanned, to count what is
    in it. The first ``keep_loose`` loose entries go to ``loose`` as :func:`loose_entries`
    reads them. Returns the largest loose file and the number of entries that could not be measured.

    The hot loop: one lstat per entry, counters in locals. A name's length is measured only
    within NAME_MAX bytes of the limit.
    """
    files = nbytes = linked = largest = errors = 0
    children: list[str] = []
    at_root = not rel
    room = _room(rel)
    near = room < NAME_MAX
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
        if near and len(os.fsencode(name)) > room:
            _past_limit(far, todo, rel, name, st, mount_dev)
            continue
        if kind == _S_IFDIR:
            child = join(rel, name)
            children.append(child)
            _subdirectory(todo, tree, child, st.st_dev != mount_dev)
            continue
        files += 1
        size = st.st_size if kind == _S_IFREG else 0
        nbytes += size
        largest = size if size > largest else largest  # no call per entry: the hot loop
        linked += kind == _S_IFREG and st.st_nlink > 1
        if files <= keep_loose:
            loose.append((name, size))
    d.own_files, d.bytes, d.hardlinked = files, nbytes, linked
    d.children = tuple(sorted(children))
    return largest, errors


SAMPLED = 64
"""Loose entries measured first in a directory read in parts, to guess what one weighs."""
SLICE = 128
"""Entries of a part measured on one thread at a time: a part of a thousand entries is
measured by eight threads at once where they are free."""


class _PartsReader:
    """Reads a directory of many loose entries in parts, for live mode (:class:`InParts`):
    names first, sorting out subdirectories by the type readdir gives; then, once the
    planner has cut it by them, each part is measured on whichever walk thread is free and
    handed over as it is done. The directory's subdirectories are in its record from the
    start, and the walk reads them as usual, while its parts are measured or after."""

    def __init__(self, hooks: InParts, listed: Listed) -> None:
        self.hooks = hooks
        self.listed = listed

    def read(self, tree: Tree, mount_dev: int, lock: threading.Lock, progress: Progress | None,
             fd: int, rel: str, head: list[os.DirEntry]) -> list[WalkItem] | None:
        """The child directories to scan and the parts to measure (each hands itself over;
        ``fd`` is theirs from then on, closed with the last); None where the directory has
        too few loose entries, an entry's type cannot be read, or the planner does not take
        it (nothing is counted then: the caller reads ``head`` as any directory)."""
        if len(head) < PARTS_MIN:
            return None
        sorted_out = _sort_out(head, rel)
        if sorted_out is None:
            return None
        skipped, far_entries, subdirs, loose = sorted_out
        if len(loose) < PARTS_MIN:
            return None
        sample = loose[::max(len(loose) // SAMPLED, 1)]
        stats = {e.name: _quiet_stat(e) for e in (*subdirs, *sample)}
        guess = _bulk_mean([st.st_size if st.st_mode & _S_IFMT == _S_IFREG else 0
                            for st in (stats[e.name] for e in sample) if st is not None])
        d = Dir(own_files=len(loose), children=tuple(sorted(join(rel, e.name) for e in subdirs)))
        todo: list[str] = []
        with lock:
            parts = self.hooks.opened(rel, d, [e.name for e in far_entries], [e.name for e in loose], guess)
            if parts is None:
                return None
            assert parts, f"/{rel} taken in no part"
            tree.skipped.extend(skipped)
            self._commit(tree, mount_dev, rel, todo, subdirs, far_entries, stats)
        by_name = {e.name: e for e in loose}
        slices = [(key, [by_name[n] for n in names[i:i + SLICE]]) for key, names in parts
                  for i in range(0, len(names), SLICE)]
        measuring = _Measuring(self.hooks, tree, lock, progress, fd, rel, d.children, [key for key, _ in slices])
        return [*todo, *(Part(rel, partial(measuring.part, key, entries)) for key, entries in slices)]

    def _commit(self, tree: Tree, mount_dev: int, rel: str, todo: list[str], subdirs: list[os.DirEntry],
                far_entries: list[os.DirEntry], stats: dict[str, os.stat_result | None]) -> None:
        """What a listing records beside its counts, for a directory the planner took: its
        entries past the path limit, its subdirectories to scan, and those on another file
        system (listed at once, as the walk lists them after their parent)."""
        far: list[tuple[str, bool, int]] = []
        for e in far_entries:
            try:
                st = _stat(e, rel)
            except OSError:
                tree.stat_errors += 1
                continue
            if st is not None:
                _past_limit(far, todo, rel, e.name, st, mount_dev)
        if far:
            _count_past_limit(tree.past_limit, rel, far, True)
            tree.past_limit.names.pop(rel, None)  # the planner holds them while the directory is open
        for e in subdirs:
            st = stats[e.name]  # gone or unreadable: the walk's read of it says so
            _subdirectory(todo, tree, join(rel, e.name), st is not None and st.st_dev != mount_dev)
        for e in subdirs:
            child = join(rel, e.name)
            if child in tree.dirs:
                self.listed(child, tree.dirs.pop(child), [], None)


def _sort_out(head: list[os.DirEntry],
              rel: str) -> tuple[list[str], list[os.DirEntry], list[os.DirEntry], list[os.DirEntry]] | None:
    """A directory's entries by what readdir says they are: the paths DataSync skips, the
    entries past its path limit, the subdirectories and the loose entries (by name); None
    where an entry's type had to be read and could not be (the directory is then read as
    any other, which reports it)."""
    at_root, room = not rel, _room(rel)
    near = room < NAME_MAX
    skipped: list[str] = []
    far: list[os.DirEntry] = []
    subdirs: list[os.DirEntry] = []
    loose: list[os.DirEntry] = []
    for e in head:
        if _skipped_by_datasync(e.name, at_root):
            skipped.append(join(rel, e.name))
        elif near and len(os.fsencode(e.name)) > room:
            far.append(e)
        else:
            try:  # readdir's type; an lstat where it gives none (cached by the entry for its part)
                is_dir = e.is_dir(follow_symlinks=False)
            except OSError:
                return None
            (subdirs if is_dir else loose).append(e)
    loose.sort(key=lambda e: e.name)
    return skipped, far, subdirs, loose


class _Measuring:
    """A directory read in parts while its parts are measured, each in slices (so that every
    thread free measures one part's entries, and the part is handed over sooner): its fd
    (closed with the last slice, once no entry is measured through it), each part's totals
    until its last slice is measured, and the directory's."""

    def __init__(self, hooks: InParts, tree: Tree, lock: threading.Lock, progress: Progress | None, fd: int,
                 rel: str, children: tuple[str, ...], slices: list[str]) -> None:
        self.hooks, self.tree, self.lock, self.progress = hooks, tree, lock, progress
        self.fd, self.rel, self.slices = fd, rel, len(slices)
        self.to_measure = collections.Counter(slices)
        self.parts: dict[str, Dir] = {key: Dir() for key in self.to_measure}
        self.measured = self.ended = 0
        self.total = Dir(children=children)
        self.largest = self.errors = 0

    def part(self, key: str, entries: list[os.DirEntry]) -> None:
        """Measure one slice of part ``key``; its last slice hands the part over, and the last
        one measured ends the directory's listing. The fd is closed once every slice has
        ended, even one that raised (a bug: the walk raises it), so that its number is never
        reused under an entry still to stat."""
        try:
            self._measure(key, entries)
        finally:
            with self.lock:
                self.ended += 1
                last = self.ended == self.slices
            if last:
                os.close(self.fd)

    def _measure(self, key: str, entries: list[os.DirEntry]) -> None:
        d = Dir()
        largest, errors = _measure(d, entries, self.rel)
        with self.lock:
            part, t = self.parts[key], self.total
            for acc in (part, t):
                acc.own_files, acc.bytes, acc.hardlinked = (acc.own_files + d.own_files, acc.bytes + d.bytes,
                                                            acc.hardlinked + d.hardlinked)
            self.to_measure[key] -= 1
            if not self.to_measure[key]:
                self.hooks.part_listed(self.rel, key, part.bytes, part.own_files)
            self.largest, self.errors = max(self.largest, largest), self.errors + errors
            self.measured += 1
            done = self.measured == self.slices
            if done:
                self.tree.largest_file = max(self.tree.largest_file, self.largest)
                self.tree.stat_errors += self.errors
                self.hooks.listing_done(self.rel, t)
        if self.progress:
            self.progress.add(d, dirs=int(done))


def _bulk_mean(sizes: list[int]) -> int:
    """The mean of ``sizes`` without its largest sixteenth: on sizes with a heavy tail, one
    large file in a small sample would otherwise weigh every name as if it were large, and
    the cut would cut the directory many times finer than its bytes need."""
    bulk = sorted(sizes)[:len(sizes) - len(sizes) // 16]
    return sum(bulk) // len(bulk) if bulk else 0


def _quiet_stat(entry: os.DirEntry) -> os.stat_result | None:
    """The entry's lstat, or None: measured again where it counts (and reported there)."""
    try:
        return entry.stat(follow_symlinks=False)
    except OSError:
        return None


def _measure(d: Dir, entries: list[os.DirEntry], rel: str) -> tuple[int, int]:
    """Count loose entries into ``d`` (own_files, bytes, hardlinked), as :func:`_tally` counts
    them, each lstat'ed through its directory's fd (still open) unless the entry has it
    already; returns the largest file and the entries that could not be measured, an entry
    that has become a directory since it was listed among them."""
    files = nbytes = linked = largest = errors = 0
    for entry in entries:
        try:
            st = _stat(entry, rel)
        except OSError:
            errors += 1
            continue
        if st is None:
            continue
        kind = st.st_mode & _S_IFMT
        if kind == _S_IFDIR:
            log.warning("/%s became a directory while it was scanned; it is not counted", join(rel, entry.name))
            errors += 1
            continue
        files += 1
        size = st.st_size if kind == _S_IFREG else 0
        nbytes += size
        largest = max(largest, size)
        linked += kind == _S_IFREG and st.st_nlink > 1
    d.own_files, d.bytes, d.hardlinked = files, nbytes, linked
    return largest, errors


def _past_limit(far: list[tuple[str, bool, int]], todo: list[str], rel: str, name: str, st: os.stat_result,
                mount_dev: int) -> None:
    """An entry past DataSync's path limit: counted apart; a directory is still scanned, to count what is in it."""
    kind = st.st_mode & _S_IFMT
    far.append((name, kind == _S_IFDIR, st.st_size if kind == _S_IFREG else 0))
    if kind == _S_IFDIR and st.st_dev == mount_dev:
        todo.append(join(rel, name))


def _subdirectory(todo: list[str], tree: Tree, child: str, other_file_system: bool) -> None:
    """A subdirectory is scanned next, unless it is another file system: that one stays whole,
    with its parent."""
    if other_file_system:
        log.warning("/%s is another file system; it is not scanned and stays with its parent", child)
        tree.dirs[child] = Dir(note=OTHER_FILE_SYSTEM)
    else:
        todo.append(child)


def loose_entries(mount: str, rel: str) -> Iterator[tuple[str, int]]:
    """(name, size) of each non-directory entry of one directory, read again: the same
    entries :func:`_tally` counts (sizes of regular files; 0 for links and the like)."""
    room = _room(rel)
    near = room < NAME_MAX
    fd = _open_dir(mount, rel)
    try:
        with os.scandir(fd) as it:
            for entry in it:
                if _skipped_by_datasync(entry.name, not rel) or near and len(os.fsencode(entry.name)) > room:
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


@dataclass(frozen=True)
class SizeGuess:
    """A share's size as guessed before the scan, and how."""

    bytes: int
    entries: int
    """Files and directories."""
    how: str


def guess_size(mount: str, roots: tuple[str, ...], probes: int = 64, seed: int = 0) -> SizeGuess:
    """The share's size before the scan: Knuth's estimate from ``probes`` random paths down
    each root (each directory on a path stands for as many as the branching above it
    multiplies to: unbiased, and a few hundred listings at most). For the whole export
    mounted at its own mount point, what its file system says it uses (statvfs) is taken
    where the sample agrees with it (:func:`weigh_statvfs`): an export that is one directory
    of a larger volume shows the whole volume's use, many times the share, and chunks sized
    from it would not close before the scan ends."""
    mount = os.path.realpath(mount)
    kept = tuple(r for r in roots if not datasync_skips(r))
    sample = _knuth_estimate(mount, kept, probes, seed)
    point = mount_of(mount)
    if kept == ("",) and point is not None and os.path.realpath(point[0]) == mount:
        st = os.statvfs(mount)
        return weigh_statvfs(sample, (st.f_blocks - st.f_bfree) * st.f_frsize, max(st.f_files - st.f_ffree, 0))
    return sample


def weigh_statvfs(sample: SizeGuess, used: int, inodes: int) -> SizeGuess:
    """What the export's file system says it holds, where it is the share's. Up to
    STATVFS_TRUSTED times the sample's bytes: its bytes and inodes. More: the volume holds
    more than the share, and the sample is taken. Far fewer bytes than the sample: the file
    system stores the share compressed, deduplicated or sparse, while DataSync moves the
    files' sizes, so the sample's bytes are taken beside the file system's inode count."""
    if not (used and inodes):
        return sample
    if used > STATVFS_TRUSTED * max(sample.bytes, 1):
        return SizeGuess(sample.bytes, sample.entries,
                         f"{sample.how}; the export's file system uses {human_bytes(used)}, more than "
                         f"{STATVFS_TRUSTED}x that: it holds more than this share")
    if used * STATVFS_TRUSTED < sample.bytes:
        return SizeGuess(sample.bytes, inodes,
                         f"{inodes:,} inodes in use (statvfs of the export) and {human_bytes(sample.bytes)} from "
                         f"{sample.how}: the file system's {human_bytes(used)} is less than a {STATVFS_TRUSTED}th of "
                         "that, a share stored compressed, deduplicated or sparse")
    return SizeGuess(used, inodes, f"statvfs of the export: {human_bytes(used)} and {inodes:,} inodes in use")


STATVFS_TRUSTED = 4
"""statvfs's bytes are taken over the sample's while the two are at most this many times apart."""


def _knuth_estimate(mount: str, kept: tuple[str, ...], probes: int, seed: int) -> SizeGuess:
    """The probes run side by side, on as many threads as the walk would use (each listing a
    round trip or more on a network mount, and nothing to start the chunks until this ends),
    each directory listed once however many probes pass it; each probe draws from its own
    seed, so the estimate does not depend on the threads."""
    mount_dev = os.lstat(mount).st_dev
    lock = threading.Lock()
    Listing = tuple[int, int, tuple[str, ...], bool]
    listings: dict[str, Future[Listing]] = {}

    def listing(rel: str) -> Listing:
        mine: Future[Listing] = Future()
        with lock:
            known = listings.setdefault(rel, mine)
        if known is not mine:
            return known.result()
        try:
            mine.set_result(_sampled_listing(mount, rel, mount_dev, random.Random(f"{seed}/{rel}")))
        except BaseException as exc:
            mine.set_exception(exc)
        return mine.result()

    def probe(root: str, number: int) -> tuple[float, float]:
        rng = random.Random(f"{seed}/{root}/{number}")
        rel, weight, nbytes, entries = root, 1.0, 0.0, 0.0
        while True:
            own_bytes, own_files, children, _ = listing(rel)
            nbytes += weight * own_bytes
            entries += weight * (own_files + 1)
            if not children:
                return nbytes, entries
            weight *= len(children)
            rel = rng.choice(children)

    per_root = max(probes // max(len(kept), 1), 1)
    pool = ThreadPoolExecutor(max_workers=default_workers(mount))
    try:
        drawn = list(pool.map(probe, [r for r in kept for _ in range(per_root)],
                              [n for _ in kept for n in range(per_root)]))
    finally:  # a probe that failed fails the guess at once: the probes not begun are dropped
        pool.shutdown(cancel_futures=True)
    nbytes = sum(b for b, _ in drawn) / per_root
    entries = sum(e for _, e in drawn) / per_root
    large = sum(1 for f in listings.values() if f.result()[3])
    measured = f", {large:,} of them weighed from {SIZE_SAMPLE_STATS:,} of their entries" if large else ""
    return SizeGuess(int(nbytes), int(entries), f"a sample of {per_root * len(kept)} random paths "
                                                f"({len(listings):,} directories listed{measured}), Knuth's estimate")


SIZE_SAMPLE_STATS = 1024
"""Entries besides subdirectories the size sample measures in one directory: a directory of
millions of files on a path would otherwise cost an lstat each (minutes over NFS) before
the scan begins. Its files are counted from the listing; their bytes are those of a random
draw of this many, scaled up."""


def _sampled_listing(mount: str, rel: str, mount_dev: int,
                     rng: random.Random) -> tuple[int, int, tuple[str, ...], bool]:
    """A directory's bytes, files (estimated past SIZE_SAMPLE_STATS entries besides its
    subdirectories), child directories, and whether it was estimated. Subdirectories are
    told by the type readdir gives (an lstat where it gives none), and all measured; an
    entry whose type cannot be read is measured as the walk measures it (an error, counted
    and logged). A directory that cannot be opened weighs nothing, as in the walk."""
    d, tree = Dir(), Tree({}, (), lambda _: iter(()))
    try:
        fd = _open_dir(mount, rel)
    except OSError:
        return 0, 0, (), False
    try:
        with os.scandir(fd) as it:
            dirs: list[os.DirEntry] = []
            others: list[os.DirEntry] = []
            for entry in it:
                (dirs if _typed_dir(entry) else others).append(entry)
        drawn = rng.sample(others, SIZE_SAMPLE_STATS) if len(others) > SIZE_SAMPLE_STATS else others
        _tally(d, [], [], iter(dirs + drawn), rel, mount_dev, tree, [])
    finally:
        os.close(fd)
    scale = len(others) / len(drawn) if drawn else 1.0
    return round(d.bytes * scale), round(d.own_files * scale), d.children, len(drawn) < len(others)


def _typed_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False
