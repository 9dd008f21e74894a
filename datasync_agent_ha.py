#!/usr/bin/env python3
"""Watch the executions in the arn file and move a failed or stranded share to a healthy agent.

A thin wrapper kept for existing wrappers and cron lines: the command lives in
``datasync_multi.watcher_command``, started through
``datasync_multi.entry`` (installed as ``datasync-multi-watcher``).
"""

import sys

from datasync_multi.entry import watcher

if __name__ == "__main__":
    sys.exit(watcher())
