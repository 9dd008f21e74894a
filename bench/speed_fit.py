"""How well each agent's measured speed foresaw its next chunks, in a live run that bench/live.py kept.

For every chunk an agent ran, after its first three, the speed fitted from the chunks it
had ended before (``assign.fit_speed``: seconds per byte and per entry) and the one rate in
cost units the dispatcher used before it (the same chunks' cost over their seconds) each
foresee the chunk's seconds; the script prints the median and largest error of each, over
the chunks of 10 s or more. Seconds are launch to end, as bench/live.py records them.

    python3 bench/speed_fit.py --json RESULTS.json --logs LOGS [--run N ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasync_multi.assign import Work, fit_speed  # noqa: E402

LONG = 10.0
"""Chunks shorter than this are left out of the errors: their start dominates them."""


def errors(run: dict, ledger: dict, per_file_cost: float) -> tuple[list[float], list[float]]:
    """Relative errors of the two-part fit and of one rate, for each long chunk after an agent's third."""
    chunks = {(c["files"] + c["dirs"], c["bytes"]): c for c in ledger["dispatch"]["chunks"]}
    two, one = [], []
    for runs in run["per_agent"].values():
        samples = [(Work(chunks[(files, nbytes)]["bytes"], files), end - launch)
                   for launch, end, files, nbytes in runs if (files, nbytes) in chunks]
        for k, (work, took) in enumerate(samples):
            if k < 3 or took < LONG:
                continue
            speed = fit_speed(samples[:k], per_file_cost)
            rate = sum(w.cost(per_file_cost) for w, _ in samples[:k]) / sum(t for _, t in samples[:k])
            if speed is not None:
                two.append(abs(speed.seconds(work) - took) / took)
                one.append(abs(work.cost(per_file_cost) / rate - took) / took)
    return two, one


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True, help="bench/live.py's --json")
    ap.add_argument("--logs", required=True, help="bench/live.py's --logs")
    ap.add_argument("--run", type=int, action="append", help="run numbers, as its tables give them (default: all live)")
    a = ap.parse_args()
    with open(a.json) as fh:
        runs = json.load(fh)["runs"]
    for number in a.run or [i + 1 for i, r in enumerate(runs) if r["mode"] == "live"]:
        run = runs[number - 1]
        with open(os.path.join(a.logs, f"{number}-live", "arn_file.txt.ledger.json")) as fh:
            ledger = json.load(fh)
        per_file_cost = float(run["flags"][run["flags"].index("--per_file_cost") + 1])
        two, one = errors(run, ledger, per_file_cost)
        if not two:
            print(f"run {number}: no chunk of {LONG:g} s or more after an agent's third")
            continue
        print(f"run {number}{' (--old)' if run.get('old') else ''}: {len(two)} chunks of {LONG:g} s or more; "
              f"two-part speed off by {statistics.median(two):.1%} (median), {max(two):.1%} at most; "
              f"one rate in cost units {statistics.median(one):.1%}, {max(one):.1%}")


if __name__ == "__main__":
    main()
