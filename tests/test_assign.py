"""Who takes which chunk: the pure rule of the dispatcher, by examples and by properties."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from datasync_multi.assign import RUNNING_SAMPLE_FROM, AgentLoad, WaitingChunk, assign, measured_rate, rate_samples
from datasync_multi.ledger import ChunkAttempt, ChunkRecord
from datasync_multi.records import Execution
from profiles import examples


def test_idle_equal_agents_each_take_one_chunk_largest_first():
    waiting = [WaitingChunk(i, cost) for i, cost in enumerate([5, 9, 7, 6, 8])]
    got = assign(waiting, [AgentLoad(a, 1) for a in ("a", "b", "c")])
    assert got.starts == ((1, "a"), (4, "b"), (2, "c"))
    assert got.eta is None  # no rate measured yet


def test_a_slow_idle_agent_is_left_idle_when_a_faster_one_would_finish_the_chunk_first():
    waiting = [WaitingChunk(0, 100)]
    fast_busy = AgentLoad("fast", 0, backlog=40, rate=40.0)  # free in 1 s, then 2.5 s for the chunk
    slow_idle = AgentLoad("slow", 1, rate=10.0)  # would take 10 s
    got = assign(waiting, [fast_busy, slow_idle])
    assert got.starts == () and got.eta == 3.5
    got = assign(waiting, [AgentLoad("fast", 0, backlog=400, rate=40.0), slow_idle])  # fast busy 10 s
    assert got.starts == ((0, "slow"),)


def test_each_busy_agent_says_when_it_should_free_a_slot():
    """What a live scheduler's next check waits for: each agent left without a free slot,
    its soonest-ending execution over its rate (not the pickup delay charged to it, nor
    what it has queued behind), and an agent that starts a chunk now, that chunk."""
    queued = AgentLoad("queued", 0, backlog=140, rate=40.0, slots=2, next_free=40)  # 1 s, then 100 queued
    slow_idle = AgentLoad("slow", 1, rate=20.0)
    got = assign([WaitingChunk(0, 100)], [queued, slow_idle], pickup_delay=0.5)
    assert got.starts == ((0, "slow"),) and got.frees == (1.0, 5.0)
    assert assign([], [queued, slow_idle]).frees == (1.0,)  # an idle agent has nothing to wait for
    assert assign([WaitingChunk(0, 10)], [AgentLoad("a", 0, 5, slots=1, next_free=5)]).frees == (0.0,)  # no rate yet


def test_idle_agents_are_those_no_waiting_chunk_may_go_to_each_asking_by_its_rate():
    busy = AgentLoad("busy", 0, backlog=10, rate=10.0, next_free=10)
    got = assign([WaitingChunk(0, 100, frozenset({"a", "b"}))], [busy, AgentLoad("a", 1), AgentLoad("b", 1)],
                 conserving=True)
    assert got.starts == () and got.appetites == (1.0, 1.0)  # barred from the one chunk that waits: the scan packs
    got = assign([WaitingChunk(0, 100, frozenset({"a"}))], [busy, AgentLoad("a", 1), AgentLoad("b", 1)],
                 conserving=True)
    assert got.starts == ((0, "b"),) and got.appetites == (1.0,)
    half = AgentLoad("half", 1, backlog=10, rate=10.0, slots=2, next_free=10)  # runs one, a queue slot free
    assert assign([], [half, AgentLoad("a", 1)]).appetites == (1.0, 1.0)  # a queue slot asks too; "a": the median
    fleet = [AgentLoad("fast", 1, rate=40.0), AgentLoad("mid", 1, rate=20.0), AgentLoad("slow", 1, rate=10.0),
             AgentLoad("slower", 1, rate=10.0)]
    assert assign([], fleet).appetites == (2.0, 1.0, 0.5, 0.5)  # each over the mean, 20: fastest first
    assert assign([], fleet[::-1]).askers == (3, 2, 0, 1)  # where each is in reach


def test_reach_says_each_agents_rate_and_when_the_work_it_was_given_ends():
    fast = AgentLoad("fast", 0, backlog=80, rate=40.0, next_free=80)
    slow = AgentLoad("slow", 1, rate=10.0)
    got = assign([WaitingChunk(0, 30)], [fast, slow], pickup_delay=0.5)
    assert got.starts == ((0, "slow"),)  # 3 s on slow against 2.5 + 0.75 s on fast
    assert got.reach == ((40.0, 2.5), (10.0, 3.0))


def test_while_a_live_scan_runs_an_idle_agent_takes_what_waits():
    waiting = [WaitingChunk(0, 100)]
    fast_busy = AgentLoad("fast", 0, backlog=40, rate=40.0)  # would end it at 3.5 s
    slow_idle = AgentLoad("slow", 1, rate=10.0)  # at 10 s: left idle once the scan is over
    assert assign(waiting, [fast_busy, slow_idle]).starts == ()
    got = assign(waiting + [WaitingChunk(1, 50)], [fast_busy, slow_idle, AgentLoad("fastest idle", 1, rate=20.0)],
                 conserving=True)
    assert got.starts == ((0, "fastest idle"), (1, "slow"))
    queue_slot = AgentLoad("fast, one queued", 1, backlog=40, rate=40.0, slots=2, next_free=40)
    assert assign(waiting, [queue_slot, slow_idle], conserving=True).starts == ((0, "slow"),)  # idle before queued
    assert assign(waiting, [queue_slot, slow_idle]).starts == ((0, "fast, one queued"),)


def test_a_chunk_never_goes_back_to_an_agent_that_failed_it():
    got = assign([WaitingChunk(0, 10, frozenset({"a"}))], [AgentLoad("a", 1, rate=100.0), AgentLoad("b", 0, 50, 1.0)])
    assert got.starts == ()
    got = assign([WaitingChunk(0, 10, frozenset({"a", "b"}))], [AgentLoad("a", 1), AgentLoad("b", 1)])
    assert got.starts == () and got.unplaceable == (0,) and got.eta is None


def test_a_free_second_slot_takes_a_chunk_to_queue_behind_the_running_one():
    got = assign([WaitingChunk(0, 10), WaitingChunk(1, 10)], [AgentLoad("a", 1, backlog=5, rate=1.0)])
    assert got.starts == ((0, "a"),)


def test_a_running_execution_counts_towards_its_agents_rate_only_once_half_its_chunk_has_moved():
    """Two seconds into an execution that has moved 1% of its chunk, nearly all that time was
    its start: a rate from it would be a hundredth of the agent's. Done, or past half, it counts."""
    chunk = ChunkRecord(0, ("/d/",), bytes=10_000, files=10, dirs=1, cost=20_000)
    attempt = ChunkAttempt("a", "t", 0.0, "r/chunk-0/1", "e1")

    def sample(status: str, moved: int, end: float | None = None) -> list[tuple[float, float]]:
        execution = Execution(status, bytes_transferred=moved, start_time=100.0, launch_time=100.0, end_time=end)
        return list(rate_samples([(chunk, attempt, execution)], 102.0, by_bytes=False))

    assert sample("TRANSFERRING", 100) == []
    half = int(10_000 * RUNNING_SAMPLE_FROM)
    assert sample("TRANSFERRING", half) == [(20_000 * RUNNING_SAMPLE_FROM, 2.0)]
    assert sample("SUCCESS", 10_000, end=104.0) == [(20_000, 4.0)]
    assert sample("ERROR", 9_000, end=104.0) == []


def test_measured_rate_ignores_empty_samples():
    assert measured_rate([(100, 2), (0, 5), (50, 0)]) == 50
    assert measured_rate([]) is None


loads = st.lists(st.builds(AgentLoad, arn=st.sampled_from("abcdef"), free_slots=st.integers(0, 2),
                           backlog=st.floats(0, 1e6), rate=st.none() | st.floats(1e-3, 1e6), slots=st.integers(1, 2),
                           next_free=st.floats(0, 1e6)),
                 max_size=6, unique_by=lambda a: a.arn)
chunks = st.lists(st.builds(WaitingChunk, index=st.integers(0, 10**6), cost=st.integers(0, 10**9),
                            barred=st.frozensets(st.sampled_from("abcdef"), max_size=3)),
                  max_size=20, unique_by=lambda c: c.index)


@settings(max_examples=examples(300))
@given(chunks, loads, st.booleans())
def test_starts_respect_slots_bars_and_start_each_chunk_at_most_once(waiting, agents, conserving):
    got = assign(waiting, agents, conserving=conserving)
    started = [i for i, _ in got.starts]
    assert len(started) == len(set(started))
    by_index = {c.index: c for c in waiting}
    free = {a.arn: a.free_slots for a in agents}
    for index, agent in got.starts:
        assert agent not in by_index[index].barred
        free[agent] -= 1
    assert all(n >= 0 for n in free.values())
    assert set(got.unplaceable) == {c.index for c in waiting if not {a.arn for a in agents} - c.barred}
    # Nothing idle while work waits, when every agent is alike and idle: the rule only holds
    # back an agent that a faster one would beat.
    if agents and all(a.rate is None and a.backlog == 0 and a.free_slots > 0 for a in agents) \
            and all(not c.barred for c in waiting):
        assert len(got.starts) == min(len(waiting), sum(a.free_slots for a in agents))
    assert len(got.frees) == sum(1 for n in free.values() if n == 0) and all(f >= 0 for f in got.frees)
    left = [c for c in waiting if c.index not in started and c.index not in got.unplaceable]
    assert len(got.appetites) == sum(1 for a, n in free.items() if n > 0 and all(a in c.barred for c in left))
    assert list(got.appetites) == sorted(got.appetites, reverse=True) and len(got.reach) == len(agents)
    mean = sum(rate for rate, _ in got.reach) / max(len(got.reach), 1)
    asking = [a for a, n in free.items() if n > 0 and all(a in c.barred for c in left)]
    assert sorted(agents[i].arn for i in got.askers) == sorted(asking) and len(set(got.askers)) == len(asking)
    assert all(abs(got.reach[i][0] / mean - scale) <= 1e-9 * scale
               for i, scale in zip(got.askers, got.appetites, strict=True))
    if conserving:  # no agent idles while a chunk it may take waits
        left_free = {a for a, n in free.items() if n > 0}
        assert all(not left_free - c.barred for c in left)
