"""Dynamic dispatch against the local DataSync emulator: each chunk goes to the agent that
frees first, exactly once, through lost agents, two watchers and a watcher killed midway."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from commands import ROOT
from datasync_multi.datasync import SETTLE_ENV as SETTLE
from emulator.sample import differences
from sites import SLOW, assert_exact_copy, chunks, ledger, make_site, run_to_the_end, starts, wait_transferring


def test_the_scheduler_starts_one_chunk_per_agent_largest_first_and_records_them(site):
    r = site.schedule("--chunks_per_agent", "3")
    assert r.returncode == 0, r.stderr
    plan = json.load(open(os.path.join(site.work, "plan.json")))
    assert plan["version"] == 3 and len(plan["chunks"]) == 9
    assert all(t["includes"] == [] for t in plan["tasks"]) and len(plan["tasks"]) == 3
    record = chunks(site)
    started = [c for c in record if c["attempts"]]
    assert len(started) == 3 == starts(site) == len(site.arns())
    costs = sorted((c["cost"] for c in record), reverse=True)
    assert sorted((c["cost"] for c in started), reverse=True) == costs[:3]
    assert {c["attempts"][0]["agent"] for c in started} == set(site.emu.agent_arns())
    assert [c["attempts"][0]["execution"] for c in started] == site.arns()
    by_arn = {e["arn"]: e for e in site.emu.state()["executions"]}
    for c in started:  # each execution runs exactly its chunk's includes
        assert "|".join(c["includes"]) == by_arn[c["attempts"][0]["execution"]]["includes"][0]["Value"]
    assert "chunks: 0 done, 3 running, 6 waiting" in r.stdout


def test_dynamic_dispatch_copies_exactly(site):
    assert site.schedule("--chunks_per_agent", "3").returncode == 0
    r = run_to_the_end(site)
    assert "chunks: 9 done, 0 running, 0 waiting" in r.stdout
    assert_exact_copy(site)
    assert len(site.arns()) == 9


@pytest.fixture
def site(tmp_path):
    """As the shared fixture, but a running execution outlives its agent's loss until
    cancelled, so the watcher always finds it stranded rather than failed by itself."""
    with make_site(tmp_path, offline_error_delay=120) as s:
        yield s


def lose_an_agent_mid_chunk(site) -> str:
    """Schedule 3 chunks per agent with the first agent slow, and take that agent OFFLINE
    while it copies its first chunk; returns the agent."""
    lost = site.emu.agent_arns()[0]
    site.emu.set_agent(lost, bytes_per_second=SLOW)
    assert site.schedule("--chunks_per_agent", "3", "--per_file_cost", "0").returncode == 0
    wait_transferring(site, lost)
    site.emu.set_agent(lost, status="OFFLINE", bytes_per_second=0)
    return lost


def test_an_agent_lost_mid_chunk_loses_its_chunk_to_another_and_takes_chunks_again_when_back(site):
    lost = lose_an_agent_mid_chunk(site)
    r = site.watch("--once", "--offline_threshold_sec", "0")
    assert r.returncode == 0, r.stderr
    assert "stranded" in r.stdout
    failed = next(c for c in chunks(site) if c["attempts"] and c["attempts"][0].get("failed"))
    assert failed["attempts"][0]["agent"] == lost
    site.emu.wait_for(lambda st: all(e["status"] in ("SUCCESS", "ERROR") for e in st["executions"]
                                     if e["agent"] == lost), timeout=30)
    site.emu.set_agent(lost, status="ONLINE")
    run_to_the_end(site, "--offline_threshold_sec", "0")
    assert_exact_copy(site, retried=1)
    record = {c["index"]: c for c in chunks(site)}
    assert lost not in [a["agent"] for a in record[failed["index"]]["attempts"]][1:]  # never back to it
    assert any(a["agent"] == lost and not a.get("failed") for c in record.values() for a in c["attempts"])


def test_two_watchers_at_once_start_each_chunk_once(site):
    assert site.schedule("--chunks_per_agent", "4").returncode == 0
    cmd = [sys.executable, os.path.join(ROOT, "datasync_agent_ha.py"), "--arn_file", "arn_file.txt",
           "--timeout_sec", "0.1", "--log_dir", os.path.join(site.work, "log")]
    procs = [subprocess.Popen(cmd, cwd=site.work, env=site.emu.env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(2)]
    assert [p.wait(timeout=240) for p in procs] == [0, 0]
    assert_exact_copy(site)
    assert starts(site) == 12 and len(set(site.arns())) == 12 == len(site.arns())


def test_a_start_that_takes_effect_after_a_look_found_nothing_is_adopted_not_sent_again(site):
    """A start's answer is lost and the start takes effect only 8 s later, after the
    scheduler's look for it found nothing (a request still on its way, or a listing not yet
    showing it): it is not sent again before it has settled, and the execution that shows
    is adopted. Whether the watcher's first check comes before or after it shows, it is
    left alone until then (the crash test below shows the "left to settle" step itself)."""
    site.emu.fault("StartTaskExecution", fault="drop", when="late", delay=8.0)
    settle = {SETTLE: "30"}
    r = site.schedule("--chunks_per_agent", "2", "--per_file_cost", "0", env_extra=settle)
    assert r.returncode == 1 and "got no answer" in r.stderr  # its look found nothing: left to the next check
    r = site.watch("--timeout_sec", "0.2", env_extra=settle, timeout=240)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert site.emu.calls()["calls"]["StartTaskExecution"] == 6  # one per chunk: the lost one never sent again
    assert_exact_copy(site)
    assert all(len(c["attempts"]) == 1 for c in chunks(site))


def test_a_start_sent_again_settles_from_that_send_not_from_its_decision(site):
    """An intent decided long ago (a killed watcher's, found later) is sent again, and that
    answer is lost too, the start taking effect 20 s later: the next check counts the settle
    time from the new send, so it leaves the start alone instead of sending a third."""
    site.emu.set_agent(site.emu.agent_arns()[0], bytes_per_second=SLOW)  # the run outlives the kill
    assert site.schedule("--chunks_per_agent", "3", "--per_file_cost", "0").returncode == 0
    assert site.run("tests/crash_watcher.py", "before_start", "--arn_file", "arn_file.txt", "--once").returncode == 137
    record = ledger(site)
    crashed, intent = next((c, a) for c in record["dispatch"]["chunks"] for a in c["attempts"] if "execution" not in a)
    intent["decided"] = intent["sent"] = intent["decided"] - 3600  # as if its watcher died an hour ago
    with open(os.path.join(site.work, "arn_file.txt.ledger.json"), "w") as fh:
        json.dump(record, fh)
    site.emu.set_agent(site.emu.agent_arns()[0], bytes_per_second=0)
    site.emu.fault("StartTaskExecution", fault="drop", when="late", delay=20.0)  # long enough for two checks
    settle = {SETTLE: "60"}
    r = site.watch("--once", env_extra=settle)  # an hour old: sent again, and that answer lost
    assert "got no answer" in r.stderr and "start completed" not in r.stdout
    r = site.watch("--once", env_extra=settle)
    assert "left to settle" in r.stdout, r.stdout[-2000:]
    r = site.watch("--timeout_sec", "0.2", env_extra=settle, timeout=240)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert_exact_copy(site)
    assert starts(site) == 9  # one call per chunk: the crashed one sent once, after the kill, never again
    runs = [e for e in site.emu.state()["executions"] if e["includes"][0]["Value"] == "|".join(crashed["includes"])]
    assert len(runs) == 1


def test_a_start_left_to_settle_keeps_its_chunk_when_its_agent_leaves_then_the_chunk_moves(site):
    """A killed watcher's start may still land on its agent, so while it settles its chunk
    stays there even though that agent went OFFLINE; once it has settled, the chunk goes
    back to the pool and another agent copies it, once."""
    slow = site.emu.agent_arns()[0]
    site.emu.set_agent(slow, bytes_per_second=SLOW)
    assert site.schedule("--chunks_per_agent", "3", "--per_file_cost", "0").returncode == 0
    others = [a for a in site.emu.agent_arns() if a != slow]
    site.emu.wait_for(lambda st: all(e["status"] == "SUCCESS" for e in st["executions"] if e["agent"] in others),
                      timeout=60)
    assert site.run("tests/crash_watcher.py", "before_start", "--arn_file", "arn_file.txt", "--once").returncode == 137
    crashed, intent = next((c, a) for c in chunks(site) for a in c["attempts"] if "execution" not in a)
    site.emu.set_agent(intent["agent"], status="OFFLINE")
    r = site.watch("--once", env_extra={SETTLE: "60"})
    assert r.returncode == 0, r.stderr
    assert "left to settle" in r.stdout
    still = next(c for c in chunks(site) if c["index"] == crashed["index"])["attempts"]
    assert len(still) == 1 and not still[0].get("returned")  # not given away while it may still land
    site.emu.set_agent(slow, bytes_per_second=0)
    r = site.watch("--timeout_sec", "0.2", env_extra={SETTLE: "0"}, timeout=240)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    moved = next(c for c in chunks(site) if c["index"] == crashed["index"])["attempts"]
    assert moved[0].get("returned") and len(moved) == 2 and moved[1]["agent"] != intent["agent"]
    assert_exact_copy(site)


@pytest.mark.parametrize("when", ["before_start", "after_start"])
def test_a_watcher_killed_between_deciding_a_start_and_recording_it(site, when):
    agent = site.emu.agent_arns()[0]
    site.emu.set_agent(agent, bytes_per_second=SLOW)  # keeps the run going while the watcher dies
    assert site.schedule("--chunks_per_agent", "3", "--per_file_cost", "0").returncode == 0
    others = [a for a in site.emu.agent_arns() if a != agent]
    site.emu.wait_for(lambda st: all(e["status"] == "SUCCESS" for e in st["executions"] if e["agent"] in others),
                      timeout=60)
    before = starts(site)
    r = site.run("tests/crash_watcher.py", when, "--arn_file", "arn_file.txt", "--once")
    assert r.returncode == 137, r.stderr
    intents = [(c, a) for c in chunks(site) for a in c["attempts"] if "execution" not in a]
    assert len(intents) == 1  # decided and saved, not recorded as started
    crashed = intents[0][0]
    assert starts(site) == before + (when == "after_start")
    r = site.watch("--once", env_extra={SETTLE: "60"})  # the killed watcher's start may still be on its way
    assert r.returncode == 0, r.stderr
    def crashed_runs() -> list[dict]:
        return [e for e in site.emu.state()["executions"] if e["includes"][0]["Value"] == "|".join(crashed["includes"])]

    if when == "before_start":  # nothing shows, and nothing is sent until the decision has settled
        assert "left to settle" in r.stdout
        assert crashed_runs() == []
        r = site.watch("--once", env_extra={SETTLE: "0"})
        assert r.returncode == 0, r.stderr
    said = {"before_start": "start completed (an earlier check decided it)",
            "after_start": "missing from the ledger: adopted, not started again"}[when]  # found by its tag
    assert said in r.stdout + r.stderr
    runs = crashed_runs()
    assert len(runs) == 1  # the crashed chunk started once, whichever side of the start the watcher died on
    assert [a["execution"] for c in chunks(site) if c["index"] == crashed["index"] for a in c["attempts"]] == \
        [runs[0]["arn"]]
    assert not [a for c in chunks(site) for a in c["attempts"] if "execution" not in a]
    site.emu.set_agent(agent, bytes_per_second=0)
    run_to_the_end(site)
    assert_exact_copy(site)


def test_queue_depth_2_keeps_a_chunk_queued_and_a_lost_agent_returns_its_queued_chunk_unfailed(tmp_path):
    with make_site(tmp_path, offline_error_delay=120, execution_filters="merge") as site:
        lost = site.emu.agent_arns()[0]
        site.emu.set_agent(lost, bytes_per_second=SLOW)
        assert site.schedule("--chunks_per_agent", "3", "--queue_depth", "2", "--per_file_cost", "0").returncode == 0
        assert starts(site) == 6  # two per agent: one runs, one waits in its queue
        queued = [e for e in site.emu.state()["executions"] if e["agent"] == lost][1]  # the later one, by seq
        wait_transferring(site, lost)
        site.emu.set_agent(lost, status="OFFLINE", bytes_per_second=0)
        r = site.watch("--once", "--offline_threshold_sec", "0")
        assert r.returncode == 0, r.stderr
        assert "on lost agent" in r.stdout and "stranded" in r.stdout
        attempts = {a["execution"]: a for c in chunks(site) for a in c["attempts"] if "execution" in a}
        assert attempts[queued["arn"]].get("returned") and not attempts[queued["arn"]].get("failed")
        run_to_the_end(site, "--offline_threshold_sec", "0")
        assert_exact_copy(site, retried=1)
        agents_used = Counter(a["agent"] for c in chunks(site) for a in c["attempts"] if not a.get("failed"))
        assert agents_used[lost] == 1  # only its returned, never-started chunk


def test_a_rerun_of_the_same_plan_resumes_and_a_new_plan_waits_for_the_old_executions(site):
    slow = site.emu.agent_arns()[0]
    site.emu.set_agent(slow, bytes_per_second=500)  # its chunk outlives the test
    args = ("--chunks_per_agent", "3", "--per_file_cost", "0")
    assert site.schedule(*args).returncode == 0
    r = site.schedule(*args)  # the same share, the same plan: the dispatch goes on
    assert r.returncode == 0, r.stderr
    assert "is unfinished: resuming it" in r.stderr
    assert sum(len(c["attempts"]) for c in chunks(site)) == starts(site)
    assert all(sum(1 for a in c["attempts"] if not a.get("failed")) <= 1 for c in chunks(site))
    with open(os.path.join(site.share, "new-since-the-plan.txt"), "w") as fh:
        fh.write("x" * 5000)
    before = starts(site)
    r = site.schedule(*args)  # a new plan, while the slow agent still runs an old chunk
    assert r.returncode == 3, r.stderr
    assert "still has an unfinished execution of an earlier run" in r.stderr
    assert starts(site) == before


def test_a_chunk_out_of_retries_is_given_up_exit_3_while_the_others_finish(site):
    lose_an_agent_mid_chunk(site)
    r = site.watch("--timeout_sec", "0.2", "--offline_threshold_sec", "0", "--max_retries", "0", timeout=240)
    assert r.returncode == 3, (r.stdout[-2000:], r.stderr[-2000:])
    assert "1 given up" in r.stdout.split("chunks:")[-1] and "given up: failed 1 time(s)" in r.stdout
    given_up = [c for c in chunks(site) if any(a.get("failed") for a in c["attempts"])]
    assert len(given_up) == 1 and len(given_up[0]["attempts"]) == 1
    others = [c for c in chunks(site) if c is not given_up[0]]
    assert all(len(c["attempts"]) == 1 for c in others)  # each ran once, and the loop ended


def test_chunks_with_no_online_agent_to_take_them_exit_4_and_keep_their_budget(site):
    for agent in site.emu.agent_arns():
        site.emu.set_agent(agent, bytes_per_second=SLOW)
    assert site.schedule("--chunks_per_agent", "2", "--per_file_cost", "0").returncode == 0
    for agent in site.emu.agent_arns():
        site.emu.set_agent(agent, status="OFFLINE", bytes_per_second=0)
    r = site.watch("--once", "--offline_threshold_sec", "0")
    assert r.returncode == 4, (r.stdout, r.stderr)
    assert "wait and no ONLINE agent may take them" in r.stderr
    record = chunks(site)
    assert sum(1 for c in record for a in c["attempts"] if a.get("failed")) == 3  # the three stranded
    for agent in site.emu.agent_arns():
        site.emu.set_agent(agent, status="ONLINE")
    run_to_the_end(site, "--offline_threshold_sec", "0")
    assert_exact_copy(site, retried=3)


def test_a_new_plan_after_a_finished_run_copies_what_is_new_and_adopts_nothing_old(site):
    assert site.schedule("--chunks_per_agent", "3").returncode == 0
    run_to_the_end(site)
    old = set(site.arns())
    os.makedirs(os.path.join(site.share, "arrived-later"))
    with open(os.path.join(site.share, "arrived-later", "new.txt"), "w") as fh:
        fh.write("y" * 7000)
    assert site.schedule("--chunks_per_agent", "3").returncode == 0  # a rescan, a new plan, within the minute
    run_to_the_end(site)
    assert differences(site.share, site.dest_dir) == []
    assert not old & {a["execution"] for c in chunks(site) for a in c["attempts"]}


def test_a_static_run_after_a_dynamic_one_is_watched_as_static(site):
    assert site.schedule("--chunks_per_agent", "3").returncode == 0
    run_to_the_end(site)
    assert site.schedule().returncode == 0  # K = 1
    assert os.path.exists(os.path.join(site.work, "arn_file.txt.ledger.json.prev"))
    r = site.watch("--once")
    assert r.returncode == 0, r.stderr
    assert "bytes sent / to send" in r.stdout and "chunks:" not in r.stdout
    assert all(a.rsplit("/", 1)[-1] in r.stdout for a in site.arns())  # the static executions, each a row
