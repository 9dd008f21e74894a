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

Each agent's speed is measured in two parts (``fit_speed``): seconds per byte and seconds
per entry, from the chunks it ran, start overhead included. One rate in cost units (bytes
plus the plan's per-file cost) is right for one mix only: where an entry costs every agent
about the same time but bandwidths differ, it overrates a fast agent on a chunk heavy in
entries and a slow one on a chunk heavy in bytes (on the live bench, a last chunk meant to
end the fast agent with the others ran 38.7 s against 21 s foreseen). Where an entry's time
scales with the agent instead, the two parts find that too. An agent not measured yet is
taken to run at the median of the measured ones; with none measured, every agent is taken
as equal, at one cost unit per second.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from .ledger import ChunkAttempt, ChunkRecord
from .records import Execution
from .statuses import ExecutionStatus


@dataclass(frozen=True)
class Work:
    """What a chunk (or what is left of it) holds: bytes, and entries (files and directories)."""

    bytes: float = 0.0
    entries: float = 0.0

    def __add__(self, other: Work) -> Work:
        return Work(self.bytes + other.bytes, self.entries + other.entries)

    def scaled(self, share: float) -> Work:
        return Work(self.bytes * share, self.entries * share)

    def cost(self, per_file_cost: float) -> float:
        return self.bytes + self.entries * per_file_cost


@dataclass(frozen=True)
class Speed:
    """An agent's seconds per byte and per entry."""

    per_byte: float
    per_entry: float

    def seconds(self, work: Work) -> float:
        return work.bytes * self.per_byte + work.entries * self.per_entry

    def rate(self, work: Work, cost: float) -> float:
        """Cost units per second on work of ``work``'s mix (weighing ``cost``)."""
        seconds = self.seconds(work)
        return cost / seconds if seconds > 0 else 1 / max(self.per_byte, 1e-12)

    @classmethod
    def of_cost(cls, rate: float, per_file_cost: float) -> Speed:
        """An agent whose time follows cost: ``rate`` cost units per second on any mix."""
        return cls(1 / rate, per_file_cost / rate)


@dataclass(frozen=True)
class WaitingChunk:
    index: int
    work: Work
    barred: frozenset[str] = frozenset()
    """Agents that failed this chunk: it never goes back to them."""


@dataclass(frozen=True)
class AgentLoad:
    """One ONLINE agent as the dispatcher sees it."""

    arn: str
    free_slots: int
    """Its tasks with no unfinished execution: how many chunks it can be handed now."""
    backlog: Work = Work()
    """What its started executions still have to move (running and queued)."""
    speed: Speed | None = None
    """Measured (``fit_speed``), or None if not measured yet."""
    slots: int = 1
    """Its tasks (queue slots) in all: with all of them free it runs nothing."""
    next_free: Work = Work()
    """What its soonest-ending unfinished execution still has to move: a slot frees after it."""


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
    (one running nothing, or one with a queue slot free), its rate over the fleet's mean on
    work of the run's mix, fastest first: the chunks a live scan should pack now, each sized
    to its agent (``live.Demand``)."""
    askers: tuple[int, ...] = ()
    """Where each agent of ``appetites`` is in ``reach``, in the same order."""
    reach: tuple[tuple[Speed, float], ...] = ()
    """Each agent's speed and the seconds until the work this check gave it ends: how a live
    scan cuts its last chunks so that the agents end together (``live.end_together``)."""


def measured_rate(samples: Iterable[tuple[float, float]]) -> float | None:
    """Bytes per second from (bytes moved, seconds taken) samples; None without a usable one."""
    moved = seconds = 0.0
    for amount, took in samples:
        if amount > 0 and took > 0:
            moved += amount
            seconds += took
    return moved / seconds if seconds else None


PRIOR_SAMPLES = 0.5
"""How many samples' weight ``fit_speed`` gives the one rate in cost units it holds to.
Where the samples all share one mix, they cannot tell bytes from entries, and the fit stays
that rate; where their mixes differ, they decide, the more so the more there are. On the
bench's ledgers (`bench/speed_fit.py`, 279 chunks of 10 s or more), the error foreseeing a
chunk was 6.1% (median), 33% (90th percentile), 65% at most with half a sample; with a
fixed 2% of the samples' weight, 6.2%, 40% and 150% (a fit from the first few chunks
swinging far on a chunk of another mix); one rate in cost units, 17%, 43%."""


def fit_speed(samples: Iterable[tuple[Work, float]], per_file_cost: float) -> Speed | None:
    """The agent's seconds per byte and per entry that best give the seconds each sample
    took (least squares, so a long execution weighs more than a short one), held towards
    the one rate in cost units that fits them all (as ``PRIOR_SAMPLES`` samples would);
    never negative. None without a usable sample."""
    rows = [(w.bytes, w.entries, took) for w, took in samples if took > 0 and (w.bytes > 0 or w.entries > 0)]
    cost = sum(b + n * per_file_cost for b, n, _ in rows)
    if not rows or cost <= 0:
        return None
    prior = Speed.of_cost(cost / sum(t for _, _, t in rows), per_file_cost)
    shrink = PRIOR_SAMPLES / len(rows)
    bb = sum(b * b for b, _, _ in rows) * (1 + shrink)
    nn = sum(n * n for _, n, _ in rows) * (1 + shrink)
    bn = sum(b * n for b, n, _ in rows)
    bt = sum(b * t for b, _, t in rows) + shrink * prior.per_byte * bb / (1 + shrink)
    nt = sum(n * t for _, n, t in rows) + shrink * prior.per_entry * nn / (1 + shrink)
    det = bb * nn - bn * bn
    per_byte = (bt * nn - nt * bn) / det if det > 0 else prior.per_byte
    per_entry = (nt * bb - bt * bn) / det if det > 0 else prior.per_entry
    if per_byte < 0 or per_entry < 0:  # one part alone, the other none
        per_byte, per_entry = (0.0, nt / nn) if per_byte < 0 else (bt / bb, 0.0)
    return Speed(per_byte, per_entry)


def progress(chunk: ChunkRecord, described: Execution) -> float:
    """How much of the chunk an execution has moved, 0 to 1, by bytes (by items for a chunk of none)."""
    if chunk.bytes:
        return min(described.bytes_transferred / chunk.bytes, 1.0)
    return min(described.files_transferred / max(chunk.files + chunk.dirs, 1), 1.0)


def work_of(chunk: ChunkRecord) -> Work:
    return Work(chunk.bytes, chunk.files + chunk.dirs)


RUNNING_SAMPLE_FROM = 0.5
"""A running execution counts towards its agent's rate once it has moved this share of its
chunk. Before, its time is mostly its start (launching, preparing): a check that saw 0.3%
moved 1.2 s after launch measured the bench's agents at a hundredth of their rate, put their
next free minutes away, and they idled 19 s before the next check."""


def _timed(starts: Iterable[tuple[ChunkRecord, ChunkAttempt, Execution | None]],
           now: float) -> Iterator[tuple[ChunkRecord, Execution, float, float]]:
    """(chunk, execution, share moved, seconds from launch to end or now) for each chunk an
    agent ran or runs. Starts taken back, failed, not launched yet, or running but short of
    ``RUNNING_SAMPLE_FROM`` say nothing."""
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
        yield chunk, described, share, end - described.launch_time


def byte_samples(starts: Iterable[tuple[ChunkRecord, ChunkAttempt, Execution | None]],
                 now: float) -> Iterator[tuple[float, float]]:
    """(bytes transferred, seconds) for each chunk an agent ran or runs (see ``_timed``)."""
    for _, described, _, took in _timed(starts, now):
        yield described.bytes_transferred, took


def work_samples(starts: Iterable[tuple[ChunkRecord, ChunkAttempt, Execution | None]],
                 now: float) -> Iterator[tuple[Work, float]]:
    """(the chunk's work, times the share moved; seconds) for each chunk an agent ran or runs
    (see ``_timed``): what ``fit_speed`` fits."""
    for chunk, _, share, took in _timed(starts, now):
        yield work_of(chunk).scaled(share), took


def assign(waiting: Sequence[WaitingChunk], agents: Sequence[AgentLoad], pickup_delay: float = 0.0,
           conserving: bool = False, per_file_cost: float = 0.0, mix: Work = Work(1.0)) -> Assignment:
    """Start what should start now (see the module's docstring). ``pickup_delay`` is how
    long after its work ends an agent with no free slot is expected to be handed more
    (half the polling interval); ``per_file_cost`` weighs an entry where no agent is
    measured; ``mix`` is the run's work, whose mix the appetites are measured on. Every
    order is total, so the same view gives the same answer."""
    known = [a.speed for a in agents if a.speed]
    fallback = Speed(statistics.median(s.per_byte for s in known), statistics.median(s.per_entry for s in known)) \
        if known else Speed.of_cost(1.0, per_file_cost)
    speed = {a.arn: a.speed or fallback for a in agents}
    typical = Speed(statistics.fmean(s.per_byte for s in speed.values()),
                    statistics.fmean(s.per_entry for s in speed.values())) if speed else fallback
    free = {a.arn: a.free_slots for a in agents}
    idle = {a.arn for a in agents if a.free_slots >= a.slots}
    soonest = {a.arn: speed[a.arn].seconds(a.next_free) for a in agents if a.arn not in idle}
    ends = {a.arn: speed[a.arn].seconds(a.backlog) + (pickup_delay if a.free_slots == 0 else 0.0) for a in agents}
    starts: list[tuple[int, str]] = []
    unplaceable: list[int] = []
    left: list[WaitingChunk] = []
    for chunk in sorted(waiting, key=lambda c: (-typical.seconds(c.work), c.index)):
        fits = [a.arn for a in agents if a.arn not in chunk.barred]
        if not fits:
            unplaceable.append(chunk.index)
            continue
        best = min(fits, key=lambda a: (conserving and free[a] == 0, conserving and a not in idle,
                                        ends[a] + speed[a].seconds(chunk.work), -free[a], a))
        took = speed[best].seconds(chunk.work)
        if free[best] > 0:
            starts.append((chunk.index, best))
            free[best] -= 1
            idle.discard(best)
            soonest[best] = min(soonest.get(best, took), took)
        else:
            left.append(chunk)
        ends[best] += took
    eta = max(ends.values(), default=0.0) if known and not unplaceable else None
    frees = tuple(sorted(soonest[a] if known else 0.0 for a in soonest if free[a] == 0))
    cost = mix.cost(per_file_cost)
    rate = {a: s.rate(mix, cost) for a, s in speed.items()}
    mean = statistics.fmean(rate.values()) if rate else 1.0
    asking = sorted(((rate[a.arn] / mean, i) for i, a in enumerate(agents)
                     if free[a.arn] > 0 and all(a.arn in c.barred for c in left)), key=lambda p: (-p[0], p[1]))
    reach = tuple((speed[a.arn], ends[a.arn]) for a in agents)
    return Assignment(tuple(starts), eta, tuple(unplaceable), frees, appetites=tuple(s for s, _ in asking),
                      askers=tuple(i for _, i in asking), reach=reach)
