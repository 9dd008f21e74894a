#!/usr/bin/env python3
"""Question 3: does a dry run of a million files stay fast and small?

    python3 bench/plan_scale.py [--agents 16] [--sizes 100000:10000,1000000:100000]

For each tree (files:directories, skewed shape), two measurements side by side:

- the real CLI, ``datasync_multi_agents_scheduler.py --dry_run --agent_arns ...`` (scan,
  plan, write plan.json, print the table), under ``/usr/bin/time -v``: wall time and peak
  memory (maximum resident set size) of the whole run;
- the same two steps in a fresh Python process, timed apart: ``scan()`` and then
  ``make_plan()`` (default per-file cost and max_depth), with the peak RSS after each.

Targets (reported, not asserted): planning, after the scan, under 5 s; peak memory of
the dry run under 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from common import REPO, agent_arns, append_results, ensure_tool, table
from gen_tree import ensure_tree, totals_of

SPLIT_SNIPPET = r"""
import json, resource, sys, time
from datasync_multi.scan import scan
from datasync_multi.plan import make_plan
def rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0 = time.perf_counter(); tree = scan(sys.argv[1], ("",)); t1 = time.perf_counter(); r1 = rss()
plan = make_plan(tree, sys.argv[2].split(","), task_name="Distributed_Tasks_")
t2 = time.perf_counter()
print(json.dumps({"scan": t1 - t0, "plan": t2 - t1, "rss_scan": r1, "rss_plan": rss(),
                  "balance": plan.balance, "tasks": len(plan.tasks), "threshold": plan.threshold,
                  "units": sum(len(t.units) for t in plan.tasks)}))
"""


def cli_run(tree: str, agents: list[str], workdir: str) -> dict:
    manifest = os.path.join(workdir, "source_file.manifest")
    with open(manifest, "w") as fh:
        fh.write("/\n")
    plan_file = os.path.join(workdir, "plan.json")
    cmd = ["/usr/bin/time", "-v", sys.executable, os.path.join(REPO, "datasync_multi_agents_scheduler.py"),
           "--mount_path_dir", tree, "--source_file", manifest, "--dry_run", "--agent_arns", ",".join(agents),
           "--plan_file", plan_file, "--log_dir", workdir]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"dry run failed ({r.returncode}): {r.stderr[-500:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
    with open(plan_file) as fh:
        plan = json.load(fh)
    return {"wall": wall, "rss": rss_kb * 1024, "balance": plan["balance"], "tasks": len(plan["tasks"]),
            "cmd": " ".join(cmd[2:4]) + " --mount_path_dir TREE --source_file M --dry_run --agent_arns "
                   f"<{len(agents)} ARNs> --plan_file P --log_dir L"}


def split_run(tree: str, agents: list[str]) -> dict:
    r = subprocess.run([sys.executable, "-c", SPLIT_SNIPPET, tree, ",".join(agents)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"scan/plan failed: {r.stderr[-500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=16)
    p.add_argument("--sizes", default="100000:10000,1000000:100000", help="files:dirs,...")
    a = p.parse_args(argv)
    if not ensure_tool("/usr/bin/time", "time"):
        print("GNU time missing: apt-get install -y time", file=sys.stderr)
        return 2
    agents = agent_arns(a.agents)
    rows, verdict, cmd = [], [], ""
    for spec in a.sizes.split(","):
        files, dirs = (int(x) for x in spec.split(":"))
        tree = ensure_tree("skewed", files, 1, dirs)
        tot = totals_of(tree)
        for step in ("warm", "timed"):  # warm the page cache, as in question 1
            with tempfile.TemporaryDirectory(prefix="bench-plan-") as work:
                cli = cli_run(tree, agents, work)
            split = split_run(tree, agents)
            print(f"  [{files:,} files] {step}: cli {cli['wall']:.1f} s, scan {split['scan']:.1f} s, "
                  f"plan {split['plan']:.1f} s", file=sys.stderr, flush=True)
        cmd = cli["cmd"]
        rows.append([f"{tot['files']:,} files / {tot['dirs']:,} dirs", f"{tot['bytes'] / 2**40:.1f} TiB",
                     cli["wall"], cli["rss"] / 2**20, split["scan"], split["plan"],
                     split["rss_scan"] / 2**20, split["rss_plan"] / 2**20,
                     f"{cli['balance']:.3f} ({cli['tasks']} tasks, {split['units']:,} units)"])
        mem, plan_s = cli["rss"] / 2**20, split["plan"]
        verdict.append(f"- {tot['files']:,} files: planning under 5 s: **{'met' if plan_s < 5 else 'missed'}** "
                       f"({plan_s:.1f} s); peak memory under 300 MB: **{'met' if mem < 300 else 'missed'}** "
                       f"({mem:.0f} MiB)")
    header = ["tree", "size", "CLI dry run: wall s", "CLI peak RSS MiB", "scan() s", "make_plan() s",
              "RSS after scan MiB", "RSS after plan MiB", "balance"]
    body = (f"{a.agents} agents, default per-file cost (512 KiB) and max_depth (5), "
            "the scan's default threads (1 on local disk), local disk, warm cache. CLI: `" + cmd
            + "` under `/usr/bin/time -v`; scan()/make_plan() timed apart in a fresh process.\n\n"
            + table(header, rows) + "\n\n" + "\n".join(verdict) + "\n")
    append_results("3. Plan scale", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
