"""The watcher's reading of an execution's state, and of the arn file."""

import pytest

from datasync_multi.watch import FAILED, RUNNING, STRANDED, SUCCEEDED, classify, read_arn_file

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
