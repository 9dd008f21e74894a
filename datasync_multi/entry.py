"""The commands' entry points, installed and as the checkout's scripts run them.

Any Python parses this module and runs it as far as its checks, 2.7 and every 3.x: it has
no annotations, f-strings or ``from __future__ import annotations``, which an older Python
refuses before a line of the module runs. So a Python older than the package needs says so
on one line, with how to get a newer one, and exit 2, rather than a SyntaxError from the
next module it imports. Then the one module that speaks boto3 (``datasync``) is imported
before a command is, so a missing boto3 is one line and exit 2 rather than an ImportError's
traceback. Nothing here may import boto3 at module level, or a module that does (``cli``
does).

``python -m datasync_multi.entry make`` is the Makefile's check of the interpreter it is
given (``make demo PYTHON=python3.11``): silent and exit 0 on a Python new enough, else the
one line and exit 2.
"""

import importlib
import os
import sys

MIN_PYTHON = (3, 10)
"""pyproject.toml's requires-python."""
EXIT_USAGE = 2
"""``errors.EXIT_USAGE``: bad environment (a Python too old, no boto3)."""
GET_PYTHON = "on Amazon Linux 2023 or RHEL 9: `sudo dnf install python3.11`"
"""How to get a new enough Python where our users are: those systems' python3 is 3.9."""


def scheduler():
    # type: () -> int
    """``datasync-multi-scheduler``, and ``datasync_multi_agents_scheduler.py`` in a checkout."""
    return _main("datasync_multi.scheduler_command")


def watcher():
    # type: () -> int
    """``datasync-multi-watcher``, and ``datasync_agent_ha.py`` in a checkout."""
    return _main("datasync_multi.watcher_command")


def audit():
    # type: () -> int
    """``datasync-multi-audit``, and ``datasync_multi_audit.py`` in a checkout."""
    return _main("datasync_multi.audit_command")


def python_too_old(then):
    # type: (str) -> str | None
    """The line (without the program's name) for a Python older than ``MIN_PYTHON``, ending
    in what to do once a newer one is installed (``then``); None for one new enough."""
    if tuple(sys.version_info[:2]) >= MIN_PYTHON:
        return None
    have = ".".join(str(part) for part in sys.version_info[:3])
    need = ".".join(str(part) for part in MIN_PYTHON)
    return ("Python " + need + " or newer is needed, and " + (sys.executable or "this interpreter") + " is "
            + have + "; " + GET_PYTHON + ", then " + then)


def _main(command):
    # type: (str) -> int
    prog = os.path.basename(sys.argv[0])
    too_old = python_too_old("run it with python3.11")
    if too_old:
        sys.stderr.write(prog + ": error: " + too_old + "\n")
        return EXIT_USAGE
    try:
        importlib.import_module("datasync_multi.datasync")
    except ImportError as exc:
        if (exc.name or "").startswith("datasync_multi"):
            raise  # our own module is missing: a broken checkout, not a missing boto3
        sys.stderr.write(prog + ": error: boto3 is not installed for " + sys.executable + " (" + str(exc) + "): "
                         "run `make demo` or `pip install -r requirements.txt` (`pip install .` for the installed "
                         "commands)\n")
        return EXIT_USAGE
    return importlib.import_module(command).main()


if __name__ == "__main__":
    too_old = python_too_old("`make " + " ".join(sys.argv[2:] or ["demo"]) + " PYTHON=python3.11`")
    if too_old:
        sys.stderr.write((sys.argv[1] if len(sys.argv) > 1 else "python") + ": error: " + too_old + "\n")
    sys.exit(EXIT_USAGE if too_old else 0)
