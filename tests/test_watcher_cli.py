"""The watcher refuses bad input on one line with exit 2, before any AWS call."""

import os
import subprocess
import sys

import pytest

from test_scheduler_cli import offline_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("args,message", [
    (["--arn_file", "missing.txt"], "does not exist"),
    (["--max_retries", "-1"], "must not be negative"),
    (["--timeout_sec", "0"], "at least 1"),
    (["--offline-threshold-sec", "-5"], "must not be negative"),
    (["--timeout_sec", "soon"], "invalid int value"),
])
def test_bad_input(tmp_path, args, message):
    (tmp_path / "arn_file.txt").write_text("")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "datasync_agent_ha.py"), "--log_dir",
                        str(tmp_path / "log"), *args], cwd=tmp_path, env=offline_env(tmp_path),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
