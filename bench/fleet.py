#!/usr/bin/env python3
"""Question 9: a changing fleet under dynamic dispatch: an agent lost with a chunk queued, an agent joining.

On the local emulator, through the real scheduler and watcher (dynamic plans, K = 4), side
by side in one run:

(a) Queued work on a lost agent. Four agents, --queue_depth 2, so each agent runs one chunk
    with one QUEUED behind it. The first agent is slow, so it still holds a running and a
    queued chunk once every chunk has been handed out and the other agents have a free
    task; at a random point of the watcher's sleep it goes OFFLINE. The watcher loops every
    P seconds with the default --offline_threshold_sec (600). Measured, on the emulator's
    clock: from the OFFLINE call to the StartTaskExecution of the queued chunk's new attempt
    on another agent, split into the wait for the next check (from the watcher's log) and
    the part of that check. The emulator keeps a running execution alive while its agent is
    OFFLINE (--offline-error-delay 3600, as DataSync does until it gives up), so the chunk
    running on the lost agent is stranded: it is checked not to have moved one poll
    interval after the queued one did; then the agent comes back ONLINE (at full speed)
    and finishes it, and the run ends.
(b) An agent joining. Four agents at equal bandwidth; the fourth is OFFLINE when the
    scheduler plans (the plan is for three, agents discovered) and comes ONLINE at 20% of
    the ideal three-agent time, against the same run in which it stays OFFLINE, at K = 4
    and K = 8. Makespan (first start to last chunk ended), executions per agent, and each
    over its ideal: three agents total / 3B; with the fourth joining at t, t + (total - 3Bt)
    / 4B; each plus one start overhead. Beside it, the best makespan the plan's whole chunks
    allow (each paying the start overhead), since a joining agent can only take whole chunks
    of a plan cut for three.

Every run is checked: destination == source, no path written twice.

About 5 minutes on 2 cores.

    python3 bench/fleet.py [--mb 160] [--loss_mb 48] [--polls 1 5] [--runs 3] [--join_ks 4 8]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

from common import REPO, append_results, table
from dispatch import build_share
from emulator.harness import Emulator
from emulator.sample import differences

SERVER, EXPORT = "198.51.100.10", "/vol1"
RATE = 2_000_000
"""Bytes per second of every agent (in (a), of all but the lost one)."""
SLOW = 100_000
"""Bytes per second of the agent lost in (a), until it comes back."""
FILE_DELAY = 0.002
JOIN_AT = 0.2
"""When the fourth agent comes ONLINE in (b), as a fraction of the ideal three-agent time."""
K = 4
"""Chunks per agent in (a), and by default in (b)."""
TERMINAL = ("SUCCESS", "ERROR")


class Site:
    """One emulator with its destination, work directory and the two scripts."""

    def __init__(self, top: str, emu: Emulator):
        self.emu = emu
        self.s3 = os.path.join(top, "s3")
        self.work = os.path.join(top, "work")
        self.env = emu.env()
        self.dest = emu.client().create_location_s3(
            S3BucketArn="arn:aws:s3:::bench", Subdirectory="/x",
            S3Config={"BucketAccessRoleArn": "arn:aws:iam::111122223333:role/r"})["LocationArn"]
        with open(os.path.join(self.work, "m"), "w") as fh:
            fh.write("/\n")

    def script(self, name: str, *args: str, background: bool = False):
        cmd = [sys.executable, os.path.join(REPO, name), "--log_dir", os.path.join(self.work, "log"), *args]
        if background:
            out = open(os.path.join(self.work, "watcher.out"), "w")  # noqa: SIM115 - lives with the process
            return subprocess.Popen(cmd, cwd=self.work, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        return subprocess.run(cmd, cwd=self.work, env=self.env, capture_output=True, text=True, check=True)

    def schedule(self, share: str, *extra: str) -> None:
        self.script("datasync_multi_agents_scheduler.py", "--nfs_server_name", SERVER, "--sub_dir", EXPORT,
                    "--mount_path_dir", share, "--dest_loc", self.dest, "--source_file",
                    os.path.join(self.work, "m"), *extra)

    def ledger(self) -> dict:
        with open(os.path.join(self.work, "arn_file.txt.ledger.json"), encoding="utf-8") as fh:
            return json.load(fh)

    def sleeps(self) -> list[float]:
        """When the watcher ended each check (its "sleeping" log lines), epoch seconds."""
        out = []
        with open(os.path.join(self.work, "log", "ds_ha.log"), encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if " - INFO - sleeping " in line:
                    stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
                    out.append(stamp.timestamp())
        return out

    def exact(self, share: str) -> bool:
        state = self.emu.state()
        return differences(share, os.path.join(self.s3, "bench", "x")) == [] and \
            max(state["writes"].values()) == 1

    def give_up(self, what: str, watcher: subprocess.Popen | None = None) -> None:
        if watcher is not None and watcher.poll() is None:
            watcher.terminate()
            watcher.wait(timeout=30)
        with open(os.path.join(self.work, "watcher.out"), encoding="utf-8", errors="replace") as fh:
            said = fh.read()[-4000:]
        ledger = json.dumps(self.ledger(), indent=1)[-6000:]
        sys.exit(f"{what}\n--- watcher output (end) ---\n{said}\n--- ledger (end) ---\n{ledger}")


def key(execution: dict) -> str:
    """A chunk, as its executions' include filters name it."""
    return json.dumps(execution["includes"], sort_keys=True)


def unfinished(execution: dict) -> bool:
    return execution["status"] not in TERMINAL


# -------------------------------------------------------------------- (a) loss


def one_loss(share: str, poll: float, launch_delay: float, phase: random.Random) -> dict:
    with tempfile.TemporaryDirectory() as top:
        for d in ("s3", "work"):
            os.makedirs(os.path.join(top, d))
        extra = ["--launch-delay", str(launch_delay), "--file-delay", str(FILE_DELAY),
                 "--agent-bytes-per-second", ",".join(map(str, (SLOW, RATE, RATE, RATE)))]
        with Emulator().start({f"{SERVER}:{EXPORT}": share}, os.path.join(top, "s3"), agents=4, phase_delay=0.02,
                              offline_error_delay=3600, extra_args=extra) as emu:
            site = Site(top, emu)
            lost = emu.agent_arns()[0]
            site.schedule(share, "--chunks_per_agent", str(K), "--queue_depth", "2")
            chunks = len(site.ledger()["dispatch"]["chunks"])
            watcher = site.script("datasync_agent_ha.py", "--timeout_sec", str(poll), background=True)
            try:
                def ready(st: dict) -> bool:
                    """Every chunk handed out, the lost agent holding a queued one, another agent a free task."""
                    ex = st["executions"]
                    if len({key(e) for e in ex}) < chunks:
                        return False
                    if not any(e["agent"] == lost and e["status"] == "QUEUED" for e in ex):
                        return False
                    return any(sum(1 for e in ex if e["agent"] == a and unfinished(e)) < 2
                               for a in emu.agent_arns()[1:])
                emu.wait_for(ready, timeout=180, interval=0.05)
                time.sleep(phase.uniform(0, poll))  # a random point of the watcher's sleep
                before = emu.state()["executions"]
                offline_at = time.time()
                emu.set_agent(lost, status="OFFLINE")
                queued = next(e for e in before if e["agent"] == lost and e["status"] == "QUEUED")
                running = next(e for e in before if e["agent"] == lost and unfinished(e) and e is not queued)
                moved = emu.wait_for(lambda st: next((e for e in st["executions"] if key(e) == key(queued)
                                                      and e["seq"] > queued["seq"]), None),
                                     timeout=60 + 3 * poll, interval=0.02)
            except TimeoutError:
                site.give_up(f"P={poll:g}: the queued chunk of the lost agent was not started elsewhere", watcher)
            time.sleep(poll + 1)  # one more check at least: the running chunk must still wait for the threshold
            st = emu.state()
            old = next(e for e in st["executions"] if e["arn"] == queued["arn"])
            running_now = next(e for e in st["executions"] if e["arn"] == running["arn"])
            kept = (unfinished(running_now) and not any(key(e) == key(running) and e["seq"] > running["seq"]
                                                        for e in st["executions"]))
            emu.set_agent(lost, status="ONLINE", bytes_per_second=RATE)
            try:
                code = watcher.wait(timeout=300)
            except subprocess.TimeoutExpired:
                site.give_up(f"P={poll:g}: the run did not end after the lost agent came back", watcher)
            if code != 0:
                site.give_up(f"P={poll:g}: the watcher exited {code}")
            checks_ended = [t for t in site.sleeps() if t < moved["start_time"]]
            check_began = checks_ended[-1] + poll if checks_ended else None
            return {"delay": moved["start_time"] - offline_at,
                    "wait": None if check_began is None else check_began - offline_at,
                    "in_check": None if check_began is None else moved["start_time"] - check_began,
                    "elsewhere": moved["agent"] != lost, "cancelled": old["status"] == "ERROR"
                    and old["launch_time"] is None, "kept": kept, "exact": site.exact(share),
                    "executions": len(st["executions"])}


# -------------------------------------------------------------------- (b) join


def granular(chunk_bytes: list[int], launch_delay: float, join_at: float | None) -> float:
    """The best makespan with these chunks: three agents from 0 (and the fourth from ``join_at``),
    largest chunk first to the agent that ends it first, each chunk paying the start overhead."""
    free = [0.0, 0.0, 0.0] + ([join_at] if join_at is not None else [])
    for size in sorted(chunk_bytes, reverse=True):
        i = min(range(len(free)), key=lambda j: free[j] + size / RATE)
        free[i] += size / RATE + launch_delay
    return max(free)


def one_join(share: str, total: int, join: bool, poll: float, launch_delay: float, k: int) -> dict:
    with tempfile.TemporaryDirectory() as top:
        for d in ("s3", "work"):
            os.makedirs(os.path.join(top, d))
        extra = ["--launch-delay", str(launch_delay), "--file-delay", str(FILE_DELAY),
                 "--agent-bytes-per-second", ",".join([str(RATE)] * 4)]
        with Emulator().start({f"{SERVER}:{EXPORT}": share}, os.path.join(top, "s3"), agents=4, phase_delay=0.02,
                              offline_error_delay=1.0, extra_args=extra) as emu:
            site = Site(top, emu)
            agents = emu.agent_arns()
            fourth = agents[3]
            emu.set_agent(fourth, status="OFFLINE")
            site.schedule(share, "--chunks_per_agent", str(k))
            planned = len(site.ledger()["dispatch"]["lanes"])
            watcher = site.script("datasync_agent_ha.py", "--timeout_sec", str(poll), background=True)
            first = min(e["start_time"] for e in emu.state()["executions"])
            ideal3 = total / (3 * RATE)
            joined_at = None
            try:
                if join:
                    time.sleep(max(0.0, first + JOIN_AT * ideal3 - time.time()))
                    joined_at = time.time() - first
                    emu.set_agent(fourth, status="ONLINE")
                code = watcher.wait(timeout=10 * ideal3 + 120)
            except subprocess.TimeoutExpired:
                site.give_up(f"join={join}: the run did not end", watcher)
            if code != 0:
                site.give_up(f"join={join}: the watcher exited {code}")
            state = emu.state()
            ex = state["executions"]
            end = max(e["end_time"] for e in ex if e["status"] == "SUCCESS")
            mine = [e["start_time"] for e in ex if e["agent"] == fourth]
            if joined_at is None:
                ideal = launch_delay + ideal3
            else:
                ideal = launch_delay + joined_at + (total - 3 * RATE * joined_at) / (4 * RATE)
            sizes = [c["bytes"] for c in site.ledger()["dispatch"]["chunks"]]
            return {"makespan": end - first, "ideal": ideal, "planned": planned, "joined_at": joined_at,
                    "chunks": len(sizes), "granular": granular(sizes, launch_delay, joined_at),
                    "per_agent": "/".join(str(sum(1 for e in ex if e["agent"] == a)) for a in agents),
                    "first_chunk": (min(mine) - first - joined_at) if mine and joined_at is not None else None,
                    "lane": fourth in site.ledger()["dispatch"]["lanes"], "exact": site.exact(share)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=160, help="share size of (b), in MB")
    ap.add_argument("--loss_mb", type=int, default=48, help="share size of (a), in MB")
    ap.add_argument("--polls", type=float, nargs="+", default=[1, 5], help="the watcher's --timeout_sec in (a)")
    ap.add_argument("--runs", type=int, default=3, help="runs of (a) per poll interval")
    ap.add_argument("--join_ks", type=int, nargs="+", default=[4, 8], help="--chunks_per_agent values of (b)")
    ap.add_argument("--join_poll", type=float, default=0.25, help="the watcher's --timeout_sec in (b)")
    ap.add_argument("--launch_delay", type=float, default=0.5, help="per-execution start overhead, seconds")
    a = ap.parse_args()
    t0 = time.time()
    with tempfile.TemporaryDirectory() as top:
        small, share = os.path.join(top, "small"), os.path.join(top, "share")
        build_share(small, a.loss_mb)
        total = build_share(share, a.mb)
        loss_rows = []
        for poll in a.polls:
            phase = random.Random(int(poll * 1000))
            rs = [one_loss(small, poll, a.launch_delay, phase) for _ in range(a.runs)]
            for r in rs:
                print(f"P={poll:g}: {r}", flush=True)
            delays = [r["delay"] for r in rs]
            loss_rows.append([f"{poll:g}", a.runs, statistics.mean(delays), min(delays), max(delays),
                              max(r["wait"] for r in rs), max(r["in_check"] for r in rs),
                              "yes" if all(r["elsewhere"] and r["cancelled"] for r in rs) else "NO",
                              "yes" if all(r["kept"] for r in rs) else "NO",
                              "yes" if all(r["exact"] for r in rs) else "NO"])
        join_rows, makespans = [], {}
        for k in a.join_ks:
            for join in (False, True):
                r = one_join(share, total, join, a.join_poll, a.launch_delay, k)
                print(f"K={k} join={join}: {r}", flush=True)
                makespans[k, join] = r["makespan"]
                join_rows.append([k, r["chunks"], "fourth joins at 20%" if join else "fourth stays OFFLINE",
                                  r["planned"], "-" if r["joined_at"] is None else f"{r['joined_at']:.1f}",
                                  "-" if r["first_chunk"] is None else f"{r['first_chunk']:.2f}",
                                  r["per_agent"], r["makespan"], r["ideal"], r["makespan"] / r["ideal"],
                                  r["granular"], "yes" if r["exact"] else "NO"])
    body = "**(a) An agent lost with a chunk queued**\n\n" + table(
        ["poll P s", "runs", "offline -> queued chunk started elsewhere, mean s", "min s", "max s",
         "waiting for the next check, max s", "within that check, max s", "moved unfailed (cancelled unread)",
         "running chunk kept waiting", "exact copy"], loss_rows)
    body += (f"\n\n{a.loss_mb} MB in 400 KB files, K = {K}, `--queue_depth 2`, four agents: three at "
             f"{RATE / 1e6:g} MB/s, the lost one at {SLOW / 1e6:g} MB/s (so it still holds a running and a queued "
             "chunk once every chunk is handed out and the others have a free task); start overhead "
             f"{a.launch_delay:g} s, {FILE_DELAY * 1000:g} ms per file. The watcher loops every P seconds with the "
             "default `--offline_threshold_sec` (600). The agent goes OFFLINE at a random point of the "
             "watcher's sleep; the time runs from that call to the StartTaskExecution of the queued chunk's new "
             "attempt on another agent (emulator clock). The next check sees the agent OFFLINE, cancels the "
             "queued execution (it has read nothing: no failure counted), and hands the chunk to an agent with a "
             "free task in the same check: bounded by one poll interval plus one check. The split comes from "
             "the watcher's log (a check begins P after the previous one logged its sleep). In AWS an agent is "
             "shown OFFLINE only about 5 minutes after it loses contact: that comes on top. The emulator keeps "
             "a running execution alive while its agent is OFFLINE (`--offline-error-delay 3600`), so the "
             "chunk running on the lost agent is stranded and, below the 600 s threshold, stays where it is: "
             "checked one poll interval plus 1 s after the queued chunk moved. Then the agent is brought back "
             "ONLINE (at full speed) and finishes it, and the run ends; each run checked exact (destination == "
             "source, no path written twice).\n\n")
    body += "**(b) An agent joining a dynamic run**\n\n" + table(
        ["K", "chunks", "run", "agents planned", "fourth ONLINE at s", "its first chunk started after s",
         "executions per agent", "makespan s", "ideal s", "makespan / ideal", "best with these chunks s",
         "exact copy"], join_rows)
    body += "\n\nMakespan with the fourth joining / without it: " + "; ".join(
        f"K = {k}: {makespans[k, True] / makespans[k, False]:.3f} ({makespans[k, True]:.1f} s against "
        f"{makespans[k, False]:.1f} s)" for k in a.join_ks) + ".\n\n"
    body += (f"{total / 1e6:.0f} MB in 400 KB files, queue depth 1, four agents at {RATE / 1e6:g} MB/s "
             f"each, start overhead {a.launch_delay:g} s, {FILE_DELAY * 1000:g} ms per file, the watcher polling "
             f"every {a.join_poll:g} s. The fourth agent is OFFLINE when the scheduler plans (no `--agent_arns`: "
             "the run's agents are discovered), so the plan has lanes for three; in the second run it comes "
             "ONLINE at 20% of the ideal three-agent time. The check that sees it ONLINE creates its lane (its "
             "task) at its end, and it takes chunks from the next check on. Ideal: three agents total / 3B; with "
             "the fourth joining at t, t + (total - 3Bt) / 4B; each plus one start overhead. Best with these "
             "chunks: the plan's chunks (3K, cut for three agents), largest first to the agent that ends it "
             "first, three agents from 0 and the fourth from the moment it came ONLINE, each chunk paying the "
             "start overhead, no polling delay: a joining agent takes whole chunks, so the plan's granularity "
             "bounds what it can win. Executions per agent in agent order, the fourth last. Wall time of the "
             f"whole bench: {time.time() - t0:.0f} s.\n")
    append_results("9. A changing fleet: queued work on a lost agent, an agent joining", body)


if __name__ == "__main__":
    main()
