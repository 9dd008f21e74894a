"""A run under the things that happen to a migration that lasts days: another command in the
same directory, two schedulers at once, agents that leave and join, answers lost after the
call took effect, two watchers with other settings, a ledger put back from a copy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter

import pytest

from commands import ROOT
from emulator.sample import differences
from sites import SLOW, chunks, ledger, make_site, starts, wait_transferring


def read(site, name: str) -> bytes:
    with open(os.path.join(site.work, name), "rb") as fh:
        return fh.read()


def executions_on(site, agent: str) -> list[dict]:
    return [e for e in site.emu.state()["executions"] if e["agent"] == agent]


def lose_mid_transfer(site, agent: str) -> None:
    """Take the agent OFFLINE while it copies; wait until what it ran has failed."""
    wait_transferring(site, agent)
    site.emu.set_agent(agent, status="OFFLINE", bytes_per_second=0)
    site.emu.wait_for(lambda st: all(e["status"] in ("ERROR", "SUCCESS") for e in st["executions"]
                                     if e["agent"] == agent), timeout=60)


def lose_an_agent_with_a_chunk_queued(site) -> tuple[str, dict]:
    """A dynamic run with two tasks per agent, the first agent slow; it is lost while it copies,
    with a chunk queued behind. Returns the agent and that queued execution."""
    lost = site.emu.agent_arns()[0]
    site.emu.set_agent(lost, bytes_per_second=SLOW)
    assert site.schedule("--chunks_per_agent", "3", "--queue_depth", "2", "--per_file_cost", "0").returncode == 0
    queued = executions_on(site, lost)[1]
    wait_transferring(site, lost)
    site.emu.set_agent(lost, status="OFFLINE", bytes_per_second=0)
    return lost, queued


def run_to_the_end(site, *args: str, code: int = 0):
    r = site.watch("--timeout_sec", "0.2", *args, timeout=300)
    assert r.returncode == code, (r.stdout[-3000:], r.stderr[-3000:])
    return r


def assert_exact_copy(site):
    assert differences(site.share, site.dest_dir) == []
    assert max(site.writes().values()) == 1


def assert_each_chunk_ran_as_recorded(site):
    """Every start is in the ledger and the arn file, and no chunk ran on two agents at once."""
    record = chunks(site)
    recorded = [a["execution"] for c in record for a in c["attempts"] if "execution" in a]
    assert len(recorded) == len(set(recorded)) == starts(site) == len(site.emu.state()["executions"])
    assert set(recorded) == set(site.arns())


# -- the run's record belongs to the run ---------------------------------------------------


@pytest.mark.parametrize("echo", [True, False], ids=["filters echoed", "no echo"])
def test_a_dry_run_beside_a_live_static_run_changes_nothing_the_watcher_reads(tmp_path, echo):
    with make_site(tmp_path) as site:
        site.emu.config(echo_execution_filters=echo)
        lost, *others = site.emu.agent_arns()
        site.emu.set_agent(lost, bytes_per_second=SLOW)
        assert site.schedule("--per_file_cost", "0").returncode == 0
        plan = read(site, "plan.json")
        r = site.schedule("--dry_run", "--agent_arns", ",".join(others))  # another agent set, same directory
        assert r.returncode == 0, r.stderr
        assert "this dry run's plan goes to" in r.stderr and read(site, "plan.json") == plan
        assert json.loads(read(site, "plan.dry_run.json"))["agents"] == others
        lose_mid_transfer(site, lost)
        r = site.watch("--once", "--offline_threshold_sec", "0")
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert "moved to" in r.stdout
        site.emu.wait_executions_done(site.arns(), timeout=60)
        r = site.watch("--once")
        assert r.returncode == 0 and "every watched scope has succeeded" in r.stderr
        assert_exact_copy(site)


def test_a_dry_run_and_a_refused_rerun_beside_a_live_dynamic_run_leave_its_records_alone(tmp_path):
    with make_site(tmp_path, offline_error_delay=120) as site:
        site.emu.config(echo_execution_filters=False)
        lost, *others = site.emu.agent_arns()
        site.emu.set_agent(lost, bytes_per_second=SLOW // 30)  # its chunk outlasts the reruns below on a busy machine
        assert site.schedule("--chunks_per_agent", "3", "--per_file_cost", "0").returncode == 0
        records = {name: read(site, name) for name in ("plan.json", "arn_file.txt.ledger.json", "arn_file.txt")}
        assert site.schedule("--dry_run", "--agent_arns", others[0], "--chunks_per_agent", "2").returncode == 0
        with open(os.path.join(site.share, "new-since-the-plan.txt"), "w") as fh:
            fh.write("n" * 3000)
        r = site.schedule("--chunks_per_agent", "3", "--per_file_cost", "0")  # a new plan while chunks run
        assert r.returncode == 3 and "still has an unfinished execution" in r.stderr, r.stderr
        assert {name: read(site, name) for name in records} == records  # the refused run wrote nothing
        wait_transferring(site, lost)
        site.emu.set_agent(lost, status="OFFLINE", bytes_per_second=0)  # its chunk hangs: stranded
        run_to_the_end(site, "--offline_threshold_sec", "0")
        os.remove(os.path.join(site.share, "new-since-the-plan.txt"))  # not in this run's plan
        assert_exact_copy(site)


# -- one scheduler at a time -----------------------------------------------------------------


def test_two_schedulers_started_together_start_each_task_once(site):
    for agent in site.emu.agent_arns():
        site.emu.set_agent(agent, bytes_per_second=SLOW)  # both see the executions still running
    cmd = [sys.executable, os.path.join(ROOT, "datasync_multi_agents_scheduler.py"), "--log_dir",
           os.path.join(site.work, "log"), "--task_name", "Mig_", "--nfs_server_name", "198.51.100.10", "--sub_dir",
           "/vol1", "--mount_path_dir", site.share, "--dest_loc", site.dest_loc, "--source_file",
           os.path.join(site.work, "source_file.manifest")]
    procs = [subprocess.Popen(cmd, cwd=site.work, env=site.emu.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outcomes = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for code, err in outcomes:
        assert code == 0 or (code == 2 and "is held by scheduler pid" in err), err
    assert starts(site) == 3 == len(site.emu.state()["executions"])
    assert len(set(site.arns())) == 3 == len(site.arns())


def test_a_second_scheduler_names_the_one_holding_the_run_and_creates_nothing(tmp_path):
    with make_site(tmp_path, task_create_delay=30) as site:  # the first waits for its tasks meanwhile
        first = subprocess.Popen([sys.executable, os.path.join(ROOT, "datasync_multi_agents_scheduler.py"),
                                  "--log_dir", os.path.join(site.work, "log"), "--task_name", "Mig_",
                                  "--nfs_server_name", "198.51.100.10", "--sub_dir", "/vol1", "--mount_path_dir",
                                  site.share, "--dest_loc", site.dest_loc, "--source_file",
                                  os.path.join(site.work, "source_file.manifest")],
                                 cwd=site.work, env=site.emu.env(), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        try:
            site.emu.wait_for(lambda st: len(st["tasks"]) == 3, timeout=60)
            made = site.emu.calls()["calls"]
            r = site.schedule()
            assert r.returncode == 2, r.stderr
            line, = r.stderr.strip().splitlines()
            assert f"is held by scheduler pid {first.pid}" in line and "nothing was created" in line
            after = site.emu.calls()["calls"]
            for op in ("CreateLocationNfs", "CreateTask", "UpdateTask", "StartTaskExecution"):
                assert after.get(op, 0) == made.get(op, 0), op
        finally:
            first.kill()
            first.wait(10)


# -- the fleet may change ------------------------------------------------------------------


def test_an_agent_offline_at_planning_takes_the_lost_share_when_it_is_back(site):
    lost, busy, absent = site.emu.agent_arns()
    site.emu.set_agent(absent, status="OFFLINE")
    site.emu.set_agent(lost, bytes_per_second=SLOW)
    site.emu.set_agent(busy, bytes_per_second=SLOW)
    assert site.schedule("--per_file_cost", "0").returncode == 0
    assert len(site.arns()) == 2  # planned on the two ONLINE agents
    site.emu.set_agent(absent, status="ONLINE")  # a replacement, or the old one back
    lose_mid_transfer(site, lost)
    r = site.watch("--once", "--offline_threshold_sec", "0")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert f"moved to {absent.rsplit('/', 1)[-1]}" in r.stdout
    site.emu.set_agent(busy, bytes_per_second=0)
    run_to_the_end(site)
    assert_exact_copy(site)


def test_an_agent_joining_mid_run_takes_chunks_and_a_drained_one_takes_none(site):
    first, drained, joining = site.emu.agent_arns()
    site.emu.set_agent(joining, status="OFFLINE")
    assert site.schedule("--chunks_per_agent", "4").returncode == 0
    assert starts(site) == 2
    site.emu.set_agent(joining, status="ONLINE")
    r = run_to_the_end(site, "--drain", drained)
    assert "agent " + drained + " drained" in r.stderr
    assert_exact_copy(site)
    assert_each_chunk_ran_as_recorded(site)
    ran = Counter(a["agent"] for c in chunks(site) for a in c["attempts"])
    assert ran[drained] == 1 and ran[joining] >= 1, ran  # the drained agent finished only what it had
    assert joining in ledger(site)["dispatch"]["lanes"]


def test_a_chunk_queued_on_a_lost_agent_runs_elsewhere_within_two_checks(tmp_path):
    with make_site(tmp_path, offline_error_delay=120) as site:
        lost, queued = lose_an_agent_with_a_chunk_queued(site)
        for _ in range(2):  # the default threshold (600 s) leaves the transferring one where it is
            r = site.watch("--once")
            assert r.returncode == 0, (r.stdout, r.stderr)
        chunk = next(c for c in chunks(site) if c["attempts"][0].get("execution") == queued["arn"])
        assert chunk["attempts"][0].get("returned") and not chunk["attempts"][0].get("failed")
        assert chunk["attempts"][-1]["agent"] != lost and chunk["attempts"][-1]["execution"]
        assert "agent OFFLINE since" in r.stdout and "stalled: 1 chunk(s) on OFFLINE agents" in r.stdout


# -- an answer lost after the call took effect ---------------------------------------------


@pytest.mark.parametrize("fault", ["500", "drop"])
@pytest.mark.parametrize("times", [1, -1], ids=["once", "every time"])
def test_a_chunk_start_whose_answer_is_lost_runs_once_and_is_recorded(site, fault, times):
    site.emu.fault("StartTaskExecution", fault, times=times)
    r = site.schedule("--chunks_per_agent", "2")
    assert r.returncode == 0, r.stderr
    run_to_the_end(site)
    assert_exact_copy(site)
    assert_each_chunk_ran_as_recorded(site)
    assert all(len(c["attempts"]) == 1 for c in chunks(site))
    assert site.emu.calls()["faulted"]["StartTaskExecution"] == (1 if times == 1 else 6)


@pytest.mark.parametrize("fault", ["500", "drop"])
def test_static_starts_and_creates_whose_answers_are_lost_happen_once(site, fault):
    for op in ("StartTaskExecution", "CreateTask", "CreateLocationNfs"):
        site.emu.fault(op, fault, times=-1)
    r = site.schedule()
    assert r.returncode == 0, r.stderr
    state = site.emu.state()
    assert len(state["executions"]) == 3 and len(state["tasks"]) == 3
    assert len([loc for loc in state["locations"] if loc["uri"].startswith("nfs://")]) == 3
    assert sorted(site.arns()) == sorted(e["arn"] for e in state["executions"])
    assert sorted(ledger(site)["scopes"]) == sorted(site.arns())
    site.emu.wait_executions_done(site.arns(), timeout=60)
    assert_exact_copy(site)


# -- an end, and one word for every watcher -------------------------------------------------


def test_a_static_scope_failed_on_every_agent_it_may_use_is_given_up_and_the_loop_ends(site):
    a1, a2, spare = site.emu.agent_arns()
    site.emu.set_agent(a1, bytes_per_second=SLOW)
    assert site.schedule("--agent_arns", f"{a1},{a2}", "--per_file_cost", "0").returncode == 0
    lose_mid_transfer(site, a1)
    site.emu.wait_for(lambda st: all(e["status"] == "SUCCESS" for e in st["executions"] if e["agent"] == a2))
    site.emu.set_agent(a2, bytes_per_second=SLOW)
    r = site.watch("--once", "--offline_threshold_sec", "0", "--max_retries", "5")
    assert r.returncode == 0 and f"moved to {a2.rsplit('/', 1)[-1]}" in r.stdout, (r.stdout, r.stderr)
    lose_mid_transfer(site, a2)
    for agent in (a1, a2):
        site.emu.set_agent(agent, status="ONLINE")  # every agent ONLINE: only the rule can end it
    r = run_to_the_end(site, code=3)
    assert "failed on every agent that may serve the run" in r.stdout
    assert not executions_on(site, spare)  # not among the agents named for the run


def test_two_watchers_with_other_retry_settings_agree_on_a_given_up_chunk(tmp_path):
    with make_site(tmp_path, offline_error_delay=120) as site:
        lost = site.emu.agent_arns()[0]
        site.emu.set_agent(lost, bytes_per_second=SLOW)
        assert site.schedule("--chunks_per_agent", "3", "--per_file_cost", "0").returncode == 0
        wait_transferring(site, lost)
        site.emu.set_agent(lost, status="OFFLINE", bytes_per_second=0)
        r = site.watch("--once", "--offline_threshold_sec", "0", "--max_retries", "0")
        assert r.returncode == 3, (r.stdout, r.stderr)
        given_up = [c for c in chunks(site) if c.get("given_up")]
        assert len(given_up) == 1
        before = starts(site)
        r = site.watch("--once", "--max_retries", "5")
        assert "changed the run's record (every watcher follows it now): max retries 0 -> 5" in r.stderr
        assert r.returncode == 3 and "given up: failed 1 time(s)" in r.stdout, (r.stdout, r.stderr)
        assert [c for c in chunks(site) if c.get("given_up")] == given_up
        assert ledger(site)["run"]["policy"]["max_retries"] == 5
        assert len([a for a in given_up[0]["attempts"]]) == 1
        assert starts(site) - before <= 3  # other chunks may start; the given-up one never again
        assert sum(len(c["attempts"]) for c in chunks(site) if c["index"] == given_up[0]["index"]) == 1


def test_an_older_ledger_put_back_runs_no_chunk_twice(site):
    assert site.schedule("--chunks_per_agent", "3").returncode == 0
    path = os.path.join(site.work, "arn_file.txt.ledger.json")
    shutil.copy(path, path + ".copy")  # as a backup taken right after launch
    run_to_the_end(site)
    assert starts(site) == 9
    shutil.copy(path + ".copy", path)
    r = run_to_the_end(site)
    assert "every chunk has succeeded" in r.stderr and r.stderr.count("adopted, not started again") == 6
    assert starts(site) == 9
    assert_exact_copy(site)
    assert_each_chunk_ran_as_recorded(site)


def test_an_agent_datasync_refuses_for_the_run_is_barred_and_the_retry_goes_elsewhere(tmp_path):
    with make_site(tmp_path, agents=2, enhanced_agents=1) as site:
        lost, basic, enhanced = site.emu.agent_arns()
        for agent in (lost, basic):  # the Basic agent still busy: the idle Enhanced one looks best
            site.emu.set_agent(agent, bytes_per_second=SLOW)
        assert site.schedule("--agent_arns", f"{lost},{basic}", "--per_file_cost", "0").returncode == 0
        lose_mid_transfer(site, lost)
        r = site.watch("--once", "--offline_threshold_sec", "0", "--agent_arns", enhanced)  # the least busy
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert f"agent {enhanced} is barred from this run: DataSync refused it" in r.stderr
        assert ledger(site)["run"]["barred"].keys() == {enhanced}
        r = site.watch("--once")
        assert r.returncode == 0 and f"moved to {basic.rsplit('/', 1)[-1]}" in r.stdout, (r.stdout, r.stderr)
        assert not executions_on(site, enhanced)
        site.emu.set_agent(basic, bytes_per_second=0)
        run_to_the_end(site)
        assert_exact_copy(site)


def test_an_agent_joining_that_datasync_refuses_is_barred_and_the_run_goes_on(tmp_path):
    with make_site(tmp_path, agents=2, enhanced_agents=1) as site:
        enhanced = site.emu.agent_arns()[2]
        site.emu.set_agent(enhanced, status="OFFLINE")  # a Basic mode run is planned on the other two
        assert site.schedule("--chunks_per_agent", "3").returncode == 0
        site.emu.set_agent(enhanced, status="ONLINE")
        r = run_to_the_end(site)
        assert f"agent {enhanced} is barred from this run: DataSync refused it" in r.stderr
        assert r.stderr.count("is barred from this run") == 1
        assert not executions_on(site, enhanced)
        assert_exact_copy(site)


# -- found in review: what must never start twice ------------------------------------------


def test_a_take_back_whose_cancel_fails_is_not_handed_out_until_the_cancel_lands(tmp_path):
    with make_site(tmp_path, offline_error_delay=120) as site:
        lost, queued = lose_an_agent_with_a_chunk_queued(site)
        site.emu.fault("CancelTaskExecution", "denied", times=-1, when="before")
        r = site.watch("--once")
        assert r.returncode == 1, (r.stdout, r.stderr)
        chunk = next(c for c in chunks(site) if c["attempts"][0].get("execution") == queued["arn"])
        assert len(chunk["attempts"]) == 1 and chunk["attempts"][0].get("returned")  # taken back, not handed out
        site.emu.fault("CancelTaskExecution", "500", times=0)
        r = site.watch("--once")
        assert r.returncode == 0 and "cancel sent again" in r.stdout, (r.stdout, r.stderr)
        site.emu.set_agent(lost, status="ONLINE")
        run_to_the_end(site, "--offline_threshold_sec", "0")
        runs = [site.emu.execution(site.emu.state(), a["execution"])["status"]
                for c in chunks(site) if c["index"] == chunk["index"] for a in c["attempts"]]
        assert runs.count("SUCCESS") == 1, runs
        assert_exact_copy(site)


def test_a_check_that_cannot_look_for_unrecorded_starts_starts_nothing(site):
    assert site.schedule("--chunks_per_agent", "3").returncode == 0
    path = os.path.join(site.work, "arn_file.txt.ledger.json")
    shutil.copy(path, path + ".copy")
    run_to_the_end(site)
    shutil.copy(path + ".copy", path)  # an older ledger put back, and its tags cannot be read this check
    site.emu.fault("ListTagsForResource", "denied", times=-1, when="before")  # as without the IAM permission
    r = site.watch("--once")
    assert r.returncode == 1 and "nothing is started this check" in r.stderr, (r.stdout, r.stderr)
    assert starts(site) == 9
    site.emu.fault("ListTagsForResource", "500", times=0)
    run_to_the_end(site)
    assert starts(site) == 9
    assert_each_chunk_ran_as_recorded(site)


def test_a_rerun_while_a_retry_of_the_run_still_copies_is_refused_and_writes_nothing(site):
    a, b, _ = site.emu.agent_arns()
    site.emu.set_agent(a, bytes_per_second=SLOW)
    assert site.schedule("--per_file_cost", "0").returncode == 0
    site.emu.wait_for(lambda st: all(e["status"] == "SUCCESS" for e in st["executions"] if e["agent"] != a),
                      timeout=60)
    site.emu.set_agent(b, bytes_per_second=SLOW)
    lose_mid_transfer(site, a)
    assert "moved to" in site.watch("--once", "--offline_threshold_sec", "0").stdout
    site.emu.set_agent(a, status="ONLINE")
    records = {name: read(site, name) for name in ("plan.json", "arn_file.txt.ledger.json", "arn_file.txt")}
    r = site.schedule("--per_file_cost", "0")  # the final pass, too early
    assert r.returncode == 3 and "_retry" in r.stderr and "still has an unfinished execution" in r.stderr, r.stderr
    assert {name: read(site, name) for name in records} == records
    site.emu.set_agent(b, bytes_per_second=0)
    run_to_the_end(site)
    assert_exact_copy(site)


@pytest.mark.parametrize("echo", [True, False], ids=["filters echoed", "no echo"])
def test_a_rerun_after_a_start_whose_answer_was_lost_adopts_it(tmp_path, echo):
    with make_site(tmp_path) as site:
        site.emu.config(echo_execution_filters=echo)
        for agent in site.emu.agent_arns():
            site.emu.set_agent(agent, bytes_per_second=8000)  # still running at the rerun
        site.emu.fault("StartTaskExecution", "drop", times=1)
        site.emu.fault("ListTaskExecutions", "denied", times=-1, when="before")  # and the look fails too
        r = site.schedule("--per_file_cost", "0")
        assert r.returncode == 1, r.stderr
        site.emu.fault("ListTaskExecutions", "500", times=0)
        r = site.schedule("--per_file_cost", "0")
        assert r.returncode == 0, r.stderr
        assert r.stderr.count("execution already running this scope, adopted") == 1
        assert len(site.emu.state()["executions"]) == 3 and len(site.arns()) == 3
