"""Plan scale on a synthetic tree model: time and peak memory of make_plan at 10 million files.

    python3 bench/plan_model.py [--agents 32] [--sizes 1000000:100000,10000000:1000000] [--flat 10000000]

Each size (files:directories) is built in memory in a fresh process, as the scan would
leave it (one record per directory, nothing per file), with a skewed shape: random
fan-out, file counts and sizes, and three flat directories of 100,000 files each that
the planner must cut by name (their names come from a generator, as a second read of the
directory would give them). Reported: time to build the model, time of ``make_plan()``,
and the peak resident memory of the process. The estimate for 100 million files in 10
million directories extrapolates memory linearly in directories from the two largest runs.

``--flat N`` adds a run over one directory of N files (names like ``1700001234.M0001234.mx``,
produced by a generator each time the planner reads the directory): the planner must cut
it evenly by name while holding a bounded histogram, not N names.

Targets: under 60 s and under 2 GB for 10 million files in 1 million directories; the
estimate for 100 million files under 4 GB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from common import append_results, table

MODEL = r"""
import json, random, resource, sys, time
from datasync_multi.plan import make_plan
from datasync_multi.scan import Dir, Tree, aggregate

files, ndirs, nagents = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(7)
t0 = time.perf_counter()
if ndirs == 1:  # one flat directory
    root = Dir(own_files=files, bytes=files * 5000)
    def loose(rel):
        return ((f"{1700000000 + (j * 7919) % 10**8}.M{j:08d}.mx", 5000) for j in range(files))
    tree = Tree({"": root}, ("",), loose, largest_file=5000)
    aggregate(tree)
    t1 = time.perf_counter()
    agents = [f"arn:aws:datasync:us-east-1:111122223333:agent/agent-{i:017x}" for i in range(1, nagents + 1)]
    plan = make_plan(tree, agents, task_name="T_")
    t2 = time.perf_counter()
    print(json.dumps({"files": files, "dirs": 1, "build": t1 - t0, "plan": t2 - t1,
                      "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "balance": plan.balance,
                      "units": sum(len(t.units) for t in plan.tasks),
                      "patterns": max(len(t.includes) for t in plan.tasks)}))
    sys.exit(0)
from collections import deque
dirs = {"": Dir()}
queue, made = deque([""]), 1
while made < ndirs:
    parent = queue.popleft()
    children = []
    for j in range(min(rng.randint(2, 20), ndirs - made)):
        rel = f"{parent}/d{j:02d}" if parent else f"d{j:02d}"
        dirs[rel] = Dir()
        children.append(rel)
        queue.append(rel)
        made += 1
    dirs[parent].children = tuple(children)
del queue
flat = rng.sample(sorted(dirs), 3)
per_dir = max((files - 300_000) // ndirs, 1)
left = files
def size_of(rel):  # every file of a directory has one size, from its path: nothing stored per file
    return 200 + hash(rel) % 400_000

for rel, d in dirs.items():
    n = 100_000 if rel in flat else min(left, rng.randint(0, 2 * per_dir))
    left -= n
    d.own_files, d.bytes = n, n * size_of(rel)
spare = next(d for rel, d in dirs.items() if rel and rel not in flat)
spare.own_files += left  # the files the random draws left over
spare.bytes = spare.own_files * size_of(next(rel for rel, d in dirs.items() if d is spare))

def loose(rel):
    size = size_of(rel)
    return ((f"m{(j * 7919) % 1000003:07d}.eml", size) for j in range(dirs[rel].own_files))

tree = Tree(dirs, ("",), loose, largest_file=max(size_of(rel) for rel in dirs))
aggregate(tree)
t1 = time.perf_counter()
agents = [f"arn:aws:datasync:us-east-1:111122223333:agent/agent-{i:017x}" for i in range(1, nagents + 1)]
plan = make_plan(tree, agents, task_name="T_")
t2 = time.perf_counter()
print(json.dumps({"files": dirs[""].files, "dirs": len(dirs), "build": t1 - t0, "plan": t2 - t1,
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "balance": plan.balance,
                  "units": sum(len(t.units) for t in plan.tasks),
                  "patterns": max(len(t.includes) for t in plan.tasks)}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=32)
    ap.add_argument("--sizes", default="1000000:100000,10000000:1000000")
    ap.add_argument("--flat", type=int, help="also one directory of this many files")
    a = ap.parse_args()
    runs = []
    specs = a.sizes.split(",") + ([f"{a.flat}:1"] if a.flat else [])
    for spec in specs:
        files, ndirs = (int(x) for x in spec.split(":"))
        r = subprocess.run([sys.executable, "-c", MODEL, str(files), str(ndirs), str(a.agents)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stderr[-2000:], file=sys.stderr)
            return 1
        runs.append(json.loads(r.stdout))
        print(runs[-1], file=sys.stderr)
    rows = [[f"{r['files']:,}", f"{r['dirs']:,}", f"{r['build']:.1f}", f"{r['plan']:.1f}",
             f"{r['rss'] / 2**20:,.0f}", f"{r['balance']:.3f}", r["units"], r["patterns"]] for r in runs]
    body = table(["files", "dirs", "model build s", "make_plan s", "peak RSS MiB", "balance", "units",
                  "most patterns in a task"], rows)
    tree_runs = [r for r in runs if r["dirs"] > 1]
    if len(tree_runs) >= 2:
        small, big = tree_runs[-2], tree_runs[-1]
        per_dir = (big["rss"] - small["rss"]) / (big["dirs"] - small["dirs"])
        estimate = big["rss"] + per_dir * (10_000_000 - big["dirs"])
        body += (f"\n\nMemory grows by {per_dir:,.0f} bytes per directory between the two largest runs; "
                 f"100 million files in 10 million directories would peak near {estimate / 2**30:.1f} GiB.")
    append_results(f"Plan scale on a tree model ({a.agents} agents)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
