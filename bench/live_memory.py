"""Live mode's memory on a tree model: peak memory of the live planner follows the walk's
open frontier, not the share.

    python3 bench/live_memory.py [--agents 32] [--depths 5,6] [--files_per_dir 10]

Each run builds nothing up front: a random tree (fan-out 2 to 20 down to a given depth,
files per directory random around ``--files_per_dir``, sizes from the path, one flat
directory of 100,000 files cut by name) is generated as it is walked, depth-first as
the scan's threads walk it, and fed to ``LivePlanner`` directory by directory. Chunks go
to a counter, as they would go to the journal. Reported per run: directories and files,
time, peak resident memory of the process, the most directories open at once, units and
chunks. The estimate for 100 million files takes the larger run's peak and adds what the
open frontier of a 100-million-file walk holds (its open directories, at the larger run's
bytes per open directory); the whole-tree plan needs 2.5 GiB there (bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from common import append_results, table

MODEL = r"""
import json, random, resource, sys, time, zlib
from datasync_multi.live import LivePlanner, Sizing
from datasync_multi.scan import Dir

depth, per_dir, nagents = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
FLAT = "d03/d01"

def shape(rel, level):
    rng = random.Random(zlib.crc32(rel.encode()))
    fanout = rng.randint(2, 20) if level < depth else 0
    files = 100_000 if rel == FLAT else rng.randint(0, 2 * per_dir)
    return fanout, files, 200 + zlib.crc32(rel.encode()) % 400_000

def loose(rel):
    _, files, size = shape(rel, rel.count("/") + 1 if rel else 0)
    return ((f"m{(j * 7919) % 1000003:07d}.eml", size) for j in range(files))

chunks = units = 0
def on_chunk(chunk):
    global chunks, units
    chunks += 1
    units += len(chunk.units)

# the share's cost as an estimate would give it: expected directories and files
mean_fanout = 11
expected_dirs = sum(mean_fanout ** k for k in range(depth + 1))
estimate = expected_dirs * (per_dir * 200_000 + (per_dir + 1) * 512 * 1024)
sizing = Sizing.guided(estimate, nagents, 4, 512 * 1024)
planner = LivePlanner(("",), sizing, loose, lambda rel: False, on_chunk, lambda record: None,
                      lone_roots=frozenset(), tail_pieces=nagents)
t0 = time.perf_counter()
stack = [("", 0)]
dirs = files = most_open = 0
while stack:
    rel, level = stack.pop()
    fanout, own, size = shape(rel, level)
    children = tuple(f"{rel}/d{j:02d}" if rel else f"d{j:02d}" for j in range(fanout))
    planner.listed(rel, Dir(own_files=own, bytes=own * size, children=children))
    dirs += 1
    files += own
    most_open = max(most_open, len(planner.nodes))
    stack += [(c, level + 1) for c in reversed(children)]
planner.finish()
print(json.dumps({"dirs": dirs, "files": files, "seconds": time.perf_counter() - t0,
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "open": most_open,
                  "units": units, "chunks": chunks}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=32)
    ap.add_argument("--depths", default="5,6")
    ap.add_argument("--files_per_dir", type=int, default=10)
    a = ap.parse_args()
    runs = []
    for depth in a.depths.split(","):
        r = subprocess.run([sys.executable, "-c", MODEL, depth, str(a.files_per_dir), str(a.agents)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stderr[-2000:], file=sys.stderr)
            return 1
        runs.append(json.loads(r.stdout))
        print(runs[-1], file=sys.stderr)
    rows = [[f"{r['files']:,}", f"{r['dirs']:,}", f"{r['seconds']:.0f}", f"{r['rss'] / 2**20:,.0f}",
             f"{r['open']:,}", f"{r['units']:,}", r["chunks"]] for r in runs]
    body = table(["files", "dirs", "planner s", "peak RSS MiB", "most dirs open", "units", "chunks"], rows)
    small, big = runs[0], runs[-1]
    body += (f"\n\nFrom {small['dirs']:,} to {big['dirs']:,} directories ({big['dirs'] / small['dirs']:.0f}x), the "
             f"peak grew {big['rss'] / small['rss']:.2f}x and the open frontier from {small['open']:,} to "
             f"{big['open']:,} directories: memory follows the frontier (depth x fan-out), not the share. A "
             "100-million-file share of the same shape is one level deeper again: its frontier holds about as "
             "many directories more as one level adds, so its peak stays near the larger run's.")
    append_results(f"Live planner memory on a tree model ({a.agents} agents)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
