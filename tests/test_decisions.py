"""The watcher's decision for one execution, straight from what a check saw: no server."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasync_multi.datasync import Execution
from datasync_multi.decisions import Decision, Fleet, Kind, Seen, decide
from datasync_multi.state import Attempt, PlannedScope, Scope

A1, A2, A3, A4 = (f"arn:aws:datasync:us-east-1:111122223333:agent/agent-{i:017x}" for i in range(1, 5))
EXEC = "arn:aws:datasync:us-east-1:111122223333:task/task-0123456789abcdef0/execution/exec-0123456789abcdef0"
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
    (seen("LAUNCHING", agent_status="OFFLINE", offline_for=599), Decision(Kind.WAIT, "running")),
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
    what = seen("LAUNCHING", agent_status="OFFLINE", offline_for=900)
    assert decided(what) == Decision(Kind.CANCEL_THEN_RETRY, "stranded: agent out of contact 900s; ",
                                     failed="LAUNCHING on offline agent", target=A2)


def test_an_unknown_status_on_a_lost_agent_is_stranded_too():
    assert decided(seen("SOMETHING_NEW", agent_status="OFFLINE", offline_for=700)).kind == Kind.CANCEL_THEN_RETRY


def test_a_cancelling_execution_is_retried_and_never_cancelled_again():
    for agent_status, offline_for in (("ONLINE", 0.0), ("OFFLINE", 9999.0)):
        what = seen("CANCELLING", agent_status=agent_status, offline_for=offline_for)
        assert decided(what) == Decision(Kind.RETRY, "", failed="CANCELLING", target=A2)


def test_no_retry_left_gives_up():
    what = seen("LAUNCHING", agent_status="OFFLINE", offline_for=900, error_code="X")
    assert decided(what, first_attempt(retries=1)) == Decision(
        Kind.GIVE_UP, "stranded: agent out of contact 900s; X; failed, no retries left (1/1)",
        failed="LAUNCHING on offline agent")
    assert decided(seen("ERROR"), max_retries=0).action == "failed, no retries left (0/0)"


def test_a_scope_that_cannot_be_rebuilt_gives_up_and_says_why():
    what = seen("ERROR", planned=None, why_not="there is no plan file (--plan_file) to take its scope from")
    assert decided(what) == Decision(
        Kind.GIVE_UP, "failed; not retried: there is no plan file (--plan_file) to take its scope from, so its scope "
                 "cannot be rebuilt", failed="ERROR",
        log="failed and is not retried: there is no plan file (--plan_file) to take its scope from, so its scope "
            "cannot be rebuilt")


def test_no_healthy_agent_keeps_the_budget_for_the_next_check():
    scope = first_attempt()
    for fleet in (Fleet({A1: "ONLINE", A2: "OFFLINE"}, {}), Fleet(ALL_ONLINE.statuses, {}, frozenset({A1}))):
        decision = decided(seen("ERROR"), scope, fleet)
        assert (decision.kind, decision.target, decision.failed) == (Kind.NO_HEALTHY_AGENT, None, "ERROR")
        assert decision.action == "failed; no healthy agent to move to, retry budget kept"
    assert scope.retries == 0


def test_a_third_attempt_goes_to_the_one_agent_that_has_not_failed_the_scope():
    scope = Scope([Attempt(A1, EXEC, failed="ERROR"), Attempt(A2, EXEC[:-1] + "1")], retries=1)
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


@settings(max_examples=300, deadline=None)
@given(status=statuses, agent_status=st.sampled_from(["ONLINE", "OFFLINE"]), offline_for=st.floats(0, 2000),
       tried=st.lists(agents, min_size=1, max_size=4), retries=st.integers(0, 3), max_retries=st.integers(0, 3),
       statuses_=st.dictionaries(agents, st.sampled_from(["ONLINE", "OFFLINE"])),
       busy=st.dictionaries(agents, st.integers(0, 5)), allowed=st.none() | st.frozensets(agents),
       planned=st.sampled_from([PLANNED, None]))
def test_a_retry_is_decided_only_within_budget_onto_a_healthy_untried_allowed_agent(
        status, agent_status, offline_for, tried, retries, max_retries, statuses_, busy, allowed, planned):
    scope = Scope([Attempt(a, f"{EXEC[:-2]}{i:02d}") for i, a in enumerate(tried)], retries=retries)
    before = copy.deepcopy(scope)
    decision = decide(Seen(Execution(status), agent_status, offline_for, planned, "why"), scope,
                      Fleet(statuses_, busy, allowed), max_retries=max_retries, offline_threshold=600)
    assert scope == before  # deciding changes nothing
    if decision.kind in (Kind.RETRY, Kind.CANCEL_THEN_RETRY):
        assert retries < max_retries and planned is not None
        assert decision.target not in tried and statuses_[decision.target] == "ONLINE"
        assert allowed is None or decision.target in allowed
        assert min(busy.get(a, 0) for a, s in statuses_.items() if s == "ONLINE" and a not in tried
                   and (allowed is None or a in allowed)) == busy.get(decision.target, 0)
    else:
        assert decision.target is None
    assert (decision.kind == Kind.CANCEL_THEN_RETRY) <= (status not in ("CANCELLING", "ERROR", "SUCCESS"))
    assert (decision.kind in (Kind.WAIT, Kind.DONE)) == (status not in ("ERROR", "CANCELLING") and not (
        status != "SUCCESS" and agent_status == "OFFLINE" and offline_for >= 600))
