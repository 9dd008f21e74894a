#!/usr/bin/env python3
"""Question 1: how fast does our scanner walk a tree, next to du, find and fpart?

    python3 bench/scan_throughput.py [--files 1000000] [--sshfs-files 20000] [--no-sshfs] [--old DIR]

Entries/second (files + directories) over the same tree, every tool run once to warm and
then timed (best of --repeat), wall clock of the whole process:
``scan()`` at 1, 4, 16 and 64 threads (a fresh ``python3`` each), ``du -s --apparent-size``,
``find -printf '%s\\n'`` and ``fpart -n 4``; with ``--old DIR``, also the ``scan()`` of
another checkout (e.g. ``git archive`` of an earlier commit), at 16 threads and at its
default, in the same run. First on local disk (warm page cache), then over sshfs on
loopback with FUSE attribute, entry and directory caches off, so every ``lstat`` is a round
trip, as on NFS with ``actimeo=0``. The script starts its own sshd on
127.0.0.1 with a host and user key generated in a temp dir and tears everything down
(unmount, stop sshd) even when it fails.

Targets (reported as met or missed): local at 16 threads within 2x of du; over sshfs at
16 threads at least 3x faster than both fpart and du.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

from common import Sshfs, append_results, ensure_tool, table, timed
from gen_tree import ensure_tree, totals_of

THREADS = (1, 4, 16, 64)
SCAN_SNIPPET = ("import sys; from datasync_multi.scan import scan\n"
                "t = scan(sys.argv[1], ('',), int(sys.argv[2]) or None); r = t.dirs['']\n"
                "print(r.files, r.dirs, r.bytes)")
DEFAULT = "scan() default threads"
"""The scheduler's own choice: 16 threads on a network file system, 1 on a local disk."""


def tools(tree: str, old: str | None = None) -> list[tuple[str, list[str]]]:
    out = [(f"scan() {w} thread{'s' if w > 1 else ''}",
            [sys.executable, "-c", SCAN_SNIPPET, tree, str(w)]) for w in THREADS]
    out.append((DEFAULT, [sys.executable, "-c", SCAN_SNIPPET, tree, "0"]))
    if old:
        first = f"import sys; sys.path.insert(0, {os.path.abspath(old)!r})\n"
        out += [(f"old {name}", [sys.executable, "-c", first + SCAN_SNIPPET, tree, w])
                for name, w in (("scan() 16 threads", "16"), (DEFAULT, "0"))]
    out.append(("du -s --apparent-size", ["du", "-s", "--apparent-size", "-B1", tree]))
    out.append(("find -printf '%s\\n'", ["find", tree, "-printf", "%s\\n"]))
    if shutil.which("fpart"):
        out.append(("fpart -n 4", ["fpart", "-n", "4", tree]))
    return out


def measure(tree: str, entries: int, repeat: int, label: str,
            old: str | None = None) -> tuple[list[list], dict[str, float]]:
    times: dict[str, float] = {}
    notes: dict[str, str] = {}
    for name, cmd in tools(tree, old):
        best = None
        for i in range(1 + repeat):  # the first run warms
            dt, r = timed(cmd) if not name.startswith(("find", "fpart")) else _timed_quiet(cmd)
            if r.returncode != 0:
                notes[name] = f"exit {r.returncode}: {(r.stderr or '').strip()[:120]}"
                break
            if "scan()" in name:
                notes[name] = "files/dirs/bytes " + "/".join(f"{int(x):,}" for x in r.stdout.split())
            if name.startswith("du"):
                notes[name] = f"{int(r.stdout.split()[0]):,} bytes"
            if i > 0:
                best = dt if best is None else min(best, dt)
        if best is not None:
            times[name] = best
        print(f"  [{label}] {name}: {best if best is None else round(best, 3)} s", file=sys.stderr, flush=True)
    du = times.get("du -s --apparent-size")
    rows = []
    for name, _ in tools(tree, old):
        t = times.get(name)
        rows.append([name, t if t is not None else "failed", entries / t if t else "-",
                     f"{t / du:.2f}" if (t and du) else "-", notes.get(name, "")])
    return rows, times


def _timed_quiet(cmd):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return time.perf_counter() - t0, r


HEADER = ["tool", "seconds", "entries/s", "time / du", "check"]


def verdicts(times: dict[str, float], where: str) -> list[str]:
    s16, default = times.get("scan() 16 threads"), times.get(DEFAULT)
    du, fp = times.get("du -s --apparent-size"), times.get("fpart -n 4")
    out = []
    if where == "local":
        if default and du:
            out.append(f"- local, the scheduler's default (1 thread here) within 2x of du: "
                       f"**{'met' if default <= 2 * du else 'missed'}** ({default / du:.2f}x du's time)")
        if s16 and du:
            out.append(f"- local, 16 threads: {s16 / du:.2f}x du's time (threads only contend for the GIL here)")
    else:
        for name, t in (("fpart", fp), ("du", du)):
            if s16 and t:
                out.append(f"- sshfs, 16 threads at least 3x faster than {name}: "
                           f"**{'met' if t >= 3 * s16 else 'missed'}** ({t / s16:.1f}x faster)")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="skewed")
    p.add_argument("--files", type=int, default=1_000_000, help="local tree (default 1M files in 100k dirs)")
    p.add_argument("--sshfs-files", type=int, default=20_000)
    p.add_argument("--repeat", type=int, default=1, help="timed runs after the warm-up (best is kept)")
    p.add_argument("--no-sshfs", action="store_true")
    p.add_argument("--old", help="a checkout whose scan() to time beside this one's (its repository root)")
    a = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so finally-blocks tear down
    if not ensure_tool("fpart", "fpart"):
        print("fpart missing and not installable: apt-get update && apt-get install -y fpart", file=sys.stderr)

    body = []
    tree = ensure_tree(a.shape, a.files, 1)
    tot = totals_of(tree)
    entries = tot["files"] + tot["dirs"]
    print(f"local: {tree} ({entries:,} entries)", file=sys.stderr)
    rows, times = measure(tree, entries, a.repeat, "local", a.old)
    body.append(f"### Local disk, warm cache: {a.shape} tree, {tot['files']:,} files in {tot['dirs']:,} "
                f"directories ({entries:,} entries, {tot['bytes'] / 2**40:.2f} TiB apparent)\n")
    body.append(table(HEADER, rows))
    body.append("\n" + "\n".join(verdicts(times, "local")) + "\n")

    if not a.no_sshfs:
        stree = ensure_tree(a.shape, a.sshfs_files, 1)
        stot = totals_of(stree)
        sentries = stot["files"] + stot["dirs"]
        title = (f"### sshfs over loopback, caches off: {a.shape} tree, {stot['files']:,} files in "
                 f"{stot['dirs']:,} directories ({sentries:,} entries)\n")
        try:
            with Sshfs(stree) as mnt:
                print(f"sshfs: {mnt} ({sentries:,} entries)", file=sys.stderr)
                rows, stimes = measure(mnt, sentries, a.repeat, "sshfs", a.old)
                body.append(title)
                body.append("Mount options: `cache=no,attr_timeout=0,entry_timeout=0,negative_timeout=0,dir_cache=no`"
                            " (sshfs 3, one SSH connection).\n")
                body.append(table(HEADER, rows))
                body.append("\n" + "\n".join(verdicts(stimes, "sshfs")) + "\n")
        except Exception as exc:  # FUSE or sshd not usable here: say so and move on
            body.append(title)
            body.append(f"sshfs: not possible here: {exc}\n")
    append_results("1. Scan throughput", "\n".join(body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
