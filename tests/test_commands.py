"""The two commands as the package holds them: main(argv) returns the exit code, and the
log goes beside the scripts in a checkout, else under the current directory; what they do
without boto3, and with an error nothing expected."""

import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from arns import EXEC
from commands import ROOT, offline_env
from datasync_multi import cli, entry, watcher_command


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


def test_the_three_commands_are_installed():
    assert sorted(ENTRY_POINTS) == ["datasync-multi-audit", "datasync-multi-scheduler", "datasync-multi-watcher"]


@pytest.mark.parametrize("command", ["datasync_multi_agents_scheduler.py", "datasync_agent_ha.py",
                                     "datasync_multi_audit.py", *ENTRY_POINTS])
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


ASK_FOR_PYTHON = ("Python 3.10 or newer is needed, and {python} is {version}; on Amazon Linux 2023 or RHEL 9: "
                  "`sudo dnf install python3.11`, then {then}")


@pytest.mark.parametrize("command, prog", [(entry.scheduler, "datasync_multi_agents_scheduler.py"),
                                           (entry.watcher, "datasync-multi-watcher")])
def test_an_older_python_gets_one_line_saying_which_python_and_how_to_get_it(monkeypatch, capsys, command, prog):
    """The entry points as an older interpreter runs them (its version put in sys.version_info):
    one line and exit 2 before anything else is imported; 3.10 itself goes on to the command."""
    monkeypatch.setattr(sys, "argv", [prog, "--help"])
    monkeypatch.setattr(sys, "version_info", (3, 9, 18, "final", 0))
    assert command() == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [
        f"{prog}: error: " + ASK_FOR_PYTHON.format(python=sys.executable, version="3.9.18",
                                                   then="run it with python3.11")]
    monkeypatch.setattr(sys, "version_info", (3, 10, 0, "final", 0))
    with pytest.raises(SystemExit) as help_shown:
        command()
    assert help_shown.value.code == 0 and capsys.readouterr().out.startswith(f"usage: {prog} ")


def older_pythons() -> list[str]:
    """The interpreters older than 3.10 on this machine: pyenv's, and the system's by name."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = glob.glob(os.path.join(root, "versions", "[23].*", "bin", "python"))
    found += glob.glob("/usr/bin/python2*") + glob.glob("/usr/bin/python3.[0-9]")
    old = []
    for path in sorted(set(found)):
        version = re.search(r"(\d+)\.(\d+)[^/]*(?:/bin/python)?$", path)
        if version and (int(version[1]), int(version[2])) < (3, 10) and os.access(path, os.X_OK):
            old.append(path)
    return old


def test_a_real_older_python_gets_the_line_from_both_scripts_and_the_makefile():
    """Each Python older than 3.10 found here (pyenv's 2.7 and 3.6 to 3.9 on our machines) runs
    both scripts, and the Makefile's check, as far as the one line."""
    pythons = older_pythons()
    if not pythons:
        pytest.skip("no Python older than 3.10 on this machine (test_an_older_python_gets_... covers the line)")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    for python in pythons:
        version = subprocess.run([python, "-c", "import sys; print('.'.join(map(str, sys.version_info[:3])))"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        for args, then in (["datasync_multi_agents_scheduler.py", "--help"], "run it with python3.11"), \
                           (["datasync_agent_ha.py", "--once"], "run it with python3.11"), \
                           (["-m", "datasync_multi.entry", "make", "demo"], "`make demo PYTHON=python3.11`"):
            r = subprocess.run([python, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
            prog = "make" if args[0] == "-m" else args[0]
            assert (r.returncode, r.stdout) == (2, ""), (python, args, r.stderr)
            assert r.stderr.splitlines() == [
                f"{prog}: error: " + ASK_FOR_PYTHON.format(python=python, version=version, then=then)], r.stderr


def test_the_makefiles_check_is_silent_on_a_python_new_enough():
    r = subprocess.run([sys.executable, "-m", "datasync_multi.entry", "make", "demo"], capture_output=True,
                       text=True, cwd=ROOT, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


@pytest.fixture
def silent_endpoint():
    """An endpoint that takes each request and never answers: the call waits on it until the
    command is interrupted. Yields its URL and an event set when the first request arrives."""
    arrived, release = threading.Event(), threading.Event()

    class Silent(BaseHTTPRequestHandler):
        def do_POST(self):
            arrived.set()
            release.wait(60)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Silent)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", arrived
    release.set()
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("script", ["datasync_multi_agents_scheduler.py", "datasync_agent_ha.py"])
def test_ctrl_c_is_one_line_and_exit_130(tmp_path, silent_endpoint, script):
    """Interrupted while waiting on DataSync (the scheduler on DescribeAgent, the watcher on its
    first look), as a user's Ctrl-C does: SIGINT to the process."""
    url, arrived = silent_endpoint
    (tmp_path / "fsx" / "d").mkdir(parents=True)
    (tmp_path / "source_file.manifest").write_text("/d\n")
    (tmp_path / "arn_file.txt").write_text(EXEC + "\n")
    dest = "arn:aws:datasync:us-east-1:111122223333:location/loc-0123456789abcdef0"
    args = (["--mount_path_dir", str(tmp_path / "fsx"), "--agent_arns", AGENT, "--nfs_server_name", "nfs",
             "--sub_dir", "/vol1", "--dest_loc", dest] if script.startswith("datasync_multi") else ["--once"])
    env = {**offline_env(tmp_path), "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_ENDPOINT_URL": url}
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, script), "--log_dir", str(tmp_path / "log"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    try:
        assert arrived.wait(60), "the command never called DataSync"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert [line for line in err.splitlines() if " - INFO - " not in line] == [f"{script}: interrupted"]
    log = next((tmp_path / "log").iterdir()).read_text()
    assert log.rstrip().endswith("WARNING - interrupted")
