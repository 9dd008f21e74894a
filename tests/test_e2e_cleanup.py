"""``datasync_agent_ha.py --cleanup`` against the emulator: after a run watched to its end, it
lists the run's tasks and locations, removes them only when told to, and leaves alone what
is not ours, what another task uses, and the destination."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

from commands import ROOT
from datasync_multi import datasync as ds
from sites import EXPORT, SERVER, SLOW


def cleanup(site, *args: str, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    """The watcher's --cleanup as a user runs it, with stdin as given (by default no terminal)."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "datasync_agent_ha.py"), "--log_dir",
                           os.path.join(site.work, "log"), "--arn_file", "arn_file.txt", "--cleanup", *args],
                          cwd=site.work, env=site.emu.env(), stdin=stdin, capture_output=True, text=True, timeout=60)


def answering(site, answer: str) -> subprocess.CompletedProcess:
    """--cleanup on a terminal (a pseudo-terminal), answering the question with ``answer``."""
    controller, terminal = pty.openpty()
    try:
        os.write(controller, answer.encode() + b"\n")  # the terminal holds the line until it is read
        return cleanup(site, stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)


def inventory(client) -> tuple[set[str], set[str]]:
    """Every task and location in the emulator, by ARN."""
    return ({t["TaskArn"] for t in client.list_tasks()["Tasks"]},
            {loc["LocationArn"] for loc in client.list_locations()["Locations"]})


def someone_elses(site, client, ours: dict[str, dict]) -> dict[str, str]:
    """What another user made beside the run: an untagged location and a task named like ours
    from it, an untagged location no task uses, and a task of another prefix, tagged as ours,
    that reads one of our locations (so that location must stay)."""
    agents = site.emu.agent_arns()
    agent_id = agents[0].rsplit("/", 1)[-1]
    theirs_loc = client.create_location_nfs(ServerHostname=SERVER, Subdirectory=EXPORT,
                                            OnPremConfig={"AgentArns": [agents[0]]})["LocationArn"]
    theirs_task = client.create_task(SourceLocationArn=theirs_loc, DestinationLocationArn=site.dest_loc,
                                     Name=f"Mig_{agent_id}_q3")["TaskArn"]
    free_loc = client.create_location_nfs(ServerHostname=SERVER, Subdirectory=EXPORT,
                                          OnPremConfig={"AgentArns": [agents[1]]})["LocationArn"]
    shared = sorted(t["SourceLocationArn"] for t in ours.values())[0]
    other_run = client.create_task(SourceLocationArn=shared, DestinationLocationArn=site.dest_loc,
                                   Name=f"Other_{agent_id}", Tags=[ds.SCHEDULER_TAG])["TaskArn"]
    for task in (theirs_task, other_run):
        site.emu.wait_task_created(task)
    return {"their location": theirs_loc, "their task": theirs_task, "unused location": free_loc,
            "other run's task": other_run, "shared location": shared}


def test_cleanup_lists_then_removes_exactly_what_the_run_made(site):
    client = site.client
    slow = site.emu.agent_arns()[0]
    site.emu.set_agent(slow, bytes_per_second=SLOW)
    assert site.schedule("--per_file_cost", "0").returncode == 0
    before = inventory(client)

    r = cleanup(site, "--yes")  # the slow agent still copies: refused, nothing removed
    assert r.returncode == 3, r.stderr
    assert "have not ended" in r.stderr and "nothing was removed" in r.stderr and len(r.stderr.splitlines()) == 1
    assert inventory(client) == before

    site.emu.set_agent(slow, bytes_per_second=0)
    site.emu.wait_executions_done(site.arns(), timeout=60)
    watched = site.watch("--once")
    assert watched.returncode == 0, watched.stderr
    ours = {arn: client.describe_task(TaskArn=arn) for arn in before[0]}
    assert len(ours) == 3 and all(ds.tags_of(client, arn) == {"created-by": "datasync-multi-agent-scheduler"}
                                  for arn in ours)
    ours_locations = {t["SourceLocationArn"] for t in ours.values()}
    assert len(ours_locations) == 3
    others = someone_elses(site, client, ours)
    everything = inventory(client)

    # no terminal to ask on, or an answer other than "yes": listed, nothing removed
    for listed, asked in ((cleanup(site), False), (answering(site, "no"), True)):
        assert listed.returncode == 6, listed.stderr
        assert "nothing removed" in listed.stderr
        assert ("type yes to confirm" in listed.stdout) == asked
        assert sum(line.startswith("  task ") for line in listed.stdout.splitlines()) == 3
        assert sum(line.startswith("  location ") for line in listed.stdout.splitlines()) == 2
        for arn in [*ours, *(ours_locations - {others["shared location"]})]:
            assert arn in listed.stdout
        kept = [line for line in listed.stdout.splitlines() if line.startswith("  kept ")]
        for what in ("their task", "their location", "unused location", "shared location"):
            assert any(others[what] in line for line in kept), what
        assert inventory(client) == everything

    r = cleanup(site, "--yes")
    assert r.returncode == 0, r.stderr
    assert "removed 3 task(s) and 2 location(s)" in r.stdout
    tasks, locations = inventory(client)
    assert tasks == everything[0] - set(ours) == {others["their task"], others["other run's task"]}
    assert locations == everything[1] - (ours_locations - {others["shared location"]})
    assert {site.dest_loc, others["their location"], others["unused location"], others["shared location"]} <= locations

    again = cleanup(site)
    assert again.returncode == 0 and "nothing of this run left to remove" in again.stdout


def test_cleanup_whose_delete_answers_are_lost_removes_everything_once(site):
    """A DeleteTask and a DeleteLocation take effect and their answers are lost (a 500, a
    dropped connection): botocore asks again, DataSync refuses what is gone, and the cleanup
    counts it as removed. With every DeleteLocation answer lost, the cleanup stops with exit 1
    and a rerun removes the rest; nothing else is touched."""
    assert site.schedule().returncode == 0
    site.emu.wait_executions_done(site.arns(), timeout=60)
    tasks, locations = inventory(site.client)
    ours = {site.client.describe_task(TaskArn=t)["SourceLocationArn"] for t in tasks}
    site.emu.fault("DeleteTask", fault="500", times=1)
    site.emu.fault("DeleteLocation", fault="drop", times=1)
    r = cleanup(site, "--yes")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert inventory(site.client) == (set(), locations - ours)  # the destination stays
    assert site.emu.faults() == {}


def test_cleanup_that_never_hears_back_stops_and_a_rerun_finishes(site):
    assert site.schedule().returncode == 0
    site.emu.wait_executions_done(site.arns(), timeout=60)
    tasks, locations = inventory(site.client)
    ours = {site.client.describe_task(TaskArn=t)["SourceLocationArn"] for t in tasks}
    site.emu.fault("DeleteLocation", fault="drop", times=-1)
    r = cleanup(site, "--yes")
    assert r.returncode == 1 and "AWS error" in r.stderr, (r.stdout, r.stderr)
    site.emu.fault("DeleteLocation", times=0)
    assert not inventory(site.client)[0]  # the tasks went first
    again = cleanup(site, "--yes")
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert inventory(site.client) == (set(), locations - ours)
