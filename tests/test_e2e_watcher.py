"""The HA watcher against the local DataSync emulator: fail over once, safely, under cron."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from datasync_multi import datasync as ds
from emulator.sample import differences

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLOW = 60_000  # bytes per second: slow enough to act mid-transfer, fast enough for CI


def execution_on(state, agent, arns):
    return next(e for e in state["executions"] if e["agent"] == agent and e["arn"] in arns)


def schedule_with_one_slow_agent(site):
    """Schedule the sample share; the first agent copies slowly. Returns that agent."""
    agent = site.emu.agent_arns()[0]
    site.emu.set_agent(agent, bytes_per_second=SLOW)
    r = site.schedule()
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


def ledger(site):
    with open(os.path.join(site.work, "arn_file.txt.ledger.json")) as fh:
        return json.load(fh)


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


def test_a_stranded_launching_execution_is_cancelled_and_moved(site):
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
    r = site.watch("--once", "--offline_threshold_sec", "0")
    assert r.returncode == 0, r.stderr
    assert "stranded" in r.stdout and "cancelled" in r.stdout
    assert site.emu.calls()["calls"]["CancelTaskExecution"] == 1
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
    r = site.watch("--once", "--offline_threshold_sec", "0",
                   env_extra={"DATASYNC_HA_FAILPOINT": "after_retry_start"})
    assert r.returncode == 137
    assert retry_starts(site) == 1 and len(site.arns()) == 3  # started, but not yet recorded
    r = site.watch("--once", "--offline_threshold_sec", "0")
    assert r.returncode == 0, r.stderr
    assert "completed after a restart" in r.stdout
    assert retry_starts(site) == 1 and len(site.arns()) == 4
    assert site.emu.calls()["calls"]["CreateTask"] == 4


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
                                        Includes=[{"FilterType": "SIMPLE_PATTERN", "Value": "/home/with space"}])["TaskArn"])
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


def test_an_execution_that_selects_nothing_the_plan_expects_is_flagged(site):
    """The mount is not the export: the task 'succeeds' having moved nothing."""
    assert site.schedule("--dry_run").returncode == 0
    with open(os.path.join(site.work, "plan.json")) as fh:
        planned = json.load(fh)["tasks"][0]
    client = site.client
    wrong = client.create_location_nfs(ServerHostname="198.51.100.10", Subdirectory="/vol1/empty",
                                       OnPremConfig={"AgentArns": [planned["agent_arn"]]})["LocationArn"]
    task = client.create_task(SourceLocationArn=wrong, DestinationLocationArn=site.dest_loc, Name="wrong_mount",
                              Includes=ds.rules(planned["includes"]), Excludes=ds.rules(planned["excludes"]))["TaskArn"]
    site.emu.wait_task_created(task)
    arn = client.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    site.emu.wait_executions_done([arn], timeout=30)
    with open(os.path.join(site.work, "arn_file.txt"), "w") as fh:
        fh.write(arn + "\n")
    r = site.watch("--once")
    assert r.returncode == 0, r.stderr
    assert f"selected 0 files, the plan has {planned['files']:,}" in r.stdout
