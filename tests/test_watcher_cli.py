"""The watcher refuses bad input on one line with exit 2, before any AWS call (through its
main(argv) in this process: the ``in_process`` fixture)."""

import json

import pytest

from arns import AGENTS, EXEC
from commands import WATCHER, flag_help, offline_env


@pytest.mark.parametrize("args,message", [
    (["--arn_file", "missing.txt"], "does not exist"),
    (["--max_retries", "-1"], "must not be negative"),
    (["--timeout_sec", "0"], "must be above 0"),
    (["--offline-threshold-sec", "-5"], "must not be negative"),
    (["--timeout_sec", "soon"], "invalid float value"),
    (["--ledger_file", "nodir/ledger.json"], "its directory"),
    (["--html", "nodir/run.html"], "--html 'nodir/run.html': its directory"),
    (["--log_dir", "arn_file.txt/log"], "cannot write the log"),
])
def test_bad_input(tmp_path, in_process, args, message):
    (tmp_path / "arn_file.txt").write_text("")
    r = in_process(*args, script=WATCHER)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_an_arn_file_that_lists_nothing_is_one_line_not_success(tmp_path, in_process):
    (tmp_path / "arn_file.txt").write_text("# nothing started yet\n")
    r = in_process("--once", script=WATCHER)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines() == [
        "datasync_agent_ha.py: error: arn file 'arn_file.txt' lists no execution: nothing to watch (the scheduler "
        "writes each execution there as it starts it; rerun the scheduler if it stopped before)"]


def test_help_shows_defaults_and_exit_codes(in_process):
    r = in_process("--help", script=WATCHER)
    assert r.returncode == 0, r.stderr
    flags = flag_help(r.stdout)
    for flag, default in (("--timeout_sec", "300"), ("--max_retries", "the run's, 1 at launch"),
                          ("--offline_threshold_sec", "the run's, 600 at launch"), ("--plan_file", "plan.json"),
                          ("--arn_file", "arn_file.txt")):
        assert f"(default: {default})" in flags[flag], flags[flag]
    assert r.stdout.startswith("usage: datasync_agent_ha.py [options]\n\n")  # no flag is required
    watching, cleaning = r.stdout.split("exit codes", 1)[1].split("with --cleanup:")
    assert [c for c in watching.split() if c.isdigit()] == ["0", "1", "2", "3", "4", "5", "70", "74", "130"]
    assert [c for c in cleaning.split() if c.isdigit()] == ["0", "1", "2", "3", "6"]


AGENT, AGENT2 = AGENTS[:2]


@pytest.mark.parametrize("given", [[f"{AGENT} {AGENT2}"], [f"{AGENT},{AGENT2}"], [AGENT, AGENT2]])
def test_agent_arns_are_separated_by_commas_or_spaces(tmp_path, in_process, given):
    """Each is checked on its own: a valid pair goes past the flags (to the empty arn file),
    and a bad one among them is named alone."""
    (tmp_path / "arn_file.txt").write_text("")
    r = in_process("--once", "--agent_arns", *given, script=WATCHER)
    assert r.returncode == 2 and "lists no execution" in r.stderr, r.stderr
    r = in_process("--once", "--agent_arns", *given, "agent-7", script=WATCHER)
    assert r.returncode == 2 and r.stderr.splitlines() == [
        "datasync_agent_ha.py: error: --agent_arns: 'agent-7' is not a valid AgentArn"], r.stderr


def test_a_damaged_ledger_is_one_line_that_says_what_to_do_before_any_aws_call(tmp_path, in_process):
    (tmp_path / "arn_file.txt").write_text(EXEC + "\n")
    whole = json.dumps({"version": 1, "scopes": {EXEC: {"attempts": [{"agent": "a", "execution": EXEC}],
                                                        "retries": 0}}}, indent=2)
    damaged = whole[:whole.index(EXEC, whole.index("execution")) + 20]  # cut inside a string, as a lost write leaves it
    (tmp_path / "arn_file.txt.ledger.json").write_text(damaged)
    with pytest.raises(json.JSONDecodeError) as parser:
        json.loads(damaged)
    env = {**offline_env(tmp_path), "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}  # AWS is never asked
    r = in_process("--once", script=WATCHER, env=env)
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [
        f"datasync_agent_ha.py: error: ledger 'arn_file.txt.ledger.json' is damaged ({parser.value}): the watcher "
        "will not guess at it; put back a copy of it (an older copy is safe: executions this run started that it does "
        "not list are found by their tags and adopted), or pass another --ledger_file"]
    assert (tmp_path / "arn_file.txt.ledger.json").read_text() == damaged
    assert "Unterminated string" in str(parser.value)
