"""Lost answers: the emulator carries a call out (or not) and then answers HTTP 500 or drops the
connection, as ``POST /_emulator/faults`` says. botocore retries both on its own, so these tests
show what a caller of a non-idempotent call must guard against: the call took effect although
the caller saw an error, and a retry carries it out again.

As in test_emulator.py: real boto3 clients with parameter validation on, no sleeps.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request

import botocore.exceptions
import pytest

from calls import nfs_location, s3_location
from emulator.harness import EmulatorError

ONE_ATTEMPT = {"mode": "standard", "total_max_attempts": 1}
BOTOCORE_DEFAULT_RETRIES = {"mode": "standard", "max_attempts": 3}
"""botocore's standard mode: three attempts in all, 5xx answers and connection errors retried."""


@pytest.fixture
def ds(emu):
    """One attempt per call: the caller sees the lost answer itself."""
    return emu.client(retries=ONE_ATTEMPT)


@pytest.fixture
def task(emu, ds):
    return ds.create_task(SourceLocationArn=nfs_location(ds, emu.agent_arns()[0]),
                          DestinationLocationArn=s3_location(ds))["TaskArn"]


def executions(ds, task) -> list[str]:
    return [e["TaskExecutionArn"] for e in ds.list_task_executions(TaskArn=task)["TaskExecutions"]]


def post_faults(emu, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(emu.url + "/_emulator/faults", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_500_after_the_call_hides_an_execution_that_exists(emu, ds, task):
    assert emu.fault("StartTaskExecution") == {"StartTaskExecution": {"fault": "500", "times": 1, "when": "after"}}
    emu.reset_calls()
    with pytest.raises(ds.exceptions.InternalException) as ei:
        ds.start_task_execution(TaskArn=task)
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert "was carried out" in ei.value.response["Error"]["Message"]
    assert len(executions(ds, task)) == 1
    assert emu.faults() == {}
    calls = emu.calls()
    assert (calls["calls"]["StartTaskExecution"], calls["faulted"], calls["total_faulted"]) \
        == (1, {"StartTaskExecution": 1}, 1)
    ds.start_task_execution(TaskArn=task)  # times=1: the next call is answered
    assert len(executions(ds, task)) == 2
    emu.reset_calls()
    assert emu.calls()["faulted"] == {}


def test_botocore_retries_a_lost_answer_and_starts_the_execution_again(emu, task):
    retrying = emu.client(retries=BOTOCORE_DEFAULT_RETRIES)
    emu.fault("StartTaskExecution", times=2)
    emu.reset_calls()
    answered = retrying.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    assert answered in executions(retrying, task)
    assert len(executions(retrying, task)) == 3  # one call of ours, three executions
    assert emu.calls()["calls"]["StartTaskExecution"] == 3
    assert emu.calls()["faulted"] == {"StartTaskExecution": 2}


def test_a_dropped_connection_after_the_call_is_a_connection_error_and_the_effect_happened(emu, ds):
    emu.fault("CreateTask", fault="drop")
    nfs, s3 = nfs_location(ds, emu.agent_arns()[0]), s3_location(ds)
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        ds.create_task(SourceLocationArn=nfs, DestinationLocationArn=s3)
    assert len(ds.list_tasks()["Tasks"]) == 1  # the same client goes on working
    # botocore retries a dropped connection too: one CreateLocationNfs, two locations
    emu.fault("CreateLocationNfs", fault="drop")
    nfs_location(emu.client(retries=BOTOCORE_DEFAULT_RETRIES), emu.agent_arns()[1])
    assert len([loc for loc in ds.list_locations()["Locations"] if loc["LocationUri"].startswith("nfs://")]) == 3


def test_drop_closes_the_connection_without_an_answer_and_others_are_served(emu):
    host, port = emu.url.removeprefix("http://").split(":")
    list_agents = (f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\nX-Amz-Target: FmrsService.ListAgents\r\n"
                   "Content-Type: application/x-amz-json-1.1\r\nContent-Length: 2\r\n\r\n{}").encode()
    kept = http.client.HTTPConnection(host, int(port), timeout=30)
    kept.request("POST", "/", body=b"{}", headers={"X-Amz-Target": "FmrsService.ListAgents"})
    assert kept.getresponse().read() and kept.sock is not None
    kept_socket = kept.sock

    emu.fault("ListAgents", fault="drop")
    with socket.create_connection((host, int(port)), timeout=30) as dropped:
        dropped.sendall(list_agents)
        assert dropped.recv(65536) == b""  # end of stream, not one byte of an answer

    kept.request("POST", "/", body=b"{}", headers={"X-Amz-Target": "FmrsService.ListAgents"})
    resp = kept.getresponse()
    assert resp.status == 200 and len(json.loads(resp.read())["Agents"]) == 3
    assert kept.sock is kept_socket  # the keep-alive connection opened before the drop
    kept.close()
    assert emu.calls()["faulted"] == {"ListAgents": 1}


def test_before_loses_the_answer_without_carrying_the_call_out(emu, ds, task):
    emu.fault("CreateLocationNfs", when="before")
    with pytest.raises(ds.exceptions.InternalException) as ei:
        nfs_location(ds, emu.agent_arns()[1])
    assert "not carried out" in ei.value.response["Error"]["Message"]
    emu.fault("StartTaskExecution", fault="drop", when="before")
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        ds.start_task_execution(TaskArn=task)
    assert len(ds.list_locations()["Locations"]) == 2  # the task's two, not a third
    assert executions(ds, task) == []
    assert emu.calls()["faulted"] == {"CreateLocationNfs": 1, "StartTaskExecution": 1}


def test_late_loses_the_answer_and_carries_the_call_out_after_the_delay(emu, ds, task):
    """A start still on its way when its sender gave up: looking at once finds nothing."""
    assert emu.fault("StartTaskExecution", when="late", delay=0.5) == \
        {"StartTaskExecution": {"fault": "500", "times": 1, "when": "late", "delay": 0.5}}
    with pytest.raises(ds.exceptions.InternalException) as ei:
        ds.start_task_execution(TaskArn=task)
    assert "carried out later" in ei.value.response["Error"]["Message"]
    assert executions(ds, task) == []
    emu.wait_for(lambda st: [e for e in st["executions"] if e["task"] == task], timeout=10)
    assert len(executions(ds, task)) == 1
    for bad in ({"delay": 0.5}, {"when": "late", "delay": -1}, {"when": "late", "delay": "1"},
                {"fault": "denied", "when": "late", "delay": 1}, {"fault": "denied"}):
        status, _ = post_faults(emu, json.dumps({"operation": "StartTaskExecution", **bad}).encode())
        assert status == 400, bad
    assert emu.faults() == {}


def test_an_answer_lost_after_the_call_is_lost_even_when_it_was_an_error(emu, ds, task):
    emu.fault("DescribeTask")
    with pytest.raises(ds.exceptions.InternalException):
        ds.describe_task(TaskArn=task[:-17] + "0" * 17)  # would be "Unable to find task"


def test_times_minus_one_fails_every_call_until_cleared(emu, ds):
    emu.fault("ListAgents", times=-1)
    for _ in range(3):
        with pytest.raises(ds.exceptions.InternalException):
            ds.list_agents()
        assert emu.faults() == {"ListAgents": {"fault": "500", "times": -1, "when": "after"}}
    assert emu.fault("ListAgents", times=0) == {}
    assert len(ds.list_agents()["Agents"]) == 3
    assert emu.calls()["faulted"] == {"ListAgents": 3}


def test_times_counts_down_and_a_new_fault_replaces_the_old(emu, ds):
    emu.fault("ListAgents", times=3)
    with pytest.raises(ds.exceptions.InternalException):
        ds.list_agents()
    assert emu.faults()["ListAgents"]["times"] == 2
    assert emu.fault("ListAgents", fault="drop") == {"ListAgents": {"fault": "drop", "times": 1, "when": "after"}}
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        ds.list_agents()
    assert len(ds.list_agents()["Agents"]) == 3


BAD_FAULTS = [
    {"operation": "StartTaskExecution", "fault": "503"},
    {"operation": "StartTaskExecution", "fault": 500},
    {"operation": "StartTaskExecution", "when": "during"},
    {"operation": "StartTaskExecution", "times": "2"},
    {"operation": "StartTaskExecution", "times": 1.5},
    {"operation": "StartTaskExecution", "times": True},
    {"operation": "StartTaskExecution", "times": -2},
    {"operation": "StartTaskExecution", "time": 2},
    {"operation": "FlyToTheMoon"},
    {"operation": "CreateLocationEfs"},  # in the model, not served by the emulator: it would never fire
    {"operation": ["StartTaskExecution"]},
    {},
    ["StartTaskExecution"],
]


def test_a_bad_fault_is_refused_and_changes_nothing(emu, ds, task):
    set_before = emu.fault("StartTaskExecution", fault="drop", times=2, when="before")
    for body in BAD_FAULTS:
        status, answer = post_faults(emu, json.dumps(body).encode())
        assert status == 400 and answer["error"], body
        assert emu.faults() == set_before, body
    with pytest.raises(EmulatorError, match="HTTP 400"):
        emu.fault("StartTaskExecution", fault="503")
    assert emu.faults() == set_before
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        ds.start_task_execution(TaskArn=task)
    assert executions(ds, task) == []


def test_a_request_refused_before_processing_uses_up_no_fault(emu, ds, task):
    emu.fault("StartTaskExecution")
    emu.reset_calls()
    with pytest.raises(ds.exceptions.InvalidRequestException):  # the server's check of TaskArn's pattern
        ds.start_task_execution(TaskArn="arn:aws:datasync:us-east-1:111122223333:task/not-a-task")
    emu.throttle(1.0)
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        ds.start_task_execution(TaskArn=task)
    assert ei.value.response["Error"]["Code"] == "ThrottlingException"
    emu.throttle(0.0)
    assert emu.faults() == {"StartTaskExecution": {"fault": "500", "times": 1, "when": "after"}}
    calls = emu.calls()
    assert calls["calls"]["StartTaskExecution"] == 2 and calls["faulted"] == {}
    with pytest.raises(ds.exceptions.InternalException):
        ds.start_task_execution(TaskArn=task)
    assert len(executions(ds, task)) == 1


def test_a_denied_call_is_refused_once_not_retried_and_not_carried_out(emu, task):
    client = emu.client(retries=BOTOCORE_DEFAULT_RETRIES)
    emu.fault("StartTaskExecution", "denied", times=-1, when="before")
    with pytest.raises(botocore.exceptions.ClientError) as err:
        client.start_task_execution(TaskArn=task)
    assert err.value.response["Error"]["Code"] == "AccessDeniedException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert emu.calls()["faulted"]["StartTaskExecution"] == 1  # botocore did not try again
    assert executions(client, task) == []
