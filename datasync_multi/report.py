"""What a check found, and how it is shown: one result shape for the watcher's check and
the dispatcher's (rows, what went wrong, the exit code it gives), and the tables."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .assign import Speed, byte_samples, measured_rate
from .errors import EXIT_AWS, EXIT_EXHAUSTED, EXIT_NO_HEALTHY_AGENT, EXIT_OK, EXIT_OVERSIZED
from .ledger import ChunkState, Dispatch, Run
from .plan import Plan
from .records import Execution
from .scan import human_bytes
from .statuses import ExecutionStatus

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What every check reports beside its rows: what went wrong, the exit code that follows,
    and the job at a glance (the one summary line)."""

    exhausted: list[str] = field(default_factory=list)
    """Scopes or chunks given up: failed more often than the retries allow, on every agent
    that may serve the run, or (a scope) with no scope of record."""
    errors: list[str] = field(default_factory=list)
    """What this check could not look at or act on (an AWS error): the next check tries again."""
    waiting: list[str] = field(default_factory=list)
    """Work that waits and that no ONLINE agent may take now."""
    oversized: list[str] = field(default_factory=list)
    """Executions whose estimate is well above what the plan gives them."""
    counts: dict[str, int] = field(default_factory=dict)
    """Scopes or chunks per state (``ChunkState``'s words)."""
    bytes_done: int = 0
    bytes_total: int = 0
    """What the plan gives the work this check followed."""
    rate: float | None = None
    """Bytes per second, all agents together; None until measured."""
    eta: float | None = None
    """Seconds until the last of the work should end if the rates hold; None if not known yet."""
    stalled: list[str] = field(default_factory=list)
    """What the table says of each execution running on an OFFLINE agent and not yet moved."""
    acted: bool = False
    """The check changed something (the ledger, or sent a cancel): its table is worth showing."""

    noun = "scope(s)"
    """What the check follows, in its log lines."""

    @property
    def finished(self) -> bool:
        """Every scope or chunk has ended (and this check saw all of them)."""
        raise NotImplementedError

    @property
    def exit_code(self) -> int:
        if self.exhausted:
            return EXIT_EXHAUSTED
        if self.errors:
            return EXIT_AWS
        if self.waiting:
            return EXIT_NO_HEALTHY_AGENT
        return EXIT_OVERSIZED if self.oversized else EXIT_OK

    def table(self) -> str:
        raise NotImplementedError

    def say(self) -> None:
        """Log what the exit code means, once per check."""
        if self.exhausted:
            log.error("%d %s failed and will not be retried", len(self.exhausted), self.noun)
        elif self.errors:
            log.error("this check could not look at or act on %d %s; it is not complete", len(self.errors),
                      self.error_noun)
        elif self.waiting:
            self.say_waiting()
        elif self.finished and not self.oversized:
            log.info("every %s has succeeded", self.done_noun)

    def summary(self) -> str:
        """The job in one line: scopes or chunks per state, bytes against the plan, the rate,
        when it should end, and what is stalled."""
        c = self.counts
        given_up = c.get(ChunkState.GIVEN_UP, 0)
        parts = [f"{self.noun.removesuffix('(s)')}s: {c.get(ChunkState.DONE, 0)} done, "
                 f"{c.get(ChunkState.RUNNING, 0)} running, {c.get(ChunkState.WAITING, 0)} waiting"
                 + (f", {given_up} given up" if given_up else ""),
                 f"{human_bytes(self.bytes_done)} of {human_bytes(self.bytes_total)} planned "
                 f"({100 * self.bytes_done / self.bytes_total if self.bytes_total else 100.0:.1f}%)"]
        if self.finished:
            parts.append("every one has ended")
            return "; ".join(parts)
        parts.append(f"{human_bytes(int(self.rate))}/s" if self.rate else "rate not measured yet")
        if self.eta is not None:
            parts.append(f"finish in about {_duration(self.eta)}" + (" for what moves" if self.stalled else ""))
        else:
            parts.append("finish not known yet")
        if self.stalled:
            parts.append(f"stalled: {len(self.stalled)} on OFFLINE agents")
        if self.errors:
            parts.append(f"{len(self.errors)} not looked at (AWS errors)")
        return "; ".join(parts)

    def fingerprint(self) -> tuple:
        """What, if it differs from the last check's, makes the full table worth showing: a
        start, an end, a failure, a move, an error; not bytes moving or a status within running."""
        raise NotImplementedError

    error_noun = "execution(s)"
    done_noun = "watched scope"

    def say_waiting(self) -> None:
        """The watcher has said it per execution."""


@dataclass
class Row:
    execution: str
    task: str
    agent: str
    status: str
    bytes_done: int = 0
    bytes_estimated: int = 0
    files_done: int = 0
    files_estimated: int = 0
    files_skipped: int = 0
    action: str = ""


@dataclass
class CheckResult(Outcome):
    """The watcher's check: one row per watched execution."""

    rows: list[Row] = field(default_factory=list)
    unfinished: int = 0
    """Scopes still moving (running, or about to be retried)."""

    @property
    def finished(self) -> bool:
        return self.unfinished == 0 and not self.waiting and not self.errors

    def table(self) -> str:
        return watch_table(self.rows) + "\n" + self.summary()

    def fingerprint(self) -> tuple:
        return (tuple((r.execution, _coarse(r.status)) for r in self.rows), tuple(self.errors),
                tuple(self.exhausted), tuple(self.waiting), tuple(sorted(self.stalled)))


@dataclass
class ChunkRow:
    chunk: int
    agent: str = ""
    execution: str = ""
    status: str = ChunkState.WAITING
    bytes_done: int = 0
    bytes: int = 0
    action: str = ""

    def add(self, action: str) -> None:
        self.action += ("; " if self.action else "") + action


@dataclass
class AgentRow:
    agent: str
    status: str
    chunks_done: int
    bytes_per_second: float | None


@dataclass(frozen=True)
class ScanState:
    """Where a live run's scan stands, as its journal says."""

    dirs: int
    files: int
    bytes: int
    chunks: int
    """Chunks it has closed (journaled)."""
    ended: bool
    alive: bool
    """A scheduler is scanning now; False once the scan has ended, or when it stopped midway."""

    def summary(self) -> str:
        read = f"{self.dirs:,} dirs, {self.files:,} files, {human_bytes(self.bytes)}"
        if self.ended:
            return f"scan: done ({read}), {self.chunks} chunk(s)"
        if self.alive:
            return f"scan: {read} read so far, {self.chunks} chunk(s) closed"
        return (f"scan: stopped after {read} and {self.chunks} chunk(s): rerun the scheduler with the same flags "
                "to resume it")


@dataclass
class DispatchResult(Outcome):
    """The dispatcher's check: one row per chunk, then the job as a whole."""

    rows: list[ChunkRow] = field(default_factory=list)
    agents: list[AgentRow] = field(default_factory=list)
    scan: ScanState | None = None
    """A live run's scan; None for a plan made before the run."""
    frees: tuple[float, ...] = ()
    """Seconds until each busy agent should free a task slot (``Assignment.frees``): when a
    live scheduler checks again."""
    started: int = 0
    """Chunks this check started."""
    appetites: tuple[float, ...] = ()
    """The chunks a live scan should pack now for the agents this check left idle
    (``Assignment.appetites``)."""
    reach: tuple[tuple[Speed, float], ...] = ()
    """Each agent's speed and when its work ends (``Assignment.reach``): how a live scan sizes
    its chunks."""
    askers: tuple[int, ...] = ()
    """Where each agent of ``appetites`` is in ``reach`` (``Assignment.askers``)."""

    noun = error_noun = "chunk(s)"
    done_noun = "chunk"

    @property
    def finished(self) -> bool:
        return not self.counts.get(ChunkState.RUNNING) and not self.counts.get(ChunkState.WAITING) \
            and not self.errors and (self.scan is None or self.scan.ended)

    def summary(self) -> str:
        line = super().summary()
        if self.scan is None or self.scan.ended:
            return line if self.scan is None else f"{self.scan.summary()}; {line}"
        instead = "finish not known while the scan runs" if self.scan.alive else "finish not known"
        return f"{self.scan.summary()}; " + line.replace("finish not known yet", instead)

    def table(self) -> str:
        return dispatch_table(self)

    def fingerprint(self) -> tuple:
        return (tuple((r.chunk, r.agent, r.execution, _coarse(r.status)) for r in self.rows), tuple(self.errors),
                tuple(self.exhausted), tuple(self.waiting), tuple(sorted(self.stalled)),
                tuple((a.agent, a.status) for a in self.agents),
                None if self.scan is None else (self.scan.ended, self.scan.alive))

    def say_waiting(self) -> None:
        log.error("%d chunk(s) wait and no ONLINE agent may take them: %s", len(self.waiting),
                  ", ".join(self.waiting))


def summarize(result: DispatchResult, dispatch: Dispatch, run: Run, rows: dict[int, ChunkRow],
              states: dict[int, str], described: Callable[[str | None], Execution | None],
              starts_on: Callable[[str], Iterable], statuses: dict[str, str], usable: Iterable[str],
              now: float) -> None:
    """Fill the result's rows and totals from the ledger as the check left it: each chunk's
    state, where it runs and what it moved; then each agent's chunks done and measured rate."""
    for chunk in dispatch.chunks:
        row = rows[chunk.index]
        state = row.status = states[chunk.index]
        latest = chunk.latest
        if latest is not None and latest.active:
            row.agent, row.execution = latest.agent, latest.execution or ""
            seen = described(latest.execution)
            if seen is not None:
                row.status = seen.status
                row.bytes_done = chunk.bytes if state == ChunkState.DONE else seen.bytes_transferred
        elif state == ChunkState.GIVEN_UP:
            result.exhausted.append(f"chunk {chunk.index}")
            row.add(f"given up: {chunk.given_up}")
        result.rows.append(row)
        result.counts[state] = result.counts.get(state, 0) + 1
        result.bytes_total += chunk.bytes
        result.bytes_done += row.bytes_done
    for agent in sorted(set(dispatch.lanes) | {a for a in usable if a in statuses}):
        done = sum(1 for c in dispatch.chunks if states[c.index] == ChunkState.DONE and c.latest
                   and c.latest.agent == agent)
        status = statuses.get(agent, "not listed")
        if agent in run.drained:
            status += " (drained)"
        elif agent in run.barred:
            status += " (barred)"
        elif agent not in dispatch.lanes:
            status += " (joining)"
        result.agents.append(AgentRow(agent, status, done,
                                      measured_rate(byte_samples(starts_on(agent), now))))
    rates = [a.bytes_per_second for a in result.agents if a.bytes_per_second]
    result.rate = sum(rates) if rates else None


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
        summary = (f"{len(plan.chunks)} chunk(s) for {len(plan.agents)} agent(s), {plan.slots} task(s) each, each "
                   f"chunk to the agent that frees first; {human_bytes(plan.total_bytes)} in {plan.total_files:,} "
                   f"files and {plan.total_dirs:,} dirs; heaviest chunk / lower bound = {plan.balance:.3f}")
    else:
        rows = [(t.agent_arn.rsplit("/", 1)[-1], t.name, len(t.units), human_bytes(t.bytes), f"{t.files:,}",
                 f"{t.items:,}", f"{100 * t.cost / total:.1f}%" if total else "-", f"{t.include_bytes:,}")
                for t in plan.tasks]
        body = table(("agent", "task", "units", "bytes", "files", "items listed", "share", "include bytes"),
                     rows, (False, False, True, True, True, True, True, True))
        summary = (f"{len(plan.tasks)} task(s) on {len(plan.agents)} agent(s); "
                   f"{human_bytes(plan.total_bytes)} in {plan.total_files:,} files and {plan.total_dirs:,} dirs; "
                   f"heaviest task / lower bound = {plan.balance:.3f}")
    return "\n".join([body, summary] + ([plan.cost.line()] if plan.cost else []))


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
    if result.scan is not None:
        lines.insert(0, result.scan.summary())
    if result.finished:
        lines.append("finish: every chunk has ended")
    elif result.scan is not None and not result.scan.ended:
        lines.append("finish: not known while the scan runs (chunks keep coming)" if result.scan.alive else
                     "finish: not known: the scan stopped before its end; rerun the scheduler to resume it")
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


def _coarse(status: str) -> str:
    """A status as a change of it matters to the reader: any running phase is one state."""
    return "running" if status in ExecutionStatus.RUNNING_STATES else status
