"""The run's ledger as typed records: a round trip, the version-3 files it writes (the run's
record with them), and a clear refusal of any other version."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands import WATCHER, offline_env
from datasync_multi.dispatch_rules import give_up_reason
from datasync_multi.errors import UserError
from datasync_multi.ledger import (
    Attempt,
    ChunkAttempt,
    ChunkRecord,
    ChunkState,
    Dispatch,
    Ledger,
    MoveRefused,
    PlannedScope,
    Retry,
    Run,
    Scope,
    TaskFacts,
    next_number,
)
from datasync_multi.records import Execution, NfsLocation
from profiles import examples

AGENT = "arn:aws:datasync:us-east-1:111122223333:agent/agent-00000000000000001"
AGENT2 = "arn:aws:datasync:us-east-1:111122223333:agent/agent-00000000000000002"
TASK = "arn:aws:datasync:us-east-1:111122223333:task/task-0123456789abcdef0"
EXEC = TASK + "/execution/exec-0123456789abcdef0"
RETRY_TASK = "arn:aws:datasync:us-east-1:111122223333:task/task-0123456789abcdef1"
RETRY_EXEC = RETRY_TASK + "/execution/exec-0123456789abcdef1"
LOC = "arn:aws:datasync:us-east-1:111122223333:location/loc-0123456789abcdef0"

RUN = {"id": "0123abcd", "prefix": "T_", "agents": [AGENT], "named": False,
       "target": {"nfs_server": "198.51.100.10", "sub_dir": "/vol1", "dest_loc": LOC, "cloudwatch_arn": None,
                  "options": {"VerifyMode": "ONLY_FILES_TRANSFERRED"}, "task_mode": "BASIC", "nfs_version": "NFS3",
                  "ready_timeout": 600.0},
       "scopes": {"T_agent-1": {"task_name": "T_agent-1", "includes": ["/a/", "/b*"], "excludes": [], "files": 7,
                                "dirs": 2, "bytes": 900}},
       "slots": 1, "policy": {"max_retries": 1, "offline_threshold": 600.0}, "added": [], "drained": [AGENT2],
       "barred": {}}

# As the watcher writes it: the run's record, a scope retried once, and the descriptions it caches.
VERSION_3 = {
    "version": 3,
    "run": RUN,
    "scopes": {
        EXEC: {"attempts": [{"agent": AGENT, "execution": EXEC, "failed": "ERROR", "tag": "0123abcd/T_agent-1/1"},
                            {"agent": AGENT2, "retry_of": EXEC, "decided": 1764000000.5, "task_name": "T_agent-1_retry",
                             "server": "198.51.100.10", "subdir": "/vol1", "nfs_version": "NFS3", "dest": LOC,
                             "cloudwatch": None, "task_mode": "BASIC", "includes": ["/a/", "/b*"], "excludes": [],
                             "options": {"VerifyMode": "ONLY_FILES_TRANSFERRED", "BytesPerSecond": -1},
                             "task": RETRY_TASK, "execution": RETRY_EXEC, "tag": "0123abcd/T_agent-1/2"}],
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
    "others": [],
}


def test_a_ledger_reads_as_typed_records():
    ledger = Ledger.from_json(json.loads(json.dumps(VERSION_3)), "ledger.json")
    assert ledger.run is not None and ledger.run.scopes["T_agent-1"] == PlannedScope(
        "T_agent-1", ("/a/", "/b*"), (), 7, 2, 900)
    assert ledger.run.may_serve(AGENT) and not ledger.run.may_serve(AGENT2)  # drained
    scope = ledger.scopes[EXEC]
    assert scope.attempts[0] == Attempt(AGENT, EXEC, failure="ERROR", tag="0123abcd/T_agent-1/1")
    assert scope.latest == Attempt(AGENT2, RETRY_EXEC, tag="0123abcd/T_agent-1/2", retry=Retry(
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
    written = Ledger.from_json(VERSION_3, "ledger.json").to_json()
    assert written["scopes"] == VERSION_3["scopes"] and written["run"] == RUN
    assert (written["tasks"], written["locations"]) == (VERSION_3["tasks"], VERSION_3["locations"])
    kept = written["finished"][EXEC]
    assert kept["Result"] == {"ErrorCode": "AgentOffline"}
    assert kept["Includes"] == VERSION_3["finished"][EXEC]["Includes"]
    assert Ledger.from_json(json.loads(json.dumps(written)), "x") == Ledger.from_json(VERSION_3, "x")


def test_a_ledger_survives_its_file(tmp_path):
    path = str(tmp_path / "ledger.json")
    assert Ledger.read(path) == Ledger(path)  # no file yet: a new ledger
    ledger = Ledger.from_json(VERSION_3, path)
    ledger.finished[RETRY_EXEC] = Execution("SUCCESS", None, (), {}, None, "ENHANCED", 9, 9, 3, 3, 1, 1764000001.25)
    root = ledger.scope_of(RETRY_TASK + "/execution/exec-0123456789abcdef2", AGENT)
    ledger.scopes[root].latest.failed("ERROR")
    ledger.scopes[root].intend_retry(AGENT2, ledger.scopes[EXEC].latest.retry, "0123abcd/T_agent-1/2")
    ledger.save()
    assert Ledger.read(path) == ledger
    assert ledger.scopes[root].retries == 1 and ledger.scopes[root].latest.execution is None


attempts = st.builds(Attempt, agent=st.text(max_size=8), execution=st.none() | st.text(max_size=8),
                     failure=st.none() | st.text(max_size=8), returned=st.booleans(),
                     tag=st.none() | st.text(max_size=8),
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
                                                 bytes=st.integers(0, 2**60)),
                   given_up=st.none() | st.text(max_size=8))


@given(st.dictionaries(st.text(max_size=8), scopes, max_size=3))
def test_any_scopes_survive_the_ledger(scopes_):
    ledger = Ledger("ledger.json", scopes=scopes_)
    assert Ledger.from_json(json.loads(json.dumps(ledger.to_json())), "ledger.json") == ledger


@pytest.mark.parametrize("data,message", [
    ({**VERSION_3, "version": 1}, "written by another version of the watcher (ledger version 1; this one reads "
                                  "versions 3 and 4): finish the migration with the version that wrote it"),
    ({k: v for k, v in VERSION_3.items() if k != "version"}, "ledger version None"),
    ([1], "not a ledger"),
    ({"version": 3, "scopes": {EXEC: {"retries": 0}}}, "not a ledger this version wrote: no 'attempts'"),
    ({**VERSION_3, "run": {**RUN, "policy": {}}}, "not a ledger this version wrote: no 'max_retries'"),
])
def test_a_ledger_of_another_version_or_shape_is_one_clear_error(tmp_path, data, message):
    path = tmp_path / "ledger.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError) as err:
        Ledger.read(str(path))
    assert str(err.value).startswith(f"ledger {str(path)!r}: ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_the_watcher_refuses_a_ledger_of_another_version_before_any_aws_call(tmp_path, in_process):
    (tmp_path / "arn_file.txt").write_text(EXEC + "\n")
    (tmp_path / "arn_file.txt.ledger.json").write_text(json.dumps({**VERSION_3, "version": 2}))
    env = {**offline_env(tmp_path), "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}  # AWS is never asked
    r = in_process("--once", script=WATCHER, env=env)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "datasync_agent_ha.py: error: ledger 'arn_file.txt.ledger.json': written by another version of the watcher "
        "(ledger version 2; this one reads versions 3 and 4): finish the migration with the version that wrote it"]


chunk_attempts = st.builds(ChunkAttempt, agent=st.sampled_from(["a1", "a2"]), task=st.sampled_from(["t1", "t2"]),
                           decided=st.floats(0, 2e9), tag=st.text(max_size=12),
                           execution=st.none() | st.text(min_size=1, max_size=12),
                           failure=st.none() | st.sampled_from(["ERROR", "TRANSFERRING on offline agent"]),
                           returned=st.booleans())
dispatches = st.builds(Dispatch, lanes=st.dictionaries(st.sampled_from(["a1", "a2", "a3"]),
                                                      st.lists(st.text(max_size=8), min_size=1, max_size=2)),
                       chunks=st.lists(st.builds(ChunkRecord, index=st.integers(0, 99),
                                                 includes=st.lists(st.text(min_size=1, max_size=9),
                                                                   max_size=3).map(tuple),
                                                 bytes=st.integers(0, 2**50), files=st.integers(0, 10**8),
                                                 dirs=st.integers(0, 10**7), cost=st.integers(0, 2**60),
                                                 attempts=st.lists(chunk_attempts, max_size=3),
                                                 given_up=st.none() | st.text(max_size=8)), max_size=4))


@given(dispatches)
def test_any_dispatch_survives_the_ledger(dispatch):
    ledger = Ledger("ledger.json", run=Run.from_json(RUN), dispatch=dispatch, others={"e9"})
    data = json.loads(json.dumps(ledger.to_json()))
    assert data["version"] == 3 and Ledger.from_json(data, "ledger.json") == ledger


def test_where_a_chunk_stands_follows_its_latest_attempt():
    done, failed = Execution("SUCCESS"), Execution("ERROR")
    def chunk(i, *attempts):
        return ChunkRecord(i, (f"/d{i}/",), 1, 1, 0, 1, list(attempts))
    chunks = [chunk(0), chunk(1, ChunkAttempt("a1", "t1", 0, "x", "e1")),
              chunk(2, ChunkAttempt("a1", "t1", 0, "x", "e2")),
              chunk(3, ChunkAttempt("a1", "t1", 0, "x", "e3", failure="ERROR")),
              chunk(4, ChunkAttempt("a1", "t1", 0, "x", "e4", failure="ERROR"), ChunkAttempt("a2", "t2", 0, "x", "e5",
                                                                                            failure="ERROR")),
              chunk(5, ChunkAttempt("a1", "t1", 0, "x", None)),
              chunk(6, ChunkAttempt("a1", "t1", 0, "x", "e6", returned=True)),
              chunk(7, ChunkAttempt("a1", "t1", 0, "x", "e7", failure="ERROR")),
              chunk(8, ChunkAttempt("a1", "t1", 0, "x", "e8", returned=True))]  # its cancel not seen to land
    finished = {"e1": done, "e3": failed, "e4": failed, "e5": failed, "e6": failed, "e7": failed}
    states = [c.state(finished.get(c.latest.execution or "") if c.latest else None) for c in chunks]
    W, R, D = ChunkState.WAITING, ChunkState.RUNNING, ChunkState.DONE
    assert states == [W, D, R, W, W, R, W, W, R]
    agents = ("a1", "a2", "a3")
    assert [give_up_reason(c, 1, agents) for c, state in zip(chunks, states, strict=True) if state == W] == \
        [None, None, "failed 2 time(s), more than the 1 retries allowed", None, None]
    assert give_up_reason(chunks[4], 5, agents) is None
    assert give_up_reason(chunks[7], 5, ("a1",)) == "failed on every agent that may serve the run (1)"
    chunks[4].give_up("failed 2 time(s)")
    chunks[4].give_up("another reason")
    assert (chunks[4].given_up, chunks[4].state(failed)) == ("failed 2 time(s)", ChunkState.GIVEN_UP)  # final


@settings(max_examples=examples(200))
@given(st.permutations(range(1, 6)), st.integers(0, 4))
def test_starts_adopted_in_any_order_leave_only_the_newest_active(order, known):
    """However many starts a ledger missed, and in whatever order a check finds them, the
    attempts end in attempt-number order and only the newest may still run."""
    def start(n: int) -> ChunkAttempt:
        return ChunkAttempt(f"a{n}", "t", 0, f"run/chunk-0/{n}", f"e{n}")

    chunk = ChunkRecord(0, ("/d/",), 1, 1, 0, 1, tuple(start(n) for n in sorted(order[:known])))
    for number in order[known:]:
        assert chunk.adopt(start(number)) is False
    assert [a.tag for a in chunk.attempts] == [f"run/chunk-0/{n}" for n in range(1, 6)]
    assert [a.active for a in chunk.attempts] == [False] * 4 + [True]
    assert next_number(chunk.attempts) == 6


def test_an_intent_about_to_be_sent_keeps_when_and_only_an_intent_may_be_sent():
    """The time a start was last about to be sent survives the ledger file (a lost send
    settles from it); a start that has its execution is never sent again."""
    intent = ChunkAttempt("a1", "t1", 100.0, "run/chunk-1/1")
    assert "sent" not in intent.to_json()
    intent.sending(160.0)
    intent.sending(250.0)  # sent again, once the first had settled
    again = ChunkAttempt.from_json(json.loads(json.dumps(intent.to_json())))
    assert again == intent and again.sent == 250.0 and again.decided == 100.0
    again.started("e1")
    with pytest.raises(MoveRefused):
        again.sending(300.0)
