"""The HA watcher against the local DataSync emulator: fail over once, safely, under cron."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

from commands import ROOT
from datasync_multi import datasync as ds
from datasync_multi.datasync import SETTLE_ENV as SETTLE
from datasync_multi.ledger import Ledger
from datasync_multi.records import patterns
from datasync_multi.watch import Settings, Watcher
from emulator.sample import differences
from sites import SLOW, ledger


def execution_on(state, agent, arns):
    return next(e for e in state["executions"] if e["agent"] == agent and e["arn"] in arns)


def schedule_with_one_slow_agent(site):
    """Schedule the sample share, balanced by bytes so each agent copies about a third of it;
    the first agent copies slowly (its third takes ~15 s). Returns that agent."""
    agent = site.emu.agent_arns()[0]
    site.emu.set_agent(agent, bytes_per_second=SLOW)
    r = site.schedule("--per_file_cost", "0")
    assert r.returncode == 0, r.stderr
    return agent


def fail_mid_transfer(site, agent):
    """Take the agent offline while its execution is copying; wait until that execution fails."""
    arns = site.arns()
    site.emu.wait_for(lambda st: (e := execution_on(st, agent, arns))["status"] == "TRANSFERRING"
                      and e["counters"].get("BytesTransferred", 0) > 0, timeout=30)
    site.emu.set_agent(agent, status="OFFLINE", bytes_per_second=0)
    failed = site.emu.wait_for(lambda st: (e := execution_on(st, agent, arns))["status"] == "ERROR" and e, timeout=30)
    assert failed["result"]["ErrorCode"] == "AgentOffline"
    return failed["arn"]


def retry_starts(site):
    return site.emu.calls()["calls"].get("StartTaskExecution", 0) - 3


def test_an_agent_lost_mid_transfer_is_replaced_and_the_copy_is_exact(site):
    agent = schedule_with_one_slow_agent(site)
    failed = fail_mid_transfer(site, agent)
    r = site.watch("--once", "--offline_threshold_sec", "0")
    assert r.returncode == 0, r.stderr
    assert "moved to" in r.stdout and failed.rsplit("/", 1)[-1] in r.stdout
    arns = site.arns()
    assert len(arns) == 4 and retry_starts(site) == 1
    retry = site.emu.state()["executions"][-1]
    assert retry["arn"] == arns[-1] and retry["agent"] != agent
    original = next(e for e in site.emu.state()["executions"] if e["arn"] == failed)
    assert (retry["includes"], retry["excludes"]) == (original["includes"], original["excludes"])
    site.emu.wait_executions_done([a for a in arns if a != failed], timeout=60)
    assert differences(site.share, site.dest_dir) == []
    assert max(site.writes().values()) == 1
    tasks = {t["Name"] for t in site.client.list_tasks()["Tasks"]}
    assert any(name.endswith("_retry") for name in tasks)
    r = site.watch("--once")  # everything has succeeded now
    assert r.returncode == 0 and "every watched scope has succeeded" in r.stderr
    assert (r.stdout + r.stderr).count("bytes sent / to send") == 1  # the table, once
    assert open(os.path.join(site.work, "log", "ds_ha.log")).read().count("bytes sent / to send") == 2
    retry_row = next(line for line in r.stdout.splitlines() if line.startswith(arns[-1].rsplit("/", 1)[-1]))
    sent, to_send = re.search(r"SUCCESS .* ([\d,]+) / ([\d,]+) \([\d,]+ unchanged, skipped\)", retry_row).groups()
    assert sent == to_send, retry_row  # the retry sent all it had left to send


def test_a_launching_execution_on_a_lost_agent_moves_at_once_unfailed(site):
    assert site.schedule().returncode == 0
    site.emu.wait_executions_done(site.arns(), timeout=60)
    agent = site.emu.agent_arns()[1]
    site.emu.set_agent(agent, status="OFFLINE")
    state = site.emu.state()
    task = execution_on(state, agent, site.arns())["task"]
    stuck = site.client.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    site.emu.wait_for(lambda st: next(e for e in st["executions"] if e["arn"] == stuck)["status"] == "LAUNCHING")
    with open(os.path.join(site.work, "arn_file.txt"), "w") as fh:
        fh.write(stuck + "\n")
    r = site.watch("--once")  # the threshold (600 s) does not apply: it has read nothing
    assert r.returncode == 0, r.stderr
    assert "launching on a lost agent, read nothing; cancelled; moved to" in r.stdout
    assert site.emu.calls()["calls"]["CancelTaskExecution"] == 1
    assert [s["retries"] for s in ledger(site)["scopes"].values() if len(s["attempts"]) > 1] == [0]
    done = site.emu.wait_executions_done(site.arns(), timeout=60)
    assert done[stuck]["status"] == "ERROR" and done[site.arns()[-1]]["status"] == "SUCCESS"
    assert done[site.arns()[-1]]["agent"] != agent


def test_a_scope_that_fails_again_is_not_retried_a_third_time(site):
    agent = schedule_with_one_slow_agent(site)
    fail_mid_transfer(site, agent)
    healthy = [a for a in site.emu.agent_arns() if a != agent]
    for a in healthy:  # whichever agent takes the retry copies slowly too
        site.emu.set_agent(a, bytes_per_second=SLOW)
    assert site.watch("--once", "--offline_threshold_sec", "0").returncode == 0
    retry = site.emu.state()["executions"][-1]
    fail_mid_transfer_of(site, retry["arn"], retry["agent"])
    r = site.watch("--once", "--offline_threshold_sec", "0", "--max_retries", "1")
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "no retries left" in r.stdout and retry_starts(site) == 1


def fail_mid_transfer_of(site, arn, agent):
    site.emu.wait_for(lambda st: next(e for e in st["executions"] if e["arn"] == arn)["counters"]
                      .get("BytesTransferred", 0) > 0, timeout=30)
    site.emu.set_agent(agent, status="OFFLINE")
    site.emu.wait_for(lambda st: next(e for e in st["executions"] if e["arn"] == arn)["status"] == "ERROR", timeout=30)


def test_a_watcher_killed_right_after_starting_a_retry_does_not_retry_again(site):
    agent = schedule_with_one_slow_agent(site)
    fail_mid_transfer(site, agent)
    r = site.run("tests/crash_watcher.py", "after_start", "--arn_file", "arn_file.txt", "--once",
                 "--offline_threshold_sec", "0")
    assert r.returncode == 137, r.stderr
    assert retry_starts(site) == 1 and len(site.arns()) == 3  # started, but not yet recorded
    r = site.watch("--once", "--offline_threshold_sec", "0")
    assert r.returncode == 0, r.stderr
    assert "missing from the ledger: adopted, not started again" in r.stderr  # found by its start tag
    assert retry_starts(site) == 1 and len(site.arns()) == 4
    assert site.emu.calls()["calls"]["CreateTask"] == 4


def test_a_retry_whose_watcher_died_before_sending_it_settles_and_then_starts_once(site):
    """The retry was about to be sent when its watcher died: whether the request left cannot
    be known, so the next check leaves it until it has settled, and then starts it once."""
    agent = schedule_with_one_slow_agent(site)
    fail_mid_transfer(site, agent)
    r = site.run("tests/crash_watcher.py", "before_start", "--arn_file", "arn_file.txt", "--once",
                 "--offline_threshold_sec", "0")
    assert r.returncode == 137, r.stderr
    assert retry_starts(site) == 0
    r = site.watch("--once", "--offline_threshold_sec", "0", env_extra={SETTLE: "60"})
    assert r.returncode == 0, r.stderr
    assert "not seen yet: left to settle" in r.stdout and retry_starts(site) == 0
    r = site.watch("--once", "--offline_threshold_sec", "0", env_extra={SETTLE: "0"})
    assert r.returncode == 0, r.stderr
    assert "completed (an earlier check decided it)" in r.stdout and retry_starts(site) == 1
    assert len(site.arns()) == 4


def test_a_retry_whose_start_lands_after_the_look_found_nothing_is_adopted_not_sent_again(site):
    """The retry's answer is lost and its start takes effect 8 s later, after the watcher's
    look found nothing: no check sends it again while it settles, and the execution that
    shows is adopted, so the retry is sent once."""
    agent = schedule_with_one_slow_agent(site)
    fail_mid_transfer(site, agent)
    site.emu.fault("StartTaskExecution", fault="drop", when="late", delay=8.0)
    settle = {SETTLE: "60"}
    r = site.watch("--once", "--offline_threshold_sec", "0", env_extra=settle)
    assert "got no answer" in r.stderr and "Traceback" not in r.stderr
    assert retry_starts(site) == 1 and len(site.arns()) == 3  # lost, not recorded, not sent again
    landed = site.emu.wait_for(lambda st: len(st["executions"]) == 4 and st["executions"][-1], timeout=30)
    r = site.watch("--once", "--offline_threshold_sec", "0", env_extra=settle)
    assert r.returncode == 0, r.stderr
    assert "missing from the ledger: adopted, not started again" in r.stderr and retry_starts(site) == 1
    assert site.arns().count(landed["arn"]) == 1 and len(site.arns()) == 4


def test_a_retry_that_settled_unseen_for_an_agent_gone_offline_moves_unspent(site):
    """A killed watcher's retry intent, never sent, whose agent then goes OFFLINE: once it
    has settled, the next check withdraws it (its retry not spent) and sends the retry to an
    agent that is ONLINE, once; the copy is exact."""
    agent = schedule_with_one_slow_agent(site)
    fail_mid_transfer(site, agent)
    r = site.run("tests/crash_watcher.py", "before_start", "--arn_file", "arn_file.txt", "--once",
                 "--offline_threshold_sec", "0")
    assert r.returncode == 137, r.stderr
    intended = next(a["agent"] for s in ledger(site)["scopes"].values() for a in s["attempts"]
                    if "execution" not in a)
    site.emu.set_agent(intended, status="OFFLINE")
    r = site.watch("--once", "--offline_threshold_sec", "0", env_extra={SETTLE: "0"})
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "withdrawn, it moves elsewhere" in r.stdout and retry_starts(site) == 1
    retry = site.emu.state()["executions"][-1]
    assert retry["agent"] not in (intended, agent)
    r = site.watch("--timeout_sec", "0.2", "--offline_threshold_sec", "0", timeout=240)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert differences(site.share, site.dest_dir) == []


def test_two_watchers_started_at_once_make_one_retry(site):
    agent = schedule_with_one_slow_agent(site)
    fail_mid_transfer(site, agent)
    cmd = [sys.executable, os.path.join(ROOT, "datasync_agent_ha.py"), "--arn_file", "arn_file.txt", "--once",
           "--offline_threshold_sec", "0", "--log_dir", os.path.join(site.work, "log")]
    procs = [subprocess.Popen(cmd, cwd=site.work, env=site.emu.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    codes = [p.wait(timeout=120) for p in procs]
    assert codes == [0, 0]
    assert retry_starts(site) == 1 and site.emu.calls()["calls"]["CreateTask"] == 4
    assert len(site.arns()) == 4


def test_no_healthy_agent_keeps_the_budget_and_the_next_check_moves_it(site):
    agent = schedule_with_one_slow_agent(site)
    fail_mid_transfer(site, agent)
    site.emu.set_agent(agent, status="ONLINE")
    others = [a for a in site.emu.agent_arns() if a != agent]
    for a in others:
        site.emu.set_agent(a, status="OFFLINE")
    r = site.watch("--once", "--offline_threshold_sec", "0")
    assert r.returncode == 4, (r.stdout, r.stderr)
    assert "no healthy agent" in r.stdout and retry_starts(site) == 0
    assert all(scope["retries"] == 0 for scope in ledger(site)["scopes"].values())
    site.emu.set_agent(others[0], status="ONLINE")
    r = site.watch("--once", "--offline_threshold_sec", "9999")
    assert r.returncode == 0 and retry_starts(site) == 1


def test_a_hundred_watched_executions_cost_a_bounded_number_of_calls(site):
    client = site.client
    agents = site.emu.agent_arns()
    tasks = []
    for i, agent in enumerate(agents):
        loc = client.create_location_nfs(ServerHostname="198.51.100.10", Subdirectory="/vol1",
                                         OnPremConfig={"AgentArns": [agent]})["LocationArn"]
        tasks.append(client.create_task(SourceLocationArn=loc, DestinationLocationArn=site.dest_loc, Name=f"t{i}",
                                        Includes=[{"FilterType": "SIMPLE_PATTERN",
                                                   "Value": "/home/with space"}])["TaskArn"])
    for task in tasks:
        site.emu.wait_task_created(task)
    arns = [client.start_task_execution(TaskArn=tasks[i % 3])["TaskExecutionArn"] for i in range(100)]
    with open(os.path.join(site.work, "arn_file.txt"), "w") as fh:
        fh.write("# a hundred executions\nnot-an-arn\n" + "\n".join(arns) + "\n")
    site.emu.wait_executions_done(arns, timeout=120)
    site.emu.reset_calls()
    r = site.watch("--once")
    assert r.returncode == 0, r.stderr
    assert "not an execution ARN" in r.stderr
    first = site.emu.calls()["total"]
    site.emu.reset_calls()
    assert site.watch("--once").returncode == 0
    second = site.emu.calls()["total"]
    assert first <= 1 + 100 + 3 + 3, site.emu.calls()  # agents, executions, tasks, locations
    assert second <= 1, site.emu.calls()  # ended executions and descriptions come from the ledger


def test_a_stranded_execution_that_cannot_be_moved_is_left_running(site):
    agent = schedule_with_one_slow_agent(site)
    arns = site.arns()
    site.emu.wait_for(lambda st: execution_on(st, agent, arns)["status"] == "TRANSFERRING")
    site.emu.config(offline_error_delay=600)  # it hangs rather than fails
    site.emu.set_agent(agent, status="OFFLINE")
    r = site.watch("--once", "--offline_threshold_sec", "0", "--max_retries", "0")
    assert r.returncode == 3 and "stranded" in r.stdout and "no retries left" in r.stdout
    assert site.emu.calls()["calls"].get("CancelTaskExecution", 0) == 0


def test_a_third_attempt_goes_to_the_one_agent_that_has_not_failed_the_scope(site):
    agent = schedule_with_one_slow_agent(site)
    failed = fail_mid_transfer(site, agent)
    site.emu.wait_executions_done([a for a in site.arns() if a != failed], timeout=60)
    others = [a for a in site.emu.agent_arns() if a != agent]
    for a in others:  # the retry copies slowly wherever it goes
        site.emu.set_agent(a, bytes_per_second=SLOW)
    assert site.watch("--once", "--offline_threshold_sec", "0", "--max_retries", "2").returncode == 0
    second = site.emu.state()["executions"][-1]
    assert second["agent"] in others
    fail_mid_transfer_of(site, second["arn"], second["agent"])
    for a in site.emu.agent_arns():
        site.emu.set_agent(a, status="ONLINE", bytes_per_second=0)
    r = site.watch("--once", "--offline_threshold_sec", "0", "--max_retries", "2")
    assert r.returncode == 0, (r.stdout, r.stderr)
    third = site.emu.state()["executions"][-1]
    assert retry_starts(site) == 2 and third["agent"] not in (agent, second["agent"])
    site.emu.wait_executions_done([third["arn"]], timeout=60)
    assert differences(site.share, site.dest_dir) == []


def test_once_exits_1_when_an_execution_cannot_be_described_and_the_loop_never_claims_success(site):
    assert site.schedule().returncode == 0
    arns = site.arns()
    site.emu.wait_executions_done(arns, timeout=60)
    site.client.delete_task(TaskArn=ds.task_of(arns[0]))  # its executions go with it
    r = site.watch("--once")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "describe failed: InvalidRequestException" in r.stdout
    assert "every watched scope has succeeded" not in r.stderr
    assert r.stderr.count("describe failed") == 1
    log_path = os.path.join(site.work, "log", "ds_ha.log")
    loop = subprocess.Popen([sys.executable, os.path.join(ROOT, "datasync_agent_ha.py"), "--arn_file", "arn_file.txt",
                             "--timeout_sec", "1", "--log_dir", os.path.join(site.work, "log")],
                            cwd=site.work, env=site.emu.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while open(log_path).read().count("could not look at or act on") < 3 and loop.poll() is None:  # two checks
            assert time.monotonic() < deadline, "the loop made no second check"
            time.sleep(0.1)
        assert loop.poll() is None, "the loop ended"
        assert "every watched scope has succeeded" not in open(log_path).read()
    finally:
        loop.terminate()
        loop.wait(10)


def test_a_cancel_that_loses_the_race_to_the_executions_end_is_not_an_error(site):
    assert site.schedule().returncode == 0
    site.emu.wait_executions_done(site.arns(), timeout=60)
    agent = site.emu.agent_arns()[1]
    task = execution_on(site.emu.state(), agent, site.arns())["task"]
    site.emu.set_agent(agent, status="OFFLINE")
    stuck = site.client.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    site.emu.wait_for(lambda st: next(e for e in st["executions"] if e["arn"] == stuck)["status"] == "LAUNCHING")
    with open(os.path.join(site.work, "arn_file.txt"), "w") as fh:
        fh.write(stuck + "\n")
    client = site.emu.client()

    def end_it_first(**_):  # the agent returns and the execution ends just before the cancel arrives
        site.emu.set_agent(agent, status="ONLINE")
        site.emu.wait_executions_done([stuck])

    client.meta.events.register("before-call.datasync.CancelTaskExecution", end_it_first)
    result = Watcher(client, Ledger.read(os.path.join(site.work, "arn_file.txt.ledger.json")),
                     os.path.join(site.work, "arn_file.txt"), Settings(offline_threshold=0)).check()
    rows = [r for r in result.rows if r.execution == stuck]
    assert len(rows) == 1 and rows[0].status == "SUCCESS" and "ended by itself" in rows[0].action, result.rows
    assert result.errors == [] and result.finished
    assert site.emu.calls()["calls"]["StartTaskExecution"] == 4  # the three planned and ours: no retry


def test_a_retry_moves_the_planned_scope_when_the_execution_echoes_no_filters(site):
    agent = schedule_with_one_slow_agent(site)
    site.emu.config(echo_execution_filters=False)
    fail_mid_transfer(site, agent)
    r = site.watch("--once", "--offline_threshold_sec", "0")
    assert r.returncode == 0, (r.stdout, r.stderr)
    with open(os.path.join(site.work, "plan.json")) as fh:
        planned = next(t for t in json.load(fh)["tasks"] if t["agent_arn"] == agent)
    retry = site.emu.state()["executions"][-1]
    assert patterns(retry["includes"]) == planned["includes"] and retry["includes"]
    assert patterns(retry["excludes"]) == planned.get("excludes", [])
    site.emu.wait_executions_done(site.arns()[1:], timeout=60)
    assert differences(site.share, site.dest_dir) == []


def test_a_scope_that_cannot_be_rebuilt_is_not_retried_and_says_so(site):
    agent = schedule_with_one_slow_agent(site)
    fail_mid_transfer(site, agent)
    os.remove(os.path.join(site.work, "arn_file.txt.ledger.json"))  # the run's record is gone
    r = site.watch("--once", "--offline_threshold_sec", "0")
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "not retried: the ledger holds no run record" in r.stdout and retry_starts(site) == 0
    assert all(scope["retries"] == 0 for scope in ledger(site)["scopes"].values())


def test_a_rerun_with_nothing_left_to_send_is_not_flagged(site):
    assert site.schedule().returncode == 0
    site.emu.wait_executions_done(site.arns(), timeout=60)
    assert site.schedule().returncode == 0
    site.emu.wait_executions_done(site.arns(), timeout=60)
    assert {e["counters"]["EstimatedFilesToTransfer"] for e in site.emu.state()["executions"][3:]} == {0}
    r = site.watch("--once")
    assert r.returncode == 0, (r.stdout, r.stderr)
    table = r.stdout.split("\nscopes: ")[0]  # the rows, without the summary line below them
    assert "CHECK" not in r.stdout and table.count(" done") == 3


def test_an_execution_selecting_far_more_than_its_plan_is_flagged_with_exit_5(site, tmp_path):
    """The plan was made from a mount that is not the export: a copy with one file of /projects."""
    mount = tmp_path / "not-the-export"
    (mount / "projects").mkdir(parents=True)
    (mount / "projects" / "file000.dat").write_bytes(b"x")
    (tmp_path / "projects.manifest").write_text("/projects\n")
    # one agent: the plan's one unit is the whole directory, /projects/, which on the real
    # export selects all of it
    r = site.schedule("--mount_path_dir", str(mount), "--source_file", str(tmp_path / "projects.manifest"),
                      "--agent_arns", site.emu.agent_arns()[0])
    assert r.returncode == 0, r.stderr
    site.emu.wait_executions_done(site.arns(), timeout=60)
    r = site.watch("--once")
    assert r.returncode == 5, (r.stdout, r.stderr)
    assert "CHECK: selects 136 items where the plan has 2" in r.stdout


def test_the_offline_threshold_counts_from_the_agents_last_contact(site):
    agent = schedule_with_one_slow_agent(site)
    site.emu.wait_for(lambda st: execution_on(st, agent, site.arns())["status"] == "TRANSFERRING")
    site.emu.config(offline_error_delay=600)  # it hangs rather than fails
    site.emu.set_agent(agent, status="OFFLINE", last_contact_ago=30)
    r = site.watch("--once", "--offline_threshold_sec", "600")
    assert r.returncode == 0 and "stranded" not in r.stdout and retry_starts(site) == 0, r.stdout
    site.emu.set_agent(agent, last_contact_ago=900)  # as another cron run would find it later
    r = site.watch("--once", "--offline_threshold_sec", "600")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "stranded: agent out of contact 9" in r.stdout and retry_starts(site) == 1


def test_a_retry_that_cannot_be_created_now_is_an_error_and_the_next_check_completes_it(site):
    client = site.client
    # the account's 100 tasks with the scheduler's 3, made first: these 97 calls take seconds,
    # and the slow agent must still be copying when it is lost
    filler = [client.create_task(SourceLocationArn=site.dest_loc, DestinationLocationArn=site.dest_loc,
                                 Name=f"filler{i}")["TaskArn"] for i in range(97)]
    agent = schedule_with_one_slow_agent(site)
    fail_mid_transfer(site, agent)
    r = site.watch("--once", "--offline_threshold_sec", "0")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Task quota exceeded" in r.stdout and "the next check tries again" in r.stdout
    assert retry_starts(site) == 0 and [s["retries"] for s in ledger(site)["scopes"].values()].count(1) == 1
    client.delete_task(TaskArn=filler[0])
    r = site.watch("--once", "--offline_threshold_sec", "0")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "completed (an earlier check decided it)" in r.stdout and retry_starts(site) == 1
