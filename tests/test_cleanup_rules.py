"""What ``--cleanup`` removes, decided from what the survey saw (``cleanup.decide``, no server):
only the run's tasks that carry our tag, and only our locations no other task uses."""

from __future__ import annotations

import json

from commands import WATCHER
from datasync_multi import datasync as ds
from datasync_multi.cleanup import LocationSeen, TaskSeen, decide, run_task_names
from datasync_multi.ledger import LEDGER_VERSION

PREFIX = "Mig_"
AGENT = "agent-0123456789abcdef0"
DEST = "arn:aws:datasync:us-east-1:111122223333:location/loc-d0000000000000000"
SCHEDULER = {ds.TAG_KEY: ds.SCHEDULER_TAG["Value"]}
HA = {ds.TAG_KEY: ds.WATCHER_TAG["Value"]}


def task(n: int, name: str, tags: dict, source: str) -> TaskSeen:
    return TaskSeen(f"arn:aws:datasync:us-east-1:111122223333:task/task-{n:017x}", name, "AVAILABLE", tags,
                    source, DEST)


def loc(n: int, tags: dict, *users: TaskSeen) -> LocationSeen:
    return LocationSeen(f"arn:aws:datasync:us-east-1:111122223333:location/loc-{n:017x}", f"nfs://srv/vol{n}/",
                        tags, frozenset(t.arn for t in users))


def test_the_run_task_names_are_the_prefix_an_agent_and_a_slot_or_retry():
    names = run_task_names(PREFIX)
    for name in (f"{PREFIX}{AGENT}", f"{PREFIX}{AGENT}_q2", f"{PREFIX}{AGENT}_retry", f"{PREFIX}{AGENT}_q2_retry"):
        assert names.fullmatch(name), name
    for name in (f"{PREFIX}other", f"Mig2_{AGENT}", f"{PREFIX}{AGENT}_old", f"x{PREFIX}{AGENT}", f"{PREFIX}"):
        assert not names.fullmatch(name), name
    assert not run_task_names("a.b_").fullmatch(f"aXb_{AGENT}")  # the prefix is literal


def test_only_our_tagged_tasks_and_the_locations_no_other_task_uses_go():
    source = "arn:aws:datasync:us-east-1:111122223333:location/loc-00000000000000001"
    mine = task(1, f"{PREFIX}{AGENT}", SCHEDULER, source)
    retry = task(2, f"{PREFIX}{AGENT}_retry", HA, source)
    untagged = task(3, f"{PREFIX}{AGENT}_q2", {}, source)
    foreign_tag = task(4, f"{PREFIX}{AGENT}_q3", {ds.TAG_KEY: "someone"}, source)
    free = loc(5, SCHEDULER, mine, retry)          # used only by tasks that go: goes
    shared = loc(6, HA, retry, untagged)      # also used by a task that stays: kept
    theirs = loc(7, {}, mine)                      # not ours: kept
    dest = LocationSeen(DEST, "s3://bucket/share/", SCHEDULER, frozenset({mine.arn}))  # never, even if tagged
    removal = decide(PREFIX, DEST, [mine, retry, untagged, foreign_tag], [free, shared, theirs, dest])
    assert removal.tasks == (mine, retry)
    assert removal.locations == (free,)
    kept = "\n".join(removal.kept)
    for arn in (untagged.arn, foreign_tag.arn, shared.arn, theirs.arn, DEST):
        assert arn in kept
    assert "used by 1 other task(s)" in kept and "the destination" in kept


def test_an_unfinished_execution_is_named():
    running = TaskSeen("arn:aws:datasync:us-east-1:111122223333:task/task-00000000000000001", f"{PREFIX}{AGENT}",
                       "RUNNING", SCHEDULER, "s", DEST, ("exec-1 TRANSFERRING",))
    removal = decide(PREFIX, DEST, [running], [])
    assert removal.unfinished == [f"{PREFIX}{AGENT} (exec-1 TRANSFERRING)"]


def test_cleanup_without_a_run_record_or_with_yes_alone_is_one_line_and_exit_2(tmp_path, in_process):
    r = in_process("--yes", script=WATCHER)
    assert (r.returncode, r.stderr) == (2, "datasync_agent_ha.py: error: --yes goes with --cleanup (it confirms "
                                           "the removal)\n")
    r = in_process("--cleanup", script=WATCHER)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1
    assert "arn_file.txt.ledger.json' does not exist" in r.stderr
    (tmp_path / "arn_file.txt.ledger.json").write_text(json.dumps({"version": LEDGER_VERSION}))
    r = in_process("--cleanup", "--yes", script=WATCHER)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "holds no run record" in r.stderr
