"""What the watcher prints and logs per check: the table when something changed, else one
summary line, repeated at most once a minute; a redrawn line on a terminal."""

from __future__ import annotations

import io
import logging

import pytest

from datasync_multi.display import QUIET_FOR, Display
from datasync_multi.ledger import ChunkState
from datasync_multi.report import CheckResult, Row

EXEC = "arn:aws:datasync:us-east-1:111122223333:task/task-0123456789abcdef0/execution/exec-0123456789abcdef0"


def result(status: str = "TRANSFERRING", moved: int = 0, acted: bool = False) -> CheckResult:
    return CheckResult(rows=[Row(EXEC, "T_agent-1", "agent-1", status, bytes_done=moved)], unfinished=1,
                       counts={ChunkState.RUNNING: 1}, bytes_done=moved, bytes_total=10_000, acted=acted)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def logged(caplog):
    caplog.set_level(logging.INFO, logger="ha")
    return caplog


def test_the_table_shows_once_then_a_summary_a_minute_while_nothing_changes(tmp_path, logged):
    out = io.StringIO()
    display = Display(str(tmp_path / "shown"), stream=out)
    display.show(result(moved=100), now=1000.0)
    assert "bytes sent / to send" in out.getvalue() and "scopes: 0 done, 1 running" in out.getvalue()
    first = out.getvalue()
    display.show(result(moved=200), now=1002.0)  # bytes moved, nothing else: nothing new said
    assert out.getvalue() == first and len(logged.records) == len(first.splitlines())
    display.show(result("PREPARING", moved=300), now=1000.0 + QUIET_FOR)  # a status within running: no change
    added = out.getvalue()[len(first):].splitlines()
    assert len(added) == 1 and added[0].startswith("scopes: 0 done, 1 running") and "300 B of" in added[0]


@pytest.mark.parametrize("change", [{"status": "SUCCESS"}, {"status": "ERROR"}, {"acted": True}])
def test_an_end_a_failure_or_an_action_shows_the_table_again(tmp_path, change):
    out = io.StringIO()
    display = Display(str(tmp_path / "shown"), stream=out)
    display.show(result(), now=1000.0)
    display.show(result(**change), now=1001.0)
    assert out.getvalue().count("bytes sent / to send") == 2


def test_table_always_and_a_new_process_under_cron_keep_to_what_was_last_shown(tmp_path):
    out = io.StringIO()
    Display(str(tmp_path / "shown"), stream=out).show(result(), now=1000.0)
    Display(str(tmp_path / "shown"), stream=out).show(result(), now=1300.0)  # cron: a new watcher each time
    assert out.getvalue().count("bytes sent / to send") == 1
    Display(str(tmp_path / "shown"), table_always=True, stream=out).show(result(), now=1301.0)
    assert out.getvalue().count("bytes sent / to send") == 2


def test_on_a_terminal_the_summary_redraws_in_place(tmp_path):
    out = Terminal()
    display = Display(str(tmp_path / "shown"), stream=out)
    for second in range(5):
        display.show(result(moved=second), now=1000.0 + second)
    display.close()
    text = out.getvalue()
    assert text.count("\r\x1b[K") == 5 and text.count("bytes sent / to send") == 1 and text.endswith("\n")


def test_ten_minutes_at_two_seconds_say_tens_of_lines_with_every_change(tmp_path, logged):
    out = io.StringIO()
    display = Display(str(tmp_path / "shown"), stream=out)
    for check in range(300):
        status = "SUCCESS" if check >= 290 else "TRANSFERRING"
        display.show(result(status, moved=check * 10, acted=check == 150), now=1000.0 + 2 * check)
    printed = out.getvalue().splitlines()
    assert len(printed) < 60 and len(logged.records) < 60
    assert sum("bytes sent / to send" in line for line in printed) == 3  # first check, the action, the end
