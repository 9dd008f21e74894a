"""The watcher, killed (as by SIGKILL or a power cut) around the start of an execution:
``before_start`` dies once its decision is saved and before DataSync is asked to start
anything; ``after_start`` dies right after the start and before the ARN is recorded. The
tests inject the crash here, so the shipped watcher has no test switch.

usage: python tests/crash_watcher.py before_start|after_start <watcher flags>"""

import os
import runpy
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[0] = ROOT  # what the script it stands in for has first: the checkout's package, not an installed one

from datasync_multi import datasync as ds  # noqa: E402 - from the checkout, as above

start_execution = ds.start_execution


def die_before(*args, **kwargs):
    os._exit(137)


def start_then_die(*args, **kwargs):
    start_execution(*args, **kwargs)
    os._exit(137)


CRASHES = {"before_start": die_before, "after_start": start_then_die}
mode = next(arg for arg in sys.argv[1:] if arg in CRASHES)
sys.argv.remove(mode)
ds.start_execution = CRASHES[mode]
sys.argv[0] = os.path.join(ROOT, "datasync_agent_ha.py")
runpy.run_path(sys.argv[0], run_name="__main__")
