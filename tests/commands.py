"""Our two commands run as a user runs them, from the checkout's top-level scripts, with no AWS
reachable (``run``), or through their ``main(argv)`` in the test's own process, as those
scripts would run them (``run_in_process``): what the command-line tests share."""

from __future__ import annotations

import importlib
import logging
import os
import resource
import signal
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "datasync_multi_agents_scheduler.py")
WATCHER = os.path.join(ROOT, "datasync_agent_ha.py")
COMMANDS = {SCRIPT: "datasync_multi.scheduler_command", WATCHER: "datasync_multi.watcher_command"}
"""The module whose ``main(argv)`` each top-level script runs."""


def offline_env(tmp_path):
    """An environment in which any AWS call fails fast: no credentials, a dead endpoint."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_DEFAULT_REGION="us-east-1",
               AWS_EC2_METADATA_DISABLED="true", AWS_MAX_ATTEMPTS="1")
    return env


def run(tmp_path, *args, env=None, script=SCRIPT, **popen):
    return subprocess.run([sys.executable, script, "--log_dir", str(tmp_path / "log"), *args],
                          capture_output=True, text=True, env=env or offline_env(tmp_path), cwd=tmp_path, timeout=120,
                          **popen)


def run_in_process(monkeypatch, capsys, tmp_path, *args, env=None, script=SCRIPT) -> subprocess.CompletedProcess:
    """As ``run``, but through the command's ``main(argv)`` in this process (the conftest fixture
    ``in_process`` binds the first three): the same arguments, working directory, environment
    and ``sys.argv[0]`` (the program name in each line it prints), and its exit code whether
    ``main`` returns it or argparse exits (a usage error, --help). The root logger, which the
    command sets up for itself, is put back afterwards and the command's log file closed.
    What needs a process of its own (a file size limit, no boto3, stderr's own encoding)
    stays with ``run``."""
    argv = ["--log_dir", str(tmp_path / "log"), *args]
    env = env or offline_env(tmp_path)
    for name in [n for n in os.environ if n not in env]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if os.environ.get(name) != value:
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [script, *argv])
    main = importlib.import_module(COMMANDS[script]).main
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    capsys.readouterr()  # only what the command prints
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess([sys.executable, script, *argv], code, out, err)


def file_size_limit(limit: int):
    """A ``preexec_fn`` after which the process cannot write past ``limit`` bytes of any file
    (EFBIG): what a full disk does to a write, without root. SIGXFSZ is ignored, as Python
    does, so the write fails rather than the process dying."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    return apply


def flag_help(help_text: str) -> dict[str, str]:
    """Each flag's help in an argparse --help, joined onto one line."""
    out: dict[str, str] = {}
    flag = None
    for line in help_text.splitlines():
        if line.startswith("  -"):
            flag = line.split()[0].rstrip(",")
            out[flag] = ""
        elif not line.strip() or not line.startswith(" "):
            flag = None
        if flag:
            out[flag] += " " + line.strip()
    return {k: " ".join(v.split()) for k, v in out.items()}
