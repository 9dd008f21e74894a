"""The scheduler as a user runs it: bad input is one line and exit 2; a dry run plans offline.

Most cases run the command's main(argv) in this process (the ``in_process`` fixture); those
about the process itself (the top-level script, a file size limit, stderr's encoding, the
exit code a shell sees) start the script (``run``)."""

from __future__ import annotations

import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from commands import ROOT, file_size_limit, flag_help, offline_env, run
from trees import straddling_share

AGENT = "arn:aws:datasync:us-east-1:111122223333:agent/agent-0123456789abcdef0"
AGENT2 = "arn:aws:datasync:us-east-1:111122223333:agent/agent-0123456789abcdef1"
DEST = "arn:aws:datasync:us-east-1:111122223333:location/loc-0123456789abcdef0"


@pytest.fixture
def share(tmp_path):
    mount = tmp_path / "fsx"
    for d in ("files/a", "files/b", "images", "org/x/y"):
        (mount / d).mkdir(parents=True)
    for i, f in enumerate(("files/a/1", "files/b/2", "images/3", "org/x/y/4", "org/5")):
        (mount / f).write_bytes(b"z" * (100 * (i + 1)))
    (tmp_path / "source_file.manifest").write_text("# what to move\n\n/files\n/images\n/org\n")
    return mount


def base(share, *extra):
    return ["--task_name", "T_", "--nfs_server_name", "198.51.100.10", "--sub_dir", "/vol1",
            "--mount_path_dir", str(share), "--dest_loc", DEST, *extra]


def test_dry_run_with_agent_arns_plans_offline_and_writes_the_plan(tmp_path, share):
    r = run(tmp_path, *base(share, "--dry-run", "--agent-arns", f"{AGENT},{AGENT2}", "--plan-file", "p.json"))
    assert r.returncode == 0, r.stderr
    plan = json.loads((tmp_path / "p.json").read_text())
    assert {t["agent_arn"] for t in plan["tasks"]} == {AGENT, AGENT2}
    assert sum(t["files"] for t in plan["tasks"]) == 5
    assert all(t["includes"] and isinstance(t["excludes"], list) for t in plan["tasks"])
    assert "heaviest task / lower bound" in r.stdout
    assert not (tmp_path / "arn_file.txt").exists()
    assert (tmp_path / "log" / "ds_ma_sche.log").read_text().count("dry run") == 1


@pytest.mark.parametrize("args,message", [
    (["--source_file", "missing.manifest"], "does not exist"),
    (["--source_file", "empty.manifest"], "lists no directory"),
    (["--source_file", "escape.manifest"], "escapes the mount"),
    (["--source_file", "nosuch.manifest"], "does not exist under"),
    (["--source_file", "pipe.manifest"], "no DataSync filter can carry"),
    (["--source_file", "long.manifest"], "past DataSync's 4,096-byte path limit"),
    (["--source_file", "snapshot.manifest"], "every entry of manifest 'snapshot.manifest' is a path DataSync skips"),
    (["--dest_loc", "arn:aws:datasync:us-east-1:1:location/bad"], "not a valid LocationArn"),
    (["--agent_arns", "agent-1"], "not a valid AgentArn"),
    (["--cloudwatch_arn", "log-group"], "not a valid LogGroupArn"),
    (["--max_depth", "-1"], "must not be negative"),
    (["--price_per_gb", "-0.01"], "--price_per_gb must not be negative"),
    (["--mount_path_dir", "/nonexistent/fsx"], "does not exist"),
    (["--task_name", "bad|name"], "not a valid"),
    (["--scan-workers", "0"], "at least 1"),
    (["--mount_path_dir", "afile"], "is not a directory"),
    (["--plan_file", "nodir/plan.json"], "its directory"),
    (["--arn_file", "nodir/arn_file.txt"], "its directory"),
    (["--plan_file", "afile/plan.json"], "is not a directory"),
    (["--arn_file", "."], "is a directory"),
    (["--log_dir", "afile/log"], "cannot write the log"),
    (["--task_mode", "ENHANCED", "--bytes_per_second", "1000"], "does not apply to --task_mode ENHANCED"),
    (["--task_mode", "ENHANCED", "--verify_mode", "POINT_IN_TIME_CONSISTENT"], "not supported"),
    (["--task_mode", "ENHANCED", "--cloudwatch_arn", "arn:aws:logs:us-east-1:111122223333:log-group:/mine"],
     "logs to the log group /aws/datasync"),
    (["--task_mode", "FAST"], "invalid choice"),
    (["--nfs_version", "NFS4_2"], "invalid choice"),
    (["--task_ready_timeout_sec", "0"], "at least 1"),
    (["--chunks_per_agent", "0"], "must be from 1 to 100"),
    (["--chunks-per-agent", "101"], "must be from 1 to 100"),
    (["--queue_depth", "2"], "needs a dynamic plan"),
    (["--chunks_per_agent", "4", "--queue_depth", "3"], "invalid choice"),
    (["--chunks_per_agent", "4", "--ledger_file", "nodir/ledger.json"], "its directory"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, share, in_process, args, message):
    (tmp_path / "afile").write_text("not a directory")
    (tmp_path / "empty.manifest").write_text("# nothing\n\n")
    (tmp_path / "escape.manifest").write_text("/files\n/../../etc\n")
    (tmp_path / "nosuch.manifest").write_text("/files\n/no/such/dir\n")
    (share / "a|b").mkdir()
    (tmp_path / "pipe.manifest").write_text("/a|b\n")
    (tmp_path / "long.manifest").write_text("/files" + "/d" * 2100 + "\n")
    (share / "files/.snapshot").mkdir()
    (tmp_path / "snapshot.manifest").write_text("/files/.snapshot\n")
    r = in_process(*base(share, *args))
    assert r.returncode == 2, (r.stdout, r.stderr)
    errors = [line for line in r.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and message in errors[0], r.stderr
    assert "Traceback" not in r.stderr


def test_missing_required_flags_outside_dry_run(share, in_process):
    r = in_process("--mount_path_dir", str(share))
    assert r.returncode == 2 and "required" in r.stderr and "Traceback" not in r.stderr


@pytest.fixture
def denying_endpoint():
    """An endpoint that refuses every call as AWS refuses a caller without permission
    (an error botocore does not retry, so the test is quick)."""
    class Deny(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b'{"__type": "AccessDeniedException", "message": "not authorized"}'
            self.send_response(400)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Deny)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("agents", [[], ["--agent_arns", AGENT]])
def test_an_aws_error_is_exit_1_without_traceback(tmp_path, share, denying_endpoint, in_process, agents):
    """Also from DescribeAgent for --agent_arns: only its InvalidRequestException (no such
    agent) is the user's to fix."""
    env = offline_env(tmp_path)
    env.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_ENDPOINT_URL=denying_endpoint)
    r = in_process(*base(share, *agents), env=env)
    assert r.returncode == 1, r.stderr
    assert "AWS error: AccessDeniedException: not authorized" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("script", ["datasync_multi_agents_scheduler.py", "datasync_agent_ha.py"])
def test_no_credentials_is_exit_2_and_says_what_to_do(tmp_path, share, script):
    (tmp_path / "arn_file.txt").write_text(
        "arn:aws:datasync:us-east-1:111122223333:task/task-0123456789abcdef0/execution/exec-0123456789abcdef0\n")
    args = base(share) if script.startswith("datasync_multi") else ["--once"]
    r = run(tmp_path, *args, script=os.path.join(ROOT, script))
    assert r.returncode == 2, r.stderr
    assert "no AWS credentials found" in r.stderr and "aws configure" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_overlapping_manifest_entries_are_moved_once(tmp_path, share, in_process):
    (tmp_path / "overlap.manifest").write_text("/org/x\n/org\n/org/x/y\n")
    r = in_process(*base(share, "--dry_run", "--agent_arns", AGENT, "--source_file", "overlap.manifest"))
    assert r.returncode == 0, r.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["roots"] == ["/org"] and sum(t["files"] for t in plan["tasks"]) == 2
    assert "inside another entry" in r.stderr


def test_a_share_past_the_path_limit_plans_what_datasync_can_take_and_says_what_it_cannot(tmp_path, in_process):
    mount = tmp_path / "deep_share"
    mount.mkdir()
    straddling_share(str(mount))
    (tmp_path / "source_file.manifest").write_text("/\n")
    r = in_process(*base(mount, "--dry_run", "--agent_arns", f"{AGENT},{AGENT2}"))
    assert r.returncode == 0, r.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert (plan["totals"]["files"], plan["totals"]["bytes"]) == (5, 3800)
    said = "3 file(s) (1.3 KiB) and 1 directory(ies) lie past DataSync's 4,096-byte path limit"
    assert [w for w in plan["warnings"] if w.startswith(said)] and f"WARNING - {said}" in r.stderr


def test_names_no_pattern_can_carry_stay_with_their_parent_and_are_reported(tmp_path, share):
    """A process of its own: that no line breaks its stderr's encoding is the point."""
    for odd in ("org/a|b", "org/st*r", "org/back\\slash", "org/latin1-\udce9t\udce9", "org/x.snapshot"):
        os.makedirs(os.fsencode(share / odd))
        with open(os.fsencode(share / odd / "f"), "wb") as fh:
            fh.write(b"data")
    r = run(tmp_path, *base(share, "--dry_run", "--agent_arns", f"{AGENT},{AGENT2}", "--max_depth", "3",
                            "--per_file_cost", "0"))
    assert r.returncode == 0, r.stderr
    plan = json.loads((tmp_path / "plan.json").read_text(encoding="utf-8"))
    patterns = [p for t in plan["tasks"] for p in t["includes"]]
    assert not any(t["excludes"] for t in plan["tasks"])
    assert not any(c in p[:-1] for p in patterns for c in "|*\\") and all(p.isprintable() for p in patterns)
    assert sum(t["files"] for t in plan["tasks"]) == 5 + 4  # the .snapshot file is DataSync's to skip
    assert any("no DataSync filter can carry" in w for w in plan["warnings"])
    assert any("skipped by DataSync" in w for w in plan["warnings"])
    assert "Logging error" not in r.stderr and "Traceback" not in r.stderr


def test_help_shows_defaults_required_flags_and_exit_codes(in_process):
    r = in_process("--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n\n", 1)[0].splitlines() == [
        "usage: datasync_multi_agents_scheduler.py --mount_path_dir DIR --nfs_server_name HOST --sub_dir PATH "
        "--dest_loc ARN [options]",
        "       datasync_multi_agents_scheduler.py --mount_path_dir DIR --dry_run [options]"]
    assert re.findall(r"--[a-z]+(?:-[a-z]+)+", r.stdout) == ["--log-dir"]  # dashed spellings: said once, not listed
    flags = flag_help(r.stdout)
    for flag, default in (("--max_depth", "as deep as balance needs"), ("--source_file", "source_file.manifest"),
                          ("--task_mode", "BASIC"), ("--nfs_version", "AUTOMATIC"),
                          ("--verify_mode", "ONLY_FILES_TRANSFERRED"), ("--bytes_per_second", "-1"),
                          ("--arn_file", "arn_file.txt")):
        assert f"(default: {default})" in flags[flag], flags[flag]
    required = {f for f, text in flags.items() if "required unless --dry_run" in text}
    assert required == {"--nfs_server_name", "--sub_dir", "--dest_loc"}
    assert flags["--mount_path_dir"].endswith("required")
    codes = r.stdout.split("exit codes:", 1)[1].split()
    assert [c for c in codes if c.isdigit()] == ["0", "1", "2", "3", "70", "74", "130"]


@pytest.mark.parametrize("given", [
    [f"{AGENT},{AGENT2}"],
    [f"{AGENT} {AGENT2}"],
    [AGENT, AGENT2],
    [f" {AGENT} ,\t{AGENT2}, "],
    [AGENT, "--dry-run", "--agent-arns", AGENT2],
])
def test_agent_arns_are_separated_by_commas_or_spaces(tmp_path, share, in_process, given):
    r = in_process(*base(share, "--dry_run", "--agent_arns", *given))
    assert r.returncode == 0, r.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert sorted(t["agent_arn"] for t in plan["tasks"]) == [AGENT, AGENT2]


def test_a_full_disk_while_writing_the_plan_is_one_line_and_exit_74_and_the_old_plan_stays(tmp_path, share, in_process):
    limit = 1500
    assert in_process(*base(share, "--dry_run", "--agent_arns", f"{AGENT},{AGENT2}")).returncode == 0
    before = (tmp_path / "plan.json").read_bytes()
    assert len(before) > limit  # so the new plan, of the same share, cannot be written; a fresh log can
    r = run(tmp_path, *base(share, "--dry_run", "--agent_arns", f"{AGENT},{AGENT2}", "--per_file_cost", "0",
                            "--log_dir", str(tmp_path / "log2")), preexec_fn=file_size_limit(limit))
    assert r.returncode == 74, r.stderr
    assert [line for line in r.stderr.splitlines() if " - INFO - " not in line and " - WARNING - " not in line] == [
        f"datasync_multi_agents_scheduler.py: error: cannot write 'plan.json' (File too large): the file is as it was "
        f"before; fix that on {tmp_path} and rerun"]
    assert (tmp_path / "plan.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp file left
    assert "cannot write 'plan.json'" in (tmp_path / "log2" / "ds_ma_sche.log").read_text()


def test_a_log_that_cannot_be_written_is_said_once_and_the_run_goes_on(tmp_path, share):
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "ds_ma_sche.log").write_text("x" * 4096)
    r = run(tmp_path, *base(share, "--dry_run", "--agent_arns", AGENT), preexec_fn=file_size_limit(4000))
    assert r.returncode == 0, r.stderr
    log = tmp_path / "log" / "ds_ma_sche.log"
    assert [line for line in r.stderr.splitlines() if " - INFO - " not in line] == [
        f"datasync_multi_agents_scheduler.py: warning: cannot write the log {log} (File too large); the console "
        "still gets each line"]
    assert "nothing created in AWS" in r.stderr and json.loads((tmp_path / "plan.json").read_text())
