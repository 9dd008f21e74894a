"""The HA watcher, killed (as by SIGKILL or a power cut) right after it starts a retry
execution and before it records it: the tests inject the crash here, so the shipped
watcher has no test switch."""

import os
import runpy
import sys

from datasync_multi import datasync as ds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

start_execution = ds.start_execution


def start_then_die(*args, **kwargs):
    start_execution(*args, **kwargs)
    os._exit(137)


ds.start_execution = start_then_die
sys.argv[0] = os.path.join(ROOT, "datasync_agent_ha.py")
runpy.run_path(sys.argv[0], run_name="__main__")
