"""Human-readable tables."""

from __future__ import annotations

from collections.abc import Sequence

from .dispatch import ChunkState, DispatchResult
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
    """One row per task (or chunk, in a dynamic plan): what each carries, what DataSync will
    list for it, and how long its filter is."""
    total = plan.total_cost
    if plan.dynamic:
        chunk_rows = [(c.index, len(c.units), human_bytes(c.bytes), f"{c.files:,}", f"{c.items:,}",
                 f"{100 * c.cost / total:.1f}%" if total else "-", f"{c.include_bytes:,}") for c in plan.chunks]
        body = table(("chunk", "units", "bytes", "files", "items listed", "share", "include bytes"),
                     chunk_rows, (True, True, True, True, True, True, True))
        return body + "\n" + (f"{len(plan.chunks)} chunk(s) for {len(plan.agents)} agent(s), {plan.slots} task(s) "
                              "each, "
                              f"each chunk to the agent that frees first; {human_bytes(plan.total_bytes)} in "
                              f"{plan.total_files:,} files and {plan.total_dirs:,} dirs; heaviest chunk / "
                              f"lower bound = {plan.balance:.3f}")
    rows = [(t.agent_arn.rsplit("/", 1)[-1], t.name, len(t.units), human_bytes(t.bytes), f"{t.files:,}",
             f"{t.items:,}", f"{100 * t.cost / total:.1f}%" if total else "-", f"{t.include_bytes:,}")
            for t in plan.tasks]
    body = table(("agent", "task", "units", "bytes", "files", "items listed", "share", "include bytes"),
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


def dispatch_table(result: DispatchResult) -> str:
    """One row per chunk (where it runs, what it sent of its bytes, what the check did), then
    the job: chunks per state, bytes against the plan, each agent's measured rate, and when
    it should end if those rates hold."""
    body = table(("chunk", "agent", "execution", "status", "bytes sent / chunk", "action"),
                 [(r.chunk, r.agent.rsplit("/", 1)[-1], r.execution.rsplit("/", 1)[-1], r.status,
                   f"{human_bytes(r.bytes_done)} / {human_bytes(r.bytes)}", r.action) for r in result.rows],
                 (True, False, False, False, True, False))
    counts = result.counts
    share = 100 * result.bytes_done / result.bytes_total if result.bytes_total else 100.0
    given_up = counts.get(ChunkState.GIVEN_UP, 0)
    lines = [f"chunks: {counts.get(ChunkState.DONE, 0)} done, {counts.get(ChunkState.RUNNING, 0)} running, "
             f"{counts.get(ChunkState.WAITING, 0)} waiting" + (f", {given_up} given up" if given_up else ""),
             f"bytes: {human_bytes(result.bytes_done)} of {human_bytes(result.bytes_total)} planned ({share:.1f}%)",
             "agents: " + "; ".join(f"{a.agent.rsplit('/', 1)[-1]} {a.status}, {a.chunks_done} done, "
                                    + (f"{human_bytes(int(a.bytes_per_second))}/s" if a.bytes_per_second
                                       else "not measured yet") for a in result.agents)]
    if result.finished:
        lines.append("finish: every chunk has ended")
    elif result.eta is not None:
        moving = " for the work that is moving" if result.stalled else ""
        lines.append(f"finish: in about {_duration(result.eta)}{moving} if the measured rates hold")
    if result.stalled:
        lines.append(f"stalled: {len(result.stalled)} chunk(s) on OFFLINE agents, not counted above ("
                     + "; ".join(sorted(set(result.stalled))) + ")")
    return body + "\n" + "\n".join(lines)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
