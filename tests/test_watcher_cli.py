"""The watcher refuses bad input on one line with exit 2, before any AWS call."""

import os

import pytest

from test_scheduler_cli import ROOT, run


@pytest.mark.parametrize("args,message", [
    (["--arn_file", "missing.txt"], "does not exist"),
    (["--max_retries", "-1"], "must not be negative"),
    (["--timeout_sec", "0"], "at least 1"),
    (["--offline-threshold-sec", "-5"], "must not be negative"),
    (["--timeout_sec", "soon"], "invalid int value"),
    (["--ledger_file", "nodir/ledger.json"], "its directory"),
    (["--log_dir", "arn_file.txt/log"], "cannot write the log"),
])
def test_bad_input(tmp_path, args, message):
    (tmp_path / "arn_file.txt").write_text("")
    r = run(tmp_path, *args, script=os.path.join(ROOT, "datasync_agent_ha.py"))
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
