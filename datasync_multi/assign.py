"""Which waiting chunk goes to which agent now, decided without touching AWS or the disk.

Agents differ in speed, and a chunk handed to a slow agent near the end can finish long
after a faster agent would have, had it waited for it. So the dispatcher does not simply
feed every idle agent: it plays the rest of the job forward. Largest chunk first, each
waiting chunk goes to the agent that would *finish* it earliest (its current work, then
this chunk, at its measured rate); a chunk that lands on an agent with a free task slot
now is dispatched, one that lands on a busy agent is left for it. A busy agent can only
take it at a later check, so it is charged the wait for one (``pickup_delay``). An idle
agent that wins nothing is left idle: every chunk it could take ends sooner elsewhere.

While a live scan still runs (``conserving``), each waiting chunk, largest first, goes to
the agent with a free slot that would end it first, before any busy agent is considered
(no agent is left idle while a chunk it may take waits): more chunks keep coming, so
an agent left idle now loses that time for good, while a chunk that ends late on a slow
agent is made up for by the chunks still to come, which go elsewhere.

Rates are measured (``measured_rate``) in cost units (bytes plus the plan's per-file cost)
per second, start overhead included: chunks are of even cost, so an overhead per chunk is
an overhead per cost unit. An agent not measured yet is taken to run at the median of the
measured ones; with none measured, every agent is taken as equal.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from .ledger import ChunkAttempt, ChunkRecord
from .records import Execution
from .statuses import ExecutionStatus


@dataclass(frozen=True)
class WaitingChunk:
    index: int
    cost: int
    barred: frozenset[str] = frozenset()
    """Agents that failed this chunk: it never goes back to them."""


@dataclass(frozen=True)
class AgentLoad:
    """One ONLINE agent as the dispatcher sees it."""

    arn: str
    free_slots: int
    """Its tasks with no unfinished execution: how many chunks it can be handed now."""
    backlog: float = 0.0
    """Cost its started executions still have to move (running and queued)."""
    rate: float | None = None
    """Measured cost per second, or None if not measured yet."""
    slots: int = 1
    """Its tasks (queue slots) in all: with all of them free it runs nothing."""
    next_free: float = 0.0
    """Cost its soonest-ending unfinished execution still has to move: a slot frees after it."""


@dataclass(frozen=True)
class Assignment:
    starts: tuple[tuple[int, str], ...]
    """(chunk index, agent ARN) to start now, in that order."""
    eta: float | None
    """Seconds until the last chunk would end if every rate holds; None while no rate is
    measured, or when some waiting chunk has no agent that may take it."""
    unplaceable: tuple[int, ...] = ()
    """Waiting chunks that no ONLINE agent may take (each has failed on all of them)."""
    frees: tuple[float, ...] = ()
    """Seconds until each agent left without a free slot frees one (its soonest-ending
    execution's work over its measured rate; 0 while no rate is measured): when a live
    scheduler checks again."""
    appetites: tuple[float, ...] = ()
    """For each agent left with a free task slot that may take none of the chunks left waiting
    (one running nothing, or one with a queue slot free), its rate over the fleet's mean,
    fastest first: the chunks a live scan should pack now, each sized to its agent (``live.Demand``)."""
    askers: tuple[int, ...] = ()
    """Where each agent of ``appetites`` is in ``reach``, in the same order."""
    reach: tuple[tuple[float, float], ...] = ()
    """Each agent's rate and the seconds until the work this check gave it ends: how a live
    scan cuts its last chunks so that the agents end together (``live.end_together``)."""


def measured_rate(samples: Iterable[tuple[float, float]]) -> float | None:
    """Cost per second from (cost moved, seconds taken) samples; None without a usable one."""
    cost = seconds = 0.0
    for moved, took in samples:
        if moved > 0 and took > 0:
            cost += moved
            seconds += took
    return cost / seconds if seconds else None


def progress(chunk: ChunkRecord, described: Execution) -> float:
    """How much of the chunk an execution has moved, 0 to 1, by bytes (by items for a chunk of none)."""
    if chunk.bytes:
        return min(described.bytes_transferred / chunk.bytes, 1.0)
    return min(described.files_transferred / max(chunk.files + chunk.dirs, 1), 1.0)


RUNNING_SAMPLE_FROM = 0.5
"""A running execution counts towards its agent's rate once it has moved this share of its
chunk. Before, its time is mostly its start (launching, preparing): a check that saw 0.3%
moved 1.2 s after launch measured the bench's agents at a hundredth of their rate, put their
next free minutes away, and they idled 19 s before the next check."""


def rate_samples(starts: Iterable[tuple[ChunkRecord, ChunkAttempt, Execution | None]], now: float,
                 by_bytes: bool) -> Iterator[tuple[float, float]]:
    """(moved, seconds) for each chunk an agent ran or runs, from launch to end (or now): in
    bytes, or in cost units. Starts taken back, failed, not launched yet, or running but
    short of ``RUNNING_SAMPLE_FROM`` say nothing."""
    for chunk, attempt, described in starts:
        if described is None or described.launch_time is None or not attempt.active:
            continue
        done = described.status in ExecutionStatus.SUCCESS_STATES
        if not done and described.status in ExecutionStatus.TERMINAL_STATES:
            continue
        share = 1.0 if done else progress(chunk, described)
        if share < RUNNING_SAMPLE_FROM:
            continue
        end = described.end_time if done and described.end_time else now
        yield (described.bytes_transferred if by_bytes else chunk.cost * share), end - described.launch_time


def assign(waiting: Sequence[WaitingChunk], agents: Sequence[AgentLoad], pickup_delay: float = 0.0,
           conserving: bool = False) -> Assignment:
    """Start what should start now (see the module's docstring). ``pickup_delay`` is how
    long after its work ends an agent with no free slot is expected to be handed more
    (half the polling interval). Every order is total, so the same view gives the same answer."""
    known = [a.rate for a in agents if a.rate]
    fallback = statistics.median(known) if known else 1.0
    rate = {a.arn: a.rate or fallback for a in agents}
    free = {a.arn: a.free_slots for a in agents}
    idle = {a.arn for a in agents if a.free_slots >= a.slots}
    soonest = {a.arn: a.next_free for a in agents if a.arn not in idle}
    ends = {a.arn: a.backlog / rate[a.arn] + (pickup_delay if a.free_slots == 0 else 0.0) for a in agents}
    starts: list[tuple[int, str]] = []
    unplaceable: list[int] = []
    left: list[WaitingChunk] = []
    for chunk in sorted(waiting, key=lambda c: (-c.cost, c.index)):
        fits = [a.arn for a in agents if a.arn not in chunk.barred]
        if not fits:
            unplaceable.append(chunk.index)
            continue
        best = min(fits, key=lambda a: (conserving and free[a] == 0, conserving and a not in idle,
                                        ends[a] + chunk.cost / rate[a], -free[a], a))
        if free[best] > 0:
            starts.append((chunk.index, best))
            free[best] -= 1
            idle.discard(best)
            soonest[best] = min(soonest.get(best, chunk.cost), chunk.cost)
        else:
            left.append(chunk)
        ends[best] += chunk.cost / rate[best]
    eta = max(ends.values(), default=0.0) if known and not unplaceable else None
    frees = tuple(sorted(soonest[a] / rate[a] if known else 0.0 for a in soonest if free[a] == 0))
    mean = statistics.fmean(rate.values()) if rate else 1.0
    asking = sorted(((rate[a.arn] / mean, i) for i, a in enumerate(agents)
                     if free[a.arn] > 0 and all(a.arn in c.barred for c in left)), key=lambda p: (-p[0], p[1]))
    reach = tuple((rate[a.arn], ends[a.arn]) for a in agents)
    return Assignment(tuple(starts), eta, tuple(unplaceable), frees, appetites=tuple(s for s, _ in asking),
                      askers=tuple(i for _, i in asking), reach=reach)
