"""The watcher's reading of an execution's state, and of the arn file."""

import pytest

from arns import EXEC
from datasync_multi.decisions import FAILED, RUNNING, STRANDED, SUCCEEDED, UNREAD, classify, echo_differs, planned_scope
from datasync_multi.launch import new_run
from datasync_multi.ledger import PlannedScope, Target
from datasync_multi.plan import Plan, TaskPlan
from datasync_multi.records import Execution
from datasync_multi.split import DIR, GROUP, Unit
from datasync_multi.watch import read_arn_file


@pytest.mark.parametrize("status,agent,offline_for,expected", [
    ("SUCCESS", "OFFLINE", 9999, SUCCEEDED),
    ("ERROR", "ONLINE", 0, FAILED),
    ("TRANSFERRING", "ONLINE", 0, RUNNING),
    ("PREPARING", "OFFLINE", 599, RUNNING),
    ("PREPARING", "OFFLINE", 600, STRANDED),
    ("LAUNCHING", "OFFLINE", 0, UNREAD),  # it has read nothing: it moves at once
    ("QUEUED", "OFFLINE", 601, UNREAD),
    ("QUEUED", "ONLINE", 9999, RUNNING),
    ("LAUNCHED", "ONLINE", 0, RUNNING),  # in the user guide, not in botocore's enum
    ("SOMETHING_NEW", "OFFLINE", 700, STRANDED),
    ("SOMETHING_NEW", "ONLINE", 700, RUNNING),
    ("CANCELLING", "ONLINE", 0, FAILED),
    ("CANCELLING", "OFFLINE", 9999, FAILED),  # on its way to ERROR: retried, never cancelled again
])
def test_classify(status, agent, offline_for, expected):
    assert classify(status, agent, offline_for, threshold=600) == expected


def test_arn_file_skips_comments_blanks_duplicates_and_malformed_lines(tmp_path, caplog):
    path = tmp_path / "arn_file.txt"
    path.write_text(f"# run 1\n\n{EXEC}\n{EXEC}\nexec-123\n  {EXEC[:-1]}1  \n")
    assert read_arn_file(str(path)) == [EXEC, EXEC[:-1] + "1"]
    assert "not an execution ARN" in caplog.text


PLAN = Plan((TaskPlan((Unit("/a", DIR, 4, 3, 1, 8), Unit("/b*", GROUP, 5, 4, 0, 9)), agent_arn="a1", name="T_agent-1"),
              TaskPlan((), agent_arn="a2", name="T_agent-2")), ("a1", "a2"), ("a", "b"), 0, None, 9, 9)


RUN = new_run(PLAN, Target("198.51.100.10", "/vol1", "dest", None, {}), named=False)


def test_the_scope_of_record_comes_from_the_runs_record_by_task_name_or_not_at_all():
    assert planned_scope(RUN, "T_agent-1") == (PlannedScope("T_agent-1", ("/a", "/b*"), (), 7, 1, 9), "")
    assert planned_scope(None, "T_agent-1") == (
        None, "the ledger holds no run record (the scheduler writes one at launch)")
    assert planned_scope(RUN, "other")[1] == "the run's record has no task named other"
    assert planned_scope(RUN, "T_agent-2")[1] == "the run's record has no task named T_agent-2"


def test_only_filters_that_were_echoed_are_compared_with_the_plan():
    scope, _ = planned_scope(RUN, "T_agent-1")
    rule = [{"FilterType": "SIMPLE_PATTERN", "Value": "/a|/b*"}]

    def echoed(**filters) -> Execution:  # as DescribeTaskExecution gives it
        return Execution.from_description({"Status": "ERROR", **filters})

    assert not echo_differs(echoed(), scope) and not echo_differs(echoed(Includes=None), scope)
    assert not echo_differs(echoed(Includes=rule), scope)
    assert not echo_differs(echoed(Includes=rule, Excludes=[]), scope)
    assert echo_differs(echoed(Includes=[{"FilterType": "SIMPLE_PATTERN", "Value": "/a"}]), scope)
    assert echo_differs(echoed(Includes=rule, Excludes=rule), scope)
