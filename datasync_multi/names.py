"""Exact, bounded counts of one directory's loose entries by name prefix.

A flat directory of millions of files is split by name into prefix groups
(``/spool/msg12*``). To size those groups honestly the planner needs to know exactly how
many files and bytes start with each prefix, without holding millions of names.

A :class:`NameHistogram` streams a directory's names once and keeps at most ``budget``
keys. A key is either an exact name, or a *bucket*: a prefix followed by :data:`BUCKET`,
standing for every name that starts with that prefix and is longer than it. When the
keys outgrow the budget, names are cut to a shorter width and their counts summed, so
every count stays exact; only the resolution drops. :func:`refine` then reads the
directory again for just the buckets that are still too heavy, and replaces each with
finer keys under it. The result is a sorted list of disjoint keys whose counts add up to
the directory's loose entries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

BUCKET = "\0"
"""Ends a bucket key. No file name holds NUL, and NUL sorts before every other character,
so sorted keys follow a trie's order: ``ab`` < ``ab\\0`` (longer names under ab) < ``aba``."""

DEFAULT_BUDGET = 4096
"""Keys kept per directory (and per refined bucket): a few hundred KiB at most."""

MAX_REFINE_PASSES = 4
"""Extra reads of one directory to resolve buckets that are still too heavy."""


@dataclass(frozen=True, slots=True)
class NameCount:
    key: str
    """An exact name, or a prefix + BUCKET."""
    files: int
    bytes: int

    @property
    def is_bucket(self) -> bool:
        return self.key.endswith(BUCKET)

    @property
    def stem(self) -> str:
        """The name, or the prefix that every name of the bucket extends."""
        return self.key[:-1] if self.is_bucket else self.key


def _cut(key: str, width: int) -> str:
    """The key that ``key`` falls under when names longer than ``width`` become buckets."""
    stem = key[:-1] if key.endswith(BUCKET) else key
    return stem[:width] + BUCKET if len(stem) > width else key


class NameHistogram:
    """Exact (files, bytes) per key over a stream of (name, size), with at most ``budget`` keys
    (never fewer than the distinct characters that follow ``floor`` characters)."""

    def __init__(self, budget: int = DEFAULT_BUDGET, floor: int = 0):
        self.budget = budget
        self.floor = floor
        """Names are never cut shorter than this (a refined bucket's prefix length + 1)."""
        self.width: int | None = None
        """Names longer than this are kept as buckets; None while every name is kept whole."""
        self.counts: dict[str, list[int]] = {}

    def add(self, name: str, size: int) -> None:
        key = name if self.width is None or len(name) <= self.width else name[:self.width] + BUCKET
        tally = self.counts.get(key)
        if tally is None:
            self.counts[key] = [1, size]
            if len(self.counts) > self.budget:
                self._coarsen()
        else:
            tally[0] += 1
            tally[1] += size

    def _coarsen(self) -> None:
        """Cut to the widest width that leaves at most half the budget of keys."""
        width = max(len(k) for k in self.counts) if self.width is None else self.width
        while width > self.floor:
            width -= 1
            if len({_cut(k, width) for k in self.counts}) <= self.budget // 2:
                break
        merged: dict[str, list[int]] = {}
        for key, (files, nbytes) in self.counts.items():
            tally = merged.setdefault(_cut(key, width), [0, 0])
            tally[0] += files
            tally[1] += nbytes
        self.counts, self.width = merged, width

    def result(self) -> list[NameCount]:
        return [NameCount(k, f, b) for k, (f, b) in sorted(self.counts.items())]


def histogram(entries: Iterable[tuple[str, int]], budget: int = DEFAULT_BUDGET) -> list[NameCount]:
    """One pass over (name, size): exact counts under at most ``budget`` keys, sorted."""
    hist = NameHistogram(budget, floor=1)
    for name, size in entries:
        hist.add(name, size)
    return hist.result()


KEYS_PER_TARGET = 4
"""Keys a heavy bucket is refined into for each target's worth of weight it holds: enough
to cut it into even pieces, few enough that the whole directory stays near the number of
units it will become."""


def refine(counts: list[NameCount], read: Callable[[], Iterator[tuple[str, int]]],
           weigh: Callable[[NameCount], float], budget: int = DEFAULT_BUDGET,
           passes: int = MAX_REFINE_PASSES) -> list[NameCount]:
    """Re-read the directory (``read``) to split every bucket heavier than the target
    (``weigh`` > 1, in targets), up to ``passes`` times. Each pass reads the directory once
    for all heavy buckets together, and gives each about KEYS_PER_TARGET keys per target of
    weight (at most ``budget``), so memory follows the cut, not the names."""
    for _ in range(passes):
        heavy = {c.stem: NameHistogram(min(budget, max(8, int(KEYS_PER_TARGET * weigh(c)) + 1)),
                                       floor=len(c.stem) + 1)
                 for c in counts if c.is_bucket and c.files > 1 and weigh(c) > 1}
        if not heavy:
            break
        lengths = sorted({len(stem) for stem in heavy})
        for name, size in read():
            for n in lengths:
                if len(name) > n:
                    hist = heavy.get(name[:n])
                    if hist is not None:
                        hist.add(name, size)
                        break
        finer = [c for c in counts if not (c.is_bucket and c.stem in heavy)]
        for hist in heavy.values():
            finer += hist.result()
        counts = sorted(finer, key=lambda c: c.key)
    return counts
