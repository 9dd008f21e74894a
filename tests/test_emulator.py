"""Tests for the local DataSync emulator (emulator/).

Every AWS call goes through a real boto3 client with parameter validation on.
Waiting is done on conditions (Emulator.wait_for polls the state endpoint),
never with sleeps that paper over races.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
import urllib.error
import urllib.request

import botocore.exceptions
import pytest

from calls import HOST, ROLE, nfs_location, rules, s3_location, write
from emulator.filters import FilterError, FilterSet
from emulator.harness import Emulator

TERMINAL = ("SUCCESS", "ERROR")


# ----------------------------------------------------------------- helpers
# (the emu, ds and dirs fixtures are conftest's; locations, rules and write are calls')
def tree(root) -> dict[str, str]:
    """rel path -> kind ('dir', 'file', 'link:<target>'), ignoring nothing."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = "/" + os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = "link:" + os.readlink(p)
            elif os.path.isdir(p):
                out[rel] = "dir"
            else:
                out[rel] = "file"
    return out


def status_of(emu, arn):
    return lambda st: (emu.execution(st, arn) or {}).get("status")


def run(emu, ds, task, timeout=20, **kw):
    arn = ds.start_task_execution(TaskArn=task, **kw)["TaskExecutionArn"]
    emu.wait_executions_done([arn], timeout)
    return ds.describe_task_execution(TaskExecutionArn=arn)


def client_error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


# ----------------------------------------------------------- every operation
def test_every_operation_through_boto3(emu, ds, dirs):
    src, dst = dirs
    write(src / "a" / "f.txt", "hello")
    agents = ds.list_agents()["Agents"]
    assert [a["Name"] for a in agents] == [f"emulated-agent-{i}" for i in (1, 2, 3)]
    assert [a["AgentArn"] for a in agents] == sorted(a["AgentArn"] for a in agents)
    assert all(a["Status"] == "ONLINE" for a in agents)
    a1, a2 = agents[0]["AgentArn"], agents[1]["AgentArn"]
    d = ds.describe_agent(AgentArn=a1)
    assert d["Status"] == "ONLINE" and d["Name"] == "emulated-agent-1"
    assert d["CreationTime"].year >= 2024

    nfs = nfs_location(ds, a1, "/vol1//", tags=[{"Key": "k", "Value": "v"}])
    d = ds.describe_location_nfs(LocationArn=nfs)
    assert d["LocationUri"] == f"nfs://{HOST}/vol1/"
    assert d["OnPremConfig"]["AgentArns"] == [a1]
    assert d["MountOptions"]["Version"] == "AUTOMATIC"
    ds.update_location_nfs(LocationArn=nfs, OnPremConfig={"AgentArns": [a2]},
                           MountOptions={"Version": "NFS3"})
    d = ds.describe_location_nfs(LocationArn=nfs)
    assert d["OnPremConfig"]["AgentArns"] == [a2] and d["MountOptions"]["Version"] == "NFS3"
    ds.update_location_nfs(LocationArn=nfs, OnPremConfig={"AgentArns": [a1]})

    s3 = s3_location(ds, "bkt", "/some/prefix", tags=[{"Key": "team", "Value": "x"}])
    d = ds.describe_location_s3(LocationArn=s3)
    assert d["LocationUri"] == "s3://bkt/some/prefix/"
    assert d["S3Config"]["BucketAccessRoleArn"] == ROLE
    assert d["S3StorageClass"] == "STANDARD"

    locs = ds.list_locations()["Locations"]
    assert {loc["LocationArn"] for loc in locs} == {nfs, s3}
    only_nfs = ds.list_locations(Filters=[{"Name": "LocationType", "Values": ["NFS"],
                                           "Operator": "Equals"}])["Locations"]
    assert [loc["LocationArn"] for loc in only_nfs] == [nfs]
    by_uri = ds.list_locations(Filters=[{"Name": "LocationUri", "Values": ["s3://bkt/"],
                                         "Operator": "BeginsWith"}])["Locations"]
    assert [loc["LocationArn"] for loc in by_uri] == [s3]
    not_s3 = ds.list_locations(Filters=[{"Name": "LocationUri", "Values": ["s3://"],
                                         "Operator": "NotContains"}])["Locations"]
    assert [loc["LocationArn"] for loc in not_s3] == [nfs]
    future = ds.list_locations(Filters=[{"Name": "CreationTime", "Operator": "GreaterThan",
                                         "Values": [str(time.time() + 3600)]}])["Locations"]
    assert future == []

    task = ds.create_task(SourceLocationArn=nfs, DestinationLocationArn=s3, Name="t1",
                          Options={"VerifyMode": "ONLY_FILES_TRANSFERRED"},
                          Includes=rules("/a"), Excludes=rules("*.tmp"),
                          CloudWatchLogGroupArn="arn:aws:logs:us-east-1:111122223333:log-group:/x",
                          Tags=[{"Key": "owner", "Value": "me"}])["TaskArn"]
    d = ds.describe_task(TaskArn=task)
    assert d["Status"] == "AVAILABLE" and d["Name"] == "t1"
    opts = d["Options"]
    assert opts["VerifyMode"] == "ONLY_FILES_TRANSFERRED"
    assert opts["OverwriteMode"] == "ALWAYS" and opts["PreserveDeletedFiles"] == "PRESERVE"
    assert opts["TransferMode"] == "CHANGED" and opts["TaskQueueing"] == "ENABLED"
    assert opts["LogLevel"] == "OFF" and opts["BytesPerSecond"] == -1
    assert d["Includes"] == rules("/a") and d["Excludes"] == rules("*.tmp")
    assert d["CloudWatchLogGroupArn"].endswith(":log-group:/x")
    assert "CurrentTaskExecutionArn" not in d

    ds.update_task(TaskArn=task, Name="t1b", Options={"LogLevel": "TRANSFER"})
    d = ds.describe_task(TaskArn=task)
    assert d["Name"] == "t1b" and d["Options"]["LogLevel"] == "TRANSFER"
    assert d["Options"]["VerifyMode"] == "ONLY_FILES_TRANSFERRED"  # merged, not replaced

    for loc in (nfs, s3):
        listed = ds.list_tasks(Filters=[{"Name": "LocationId", "Values": [loc],
                                         "Operator": "Equals"}])["Tasks"]
        assert [t["TaskArn"] for t in listed] == [task]
    assert ds.list_tasks()["Tasks"][0]["Status"] == "AVAILABLE"

    ex = ds.start_task_execution(TaskArn=task, Tags=[{"Key": "run", "Value": "1"}])[
        "TaskExecutionArn"]
    assert ex.startswith(task + "/execution/exec-")
    emu.wait_executions_done([ex])
    d = ds.describe_task_execution(TaskExecutionArn=ex)
    assert d["Status"] == "SUCCESS", d.get("Result")
    assert d["Result"]["PrepareStatus"] == d["Result"]["TransferStatus"] == "SUCCESS"
    assert d["Result"]["VerifyStatus"] == "SUCCESS"
    assert d["StartTime"] <= d["LaunchTime"] <= d["EndTime"]
    assert d["EstimatedFilesToTransfer"] == 2 and d["EstimatedBytesToTransfer"] == 5
    assert d["FilesTransferred"] == 2 and d["BytesWritten"] == 5 and d["FilesVerified"] == 2
    assert (dst / "bkt" / "some" / "prefix" / "a" / "f.txt").read_text() == "hello"
    assert ds.describe_task(TaskArn=task)["CurrentTaskExecutionArn"] == ex
    execs = ds.list_task_executions(TaskArn=task)["TaskExecutions"]
    assert [(e["TaskExecutionArn"], e["Status"]) for e in execs] == [(ex, "SUCCESS")]

    # cancel: an execution stuck in LAUNCHING (agent offline), then cancel again
    emu.set_agent(a1, status="OFFLINE")
    assert ds.describe_task(TaskArn=task)["Status"] == "UNAVAILABLE"
    ex2 = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    emu.wait_for(lambda st: status_of(emu, ex2)(st) == "LAUNCHING")
    ds.cancel_task_execution(TaskExecutionArn=ex2)
    emu.wait_executions_done([ex2])
    d = ds.describe_task_execution(TaskExecutionArn=ex2)
    assert d["Status"] == "ERROR" and d["Result"]["ErrorCode"] == "OperationAborted"
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        ds.cancel_task_execution(TaskExecutionArn=ex2)
    assert client_error_code(ei) == "InvalidRequestException"
    emu.set_agent(a1, status="ONLINE")

    # tags
    assert ds.list_tags_for_resource(ResourceArn=nfs)["Tags"] == [{"Key": "k", "Value": "v"}]
    assert ds.list_tags_for_resource(ResourceArn=s3)["Tags"] == [{"Key": "team", "Value": "x"}]
    assert ds.list_tags_for_resource(ResourceArn=task)["Tags"] == [
        {"Key": "owner", "Value": "me"}]
    assert ds.list_tags_for_resource(ResourceArn=ex)["Tags"] == [{"Key": "run", "Value": "1"}]
    ds.tag_resource(ResourceArn=task, Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    ds.untag_resource(ResourceArn=task, Keys=["owner", "b"])
    assert ds.list_tags_for_resource(ResourceArn=task)["Tags"] == [{"Key": "a", "Value": "1"}]
    ds.tag_resource(ResourceArn=a1, Tags=[{"Key": "site", "Value": "dc1"}])
    assert ds.list_tags_for_resource(ResourceArn=a1)["Tags"] == [{"Key": "site", "Value": "dc1"}]

    # deleting a location a task uses is refused (emulator guess), then works
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        ds.delete_location(LocationArn=nfs)
    assert client_error_code(ei) == "InvalidRequestException"
    ds.delete_task(TaskArn=task)
    ds.delete_location(LocationArn=nfs)
    ds.delete_location(LocationArn=s3)
    assert ds.list_locations()["Locations"] == [] and ds.list_tasks()["Tasks"] == []
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        ds.describe_task(TaskArn=task)
    assert client_error_code(ei) == "InvalidRequestException"
    assert "Unable to find task" in ei.value.response["Error"]["Message"]

    counts = emu.calls()["calls"]
    for op in ("ListAgents", "DescribeAgent", "CreateLocationNfs", "DescribeLocationNfs",
               "UpdateLocationNfs", "CreateLocationS3", "DescribeLocationS3", "ListLocations",
               "DeleteLocation", "CreateTask", "DescribeTask", "UpdateTask", "ListTasks",
               "DeleteTask", "StartTaskExecution", "DescribeTaskExecution",
               "ListTaskExecutions", "CancelTaskExecution", "TagResource", "UntagResource",
               "ListTagsForResource"):
        assert counts.get(op, 0) >= 1, op


def test_paginators(emu, ds):
    agents = emu.agent_arns()
    pages = list(ds.get_paginator("list_agents").paginate(PaginationConfig={"PageSize": 1}))
    assert len(pages) == 3
    assert [a["AgentArn"] for p in pages for a in p["Agents"]] == agents

    s3 = s3_location(ds)
    tasks = []
    for i in range(5):
        nfs = nfs_location(ds, agents[i % 3])
        tasks.append(ds.create_task(SourceLocationArn=nfs, DestinationLocationArn=s3)["TaskArn"])
    pages = list(ds.get_paginator("list_locations").paginate(PaginationConfig={"PageSize": 2}))
    arns = [loc["LocationArn"] for p in pages for loc in p["Locations"]]
    assert len(pages) == 3 and len(arns) == 6 and len(set(arns)) == 6
    pages = list(ds.get_paginator("list_tasks").paginate(PaginationConfig={"PageSize": 2}))
    assert sorted(t["TaskArn"] for p in pages for t in p["Tasks"]) == sorted(tasks)
    assert len(pages) == 3
    # ListTasks LocationId filter matches the destination of every task
    filt = [{"Name": "LocationId", "Values": [s3], "Operator": "Equals"}]
    got = [t["TaskArn"] for p in ds.get_paginator("list_tasks").paginate(
        Filters=filt, PaginationConfig={"PageSize": 2}) for t in p["Tasks"]]
    assert sorted(got) == sorted(tasks)

    execs = [ds.start_task_execution(TaskArn=tasks[0])["TaskExecutionArn"] for _ in range(3)]
    execs += [ds.start_task_execution(TaskArn=tasks[1])["TaskExecutionArn"]]
    emu.wait_executions_done(execs)
    pages = list(ds.get_paginator("list_task_executions").paginate(
        TaskArn=tasks[0], PaginationConfig={"PageSize": 2}))
    assert [e["TaskExecutionArn"] for p in pages for e in p["TaskExecutions"]] == execs[:3]
    allx = [e["TaskExecutionArn"] for p in ds.get_paginator("list_task_executions").paginate(
        PaginationConfig={"PageSize": 1}) for e in p["TaskExecutions"]]
    assert allx == execs
    # each execution of a task waited for the previous one
    st = emu.state()
    runs = [emu.execution(st, a) for a in execs[:3]]
    for prev, nxt in zip(runs, runs[1:], strict=False):
        assert nxt["launch_time"] >= prev["end_time"]


# ------------------------------------------------------------- bad requests
def test_bad_requests(emu, ds):
    a1 = emu.agent_arns()[0]
    nfs, s3 = nfs_location(ds, a1), s3_location(ds)
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        ds.create_task(SourceLocationArn=nfs, DestinationLocationArn=s3,
                       Includes=rules("*.txt"))
    assert client_error_code(ei) == "InvalidRequestException"
    task = ds.create_task(SourceLocationArn=nfs, DestinationLocationArn=s3,
                          Includes=rules("/ok*"))["TaskArn"]
    for call in (lambda: ds.update_task(TaskArn=task, Includes=rules("/a|/b/*/c")),
                 lambda: ds.start_task_execution(TaskArn=task, Includes=rules("/x*y"))):
        with pytest.raises(botocore.exceptions.ClientError) as ei:
            call()
        assert client_error_code(ei) == "InvalidRequestException"
    # exclude patterns may hold * anywhere
    ds.update_task(TaskArn=task, Excludes=rules("*/tmp|*.temp|/a/*/b"))
    # remove incompatible with ALL
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        ds.update_task(TaskArn=task, Options={"PreserveDeletedFiles": "REMOVE",
                                              "TransferMode": "ALL"})
    assert client_error_code(ei) == "InvalidRequestException"

    # unknown ARNs
    fake_task = task[:-17] + "0" * 17
    for call in (lambda: ds.describe_task(TaskArn=fake_task),
                 lambda: ds.start_task_execution(TaskArn=fake_task),
                 lambda: ds.describe_location_nfs(LocationArn=nfs[:-17] + "f" * 17),
                 lambda: ds.describe_agent(AgentArn=a1[:-17] + "a" * 17),
                 lambda: ds.describe_task_execution(
                     TaskExecutionArn=task + "/execution/exec-" + "1" * 17),
                 lambda: ds.list_tags_for_resource(ResourceArn=fake_task)):
        with pytest.raises(botocore.exceptions.ClientError) as ei:
            call()
        assert client_error_code(ei) == "InvalidRequestException"
        assert "Unable to find" in ei.value.response["Error"]["Message"]

    # client-side validation is on in our client
    with pytest.raises(botocore.exceptions.ParamValidationError):
        ds.create_location_nfs(Subdirectory="/vol1", ServerHostname=HOST)

    def raw(op, body):
        req = urllib.request.Request(
            emu.url + "/", data=json.dumps(body).encode(), method="POST",
            headers={"X-Amz-Target": f"FmrsService.{op}",
                     "Content-Type": "application/x-amz-json-1.1"})
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    code, body = raw("CreateLocationNfs", {"Subdirectory": "/vol1/caf\u00e9&x",
                                           "ServerHostname": HOST,
                                           "OnPremConfig": {"AgentArns": [a1]}})
    assert code == 400 and body["__type"] == "InvalidRequestException"
    assert "Subdirectory" in body["message"] and "pattern" in body["message"]
    code, body = raw("CreateLocationNfs", {"ServerHostname": HOST})
    assert code == 400 and body["__type"] == "InvalidRequestException"
    assert "Missing required parameter" in body["message"]
    code, body = raw("CreateTask", {"SourceLocationArn": nfs, "DestinationLocationArn": s3,
                                    "Options": {"VerifyMode": "SOMETIMES"}})
    assert code == 400 and body["__type"] == "InvalidRequestException"
    code, body = raw("ListTasks", {"MaxResults": 101})
    assert code == 400 and body["__type"] == "InvalidRequestException"
    code, body = raw("FlyToTheMoon", {})
    assert code == 400 and body["__type"] == "UnknownOperationException"
    code, body = raw("ListAgents", {})
    assert code == 200 and len(body["Agents"]) == 3


# --------------------------------------------------------------- transfers
def build_tree(src):
    write(src / "top file.txt", "top", 0o640)
    write(src / "skip.tmp", "tmp")
    write(src / "docs" / "a.txt", "A" * 1000, 0o600)
    write(src / "docs" / "b.tmp", "tmp")
    write(src / "docs" / "sub" / "deep" / "c.bin", os.urandom(70_000), 0o755)
    write(src / "docs" / "skip" / "never.txt", "no")
    (src / "docs" / "empty").mkdir()
    os.chmod(src / "docs" / "empty", 0o750)
    write(src / "docs" / "r\u00e9sum\u00e9 \u65e5\u672c.txt", "unicode")
    os.symlink("a.txt", src / "docs" / "link-to-a")
    os.symlink("../nowhere/dangling", src / "docs" / "dangling")
    write(src / "docs" / ".snapshot" / "old.txt", "snap")
    write(src / "media" / "photos" / "p 1.jpg", "jpg")
    write(src / "media" / "videos" / "v.mp4", "mp4")
    write(src / "media" / "loose.txt", "loose")
    write(src / "other" / "o.txt", "o")
    write(src / ".zfs" / "z.txt", "z")


def test_real_transfer_with_filters(emu, ds, dirs):
    src, dst = dirs
    build_tree(src)
    a1 = emu.agent_arns()[0]
    task = ds.create_task(SourceLocationArn=nfs_location(ds, a1),
                          DestinationLocationArn=s3_location(ds, "bkt", "/out"),
                          Includes=rules("/docs|/media/photos/|/top file.txt|/.zfs"),
                          Excludes=rules("*.tmp|*/skip"))["TaskArn"]
    d = run(emu, ds, task)
    assert d["Status"] == "SUCCESS", d["Result"]
    out = dst / "bkt" / "out"
    expected = {
        "/top file.txt": "file",
        "/docs": "dir",
        "/docs/a.txt": "file",
        "/docs/sub": "dir",
        "/docs/sub/deep": "dir",
        "/docs/sub/deep/c.bin": "file",
        "/docs/empty": "dir",
        "/docs/r\u00e9sum\u00e9 \u65e5\u672c.txt": "file",
        "/docs/link-to-a": "link:a.txt",
        "/docs/dangling": "link:../nowhere/dangling",
        "/media": "dir",  # ancestor of an included dir: created, not counted
        "/media/photos": "dir",
        "/media/photos/p 1.jpg": "file",
    }
    assert tree(out) == expected
    for rel, kind in expected.items():
        if kind == "file":
            s, t = src / rel.lstrip("/"), out / rel.lstrip("/")
            assert t.read_bytes() == s.read_bytes(), rel
            ss, ts = os.stat(s), os.stat(t)
            assert stat.S_IMODE(ts.st_mode) == stat.S_IMODE(ss.st_mode), rel
            assert ts.st_mtime_ns == ss.st_mtime_ns, rel
    assert stat.S_IMODE(os.stat(out / "docs" / "empty").st_mode) == 0o750
    counted = [k for k in expected if k != "/media"]
    assert d["EstimatedFilesToTransfer"] == len(counted)
    size = sum(os.path.getsize(src / k.lstrip("/")) for k, v in expected.items() if v == "file")
    assert d["EstimatedBytesToTransfer"] == size == d["BytesWritten"]
    assert d["FilesTransferred"] == len(counted)
    writes = emu.state()["writes"]
    assert str(out / "media") not in writes
    assert writes[str(out / "docs" / "link-to-a")] == 1
    assert not [p for p in writes if ".emu-tmp-" in p]


def test_filter_semantics_end_to_end(emu, ds, dirs):
    src, dst = dirs
    for rel in ("dir/x", "dir2/y", "dirt", "keep/a.txt", "keep/tmp/t.txt", "keep/b.log", "d/e"):
        write(src / rel, rel)
    a1 = emu.agent_arns()[0]
    nfs, s3 = nfs_location(ds, a1), s3_location(ds, "b", "")

    def selected(includes=None, excludes=None):
        kw = {}
        if includes:
            kw["Includes"] = rules(includes)
        if excludes:
            kw["Excludes"] = rules(excludes)
        t = ds.create_task(SourceLocationArn=nfs, DestinationLocationArn=s3, **kw)["TaskArn"]
        d = run(emu, ds, t, OverrideOptions={"TransferMode": "ALL"})
        assert d["Status"] == "SUCCESS"
        st = emu.state()
        ex = emu.execution(st, d["TaskExecutionArn"])
        out = ex["dest_dir"]
        files = {k for k, v in tree(out).items() if v == "file"}
        shutil.rmtree(out)
        return files

    assert selected("/dir") == {"/dir/x"}
    assert selected("/dir/") == {"/dir/x"}
    assert selected("/dir*") == {"/dir/x", "/dir2/y", "/dirt"}
    assert selected("/keep", "*/tmp|*.log") == {"/keep/a.txt"}
    assert selected("/keep/tmp", "/keep") == set()  # exclude wins over include
    assert selected(None, "/dir") == {"/dir2/y", "/dirt", "/keep/a.txt", "/keep/tmp/t.txt",
                                      "/keep/b.log", "/d/e"}
    assert selected("/Dir") == set()  # case-sensitive
    assert selected("/") == selected("/*") == {"/dir/x", "/dir2/y", "/dirt", "/keep/a.txt",
                                               "/keep/tmp/t.txt", "/keep/b.log", "/d/e"}


def test_filter_unit_rules():
    fs = FilterSet.from_rules(rules("/dir|/a/b/|/pre*"), rules("*/tmp|*.bak|/x/*/y"))
    assert fs.selects("/dir") and fs.selects("/dir/z") and not fs.selects("/dir2")
    assert fs.selects("/a/b/c") and not fs.selects("/a/bc") and not fs.selects("/a")
    assert fs.traverse_only("/a") and not fs.traverse_only("/q")
    assert fs.selects("/pre") and fs.selects("/prefix/q") and fs.traverse_only("/") is True
    assert not fs.selects("/dir/tmp") and not fs.selects("/dir/tmp/deeper")
    assert not fs.selects("/dir/f.bak") and not fs.selects("/dir/f.bak/child")
    assert not FilterSet.from_rules(None, rules("/x/*/y")).selects("/x/1/2/y/z")
    assert FilterSet.from_rules(None, rules("/x/*/y")).selects("/x/y")
    none = FilterSet.from_rules(None, None)
    assert none.selects("/anything") and not none.selects("/a/b.snapshot")
    assert not none.selects("/.zfs/x") and none.selects("/a/.zfs")
    assert not none.selects("/.aws-datasync") and not none.selects("/.awssync/q")
    with pytest.raises(FilterError):
        FilterSet.from_rules(rules("/ok|*.txt"), None)
    with pytest.raises(FilterError):
        FilterSet.from_rules(rules("/a*/b"), None)


def test_filter_readings_answer_the_open_questions_differently():
    from emulator.filters import Reading

    def fs(includes, excludes=None, **reading):
        return FilterSet.from_rules(rules(includes), rules(excludes) if excludes else None, Reading(**reading))

    assert not fs("/dir").selects("/dir2") and fs("/dir", match="prefix").selects("/dir2")
    assert fs("/dir/", match="prefix").selects("/dir/x") and not fs("/dir/", match="prefix").selects("/dir2/x")
    assert fs("/d/ab*", star="stops").selects("/d/abc/x") and fs("/d/ab*").selects("/d/abc/x")
    assert not fs("/d", "/d/x*/y").selects("/d/x1/z/y") and fs("/d", "/d/x*/y", star="stops").selects("/d/x1/z/y")
    assert not fs("/keep", "/keep/tmp").selects("/keep/tmp/t")
    assert fs("/keep", "/keep/tmp", precedence="include").selects("/keep/tmp/t")
    assert fs("/dir", match="prefix").traverse_only("/") and not fs("/dir/", match="prefix").traverse_only("/e")


# ---------------------------------------------------------------- queueing
def test_one_execution_at_a_time_per_agent(emu, ds, dirs):
    src, _ = dirs
    write(src / "big" / "f.bin", os.urandom(300_000))
    write(src / "small" / "s.txt", "s")
    a1 = emu.agent_arns()[0]
    emu.set_agent(a1, bytes_per_second=2_000)  # the first run holds the agent until we lift the limit
    s3 = s3_location(ds)
    t1 = ds.create_task(SourceLocationArn=nfs_location(ds, a1, "/vol1/big"),
                        DestinationLocationArn=s3)["TaskArn"]
    t2 = ds.create_task(SourceLocationArn=nfs_location(ds, a1, "/vol1/small"),
                        DestinationLocationArn=s3)["TaskArn"]
    e1 = ds.start_task_execution(TaskArn=t1)["TaskExecutionArn"]
    emu.wait_for(lambda st: status_of(emu, e1)(st) == "TRANSFERRING")
    e2 = ds.start_task_execution(TaskArn=t2)["TaskExecutionArn"]
    e1b = ds.start_task_execution(TaskArn=t1)["TaskExecutionArn"]  # same task again
    d2 = ds.describe_task_execution(TaskExecutionArn=e2)
    assert d2["Status"] == "QUEUED" and "LaunchTime" not in d2
    assert ds.describe_task(TaskArn=t2)["Status"] == "QUEUED"
    assert ds.describe_task(TaskArn=t1)["Status"] == "RUNNING"
    assert ds.describe_task_execution(TaskExecutionArn=e1)["Status"] == "TRANSFERRING"
    emu.set_agent(a1, bytes_per_second=0)
    done = emu.wait_executions_done([e1, e2, e1b], timeout=20)
    assert all(x["status"] == "SUCCESS" for x in done.values())
    assert done[e2]["launch_time"] >= done[e1]["end_time"]
    assert done[e1b]["launch_time"] >= done[e2]["end_time"]  # FIFO on the agent
    assert {x["agent"] for x in done.values()} == {a1}


def test_agent_offline_mid_transfer(emu, ds, dirs):
    src, dst = dirs
    write(src / "big" / "huge.bin", os.urandom(400_000))
    write(src / "small" / "s.txt", "s")
    write(src / "other" / "o.bin", os.urandom(60_000))
    a1, a2, _ = emu.agent_arns()
    emu.config(offline_error_delay=0.3)
    emu.set_agent(a1, bytes_per_second=20_000)  # still copying when the agent goes offline
    s3 = s3_location(ds, "b", "/x")
    t_big = ds.create_task(SourceLocationArn=nfs_location(ds, a1, "/vol1/big"),
                           DestinationLocationArn=s3)["TaskArn"]
    t_small = ds.create_task(SourceLocationArn=nfs_location(ds, a1, "/vol1/small"),
                             DestinationLocationArn=s3)["TaskArn"]
    t_other = ds.create_task(SourceLocationArn=nfs_location(ds, a2, "/vol1/other"),
                             DestinationLocationArn=s3)["TaskArn"]
    big = ds.start_task_execution(TaskArn=t_big)["TaskExecutionArn"]
    emu.wait_for(lambda st: (emu.execution(st, big)["status"] == "TRANSFERRING"
                             and emu.execution(st, big)["counters"]["BytesTransferred"] > 0))
    small = ds.start_task_execution(TaskArn=t_small)["TaskExecutionArn"]
    assert ds.describe_task_execution(TaskExecutionArn=small)["Status"] == "QUEUED"
    emu.set_agent(a1, status="OFFLINE")
    emu.wait_executions_done([big], timeout=10)
    d = ds.describe_task_execution(TaskExecutionArn=big)
    assert d["Status"] == "ERROR" and d["Result"]["ErrorCode"] == "AgentOffline"
    assert d["Result"]["TransferStatus"] == "ERROR" and d["Result"]["ErrorDetail"]
    assert 0 < d["BytesTransferred"] < 400_000  # interrupted mid-copy
    assert not (dst / "b" / "x" / "huge.bin").exists()  # never half-written
    assert not [n for n in os.listdir(dst / "b" / "x") if ".emu-tmp-" in n]
    assert ds.describe_task(TaskArn=t_small)["Status"] == "UNAVAILABLE"
    # the queued execution launches but is stuck in LAUNCHING while the agent is off
    emu.wait_for(lambda st: emu.execution(st, small)["status"] == "LAUNCHING")
    # let time pass on a condition: an execution on another agent that outlasts
    # offline_error_delay runs to completion meanwhile
    emu.set_agent(a2, bytes_per_second=100_000)  # ~0.6 s of copying
    other = ds.start_task_execution(TaskArn=t_other)["TaskExecutionArn"]
    assert emu.wait_executions_done([other])[other]["status"] == "SUCCESS"
    assert ds.describe_task_execution(TaskExecutionArn=small)["Status"] == "LAUNCHING"
    emu.set_agent(a1, status="ONLINE")
    emu.wait_executions_done([small])
    d = ds.describe_task_execution(TaskExecutionArn=small)
    assert d["Status"] == "SUCCESS" and d["FilesTransferred"] == 1
    assert (dst / "b" / "x" / "s.txt").read_text() == "s"
    # after recovery the failed task can be re-run
    emu.set_agent(a1, bytes_per_second=0)
    assert run(emu, ds, t_big)["Status"] == "SUCCESS"
    assert (dst / "b" / "x" / "huge.bin").read_bytes() == (src / "big" / "huge.bin").read_bytes()


def test_start_on_offline_agent_stays_launching_then_runs(emu, ds, dirs):
    src, dst = dirs
    write(src / "f.txt", "f")
    a3 = emu.agent_arns()[2]
    emu.set_agent(a3, status="OFFLINE")
    task = ds.create_task(SourceLocationArn=nfs_location(ds, a3),
                          DestinationLocationArn=s3_location(ds))["TaskArn"]
    ex = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    emu.wait_for(lambda st: emu.execution(st, ex)["status"] == "LAUNCHING")
    assert ds.list_agents()["Agents"][2]["Status"] == "OFFLINE"
    emu.set_agent(a3, status="ONLINE")
    assert emu.wait_executions_done([ex])[ex]["status"] == "SUCCESS"


# -------------------------------------------------------------- throttling
def test_throttling_with_standard_retries(emu, ds):
    emu.throttle(0.3, seed=1)
    emu.reset_calls()
    a1 = emu.agent_arns()[0]
    for _ in range(6):
        assert len(ds.list_agents()["Agents"]) == 3
        assert ds.describe_agent(AgentArn=a1)["Status"] == "ONLINE"
    loc = nfs_location(ds, a1)
    assert ds.describe_location_nfs(LocationArn=loc)["LocationArn"] == loc
    calls = emu.calls()
    assert calls["total_throttled"] > 0
    assert calls["total"] == 14 + calls["total_throttled"]  # 14 successful calls
    # a client without retries sees the ThrottlingException
    emu.throttle(1.0)
    raw = emu.client(retries={"mode": "standard", "max_attempts": 1})
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        raw.list_agents()
    assert client_error_code(ei) == "ThrottlingException"
    emu.throttle(0.0)
    assert ds.list_agents()["Agents"]


# ------------------------------------------------- per-execution overrides
def test_per_execution_filters_override(emu, ds, dirs):
    src, dst = dirs
    for rel in ("a/1.txt", "a/1.tmp", "b/2.txt", "b/2.tmp", "b/2.log"):
        write(src / rel, rel)
    a1 = emu.agent_arns()[0]
    task = ds.create_task(SourceLocationArn=nfs_location(ds, a1),
                          DestinationLocationArn=s3_location(ds, "bk", "/o"),
                          Includes=rules("/a"), Excludes=rules("*.tmp"))["TaskArn"]
    d = run(emu, ds, task, Includes=rules("/b"), OverrideOptions={"VerifyMode": "NONE"})
    assert d["Status"] == "SUCCESS"
    assert d["Includes"] == rules("/b") and d["Excludes"] == rules("*.tmp")
    assert d["Options"]["VerifyMode"] == "NONE" and d["FilesVerified"] == 0
    assert d["Options"]["TransferMode"] == "CHANGED"
    out = dst / "bk" / "o"
    assert {k for k, v in tree(out).items() if v == "file"} == {"/b/2.txt", "/b/2.log"}
    d = run(emu, ds, task, Excludes=rules("*.log"))  # task includes, replaced excludes
    assert d["Includes"] == rules("/a") and d["Excludes"] == rules("*.log")
    assert {k for k, v in tree(out).items() if v == "file"} == {
        "/b/2.txt", "/b/2.log", "/a/1.txt", "/a/1.tmp"}
    t = ds.describe_task(TaskArn=task)  # the task's own filters are unchanged
    assert t["Includes"] == rules("/a") and t["Excludes"] == rules("*.tmp")


def test_writes_counter_changed_vs_all(emu, ds, dirs):
    src, dst = dirs
    write(src / "d" / "f1.txt", "1")
    write(src / "d" / "f2.txt", "22")
    os.symlink("f1.txt", src / "d" / "l")
    a1 = emu.agent_arns()[0]
    nfs = nfs_location(ds, a1)
    t_changed = ds.create_task(SourceLocationArn=nfs,
                               DestinationLocationArn=s3_location(ds, "c", "/p"))["TaskArn"]
    t_all = ds.create_task(SourceLocationArn=nfs,
                           DestinationLocationArn=s3_location(ds, "a", "/p"),
                           Options={"TransferMode": "ALL"})["TaskArn"]
    first = run(emu, ds, t_changed)
    second = run(emu, ds, t_changed)
    assert first["FilesTransferred"] == 4 and first["FilesSkipped"] == 0
    assert first["EstimatedFilesToTransfer"] == 4 and first["EstimatedBytesToTransfer"] == 3
    assert second["FilesTransferred"] == 0 and second["FilesSkipped"] == 4
    assert second["EstimatedFilesToTransfer"] == 0 and second["EstimatedBytesToTransfer"] == 0  # the difference
    assert second["BytesWritten"] == 0
    run(emu, ds, t_all)
    again = run(emu, ds, t_all)
    assert again["EstimatedFilesToTransfer"] == 4  # ALL: everything at the source
    writes = emu.state()["writes"]
    for name in ("f1.txt", "f2.txt", "l"):
        assert writes[str(dst / "c" / "p" / "d" / name)] == 1
        assert writes[str(dst / "a" / "p" / "d" / name)] == 2
    assert writes[str(dst / "c" / "p" / "d")] == 1
    # a changed source file is written again in CHANGED mode
    write(src / "d" / "f2.txt", "333")
    third = run(emu, ds, t_changed)
    assert third["FilesTransferred"] == third["EstimatedFilesToTransfer"] == 1
    assert third["EstimatedBytesToTransfer"] == 3
    assert emu.state()["writes"][str(dst / "c" / "p" / "d" / "f2.txt")] == 2


def test_a_new_task_is_creating_then_available_and_cannot_start_before(emu, ds):
    emu.config(task_create_delay=30)
    a1 = emu.agent_arns()[0]
    task = ds.create_task(SourceLocationArn=nfs_location(ds, a1), DestinationLocationArn=s3_location(ds))["TaskArn"]
    assert ds.describe_task(TaskArn=task)["Status"] == "CREATING"  # for 30 s
    assert ds.list_tasks()["Tasks"][0]["Status"] == "CREATING"
    with pytest.raises(botocore.exceptions.ClientError, match="CREATING"):
        ds.start_task_execution(TaskArn=task)
    emu.config(task_create_delay=0.05)
    fast = ds.create_task(SourceLocationArn=nfs_location(ds, a1), DestinationLocationArn=s3_location(ds))["TaskArn"]
    assert emu.wait_task_created(fast)["status"] == "AVAILABLE"
    d = ds.describe_task(TaskArn=fast)
    assert d["Status"] == "AVAILABLE" and "ErrorCode" not in d
    assert run(emu, ds, fast)["Status"] == "SUCCESS"


def test_a_mount_error_shows_at_task_creation(emu, ds):
    a1 = emu.agent_arns()[0]
    nfs = ds.create_location_nfs(Subdirectory="/vol9", ServerHostname=HOST,
                                 OnPremConfig={"AgentArns": [a1]})["LocationArn"]
    task = ds.create_task(SourceLocationArn=nfs, DestinationLocationArn=s3_location(ds))["TaskArn"]
    assert emu.wait_task_created(task)["status"] == "UNAVAILABLE"
    d = ds.describe_task(TaskArn=task)
    assert d["Status"] == "UNAVAILABLE" and d["ErrorCode"] == "NfsMountFailed" and "vol9" in d["ErrorDetail"]
    with pytest.raises(botocore.exceptions.ClientError, match="NfsMountFailed"):
        ds.start_task_execution(TaskArn=task)


def test_an_export_gone_after_the_task_was_created_fails_the_execution(emu, ds, dirs):
    src, _ = dirs
    (src / "sub").mkdir()
    a1 = emu.agent_arns()[0]
    task = ds.create_task(SourceLocationArn=nfs_location(ds, a1, "/vol1/sub"),
                          DestinationLocationArn=s3_location(ds))["TaskArn"]
    assert emu.wait_task_created(task)["status"] == "AVAILABLE"
    (src / "sub").rmdir()
    d = run(emu, ds, task)
    assert d["Status"] == "ERROR" and d["Result"]["ErrorCode"] == "NfsMountFailed"


def test_estimates_and_filters_as_the_api_may_return_them(emu, ds, dirs):
    src, _ = dirs
    write(src / "a" / "f.txt", "abc")
    a1 = emu.agent_arns()[0]
    task = ds.create_task(SourceLocationArn=nfs_location(ds, a1), DestinationLocationArn=s3_location(ds),
                          Includes=rules("/a"))["TaskArn"]
    assert run(emu, ds, task)["Includes"] == rules("/a")
    emu.config(echo_execution_filters=False)
    d = run(emu, ds, task)
    assert "Includes" not in d and d["EstimatedFilesToTransfer"] == 0 and d["FilesSkipped"] == 2


def test_an_offline_agent_reports_its_last_contact(emu, ds):
    a1 = emu.agent_arns()[0]
    emu.set_agent(a1, status="OFFLINE", last_contact_ago=900)
    last = ds.describe_agent(AgentArn=a1)["LastConnectionTime"].timestamp()
    assert 890 < time.time() - last < 960
    with pytest.raises(Exception, match="OFFLINE"):
        emu.set_agent(emu.agent_arns()[1], last_contact_ago=5)


def test_enhanced_mode(dirs):
    """A task uses only agents of its own mode; Enhanced mode takes no bandwidth limit, no
    point-in-time verify and no log group but /aws/datasync, has no item quota, and counts
    directories as folders."""
    src, dst = dirs
    for rel in ("d/1.txt", "d/2.txt", "d/e/3.txt"):
        write(src / rel, rel)
    with Emulator().start({f"{HOST}:/vol1": str(src)}, str(dst), agents=1, enhanced_agents=1,
                          phase_delay=0.02, task_create_delay=0) as emu:
        ds = emu.client()
        basic, enhanced = emu.agent_arns()
        assert [a["mode"] for a in emu.state()["agents"]] == ["BASIC", "ENHANCED"]
        assert "mode" not in str(ds.list_agents()) and "Mode" not in str(ds.describe_agent(AgentArn=enhanced))
        s3 = s3_location(ds)
        on_basic, on_enhanced = nfs_location(ds, basic), nfs_location(ds, enhanced)
        refused = [dict(SourceLocationArn=on_basic, TaskMode="ENHANCED"),
                   dict(SourceLocationArn=on_enhanced),
                   dict(SourceLocationArn=on_enhanced, TaskMode="ENHANCED", Options={"BytesPerSecond": 1000}),
                   dict(SourceLocationArn=on_enhanced, TaskMode="ENHANCED",
                        Options={"VerifyMode": "POINT_IN_TIME_CONSISTENT"}),
                   dict(SourceLocationArn=on_enhanced, TaskMode="ENHANCED",
                        CloudWatchLogGroupArn="arn:aws:logs:us-east-1:111122223333:log-group:/mine")]
        for kw in refused:
            with pytest.raises(botocore.exceptions.ClientError) as ei:
                ds.create_task(DestinationLocationArn=s3, **kw)
            assert client_error_code(ei) == "InvalidRequestException", kw
        task = ds.create_task(SourceLocationArn=on_enhanced, DestinationLocationArn=s3, TaskMode="ENHANCED",
                              CloudWatchLogGroupArn="arn:aws:logs:us-east-1:111122223333:log-group:/aws/datasync:*")["TaskArn"]
        assert ds.describe_task(TaskArn=task)["TaskMode"] == "ENHANCED"
        assert ds.describe_task(TaskArn=task)["Options"]["VerifyMode"] == "ONLY_FILES_TRANSFERRED"
        with pytest.raises(botocore.exceptions.ClientError, match="BytesPerSecond"):
            ds.update_task(TaskArn=task, Options={"BytesPerSecond": 1000})
        with pytest.raises(botocore.exceptions.ClientError, match="BytesPerSecond"):
            ds.start_task_execution(TaskArn=task, OverrideOptions={"BytesPerSecond": 1000})
        emu.config(item_quota=4)  # the share holds 5 items: 3 files and 2 directories
        basic_task = ds.create_task(SourceLocationArn=on_basic, DestinationLocationArn=s3)["TaskArn"]
        d = run(emu, ds, basic_task)
        assert d["Status"] == "ERROR" and d["Result"]["ErrorCode"] == "ItemQuotaExceeded"
        d = run(emu, ds, task)
        assert d["Status"] == "SUCCESS" and d["TaskMode"] == "ENHANCED"
        assert emu.state()["executions"][-1]["agent"] == enhanced
        assert d["EstimatedFilesToTransfer"] == d["FilesTransferred"] == 3
        assert d["EstimatedFoldersToTransfer"] == d["FoldersTransferred"] == 2
        assert ds.list_task_executions(TaskArn=task)["TaskExecutions"][0]["TaskMode"] == "ENHANCED"


# ------------------------------------------------------------------ process
def test_sigterm_exits_zero_with_work_in_flight(dirs):
    src, dst = dirs
    write(src / "f.txt", "f")
    emu = Emulator().start({f"{HOST}:/vol1": str(src)}, str(dst), agents=1, task_create_delay=0)
    try:
        ds = emu.client()
        a1 = emu.agent_arns()[0]
        emu.set_agent(a1, status="OFFLINE")
        task = ds.create_task(SourceLocationArn=nfs_location(ds, a1),
                              DestinationLocationArn=s3_location(ds))["TaskArn"]
        ex = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        emu.wait_for(lambda st: emu.execution(st, ex)["status"] == "LAUNCHING")
    finally:
        t0 = time.monotonic()
        code = emu.stop(timeout=10)
    assert code == 0, emu.stderr()
    assert time.monotonic() - t0 < 5
    assert emu.proc.poll() == 0


def test_never_writes_through_a_copied_symlink(emu, ds, dirs, tmp_path):
    src, dst = dirs
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), src / "x")
    a1 = emu.agent_arns()[0]
    task = ds.create_task(SourceLocationArn=nfs_location(ds, a1),
                          DestinationLocationArn=s3_location(ds, "b", ""))["TaskArn"]
    assert run(emu, ds, task)["Status"] == "SUCCESS"
    assert os.readlink(dst / "b" / "x") == str(outside)
    os.unlink(src / "x")
    write(src / "x" / "evil.txt", "evil")
    d = run(emu, ds, task)
    assert d["Status"] == "ERROR" and d["Result"]["ErrorCode"] == "TransferFailed"
    assert os.listdir(outside) == []


def test_short_outage_mid_transfer_resumes(emu, ds, dirs):
    src, dst = dirs
    write(src / "f.bin", os.urandom(150_000))
    a1 = emu.agent_arns()[0]
    emu.config(offline_error_delay=30)
    emu.set_agent(a1, bytes_per_second=200_000)
    task = ds.create_task(SourceLocationArn=nfs_location(ds, a1),
                          DestinationLocationArn=s3_location(ds, "r", ""))["TaskArn"]
    ex = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    emu.wait_for(lambda st: emu.execution(st, ex)["counters"]["BytesTransferred"] > 0)
    emu.set_agent(a1, status="OFFLINE")
    assert ds.describe_task(TaskArn=task)["Status"] == "UNAVAILABLE"
    emu.set_agent(a1, status="ONLINE")
    assert emu.wait_executions_done([ex])[ex]["status"] == "SUCCESS"
    assert (dst / "r" / "f.bin").read_bytes() == (src / "f.bin").read_bytes()
