"""Human-readable tables."""

from __future__ import annotations

from collections.abc import Sequence

from .plan import Plan
from .scan import human_bytes


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[bool]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if right[i] else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=False)))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def plan_table(plan: Plan) -> str:
    """One row per task: what each agent carries, what DataSync will list for it, and how long its filter is."""
    total = plan.total_cost
    rows = [(t.agent_arn.rsplit("/", 1)[-1], t.name, len(t.units), human_bytes(t.bytes), f"{t.files:,}",
             f"{t.items:,}", f"{100 * t.cost / total:.1f}%" if total else "-", f"{t.include_chars:,}")
            for t in plan.tasks]
    body = table(("agent", "task", "units", "bytes", "files", "items listed", "share", "include chars"),
                 rows, (False, False, True, True, True, True, True, True))
    summary = (f"{len(plan.tasks)} task(s) on {len(plan.agents)} agent(s); "
               f"{human_bytes(plan.total_bytes)} in {plan.total_files:,} files and {plan.total_dirs:,} dirs; "
               f"heaviest task / lower bound = {plan.balance:.3f}")
    return body + "\n" + summary


def watch_table(rows) -> str:
    """One row per watched execution: where it runs, what it sent against what it had left
    to send (DataSync's estimate is what differs from the destination), what it found
    already there and unchanged, and what the watcher did."""
    def progress(done: int, estimated: int, fmt) -> str:
        return f"{fmt(done)} / {fmt(estimated)}" if estimated else fmt(done)

    def files(r) -> str:
        shown = progress(r.files_done, r.files_estimated, lambda n: f"{n:,}")
        return shown + (f" ({r.files_skipped:,} unchanged, skipped)" if r.files_skipped else "")

    return table(("execution", "task", "agent", "status", "bytes sent / to send", "files sent / to send", "action"),
                 [(r.execution.rsplit("/", 1)[-1], r.task, r.agent.rsplit("/", 1)[-1], r.status,
                   progress(r.bytes_done, r.bytes_estimated, human_bytes), files(r), r.action) for r in rows],
                 (False, False, False, False, True, True, False))
