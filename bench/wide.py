#!/usr/bin/env python3
"""Question 2b: balance on a wide directory (one parent, tens of thousands of subdirectories).

A share like /home with 50,000 user directories: one pattern per child would pass
DataSync's 102,400-character filter limit; prefix groups (/home/u1*) carry the children
in a few hundred patterns.

    python3 bench/wide.py [--dirs 50000] [--agents 4,8,16,32]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

from common import BENCH, agent_arns, append_results, table
from datasync_multi.plan import make_plan
from datasync_multi.scan import scan


def ensure_wide(dirs: int, seed: int = 1) -> str:
    """<dirs> user directories under home/, one sparse file each (Pareto sizes), made once."""
    top = os.path.join(BENCH, "work", f"wide-d{dirs}-s{seed}")
    marker = os.path.join(top, "done")
    if not os.path.exists(marker):
        rng = random.Random(seed)
        for i in range(dirs):
            d = os.path.join(top, "tree", "home", f"u{i:06d}")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "data"), "wb") as fh:
                fh.truncate(int(rng.paretovariate(1.3) * 50_000_000))
        open(marker, "w").close()
    return os.path.join(top, "tree")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dirs", type=int, default=50_000)
    ap.add_argument("--agents", default="4,8,16,32")
    a = ap.parse_args()
    mount = ensure_wide(a.dirs)
    tree = scan(mount, ("",))
    rows = []
    for n in (int(x) for x in a.agents.split(",")):
        t0 = time.perf_counter()
        plan = make_plan(tree, agent_arns(n), task_name="bench_", per_file_cost=0)
        seconds = time.perf_counter() - t0
        rows.append([n, plan.balance, f"{max(t.include_chars for t in plan.tasks):,}",
                     max(len(t.includes) for t in plan.tasks), f"{seconds:.1f}"])
        print(f"  {n} agents done", file=sys.stderr, flush=True)
    header = ["agents", "balance", "longest filter", "most patterns in a task", "plan s"]
    body = (f"One directory of {a.dirs:,} subdirectories, a sparse file each (Pareto sizes), "
            f"{tree.dirs[''].bytes / 2**40:.2f} TiB. Balance = heaviest task's bytes over max(total/N, largest "
            "file); the longest filter is in characters (DataSync's limit: 102,400).\n\n" + table(header, rows))
    append_results("2b. Balance on a wide directory", body)


if __name__ == "__main__":
    main()
