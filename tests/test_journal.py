"""A live run's journal and sizing: lines on disk before anything depends on them, a line a
kill cut short never read nor glued to the next, the scan's lock seen by a watcher, the
chunk target's rules, and --chunk_size's forms."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from datasync_multi.assign import Speed
from datasync_multi.errors import UserError
from datasync_multi.journal import Journal, ScanProgress, scan_alive, scanning
from datasync_multi.live import CutRecord, Demand, Sizing
from datasync_multi.live_run import Cadence, check_loop, chunk_cost
from datasync_multi.plan import Chunk
from datasync_multi.report import DispatchResult, ScanState
from datasync_multi.split import DIR, GROUP, Unit


def chunk(index: int, *patterns: str) -> Chunk:
    return Chunk(tuple(Unit(p, GROUP if p.endswith("*") else DIR, 10, 1, 0, 10) for p in patterns), index=index)


def test_a_journal_reads_back_what_was_appended_and_resumes_from_it(tmp_path):
    path = str(tmp_path / "j")
    j = Journal(path)
    sizing = Sizing.guided(10_000, 2, 4, 100)
    before = time.time()
    j.begin("run1", ("", ), sizing, "a guess")
    j.cut(CutRecord("", ("a", "b"), (("c", False), ("u1", True))))
    units = {u.pattern: u for u in chunk(0, "/a*", "/c/", "/b*", "/u1/").units}
    for pattern in ("/a*", "/c/"):
        j.unit(units[pattern])
    j.chunk(chunk(0, "/a*", "/c/"))
    j.note_progress(ScanProgress(3, 40, 500, 1.0))
    j.unit(units["/b*"])
    j.unit(units["/u1/"])
    j.chunk(chunk(1, "/b*"))
    after = time.time()
    with open(path) as fh:  # each unit line says when its unit closed, in the order they closed
        closed = [line["at"] for line in map(json.loads, fh) if line["kind"] == "unit"]
    assert len(closed) == 4 and before <= closed[0] and closed == sorted(closed) and closed[-1] <= after
    back = Journal.read(path, units=True)
    assert (back.run, back.roots, back.sizing, back.estimate_note) == ("run1", ("",), sizing, "a guess")
    assert back.cuts == {"": CutRecord("", ("a", "b"), (("c", False), ("u1", True)))}
    assert [c.includes for c in back.chunks] == [("/a*", "/c/"), ("/b*",)]
    assert back.progress == ScanProgress(3, 40, 500, 1.0) and not back.ended
    resume = back.resume()
    assert resume.emitted == {"/a*", "/c/", "/b*", "/u1/"} and resume.next_index == 2 and resume.emitted_cost == 30
    assert resume.pooled == [units["/u1/"]]  # closed, in no chunk: back into the pool
    checked = Journal.read(path)  # as a check reads it: the chunks, not the units
    assert [c.includes for c in checked.chunks] == [("/a*", "/c/"), ("/b*",)] and checked.units is None
    back.end(ScanProgress(9, 90, 900, 2.0), ["a warning"])
    again = Journal.read(path)
    assert again.ended and again.warnings == ("a warning",) and again.progress.dirs == 9


def test_a_line_cut_short_by_a_kill_is_not_read_and_is_mended_before_the_next_append(tmp_path):
    path = str(tmp_path / "j")
    j = Journal(path)
    j.begin("run1", ("",), Sizing.guided(10_000, 1, 4, 0), "")
    j.chunk(chunk(0, "/a*"))
    with open(path, "a", encoding="utf-8") as fh:  # what a kill in the middle of an append leaves
        fh.write(json.dumps({"kind": "chunk", "chunk": chunk(1, "/b*").to_json()})[:40])
    cut_short = Journal.read(path)
    assert [c.index for c in cut_short.chunks] == [0]
    cut_short.mend()
    cut_short.chunk(chunk(1, "/b*"))
    assert [c.includes for c in Journal.read(path).chunks] == [("/a*",), ("/b*",)]


def test_a_watcher_sees_a_scan_running_only_while_a_scheduler_holds_the_journal(tmp_path):
    path = str(tmp_path / "j")
    assert not scan_alive(path)
    with scanning(path):
        # another process asks, as the watcher does: flock locks are per open file, so ask from outside
        probe = [sys.executable, "-c", "import sys; from datasync_multi.journal import scan_alive; "
                                       "sys.exit(0 if scan_alive(sys.argv[1]) else 1)", path]
        assert subprocess.run(probe, cwd=os.path.dirname(os.path.dirname(__file__))).returncode == 0
    assert not scan_alive(path)


@pytest.mark.parametrize("text,cost", [("1000", 1000), ("2KiB", 2048), ("1.5GiB", 3 << 29), ("3GB", 3 * 10**9),
                                       ("200files", 200 * 512), ("1file", 512)])
def test_chunk_size_takes_bytes_or_files(text, cost):
    assert chunk_cost(text, 512) == cost


@pytest.mark.parametrize("text", ["", "12xb", "-5GiB", "0", "files", "1e9"])
def test_chunk_size_refuses_anything_else_in_one_line(text):
    with pytest.raises(UserError) as err:
        chunk_cost(text, 512)
    assert "\n" not in str(err.value) and "--chunk_size" in str(err.value)


def test_chunks_keep_an_even_share_then_shrink_toward_the_end_never_below_a_unit():
    s = Sizing.guided(16_000, 4, 4, 0)  # 16 scopes: 1,000 each; units cut at 250
    assert s.threshold == 250
    assert s.target(seen=100, emitted=0) == 1000
    assert s.target(seen=9000, emitted=8000) == 1000  # 8,000 left: two chunks per agent
    assert s.target(seen=14000, emitted=12000) == 500  # 4,000 left: half of it per agent
    assert s.target(seen=16000, emitted=15900) == 250  # never below the unit threshold
    assert s.target(seen=32000, emitted=30000) == 2000  # the estimate was low: as if the share were what is seen
    fixed = Sizing.fixed(700, 4, 4, 0)
    assert fixed.target(seen=10**9, emitted=10**9 - 1) == 700 and fixed.threshold == 175
    assert Sizing.from_json(json.loads(json.dumps(s.to_json()))) == s


class Clock:
    """A clock the test moves: each check is taken when the last one said."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def after(self, seconds: float) -> float:
        self.now += seconds
        return seconds


def test_a_live_scheduler_closes_in_on_when_an_agent_should_free_and_backs_off_when_it_does_not():
    clock = Clock()
    cadence = Cadence(every=30, gap=1, clock=clock)
    assert cadence.wait((), 0) == 30  # every agent idle, or none known
    assert cadence.wait((7.5, 9), 0) == 2.5 and cadence.wait((120,), 1) == 30  # a third of the way to it
    assert cadence.wait((2.4,), 0) == 1  # never sooner than the gap
    late = [clock.after(cadence.wait((0.0,), 0)) for _ in range(8)]  # an execution runs past its estimate
    assert late == [1, 1, 2, 4, 8, 16, 30, 30]  # asked again after as long as it has been late
    assert cadence.wait((0.4, 12), 0) == 4  # still late, still backed off; another agent's free is kept
    assert cadence.wait((6,), 0) == 2 and cadence.wait((0.2,), 0) == 1  # none late: from the gap again
    clock.after(1)
    assert cadence.wait((0.2,), 0) == 1 and clock.after(1) and cadence.wait((0.3,), 1) == 1  # a start since


def test_checks_called_by_closing_chunks_do_not_push_a_late_agents_next_check_further_off():
    """While the first executions run (no rate measured: every agent late), chunks close and
    each calls a check that starts nothing; the next check still comes a gap after the agents
    became late, not after a wait doubled by each of those checks."""
    clock = Clock()
    cadence = Cadence(every=30, gap=0.25, clock=clock)
    waits = [cadence.wait((0.0, 0.0), 0) for _ in range(8)]  # eight chunks closing within the same moment
    assert waits == [0.25] * 8
    clock.after(0.5)
    assert cadence.wait((0.0,), 0) == 0.5


def run_check_loop(answers: list, every: float = 60.0, gap: float = 0.01, demand: Demand | None = None) -> list:
    """``check_loop`` over a scan whose chunks close when a check says so: each answer is
    (frees, started, what happens meanwhile: 'chunk', 'end' or nothing); the checks' ``final``
    flags and the scan's start, in order, once the loop has returned (within 20 s; ``every``
    is longer)."""
    calls: list[bool] = []
    scan = SimpleNamespace(fresh=threading.Event(), done=threading.Event(), demand=demand or Demand(),
                           start=lambda: calls.append("scan"))  # the scan starts after the first check

    def check(final: bool):
        calls.append(final)
        checks = sum(1 for c in calls if c != "scan")
        frees, started, then = answers[min(checks, len(answers)) - 1]
        if then == "chunk":
            scan.fresh.set()
        if then == "end":
            scan.done.set()
            scan.fresh.set()
        return frees, started

    loop = threading.Thread(target=check_loop, args=(scan, check, every, gap), daemon=True)
    loop.start()
    loop.join(timeout=20)
    assert not loop.is_alive(), f"still waiting after {calls}"
    return calls


def test_the_check_loop_checks_before_the_scan_at_each_chunk_when_an_agent_frees_and_once_after():
    checked = run_check_loop([((), 0, "chunk"), ((), 0, "chunk"), ((), 0, "end")])
    assert checked == [False, "scan", False, False, True]
    # no chunk closes, but an agent should free in 0.05 s: checked then, not a minute later
    checked = run_check_loop([((0.05,), 1, None), ((0.05,), 0, None), ((), 0, "end")])
    assert checked == [False, "scan", False, False, True]


def test_a_chunk_packed_for_an_agent_left_asking_is_checked_at_once_not_a_gap_later():
    """The gap between checks lets chunks closing together start together; a chunk the scan
    packs for an agent the last check left idle is started at once. With a gap of a minute,
    three checks end within the loop's 20 s only if none waited for it."""
    checked = run_check_loop([((), 0, "chunk"), ((), 0, "chunk"), ((), 0, "end")], gap=60.0,
                             demand=Demand((1.0,), ()))
    assert checked == [False, "scan", False, False, True]


def test_the_check_gap_is_kept_when_no_agent_waits_idle_for_a_chunk():
    """Nothing asks, or only a queue slot (its agent runs something): the check after a new
    chunk still waits the gap, so chunks closing together start together."""
    for demand in (Demand(), Demand((1.0,), ((Speed.of_cost(1000.0, 0), 100.0),), (0,))):
        began = time.monotonic()
        checked = run_check_loop([((), 0, "chunk"), ((), 0, "chunk"), ((), 0, "end")], gap=0.5, demand=demand)
        assert checked == [False, "scan", False, False, True] and time.monotonic() - began >= 0.5


def test_a_live_run_is_finished_only_once_its_scan_has_ended():
    result = DispatchResult(counts={"done": 3})
    assert result.finished
    result.scan = ScanState(10, 100, 1 << 20, 3, ended=False, alive=True)
    assert not result.finished and "read so far, 3 chunk(s) closed" in result.summary()
    assert "finish not known while the scan runs" in result.summary()
    result.scan = ScanState(10, 100, 1 << 20, 3, ended=False, alive=False)
    assert not result.finished and "rerun the scheduler with the same flags to resume it" in result.summary()
    result.scan = ScanState(10, 100, 1 << 20, 3, ended=True, alive=False)
    assert result.finished and result.summary().startswith("scan: done")


def test_a_journal_damaged_before_its_last_line_is_refused_in_one_line(tmp_path):
    path = tmp_path / "j"
    Journal(str(path)).begin("run1", ("",), Sizing.guided(10_000, 1, 4, 0), "")
    path.write_text("{not json\n" + path.read_text())
    with pytest.raises(UserError) as err:
        Journal.read(str(path))
    assert "damaged at line 1" in str(err.value) and "\n" not in str(err.value)
