"""The emulator by hand: ``python -m emulator --quickstart DIR`` (``make emulator``) prints lines
that a second shell takes as pasted, from any directory and without our venv on its PATH, and
they work first time: boto3 reaches the emulator with them, and the scheduler and the watcher
they name move the sample share. A plain start's hint works from any directory too, and
``--help`` shows each default."""

from __future__ import annotations

import os
import queue
import shlex
import signal
import subprocess
import sys
import threading

import boto3
import pytest

from emulator.__main__ import parse_args
from emulator.harness import Emulator, uninstalled_checkout
from emulator.sample import differences
from sites import SERVER

BARE_SHELL = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}
"""A second shell as a user opens one: no venv, no AWS settings, no PYTHONPATH."""


def start_quickstart(tmp_path, work) -> tuple[subprocess.Popen, list[str]]:
    """``python -m emulator --quickstart work`` from ``tmp_path``; its stdout up to the last
    line it prints once it serves."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if uninstalled_checkout():
        env["PYTHONPATH"] = uninstalled_checkout()
    proc = subprocess.Popen([sys.executable, "-m", "emulator", "--quickstart", str(work)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    printed: list[str] = []
    while not printed or not printed[-1].startswith("# The copies land in"):
        try:
            printed.append(lines.get(timeout=60).rstrip("\n"))
        except queue.Empty:
            proc.kill()
            pytest.fail(f"--quickstart printed {printed} and stopped; stderr: {proc.communicate()[1]}")
    return proc, printed


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)  # Ctrl-C, as the lines say
    try:
        return proc.wait(30)
    finally:
        proc.kill()


def exported(lines: list[str]) -> dict[str, str]:
    return dict(word.split("=", 1) for line in lines if line.startswith("export ") for word in shlex.split(line)[1:])


def test_the_quickstart_lines_pasted_into_another_shell_reach_the_emulator_and_move_the_share(tmp_path):
    work = tmp_path / "by-hand"
    proc, lines = start_quickstart(tmp_path, work)
    try:
        url = lines[0]
        env = exported(lines)
        assert set(env) == {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                            "DEST_LOC"} and env["AWS_ENDPOINT_URL"] == url, lines
        client = boto3.session.Session().client(
            "datasync", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        assert [a["Status"] for a in client.list_agents()["Agents"]] == ["ONLINE"] * 3
        assert client.describe_location_s3(LocationArn=env["DEST_LOC"])["LocationUri"] == "s3://my-bucket/dest/"

        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        pasted = subprocess.run(["bash", "-e", "-c", "\n".join(lines[1:])], cwd=elsewhere, env=BARE_SHELL,
                                capture_output=True, text=True, timeout=300)
        assert pasted.returncode == 0, pasted.stderr[-3000:]
        assert "--dry_run" in lines[-4] and "datasync_agent_ha.py --timeout_sec 2" in lines[-2], lines
        assert "every one has ended" in pasted.stdout + pasted.stderr
        assert differences(str(work / "share"), str(work / "s3" / "my-bucket" / "dest")) == []
        assert (work / "arn_file.txt").is_file() and not list(elsewhere.iterdir())  # the run's files: after `cd`
    finally:
        assert stop(proc) == 0

    proc, again = start_quickstart(tmp_path, work)  # its own directory, made anew: the last session's run is gone
    assert stop(proc) == 0
    assert again[0] != url or again != lines
    assert not (work / "arn_file.txt").exists() and not list((work / "s3").iterdir())


def test_the_quickstart_never_empties_a_directory_it_did_not_make(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    r = subprocess.run([sys.executable, "-m", "emulator", "--quickstart", str(mine)], capture_output=True,
                       text=True, timeout=60, env={**os.environ, "PYTHONPATH": uninstalled_checkout() or ""})
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr.splitlines() == [f"--quickstart {str(mine)!r} exists and was not made by --quickstart: "
                                     "name a new directory"]
    assert (mine / "notes.txt").read_text() == "keep me"


def test_a_plain_start_says_how_to_make_a_destination_by_a_command_that_works_from_any_directory(tmp_path):
    (tmp_path / "share").mkdir()
    (tmp_path / "s3").mkdir()
    with Emulator().start({f"{SERVER}:/vol1": str(tmp_path / "share")}, str(tmp_path / "s3")) as emu:
        hint = emu.wait_for(lambda _: "a destination location: " in emu.stderr() and emu.stderr(), timeout=10)
        shell, destination = hint.splitlines()[:2]
        assert shell == (f"emulator at {emu.url}; for a shell: export AWS_ENDPOINT_URL={emu.url}; export "
                         "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1")
        command = destination.split("a destination location: ", 1)[1].split(" (copies land in ")[0]
        r = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=BARE_SHELL, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        arn = r.stdout.strip()
        assert emu.client().describe_location_s3(LocationArn=arn)["LocationUri"] == "s3://my-bucket/dest/"
        assert destination.endswith(f"(copies land in {tmp_path / 's3' / 'my-bucket' / 'dest'})")


def test_help_shows_each_default_and_which_options_are_required(capsys):
    with pytest.raises(SystemExit) as shown:
        parse_args(["--help"])
    assert shown.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("usage: python -m emulator --quickstart [DIR] [options] python -m emulator --s3-root DIR "
                          "[--export HOST:/EXPORT=LOCALDIR ...] [options]")
    for option, default in (("--host HOST", "127.0.0.1"), ("--port PORT", "0"), ("--agents N", "3"),
                            ("--region REGION", "us-east-1"), ("--phase-delay SECONDS", "0.05"),
                            ("--offline-error-delay SECONDS", "1.0"), ("--match {component,prefix}", "component"),
                            ("--task-create-delay SECONDS", "0.1"), ("--launch-delay SECONDS", "0.0"),
                            ("--execution-filters {replace,merge}", "replace"),
                            ("--agent-bytes-per-second N[,N...]", "all unlimited")):
        said = out.split(f" {option} ", 1)[1].split(" --", 1)[0]
        assert f"(default: {default})" in said, (option, said)
