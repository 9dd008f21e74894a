"""The watcher's decision for one execution, straight from what a check saw: no server."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arns import AGENTS, EXEC
from datasync_multi.decisions import Decision, Fleet, Kind, Seen, decide
from datasync_multi.ledger import Attempt, PlannedScope, Scope
from datasync_multi.records import Execution
from profiles import examples

A1, A2, A3, A4 = AGENTS[:4]
PLANNED = PlannedScope("T_agent-1", ("/a/", "/b*"), (), files=100, dirs=10, bytes=10_000)
ALL_ONLINE = Fleet({A1: "ONLINE", A2: "ONLINE", A3: "ONLINE"}, {})


def seen(status: str, *, agent_status: str = "ONLINE", offline_for: float = 0.0, planned=PLANNED, why_not="",
         **described) -> Seen:
    return Seen(Execution(status, **described), agent_status, offline_for, planned, why_not)


def first_attempt(retries: int = 0) -> Scope:
    return Scope([Attempt(A1, EXEC)], retries=retries)


def decided(what: Seen, scope: Scope | None = None, fleet: Fleet = ALL_ONLINE, max_retries: int = 1) -> Decision:
    return decide(what, scope or first_attempt(), fleet, max_retries=max_retries, offline_threshold=600)


@pytest.mark.parametrize("what,expected", [
    (seen("TRANSFERRING"), Decision(Kind.WAIT, "running")),
    (seen("SUCCESS", agent_status="OFFLINE", offline_for=9999), Decision(Kind.DONE, "done")),
    (seen("TRANSFERRING", agent_status="OFFLINE", offline_for=599), Decision(Kind.WAIT, "running")),
    (seen("LAUNCHED"), Decision(Kind.WAIT, "running")),
    (seen("SOMETHING_NEW"), Decision(Kind.WAIT, "running")),  # unknown: unfinished, on purpose
])
def test_what_is_running_or_done_is_left_alone(what, expected):
    assert decided(what) == expected


def test_an_error_is_retried_at_once_on_the_least_busy_healthy_agent():
    fleet = Fleet({A1: "ONLINE", A2: "ONLINE", A3: "ONLINE", A4: "OFFLINE"}, {A2: 2, A3: 1})
    assert decided(seen("ERROR", error_code="AgentOffline"), fleet=fleet) == \
        Decision(Kind.RETRY, "AgentOffline; ", failed="ERROR", target=A3)


def test_ties_go_by_arn_and_only_to_the_plans_agents():
    assert decided(seen("ERROR")).target == A2
    assert decided(seen("ERROR"), fleet=Fleet(ALL_ONLINE.statuses, {}, frozenset({A1, A3}))).target == A3


def test_a_stranded_execution_is_cancelled_then_retried():
    what = seen("TRANSFERRING", agent_status="OFFLINE", offline_for=900)
    assert decided(what) == Decision(Kind.CANCEL_THEN_RETRY, "stranded: agent out of contact 900s; ",
                                     failed="TRANSFERRING on offline agent", target=A2)


@pytest.mark.parametrize("status", ["QUEUED", "LAUNCHING"])
def test_work_still_queued_on_a_lost_agent_moves_at_once_unfailed_and_spends_nothing(status):
    for offline_for in (0.0, 9999.0):
        what = seen(status, agent_status="OFFLINE", offline_for=offline_for)
        assert decided(what, first_attempt(retries=1)) == Decision(
            Kind.TAKE_BACK, f"{status.lower()} on a lost agent, read nothing; ", target=A2)
    nowhere = Fleet({A1: "OFFLINE", A2: "OFFLINE"}, {})
    assert decided(seen(status, agent_status="OFFLINE"), fleet=nowhere) == Decision(
        Kind.WAIT, f"{status.lower()} on a lost agent; no healthy agent to move it to yet")


def test_an_unknown_status_on_a_lost_agent_is_stranded_too():
    assert decided(seen("SOMETHING_NEW", agent_status="OFFLINE", offline_for=700)).kind == Kind.CANCEL_THEN_RETRY


def test_a_cancelling_execution_is_retried_and_never_cancelled_again():
    for agent_status, offline_for in (("ONLINE", 0.0), ("OFFLINE", 9999.0)):
        what = seen("CANCELLING", agent_status=agent_status, offline_for=offline_for)
        assert decided(what) == Decision(Kind.RETRY, "", failed="CANCELLING", target=A2)


def test_no_retry_left_gives_up():
    what = seen("PREPARING", agent_status="OFFLINE", offline_for=900, error_code="X")
    assert decided(what, first_attempt(retries=1)) == Decision(
        Kind.GIVE_UP, "stranded: agent out of contact 900s; X; failed, no retries left (1/1)",
        failed="PREPARING on offline agent")
    assert decided(seen("ERROR"), max_retries=0).action == "failed, no retries left (0/0)"


def test_a_scope_that_cannot_be_rebuilt_gives_up_and_says_why():
    what = seen("ERROR", planned=None, why_not="the ledger holds no run record")
    assert decided(what) == Decision(
        Kind.GIVE_UP, "failed; not retried: the ledger holds no run record, so its scope cannot be rebuilt",
        failed="ERROR", log="failed and is not retried: the ledger holds no run record, so its scope cannot be rebuilt")


def test_no_healthy_agent_keeps_the_budget_for_the_next_check():
    scope = first_attempt()
    for fleet in (Fleet({A1: "ONLINE", A2: "OFFLINE"}, {}), Fleet({**ALL_ONLINE.statuses, A2: "OFFLINE"}, {},
                                                                    frozenset({A1, A2}))):
        decision = decided(seen("ERROR"), scope, fleet)
        assert (decision.kind, decision.target, decision.failed) == (Kind.NO_HEALTHY_AGENT, None, "ERROR")
        assert decision.action == "failed; no healthy agent to move to, retry budget kept"
    assert scope.retries == 0


def test_a_scope_failed_on_every_agent_that_may_serve_the_run_is_given_up_even_with_retries_left():
    scope = Scope([Attempt(A1, EXEC, failure="ERROR"), Attempt(A2, EXEC[:-1] + "1")], retries=1)
    for fleet in (Fleet({A1: "ONLINE", A2: "ONLINE"}, {}), Fleet(ALL_ONLINE.statuses, {}, frozenset({A1, A2}))):
        decision = decided(seen("ERROR"), scope, fleet, max_retries=5)
        assert (decision.kind, decision.action) == (Kind.GIVE_UP, "failed on every agent that may serve the run")
    assert decided(seen("ERROR"), Scope(scope.attempts, 1, given_up="no retries left"), max_retries=5).kind == \
        Kind.GIVE_UP  # a word once recorded stays


def test_a_third_attempt_goes_to_the_one_agent_that_has_not_failed_the_scope():
    scope = Scope([Attempt(A1, EXEC, failure="ERROR"), Attempt(A2, EXEC[:-1] + "1")], retries=1)
    assert decided(seen("ERROR"), scope, max_retries=2).target == A3


@pytest.mark.parametrize("status,mode,estimated,flagged", [
    ("TRANSFERRING", "BASIC", int(110 * 1.5) + 100, False),
    ("TRANSFERRING", "BASIC", int(110 * 1.5) + 101, True),
    ("TRANSFERRING", "ENHANCED", int(100 * 1.5) + 101, True),  # Enhanced mode counts files only
    ("LAUNCHING", "BASIC", 10**6, False),  # no estimate before PREPARING
    ("SUCCESS", "BASIC", 10**6, True),
])
def test_an_execution_selecting_far_more_than_its_plan_is_flagged(status, mode, estimated, flagged):
    decision = decided(seen(status, task_mode=mode, estimated_files=estimated))
    assert decision.kind == (Kind.DONE if status == "SUCCESS" else Kind.WAIT)
    assert bool(decision.flag) == flagged
    assert decision.action == (decision.flag or ("done" if status == "SUCCESS" else "running"))


statuses = st.sampled_from(["QUEUED", "LAUNCHING", "PREPARING", "TRANSFERRING", "VERIFYING", "CANCELLING", "SUCCESS",
                            "ERROR", "LAUNCHED", "UNKNOWN", "NEW"])
agents = st.sampled_from([A1, A2, A3, A4])


@settings(max_examples=examples(300))
@given(status=statuses, agent_status=st.sampled_from(["ONLINE", "OFFLINE"]), offline_for=st.floats(0, 2000),
       earlier=st.lists(st.tuples(agents, st.booleans()), max_size=3), latest=agents, retries=st.integers(0, 3),
       max_retries=st.integers(0, 3), statuses_=st.dictionaries(agents, st.sampled_from(["ONLINE", "OFFLINE"])),
       busy=st.dictionaries(agents, st.integers(0, 5)), allowed=st.none() | st.frozensets(agents),
       planned=st.sampled_from([PLANNED, None]))
def test_a_move_is_decided_only_within_budget_onto_a_healthy_untried_allowed_agent(
        status, agent_status, offline_for, earlier, latest, retries, max_retries, statuses_, busy, allowed, planned):
    """``earlier``: attempts before the latest, each failed or taken back (True: failed)."""
    attempts = [Attempt(a, f"{EXEC[:-2]}{i:02d}", failure="ERROR" if f else None, returned=not f)
                for i, (a, f) in enumerate(earlier)] + [Attempt(latest, EXEC)]
    scope = Scope(attempts, retries=retries)
    before = copy.deepcopy(scope)
    decision = decide(Seen(Execution(status), agent_status, offline_for, planned, "why"), scope,
                      Fleet(statuses_, busy, allowed), max_retries=max_retries, offline_threshold=600)
    assert scope == before  # deciding changes nothing
    barred = {a for a, failed in earlier if failed} | {latest}
    usable = (set(statuses_) if allowed is None else set(allowed)) - barred
    unread = status in ("QUEUED", "LAUNCHING") and agent_status == "OFFLINE"
    stranded = not unread and status not in ("SUCCESS", "ERROR", "CANCELLING") and agent_status == "OFFLINE" \
        and offline_for >= 600
    if decision.kind in (Kind.RETRY, Kind.CANCEL_THEN_RETRY, Kind.TAKE_BACK):
        assert planned is not None and decision.target in usable and statuses_[decision.target] == "ONLINE"
        assert min(busy.get(a, 0) for a in usable if statuses_.get(a) == "ONLINE") == busy.get(decision.target, 0)
    else:
        assert decision.target is None
    if unread:
        assert decision.kind in (Kind.TAKE_BACK, Kind.WAIT)  # never a failure, never a budget spent
    elif status in ("ERROR", "CANCELLING") or stranded:
        assert (decision.kind == Kind.GIVE_UP) == (retries >= max_retries or planned is None or not usable)
        assert (decision.kind == Kind.CANCEL_THEN_RETRY) == (stranded and decision.target is not None)
        assert decision.kind != Kind.NO_HEALTHY_AGENT or not any(statuses_.get(a) == "ONLINE" for a in usable)
    else:
        assert decision.kind in (Kind.WAIT, Kind.DONE)


def test_a_scope_taken_back_may_go_back_to_its_agent_and_is_given_up_only_when_no_agent_may_take_it():
    scope = Scope([Attempt(A1, EXEC, returned=True)])
    assert decided(seen("ERROR"), scope, Fleet({A1: "ONLINE"}, {})) == Decision(
        Kind.TAKE_BACK, "taken back unfailed earlier, read nothing; ", target=A1)
    barred = Fleet({A1: "ONLINE", A2: "ONLINE"}, {}, frozenset(), frozenset())  # every agent barred
    assert decided(seen("ERROR"), scope, barred).kind == Kind.GIVE_UP
    assert scope.retries == 0


def test_a_drained_agent_is_waited_for_not_given_up_on():
    scope = Scope([Attempt(A1, EXEC)])
    drained = Fleet({A1: "ONLINE", A2: "ONLINE"}, {}, frozenset({A1}), frozenset({A1, A2}))  # A2 drained
    decision = decided(seen("ERROR"), scope, drained, max_retries=3)
    assert (decision.kind, decision.target) == (Kind.NO_HEALTHY_AGENT, None)
