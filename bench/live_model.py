"""How close to max(scan, ideal transfer) live mode could come, in a model that knows everything.

A fluid model of bench/live.py's setting: the scan closes work at an even pace over
``--scan`` seconds; agents run at ``--rates`` (their sum moves the share in ``--ideal``
seconds); every execution costs ``--overhead`` seconds more than its work, and
``--latency`` seconds pass between one execution's end and the next one's start. An idle
agent starts a chunk of ``d0 + growth x t`` seconds of its own work (sized for it) or an
even share of that (``--even``), as soon as that much is closed and not taken; when the scan
ends, what is left is split so the agents end together. The model knows the scan's end
and the agents' rates exactly, has no check to wait for, and no emulator running over its
model, so its best over a grid of (d0, growth) is more than any real run can expect: if it
misses a target, the target is out of reach for this way of cutting a share, whatever
the tuning. The figures are in bench/README.md, question 10.

With ``--journal``, the scan closes work as a real live run's journal says instead (each
unit's cost at the line saying it closed, from the first such line): the model then bounds
what any chunk sizes of that family could make of that walk. Its clock starts at the first
unit closed, so the time before it is left out and the bound stays optimistic.

    python3 bench/live_model.py --scan 29.5 --ideal 32.5 --overhead 0.37
    python3 bench/live_model.py --journal LOGS/1-live/arn_file.txt.ledger.json.journal --ideal 127.3 --overhead 1.16
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
from collections.abc import Callable

STEP = 0.005
"""Seconds per step of the model's clock."""


def makespan(scan: float, ideal: float, rates: list[float], overhead: float, latency: float,
             size: Callable[[float, int], float],
             closed_by: Callable[[float], float] | None = None) -> tuple[float, list[int]]:
    """The model's makespan and executions per agent, ``size(t, agent)`` giving the work
    (in rate-seconds) an agent takes at ``t`` while the scan runs, ``closed_by(t)`` the
    share of the work closed at ``t`` (an even pace if None)."""
    share = ideal * sum(rates)
    free_at = [0.0] * len(rates)
    runs = [0] * len(rates)
    taken, t = 0.0, 0.0
    while t < scan:
        closed = share * (closed_by(t) if closed_by else t / scan)
        for agent in sorted(range(len(rates)), key=lambda a: (free_at[a], -rates[a])):
            work = size(t, agent)
            if free_at[agent] <= t and closed - taken >= work:
                taken += work
                free_at[agent] = t + overhead + work / rates[agent] + latency
                runs[agent] += 1
        t += STEP
    left = share - taken
    starts = [max(f, scan) for f in free_at]
    lo, hi = scan, scan + 10 * ideal + 10 * overhead
    for _ in range(60):  # the end at which the agents, sharing what is left, finish together
        end = (lo + hi) / 2
        if sum(max(0.0, end - s - overhead) * r for s, r in zip(starts, rates, strict=True)) < left:
            lo = end
        else:
            hi = end
    runs = [n + (hi - s - overhead > 0) for n, s in zip(runs, starts, strict=True)]
    return max([hi] + free_at), runs


def journal_profile(path: str) -> tuple[float, Callable[[float], float]]:
    """The scan's length and the share of the work closed by each second, from a live run's
    journal: each unit's cost (bytes plus the run's per-file cost per entry) at its line's time."""
    lines = [json.loads(line) for line in open(path)]
    per_file = next(ln["sizing"]["per_file_cost"] for ln in lines if ln["kind"] == "begin")
    units = sorted((ln["at"], ln["unit"]["bytes"] + (ln["unit"]["files"] + ln["unit"]["dirs"]) * per_file)
                   for ln in lines if ln["kind"] == "unit")
    t0, total = units[0][0], sum(c for _, c in units)
    times = [t - t0 for t, _ in units]
    shares = list(itertools.accumulate(c / total for _, c in units))
    return times[-1], lambda t: shares[i - 1] if (i := bisect.bisect_right(times, t)) else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scan", type=float, help="seconds the scan takes (with --journal: the journal's)")
    ap.add_argument("--journal", help="a live run's journal: the scan closes work as it says, not at an even pace")
    ap.add_argument("--ideal", type=float, required=True, help="the ideal transfer, seconds")
    ap.add_argument("--overhead", type=float, required=True, help="seconds each execution costs beyond its work")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds between an execution's end and the next start")
    ap.add_argument("--rates", default="4,2,1,1", help="the agents' relative bandwidths")
    ap.add_argument("--even", action="store_true", help="chunks of even cost, not sized for the agent taking them")
    a = ap.parse_args()
    if (a.scan is None) == (a.journal is None):
        ap.error("give --scan or --journal")
    scan, closed_by = journal_profile(a.journal) if a.journal else (a.scan, None)
    rates = [float(r) for r in a.rates.split(",")]
    mean = sum(rates) / len(rates)
    results = []
    for d0, growth in itertools.product([0.25, 0.5, 1, 1.5, 2, 3, 4, 6, 8], [0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3]):
        def size(t: float, agent: int, d0: float = d0, growth: float = growth) -> float:
            return (d0 + growth * t) * (mean if a.even else rates[agent])

        end, runs = makespan(scan, a.ideal, rates, a.overhead, a.latency, size, closed_by)
        results.append((end / max(scan, a.ideal), d0, growth, runs))
    ratio, d0, growth, runs = min(results)
    print(f"best: makespan / max(scan, ideal) = {ratio:.3f} with chunks of {d0:g} + {growth:g} x t seconds "
          f"({'even' if a.even else 'sized for each agent'}); executions per agent {runs}")


if __name__ == "__main__":
    main()
