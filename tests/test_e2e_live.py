"""Live mode end to end (``--live``): the scheduler scans, journals chunks and starts them while
it scans; killed anywhere, a rerun resumes the scan from the journal, and the watcher hands
out the rest; each chunk starts once and the copy is exact.

Where the scan stands is chosen, not raced: a ``ScanGate`` holds the scan between two lines
of the journal through the scheduler's own locks (see ``sites.ScanGate``), while the
scheduler's checks go on; kills are SIGKILL from outside, at states read from the journal."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import time

import pytest

from datasync_multi import scan
from datasync_multi.files import exclusive_lock
from sites import (
    ScanGate,
    assert_exact_copy,
    chunks,
    journal_lines,
    journaled,
    kinds,
    ledger,
    make_site,
    poll,
    run_to_the_end,
    starts,
)

CHUNK_BYTES = 300_000
LIVE = ("--live", "--chunk_size", f"{CHUNK_BYTES}B", "--per_file_cost", "0", "--scan_workers", "1",
        "--live_check_sec", "0.5")
"""A fixed chunk size (not the share's estimate) and one scan thread: the same journal each run."""
CHAIN = 60
"""Levels of the chain below projects/: its last one heavy, so all are cut in a row."""


def add_chain(share: str) -> None:
    """projects/chain/c00/.../c59, two small files at each level and a heavy one at the bottom:
    listing the bottom makes every level heavy at once, so some 60 ``cut`` lines follow one
    another, late in the scan (after 9 of its 15 chunks), each after a file system read."""
    rng = random.Random(7)
    d = os.path.join(share, "projects", "chain")
    for level in range(CHAIN):
        d = os.path.join(d, f"c{level:02d}")
        os.makedirs(d)
        for i in range(2):
            with open(os.path.join(d, f"f{i}.txt"), "wb") as fh:
                fh.write(rng.randbytes(300))
    with open(os.path.join(d, "heavy.bin"), "wb") as fh:
        fh.write(rng.randbytes(CHUNK_BYTES * 2 // 3))  # past the unit threshold


@pytest.fixture
def site(tmp_path):
    with make_site(tmp_path) as s:
        add_chain(s.share)
        yield s


def gated(site, flags: tuple[str, ...] = LIVE) -> tuple[ScanGate, object]:
    """A live scheduler started behind a gate; the scan waits before its first line."""
    gate = ScanGate(site)
    proc = site.spawn_schedule(*flags)
    try:
        gate.begun(proc)
    except BaseException:
        stop(proc, gate)
        raise
    return gate, proc


def stop(proc, gate: ScanGate) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=60)
    gate.release()


def kill(proc) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


def started_by(output: str) -> set[int]:
    """The chunks a command's log says it started."""
    return {int(n) for n in re.findall(r"chunk (\d+) started on ", output)}


def assert_each_chunk_once(site) -> None:
    """Every chunk was journaled once and ran once, as one execution of its own includes, and
    the ledger holds what the journal holds."""
    lines = [line["chunk"] for line in journal_lines(site.journal) if line["kind"] == "chunk"]
    assert [c["index"] for c in lines] == list(range(len(lines)))
    patterns = [p for c in lines for p in c["includes"]]
    assert len(patterns) == len(set(patterns))
    record = chunks(site)
    assert all(len(c["attempts"]) == 1 for c in record)
    values = sorted(e["includes"][0]["Value"] for e in site.emu.state()["executions"])
    assert values == sorted("|".join(c["includes"]) for c in record)
    assert {c["index"]: c["includes"] for c in record} == journaled(journal_lines(site.journal))


def test_a_live_run_starts_chunks_while_it_scans_and_copies_exactly(site):
    """A chunk starts while the scan is held mid-way (so before it ends, as the ledger's
    ``decided`` and the journal's ``end`` also say), and the run copies exactly. Its dry run
    planned the same units and created nothing (the run's chunks may close sooner, while an
    agent has nothing to run)."""
    r = site.schedule(*LIVE, "--dry_run")  # the units a live run makes, and nothing created
    assert r.returncode == 0, r.stderr
    dry = json.load(open(os.path.join(site.work, "plan.json")))
    assert dry["version"] == 3 and len(dry["chunks"]) > 10 and "run" not in dry
    calls = site.emu.calls()["calls"]
    assert not {"CreateLocationNfs", "CreateTask", "UpdateTask", "StartTaskExecution"} & set(calls), calls
    assert not os.path.exists(os.path.join(site.work, "arn_file.txt.ledger.json"))

    gate, proc = gated(site)
    try:
        lines = gate.step_until(proc, lambda lines: journaled(lines), "the first chunk")
        site.emu.wait_for(lambda st: st["executions"], timeout=60)  # started while the scan is held
        assert "end" not in kinds(gate.lines())
    finally:
        gate.release()
    assert proc.wait(timeout=120) == 0, site.output("scheduler")[-3000:]
    end = journal_lines(site.journal)[-1]
    assert end["kind"] == "end"
    first = min(a["decided"] for c in chunks(site) for a in c["attempts"])
    assert first < end["at"]  # the ledger says so too: a start decided before the scan ended
    assert len(journaled(lines)) < len(journaled(journal_lines(site.journal)))
    run_to_the_end(site)
    assert_exact_copy(site)
    assert_each_chunk_once(site)
    plan = json.load(open(os.path.join(site.work, "plan.json")))
    assert plan["version"] == 3 and plan["live"] and plan["run"] == ledger(site)["run"]["id"]
    units = sorted(p for c in plan["chunks"] for p in c["includes"])  # chunks close sooner while agents idle
    assert units == sorted(p for c in dry["chunks"] for p in c["includes"])


DRAW = random.Random(20261130)
"""The kill points: how many chunk lines the journal holds first (drawn once, here)."""
KILLS = [("chunks", DRAW.randrange(0, 5)), ("chunks", DRAW.randrange(5, 10)), ("cut", DRAW.randrange(1, 10)),
         ("unstarted", DRAW.randrange(1, 9))]
"""Before the chain's cuts (9 chunks in): 60 lines and more follow, so the scan cannot end
while the gate steps; a ``cut`` after n chunks is there to stop at, in the chain at the latest."""


@pytest.mark.parametrize("where,n", KILLS, ids=[f"{w}-{n}" for w, n in KILLS])
def test_a_live_run_killed_mid_scan_resumes_and_copies_each_chunk_once(site, where, n):
    """Killed (SIGKILL) once the journal holds n chunk lines and the scheduler has started one:
    there (``chunks``), right after a ``cut`` line (``cut``), or with a journaled chunk no check
    has taken yet (``unstarted``: the arn file's lock, which every check takes, is held from
    then on). The scheduler's checks go on while the scan is held: the kill may find one
    anywhere, a start decided and not made, made and not recorded."""
    gate, proc = gated(site)
    with contextlib.ExitStack() as held:
        held.callback(stop, proc, gate)
        lines = gate.step_until(proc, lambda lines: len(journaled(lines)) >= n, f"{n} chunk lines")
        if n:  # the scheduler's checks have started chunks (and may be starting more when it dies)
            site.emu.wait_for(lambda st: st["executions"], timeout=60)
        if where == "cut":
            lines = gate.step_until(proc, lambda lines: len(journaled(lines)) >= n and lines[-1]["kind"] == "cut",
                                    f"a cut line after {n} chunk lines")
        if where == "unstarted":
            held.enter_context(exclusive_lock(os.path.join(site.work, "arn_file.txt.lock")))  # no check from now
            taken = {c["index"] for c in chunks(site)}
            lines = gate.step_until(proc, lambda lines: set(journaled(lines)) - taken, "a chunk no check has taken")
        kill(proc)
        before = open(site.journal, "rb").read()
    assert "end" not in kinds(lines) and len(journaled(lines)) >= n
    assert kinds(journal_lines(site.journal)) == kinds(lines)
    if where == "cut":
        assert lines[-1]["kind"] == "cut"
    if where == "unstarted":
        assert set(journaled(lines)) - {c["index"] for c in chunks(site)}
    assert starts(site) >= (n > 0)

    r = site.schedule(*LIVE)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resuming the scan of run {ledger(site)['run']['id']}" in r.stderr
    after = open(site.journal, "rb").read()
    assert after.startswith(before)  # every line before the kill kept as it was, byte for byte
    assert kinds(journal_lines(site.journal)).count("begin") == 1 and after.endswith(b"\n")
    assert journal_lines(site.journal)[-1]["kind"] == "end"
    run_to_the_end(site)
    assert_exact_copy(site)
    assert_each_chunk_once(site)
    record = {c["index"]: c["includes"] for c in chunks(site)}
    assert all(record[i] == includes for i, includes in journaled(lines).items())
    assert sorted(record) == list(range(len(record)))


def flat_units(lines: list[dict]) -> list[str]:
    """The journaled units of projects/flat (see the test below)."""
    return [line["unit"]["pattern"] for line in lines
            if line["kind"] == "unit" and line["unit"]["pattern"].startswith("/projects/flat/")]


def flat_cut(lines: list[dict]) -> dict | None:
    """projects/flat's cut line, if journaled."""
    return next((line for line in lines if line["kind"] == "cut" and line["dir"] == "projects/flat"), None)


def holds_open(proc, directory: str) -> bool:
    """Whether the process has ``directory`` open (a directory being read in parts stays open
    until its parts are measured)."""
    fds = f"/proc/{proc.pid}/fd"
    for fd in os.listdir(fds):
        try:
            if os.readlink(os.path.join(fds, fd)) == directory:
                return True
        except OSError:  # closed meanwhile
            continue
    return False


def test_a_large_directory_is_cut_by_its_names_before_it_is_measured_and_a_kill_among_its_parts_resumes(site):
    """projects/flat, 600 files heavier than a unit together, is read in parts: its cut is
    journaled once its names are read, before its files are measured, and each group as its
    part is measured. A file deleted while the directory is open and its cut not yet
    journaled (the scan held at the journal) is not claimed by its group: its part is
    measured only once the cut is journaled (had the cut waited for the listing's end, as
    before, every file would have been measured first, and it would be claimed). One file
    is deleted in each fifth of the names, and the scheduler is killed once the first group
    holding one is journaled: with groups still to come (the parts are measured side by
    side, in no set order, and a single deleted file's group came last under load), the rerun keeps the cut and
    the groups as they were and sends the rest, while a watcher checks the same run beside
    it and one start's answer is lost after it took effect: each group journaled once, each
    chunk run once, the copy exact."""
    rng = random.Random(11)
    flat = os.path.join(site.share, "projects", "flat")
    os.makedirs(flat)
    for i in range(600):
        with open(os.path.join(flat, f"f{i:03d}"), "wb") as fh:
            fh.write(rng.randbytes(rng.randint(1000, 2000)))
    names = sorted(os.listdir(flat))
    sampled = set(names[::max(len(names) // scan.SAMPLED, 1)])  # measured before the cut, to weigh the names
    fifth = len(names) // 5
    gone = [next(n for n in names[k * fifth:] if n not in sampled) for k in range(5)]
    gate, proc = gated(site)
    with contextlib.ExitStack() as held:
        held.callback(stop, proc, gate)
        real = os.path.realpath(flat)
        lines = gate.step_until(proc, lambda lines: flat_cut(lines) is not None or holds_open(proc, real),
                                "projects/flat open")
        caught = flat_cut(lines) is None  # else its cut slipped through with the line before: nothing is deleted
        if caught:
            for name in gone:
                os.remove(os.path.join(flat, name))
        lines = gate.step_until(proc, lambda lines: flat_cut(lines) is not None, "the cut of projects/flat")
        cut = flat_cut(lines)
        assert cut is not None and len(cut["groups"]) > 12, cut
        prefixes = {max((g for g in cut["groups"] if name.startswith(g)), key=len) for name in gone}
        patterns = {f"/projects/flat/{prefix}*" for prefix in prefixes}
        lines = gate.step_until(proc, lambda lines: bool(patterns & set(flat_units(lines))),
                                f"a unit of {sorted(patterns)}")
        kill(proc)
    claims = {line["unit"]["pattern"]: line["unit"]["files"] for line in lines
              if line["kind"] == "unit" and line["unit"]["pattern"] in patterns}
    assert claims
    for pattern, claimed in claims.items():
        prefix = pattern.removeprefix("/projects/flat/").removesuffix("*")
        assert claimed == sum(1 for n in os.listdir(flat) if n.startswith(prefix)), (pattern, claimed, gone, caught)
    assert len(cut["groups"]) > len(flat_units(lines)) and cut.get("guessed") is True
    site.emu.fault("StartTaskExecution", "drop")  # the rerun's (or the watcher's) next start: made, answer lost
    watcher = site.spawn_watch("--timeout_sec", "0.2")  # checks the same run beside the rerun, to the end
    try:
        r = site.schedule(*LIVE)
        assert r.returncode == 0, r.stderr[-3000:]
        assert watcher.wait(timeout=240) == 0, site.output("watcher")[-3000:]
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    assert f"resuming the scan of run {ledger(site)['run']['id']}" in r.stderr
    assert "every chunk has succeeded" in site.output("watcher")
    after = journal_lines(site.journal)
    assert flat_cut(after) == cut and [line for line in after if line["kind"] == "cut"].count(cut) == 1
    assert sorted(flat_units(after)) == sorted("/projects/flat/" + g + "*" for g in cut["groups"])
    assert not site.emu.faults() and site.emu.calls()["faulted"] == {"StartTaskExecution": 1}
    assert_exact_copy(site)
    assert_each_chunk_once(site)


GUIDED = ("--live", "--per_file_cost", "0", "--scan_workers", "1", "--live_check_sec", "0.5")
"""Chunks sized from the share's estimate: units wait in the pool until an agent asks."""


def pooled(lines: list[dict]) -> set[str]:
    """The journaled units no journaled chunk carries: the packer's pool."""
    packed = {p for includes in journaled(lines).values() for p in includes}
    return {line["unit"]["pattern"] for line in lines if line["kind"] == "unit"} - packed


@contextlib.contextmanager
def guided_with_two_chunks_started(site):
    """A guided live scheduler behind a gate, held once two chunks are journaled and started
    (the scheduler stopped and the gate released on the way out)."""
    gate = ScanGate(site)
    proc = site.spawn_schedule(*GUIDED)
    try:
        gate.begun(proc)
        gate.step_until(proc, lambda lines: len(journaled(lines)) >= 2, "two chunk lines")
        site.emu.wait_for(lambda st: len(st["executions"]) >= 2, timeout=60)
        yield gate, proc
    finally:
        stop(proc, gate)


def test_a_guided_live_run_on_unequal_agents_killed_mid_scan_resumes_and_copies_each_chunk_once(tmp_path):
    """Agents at 4:1:1, chunks packed when an idle agent asks (sized by its rate) and the rest
    in shares at the end: killed once two chunks are journaled and started and units wait in
    the pool, the rerun resumes with that pool as it was (its units are not walked again nor
    journaled twice, and go out in chunks), and the copy is exact."""
    with make_site(tmp_path, agent_bytes_per_second=[400_000, 100_000, 100_000]) as site:
        add_chain(site.share)
        with guided_with_two_chunks_started(site) as (gate, proc):
            lines = gate.step_until(proc, pooled, "a unit in the pool")
            kill(proc)
            before = open(site.journal, "rb").read()
        assert "end" not in kinds(lines)
        waiting = pooled(journal_lines(site.journal))
        r = site.schedule(*GUIDED)
        assert r.returncode == 0, r.stderr[-3000:]
        assert f"{len(waiting)} unit(s) waiting in the pool" in r.stderr and waiting
        assert open(site.journal, "rb").read().startswith(before)
        units = [line["unit"]["pattern"] for line in journal_lines(site.journal) if line["kind"] == "unit"]
        assert len(units) == len(set(units)) and not pooled(journal_lines(site.journal))
        run_to_the_end(site)
        assert_exact_copy(site)
        assert_each_chunk_once(site)
        record = {c["index"]: c["includes"] for c in chunks(site)}
        assert all(record[i] == includes for i, includes in journaled(lines).items())


def test_an_agent_that_comes_online_mid_scan_gets_its_tasks_and_a_chunk_packed_for_it_during_the_walk(tmp_path):
    """An agent OFFLINE when the live run begins has no task. The first check that sees it
    ONLINE (the scan held meanwhile) gives it its tasks, and it asks as an idle agent does:
    the scan packs a chunk for it while the walk goes on (the other two agents are busy with
    their first chunks for seconds and ask nothing; before, no chunk was packed until the
    walk ended), and it runs chunks (which ones is the dispatcher's choice, largest
    first). Meanwhile a watcher checks the same run beside the scheduler (either may be the
    one that gives it its tasks), and the answers to its location's and its task's creation
    are lost after they took effect: both are found by name, none made twice. Each chunk
    once, the copy exact."""
    with make_site(tmp_path, agent_bytes_per_second=[2_000, 2_000, 400_000]) as site:
        add_chain(site.share)
        slow, late = site.emu.agent_arns()[:2], site.emu.agent_arns()[-1]
        site.emu.set_agent(late, status="OFFLINE")
        with guided_with_two_chunks_started(site) as (gate, proc):  # the slow two, busy for seconds at 2 kB/s
            assert late not in ledger(site)["dispatch"]["lanes"]
            watcher = site.spawn_watch("--timeout_sec", "0.2")
            try:
                for op in ("CreateLocationNfs", "CreateTask"):  # the late agent's, the next ones made
                    site.emu.fault(op, "drop")
                checks = site.output("scheduler").count(" waiting; ")
                site.emu.set_agent(late, status="ONLINE")
                poll(lambda: site.output("scheduler").count(" waiting; ") >= checks + 2,
                     "a check that sees it online", timeout=60)
                gate.release()
                assert proc.wait(timeout=120) == 0, site.output("scheduler")[-3000:]
                for agent in slow:
                    site.emu.set_agent(agent, bytes_per_second=0)  # the rest at full speed
                assert watcher.wait(timeout=240) == 0, site.output("watcher")[-3000:]
            finally:
                if watcher.poll() is None:
                    watcher.kill()
                    watcher.wait()
        assert "every chunk has succeeded" in site.output("watcher")
        lines = journal_lines(site.journal)
        walked = max(i for i, line in enumerate(lines) if line["kind"] == "unit")
        packed = [line["chunk"]["index"] for line in lines[:walked] if line["kind"] == "chunk"]
        assert_exact_copy(site)
        assert_each_chunk_once(site)
        assert packed[2:], f"no chunk packed for it while the walk went on: {packed}"
        assert any(c["attempts"][0]["agent"] == late for c in chunks(site))
        state = site.emu.state()
        assert not site.emu.faults() and site.emu.calls()["faulted"] == {"CreateLocationNfs": 1, "CreateTask": 1}
        assert len(state["tasks"]) == 3  # one lane each, the late agent's made once
        assert len([loc for loc in state["locations"] if loc["uri"].startswith("nfs://")]) == 3


def test_a_live_run_killed_between_its_scan_and_its_last_check_is_finished_not_begun_again(site):
    """The scan has journaled every chunk and its end; no check has taken the last ones, and the
    ledger knows every chunk it took has ended: a rerun must leave the run to the watcher, not
    scan and copy the share again as a new run."""
    gate, proc = gated(site)
    with contextlib.ExitStack() as held:
        held.callback(stop, proc, gate)
        gate.step_until(proc, lambda lines: len(journaled(lines)) >= 3, "three chunk lines")

        def all_ended() -> bool:  # the scheduler's checks start them and see them end
            record = ledger(site)
            taken = record["dispatch"]["chunks"]
            return bool(taken) and all(c["attempts"] and c["attempts"][-1].get("execution") in record["finished"]
                                       for c in taken)

        poll(all_ended, "the taken chunks ended, in the ledger", timeout=60, interval=0.05)
        held.enter_context(exclusive_lock(os.path.join(site.work, "arn_file.txt.lock")))  # no check from now
        gate.release()
        lines = poll(lambda: (lambda lines: "end" in kinds(lines) and lines)(journal_lines(site.journal)),
                     "the end line", interval=0.05)  # the scheduler now waits for the lock, for its last check
        kill(proc)
    taken = {c["index"] for c in chunks(site)}
    assert set(journaled(lines)) - taken and all(c["attempts"] for c in chunks(site))
    before, started = open(site.journal, "rb").read(), starts(site)

    r = site.schedule(*LIVE)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "has finished its scan and has chunks left: the watcher hands them out" in r.stderr
    assert open(site.journal, "rb").read() == before and not os.path.exists(site.journal + ".prev")
    assert starts(site) == started
    run_to_the_end(site)
    assert_exact_copy(site)
    assert_each_chunk_once(site)


def test_the_watcher_shows_the_scan_and_never_calls_a_run_whose_scan_stopped_finished(site):
    """Before any start (no arn file yet) the watcher shows the scan running; once the scheduler
    is killed and every chunk it journaled has ended, the watcher says the scan stopped and to
    rerun the scheduler, and does not end; after the rerun it ends, the copy exact."""
    gate, proc = gated(site)
    try:
        assert not os.path.exists(os.path.join(site.work, "arn_file.txt"))  # nothing started yet
        r = site.watch("--once")
        assert r.returncode == 0, r.stderr
        assert "scan: 0 dirs, 0 files, 0 B read so far, 0 chunk(s) closed" in r.stdout
        assert "finish: not known while the scan runs" in r.stdout

        lines = gate.step_until(proc, lambda lines: len(journaled(lines)) >= 2, "two chunk lines")
        want = set(journaled(lines))

        def all_done(state) -> bool:  # the scheduler's checks start them while its scan is held
            status = {e["arn"]: e["status"] for e in state["executions"]}
            record = {c["index"]: c for c in chunks(site)}
            return want <= set(record) and all(
                [status.get(a.get("execution")) for a in record[i]["attempts"]] == ["SUCCESS"] for i in want)

        site.emu.wait_for(all_done, timeout=60)
        kill(proc)
    finally:
        stop(proc, gate)

    r = site.watch("--once")
    assert r.returncode == 0, r.stderr
    assert f"chunks: {len(want)} done, 0 running, 0 waiting" in r.stdout  # all it knows of has ended ...
    assert "scan: stopped after" in r.stdout and f"and {len(want)} chunk(s): rerun the scheduler with the same " \
        "flags to resume it" in r.stdout
    assert "has ended" not in r.stdout and "every chunk has succeeded" not in r.stderr  # ... but not the run

    watcher = site.spawn_watch("--timeout_sec", "0.2", "--verbose")
    try:
        poll(lambda: watcher.poll() is not None or site.output("watcher").count("sleeping 0.2 sec") >= 2,
             "two checks of the loop", timeout=60, interval=0.05)
        assert watcher.poll() is None, site.output("watcher")[-3000:]  # it goes on
        r = site.schedule(*LIVE)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "resuming the scan" in r.stderr
        assert watcher.wait(timeout=240) == 0, site.output("watcher")[-3000:]
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    assert "every chunk has succeeded" in site.output("watcher")
    assert_exact_copy(site)
    assert_each_chunk_once(site)


def waiting(site, lines: list[dict]) -> set[int]:
    """The journaled chunks no check has started yet."""
    return set(journaled(lines)) - {c["index"] for c in chunks(site) if c["attempts"]}


def test_a_watcher_dispatching_beside_the_live_scheduler_starts_each_chunk_once(site):
    """Both start chunks (each says which), while the scan is held and after: none twice."""
    gate, proc = gated(site)
    watcher = None
    try:
        gate.step_until(proc, lambda lines: len(journaled(lines)) >= 4, "four chunk lines")
        site.emu.wait_for(lambda st: st["executions"], timeout=60)  # the scheduler has made the tasks
        watcher = site.spawn_watch("--timeout_sec", "0.1")
        while not started_by(site.output("watcher")):  # a line at a time, until the watcher starts a chunk
            poll(lambda: watcher.poll() is not None or started_by(site.output("watcher"))
                 or not waiting(site, gate.lines()), "the watcher starting a chunk, or none waiting",
                 timeout=60, interval=0.05)
            assert watcher.poll() is None, site.output("watcher")[-3000:]
            if not started_by(site.output("watcher")):
                held = len(gate.lines())
                gate.step_until(proc, lambda lines, held=held: len(lines) > held, "a line more")
        gate.release()  # both dispatch while the scan goes on to its end
        assert proc.wait(timeout=120) == 0, site.output("scheduler")[-3000:]
        assert watcher.wait(timeout=240) == 0, site.output("watcher")[-3000:]
    finally:
        stop(proc, gate)
        if watcher is not None and watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    by_scheduler, by_watcher = started_by(site.output("scheduler")), started_by(site.output("watcher"))
    assert by_scheduler and by_watcher and not by_scheduler & by_watcher
    assert by_scheduler | by_watcher == {c["index"] for c in chunks(site)}
    assert "every chunk has succeeded" in site.output("watcher")
    assert_exact_copy(site)
    assert_each_chunk_once(site)
    assert len(site.arns()) == len(set(site.arns())) == len(chunks(site))


@pytest.mark.parametrize("flags", [LIVE, GUIDED], ids=["fixed", "guided"])
def test_a_live_run_through_lost_answers_a_failed_check_and_an_agent_away_starts_each_chunk_once(site, flags):
    """Two starts whose answers are lost after they took effect (each found by its tag and
    adopted, not started again, by the scheduler or the watcher), a check whose ListAgents is
    refused while the scan is held (logged; the scan and the checks go on), and an agent
    OFFLINE while chunks close (nothing starts on it meanwhile). The copy is exact, each chunk once.
    Guided, chunks are packed as agents ask and grow with the pool (``live.Demand``) while
    all this goes on."""
    gate, proc = gated(site, flags)
    away = site.emu.agent_arns()[-1]
    try:
        gate.step_until(proc, lambda lines: len(journaled(lines)) >= 2, "two chunk lines")
        site.emu.wait_for(lambda st: st["executions"], timeout=60)  # tasks made, the first chunks started
        site.emu.set_agent(away, status="OFFLINE")
        site.emu.fault("ListAgents", "denied", times=1, when="before")  # the next check: every later one sees it away
        poll(lambda: "this check failed" in site.output("scheduler"), "a check refused", timeout=60, interval=0.05)
        left = time.time()  # checks run one at a time: none that saw the agent ONLINE is still running
        site.emu.fault("StartTaskExecution", "500", times=2, when="after")
        lines = gate.step_until(proc, lambda lines: len(journaled(lines)) >= 6, "six chunk lines")
        site.emu.set_agent(away, status="ONLINE")
        back = time.time()
        gate.release()
        assert proc.wait(timeout=120) == 0, site.output("scheduler")[-3000:]
    finally:
        stop(proc, gate)
    assert "end" in kinds(journal_lines(site.journal)) and len(journaled(lines)) >= 6
    watched = run_to_the_end(site)
    assert not site.emu.faults()
    assert (site.output("scheduler") + watched.stderr).count("it had taken effect; adopted") == 2
    assert_exact_copy(site)
    assert_each_chunk_once(site)
    assert not [e for e in site.emu.state()["executions"] if e["agent"] == away and left < e["start_time"] < back]


def test_a_failed_check_is_tried_again_within_seconds_not_after_the_check_interval(site):
    """A check refused (ListAgents denied) while the scan is held, so that no chunk closes
    to call the next one: the scheduler asks again within seconds, not after
    --live_check_sec (300 s here), as for an agent overdue; an idle fleet packs nothing
    until a check asks. The run then ends with an exact copy."""
    assert LIVE[-2] == "--live_check_sec"
    gate = ScanGate(site)
    proc = site.spawn_schedule(*LIVE[:-1], "300")
    try:
        gate.begun(proc)
        gate.step_until(proc, lambda lines: len(journaled(lines)) >= 1, "a chunk line")
        site.emu.wait_for(lambda st: st["executions"], timeout=60)  # tasks made, the first chunk started
        site.emu.fault("ListAgents", "denied", times=1, when="before")
        poll(lambda: "this check failed" in site.output("scheduler"), "a check refused", timeout=60, interval=0.05)
        asked = site.emu.calls()["calls"].get("ListAgents", 0)
        poll(lambda: site.emu.calls()["calls"].get("ListAgents", 0) > asked, "the next check", timeout=15,
             interval=0.05)
        gate.release()
        assert proc.wait(timeout=120) == 0, site.output("scheduler")[-3000:]
    finally:
        stop(proc, gate)
    run_to_the_end(site)
    assert_exact_copy(site)
    assert_each_chunk_once(site)


def test_a_live_run_whose_create_answers_are_lost_makes_each_location_and_task_once(site):
    """Every CreateLocationNfs and CreateTask answer is lost after the call took effect: each
    is found by its name and used, none made twice, and the run copies exactly."""
    for op in ("CreateLocationNfs", "CreateTask"):
        site.emu.fault(op, "drop", times=-1)
    r = site.schedule(*LIVE)
    assert r.returncode == 0, r.stderr
    run_to_the_end(site)
    state = site.emu.state()
    agents = len(site.emu.agent_arns())
    assert len(state["tasks"]) == agents  # one lane each (one queue slot)
    assert len([loc for loc in state["locations"] if loc["uri"].startswith("nfs://")]) == agents
    assert site.emu.calls()["faulted"]["CreateTask"] == agents
    assert_exact_copy(site)
    assert_each_chunk_once(site)


def test_a_second_live_scheduler_on_the_same_run_is_refused_and_creates_nothing(site):
    """While a live scheduler scans (held mid-way, its tasks made and chunks started), the same
    command again (another shell, a cron line) exits 2 in one line, calling nothing that
    creates or starts; the first goes on to an exact copy."""
    gate, proc = gated(site)
    try:
        gate.step_until(proc, lambda lines: len(journaled(lines)) >= 2, "two chunk lines")
        site.emu.wait_for(lambda st: st["executions"], timeout=60)
        with exclusive_lock(os.path.join(site.work, "arn_file.txt.lock")):  # the first one's checks wait
            made = site.emu.calls()["calls"]
            r = site.schedule(*LIVE)
            after = site.emu.calls()["calls"]
        assert r.returncode == 2, r.stderr
        line, = r.stderr.strip().splitlines()
        assert f"is held by scheduler pid {proc.pid}" in line and "nothing was created" in line
        for op in ("CreateLocationNfs", "CreateTask", "UpdateTask", "StartTaskExecution"):
            assert after.get(op, 0) == made.get(op, 0), op
        gate.release()
        assert proc.wait(timeout=120) == 0, site.output("scheduler")[-3000:]
    finally:
        stop(proc, gate)
    run_to_the_end(site)
    assert_exact_copy(site)
    assert_each_chunk_once(site)


@pytest.mark.parametrize("args,message", [
    (("--live", "--chunk_size", "12xb"), "--chunk_size '12xb' is neither bytes (e.g. 200GiB) nor files"),
    (("--chunk_size", "100GB"), "--chunk_size needs --live"),
])
def test_bad_live_flags_are_one_line_and_exit_2(in_process, tmp_path, args, message):
    (tmp_path / "share").mkdir()
    r = in_process("--mount_path_dir", str(tmp_path / "share"), "--dry_run", *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr
