"""The share-wide audit: every entry in scope at the destination, with its size and
modification time, nothing else there, and, for what is missing, which chunk or task should
have carried it.

Both sides come as streams in S3's key order (``ordered.OrderedWalk`` for a mounted tree,
an S3 listing for a bucket) and are merged in one pass, so memory does not grow with the
share. What the audit cannot judge (a metadata key DataSync is not documented to write, a
directory with no object of its own, a name that is not UTF-8) is reported as such, never
counted as a match.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .filters import READINGS, WHOLE_LOCATION, Reading, pattern_matches
from .ordered import DIR, FILE, OBJECT, OTHER, Entry

MISSING, EXTRA, SIZE, MTIME, KIND, UNREADABLE, UNJUDGED = (
    "missing", "extra", "size differs", "modification time differs", "type differs", "could not be read",
    "could not be judged")
CATEGORIES = (MISSING, EXTRA, SIZE, MTIME, KIND, UNREADABLE, UNJUDGED)
EXAMPLES = 5
"""Examples per category on the console; the report file has them all."""
METADATA_READERS = 16
"""Threads reading object metadata (HeadObject): each read is a round trip."""
METADATA_WINDOW = 1024
"""Reads outstanding at most: memory stays bounded whatever the share."""


@dataclass(frozen=True)
class Carrier:
    """A task or chunk of the run: what its filters include, and how its execution ended."""

    name: str
    includes: tuple[str, ...]
    execution: str = ""
    status: str = ""


class Carriers:
    """Which of the run's tasks or chunks select a path, under each reading of the filter rules."""

    def __init__(self, carriers: Sequence[Carrier]) -> None:
        self.carriers = list(carriers)
        self.everything = [c for c in carriers if WHOLE_LOCATION in c.includes or "/" in c.includes]
        self.by_stem: dict[str, list[tuple[Carrier, str]]] = {}
        for c in carriers:
            for pattern in c.includes:
                if pattern not in (WHOLE_LOCATION, "/"):
                    self.by_stem.setdefault(pattern.rstrip("*").rstrip("/"), []).append((c, pattern))
        self.lengths = sorted({len(stem) for stem in self.by_stem})

    def owners(self, path: str, reading: Reading) -> list[Carrier]:
        """The carriers selecting ``path`` ('/'-led) under ``reading``, each once."""
        out = list(self.everything)
        for end in self.lengths:
            if end > len(path):
                break
            for carrier, pattern in self.by_stem.get(path[:end], ()):
                if carrier not in out and pattern_matches(pattern, path, reading):
                    out.append(carrier)
        return out

    def explain(self, path: str) -> dict[str, Any]:
        """Who should have carried ``path``: under every reading at once when they agree."""
        by_reading = {str(r): [c.name for c in self.owners(path, r)] for r in READINGS}
        names = set(map(tuple, by_reading.values()))
        verdict: dict[str, Any]
        if names == {()}:
            verdict = {"verdict": "selected by no task or chunk under any reading: a planning problem"}
        elif len(names) == 1:
            (only,) = names
            if len(only) == 1:
                carrier = next(c for c in self.carriers if c.name == only[0])
                verdict = {"verdict": f"{carrier.name} should have carried it: a transfer problem",
                           "carrier": carrier.name, "execution": carrier.execution,
                           "status": carrier.status or "not known to have ended"}
            else:
                verdict = {"verdict": f"selected by {len(only)} ({', '.join(only)}) under every reading"}
        else:
            verdict = {"verdict": "the readings of DataSync's filter rules disagree", "by_reading": by_reading}
        return verdict


@dataclass(frozen=True)
class Difference:
    category: str
    path: str
    detail: str = ""
    source: Entry | None = None
    dest: Entry | None = None
    carriers: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"category": self.category, "path": self.path}
        if self.detail:
            out["detail"] = self.detail
        for side, entry in (("source", self.source), ("destination", self.dest)):
            if entry is not None:
                out[side] = {"kind": entry.kind, "size": entry.size, "mtime_ns": entry.mtime_ns}
        if self.carriers is not None:
            out["carried_by"] = self.carriers
        return out


@dataclass
class Tally:
    """Counts per category, the first examples of each, and what was compared."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    examples: dict[str, list[Difference]] = field(default_factory=lambda: {c: [] for c in CATEGORIES})
    source_entries: int = 0
    dest_entries: int = 0
    matched: int = 0
    metadata_checked: int = 0
    special: int = 0
    """Devices, sockets and FIFOs at the source: DataSync does not carry them to S3; not compared."""

    def add(self, difference: Difference) -> None:
        self.counts[difference.category] += 1
        if len(self.examples[difference.category]) < EXAMPLES:
            self.examples[difference.category].append(difference)

    @property
    def same(self) -> bool:
        return not any(self.counts.values())

    def to_json(self) -> dict[str, Any]:
        return {"summary": {**self.counts, "source_entries": self.source_entries, "dest_entries": self.dest_entries,
                            "matched": self.matched, "metadata_checked": self.metadata_checked,
                            "special_files_not_compared": self.special}}


def merged(source: Iterable[Entry], dest: Iterable[Entry]) -> Iterator[tuple[Entry | None, Entry | None]]:
    """Pairs by key from two streams in key order: (source, dest), either None where the other
    side has no such key."""
    s_it, d_it = iter(source), iter(dest)
    s, d = next(s_it, None), next(d_it, None)
    while s is not None or d is not None:
        if d is None or (s is not None and s.key < d.key):
            yield s, None
            s = next(s_it, None)
        elif s is None or d.key < s.key:
            yield None, d
            d = next(d_it, None)
        else:
            yield s, d
            s, d = next(s_it, None), next(d_it, None)


class _Peek:
    """A stream that can be looked one entry ahead of."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self.it = iter(entries)
        self.head: Entry | None = next(self.it, None)

    def __iter__(self) -> Iterator[Entry]:
        while self.head is not None:
            entry, self.head = self.head, next(self.it, None)
            yield entry


@dataclass
class Audit:
    """One comparison: how sizes and times are judged, and who should have carried what."""

    carriers: Carriers | None
    mtime_window_ns: int = 1_000_000_000
    """Modification times closer than this are the same (what precision each side keeps is not documented)."""
    metadata: Callable[[Entry], int | str | None] | None = None
    """For an S3 destination: the object's modification time from its metadata (ns), a reason it
    cannot be judged (str), for the sampled objects; None for a mounted destination (lstat)."""
    sample: int | None = None
    """Objects whose metadata is read (HeadObject): None for every one."""
    seed: int = 0
    tally: Tally = field(default_factory=Tally)

    def run(self, source: Iterable[Entry], dest: Iterable[Entry], out: Callable[[Difference], None]) -> Tally:
        """Compare, handing each difference to ``out`` as it is found. Metadata is read on
        :data:`METADATA_READERS` threads, at most :data:`METADATA_WINDOW` reads ahead."""
        dest_peek = _Peek(dest)
        self._out = out
        self._unreadable: bytes | None = None
        self._reservoir: list[tuple[Entry, Entry]] = []
        self._rng = random.Random(self.seed)
        self._seen = 0
        self._reads: deque[tuple[Entry, Entry, Future[int | str | None]]] = deque()
        with ThreadPoolExecutor(METADATA_READERS, thread_name_prefix="audit-head") as self._readers:
            for s, d in merged(self._in_scope(source), self._counted(dest_peek)):
                self._pair(s, d, dest_peek.head)
            for s, d in sorted(self._reservoir, key=lambda pair: pair[0].key):
                self._check_time(s, d)
            self._settle(0)
        return self.tally

    def _emit(self, difference: Difference) -> None:
        self.tally.add(difference)
        self._out(difference)

    def _pair(self, s: Entry | None, d: Entry | None, next_dest: Entry | None) -> None:
        """Judge one key: only at the source, only at the destination, or on both sides."""
        key = (s or d).key  # type: ignore[union-attr]
        if self._unreadable is not None and not key.startswith(self._unreadable):
            self._unreadable = None
        if s is None:
            assert d is not None
            self._emit(Difference(UNJUDGED, d.path, "below a source directory that could not be read", dest=d)
                       if self._unreadable is not None else Difference(EXTRA, d.path, dest=d))
        elif s.error:
            self._emit(Difference(UNREADABLE, s.path, s.error, source=s, dest=d))
            if s.kind == DIR:
                self._unreadable = s.key
        elif d is None:
            self._emit(self._missing(s, next_dest))
        elif (difference := self._compare(s, d)) is not None:
            self._emit(difference)
        else:
            self.tally.matched += 1
            if self.metadata is not None and s.kind == FILE:  # a link's own time: kept or not, not documented
                self._time_later(s, d)

    def _time_later(self, s: Entry, d: Entry) -> None:
        """Read the object's time now (every object) or keep it in the sample (reservoir sampling:
        each matched object is as likely to be read, whatever the share's size)."""
        if self.sample is None:
            self._check_time(s, d)
            return
        self._seen += 1
        if len(self._reservoir) < self.sample:
            self._reservoir.append((s, d))
        elif (j := self._rng.randrange(self._seen)) < self.sample:
            self._reservoir[j] = (s, d)

    def _in_scope(self, source: Iterable[Entry]) -> Iterator[Entry]:
        for entry in source:
            self.tally.source_entries += 1
            if entry.kind == OTHER and not entry.error:
                self.tally.special += 1
                continue
            yield entry

    def _counted(self, dest: Iterable[Entry]) -> Iterator[Entry]:
        for entry in dest:
            self.tally.dest_entries += 1
            if entry.kind == OTHER and not entry.error:  # a device or socket on a mounted destination, as at the source
                continue
            yield entry

    def _missing(self, s: Entry, next_dest: Entry | None) -> Difference:
        try:
            s.key.decode("utf-8")
        except UnicodeDecodeError:
            return Difference(UNJUDGED, s.path, "its name is not UTF-8: how DataSync names it at the destination is "
                                                "not documented", source=s)
        if s.kind == DIR and next_dest is not None and next_dest.key.startswith(s.key):
            return Difference(UNJUDGED, s.path, "no directory object of its own, though what it holds is there: "
                                                "whether DataSync writes one in every mode is not documented",
                              source=s)
        carriers = self.carriers.explain(s.path.rstrip("/")) if self.carriers is not None else None
        return Difference(MISSING, s.path, source=s, carriers=carriers)

    def _compare(self, s: Entry, d: Entry) -> Difference | None:
        if d.error:
            return Difference(UNREADABLE, d.path, d.error, source=s, dest=d)
        if s.kind == DIR or d.kind == DIR:
            return None if s.kind == d.kind else Difference(KIND, s.path, f"{s.kind} at the source, {d.kind} at "
                                                                          "the destination", s, d)
        if d.kind != OBJECT and s.kind != d.kind:
            return Difference(KIND, s.path, f"{s.kind} at the source, {d.kind} at the destination", s, d)
        if s.size != d.size:
            return Difference(SIZE, s.path, f"{s.size:,} bytes at the source, {d.size:,} at the destination", s, d)
        if s.kind == FILE and d.kind == FILE and not self._same_time(s.mtime_ns, d.mtime_ns):
            # by lstat on both sides; an object's time is in its metadata, read only when sampled
            return Difference(MTIME, s.path, _times(s.mtime_ns, d.mtime_ns), s, d)
        return None

    def _check_time(self, s: Entry, d: Entry) -> None:
        """Read the object's time on a reader thread; judge the reads that have come back."""
        assert self.metadata is not None
        self._reads.append((s, d, self._readers.submit(self.metadata, d)))
        self._settle(METADATA_WINDOW)

    def _settle(self, leave: int) -> None:
        """Judge the oldest reads until at most ``leave`` are outstanding."""
        while len(self._reads) > leave:
            s, d, future = self._reads.popleft()
            found = future.result()
            self.tally.metadata_checked += 1
            if isinstance(found, str):
                self._emit(Difference(UNJUDGED, s.path, found, s, d))
            elif found is not None and not self._same_time(s.mtime_ns, found):
                self._emit(Difference(MTIME, s.path, _times(s.mtime_ns, found), s, d))

    def _same_time(self, a: int | None, b: int | None) -> bool:
        return a is not None and b is not None and abs(a - b) < self.mtime_window_ns


def _times(source: int | None, dest: int | None) -> str:
    def shown(ns: int | None) -> str:
        return "unknown" if ns is None else f"{ns / 1e9:.3f}"
    return f"modified at {shown(source)} s at the source, {shown(dest)} s at the destination (since the epoch)"


def parse_mtime(metadata: dict[str, str]) -> int | str:
    """A modification time from DataSync's S3 user metadata, in ns; or why it cannot be judged.
    The key (``file-mtime``) and its forms (nanoseconds ending 'ns', else milliseconds) are FSx
    for Lustre's, which DataSync says it is interoperable with: not documented for DataSync
    itself (docs/datasync-facts.md §11)."""
    value = metadata.get("file-mtime")
    if value is None:
        return "no file-mtime in its metadata: its modification time cannot be judged"
    try:
        return int(value[:-2]) if value.endswith("ns") else int(value) * 1_000_000
    except ValueError:
        return f"file-mtime {value!r} is in no form the audit knows"
