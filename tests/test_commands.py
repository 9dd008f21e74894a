"""The two commands as the package holds them: main(argv) returns the exit code, and the
log goes beside the scripts in a checkout, else under the current directory; what they do
without boto3, and with an error nothing expected."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from commands import ROOT, offline_env
from datasync_multi import cli, watcher_command


def test_in_a_checkout_the_log_is_beside_the_scripts():
    assert cli.default_log_dir() == os.path.join(ROOT, "log")
    assert cli.default_log_dir(os.path.join(ROOT, "datasync_multi")) == os.path.join(ROOT, "log")


def test_installed_the_log_is_under_the_current_directory(tmp_path, monkeypatch):
    site_packages = tmp_path / "lib" / "site-packages"
    (site_packages / "datasync_multi").mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert cli.default_log_dir(str(site_packages / "datasync_multi")) == str(work / "log")


def test_main_returns_the_exit_code_and_says_why_on_one_line(tmp_path, capsys):
    assert watcher_command.main(["--arn_file", str(tmp_path / "missing.txt")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and len(err.strip().splitlines()) == 1



ENTRY_POINTS = dict(re.findall(r'^(datasync-multi-\w+) = "([\w.]+:\w+)"$', open(os.path.join(ROOT, "pyproject.toml"))
                               .read(), re.MULTILINE))
AGENT = "arn:aws:datasync:us-east-1:111122223333:agent/agent-0123456789abcdef0"
BOOM = "def boom(*args, **kwargs):\n    raise RuntimeError('boom')\n"


def python(tmp_path, code: str, pythonpath: list[str], cwd=None):
    env = {**offline_env(tmp_path), "PYTHONPATH": os.pathsep.join(pythonpath)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd or tmp_path,
                          timeout=120)


def test_both_commands_are_installed():
    assert sorted(ENTRY_POINTS) == ["datasync-multi-scheduler", "datasync-multi-watcher"]


@pytest.mark.parametrize("command", ["datasync_multi_agents_scheduler.py", "datasync_agent_ha.py", *ENTRY_POINTS])
def test_without_boto3_a_command_says_how_to_install_it_on_one_line(tmp_path, command):
    (tmp_path / "shadow" / "boto3").mkdir(parents=True)
    (tmp_path / "shadow" / "boto3" / "__init__.py").write_text('raise ImportError("No module named \'boto3\'")\n')
    code = f"import runpy, sys\nsys.argv = [{command!r}, '--help']\n"
    if command.endswith(".py"):
        code += f"runpy.run_path({os.path.join(ROOT, command)!r}, run_name='__main__')"
    else:
        module, function = ENTRY_POINTS[command].split(":")
        code += f"from {module} import {function}\nsys.exit({function}())"
    r = python(tmp_path, code, [str(tmp_path / "shadow"), ROOT])
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.splitlines() == [
        f"{command}: error: boto3 is not installed for {sys.executable} (No module named 'boto3'): run `make demo` or "
        "`pip install -r requirements.txt` (`pip install .` for the installed commands)"]
    assert r.stdout == ""


def test_an_unexpected_error_is_one_line_and_exit_70_with_the_traceback_in_the_log(tmp_path):
    """A library call that fails as nothing expects (os.scandir, in the scan's threads)."""
    (tmp_path / "share" / "d").mkdir(parents=True)
    (tmp_path / "source_file.manifest").write_text("/d\n")
    script = os.path.join(ROOT, "datasync_multi_agents_scheduler.py")
    argv = [script, "--log_dir", str(tmp_path / "log"), "--dry_run", "--agent_arns", AGENT, "--mount_path_dir",
            str(tmp_path / "share")]
    r = python(tmp_path, f"import os, runpy, sys\n{BOOM}os.scandir = boom\nsys.argv = {argv!r}\n"
                         f"runpy.run_path({script!r}, run_name='__main__')", [ROOT])
    log = tmp_path / "log" / "ds_ma_sche.log"
    assert r.returncode == 70, r.stderr
    assert [line for line in r.stderr.splitlines() if " - INFO - " not in line] == [
        f"datasync_multi_agents_scheduler.py: unexpected error: RuntimeError: boom; the traceback is in {log}"]
    assert "Traceback" not in r.stderr
    kept = log.read_text()
    assert "Traceback (most recent call last)" in kept and "in boom\n" in kept and "RuntimeError: boom" in kept


@pytest.mark.parametrize("log_dir_is_a_file", [False, True])
def test_an_unexpected_error_before_logging_keeps_its_traceback_in_the_default_log(tmp_path, log_dir_is_a_file):
    """Installed (the package alone on the path), the default log is log/ under the current
    directory; os.access fails while the flags are checked, before logging is set up."""
    shutil.copytree(os.path.join(ROOT, "datasync_multi"), tmp_path / "site" / "datasync_multi",
                    ignore=shutil.ignore_patterns("__pycache__"))
    work = tmp_path / "work"
    work.mkdir()
    (work / "arn_file.txt").write_text("")
    if log_dir_is_a_file:
        (work / "log").write_text("not a directory")
    r = python(tmp_path, f"import os, sys\n{BOOM}os.access = boom\nsys.argv = ['datasync-multi-watcher', '--once']\n"
                         "from datasync_multi.entry import watcher\nsys.exit(watcher())",
               [str(tmp_path / "site")], cwd=work)
    assert r.returncode == 70, r.stderr
    [line] = r.stderr.splitlines()
    log = work / "log" / "ds_ha.log"
    if log_dir_is_a_file:
        assert line == ("datasync-multi-watcher: unexpected error: RuntimeError: boom; there is no log to keep its "
                        f"traceback in (cannot write the log {str(log)!r}: File exists)")
    else:
        assert line == f"datasync-multi-watcher: unexpected error: RuntimeError: boom; the traceback is in {log}"
        assert "Traceback (most recent call last)" in log.read_text() and "RuntimeError: boom" in log.read_text()
