#!/usr/bin/env python3
"""Question 8: static plan against dynamic dispatch, with agents of unequal speed.

On the local emulator, four agents copy at 4, 2, 1 and 1 MB/s, each execution pays a
start overhead (--launch-delay) and each file a small overhead (--file-delay). The same
share is moved by a static plan (--chunks_per_agent 1) and by dynamic dispatch (K = 2, 4,
8), side by side in one run, each through the real scheduler and watcher. Then again with
the fastest agent lost at 30% of the ideal time. Each makespan (first start requested to
last chunk ended, from the emulator's own clock) is divided by the ideal: total bytes over
the agents' summed bandwidth, plus one start overhead; with an agent lost at t, all four
bandwidths until t and the survivors' after. Every run is checked: destination == source,
no path written twice.

    python3 bench/dispatch.py [--mb 240] [--ks 1 2 4 8] [--launch_delay 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from common import REPO, append_results, table
from emulator.harness import Emulator
from emulator.sample import differences

SERVER, EXPORT = "198.51.100.10", "/vol1"
RATES = (4_000_000, 2_000_000, 1_000_000, 1_000_000)
"""Bytes per second of the four agents."""
FILE_DELAY = 0.002
LOST_AT = 0.3
"""When the fastest agent is lost, as a fraction of the ideal time with all four."""


def build_share(root: str, total_mb: int) -> int:
    """Directories of equal files (400 KB each); returns the total bytes."""
    size, per_dir = 400_000, 20
    files = total_mb * 1_000_000 // size
    for i in range(files):
        d = os.path.join(root, f"dir{i // per_dir:03d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as fh:
            fh.write(os.urandom(size))
    return files * size


def run_one(share: str, total: int, k: int, launch_delay: float, lose: bool, poll: float, depth: int = 1) -> dict:
    with tempfile.TemporaryDirectory() as top:
        s3, work = os.path.join(top, "s3"), os.path.join(top, "work")
        os.makedirs(s3)
        os.makedirs(work)
        with open(os.path.join(work, "m"), "w") as fh:
            fh.write("/\n")
        extra = ["--launch-delay", str(launch_delay), "--file-delay", str(FILE_DELAY),
                 "--agent-bytes-per-second", ",".join(map(str, RATES))]
        with Emulator().start({f"{SERVER}:{EXPORT}": share}, s3, agents=len(RATES), phase_delay=0.02,
                              offline_error_delay=1.0, extra_args=extra) as emu:
            dest = emu.client().create_location_s3(
                S3BucketArn="arn:aws:s3:::bench", Subdirectory="/x",
                S3Config={"BucketAccessRoleArn": "arn:aws:iam::111122223333:role/r"})["LocationArn"]
            env = emu.env()

            def script(name: str, *args: str, background: bool = False):
                cmd = [sys.executable, os.path.join(REPO, name), "--log_dir", os.path.join(work, "log"), *args]
                if background:
                    out = open(os.path.join(work, "watcher.out"), "w")  # noqa: SIM115 - lives with the process
                    return subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
                return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, check=True)

            script("datasync_multi_agents_scheduler.py", "--nfs_server_name", SERVER, "--sub_dir", EXPORT,
                   "--mount_path_dir", share, "--dest_loc", dest, "--source_file", os.path.join(work, "m"),
                   "--chunks_per_agent", str(k), *(["--queue_depth", str(depth)] if depth > 1 else []))
            watcher = script("datasync_agent_ha.py", "--timeout_sec", str(poll), "--offline_threshold_sec", "0",
                             background=True)
            first = min(e["start_time"] for e in emu.state()["executions"])
            ideal_all = total / sum(RATES)
            lost_at = None
            try:
                if lose:
                    time.sleep(max(0.0, first + LOST_AT * ideal_all - time.time()))  # the outage's moment
                    lost_at = time.time() - first
                    emu.set_agent(emu.agent_arns()[0], status="OFFLINE")
                code = watcher.wait(timeout=20 * ideal_all + 120)
            finally:
                if watcher.poll() is None:
                    watcher.kill()
            if code != 0:
                with open(os.path.join(work, "watcher.out")) as fh:
                    sys.exit(f"K={k}: the watcher exited {code}:\n" + fh.read()[-3000:])
            state = emu.state()
            end = max(e["end_time"] for e in state["executions"] if e["status"] == "SUCCESS")
            exact = differences(share, os.path.join(s3, "bench", "x")) == [] and max(state["writes"].values()) == 1
            if lost_at is None:
                ideal = launch_delay + ideal_all
            else:
                moved = sum(RATES) * lost_at
                ideal = launch_delay + lost_at + (total - moved) / sum(RATES[1:])
            return {"makespan": end - first, "ideal": ideal, "executions": len(state["executions"]),
                    "exact": exact}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=240, help="share size in MB")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8], help="--chunks_per_agent values")
    ap.add_argument("--launch_delay", type=float, default=0.5, help="per-execution start overhead, seconds")
    ap.add_argument("--poll", type=float, default=0.25, help="the watcher's --timeout_sec")
    ap.add_argument("--queued", type=int, nargs="*", default=[4], help="K values also run with --queue_depth 2")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as top:
        share = os.path.join(top, "share")
        total = build_share(share, a.mb)
        rows = []
        for lose in (False, True):
            for k, depth in [(k, 1) for k in a.ks] + [(k, 2) for k in a.queued]:
                r = run_one(share, total, k, a.launch_delay, lose, a.poll, depth)
                plan = "static" if k == 1 else f"dynamic, K={k}" + (", queue depth 2" if depth > 1 else "")
                rows.append(["fastest agent lost at 30%" if lose else "all four agents",
                             plan, r["executions"], r["makespan"], r["ideal"],
                             r["makespan"] / r["ideal"], "yes" if r["exact"] else "NO"])
                print(rows[-1], flush=True)
    body = table(["agents", "plan", "executions", "makespan s", "ideal s", "makespan / ideal", "exact copy"], rows)
    body += (f"\n\n{total / 1e6:.0f} MB in 400 KB files, agents at 4, 2, 1 and 1 MB/s, a start overhead of "
             f"{a.launch_delay:g} s per execution and {FILE_DELAY * 1000:g} ms per file; the watcher polls every "
             f"{a.poll:g} s (`--offline_threshold_sec 0`; the emulator fails a running execution 1 s after its agent "
             "goes OFFLINE). Ideal: total bytes over summed bandwidth plus one start overhead; with the fastest "
             "agent lost at t, all four bandwidths until t and the other three after. Exact copy: destination "
             "== source and no path written twice.\n")
    append_results("8. Static plan against dynamic dispatch, agents at 4:2:1:1", body)


if __name__ == "__main__":
    main()
