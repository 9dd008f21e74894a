"""The watcher's reading of an execution's state, and of the arn file."""

import pytest

from datasync_multi.watch import (
    FAILED,
    RUNNING,
    STRANDED,
    SUCCEEDED,
    classify,
    echo_differs,
    planned_scope,
    read_arn_file,
)

EXEC = "arn:aws:datasync:us-east-1:111122223333:task/task-0123456789abcdef0/execution/exec-0123456789abcdef0"


@pytest.mark.parametrize("status,agent,offline_for,expected", [
    ("SUCCESS", "OFFLINE", 9999, SUCCEEDED),
    ("ERROR", "ONLINE", 0, FAILED),
    ("TRANSFERRING", "ONLINE", 0, RUNNING),
    ("LAUNCHING", "OFFLINE", 599, RUNNING),
    ("LAUNCHING", "OFFLINE", 600, STRANDED),
    ("QUEUED", "OFFLINE", 601, STRANDED),
    ("LAUNCHED", "ONLINE", 0, RUNNING),  # in the user guide, not in botocore's enum
    ("SOMETHING_NEW", "OFFLINE", 700, STRANDED),
])
def test_classify(status, agent, offline_for, expected):
    assert classify(status, agent, offline_for, threshold=600) == expected


def test_arn_file_skips_comments_blanks_duplicates_and_malformed_lines(tmp_path, caplog):
    path = tmp_path / "arn_file.txt"
    path.write_text(f"# run 1\n\n{EXEC}\n{EXEC}\nexec-123\n  {EXEC[:-1]}1  \n")
    assert read_arn_file(str(path)) == [EXEC, EXEC[:-1] + "1"]
    assert "not an execution ARN" in caplog.text


PLAN = {"tasks": [{"name": "T_agent-1", "agent_arn": "a1", "includes": ["/a", "/b"], "files": 7, "bytes": 9},
                  {"name": "T_agent-2", "agent_arn": "a2", "includes": []}]}


def test_the_scope_of_record_comes_from_the_plan_by_task_name_or_not_at_all():
    scope, why = planned_scope(PLAN, "T_agent-1")
    assert (scope["includes"], scope["excludes"], scope["files"], why) == (["/a", "/b"], [], 7, "")
    assert planned_scope(None, "T_agent-1") == (None, "there is no plan file (--plan_file) to take its scope from")
    assert planned_scope(PLAN, "other")[1] == "the plan file has no task named other"
    assert planned_scope(PLAN, "T_agent-2")[1] == "the plan gives task T_agent-2 no include filter"


def test_only_filters_that_were_echoed_are_compared_with_the_plan():
    scope, _ = planned_scope(PLAN, "T_agent-1")
    rule = [{"FilterType": "SIMPLE_PATTERN", "Value": "/a|/b"}]
    assert not echo_differs({}, scope) and not echo_differs({"Includes": None}, scope)
    assert not echo_differs({"Includes": rule}, scope)
    assert echo_differs({"Includes": [{"FilterType": "SIMPLE_PATTERN", "Value": "/a"}]}, scope)
    assert echo_differs({"Includes": rule, "Excludes": rule}, scope)
