"""The watcher's ledger as typed records: a round trip, the version-1 files it has always
written, and a clear refusal of any other version."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasync_multi.datasync import Execution, NfsLocation
from datasync_multi.dispatch import ChunkState, Dispatcher
from datasync_multi.errors import UserError
from datasync_multi.state import (
    Attempt,
    ChunkAttempt,
    ChunkRecord,
    Dispatch,
    Ledger,
    PlannedScope,
    Retry,
    Scope,
    TaskFacts,
)
from datasync_multi.watch import Settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AGENT = "arn:aws:datasync:us-east-1:111122223333:agent/agent-00000000000000001"
AGENT2 = "arn:aws:datasync:us-east-1:111122223333:agent/agent-00000000000000002"
TASK = "arn:aws:datasync:us-east-1:111122223333:task/task-0123456789abcdef0"
EXEC = TASK + "/execution/exec-0123456789abcdef0"
RETRY_TASK = "arn:aws:datasync:us-east-1:111122223333:task/task-0123456789abcdef1"
RETRY_EXEC = RETRY_TASK + "/execution/exec-0123456789abcdef1"
LOC = "arn:aws:datasync:us-east-1:111122223333:location/loc-0123456789abcdef0"

# As the version-1 watcher wrote it: a scope retried once, the first attempt of a ledger
# older than its agent field, and the descriptions it caches.
VERSION_1 = {
    "version": 1,
    "scopes": {
        EXEC: {"attempts": [{"execution": EXEC, "failed": "ERROR"},
                            {"agent": AGENT2, "retry_of": EXEC, "decided": 1764000000.5, "task_name": "T_agent-1_retry",
                             "server": "198.51.100.10", "subdir": "/vol1", "nfs_version": "NFS3", "dest": LOC,
                             "cloudwatch": None, "task_mode": "BASIC", "includes": ["/a/", "/b*"], "excludes": [],
                             "options": {"VerifyMode": "ONLY_FILES_TRANSFERRED", "BytesPerSecond": -1},
                             "task": RETRY_TASK, "execution": RETRY_EXEC}],
               "retries": 1,
               "scope": {"task_name": "T_agent-1", "includes": ["/a/", "/b*"], "excludes": [], "files": 7, "dirs": 2,
                         "bytes": 900}}},
    "tasks": {TASK: {"name": "T_agent-1", "source": LOC, "dest": LOC, "cloudwatch": None, "mode": "BASIC"}},
    "locations": {LOC: {"agents": [AGENT], "server": "198.51.100.10", "subdir": "/vol1", "nfs_version": "NFS3"}},
    "finished": {EXEC: {"Status": "ERROR", "Includes": [{"FilterType": "SIMPLE_PATTERN", "Value": "/a/|/b*"}],
                        "Excludes": None, "Options": {"VerifyMode": "ONLY_FILES_TRANSFERRED"},
                        "Result": {"ErrorCode": "AgentOffline", "ErrorDetail": "lost", "TransferStatus": "ERROR"},
                        "TaskMode": "BASIC", "BytesTransferred": 5, "EstimatedBytesToTransfer": 900,
                        "FilesTransferred": 1, "EstimatedFilesToTransfer": 9, "FilesSkipped": 0}},
}


def test_a_version_1_ledger_reads_as_typed_records():
    ledger = Ledger.from_json(json.loads(json.dumps(VERSION_1)), "ledger.json")
    scope = ledger.scopes[EXEC]
    assert scope.attempts[0] == Attempt("", EXEC, failed="ERROR")  # agent to be read from its task
    assert scope.latest == Attempt(AGENT2, RETRY_EXEC, retry=Retry(
        of=EXEC, decided=1764000000.5, task_name="T_agent-1_retry", server="198.51.100.10", subdir="/vol1", dest=LOC,
        cloudwatch=None, includes=["/a/", "/b*"], excludes=[],
        options={"VerifyMode": "ONLY_FILES_TRANSFERRED", "BytesPerSecond": -1}, nfs_version="NFS3",
        task_mode="BASIC", task=RETRY_TASK))
    assert (scope.retries, scope.planned) == (1, PlannedScope("T_agent-1", ("/a/", "/b*"), (), 7, 2, 900))
    assert ledger.tasks[TASK] == TaskFacts("T_agent-1", LOC, LOC, None, "BASIC")
    assert ledger.locations[LOC] == NfsLocation((AGENT,), "198.51.100.10", "/vol1", "NFS3")
    assert ledger.finished[EXEC] == Execution("ERROR", ("/a/", "/b*"), None, {"VerifyMode": "ONLY_FILES_TRANSFERRED"},
                                              "AgentOffline", "BASIC", 5, 900, 1, 9, 0)


def test_a_ledger_is_written_back_in_the_shape_it_was_read_in():
    written = Ledger.from_json(VERSION_1, "ledger.json").to_json()
    assert written["scopes"] == {EXEC: {**VERSION_1["scopes"][EXEC], "attempts": [
        {"agent": "", "execution": EXEC, "failed": "ERROR"}, VERSION_1["scopes"][EXEC]["attempts"][1]]}}
    assert (written["tasks"], written["locations"]) == (VERSION_1["tasks"], VERSION_1["locations"])
    kept = written["finished"][EXEC]
    assert kept["Result"] == {"ErrorCode": "AgentOffline"}
    assert kept["Includes"] == VERSION_1["finished"][EXEC]["Includes"]
    assert Ledger.from_json(json.loads(json.dumps(written)), "x") == Ledger.from_json(VERSION_1, "x")


def test_a_ledger_survives_its_file(tmp_path):
    path = str(tmp_path / "ledger.json")
    assert Ledger.read(path) == Ledger(path)  # no file yet: a new ledger
    ledger = Ledger.from_json(VERSION_1, path)
    ledger.finished[RETRY_EXEC] = Execution("SUCCESS", None, (), {}, None, "ENHANCED", 9, 9, 3, 3, 1, 1764000001.25)
    root = ledger.scope_of(RETRY_TASK + "/execution/exec-0123456789abcdef2", AGENT)
    ledger.scopes[root].begin_retry(AGENT2, ledger.scopes[EXEC].latest.retry)
    ledger.save()
    assert Ledger.read(path) == ledger
    assert ledger.scopes[root].retries == 1 and ledger.scopes[root].latest.execution is None


attempts = st.builds(Attempt, agent=st.text(max_size=8), execution=st.none() | st.text(max_size=8),
                     failed=st.none() | st.text(max_size=8),
                     retry=st.none() | st.builds(
                         Retry, of=st.text(max_size=8), decided=st.floats(0, 2e9), task_name=st.text(max_size=8),
                         server=st.text(max_size=8), subdir=st.text(max_size=8), dest=st.text(max_size=8),
                         cloudwatch=st.none() | st.text(max_size=8), includes=st.lists(st.text(max_size=5)),
                         excludes=st.lists(st.text(max_size=5)),
                         options=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5)),
                         nfs_version=st.sampled_from(["AUTOMATIC", "NFS3"]),
                         task_mode=st.sampled_from(["BASIC", "ENHANCED"]),
                         task=st.none() | st.text(max_size=8)))
scopes = st.builds(Scope, attempts=st.lists(attempts, min_size=1, max_size=3), retries=st.integers(0, 5),
                   planned=st.none() | st.builds(PlannedScope, task_name=st.text(max_size=8),
                                                 includes=st.lists(st.text(max_size=5)).map(tuple),
                                                 excludes=st.lists(st.text(max_size=5)).map(tuple),
                                                 files=st.integers(0, 10**9), dirs=st.integers(0, 10**9),
                                                 bytes=st.integers(0, 2**60)))


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=8), scopes, max_size=3))
def test_any_scopes_survive_the_ledger(scopes_):
    ledger = Ledger("ledger.json", scopes=scopes_)
    assert Ledger.from_json(json.loads(json.dumps(ledger.to_json())), "ledger.json") == ledger


@pytest.mark.parametrize("data,message", [
    ({**VERSION_1, "version": 3}, "written by another version of the watcher (ledger version 3; this one reads "
                                  "versions 1 and 2): finish the migration with the version that wrote it"),
    ({k: v for k, v in VERSION_1.items() if k != "version"}, "ledger version None"),
    ([1], "not a ledger"),
    ({"version": 1, "scopes": {EXEC: {"retries": 0}}}, "not a ledger this version wrote: no 'attempts'"),
])
def test_a_ledger_of_another_version_or_shape_is_one_clear_error(tmp_path, data, message):
    path = tmp_path / "ledger.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError) as err:
        Ledger.read(str(path))
    assert str(err.value).startswith(f"ledger {str(path)!r}: ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_the_watcher_refuses_a_ledger_of_another_version_before_any_aws_call(tmp_path):
    (tmp_path / "arn_file.txt").write_text(EXEC + "\n")
    (tmp_path / "arn_file.txt.ledger.json").write_text(json.dumps({**VERSION_1, "version": 3}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1",
               AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    r = subprocess.run([sys.executable, os.path.join(ROOT, "datasync_agent_ha.py"), "--once", "--log_dir",
                        str(tmp_path / "log")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "datasync_agent_ha.py: error: ledger 'arn_file.txt.ledger.json': written by another version of the watcher "
        "(ledger version 3; this one reads versions 1 and 2): finish the migration with the version that wrote it"]


chunk_attempts = st.builds(ChunkAttempt, agent=st.sampled_from(["a1", "a2"]), task=st.sampled_from(["t1", "t2"]),
                           decided=st.floats(0, 2e9), execution=st.none() | st.text(min_size=1, max_size=12),
                           failed=st.none() | st.sampled_from(["ERROR", "TRANSFERRING on offline agent"]),
                           returned=st.booleans())
dispatches = st.builds(Dispatch, id=st.text(alphabet="0123456789abcdef", min_size=1, max_size=32),
                       lanes=st.dictionaries(st.sampled_from(["a1", "a2", "a3"]), st.lists(st.text(max_size=8),
                                                                                          min_size=1, max_size=2)),
                       chunks=st.lists(st.builds(ChunkRecord, index=st.integers(0, 99),
                                                 includes=st.lists(st.text(min_size=1, max_size=9),
                                                                   max_size=3).map(tuple),
                                                 bytes=st.integers(0, 2**50), files=st.integers(0, 10**8),
                                                 dirs=st.integers(0, 10**7), cost=st.integers(0, 2**60),
                                                 attempts=st.lists(chunk_attempts, max_size=3)), max_size=4))


@settings(max_examples=100, deadline=None)
@given(dispatches)
def test_any_dispatch_survives_the_ledger_and_a_static_ledger_stays_version_1(dispatch):
    ledger = Ledger("ledger.json", dispatch=dispatch)
    data = json.loads(json.dumps(ledger.to_json()))
    assert data["version"] == 2 and Ledger.from_json(data, "ledger.json") == ledger
    assert Ledger("ledger.json").to_json()["version"] == 1


def test_where_a_chunk_stands_follows_its_latest_attempt():
    done, failed = Execution("SUCCESS"), Execution("ERROR")
    def chunk(i, *attempts):
        return ChunkRecord(i, (f"/d{i}/",), 1, 1, 0, 1, list(attempts))
    chunks = [chunk(0), chunk(1, ChunkAttempt("a1", "t1", 0, "e1")), chunk(2, ChunkAttempt("a1", "t1", 0, "e2")),
              chunk(3, ChunkAttempt("a1", "t1", 0, "e3", failed="ERROR")),
              chunk(4, ChunkAttempt("a1", "t1", 0, "e4", failed="ERROR"), ChunkAttempt("a2", "t2", 0, "e5",
                                                                                       failed="ERROR")),
              chunk(5, ChunkAttempt("a1", "t1", 0, None)), chunk(6, ChunkAttempt("a1", "t1", 0, "e6", returned=True)),
              chunk(7, ChunkAttempt("a1", "t1", 0, "e7", failed="ERROR"))]
    ledger = Ledger("l", finished={"e1": done, "e3": failed, "e4": failed, "e5": failed, "e7": failed},
                    dispatch=Dispatch("id", {"a1": ["t1"], "a2": ["t2"], "a3": ["t3"]}, chunks))
    states = [Dispatcher(None, ledger, "arns", Settings(max_retries=1)).state(c) for c in chunks]
    W, R, D, G = ChunkState.WAITING, ChunkState.RUNNING, ChunkState.DONE, ChunkState.GIVEN_UP
    assert states == [W, D, R, W, G, R, W, W]
    ledger.dispatch.lanes = {"a1": ["t1"]}  # chunk 7 failed on the plan's every agent
    assert Dispatcher(None, ledger, "arns", Settings(max_retries=5)).state(chunks[7]) == G
