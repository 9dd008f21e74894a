"""Live mode's run: the scan, the planner and the dispatcher at once.

record the run and begin the journal (or resume the journal a killed run left) -> the scan
walks in a thread of its own; each unit is journaled as it closes, and each chunk as it is
packed -> meanwhile, at each new chunk, when an agent should free for a waiting chunk, and
every ``--live_check_sec``, one dispatcher check under the arn file's lock, as the
watcher's: it takes the journaled chunks into the ledger and starts them on the agents
that are free, and tells the scan (``live.Demand``) which agents it left idle, for which
the scan packs chunks; the first chunk also has the run's tasks made -> the scan ends: the
rest is packed to end the agents together, the journal says so, the plan file gets every
chunk, a last check; the watcher hands out the rest.

A chunk is on disk in the journal before any check can see it, and a check starts only
chunks it has recorded in the ledger, so a kill at any point loses nothing and starts
nothing twice: a rerun with the same flags resumes the scan from the journal.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import UserError
from .files import write_json
from .journal import Journal, ScanProgress
from .live import CutRecord, Demand, Sizing, walk_and_plan
from .plan import Chunk, Plan, TaskPlan, task_name_for
from .scan import Progress, Tree, guess_size, human_bytes
from .split import Unit

log = logging.getLogger("scheduler")

LIVE_CHUNKS_PER_AGENT = 4
"""K in live mode when --chunks_per_agent is left at 1."""
CLOSE_IN = 3
"""A live scheduler's next check comes at this fraction (a third) of the time until the
soonest busy agent should free a task slot, and each check predicts again from the
executions' progress, closing in on the free. A rate measured on small chunks carries
their start overheads and puts a large chunk's end too late: an agent that frees before
the check sees it idles until then (on the bench, agents freed up to 10 s before it)."""
CHECK_GAP = 0.25
"""Seconds at least between the starts of two of a live scheduler's checks."""
PROGRESS_EVERY = 10.0
"""Seconds between the journal's progress lines (what the watcher shows of the scan)."""

_UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
          "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def chunk_cost(text: str, per_file_cost: int) -> int:
    """--chunk_size as a cost: bytes ('200GiB', '500GB', '1000000') or files ('2000000files'),
    a file weighing --per_file_cost. Raises UserError for anything else."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = m[2].lower() if m else ""
    if not m or (unit not in _UNITS and unit not in ("files", "file")):
        raise UserError(f"--chunk_size {text!r} is neither bytes (e.g. 200GiB) nor files (e.g. 500000files)")
    number = float(m[1])
    cost = int(number * (max(per_file_cost, 1) if unit.startswith("file") else _UNITS[unit]))
    if cost < 1:
        raise UserError(f"--chunk_size {text!r} must be more than zero")
    return cost


def sizing_for(mount: str, roots: tuple[str, ...], agents: int, k: int, per_file_cost: int,
               chunk_size: int | None, **limits) -> tuple[Sizing, str]:
    """How the run sizes its chunks, and how that was chosen (for the log and the journal)."""
    if chunk_size is not None:
        return Sizing.fixed(chunk_size, agents, k, per_file_cost, **limits), "--chunk_size"
    guess = guess_size(mount, roots)
    estimate = guess.bytes + guess.entries * per_file_cost
    return Sizing.guided(estimate, agents, k, per_file_cost, **limits), \
        f"{human_bytes(guess.bytes)} in {guess.entries:,} entries estimated from {guess.how}"


@dataclass
class ScanOutcome:
    tree: Tree | None = None
    warnings: tuple[str, ...] = ()
    failure: BaseException | None = None


class LiveScan:
    """The scan and the planner on a thread of their own, writing into the journal; ``fresh``
    is set whenever a chunk has been journaled."""

    def __init__(self, mount: str, roots: tuple[str, ...], journal: Journal, agents: int,
                 workers: int | None, progress: Progress, demand: Demand | None = None) -> None:
        self.mount, self.roots, self.journal, self.agents = mount, roots, journal, agents
        self.workers, self.progress = workers, progress
        self.demand = demand or Demand()
        self.fresh = threading.Event()
        self.done = threading.Event()
        self.outcome = ScanOutcome()
        self._noted = 0.0
        self._thread = threading.Thread(target=self._run, name="live-scan", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def _run(self) -> None:
        try:
            assert self.journal.sizing is not None
            tree, planner = walk_and_plan(self.mount, self.roots, self.journal.sizing, self._chunk, self._cut,
                                          agents=self.agents, workers=self.workers, progress=self.progress,
                                          resume=self.journal.resume(), demand=self.demand,
                                          on_unit=self._unit)
            self.outcome.tree = tree
            self.outcome.warnings = tuple(live_warnings(tree, planner.held, planner.late, planner.bare_empty_roots))
            self.journal.end(self._read(), list(self.outcome.warnings))
        except BaseException as exc:  # the run reports it; the journal keeps what was decided
            self.outcome.failure = exc
        finally:
            self.done.set()
            self.fresh.set()

    def _read(self) -> ScanProgress:
        p = self.progress
        return ScanProgress(p.dirs, p.files, p.bytes, time.time())

    def _cut(self, record: CutRecord) -> None:
        self.journal.cut(record)

    def _unit(self, unit: Unit) -> None:
        self.journal.unit(unit)
        self._note_progress()

    def _chunk(self, chunk: Chunk) -> None:
        self.journal.chunk(chunk)
        log.info("chunk %d closed: %s in %d unit(s)", chunk.index, human_bytes(chunk.bytes), len(chunk.units))
        self._note_progress()
        self.fresh.set()

    def _note_progress(self) -> None:
        """What the scan has read, in the journal every ``PROGRESS_EVERY`` seconds at most (for the watcher)."""
        now = time.monotonic()
        if now - self._noted >= PROGRESS_EVERY:
            self._noted = now
            self.journal.note_progress(self._read())


def live_warnings(tree: Tree, held: list, late: int, bare_empty_roots: list[str]) -> list[str]:
    """What the user should know of a live plan: the scan's warnings, units too heavy to cut,
    entries that appeared after their directory was cut (on a resume)."""
    out = list(tree.warnings())
    if tree.stat_errors:
        out.append(f"{tree.stat_errors} entr{'y' if tree.stat_errors == 1 else 'ies'} could not be measured "
                   "(see the log); they travel with their directory but are not counted")
    if held:
        heaviest = sorted(held, key=lambda h: -h[0].cost)[:5]
        out.append(f"{len(held)} unit(s) are heavier than the unit threshold and could not be cut; heaviest: "
                   + "; ".join(f"{u.pattern} ({human_bytes(u.bytes)}): {why}" for u, why in heaviest))
    if late:
        out.append(f"{late} entr{'y' if late == 1 else 'ies'} appeared after the scan had cut their directory "
                   "(before a resume): no chunk of this run carries them; the final pass does")
    for rel in bare_empty_roots:
        out.append(f"/{rel} is an empty directory and a sibling's name starts with its name: it is selected "
                   f"as '/{rel}/', which creates it only if DataSync reads that as the folder itself")
    return out


def lanes(agents: tuple[str, ...], task_name: str, slots: int) -> tuple[TaskPlan, ...]:
    """The run's tasks: ``slots`` per agent, carrying nothing of their own (as a dynamic plan's)."""
    return tuple(TaskPlan((), agent_arn=a, name=task_name_for(task_name, a, slot))
                 for a in sorted(agents) for slot in range(1, slots + 1))


def live_plan(journal: Journal, agents: tuple[str, ...], roots: tuple[str, ...], task_name: str, slots: int,
              largest_file: int = 0) -> Plan:
    """The plan the journal holds so far (all of it once the scan has ended)."""
    sizing = journal.sizing
    assert sizing is not None
    chunks = tuple(sorted(journal.chunks, key=lambda c: c.index))
    total = sum(c.cost for c in chunks)
    bound = max(-(-total // max(sizing.scopes, 1)), sizing.cost(largest_file, 1) if largest_file else 0, 1)
    return Plan(lanes(agents, task_name, slots), tuple(sorted(agents)), roots, sizing.per_file_cost,
                sizing.max_depth, bound, sizing.threshold, warnings=journal.warnings, chunks=chunks)


class Cadence:
    """When a live scheduler checks next, from what its last check saw: a third of the way to
    when the soonest busy agent should free a task slot (``DispatchResult.frees``,
    ``CLOSE_IN``; an idle agent takes what waits,
    or has the scan pack one for it), else in ``every`` seconds (a new chunk calls a check
    sooner: ``check_loop``). An agent that should have freed already (an execution verifying
    past its estimate, or no rate measured yet) is asked about after ``gap``, then after as
    long as it has been late (so about twice as long each time), up to ``every``, unless a
    check starts something meanwhile: a late execution is not asked about every quarter
    second, and it hides no other agent's free. The backing off follows the clock, not the
    checks: checks called by chunks closing meanwhile do not push the next one further off.
    (Counted per check, seven checks called by chunks closing while the first executions ran
    put it 30 s away; under late packing nothing else wakes the loop once the agents idle.)"""

    def __init__(self, every: float, gap: float = CHECK_GAP, clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.gap, self.clock = every, gap, clock
        self.late_since: float | None = None

    def wait(self, frees: tuple[float, ...], started: int) -> float:
        """Seconds from the start of the check that saw ``frees`` and started ``started``
        chunks to the next one."""
        now = self.clock()
        overdue = any(f <= self.gap for f in frees)
        if started or not overdue:
            self.late_since = None
        soonest = min((f for f in frees if f > self.gap), default=None)
        wait = self.every if soonest is None else max(soonest / CLOSE_IN, self.gap)
        if overdue:
            if self.late_since is None:
                self.late_since = now
            wait = min(wait, max(self.gap, now - self.late_since))
        return min(wait, self.every)


def check_loop(scan: LiveScan, check: Callable[[bool], tuple[tuple[float, ...], int]], every: float,
               gap: float = CHECK_GAP) -> None:
    """Check once, then start the scan (so a resumed run's agents are known, busy or idle,
    before it closes anything); then check at each new chunk, when a busy agent should free
    (``Cadence``), and every ``every`` seconds, never sooner than ``gap`` after the last check
    began unless that check left an agent asking the scan for a chunk (the chunk it packs is
    started at once: a gap per chunk was 0.25 s of an agent's idle time each), until the scan
    ends; then once more, the last (``check(True)``). ``check`` returns the frees it saw and
    how many chunks it started."""
    cadence = Cadence(every, gap)
    due = time.monotonic() + cadence.wait(*check(False))
    scan.start()
    while not scan.done.is_set():
        scan.fresh.wait(max(due - time.monotonic(), 0.0))
        scan.fresh.clear()
        if scan.done.is_set():
            break
        began = time.monotonic()
        due = began + cadence.wait(*check(False))
        if not scan.demand.asking():  # an agent left idle: its chunk starts as soon as the scan packs it
            scan.done.wait(max(began + gap - time.monotonic(), 0.0))  # chunks closing together start together
    check(True)


def resumable(journal: Journal, run_id: str | None) -> bool:
    """Whether the journal is the ledger's run's, stopped before the scan ended."""
    return bool(journal.run) and journal.run == run_id and not journal.ended


def move_aside(path: str) -> None:
    if os.path.exists(path):
        os.replace(path, path + ".prev")
        log.info("previous journal kept as %s.prev", path)


def write_plan(plan_file: str, plan: Plan, run_id: str) -> None:
    write_json(plan_file, {**plan.to_json(), "run": run_id, "live": True})


def dry_run(mount: str, roots: tuple[str, ...], sizing: Sizing, note: str, agents: tuple[str, ...],
            task_name: str, slots: int, workers: int | None, journal_file: str) -> Plan:
    """--live with --dry_run: the live plan of the share as it stands, journaled apart (nothing is started)."""
    move_aside(journal_file)
    journal = Journal(journal_file)
    journal.begin("dry-run", roots, sizing, note)
    scan = LiveScan(mount, roots, journal, len(agents), workers, Progress())
    scan.start()
    scan.join()
    if scan.outcome.failure is not None:
        raise scan.outcome.failure
    tree = scan.outcome.tree
    if not journal.chunks:
        raise UserError("nothing to transfer under the manifest's directories")
    return live_plan(journal, agents, roots, task_name, slots, tree.largest_file if tree else 0)

