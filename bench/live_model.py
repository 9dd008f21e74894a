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

    python3 bench/live_model.py --scan 29.5 --ideal 32.5 --overhead 0.37
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable

STEP = 0.005
"""Seconds per step of the model's clock."""


def makespan(scan: float, ideal: float, rates: list[float], overhead: float, latency: float,
             size: Callable[[float, int], float]) -> tuple[float, list[int]]:
    """The model's makespan and executions per agent, ``size(t, agent)`` giving the work
    (in rate-seconds) an agent takes at ``t`` while the scan runs."""
    share = ideal * sum(rates)
    free_at = [0.0] * len(rates)
    runs = [0] * len(rates)
    taken, t = 0.0, 0.0
    while t < scan:
        closed = share * t / scan
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scan", type=float, required=True, help="seconds the scan takes")
    ap.add_argument("--ideal", type=float, required=True, help="the ideal transfer, seconds")
    ap.add_argument("--overhead", type=float, required=True, help="seconds each execution costs beyond its work")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds between an execution's end and the next start")
    ap.add_argument("--rates", default="4,2,1,1", help="the agents' relative bandwidths")
    ap.add_argument("--even", action="store_true", help="chunks of even cost, not sized for the agent taking them")
    a = ap.parse_args()
    rates = [float(r) for r in a.rates.split(",")]
    mean = sum(rates) / len(rates)
    results = []
    for d0, growth in itertools.product([0.25, 0.5, 1, 1.5, 2, 3, 4, 6, 8], [0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3]):
        def size(t: float, agent: int, d0: float = d0, growth: float = growth) -> float:
            return (d0 + growth * t) * (mean if a.even else rates[agent])

        end, runs = makespan(a.scan, a.ideal, rates, a.overhead, a.latency, size)
        results.append((end / max(a.scan, a.ideal), d0, growth, runs))
    ratio, d0, growth, runs = min(results)
    print(f"best: makespan / max(scan, ideal) = {ratio:.3f} with chunks of {d0:g} + {growth:g} x t seconds "
          f"({'even' if a.even else 'sized for each agent'}); executions per agent {runs}")


if __name__ == "__main__":
    main()
