"""``datasync.once``: a call that makes something, whose answer was lost, is not made again
before it has settled, however often a look finds nothing."""

from __future__ import annotations

import time

import pytest

from datasync_multi.datasync import SETTLE_ENV, OutcomeUnknown, once


class LostOnce:
    """A call whose first answer is lost, whatever it did; it says what it made after that."""

    def __init__(self) -> None:
        self.sent: list[float] = []

    def __call__(self) -> str:
        self.sent.append(time.monotonic())
        if len(self.sent) == 1:
            raise OutcomeUnknown("no answer")
        return "made"


def looks_finding_nothing(seen: list[float]):
    def look() -> None:
        seen.append(time.monotonic())
    return look


@pytest.mark.parametrize("settle", [0.0, 2.5])
def test_a_lost_call_is_made_again_only_once_it_has_settled(monkeypatch, settle):
    monkeypatch.setenv(SETTLE_ENV, str(settle))
    make, seen = LostOnce(), []
    assert once("making", make, looks_finding_nothing(seen)) == ("made", True)
    assert len(make.sent) == 2
    assert make.sent[1] - make.sent[0] >= settle  # nothing sent again before the first had settled
    assert seen and seen[-1] - make.sent[0] >= settle and make.sent[1] >= seen[-1]
    assert len(seen) == (1 if settle == 0 else 2)  # looked after a second, then once settled


def test_a_deferred_call_looks_once_and_leaves_the_rest_to_the_next_check(monkeypatch):
    monkeypatch.setenv(SETTLE_ENV, "60")
    make, seen = LostOnce(), []
    with pytest.raises(OutcomeUnknown):
        once("starting", make, looks_finding_nothing(seen), defer=True)
    assert len(make.sent) == 1 and len(seen) == 1


def test_what_a_look_finds_is_adopted_and_not_made_again(monkeypatch):
    monkeypatch.setenv(SETTLE_ENV, "60")
    make = LostOnce()
    assert once("making", make, lambda: "found") == ("found", False)
    assert len(make.sent) == 1
