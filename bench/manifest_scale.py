#!/usr/bin/env python3
"""Question 3b: does planning stay near-linear in the number of manifest entries?

    python3 bench/manifest_scale.py [--sizes 1000,4000] [--agents 4] [--repeat 3] [--old DIR]

A share of N sibling directories (/home/u00000 ... one small file each) and a manifest
listing every one of them, for each N side by side in one run. Each is planned in a fresh
Python process, its steps timed apart: ``read_manifest()`` (check and merge the entries),
``scan()`` (which lists each entry's parent to see whether a sibling's name extends it)
and ``make_plan()``; then the whole CLI dry run (``--dry_run --agent_arns``), interpreter
start included. Best of --repeat after a warm-up. ``--old DIR`` times another checkout
(e.g. ``git archive`` of an earlier commit) in the same run.

Target: 4x the entries costs at most 6x the time (read_manifest + scan + make_plan).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from common import BENCH, REPO, agent_arns, append_results, table

STEPS_SNIPPET = r"""
import json, sys, time
from datasync_multi.manifest import read_manifest
from datasync_multi.plan import make_plan
from datasync_multi.scan import scan
t0 = time.perf_counter(); m = read_manifest(sys.argv[1], sys.argv[2])
t1 = time.perf_counter(); tree = scan(sys.argv[2], m.entries)
t2 = time.perf_counter(); plan = make_plan(tree, sys.argv[3].split(","), task_name="bench_")
t3 = time.perf_counter()
print(json.dumps({"manifest": t1 - t0, "scan": t2 - t1, "plan": t3 - t2, "files": plan.total_files}))
"""

STEPS = ("manifest", "scan", "plan")


def ensure_siblings(n: int) -> tuple[str, str]:
    """(mount, manifest) of ``n`` sibling directories under home/, made once."""
    top = os.path.join(BENCH, "work", f"siblings-{n}")
    mount, manifest = os.path.join(top, "tree"), os.path.join(top, "source_file.manifest")
    if not os.path.exists(manifest):
        for i in range(n):
            d = os.path.join(mount, "home", f"u{i:05d}")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "f"), "wb") as fh:
                fh.write(b"x" * (i % 1000 + 1))
        with open(manifest + ".tmp", "w", encoding="utf-8") as fh:
            fh.write("".join(f"/home/u{i:05d}\n" for i in range(n)))
        os.replace(manifest + ".tmp", manifest)  # written last: marks a finished tree
    return mount, manifest


def steps(checkout: str, mount: str, manifest: str, agents: list[str], repeat: int) -> dict[str, float]:
    """Each step's best time over ``repeat`` fresh processes (after one to warm), their sum,
    and the CLI dry run's."""
    best: dict[str, float] = {}
    for i in range(1 + repeat):
        # run in the checkout's root: `python -c` imports its package before the installed one
        r = subprocess.run([sys.executable, "-c", STEPS_SNIPPET, manifest, mount, ",".join(agents)],
                           capture_output=True, text=True, cwd=checkout)
        if r.returncode != 0:
            raise RuntimeError(f"planning failed in {checkout}: {r.stderr[-500:]}")
        got = json.loads(r.stdout.strip().splitlines()[-1])
        got["total"] = sum(got[s] for s in STEPS)
        got["cli"] = cli_run(checkout, mount, manifest, agents)
        if i > 0:
            best = {k: min(v, best.get(k, v)) for k, v in got.items() if k != "files"}
    return best


def cli_run(checkout: str, mount: str, manifest: str, agents: list[str]) -> float:
    """Wall seconds of the checkout's scheduler, --dry_run with the agents given."""
    with tempfile.TemporaryDirectory(prefix="bench-manifest-") as work:
        cmd = [sys.executable, os.path.join(checkout, "datasync_multi_agents_scheduler.py"), "--mount_path_dir",
               mount, "--source_file", manifest, "--dry_run", "--agent_arns", ",".join(agents),
               "--plan_file", os.path.join(work, "plan.json"), "--log_dir", work]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
        wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"dry run failed in {checkout}: {r.stderr[-500:]}")
    return wall


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,4000", help="numbers of sibling entries, smallest first")
    p.add_argument("--agents", type=int, default=4)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--old", help="a checkout to time beside this one (its repository root)")
    a = p.parse_args(argv)
    sizes = [int(x) for x in a.sizes.split(",")]
    agents = agent_arns(a.agents)
    checkouts = [("this checkout", REPO)] + ([(f"old ({a.old})", os.path.abspath(a.old))] if a.old else [])
    rows, verdict = [], []
    for label, checkout in checkouts:
        times = {}
        for n in sizes:
            mount, manifest = ensure_siblings(n)
            t = times[n] = steps(checkout, mount, manifest, agents, a.repeat)
            print(f"  [{label}] {n:,} entries: {t['total']:.2f} s", file=sys.stderr, flush=True)
            ratio = f"{t['total'] / times[sizes[0]]['total']:.2f}x" if n != sizes[0] else "-"
            rows.append([label, n, *(f"{t[s]:.3f}" for s in STEPS), f"{t['total']:.3f}", ratio, f"{t['cli']:.2f}"])
        for small, large in zip(sizes, sizes[1:], strict=False):
            growth = {k: times[large][k] / times[small][k] for k in (*STEPS, "total")}
            bound = 1.5 * large / small
            met = "met" if growth["total"] <= bound else "missed"
            verdict.append(f"- {label}: {large / small:.0f}x the entries ({small:,} -> {large:,}) costs "
                           f"{growth['total']:.2f}x the time (read_manifest {growth['manifest']:.1f}x, scan "
                           f"{growth['scan']:.1f}x, make_plan {growth['plan']:.1f}x); at most {bound:.0f}x: **{met}**")
    header = ["planner", "entries", "read_manifest s", "scan s", "make_plan s", "total s", "total / smallest",
              "CLI dry run s"]
    body = (f"N sibling directories under /home, one small file each, the manifest listing every one; "
            f"{a.agents} agents, default per-file cost; each in a fresh process, best of {a.repeat} after a "
            "warm-up, local disk.\n\n" + table(header, rows) + "\n\n" + "\n".join(verdict) + "\n")
    append_results("3b. Manifest scale: many sibling entries", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
