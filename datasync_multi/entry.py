"""The commands' entry points, installed and as the checkout's scripts run them.

The one module that speaks boto3 (``datasync``) is imported before a command is, so a
missing boto3 is one line and exit 2 rather than an ImportError's traceback. Nothing here
may import boto3 at module level, or a module that does (``cli`` does).
"""

from __future__ import annotations

import importlib
import os
import sys

EXIT_NO_BOTO3 = 2
"""``errors.EXIT_USAGE``: bad environment."""


def scheduler() -> int:
    """``datasync-multi-scheduler``, and ``datasync_multi_agents_scheduler.py`` in a checkout."""
    return _main("datasync_multi.scheduler_command")


def watcher() -> int:
    """``datasync-multi-watcher``, and ``datasync_agent_ha.py`` in a checkout."""
    return _main("datasync_multi.watcher_command")


def _main(command: str) -> int:
    try:
        importlib.import_module("datasync_multi.datasync")
    except ImportError as exc:
        if (exc.name or "").startswith("datasync_multi"):
            raise  # our own module is missing: a broken checkout, not a missing boto3
        print(f"{os.path.basename(sys.argv[0])}: error: boto3 is not installed for {sys.executable} ({exc}): "
              "run `make demo` or `pip install -r requirements.txt` (`pip install .` for the installed commands)",
              file=sys.stderr)
        return EXIT_NO_BOTO3
    return importlib.import_module(command).main()
