"""A full disk under the watcher, on the emulator: a check that cannot save its ledger ends
on one line (exit 74 with --once) and leaves the ledger as it was; the loop logs it and goes
on, and finishes once there is room again. The disk fills by RLIMIT_FSIZE (no root needed):
writes past LIMIT bytes fail with EFBIG, as they fail with ENOSPC on a full disk."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading

from commands import ROOT, file_size_limit

LIMIT = 16_000
PAD_TASK = "arn:aws:datasync:us-east-1:111122223333:task/task-0fffffffffffffff0"


def padded_ledger(site) -> bytes:
    """A ledger well past LIMIT, so no check can save it, while a check's log stays well
    under it: a cached description of a task nothing watches, which every save keeps."""
    path = os.path.join(site.work, "arn_file.txt.ledger.json")
    with open(path) as fh:
        ledger = json.load(fh)  # the run's, as the scheduler wrote it
    ledger["tasks"][PAD_TASK] = {"name": "x" * 2 * LIMIT, "source": "s", "dest": "d"}
    with open(path, "w") as fh:
        json.dump(ledger, fh)
    with open(path, "rb") as fh:
        return fh.read()


def watcher(site, *args: str) -> list[str]:
    return [sys.executable, os.path.join(ROOT, "datasync_agent_ha.py"), "--arn_file", "arn_file.txt", "--log_dir",
            os.path.join(site.work, "log"), *args]


def ledger_bytes(site) -> bytes:
    with open(os.path.join(site.work, "arn_file.txt.ledger.json"), "rb") as fh:
        return fh.read()


def no_room_line(site) -> str:
    return (f"cannot write 'arn_file.txt.ledger.json' (File too large): the file is as it was before; fix that on "
            f"{site.work}")


def test_once_a_full_disk_is_one_line_and_exit_74_and_the_ledger_is_as_it_was(site):
    assert site.schedule().returncode == 0
    before = padded_ledger(site)
    r = subprocess.run(watcher(site, "--once"), cwd=site.work, env=site.emu.env(), capture_output=True, text=True,
                       timeout=120, preexec_fn=file_size_limit(LIMIT))
    assert r.returncode == 74, r.stderr
    assert [line for line in r.stderr.splitlines() if " - INFO - " not in line] == [
        f"datasync_agent_ha.py: error: {no_room_line(site)} and rerun"]
    assert ledger_bytes(site) == before
    assert [n for n in os.listdir(site.work) if n.startswith(".")] == []  # the temp file went with the failure


def test_the_loop_logs_a_full_disk_goes_on_and_finishes_once_there_is_room(site):
    assert site.schedule().returncode == 0
    site.emu.wait_executions_done(site.arns(), timeout=60)  # so the first check that can save is the last
    before = padded_ledger(site)
    loop = subprocess.Popen(watcher(site, "--timeout_sec", "0.2"), cwd=site.work, env=site.emu.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=file_size_limit(LIMIT))
    watchdog = threading.Timer(60, loop.kill)  # a loop that never gets there fails the test, never hangs it
    watchdog.start()
    try:
        assert loop.stderr is not None
        failed = []
        for line in loop.stderr:
            if " - ERROR - " in line:
                failed.append(line.split(" - ERROR - ", 1)[1].rstrip("\n"))
                if len(failed) == 2:  # the loop went on to a second check
                    break
        assert failed == [f"check failed, next one in 0.2s: {no_room_line(site)}"] * 2
        assert ledger_bytes(site) == before
        resource.prlimit(loop.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))  # room
        rest = loop.stderr.read()
        assert loop.wait() == 0, rest
    finally:
        watchdog.cancel()
        loop.kill()
        loop.wait()
    assert "every watched scope has succeeded" in rest
    saved = json.loads(ledger_bytes(site))
    assert len(saved["scopes"]) == 3 and PAD_TASK in saved["tasks"]
