"""The scheduler against the local DataSync emulator, over real HTTP, with real copies."""

from __future__ import annotations

import json
import os

from emulator.sample import differences

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def finish(site, arns):
    done = site.emu.wait_executions_done(arns, timeout=60)
    assert {a: e["status"] for a, e in done.items()} == {a: "SUCCESS" for a in arns}


def test_the_destination_equals_the_source_and_no_path_is_written_twice(site):
    r = site.schedule("--max_depth", "3")
    assert r.returncode == 0, r.stderr
    plan = json.loads(open(os.path.join(site.work, "plan.json")).read())
    arns = site.arns()
    assert len(arns) == len(plan["tasks"]) == 3
    finish(site, arns)
    assert differences(site.share, site.dest_dir) == []
    writes = site.writes()
    assert writes and max(writes.values()) == 1, {p: n for p, n in writes.items() if n > 1}
    calls = site.emu.calls()["calls"]
    assert calls["CreateTask"] == 3 and calls["StartTaskExecution"] == 3 and calls["ListAgents"] >= 1


def test_a_rerun_reuses_locations_and_tasks(site):
    assert site.schedule().returncode == 0
    finish(site, site.arns())
    client = site.client

    def resources():  # what exists, not its live status, which moves as the rerun starts
        return ({(loc["LocationArn"], loc["LocationUri"]) for loc in client.list_locations()["Locations"]},
                {(t["TaskArn"], t.get("Name")) for t in client.list_tasks()["Tasks"]})

    before = resources()
    r = site.schedule()
    assert r.returncode == 0, r.stderr
    assert "reused" in r.stderr and "created" not in r.stderr.replace("reused", "")
    assert resources() == before
    finish(site, site.arns())
    assert max(site.writes().values()) == 1  # unchanged files are not sent again
    assert os.path.exists(os.path.join(site.work, "arn_file.txt.prev"))


def test_thirty_percent_of_requests_throttled_still_completes(site):
    site.emu.throttle(0.3, seed=7)
    r = site.schedule()
    assert r.returncode == 0, r.stderr
    site.emu.throttle(0.0)
    finish(site, site.arns())
    assert differences(site.share, site.dest_dir) == []
    assert site.emu.calls()["total_throttled"] > 0


def test_no_online_agent_is_refused_before_anything_is_created(site):
    for arn in site.emu.agent_arns():
        site.emu.set_agent(arn, status="OFFLINE")
    r = site.schedule()
    assert r.returncode == 2 and "no online DataSync agent" in r.stderr and "Traceback" not in r.stderr
    assert site.emu.calls()["calls"].get("CreateLocationNfs", 0) == 0


def test_an_aws_failure_midway_leaves_a_record_and_the_rerun_finishes_the_job(site):
    client = site.client
    filler = [client.create_task(SourceLocationArn=site.dest_loc, DestinationLocationArn=site.dest_loc,
                                 Name=f"filler{i}")["TaskArn"] for i in range(98)]
    r = site.schedule()  # the account's 100-task quota stops the third task
    assert r.returncode == 1 and "AWS error" in r.stderr and "Traceback" not in r.stderr
    first = site.arns()
    assert len(first) == 2
    log = open(os.path.join(site.work, "log", "ds_ma_sche.log")).read()
    assert log.count("source location created") == 3  # the third one before its task failed
    assert log.count("task Mig_agent-") == 2 and log.count("execution started") == 2
    for arn in filler[:5]:
        client.delete_task(TaskArn=arn)
    r = site.schedule()
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("source location reused") == 3 and "source location created" not in r.stderr
    assert r.stderr.count("reused, filters updated") == 2 and r.stderr.count(" created: ") == 1
    assert len([t for t in client.list_tasks(MaxResults=100)["Tasks"] if t["Name"].startswith("Mig_")]) == 3
    finish(site, site.arns())
    assert differences(site.share, site.dest_dir) == []
    assert max(site.writes().values()) == 1


def test_our_code_never_turns_off_parameter_validation():
    for top, _, names in os.walk(ROOT):
        if ".venv" in top or "tests" in top:
            continue
        for name in names:
            if name.endswith(".py"):
                assert "parameter_validation" not in open(os.path.join(top, name), encoding="utf-8").read(), name


def test_a_rerun_on_fewer_agents_warns_about_the_old_task_still_running(site):
    slow = site.emu.agent_arns()[2]
    site.emu.set_agent(slow, bytes_per_second=2_000)  # still copying long after the rerun
    assert site.schedule().returncode == 0
    site.emu.wait_for(lambda st: any(e["agent"] == slow and e["status"] == "TRANSFERRING" for e in st["executions"]))
    r = site.schedule("--agent_arns", ",".join(site.emu.agent_arns()[:2]))
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("from an earlier run is still running") == 1 and len(site.arns()) == 2


def test_a_wide_directory_travels_in_prefix_groups_exactly_once(site):
    wide = os.path.join(site.share, "wide")
    for i in range(400):
        os.makedirs(os.path.join(wide, f"user{i:03d}"))
        with open(os.path.join(wide, f"user{i:03d}", "profile"), "wb") as fh:
            fh.write(b"p" * (i % 7))
    with open(os.path.join(wide, "user-notes.txt"), "w") as fh:  # a loose file a group prefix also matches
        fh.write("notes")
    r = site.schedule()
    assert r.returncode == 0, r.stderr
    plan = json.loads(open(os.path.join(site.work, "plan.json")).read())
    groups = [u["path"] for t in plan["tasks"] for u in t["units"] if u["kind"] == "group"]
    assert groups and all(g.startswith("/wide/") and g.endswith("*") for g in groups)
    finish(site, site.arns())
    assert differences(site.share, site.dest_dir) == []
    assert max(site.writes().values()) == 1
