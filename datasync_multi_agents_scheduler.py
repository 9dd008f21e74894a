#!/usr/bin/env python3
"""Split an NFS share across the online DataSync agents and start one task per agent.

A thin wrapper kept for existing wrappers and cron lines: the command lives in
``datasync_multi.scheduler_command``, started through
``datasync_multi.entry`` (installed as ``datasync-multi-scheduler``).
"""

import sys

from datasync_multi.entry import scheduler

if __name__ == "__main__":
    sys.exit(scheduler())
