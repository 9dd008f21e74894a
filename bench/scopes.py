"""Scopes on real trees: balance measured on what the filters select, items listed, patterns.

Builds four shares on disk (under bench/work/scopes, reused when present):

* ``flat``: one directory of 200,000 small files, named like a Maildir (all of one length);
* ``mixed``: a flat directory of 100,000 files beside a deep project tree of 50,000;
* ``homes``: 2,000 home directories, with loose files that share their prefixes
  (``u0123-3.txt``) and their own archives beside them (``u0007.tar``);
* ``siblings``: directories whose names are string prefixes of each other
  (``u1``, ``u10``, ``u100``, ``data``, ``data2``, ``b``, ``b2``), at several depths.

For each share and 4/8/16/32 agents it plans with the default per-file cost and reports,
measured by matching every path of the tree against the tasks' filters (component
matching, exclude wins, which is what both planners were built for):

* balance: heaviest task's *selected* cost over the lower bound (and what the plan claims);
* agents working;
* items reachable by includes over items in scope (what DataSync lists in Basic mode);
* the most patterns in one task's filters;
* paths copied twice under the other readings (string-prefix matching; include wins).

``--old DIR`` runs the planner of another checkout (e.g. a ``git worktree`` of the commit
before include-only scopes) on the same trees, side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time

from common import BENCH, agent_arns, append_results, table
from datasync_multi.plan import DEFAULT_PER_FILE_COST, make_plan
from datasync_multi.scan import scan

WORK = os.path.join(BENCH, "work", "scopes")
AGENTS = (4, 8, 16, 32)


def _write(path: str, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        if size:
            os.write(fd, b"x" * size)
    finally:
        os.close(fd)


def _maildir(rng: random.Random, i: int) -> str:
    return f"{1700000000 + rng.randrange(10**8):d}.M{rng.randrange(10**6):06d}P{i:06d}.mx"


def build_flat(root: str, count: int = 200_000, seed: int = 1) -> None:
    rng = random.Random(seed)
    os.makedirs(os.path.join(root, "spool"))
    for i in range(count):
        _write(os.path.join(root, "spool", _maildir(rng, i)), rng.randint(200, 20_000))


def build_mixed(root: str, seed: int = 2) -> None:
    rng = random.Random(seed)
    os.makedirs(os.path.join(root, "mail", "inbox"))
    for i in range(100_000):
        _write(os.path.join(root, "mail", "inbox", _maildir(rng, i)), rng.randint(200, 20_000))
    for p in range(25):
        for d in range(20):
            path = os.path.join(root, "projects", f"p{p:02d}", f"d{d:02d}")
            os.makedirs(path)
            for f in range(100):
                _write(os.path.join(path, f"f{f:03d}.dat"), int(rng.paretovariate(1.3) * 3000))


def build_homes(root: str, seed: int = 3) -> None:
    rng = random.Random(seed)
    for u in range(2000):
        home = os.path.join(root, "homes", f"u{u:04d}")
        os.makedirs(home)
        sizes = [int(rng.paretovariate(1.5) * 5000) for _ in range(rng.randint(5, 40))]
        for j, size in enumerate(sizes):
            _write(os.path.join(home, f"doc{j:02d}"), size)
        if u % 10 == 3:
            _write(os.path.join(root, "homes", f"u{u:04d}-3.txt"), 4000)
        if u % 5 == 2:
            _write(os.path.join(root, "homes", f"u{u:04d}.tar"), sum(sizes))


def build_siblings(root: str, seed: int = 4) -> None:
    rng = random.Random(seed)
    for top in ("", "a", "a/b"):
        for name in ("u1", "u10", "u100", "data", "data2", "data-old", "b", "b2"):
            path = os.path.join(root, "s", top, name)
            for k in range(rng.randint(1, 6)):
                os.makedirs(os.path.join(path, f"k{k}"), exist_ok=True)
                for f in range(rng.randint(5, 60)):
                    _write(os.path.join(path, f"k{k}", f"f{f:02d}"), rng.randint(100, 50_000))


SHARES = {"flat": build_flat, "mixed": build_mixed, "homes": build_homes, "siblings": build_siblings}


def everything(root: str) -> list[tuple[str, str, int]]:
    """(location path, kind, size) of every entry below the root: what DataSync lists."""
    out = []
    for top, dirs, files in os.walk(root):
        rel = os.path.relpath(top, root)
        rel = "" if rel == "." else "/" + rel
        for f in files:
            st = os.lstat(os.path.join(top, f))
            out.append((f"{rel}/{f}", "link" if os.path.islink(os.path.join(top, f)) else "file", st.st_size))
        out += [(f"{rel}/{d}", "dir", 0) for d in dirs]
    return out


class Index:
    """Patterns of every task by stem, for matching a path in O(its length)."""

    def __init__(self, patterns_by_task: list[list[str]]):
        self.all: set[int] = set()
        self.by_stem: dict[str, list[tuple[int, str]]] = {}
        for i, patterns in enumerate(patterns_by_task):
            for p in patterns:
                if p in ("/", "/*"):
                    self.all.add(i)
                elif p.endswith("*"):
                    self.by_stem.setdefault(p[:-1], []).append((i, "star"))
                else:
                    self.by_stem.setdefault(p, []).append((i, "prefix"))
                    self.by_stem.setdefault(p.rstrip("/"), []).append((i, "component"))

    def hits(self, path: str, matching: str) -> set[int]:
        out = set(self.all)
        for end in range(2, len(path) + 1):
            for i, kind in self.by_stem.get(path[:end], ()):
                if kind == "star" or (kind == matching == "prefix") or (
                        kind == matching == "component" and (end == len(path) or path[end] == "/")):
                    out.add(i)
        return out


def evaluate(tasks: list[dict], paths: list[tuple[str, str, int]], per_file_cost: int, n: int) -> dict:
    inc = Index([t["includes"] for t in tasks])
    exc = Index([t.get("excludes") or [] for t in tasks])
    selected = [0] * len(tasks)
    reached = doubled_prefix = doubled_include = 0
    for path, _, size in paths:
        inc_c, exc_c = inc.hits(path, "component"), exc.hits(path, "component")
        for i in inc_c - exc_c:
            selected[i] += size + per_file_cost
        reached += len(inc_c)
        inc_p, exc_p = inc.hits(path, "prefix"), exc.hits(path, "prefix")
        doubled_prefix += len(inc_p - exc_p) > 1
        doubled_include += len(inc_c) > 1
    total = sum(selected)  # what the tasks select: a directory that was cut belongs to none
    largest = max(size for _, _, size in paths) + per_file_cost
    bound = max(-(-total // n), largest)
    scope = sum(1 for _ in paths) - sum(1 for path, kind, _ in paths if kind == "dir" and not (
        inc.hits(path, "component") - exc.hits(path, "component")))
    return {"balance": max(selected) / bound, "working": sum(1 for s in selected if s),
            "listed": reached / scope, "patterns": max(len(t["includes"]) + len(t.get("excludes") or [])
                                                           for t in tasks),
            "doubled_prefix": doubled_prefix, "doubled_include": doubled_include}


OLD_PLANNER = """
import json, sys
from datasync_multi.scan import scan
from datasync_multi.plan import make_plan
tree = scan(sys.argv[1], ("",))
out = {}
for n in map(int, sys.argv[2].split(",")):
    agents = [f"arn:aws:datasync:us-east-1:111122223333:agent/agent-{i:017x}" for i in range(1, n + 1)]
    out[n] = make_plan(tree, agents, task_name="bench_").to_json()
print(json.dumps(out))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", help="a checkout whose planner to compare with (its repository root)")
    ap.add_argument("--shares", default=",".join(SHARES), help="which shares, comma-separated")
    a = ap.parse_args()
    rows = []
    for name in a.shares.split(","):
        root = os.path.join(WORK, name)
        if not os.path.isdir(root):
            print(f"building {name} under {root}", file=sys.stderr)
            os.makedirs(root)
            SHARES[name](root)
        paths = everything(root)
        tree = scan(root, ("",))
        old = {}
        if a.old:
            # run in the old checkout's root: `python -c` imports its package before the installed one
            r = subprocess.run([sys.executable, "-c", OLD_PLANNER, root, ",".join(map(str, AGENTS))],
                               capture_output=True, text=True, check=True, cwd=os.path.abspath(a.old))
            old = {int(k): v for k, v in json.loads(r.stdout).items()}
        for n in AGENTS:
            t0 = time.perf_counter()
            plan = make_plan(tree, agent_arns(n), task_name="bench_").to_json()
            seconds = time.perf_counter() - t0
            new = evaluate(plan["tasks"], paths, DEFAULT_PER_FILE_COST, n)
            row = [name, f"{len(paths):,}", n, f"{new['balance']:.3f} (claims {plan['balance']:.3f})",
                   f"{new['working']}/{n}", f"{new['listed']:.3f}", new["patterns"],
                   f"{new['doubled_prefix']} / {new['doubled_include']}", f"{seconds:.1f}"]
            if n in old:
                was = evaluate(old[n]["tasks"], paths, DEFAULT_PER_FILE_COST, n)
                row[3:3] = [f"{was['balance']:.3f} (claims {old[n]['balance']:.3f})"]
                row[5:5] = [f"{was['working']}/{n}"]
                row[7:7] = [f"{was['listed']:.3f}"]
                row[9:9] = [was["patterns"]]
                row[11:11] = [f"{was['doubled_prefix']} / {was['doubled_include']}"]
            rows.append(row)
            print(row, file=sys.stderr)
    if a.old:
        header = ["share", "paths", "agents", "balance before", "balance now", "working before", "working now",
                  "listed/scope before", "listed/scope now", "patterns before", "patterns now",
                  "doubled (prefix / include-wins) before", "now", "plan s"]
    else:
        header = ["share", "paths", "agents", "balance (selected)", "working", "listed/scope", "patterns",
                  "doubled (prefix / include-wins)", "plan s"]
    note = ("Balance is the heaviest task's cost as its filters really select it (bytes + 512 KiB per file), over "
            "the lower bound. listed/scope: items reachable by the includes, summed over tasks, over the items in "
            "scope. Doubled: paths two tasks would copy if DataSync read `/a` as a string prefix, or let an "
            "include beat an exclude.")
    append_results("Scopes: include-only plans on flat, mixed, home and sibling shares",
                   note + "\n\n" + table(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
