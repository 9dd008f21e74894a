"""The emulator's models of what makes a dispatcher's chunk size a trade-off, and of the
queueing a dispatcher relies on: the per-execution start overhead (``--launch-delay``), the
per-file overhead (``--file-delay``), per-agent bandwidth from the start
(``--agent-bytes-per-second``), the two readings of how an execution's filters combine with
its task's (``--execution-filters``), and FIFO queueing of several tasks on one agent.

As in test_emulator.py: real boto3 clients, waits on conditions, and times only as lower
bounds (a run over a huge delay that still ends shows that the delay was not charged).
"""

from __future__ import annotations

import os
import time

import pytest

from calls import HOST, nfs_location, rules, s3_location, write
from emulator.harness import Emulator, EmulatorError
from emulator.runner import Pace


@pytest.fixture
def src(tmp_path):
    """The emulator's NFS share, exported as HOST:/vol1."""
    share = tmp_path / "share"
    share.mkdir()
    return share


@pytest.fixture
def start(src, tmp_path):
    """Start an emulator over `src` -> tmp_path/s3 with these keywords; each is stopped after
    the test, and must exit 0."""
    dst = tmp_path / "s3"
    dst.mkdir()
    started = []

    def _start(**kw) -> Emulator:
        options = dict(agents=3, phase_delay=0.02, offline_error_delay=0.5, task_create_delay=0) | kw
        emu = Emulator().start({f"{HOST}:/vol1": str(src)}, str(dst), **options)
        started.append(emu)
        return emu

    yield _start
    for emu in started:
        assert emu.stop() == 0, emu.stderr()


def status_is(emu, arn, status):
    return lambda st: emu.execution(st, arn)["status"] == status


def start_execution(ds, task, **kw) -> str:
    return ds.start_task_execution(TaskArn=task, **kw)["TaskExecutionArn"]


def finish(emu, ds, arn, timeout=20) -> dict:
    emu.wait_executions_done([arn], timeout)
    return ds.describe_task_execution(TaskExecutionArn=arn)


def selected_by(emu, arn, before: dict) -> set[str]:
    """The source paths this (finished) execution selected: the state's `selections` grown
    since `before`, which was taken after every other execution had prepared."""
    st = emu.state()
    prefix = emu.execution(st, arn)["source_dir"] + ":"
    return {key[len(prefix):] for key, n in st["selections"].items() if n > before.get(key, 0)}


# ---------------------------------------------------------------- launch delay
def test_launch_delay_is_spent_between_launch_and_end(start, src):
    write(src / "f.txt", "f")
    emu = start(launch_delay=0.5)
    assert emu.state()["config"]["launch_delay"] == 0.5
    ds = emu.client()
    task = ds.create_task(SourceLocationArn=nfs_location(ds, emu.agent_arns()[0]),
                          DestinationLocationArn=s3_location(ds))["TaskArn"]
    d = finish(emu, ds, start_execution(ds, task))
    assert d["Status"] == "SUCCESS", d["Result"]
    assert (d["EndTime"] - d["LaunchTime"]).total_seconds() >= 0.5
    assert d["Result"]["TotalDuration"] >= 500


def test_launch_delay_honours_cancel_and_starts_once_the_agent_is_back(start, src):
    write(src / "one" / "f.txt", "f")
    write(src / "two" / "g.txt", "g")
    emu = start()
    ds = emu.client()
    a1, a2, _ = emu.agent_arns()
    s3 = s3_location(ds)
    task = ds.create_task(SourceLocationArn=nfs_location(ds, a1, "/vol1/one"), DestinationLocationArn=s3)["TaskArn"]
    other = ds.create_task(SourceLocationArn=nfs_location(ds, a2, "/vol1/two"), DestinationLocationArn=s3)["TaskArn"]

    assert emu.config(launch_delay=3600)["launch_delay"] == 3600
    stuck = start_execution(ds, task)
    emu.wait_for(status_is(emu, stuck, "LAUNCHING"))
    ds.cancel_task_execution(TaskExecutionArn=stuck)
    d = finish(emu, ds, stuck)  # within the wait's timeout, not an hour
    assert d["Status"] == "ERROR" and d["Result"]["ErrorCode"] == "OperationAborted"
    assert d["Result"]["PrepareStatus"] == "ERROR"

    emu.config(launch_delay=0.3)
    emu.set_agent(a1, status="OFFLINE")
    waiting = start_execution(ds, task)
    emu.wait_for(status_is(emu, waiting, "LAUNCHING"))
    # let more than the launch delay pass on a condition: a run on another agent pays it too
    assert finish(emu, ds, start_execution(ds, other))["Status"] == "SUCCESS"
    assert ds.describe_task_execution(TaskExecutionArn=waiting)["Status"] == "LAUNCHING"
    back = time.time()  # the emulator runs on this machine's clock
    emu.set_agent(a1, status="ONLINE")
    d = finish(emu, ds, waiting)
    assert d["Status"] == "SUCCESS", d["Result"]
    # the whole overhead is paid after the agent came back, not while it was away
    assert d["EndTime"].timestamp() - back >= 0.3


# ------------------------------------------------------------------ file delay
def test_file_delay_is_charged_per_entry_transferred_not_per_entry_skipped(start, src):
    for i in range(10):
        write(src / f"f{i}.txt", str(i))
    emu = start(file_delay=0.05)
    ds = emu.client()
    task = ds.create_task(SourceLocationArn=nfs_location(ds, emu.agent_arns()[0]),
                          DestinationLocationArn=s3_location(ds))["TaskArn"]
    d = finish(emu, ds, start_execution(ds, task))
    assert d["Status"] == "SUCCESS", d["Result"]
    assert d["FilesTransferred"] == 10
    assert d["Result"]["TransferDuration"] >= 500
    # an hour per entry transferred: a rerun that skips every entry still ends at once
    assert emu.config(file_delay=3600)["file_delay"] == 3600
    d = finish(emu, ds, start_execution(ds, task))
    assert d["Status"] == "SUCCESS", d["Result"]
    assert d["FilesSkipped"] == 10 and d["FilesTransferred"] == 0


def test_the_modelled_clock_takes_the_emulator_s_own_work_inside_it_and_forgives_long_stalls():
    now = [100.0]
    pace = Pace(clock=lambda: now[0])
    assert pace.owe(1.0) == 1.0
    now[0] = 101.3  # 0.3 s of copying after the first entry's wait ended
    assert pace.owe(1.0) == pytest.approx(0.7), "the work is inside the next entry's time"
    now[0] = 103.0  # 1 s behind the model: only SLACK of it is made up
    assert pace.owe(1.0) == pytest.approx(1.0 - Pace.SLACK)
    now[0] = 3600.0  # an agent away for an hour buys no burst of unpaced entries
    assert pace.owe(0.25) == pytest.approx(0.25 - Pace.SLACK) and pace.owe(1.0) == pytest.approx(0.75)


def test_file_delay_honours_cancel_and_an_offline_agent(start, src, tmp_path):
    write(src / "f.txt", "f")
    emu = start(file_delay=3600)
    ds = emu.client()
    a1 = emu.agent_arns()[0]
    task = ds.create_task(SourceLocationArn=nfs_location(ds, a1),
                          DestinationLocationArn=s3_location(ds, "b", ""))["TaskArn"]
    cancelled = start_execution(ds, task)
    emu.wait_for(status_is(emu, cancelled, "TRANSFERRING"))
    ds.cancel_task_execution(TaskExecutionArn=cancelled)
    d = finish(emu, ds, cancelled)
    assert d["Status"] == "ERROR" and d["Result"]["ErrorCode"] == "OperationAborted"
    assert d["Result"]["TransferStatus"] == "ERROR" and d["FilesTransferred"] == 0
    assert not (tmp_path / "s3" / "b" / "f.txt").exists()  # the overhead comes before the write

    lost = start_execution(ds, task)
    emu.wait_for(status_is(emu, lost, "TRANSFERRING"))
    emu.set_agent(a1, status="OFFLINE")
    d = finish(emu, ds, lost)
    assert d["Status"] == "ERROR" and d["Result"]["ErrorCode"] == "AgentOffline"


# ----------------------------------------------------------- execution filters
def test_execution_filters_replace_or_merge_with_the_tasks(start, src):
    for rel in ("a/1.txt", "a/1.tmp", "a/1.log", "b/2.txt", "b/2.tmp", "b/2.log"):
        write(src / rel, rel)
    emu = start()
    ds = emu.client()
    task = ds.create_task(SourceLocationArn=nfs_location(ds, emu.agent_arns()[0]),
                          DestinationLocationArn=s3_location(ds),
                          Includes=rules("/a"), Excludes=rules("*.tmp"))["TaskArn"]

    def run_selecting(**kw):
        before = emu.state()["selections"]
        arn = start_execution(ds, task, **kw)
        d = finish(emu, ds, arn)
        assert d["Status"] == "SUCCESS", d["Result"]
        used = emu.execution(emu.state(), arn)
        return selected_by(emu, arn, before), d, (used["used_includes"], used["used_excludes"])

    own = dict(Includes=rules("/b"), Excludes=rules("*.log"))
    assert emu.state()["config"]["execution_filters"] == "replace"
    selected, d, used = run_selecting(**own)
    assert selected == {"/b/2.txt", "/b/2.tmp"}
    assert used == (rules("/b"), rules("*.log"))
    assert d["Includes"] == rules("/b") and d["Excludes"] == rules("*.log")

    assert emu.config(execution_filters="merge")["execution_filters"] == "merge"
    selected, d, used = run_selecting(**own)
    assert selected == {"/a/1.txt", "/b/2.txt"}
    assert used == (rules("/a|/b"), rules("*.tmp|*.log"))
    assert d["Includes"] == rules("/b") and d["Excludes"] == rules("*.log")  # what it was given
    selected, d, _ = run_selecting()  # none of its own: the task's
    assert selected == {"/a/1.txt", "/a/1.log"}
    assert d["Includes"] == rules("/a") and d["Excludes"] == rules("*.tmp")


def test_a_bad_config_value_changes_nothing(start):
    emu = start()
    for bad in (dict(execution_filters="union"), dict(launch_delay=5, file_delay=-1),
                dict(launch_delay=5, execution_filters="union")):
        with pytest.raises(EmulatorError, match="HTTP 400"):
            emu.config(**bad)
    config = emu.state()["config"]
    assert (config["launch_delay"], config["file_delay"], config["execution_filters"]) == (0, 0, "replace")


@pytest.mark.parametrize("reading, expected", [("replace", {"/b/2.txt"}), ("merge", {"/b/2.txt", "/c/3.txt"})])
def test_merge_reads_the_task_as_it_is_when_the_execution_launches(start, src, reading, expected):
    write(src / "hold" / "big.bin", os.urandom(300_000))
    for rel in ("a/1.txt", "b/2.txt", "c/3.txt"):
        write(src / rel, rel)
    emu = start(execution_filters=reading)
    ds = emu.client()
    a1 = emu.agent_arns()[0]
    nfs, s3 = nfs_location(ds, a1), s3_location(ds)
    holder = ds.create_task(SourceLocationArn=nfs, DestinationLocationArn=s3, Includes=rules("/hold"))["TaskArn"]
    task = ds.create_task(SourceLocationArn=nfs, DestinationLocationArn=s3, Includes=rules("/a"))["TaskArn"]
    emu.set_agent(a1, bytes_per_second=2_000)  # the holder keeps the agent until the limit is lifted
    held = start_execution(ds, holder)
    emu.wait_for(status_is(emu, held, "TRANSFERRING"))
    before = emu.state()["selections"]
    x = start_execution(ds, task, Includes=rules("/b"))
    assert ds.describe_task_execution(TaskExecutionArn=x)["Status"] == "QUEUED"
    ds.update_task(TaskArn=task, Includes=rules("/c"))
    assert ds.describe_task_execution(TaskExecutionArn=x)["Status"] == "QUEUED"  # updated before it launched
    emu.set_agent(a1, bytes_per_second=0)
    done = emu.wait_executions_done([held, x])
    assert [done[arn]["status"] for arn in (held, x)] == ["SUCCESS", "SUCCESS"]
    assert selected_by(emu, x, before) == expected
    assert ds.describe_task_execution(TaskExecutionArn=x)["Includes"] == rules("/b")


# --------------------------------------------------------------- agent bandwidth
def test_agent_bandwidth_set_at_start_paces_each_task_on_that_agent(start, src):
    write(src / "x" / "x.bin", os.urandom(100_000))
    write(src / "y" / "y.bin", os.urandom(100_000))
    emu = start(agent_bytes_per_second=[200_000, 0])
    assert [a["bytes_per_second"] for a in emu.state()["agents"]] == [200_000, None, None]
    ds = emu.client()
    a1 = emu.agent_arns()[0]
    s3 = s3_location(ds)
    tasks = [ds.create_task(SourceLocationArn=nfs_location(ds, a1, f"/vol1/{name}"),
                            DestinationLocationArn=s3)["TaskArn"] for name in ("x", "y")]
    arns = [start_execution(ds, task) for task in tasks]
    done = emu.wait_executions_done(arns)
    first, second = (done[arn] for arn in arns)
    assert second["launch_time"] >= first["end_time"]  # one at a time: each has the agent's whole bandwidth
    for run in (first, second):
        assert run["status"] == "SUCCESS" and run["counters"]["BytesWritten"] == 100_000
        assert run["result"]["TransferDuration"] >= 500  # 100 kB at 200 kB/s


@pytest.mark.parametrize("kw, named", [
    (dict(agent_bytes_per_second=[1_000, 2_000, 3_000, 4_000]), "--agent-bytes-per-second"),
    (dict(extra_args=["--agent-bytes-per-second", "1000,fast"]), "--agent-bytes-per-second"),
    (dict(extra_args=["--agent-bytes-per-second", "1000,-5"]), "--agent-bytes-per-second"),
    (dict(extra_args=["--launch-delay", "-1"]), "--launch-delay"),
    (dict(extra_args=["--file-delay", "nan"]), "--file-delay"),
])
def test_a_bad_overhead_or_bandwidth_option_exits_2_with_one_line(tmp_path, kw, named):
    emu = Emulator()
    with pytest.raises(EmulatorError):
        emu.start({f"{HOST}:/vol1": str(tmp_path)}, str(tmp_path), agents=3, **kw)
    assert emu.proc.returncode == 2
    lines = emu.stderr().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"bad {named} "), lines


# --------------------------------------------------------------------- queueing
def test_two_tasks_on_one_agent_queue_fifo_and_a_cancelled_queued_one_never_launches(start, src):
    write(src / "big" / "f.bin", os.urandom(300_000))
    write(src / "small" / "s.txt", "s")
    emu = start()
    ds = emu.client()
    a1 = emu.agent_arns()[0]
    nfs, s3 = nfs_location(ds, a1), s3_location(ds)
    task_a = ds.create_task(SourceLocationArn=nfs, DestinationLocationArn=s3, Includes=rules("/big"))["TaskArn"]
    task_b = ds.create_task(SourceLocationArn=nfs, DestinationLocationArn=s3, Includes=rules("/small"))["TaskArn"]
    emu.set_agent(a1, bytes_per_second=2_000)  # a1 runs A until the limit is lifted
    a_1 = start_execution(ds, task_a)
    emu.wait_for(status_is(emu, a_1, "TRANSFERRING"))
    b_1, a_2, b_2 = start_execution(ds, task_b), start_execution(ds, task_a), start_execution(ds, task_b)
    assert [ds.describe_task_execution(TaskExecutionArn=arn)["Status"] for arn in (b_1, a_2, b_2)] == ["QUEUED"] * 3

    ds.cancel_task_execution(TaskExecutionArn=b_1)
    d = finish(emu, ds, b_1)
    assert d["Status"] == "ERROR" and d["Result"]["ErrorCode"] == "OperationAborted"
    assert "LaunchTime" not in d

    emu.set_agent(a1, bytes_per_second=0)
    done = emu.wait_executions_done([a_1, a_2, b_2])
    assert all(run["status"] == "SUCCESS" for run in done.values())
    assert done[a_2]["launch_time"] >= done[a_1]["end_time"]  # the next one after the cancelled one
    assert done[b_2]["launch_time"] >= done[a_2]["end_time"]  # first in, first out across tasks
    assert emu.execution(emu.state(), b_1)["launch_time"] is None
    assert {run["agent"] for run in done.values()} == {a1}
