"""The ledger's records change only through named moves, and only the moves the protocol
allows (``ledger.MOVES``): the table below is the protocol, written out by hand."""

from __future__ import annotations

import copy
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datasync_multi.ledger import (
    SUPERSEDED,
    Attempt,
    ChunkAttempt,
    ChunkRecord,
    MoveRefused,
    Phase,
    PlannedScope,
    Retry,
    Scope,
)

S, F, R = Phase.STARTED, Phase.FAILED, Phase.RETURNED
X = None
"""Refused."""

# (the start before, as its phase and whether it has an execution) -> what each move leaves
TABLE = {
    #                          started  failed  taken_back  superseded  succeeded_after_all
    ("intent", False):          (S,      X,      R,          F,          X),
    ("started", True):          (X,      F,      R,          F,          X),
    ("failed", True):           (X,      F,      X,          X,          S),
    ("failed", False):          (F,      X,      X,          X,          X),  # an intent superseded
    ("returned", True):         (X,      X,      R,          X,          S),
    ("returned", False):        (R,      X,      R,          X,          X),  # a start refused before it ran
}
MOVES = ("started", "failed", "taken_back", "superseded", "succeeded_after_all")


def chunk_start(phase: str, has_execution: bool) -> ChunkAttempt:
    return ChunkAttempt("a1", "t1", 0.0, "run/chunk-0/1", "e1" if has_execution else None,
                        failure="ERROR" if phase == "failed" else None, returned=phase == "returned")


def scope_start(phase: str, has_execution: bool) -> Attempt:
    return Attempt("a1", "e1" if has_execution else None, failure="ERROR" if phase == "failed" else None,
                   returned=phase == "returned", tag="run/T/1")


def move(start, name: str) -> None:
    args = {"started": ("e2",), "failed": ("ERROR",)}.get(name, ())
    getattr(start, name)(*args)


@pytest.mark.parametrize("make", [chunk_start, scope_start], ids=["chunk", "scope"])
@pytest.mark.parametrize("before", list(TABLE), ids=[f"{p}{'+exec' if e else ''}" for p, e in TABLE])
@pytest.mark.parametrize("index", range(len(MOVES)), ids=MOVES)
def test_every_move_from_every_phase_is_the_table(make, before, index):
    start = make(*before)
    assert start.phase.value == before[0]
    kept = copy.deepcopy(start)
    expected = TABLE[before][index]
    if expected is None:
        with pytest.raises(MoveRefused):
            move(start, MOVES[index])
        assert start == kept  # a refused move changes nothing
    else:
        move(start, MOVES[index])
        assert start.phase is expected
        assert start.active == (expected in (Phase.INTENT, S))


def test_what_each_move_records():
    start = chunk_start("intent", False)
    start.started("e9")
    assert (start.execution, start.failure, start.returned) == ("e9", None, False)
    start.failed("TRANSFERRING on offline agent")
    assert start.failure == "TRANSFERRING on offline agent" and start.to_json()["failed"] == start.failure
    start.succeeded_after_all()
    assert (start.failure, start.returned, start.active) == (None, False, True)
    start.taken_back()
    assert start.returned and start.to_json()["returned"] is True
    fresh = chunk_start("intent", False)
    fresh.superseded()
    assert fresh.failure == SUPERSEDED


def test_no_field_can_be_assigned_around_the_moves():
    start, attempt = chunk_start("started", True), scope_start("started", True)
    for record, name in ((start, "failure"), (start, "returned"), (start, "execution"), (attempt, "failure"),
                         (attempt, "retry")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, name, None)
    chunk = ChunkRecord(0, ("/d/",), 1, 1, 0, 1, (start,))
    scope = Scope((attempt,))
    with pytest.raises(AttributeError):
        chunk.attempts.append(start)  # type: ignore[attr-defined]
    for record, name in ((chunk, "given_up"), (chunk, "attempts"), (scope, "retries"), (scope, "given_up"),
                         (scope, "planned")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, name, None)


def test_a_chunk_takes_a_new_start_only_while_it_waits():
    chunk = ChunkRecord(0, ("/d/",), 1, 1, 0, 1)
    first = chunk.intend_start("a1", "t1", 1.0, "run/chunk-0/1")
    with pytest.raises(MoveRefused):  # an intent is active
        chunk.intend_start("a2", "t2", 2.0, "run/chunk-0/2")
    first.started("e1")
    with pytest.raises(MoveRefused):  # so is a started one
        chunk.intend_start("a2", "t2", 2.0, "run/chunk-0/2")
    first.failed("ERROR")
    second = chunk.intend_start("a2", "t2", 2.0, "run/chunk-0/2")
    assert chunk.latest is second and chunk.barred == {"a1"} and chunk.failures == 1
    second.taken_back()
    chunk.give_up("no agent left")
    chunk.give_up("a later reason")
    assert chunk.given_up == "no agent left"  # the first word is final
    with pytest.raises(MoveRefused):
        chunk.intend_start("a3", "t3", 3.0, "run/chunk-0/3")


def retry() -> Retry:
    return Retry("e1", 1.0, "T_retry", "srv", "/x", "dest", None, ["/a/"], [], {})


def test_a_scope_is_retried_only_after_its_latest_attempt_ended_and_a_refused_retry_gives_its_budget_back():
    scope = Scope((Attempt("a1", "e1", tag="run/T/1"),))
    with pytest.raises(MoveRefused):
        scope.intend_retry("a2", retry(), "run/T/2")
    scope.latest.failed("ERROR")
    intent = scope.intend_retry("a2", retry(), "run/T/2")
    assert scope.retries == 1 and intent.phase is Phase.INTENT
    intent.task_created("task-2")
    with pytest.raises(MoveRefused):  # a retry's task is set once
        intent.task_created("task-3")
    scope.withdraw(intent)
    assert scope.retries == 0 and len(scope.attempts) == 1
    with pytest.raises(MoveRefused):  # only an unstarted latest retry is withdrawn
        scope.withdraw(scope.latest)
    taken = scope.intend_retry("a2", retry(), "run/T/2", spend=False)
    assert scope.retries == 0
    taken.started("e2")
    with pytest.raises(MoveRefused):
        scope.withdraw(taken)
    scope.give_up("no retries left")
    taken.failed("ERROR")
    with pytest.raises(MoveRefused):
        scope.intend_retry("a3", retry(), "run/T/3")


def test_a_scope_learns_its_scope_of_record_once():
    scope = Scope((Attempt("a1", "e1"),))
    planned = PlannedScope("T", ("/a/",))
    scope.record_plan(planned)
    scope.record_plan(planned)
    with pytest.raises(MoveRefused):
        scope.record_plan(PlannedScope("T", ("/b/",)))


def test_a_second_execution_of_one_start_is_recorded_failed_for_its_caller_to_cancel():
    chunk = ChunkRecord(0, ("/d/",), 1, 1, 0, 1, (ChunkAttempt("a1", "t1", 0.0, "run/chunk-0/1", "e1"),))
    assert chunk.adopt(ChunkAttempt("a1", "t1", 0.0, "run/chunk-0/1", "e2")) is True
    assert [(a.phase, a.execution) for a in chunk.attempts] == [(F, "e2"), (S, "e1")]  # the latest still runs
    assert chunk.failures == 0 and chunk.barred == frozenset()  # nothing failed on a1
    scope = Scope((Attempt("a1", "e1", tag="run/T/1"),))
    assert scope.adopt(Attempt("a1", "e2", tag="run/T/1")) is True and scope.retries == 0  # no retry spent
    intent = ChunkRecord(1, ("/d/",), 1, 1, 0, 1, (ChunkAttempt("a1", "t1", 0.0, "run/chunk-1/1"),))
    assert intent.adopt(ChunkAttempt("a1", "t1", 0.0, "run/chunk-1/1", "e3")) is False
    assert [(a.phase, a.execution) for a in intent.attempts] == [(S, "e3")]


OPERATIONS = st.lists(st.tuples(st.sampled_from(("intend", *MOVES, "adopt")), st.integers(0, 5)), max_size=25)


@given(OPERATIONS)
def test_whatever_a_check_tries_a_chunk_has_at_most_one_active_start_and_it_is_the_latest(operations):
    """Any sequence of moves, allowed or refused, adopted starts in any order included."""
    chunk = ChunkRecord(0, ("/d/",), 1, 1, 0, 1)
    for name, n in operations:
        before = chunk.to_json()
        try:
            if name == "intend":
                chunk.intend_start(f"a{n}", "t", 0.0, f"run/chunk-0/{len(chunk.attempts) + 1}")
            elif name == "adopt":
                chunk.adopt(ChunkAttempt(f"a{n}", "t", 0.0, f"run/chunk-0/{n}", f"found-{n}-{len(chunk.attempts)}"))
            elif chunk.latest is not None:
                move(chunk.latest, name)
        except MoveRefused:
            assert chunk.to_json() == before
        active = [i for i, a in enumerate(chunk.attempts) if a.active]
        assert active in ([], [len(chunk.attempts) - 1])
        assert ChunkRecord.from_json(chunk.to_json()) == chunk
