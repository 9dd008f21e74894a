#!/usr/bin/env python3
"""Question 10: live mode against batch dynamic dispatch, on a share read through a slow mount.

The same share is moved by batch dynamic dispatch (the scheduler with ``--chunks_per_agent
4``: scan, plan, first check; then the watcher hands out the rest) and by live mode
(``--live``, K = 4 by default: each chunk is journaled and started while the scan goes on;
the watcher hands out the rest once the scheduler has exited), side by side in one run,
rounds alternating their order (batch, live, ..., live, batch, ...). The scheduler scans
the share through sshfs over loopback with FUSE caches off (``common.Sshfs``, as
``scan_throughput.py`` mounts it: every lookup a round trip); the emulator copies the
same share from its local path. Four agents copy at 4:2:1:1, each execution pays a start
overhead (1% of the ideal transfer) and each entry a per-file overhead, sized from a scan
of the mount alone (the fastest of three) so that the ideal transfer takes about as long.

    python3 bench/live.py [--files 100000] [--rounds 2] [--live-extra '--live_check_sec 1'] [--watched]
                          [--scan-workers 1] [--mount-delay 2]
    python3 bench/live.py --estimates

``--live-extra FLAGS`` adds a live run with more scheduler flags to each round; ``--old DIR``
a live run of another checkout's scripts (a change side by side with what it changes);
``--watched`` a live run whose watcher starts as soon as it can (once the first chunk has
started) and hands out chunks during the scan too, as the README's live example runs it
("meanwhile and afterwards"); in the other runs the watcher starts when the scheduler
has exited. ``--mount-delay MS`` holds every byte between sshfs and sshd that long each way
(``delay_proxy.py``, as ssh's ProxyCommand): a mount far away, whose scan waits on round
trips rather than on this machine's CPUs, which the emulator then has to itself.
``--scan-workers`` sets the scheduler's threads in every run (and
in the scan alone). ``--estimates`` instead runs only the live planner, in this process,
on the share's local path, fed size estimates off by several factors: when the first chunk
closes, how many chunks there are.

The share (``gen_tree.py``, skewed, sizes scaled down so the copy is real) sits on a tmpfs
of its own, as an export usually is a file system of its own: live mode sizes its chunks
from ``statvfs`` of the mount, which sshfs answers for the file system holding the share.
The destination is a tmpfs too. Mounting them needs root; without it they are plain
directories, and statvfs then answers for the disk that holds the share (see
``--estimates`` for what a wrong estimate does). The watcher polls every ``--poll`` seconds.

Per run, on the bench's clock (the scheduler's start is 0; the emulator's execution
records share the clock):
* first start: the first StartTaskExecution;
* share read at first start: entries the scan had read then (live: interpolated between
  the journal's progress lines, the first of which comes with the first chunk), over all;
* scan: batch to the line the scheduler logs after the scan, live the journal's ``end``;
* makespan: to the last execution's end; transfer: first start to last end;
* ideal transfer: agent i moving a share x_i of the bytes B and entries E takes
  x_i (B / b_i + E f), so all four end together at 1 / sum_i 1 / (B / b_i + E f); plus
  one start overhead.
* ideal as closed (live): the ideal transfer of the work as the scan closed it, each agent
  taking its ideal share of each unit from the time the unit's journal line gives
  (``closed_ideal``): where the walk puts the ideal, which packing its units differently
  cannot move far.
And, to tell the scheduler's part from the machine's: each execution's duration over its
model (start overhead, phases, entries x f, bytes / its agent's bandwidth); agent-seconds
idle while a closed chunk waited (the dispatch's latency), while none had closed yet and
the scan went on, and after the scan with nothing left to start; the tail (first agent
done for good to the end); CPU seconds of the scheduler, the watcher, the emulator, sshfs
with its sshd, and of every other process on the machine meanwhile.

A run during which other processes used more than 0.3 cores (``common.DISTURBED``: another
session's tests) is taken again once the machine is quiet, up to four times; the tables
give what the rest of the machine used in the run kept, and apart from it the CPU time the
hypervisor gave to other machines (steal: it slows every process of the run alike, and
retaking does not escape it).

Every run is checked: destination == source (``emulator.sample.differences``), no path
selected or written twice (the emulator's ``selections`` and ``writes``).

Targets: live's first execution starts before the scan has read 15% of the share; live
makespan <= 1.15 x max(scan, ideal transfer); batch about scan + transfer.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial

from common import DISTURBED, REPO, Sshfs, append_results, busy_seconds, cpu_seconds, table, wait_quiet
from gen_tree import ensure_tree, totals_of

sys.path.insert(0, REPO)  # this checkout's emulator and planner, whichever one the interpreter has installed
SERVER, EXPORT = "198.51.100.10", "/vol1"
RATIOS = (4, 2, 1, 1)
"""The agents' bandwidths, relative."""
PHASE_DELAY = 0.02
LAUNCH_SHARE = 0.01
"""The start overhead of an execution, as a share of the ideal transfer: DataSync's few minutes
on a job of some hours (``dispatch.py``: 0.5 s on 40 s)."""
SCAN_SNIPPET = ("import sys; from datasync_multi.scan import scan\n"
                "t = scan(sys.argv[1], ('',), int(sys.argv[2]) or None); r = t.dirs['']\n"
                "print(r.files, r.dirs, r.bytes)")
LOG = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) - ")


class TmpFs:
    """A tmpfs of its own at ``path`` (a plain directory if tmpfs cannot be mounted here)."""

    def __init__(self, path: str, size: str = "8g") -> None:
        self.path = path
        os.makedirs(path)
        self.mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                                      stderr=subprocess.DEVNULL).returncode == 0

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", self.path], stderr=subprocess.DEVNULL)
            self.mounted = False


# --- what the processes left behind -----------------------------------------------------


def log_lines(path: str) -> list[tuple[float, str]]:
    """(epoch time, text) of each line of a log (``2026-11-30 08:10:17,123 - ...``)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            m = LOG.match(line)
            if m:
                when = time.mktime(datetime.datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S").timetuple())
                out.append((when + int(m[2]) / 1000, line[m.end():]))
    return out


def batch_scan_end(lines: list[tuple[float, str]]) -> tuple[float, float]:
    """(start, end) of the batch scan: the 'scanning' line and the line after it."""
    i = next(i for i, (_, text) in enumerate(lines) if " - scanning " in text)
    return lines[i][0], lines[i + 1][0]


def journal_lines(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(ln) for ln in fh if ln.endswith("\n")]


def closed_ideal(journal: list[dict], s: Setup, t0: float) -> float | None:
    """The ideal transfer of the work as the scan closed it, seconds from ``t0``: each agent
    takes its share of every unit (``Setup.shares``, the ideal transfer's split, so that with
    every unit closed at ``t0`` this is ``Setup.ideal``) from the moment the unit's journal
    line says it closed, behind what it took before; plus one start overhead. Where the walk
    puts the ideal transfer: a heavy directory whose listing ends late holds all its files
    back. A reference, not a bound: a packer that sends heavy files to fast agents and
    many small ones to slow agents (the per-entry overhead being the same on all) can beat
    this split. None for a journal whose unit lines carry no time (code before they did)."""
    units = [ln for ln in journal if ln["kind"] == "unit"]
    if not units or "at" not in units[0]:
        return None
    ends = [t0] * len(s.rates)
    for ln in units:
        u = ln["unit"]
        work = [x * (u["bytes"] / b + (u["files"] + u["dirs"]) * s.file_delay) for x, b in zip(s.shares, s.rates,
                                                                                            strict=True)]
        ends = [max(end, ln["at"]) + w for end, w in zip(ends, work, strict=True)]
    return max(ends) + s.launch_delay - t0


def read_at(points: list[tuple[float, int]], t: float) -> float:
    """Entries read by time t, interpolated between (time, entries) points."""
    for (t1, e1), (t2, e2) in zip(points, points[1:], strict=False):
        if t1 <= t <= t2:
            return e1 + (e2 - e1) * (t - t1) / (t2 - t1) if t2 > t1 else e2
    return points[-1][1] if t > points[-1][0] else points[0][1]


def launched(e: dict) -> float:
    """When an execution began to occupy its agent: its launch, or its start if never launched."""
    return e["launch_time"] or e["start_time"]


def idle(execs: list[dict], closed_at: list[float], agents: int, scan_end: float) -> tuple[float, float, float]:
    """Agent-seconds idle, from the first chunk closed to the last execution's end, while a
    closed chunk waited (the dispatch's latency), while none waited and the scan went on (the
    scan behind), and after the scan with none left to start (the tail); an execution
    occupies its agent from its launch (its start, unless it was queued) to its end."""
    events = sorted([(t, "closed") for t in closed_at] + [(launched(e), "start") for e in execs]
                    + [(e["end_time"], "end") for e in execs])
    busy = waiting = 0
    latency = starved = tail = 0.0
    last = min(closed_at)
    for t, kind in events:
        if t > last:
            free = agents - busy
            waits = min(free, waiting)
            latency += waits * (t - last)
            if last < scan_end:
                starved += (free - waits) * (min(t, scan_end) - last)
            if t > scan_end:
                tail += (free - waits) * (t - max(last, scan_end))
            last = t
        busy += {"start": 1, "end": -1}.get(kind, 0)
        waiting += {"closed": 1, "start": -1}.get(kind, 0)
    return latency, starved, tail


def where_the_time_went(per_agent: dict[str, list], shares: list[float], makespan: float) -> dict[str, float]:
    """The makespan as the agents spent it, each agent weighted by its share of the fleet's
    throughput (``Setup.shares``; so the parts add up to the makespan, and busy equals the
    ideal when no execution costs more than its work): busy (launch to end of its
    executions), before its first launch, between its executions, after its last end."""
    out = dict.fromkeys(("busy", "before", "between", "after"), 0.0)
    for agent, runs in per_agent.items():
        weight = shares[int(agent) - 1]
        last_end, between = runs[0][0], 0.0
        for launch, end, *_ in runs:
            between += max(launch - last_end, 0.0)
            last_end = max(last_end, end)
        out["before"] += weight * runs[0][0]
        out["between"] += weight * between
        out["after"] += weight * (makespan - last_end)
        out["busy"] += weight * (last_end - runs[0][0] - between)
    out["after"] += (1 - sum(shares[int(a) - 1] for a in per_agent)) * makespan  # agents that ran nothing
    return out


def serving_pids(mnt: str, sshd: int) -> list[int]:
    """The mount's sshfs process with its ssh client, and the sshd processes serving it."""
    parents, cmds = {}, {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                parents[int(pid)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmds[int(pid)] = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
    roots = {sshd} | {p for p, c in cmds.items() if c.startswith("sshfs ") and mnt in c}
    out, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        out.add(p)
        todo += [c for c, pp in parents.items() if pp == p and c not in out]
    return sorted(out)


# --- one run ------------------------------------------------------------------------------


class Setup:
    """What every run shares: the share, its mount, the agents and the overheads."""

    def __init__(self, tree: str, mnt: str, totals: dict, rates: list[int], file_delay: float,
                 launch_delay: float, poll: float, serving: list[int], scratch: str, scan_workers: int | None) -> None:
        self.tree, self.mnt, self.totals, self.rates = tree, mnt, totals, rates
        self.file_delay, self.launch_delay, self.poll = file_delay, launch_delay, poll
        self.serving, self.scratch, self.scan_workers = serving, scratch, scan_workers
        self.entries = totals["files"] + totals["dirs"]
        self.per_file_cost = round(file_delay * sum(rates) / len(rates))
        """--per_file_cost as these agents make it: an entry's overhead in bytes at their mean bandwidth
        (the default, 512 KiB, would weigh a file as a hundred times its cost here)."""
        alone = [totals["bytes"] / b + self.entries * file_delay for b in rates]
        self.ideal = launch_delay + 1 / sum(1 / t for t in alone)
        self.shares = [1 / t / sum(1 / u for u in alone) for t in alone]
        """Each agent's share of the fleet's throughput: what it would move of the share, all ending together."""

    def model(self, e: dict, agents: list[str]) -> float:
        """An execution's duration as the emulator's settings alone make it."""
        rate = self.rates[agents.index(e["agent"])]
        c = e["counters"]
        return (PHASE_DELAY + self.launch_delay + 2 * PHASE_DELAY + c["FilesTransferred"] * self.file_delay
                + c["BytesTransferred"] / rate)


def run_one(s: Setup, mode: str, extra: list[str], watched: bool, keep: str | None, repo: str = REPO) -> dict:
    from emulator.harness import Emulator
    from emulator.sample import differences

    with tempfile.TemporaryDirectory(prefix=f"{mode}-", dir=s.scratch) as top:
        s3, work = os.path.join(top, "s3"), os.path.join(top, "work")
        os.makedirs(s3)
        os.makedirs(work)
        with open(os.path.join(work, "m"), "w") as fh:
            fh.write("/\n")
        with Emulator().start({f"{SERVER}:{EXPORT}": s.tree}, s3, agents=len(s.rates), phase_delay=PHASE_DELAY,
                              launch_delay=s.launch_delay, file_delay=s.file_delay,
                              agent_bytes_per_second=s.rates) as emu:
            dest = emu.client().create_location_s3(
                S3BucketArn="arn:aws:s3:::bench", Subdirectory="/x",
                S3Config={"BucketAccessRoleArn": "arn:aws:iam::111122223333:role/r"})["LocationArn"]
            agents = emu.agent_arns()
            env = dict(emu.env(), PYTHONPATH=repo)
            log_dir = os.path.join(work, "log")

            def start(name: str, *args: str) -> subprocess.Popen:
                cmd = [sys.executable, os.path.join(repo, name), "--log_dir", log_dir, *args]
                with open(os.path.join(work, name + ".out"), "w") as fh:
                    return subprocess.Popen(cmd, cwd=work, env=env, stdout=fh, stderr=subprocess.STDOUT)

            def finish(proc: subprocess.Popen, name: str) -> float:
                """Wait for one of our scripts to end; its CPU seconds (exits the bench if it failed)."""
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                if proc.returncode != 0:
                    with open(os.path.join(work, name + ".out")) as fh:
                        sys.exit(f"{mode}: {name} exited {proc.returncode}:\n" + fh.read()[-3000:])
                return usage.ru_utime + usage.ru_stime

            scheduler, watcher = "datasync_multi_agents_scheduler.py", "datasync_agent_ha.py"
            args = ["--chunks_per_agent", "4"] if mode == "batch" else ["--live", *extra]
            args += ["--scan_workers", str(s.scan_workers)] if s.scan_workers else []
            args += ["--per_file_cost", str(s.per_file_cost)]
            cpu0 = (cpu_seconds(emu.proc.pid, True), sum(cpu_seconds(p, True) for p in s.serving),
                    busy_seconds(steal=False), busy_seconds())
            t0 = time.time()
            sched = start(scheduler, "--nfs_server_name", SERVER, "--sub_dir", EXPORT, "--mount_path_dir", s.mnt,
                          "--dest_loc", dest, "--source_file", os.path.join(work, "m"), *args)
            if watched:  # the watcher starts once the arn file is there (the first start); it dispatches too
                arn_file = os.path.join(work, "arn_file.txt")
                while not os.path.exists(arn_file) and sched.poll() is None:
                    time.sleep(0.05)
                watch = start(watcher, "--timeout_sec", str(s.poll))
                cpu_sched = finish(sched, scheduler)
                t_sched = time.time()
            else:
                cpu_sched = finish(sched, scheduler)
                t_sched = time.time()
                watch = start(watcher, "--timeout_sec", str(s.poll))
            cpu_watch = finish(watch, watcher)
            cpu1 = (cpu_seconds(emu.proc.pid, True), sum(cpu_seconds(p, True) for p in s.serving),
                    busy_seconds(steal=False), busy_seconds())
            t1 = time.time()
            state = emu.state()
            execs = state["executions"]
            first = min(e["start_time"] for e in execs)
            end = max(e["end_time"] for e in execs)
            diffs = differences(s.tree, os.path.join(s3, "bench", "x"))
            lines = log_lines(os.path.join(log_dir, "ds_ma_sche.log"))
            ours = cpu_sched + cpu_watch + (cpu1[0] - cpu0[0]) + (cpu1[1] - cpu0[1])
            r = {"mode": mode, "flags": args, "watched": watched, "old": repo != REPO, "first": first - t0,
                 "makespan": end - t0, "transfer": end - first,
                 "executions": len(execs), "all_success": all(e["status"] == "SUCCESS" for e in execs),
                 "exact": diffs == [], "diffs": diffs[:3], "max_writes": max(state["writes"].values(), default=0),
                 "max_selections": max(state["selections"].values(), default=0), "scheduler_exit": t_sched - t0,
                 "cpu": {"scheduler": cpu_sched, "watcher": cpu_watch, "emulator": cpu1[0] - cpu0[0],
                         "sshfs": cpu1[1] - cpu0[1], "others": cpu1[2] - cpu0[2] - ours,
                         "steal": (cpu1[3] - cpu0[3]) - (cpu1[2] - cpu0[2])},
                 "wall": t1 - t0,
                 "over_model": statistics.median((e["end_time"] - launched(e)) / s.model(e, agents)
                                                 for e in execs)}
            if mode == "batch":
                began, ended = batch_scan_end(lines)
                r["scan"], r["scan_only"], r["read_at_first"] = ended - t0, ended - began, 1.0
                closed = [ended] * len(execs)  # every chunk is planned when the scan ends
            else:
                journal = journal_lines(os.path.join(work, "arn_file.txt.ledger.json.journal"))
                points = [(t0, 0)] + [(ln["at"], ln["dirs"] + ln["files"]) for ln in journal
                                      if ln["kind"] in ("progress", "end")]
                r["scan"] = next(ln["at"] for ln in journal if ln["kind"] == "end") - t0
                r["read_at_first"] = read_at(points, first) / s.entries
                r["read_at_first_chunk"] = points[1][1] / s.entries
                r["chunks"] = sum(1 for ln in journal if ln["kind"] == "chunk")
                r["progress"] = [(round(t - t0, 2), e) for t, e in points]
                r["estimate"] = journal[0].get("estimate", "")
                r["closed_ideal"] = closed_ideal(journal, s, t0)
                closed = [t for t, text in lines if re.search(r" - chunk \d+ closed", text)]
            r["idle_latency"], r["idle_starved"], r["idle_tail"] = idle(execs, closed, len(agents), t0 + r["scan"])
            ends = [max((e["end_time"] for e in execs if e["agent"] == agent), default=first) for agent in agents]
            r["tail"] = max(ends) - min(ends)
            r["per_agent"] = {}
            for e in sorted(execs, key=launched):
                r["per_agent"].setdefault(str(agents.index(e["agent"]) + 1), []).append(
                    (round(launched(e) - t0, 2), round(e["end_time"] - t0, 2), e["counters"]["FilesTransferred"],
                     e["counters"]["BytesTransferred"]))
            r["spent"] = where_the_time_went(r["per_agent"], s.shares, r["makespan"])
            if keep:
                shutil.rmtree(keep, ignore_errors=True)  # a disturbed run's, taken again
                shutil.copytree(work, keep)
            return r


def calibrate(a: argparse.Namespace, mnt: str, totals: dict) -> tuple[float, list[int], float, float]:
    """Scan the mount alone (the fastest of three: the hypervisor takes CPU at times, and a
    slowed scan would size the agents for a machine the runs do not have), then set the
    bandwidths and the per-entry overhead so the ideal transfer is --transfer-over-scan times
    that scan, --bytes-share of it moving bytes; and the start overhead (--launch_delay, or
    LAUNCH_SHARE of that ideal)."""
    def scan_alone() -> float:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", SCAN_SNIPPET, mnt, str(a.scan_workers or 0)], check=True,
                       capture_output=True, env=dict(os.environ, PYTHONPATH=REPO))
        return time.perf_counter() - t

    alone = min(scan_alone() for _ in range(3))
    goal = a.transfer_over_scan * alone
    unit = totals["bytes"] / (a.bytes_share * goal) / sum(RATIOS)
    entries = totals["files"] + totals["dirs"]
    launch = a.launch_delay if a.launch_delay is not None else round(LAUNCH_SHARE * goal, 2)
    return alone, [int(unit * r) for r in RATIOS], round((1 - a.bytes_share) * goal * len(RATIOS) / entries, 6), launch


ESTIMATES = (0.5, 0.995, 1.0, 1.5, 2.0, 4.0, 20.0)
"""The live planner's size estimate, as multiples of the share's real cost, for --estimates."""


def estimates(a: argparse.Namespace) -> None:
    """How the size estimate sets when the first chunk closes: the live planner in this process,
    walking the same share on its local path (16 threads, as over sshfs), fed the real cost times
    each of ESTIMATES and Knuth's estimate (what a share below its mount point gets); statvfs of an
    export that is a file system of its own gives the real cost, of a directory exported from a
    bigger volume, that volume's."""
    from datasync_multi.live import Sizing, walk_and_plan
    from datasync_multi.scan import Progress, guess_size

    per_file = 512 * 1024  # the scheduler's default --per_file_cost
    tree = ensure_tree("skewed", a.files, 1, size_scale=a.size_scale)
    totals = totals_of(tree)
    entries = totals["files"] + totals["dirs"]
    real = totals["bytes"] + entries * per_file
    guess = guess_size(tree, ("",))
    rows = []
    for name, estimate in [("Knuth's sample", guess.bytes + guess.entries * per_file)] + \
            [(f"{f:g} x real", int(real * f)) for f in ESTIMATES]:
        progress, chunks = Progress(), []
        walk_and_plan(tree, ("",), Sizing.guided(estimate, 4, 4, per_file),
                      lambda c, p=progress, out=chunks: out.append((p.dirs + p.files, c.cost)),
                      lambda _: None, agents=4, workers=16, progress=progress)
        cost = sum(c for _, c in chunks)
        late = [c for read, c in chunks if read >= 0.9 * entries]
        rows.append([name, f"{estimate / real:.2f}", f"{chunks[0][0] / entries:.1%}", len(chunks),
                     f"{max(c for _, c in chunks) / cost:.1%}", f"{max(late, default=0) / cost:.1%}"])
    body = (f"{totals['files']:,} files in {totals['dirs']:,} directories (the share of the runs above, on a local "
            "disk), 4 agents, K = 4, the default --per_file_cost: when the live planner closes its first chunk, "
            "for size estimates off by each factor.\n\n")
    body += table(["estimate", "estimate / real", "share read at the first chunk", "chunks",
                   "largest chunk", "largest chunk closed after 90% read"], rows) + "\n"
    append_results("10b. Live mode: the first chunk against the size estimate", body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100_000, help="files in the share (a tenth as many directories)")
    ap.add_argument("--size-scale", type=float, default=1 / 4096, help="gen_tree's size scale (default 1/4096)")
    ap.add_argument("--transfer-over-scan", type=float, default=1.0,
                    help="the ideal transfer over the scan of the mount alone")
    ap.add_argument("--bytes-share", type=float, default=0.5,
                    help="the part of the ideal transfer spent moving bytes (the rest: per-entry overheads)")
    ap.add_argument("--launch_delay", type=float,
                    help="per-execution start overhead, seconds (default: 1%% of the ideal transfer)")
    ap.add_argument("--poll", type=float, default=0.25, help="the watcher's --timeout_sec")
    ap.add_argument("--scan-workers", type=int,
                    help="the scheduler's --scan_workers in every run (default: its own, 16 on sshfs)")
    ap.add_argument("--mount-delay", type=float, default=0.0, metavar="MS",
                    help="each way's delay between sshfs and sshd, in ms (bench/delay_proxy.py): a mount far away")
    ap.add_argument("--no-batch", action="store_true",
                    help="live runs only (the batch run's scan is the longest part of a round)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of batch and live, alternating their order")
    ap.add_argument("--live-extra", action="append", default=[],
                    help="one more live run per round with these scheduler flags (e.g. '--live_check_sec 1')")
    ap.add_argument("--watched", action="store_true",
                    help="one more live run per round with the watcher started as soon as it can be (once the first "
                         "chunk has started and the arn file exists): it then hands out chunks during the scan too")
    ap.add_argument("--estimates", action="store_true",
                    help="instead: when the live planner closes its first chunk, for estimates off by some factors")
    ap.add_argument("--old", metavar="DIR",
                    help="one more live run per round with another checkout's scheduler and watcher (e.g. `git "
                         "worktree add /tmp/old HEAD~1`), to compare a change side by side")
    ap.add_argument("--json", help="write every run's figures here too")
    ap.add_argument("--logs", help="keep each run's work directory (logs, ledger, journal) under this directory")
    a = ap.parse_args()
    if a.estimates:
        estimates(a)
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    top = tempfile.mkdtemp(prefix="live-bench-")
    share, scratch = TmpFs(os.path.join(top, "share")), TmpFs(os.path.join(top, "scratch"))
    runs: list[dict] = []
    try:
        tree = ensure_tree("skewed", a.files, 1, outdir=os.path.join(share.path, "gen"), size_scale=a.size_scale)
        totals = totals_of(tree)
        fs = Sshfs(tree, a.mount_delay / 1000)
        with fs as mnt:
            assert fs.sshd is not None
            alone, rates, file_delay, launch_delay = calibrate(a, mnt, totals)
            s = Setup(tree, mnt, totals, rates, file_delay, launch_delay, a.poll,
                      serving_pids(mnt, fs.sshd.pid), scratch.path, a.scan_workers)
            print(f"share: {totals['files']:,} files in {totals['dirs']:,} dirs, {totals['bytes'] / 1e6:,.0f} MB "
                  f"({'a tmpfs' if share.mounted else 'a directory'}); scan alone over sshfs {alone:.1f} s; "
                  f"agents at {', '.join(f'{r / 1e6:.2f}' for r in rates)} MB/s, {file_delay * 1000:.3f} ms per "
                  f"entry, {launch_delay:g} s per execution; ideal transfer {s.ideal:.1f} s",
                  file=sys.stderr, flush=True)
            variants = [("batch", [], False, REPO)] if not a.no_batch else []
            variants += [("live", [], False, REPO)]
            variants += [("live", x.split(), False, REPO) for x in a.live_extra]
            variants += [("live", [], True, REPO)] if a.watched else []
            variants += [("live", [], False, os.path.abspath(a.old))] if a.old else []
            for i in range(a.rounds):
                for mode, extra, watched, repo in (variants if i % 2 == 0 else variants[::-1]):
                    keep = a.logs and os.path.join(a.logs, f"{len(runs) + 1}-{mode}")
                    r = undisturbed(partial(run_one, s, mode, extra, watched, keep, repo))
                    runs.append(r)
                    print(json.dumps({k: v for k, v in r.items() if k != "per_agent"}), file=sys.stderr, flush=True)
    finally:
        scratch.close()
        share.close()
        shutil.rmtree(top, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"scan_alone": alone, "rates": rates, "file_delay": file_delay, "ideal": s.ideal,
                       "totals": totals, "runs": runs}, fh, indent=1)
    print_tables(a, s, alone, runs)


def undisturbed(run: Callable[[], dict], tries: int = 4) -> dict:
    """A run taken again (after the machine has gone quiet) while other processes used more
    than ``DISTURBED`` cores of it: sshfs, the scheduler and the emulator share two cores,
    and a run slowed by something else measures that instead."""
    for attempt in range(1, tries + 1):
        r = run()
        cores = r["cpu"]["others"] / r["wall"]
        r["disturbed"] = cores
        if cores < DISTURBED or attempt == tries:
            return r
        print(f"  disturbed: other processes used {cores:.2f} cores; again", file=sys.stderr, flush=True)
        wait_quiet("bench/audit.py")
    raise AssertionError("unreachable")


def label(r: dict) -> str:
    if r["mode"] == "batch":
        return "batch, K = 4"
    common = next((i for i, f in enumerate(r["flags"]) if f in ("--scan_workers", "--per_file_cost")), None)
    flags = " ".join(r["flags"][1:common])  # what this run adds to every run's flags
    return ("live" + (f" {flags}" if flags else "") + (", watcher during the scan" if r["watched"] else "")
            + (", `--old`" if r.get("old") else ""))


def print_tables(a: argparse.Namespace, s: Setup, alone: float, runs: list[dict]) -> None:
    rows, diag = [], []
    transfers = [r["transfer"] for r in runs if r["mode"] == "batch"]
    batch = statistics.mean(transfers) if transfers else None
    for i, r in enumerate(runs, 1):
        ok = r["exact"] and r["all_success"] and r["max_writes"] == 1 and r["max_selections"] == 1
        rows.append([i, label(r), r["first"], f"{100 * r['read_at_first']:.0f}%", r["scan"], r["transfer"],
                     r["makespan"], f"{r['makespan'] / max(r['scan'], s.ideal):.2f}",
                     f"{r['makespan'] / (r['scan'] + s.ideal):.2f}",
                     f"{r['makespan'] / max(r['scan'], batch):.2f}" if batch else "—",
                     "yes" if ok else "NO"])
        c = r["cpu"]
        diag.append([i, label(r), r["executions"], f"{r['over_model']:.2f}", f"{r['idle_latency']:.0f}",
                     f"{r['idle_starved']:.0f}", f"{r['idle_tail']:.0f}", f"{r['tail']:.1f}", f"{c['scheduler']:.0f}",
                     f"{c['watcher']:.0f}",
                     f"{c['emulator']:.0f}", f"{c['sshfs']:.0f}", f"{c['others']:.0f}", f"{c.get('steal', 0):.0f}",
                     f"{(sum(c.values()) - c.get('steal', 0)) / r['wall'] / (os.cpu_count() or 1):.0%}"])
    t = s.totals
    body = (f"{t['files']:,} files in {t['dirs']:,} directories ({t['bytes'] / 1e6:,.0f} MB, `gen_tree.py` "
            f"skewed, sizes x{a.size_scale:g}) on a tmpfs, read by the scheduler through sshfs over loopback with "
            f"caches off{f', {a.mount_delay:g} ms added each way (`delay_proxy.py`)' if a.mount_delay else ''} "
            f"({f'--scan_workers {s.scan_workers}' if s.scan_workers else 'the default 16 scan threads'}); "
            f"scan of the mount alone {alone:.1f} s (the fastest of three). Agents at "
            f"{', '.join(f'{r / 1e6:.2f}' for r in s.rates)} MB/s, {s.file_delay * 1000:.3f} ms per entry, "
            f"{s.launch_delay:g} s per execution; `--per_file_cost {s.per_file_cost}` (an entry's overhead at the "
            f"agents' mean bandwidth) in every run; watcher every {s.poll:g} s. Ideal transfer {s.ideal:.1f} s. "
            + ("Batch and live side by side in this run, rounds alternating the order. Batch's transfer (first "
               f"start to last end, the scan over): {batch:.1f} s on average.\n\n" if batch else
               "Live runs only (`--no-batch`), side by side, rounds alternating the order.\n\n"))
    body += table(["#", "mode", "first start s", "share read at first start", "scan s", "transfer s", "makespan s",
                   "makespan / max(scan, ideal)", "makespan / (scan + ideal)",
                   "makespan / max(scan, batch's transfer)", "exact copy"], rows)
    body += "\n\n" + table(["#", "mode", "executions", "execution / its model (median)",
                            "agent-s idle: a chunk waiting", "the scan behind", "after the scan, none left",
                            "tail s",
                            "CPU s scheduler", "watcher", "emulator", "sshfs + sshd", "other processes",
                            "hypervisor's steal", "machine busy"], diag)
    spent = [[i, label(r), r["makespan"], *(r["spent"][k] for k in ("busy", "before", "between", "after")),
              f"{r['spent']['busy'] / s.ideal:.2f}"] for i, r in enumerate(runs, 1)]
    body += ("\n\nWhere each makespan went, in seconds, each agent weighted by its share of the fleet's throughput "
             "(the parts add up to the makespan):\n\n"
             + table(["#", "mode", "makespan s", "busy", "before the first launch", "between executions",
                      "after the last", "busy / ideal"], spent) + "\n")
    closing = [[i, label(r), r["scan"], f"{r['closed_ideal']:.1f}",
                f"{r['closed_ideal'] / max(r['scan'], s.ideal):.2f}", r["makespan"],
                f"{r['makespan'] / r['closed_ideal']:.2f}"]
               for i, r in enumerate(runs, 1) if r.get("closed_ideal")]
    body += ("\n\nThe ideal transfer of the work as each live run's scan closed it (`closed_ideal`: each unit moved by "
             "the whole fleet, each agent its share of it as in the ideal transfer, from the moment its journal line "
             "says it closed), against the target's max(scan, ideal) and against the makespan:\n\n"
             + table(["#", "mode", "scan s", "ideal as closed s", "ideal as closed / max(scan, ideal)", "makespan s",
                      "makespan / ideal as closed"], closing) + "\n") if closing else ""
    threads = f", {s.scan_workers} scan thread{'s' if s.scan_workers > 1 else ''}" if s.scan_workers else ""
    append_results("10. Live mode against batch dynamic dispatch" + threads, body)


if __name__ == "__main__":
    main()
