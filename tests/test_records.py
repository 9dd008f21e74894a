"""The records' writes when things go wrong: a write killed halfway leaves a temp file that
the next write of the same file removes (never a live writer's), and an append that fails
leaves no half line behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from commands import ROOT, file_size_limit
from datasync_multi.errors import RecordError
from datasync_multi.files import STALE_TEMP_AGE, append_line, write_json


def writer(code: str, **popen) -> subprocess.Popen:
    """Another process that writes with our code (the library calls it patches are named in ``code``)."""
    return subprocess.Popen([sys.executable, "-c", "import os, signal, sys\nfrom datasync_multi import files\n" + code],
                            env={**os.environ, "PYTHONPATH": ROOT}, text=True, **popen)


def hidden(directory) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.startswith("."))


def test_the_temp_file_of_a_killed_write_is_removed_by_the_next_write(tmp_path):
    path = tmp_path / "ledger.json"
    write_json(str(path), {"first": 1})
    killed = writer("os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)  # dies before its rename\n"
                    f"files.write_json({str(path)!r}, {{'second': 2}})")
    assert killed.wait(60) == -signal.SIGKILL
    [left] = hidden(tmp_path)
    assert left.startswith(f".ledger.json.{killed.pid}.")
    assert json.loads(path.read_text()) == {"first": 1}
    write_json(str(path), {"third": 3})
    assert hidden(tmp_path) == [] and json.loads(path.read_text()) == {"third": 3}


def test_a_live_writers_temp_file_is_kept(tmp_path):
    path = tmp_path / "ledger.json"
    live = writer("replace = os.replace\n"
                  "def wait_then_replace(*a):\n"
                  "    print('ready', flush=True)\n"
                  "    sys.stdin.readline()\n"
                  "    replace(*a)\n"
                  "os.replace = wait_then_replace\n"
                  f"files.write_json({str(path)!r}, {{'theirs': 1}})", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert live.stdout is not None and live.stdin is not None
        assert live.stdout.readline() == "ready\n"  # its temp file is written, its rename waits
        [theirs] = hidden(tmp_path)
        write_json(str(path), {"ours": 1})
        assert hidden(tmp_path) == [theirs] and json.loads(path.read_text()) == {"ours": 1}
        live.stdin.write("go\n")
        live.stdin.close()
        assert live.wait(60) == 0
    finally:
        live.kill()
        live.wait()
    assert hidden(tmp_path) == [] and json.loads(path.read_text()) == {"theirs": 1}


def test_temp_files_an_hour_old_are_removed_whoever_wrote_them(tmp_path):
    path = tmp_path / "ledger.json"
    old = time.time() - STALE_TEMP_AGE - 60
    names = {".ledger.json.k3j_9x2a": old,  # before the pid was in the name
             f".ledger.json.{os.getpid()}.abcdefgh": old,  # a live pid: perhaps reused, or another host's
             ".ledger.json.z8y7x6w5": time.time(),  # recent: perhaps a writer of an older version, still at it
             ".ledger.json.keep": old, "ledger.json.prev": old}  # not temp files
    for name, mtime in names.items():
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, (mtime, mtime))
    write_json(str(path), {"ok": 1})
    assert sorted(os.listdir(tmp_path)) == [".ledger.json.keep", ".ledger.json.z8y7x6w5", "ledger.json",
                                            "ledger.json.prev"]


def test_an_append_that_fails_leaves_no_half_line(tmp_path):
    path = tmp_path / "arn_file.txt"
    path.write_text("a" * 99 + "\n")
    limit = 120  # room for 20 more bytes: a longer line is cut short by the "full disk"
    child = writer(f"from datasync_multi.errors import RecordError\n"
                   f"try:\n    files.append_line({str(path)!r}, 'b' * 50)\n"
                   f"except RecordError as exc:\n    print(exc)\n",
                   stdout=subprocess.PIPE, preexec_fn=file_size_limit(limit))
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    assert out == (f"cannot write {str(path)!r} (File too large): the file is as it was before; fix that on "
                   f"{tmp_path}\n")
    assert path.read_text() == "a" * 99 + "\n"
    append_line(str(path), "c")
    assert path.read_text() == "a" * 99 + "\nc\n"


@pytest.fixture
def full_disk(tmp_path):
    """A small tmpfs, filled to the last byte; skipped where mounting is not permitted."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True,
                           text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        (disk / "ledger.json").write_text('{"before": 1}\n')
        fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
        with pytest.raises(OSError, match="No space left"):
            while True:
                os.write(fd, b"f" * 4096)
        os.close(fd)
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_really_full_disk_says_to_free_space_and_leaves_the_file_as_it_was(full_disk):
    path = str(full_disk / "ledger.json")
    with pytest.raises(RecordError) as err:
        write_json(path, {"after": "x" * 10_000})
    assert str(err.value) == (f"cannot write {path!r} (No space left on device): the file is as it was before; "
                              f"free space on {full_disk}")
    assert sorted(os.listdir(full_disk)) == ["filler", "ledger.json"]
    assert (full_disk / "ledger.json").read_text() == '{"before": 1}\n'
