"""Who takes which chunk: the pure rule of the dispatcher, by examples and by properties."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from pytest import approx

from datasync_multi.assign import (
    RUNNING_SAMPLE_FROM,
    AgentLoad,
    Speed,
    WaitingChunk,
    Work,
    assign,
    fit_speed,
    measured_rate,
    work_samples,
)
from datasync_multi.ledger import ChunkAttempt, ChunkRecord
from datasync_multi.records import Execution
from profiles import examples


def at(rate: float) -> Speed:
    """An agent moving ``rate`` bytes a second, entries free (the examples here move bytes only)."""
    return Speed.of_cost(rate, 0)


def test_idle_equal_agents_each_take_one_chunk_largest_first():
    waiting = [WaitingChunk(i, Work(cost)) for i, cost in enumerate([5, 9, 7, 6, 8])]
    got = assign(waiting, [AgentLoad(a, 1) for a in ("a", "b", "c")])
    assert got.starts == ((1, "a"), (4, "b"), (2, "c"))
    assert got.eta is None  # no rate measured yet


def test_a_slow_idle_agent_is_left_idle_when_a_faster_one_would_finish_the_chunk_first():
    waiting = [WaitingChunk(0, Work(100))]
    fast_busy = AgentLoad("fast", 0, backlog=Work(40), speed=at(40.0))  # free in 1 s, then 2.5 s for the chunk
    slow_idle = AgentLoad("slow", 1, speed=at(10.0))  # would take 10 s
    got = assign(waiting, [fast_busy, slow_idle])
    assert got.starts == () and got.eta == 3.5
    got = assign(waiting, [AgentLoad("fast", 0, backlog=Work(400), speed=at(40.0)), slow_idle])  # fast busy 10 s
    assert got.starts == ((0, "slow"),)


def test_each_busy_agent_says_when_it_should_free_a_slot():
    """What a live scheduler's next check waits for: each agent left without a free slot,
    its soonest-ending execution over its rate (not the pickup delay charged to it, nor
    what it has queued behind), and an agent that starts a chunk now, that chunk."""
    queued = AgentLoad("queued", 0, backlog=Work(140), speed=at(40.0), slots=2,
                       next_free=Work(40))  # 1 s, then 100 queued
    slow_idle = AgentLoad("slow", 1, speed=at(20.0))
    got = assign([WaitingChunk(0, Work(100))], [queued, slow_idle], pickup_delay=0.5)
    assert got.starts == ((0, "slow"),) and got.frees == (1.0, 5.0)
    assert assign([], [queued, slow_idle]).frees == (1.0,)  # an idle agent has nothing to wait for
    unmeasured = AgentLoad("a", 0, Work(5), slots=1, next_free=Work(5))
    assert assign([WaitingChunk(0, Work(10))], [unmeasured]).frees == (0.0,)  # no rate yet


def test_idle_agents_are_those_no_waiting_chunk_may_go_to_each_asking_by_its_rate():
    busy = AgentLoad("busy", 0, backlog=Work(10), speed=at(10.0), next_free=Work(10))
    got = assign([WaitingChunk(0, Work(100), frozenset({"a", "b"}))], [busy, AgentLoad("a", 1), AgentLoad("b", 1)],
                 conserving=True)
    assert got.starts == () and got.appetites == (1.0, 1.0)  # barred from the one chunk that waits: the scan packs
    got = assign([WaitingChunk(0, Work(100), frozenset({"a"}))], [busy, AgentLoad("a", 1), AgentLoad("b", 1)],
                 conserving=True)
    assert got.starts == ((0, "b"),) and got.appetites == (1.0,)
    half = AgentLoad("half", 1, backlog=Work(10), speed=at(10.0), slots=2,
                     next_free=Work(10))  # runs one, a queue slot free
    assert assign([], [half, AgentLoad("a", 1)]).appetites == (1.0, 1.0)  # a queue slot asks too; "a": the median
    fleet = [AgentLoad("fast", 1, speed=at(40.0)), AgentLoad("mid", 1, speed=at(20.0)),
             AgentLoad("slow", 1, speed=at(10.0)), AgentLoad("slower", 1, speed=at(10.0))]
    assert assign([], fleet).appetites == (2.0, 1.0, 0.5, 0.5)  # each over the mean, 20: fastest first
    assert assign([], fleet[::-1]).askers == (3, 2, 0, 1)  # where each is in reach


def test_reach_says_each_agents_rate_and_when_the_work_it_was_given_ends():
    fast = AgentLoad("fast", 0, backlog=Work(80), speed=at(40.0), next_free=Work(80))
    slow = AgentLoad("slow", 1, speed=at(10.0))
    got = assign([WaitingChunk(0, Work(30))], [fast, slow], pickup_delay=0.5)
    assert got.starts == ((0, "slow"),)  # 3 s on slow against 2.5 + 0.75 s on fast
    assert got.reach == ((at(40.0), approx(2.5)), (at(10.0), approx(3.0)))


def test_while_a_live_scan_runs_an_idle_agent_takes_what_waits():
    waiting = [WaitingChunk(0, Work(100))]
    fast_busy = AgentLoad("fast", 0, backlog=Work(40), speed=at(40.0))  # would end it at 3.5 s
    slow_idle = AgentLoad("slow", 1, speed=at(10.0))  # at 10 s: left idle once the scan is over
    assert assign(waiting, [fast_busy, slow_idle]).starts == ()
    got = assign(waiting + [WaitingChunk(1, Work(50))],
                 [fast_busy, slow_idle, AgentLoad("fastest idle", 1, speed=at(20.0))], conserving=True)
    assert got.starts == ((0, "fastest idle"), (1, "slow"))
    queue_slot = AgentLoad("fast, one queued", 1, backlog=Work(40), speed=at(40.0), slots=2, next_free=Work(40))
    assert assign(waiting, [queue_slot, slow_idle], conserving=True).starts == ((0, "slow"),)  # idle before queued
    assert assign(waiting, [queue_slot, slow_idle]).starts == ((0, "fast, one queued"),)


def test_a_chunk_never_goes_back_to_an_agent_that_failed_it():
    got = assign([WaitingChunk(0, Work(10), frozenset({"a"}))],
                 [AgentLoad("a", 1, speed=at(100.0)), AgentLoad("b", 0, Work(50), at(1.0))])
    assert got.starts == ()
    got = assign([WaitingChunk(0, Work(10), frozenset({"a", "b"}))], [AgentLoad("a", 1), AgentLoad("b", 1)])
    assert got.starts == () and got.unplaceable == (0,) and got.eta is None


def test_a_free_second_slot_takes_a_chunk_to_queue_behind_the_running_one():
    got = assign([WaitingChunk(0, Work(10)), WaitingChunk(1, Work(10))],
                 [AgentLoad("a", 1, backlog=Work(5), speed=at(1.0))])
    assert got.starts == ((0, "a"),)


def test_a_running_execution_counts_towards_its_agents_rate_only_once_half_its_chunk_has_moved():
    """Two seconds into an execution that has moved 1% of its chunk, nearly all that time was
    its start: a rate from it would be a hundredth of the agent's. Done, or past half, it counts."""
    chunk = ChunkRecord(0, ("/d/",), bytes=10_000, files=10, dirs=1, cost=20_000)
    attempt = ChunkAttempt("a", "t", 0.0, "r/chunk-0/1", "e1")

    def sample(status: str, moved: int, end: float | None = None) -> list[tuple[Work, float]]:
        execution = Execution(status, bytes_transferred=moved, start_time=100.0, launch_time=100.0, end_time=end)
        return list(work_samples([(chunk, attempt, execution)], 102.0))

    assert sample("TRANSFERRING", 100) == []
    half = int(10_000 * RUNNING_SAMPLE_FROM)
    assert sample("TRANSFERRING", half) == [(Work(10_000 * RUNNING_SAMPLE_FROM, 11 * RUNNING_SAMPLE_FROM), 2.0)]
    assert sample("SUCCESS", 10_000, end=104.0) == [(Work(10_000, 11), 4.0)]
    assert sample("ERROR", 9_000, end=104.0) == []


def test_a_chunk_is_timed_on_each_agent_by_its_bytes_and_its_entries_apart():
    """Two agents alike on entries (10 ms each), the first four times faster on bytes. A chunk
    of entries only takes both the same time, so the idle slow agent takes it rather than
    wait for the busy fast one; one rate in cost units would have had the fast agent four
    times faster on it too, and kept the chunk for it."""
    fast, slow = Speed(1 / 4_000, 0.01), Speed(1 / 1_000, 0.01)
    entries = WaitingChunk(0, Work(0, 1_000))  # 10 s on either agent
    fast_busy = AgentLoad("fast", 0, backlog=Work(8_000), speed=fast)  # busy for 2 s
    assert assign([entries], [fast_busy, AgentLoad("slow", 1, speed=slow)]).starts == ((0, "slow"),)
    one_rate = [AgentLoad("fast", 0, backlog=Work(8_000), speed=Speed.of_cost(4_000, 10)),
                AgentLoad("slow", 1, speed=Speed.of_cost(1_000, 10))]  # an entry weighing 10 bytes
    assert assign([entries], one_rate).starts == ()  # 2 + 2.5 s on fast beats 10 s on slow
    bytes_only = WaitingChunk(0, Work(20_000, 0))  # 2 + 5 s on fast against 20 s on slow
    assert assign([bytes_only], [fast_busy, AgentLoad("slow", 1, speed=slow)]).starts == ()


def test_an_agents_speed_is_fitted_in_two_parts_where_its_chunks_mix_bytes_and_entries_differently():
    """Samples of one mix cannot tell bytes from entries: the fit is then the one rate in cost
    units. Samples of different mixes find each part, and a chunk of a new mix is then timed
    far better than by that one rate."""
    agent = Speed(1 / 4_000, 0.01)
    one_mix = [(Work(40_000 * k, 100 * k), agent.seconds(Work(40_000 * k, 100 * k))) for k in (1, 2, 3)]
    fitted = fit_speed(one_mix, per_file_cost=100)
    assert fitted is not None
    cost = sum(w.cost(100) for w, _ in one_mix) / sum(t for _, t in one_mix)
    assert (fitted.per_byte, fitted.per_entry) == approx((1 / cost, 100 / cost))
    mixes = [Work(40_000, 100), Work(4_000, 900), Work(80_000, 50), Work(10_000, 500)] * 3
    fitted = fit_speed([(w, agent.seconds(w)) for w in mixes], per_file_cost=100)
    assert fitted is not None
    one_rate = sum(w.cost(100) for w in mixes) / sum(agent.seconds(w) for w in mixes)
    for new in (Work(0, 2_000), Work(200_000, 0), Work(50_000, 700)):
        error = abs(fitted.seconds(new) - agent.seconds(new))
        assert error < 0.05 * agent.seconds(new)
        assert error < abs(new.cost(100) / one_rate - agent.seconds(new)) / 4
    assert fit_speed([(Work(), 5.0), (Work(10, 1), 0.0)], 100) is None  # nothing moved, or no time taken


@given(st.lists(st.tuples(st.builds(Work, st.integers(0, 10**9), st.integers(0, 10**6)),
                          st.just(0.0) | st.floats(1e-6, 1e5)),  # seconds between two timestamps
                max_size=8), st.integers(0, 10**6))
def test_a_fitted_speed_is_never_negative_and_is_none_only_without_a_usable_sample(samples, per_file_cost):
    fitted = fit_speed(samples, per_file_cost)
    usable = [(w, t) for w, t in samples if t > 0 and w.cost(per_file_cost) > 0]
    assert (fitted is None) == (not usable or not any(w.bytes or w.entries for w, _ in usable))
    if fitted is not None:
        assert fitted.per_byte >= 0 and fitted.per_entry >= 0 and fitted.seconds(Work(1, 1)) > 0


def test_measured_rate_ignores_empty_samples():
    assert measured_rate([(100, 2), (0, 5), (50, 0)]) == 50
    assert measured_rate([]) is None


loads = st.lists(st.builds(AgentLoad, arn=st.sampled_from("abcdef"), free_slots=st.integers(0, 2),
                           backlog=st.builds(Work, st.floats(0, 1e6), st.floats(0, 1e4)),
                           speed=st.none() | st.builds(Speed, st.floats(1e-6, 1e3), st.floats(0, 1e3)),
                           slots=st.integers(1, 2), next_free=st.builds(Work, st.floats(0, 1e6), st.floats(0, 1e4))),
                 max_size=6, unique_by=lambda a: a.arn)
chunks = st.lists(st.builds(WaitingChunk, index=st.integers(0, 10**6),
                            work=st.builds(Work, st.integers(0, 10**9), st.integers(0, 10**6)),
                            barred=st.frozensets(st.sampled_from("abcdef"), max_size=3)),
                  max_size=20, unique_by=lambda c: c.index)


@settings(max_examples=examples(300))
@given(chunks, loads, st.booleans(), st.integers(0, 10**6),
       st.builds(Work, st.integers(1, 10**9), st.integers(0, 10**6)))
def test_starts_respect_slots_bars_and_start_each_chunk_at_most_once(waiting, agents, conserving, per_file_cost, mix):
    got = assign(waiting, agents, conserving=conserving, per_file_cost=per_file_cost, mix=mix)
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
    if agents and all(a.speed is None and a.backlog == Work() and a.free_slots > 0 for a in agents) \
            and all(not c.barred for c in waiting):
        assert len(got.starts) == min(len(waiting), sum(a.free_slots for a in agents))
    assert len(got.frees) == sum(1 for n in free.values() if n == 0) and all(f >= 0 for f in got.frees)
    left = [c for c in waiting if c.index not in started and c.index not in got.unplaceable]
    assert len(got.appetites) == sum(1 for a, n in free.items() if n > 0 and all(a in c.barred for c in left))
    assert list(got.appetites) == sorted(got.appetites, reverse=True) and len(got.reach) == len(agents)
    rates = [speed.rate(mix, mix.cost(per_file_cost)) for speed, _ in got.reach]
    mean = sum(rates) / max(len(rates), 1)
    asking = [a for a, n in free.items() if n > 0 and all(a in c.barred for c in left)]
    assert sorted(agents[i].arn for i in got.askers) == sorted(asking) and len(set(got.askers)) == len(asking)
    assert all(abs(rates[i] / mean - scale) <= 1e-9 * scale
               for i, scale in zip(got.askers, got.appetites, strict=True))
    if conserving:  # no agent idles while a chunk it may take waits
        left_free = {a for a, n in free.items() if n > 0}
        assert all(not left_free - c.barred for c in left)
