"""Pack units onto agents: even cost, each task's filter (in UTF-8 bytes) and item count within
DataSync's limits.

Units are independent (each is one include pattern that reaches nothing another unit
holds), so any assignment is exactly-once; packing is only about balance and limits.
Largest first onto the least-loaded agent that still has room, then moves and swaps off
the heaviest task while that lowers it. Ties go to the agent with fewer patterns, so
units of no cost (empty directories with ``--per_file_cost 0``) spread out instead of
piling onto one filter. Every order is total, so the same units give the same packing.
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from .filters import value_bytes
from .split import Unit

MAX_IMPROVE_ROUNDS = 2000
"""Moves and swaps tried off the heaviest task; each lowers it, so this only caps the time."""

SWAP_PARTNERS = 8
"""Swap candidates tried per unit, nearest to the cost that evens the pair out."""


@dataclass(frozen=True)
class Limits:
    filter_bytes: int
    """UTF-8 bytes in one task's include value (see ``filters.MAX_FILTER_BYTES``)."""
    items: int | None
    """Items one execution may list (Basic mode's quota); None for no limit."""


class _Bins:
    def __init__(self, n: int, limits: Limits):
        self.members: list[list[Unit]] = [[] for _ in range(n)]
        self.cost = [0] * n
        self.length = [-1] * n  # UTF-8 bytes of the value: n patterns take their lengths + n - 1 separators
        self.items = [0] * n
        self.limits = limits

    @staticmethod
    def size(unit: Unit) -> int:
        """What the unit adds to a filter value: its pattern and a '|', in UTF-8 bytes."""
        return value_bytes(unit.pattern) + 1

    def room(self, i: int, unit: Unit, leaving: Unit | None = None) -> bool:
        length = self.length[i] + self.size(unit) - (self.size(leaving) if leaving else 0)
        items = self.items[i] + unit.items - (leaving.items if leaving else 0)
        return length <= self.limits.filter_bytes and (self.limits.items is None or items <= self.limits.items)

    def open(self) -> None:
        self.members.append([])
        self.cost.append(0)
        self.length.append(-1)
        self.items.append(0)

    def put(self, i: int, unit: Unit) -> None:
        self.members[i].append(unit)
        self.cost[i] += unit.cost
        self.length[i] += self.size(unit)
        self.items[i] += unit.items

    def take(self, i: int, unit: Unit) -> None:
        self.members[i].remove(unit)
        self.cost[i] -= unit.cost
        self.length[i] -= self.size(unit)
        self.items[i] -= unit.items


def pack(units: Sequence[Unit], n: int, limits: Limits) -> list[list[Unit]] | None:
    """Units per agent, or None when some unit fits no agent's limits."""
    bins = _Bins(n, limits)
    lightest = [(0, 0, i) for i in range(n)]  # a heap of (cost, patterns, agent): one entry per agent
    for unit in sorted(units, key=lambda u: (-u.cost, u.pattern)):
        full = []
        while lightest and not bins.room(lightest[0][2], unit):
            full.append(heapq.heappop(lightest))
        if not lightest:
            return None
        _, _, target = heapq.heappop(lightest)
        bins.put(target, unit)
        for entry in [*full, (bins.cost[target], len(bins.members[target]), target)]:
            heapq.heappush(lightest, entry)
    _improve(bins)
    return [sorted(m, key=lambda u: u.pattern) for m in bins.members]


def pack_shares(units: Sequence[Unit], shares: Sequence[int], limits: Limits) -> list[list[Unit]]:
    """Units in pieces of about the given costs: largest first, each into the piece furthest
    below its share that still has room; a unit no piece has room for opens a piece of its own."""
    bins = _Bins(len(shares), limits)
    wanted = list(shares)
    for unit in sorted(units, key=lambda u: (-u.cost, u.pattern)):
        fits = [i for i in range(len(wanted)) if bins.room(i, unit)]
        if not fits:
            bins.open()
            wanted.append(0)
            fits = [len(wanted) - 1]
        bins.put(max(fits, key=lambda i: (wanted[i] - bins.cost[i], -len(bins.members[i]), -i)), unit)
    return [sorted(m, key=lambda u: u.pattern) for m in bins.members if m]


def take_oldest(pool: deque[Unit], want: int, limits: Limits) -> list[Unit]:
    """Take from the front of ``pool`` the oldest units up to ``want`` in cost (at least one)
    that one filter holds within the limits."""
    bins = _Bins(1, limits)
    bins.put(0, pool.popleft())
    while pool and bins.cost[0] + pool[0].cost <= want and bins.room(0, pool[0]):
        bins.put(0, pool.popleft())
    return bins.members[0]


def _improve(bins: _Bins) -> None:
    """Move or swap units off the heaviest task while that lowers it."""
    n = len(bins.members)
    for _ in range(MAX_IMPROVE_ROUNDS):
        a = max(range(n), key=lambda i: (bins.cost[i], -i))
        others = sorted((i for i in range(n) if i != a), key=lambda i: (bins.cost[i], i))
        mine = sorted(bins.members[a], key=lambda u: (-u.cost, u.pattern))
        if not (_move(bins, a, others, mine) or _swap(bins, a, others, mine)):
            return


def _move(bins: _Bins, a: int, others: list[int], mine: list[Unit]) -> bool:
    for unit in mine:
        for b in others:
            if bins.cost[b] + unit.cost >= bins.cost[a]:
                break
            if bins.room(b, unit):
                bins.take(a, unit)
                bins.put(b, unit)
                return True
    return False


def _swap(bins: _Bins, a: int, others: list[int], mine: list[Unit]) -> bool:
    """Swap a unit p of the heaviest task for a lighter q elsewhere: it helps when
    0 < cost(p) - cost(q) < the load gap. Partners in that window are found by bisection,
    nearest first to half the gap (which evens the pair out most)."""
    for b in others:
        gap = bins.cost[a] - bins.cost[b]
        theirs = sorted(bins.members[b], key=lambda q: (q.cost, q.pattern))
        costs = [q.cost for q in theirs]
        for p in mine:
            lo, hi = bisect.bisect_right(costs, p.cost - gap), bisect.bisect_left(costs, p.cost)
            if lo >= hi:
                continue
            mid = bisect.bisect_left(costs, p.cost - gap / 2, lo, hi)
            window = range(max(lo, mid - SWAP_PARTNERS), min(hi, mid + SWAP_PARTNERS))
            for k in sorted(window, key=lambda k: abs(k - mid))[:SWAP_PARTNERS]:
                q = theirs[k]
                if bins.room(b, p, leaving=q) and bins.room(a, q, leaving=p):
                    bins.take(a, p)
                    bins.take(b, q)
                    bins.put(b, p)
                    bins.put(a, q)
                    return True
    return False
