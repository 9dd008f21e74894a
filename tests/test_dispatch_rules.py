"""The dispatcher's rules for one chunk, without a server: what each state of its execution
and agent leads to, when a take-back may be handed out again, and when a chunk is given up."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datasync_multi.dispatch_rules import ChunkSeen, Step, after_take_back, follow, give_up_reason
from datasync_multi.ledger import ChunkAttempt, ChunkRecord
from datasync_multi.records import Execution
from datasync_multi.statuses import ExecutionStatus

AGENT = "arn:aws:datasync:us-east-1:111122223333:agent/agent-00000000000000001"
CHUNK = ChunkRecord(3, ("/d/",), bytes=1000, files=10, dirs=1, cost=2000)
THRESHOLD = 600.0
NOW = 1_764_000_000.0
STATUSES = (*ExecutionStatus.KNOWN_STATES, "SOMETHING_NEW")


def seen(status: str, agent_status: str = "ONLINE", offline_for: float = 0.0, **fields) -> ChunkSeen:
    return ChunkSeen(Execution(status, **fields), AGENT, agent_status, offline_for, NOW)


def test_an_error_sends_the_chunk_back_to_the_pool_as_a_failure_of_its_agent():
    decision = follow(CHUNK, seen("ERROR", error_code="AgentOffline"), THRESHOLD)
    assert (decision.step, decision.failure) == (Step.FAIL, "ERROR (AgentOffline)")
    assert decision.note == "failed on agent-00000000000000001: ERROR (AgentOffline); back to the pool"


@pytest.mark.parametrize("status", ["QUEUED", "LAUNCHING"])
def test_a_chunk_not_yet_launched_on_a_lost_agent_is_taken_back_at_once_unfailed(status):
    decision = follow(CHUNK, seen(status, "OFFLINE", offline_for=1.0), THRESHOLD)
    assert (decision.step, decision.failure) == (Step.TAKE_BACK, "")


def test_a_chunk_past_launching_on_a_lost_agent_waits_for_the_threshold_then_is_stranded():
    waiting = follow(CHUNK, seen("TRANSFERRING", "OFFLINE", offline_for=THRESHOLD - 1), THRESHOLD)
    assert waiting.step is Step.RUN_ON and waiting.note.startswith("agent OFFLINE since ")
    stranded = follow(CHUNK, seen("TRANSFERRING", "OFFLINE", offline_for=THRESHOLD), THRESHOLD)
    assert (stranded.step, stranded.failure) == (Step.STRAND, "TRANSFERRING on offline agent")


def test_a_chunk_that_selects_far_more_than_planned_runs_on_flagged():
    decision = follow(CHUNK, seen("TRANSFERRING", estimated_files=500), THRESHOLD)
    assert decision.step is Step.RUN_ON and decision.flag.startswith("CHECK: selects 500 items")
    assert follow(CHUNK, seen("TRANSFERRING", estimated_files=11), THRESHOLD).flag == ""


@given(st.sampled_from(STATUSES), st.sampled_from(["ONLINE", "OFFLINE"]), st.floats(0, 2 * THRESHOLD))
def test_every_state_leads_to_exactly_one_rule(status, agent_status, offline_for):
    """Success and anything unknown run on; an ended failure or CANCELLING fails (never
    cancelled again); only a lost agent takes a chunk back or strands it."""
    step = follow(CHUNK, seen(status, agent_status, offline_for if agent_status == "OFFLINE" else 0.0),
                  THRESHOLD).step
    lost = agent_status == "OFFLINE"
    if status in ("ERROR", "CANCELLING"):
        assert step is Step.FAIL
    elif status == "SUCCESS" or not lost:
        assert step is Step.RUN_ON
    elif status in ("QUEUED", "LAUNCHING"):
        assert step is Step.TAKE_BACK
    else:
        assert step is (Step.STRAND if offline_for >= THRESHOLD else Step.RUN_ON)


@pytest.mark.parametrize(("status", "step"), [
    ("SUCCESS", Step.SUCCEEDED_AFTER_ALL), ("ERROR", Step.STOPPING), ("CANCELLING", Step.STOPPING),
    ("QUEUED", Step.CANCEL_AGAIN), ("TRANSFERRING", Step.CANCEL_AGAIN), ("SOMETHING_NEW", Step.CANCEL_AGAIN)])
def test_a_chunk_taken_back_is_handed_out_only_once_its_execution_stops(status, step):
    assert after_take_back(Execution(status)) is step


def failed_on(*agents: str) -> ChunkRecord:
    return ChunkRecord(0, ("/d/",), 1, 1, 0, 1, tuple(ChunkAttempt(a, "t", 0.0, f"r/chunk-0/{i}", f"e{i}",
                                                                   failure="ERROR") for i, a in enumerate(agents)))


def test_a_waiting_chunk_is_given_up_past_its_retries_or_when_every_possible_agent_failed_it():
    assert give_up_reason(failed_on(), 0, {"a1"}) is None
    assert give_up_reason(failed_on("a1"), 1, {"a1", "a2"}) is None
    assert give_up_reason(failed_on("a1", "a2"), 1, {"a1", "a2", "a3"}) == \
        "failed 2 time(s), more than the 1 retries allowed"
    assert give_up_reason(failed_on("a1", "a2"), 5, {"a1", "a2"}) == \
        "failed on every agent that may serve the run (2)"
    assert give_up_reason(failed_on("a1"), 5, set()) is not None  # no agent may ever serve the run


def test_a_chunk_taken_back_unfailed_spends_nothing_and_bars_no_agent():
    returned = ChunkRecord(0, ("/d/",), 1, 1, 0, 1, (ChunkAttempt("a1", "t", 0.0, "r/chunk-0/1", "e1",
                                                                  returned=True),))
    assert returned.barred == frozenset() and give_up_reason(returned, 0, {"a1"}) is None
