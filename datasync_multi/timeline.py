"""From the run's record and what one check saw to the picture's plain values
(``picture.Scene``): each agent of the run with every start it was given, each coloured by
where its execution stands. Pure: the ledger as the check left it, the descriptions it
read, the agents' statuses, and its result are all it reads."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from .ledger import Attempt, ChunkAttempt, Dispatch, Ledger
from .picture import Bar, BarState, Lane, Sample, Scene
from .records import Execution
from .report import Outcome
from .statuses import AgentStatus, ExecutionStatus

Described = Callable[[str | None], Execution | None]
NOT_LISTED = "not listed"


def scene_of(ledger: Ledger, seen: Mapping[str, Execution], statuses: Mapping[str, str], result: Outcome,
             history: Sequence[Sample], now: float, refresh: float | None) -> Scene:
    """The page's values after one check. ``seen``: what the check described; executions that
    ended are in the ledger's ``finished`` too. ``history``: the samples of the checks before this one."""
    def described(execution: str | None) -> Execution | None:
        return seen.get(execution or "") or ledger.finished.get(execution or "")

    placed = (_chunk_bars(ledger.dispatch, described, statuses, now) if ledger.dispatch is not None
              else _scope_bars(ledger, described, statuses, now))
    run = ledger.run
    agents = list(dict.fromkeys([*(run.agents if run else ()), *(run.added if run else ()),
                                 *(ledger.dispatch.lanes if ledger.dispatch else ()), *(a for a, _ in placed),
                                 *(run.drained if run else ()), *(run.barred if run else ())]))
    placed.sort(key=lambda placed_bar: placed_bar[1].start)
    lanes = tuple(Lane(agent, statuses.get(agent, NOT_LISTED), tuple(b for a, b in placed if a == agent),
                       drained=bool(run and agent in run.drained), barred=run.barred.get(agent) if run else None)
                  for agent in agents)
    title = f"DataSync run {run.prefix}{run.id}" if run else "DataSync run"
    return Scene(title, now, lanes, tuple(history), result.bytes_done, result.bytes_total, result.eta,
                 result.finished, result.summary(), None if result.finished else refresh)


def bar_state(described: Execution | None, active: bool, returned: bool, agent_status: str) -> str:
    """Where one start stands: its execution's status, read with what the ledger says of the
    start (taken back, or given up on while it still runs) and of its agent (OFFLINE: stalled)."""
    if described is None:
        return BarState.STARTING if active else BarState.UNKNOWN
    status = described.status
    if status in ExecutionStatus.SUCCESS_STATES:
        return BarState.DONE
    if status in ExecutionStatus.FAILURE_STATES:
        return BarState.TAKEN_BACK if returned else BarState.FAILED
    if status == ExecutionStatus.CANCELLING or (not active and status in ExecutionStatus.RUNNING_STATES):
        return BarState.CANCELLING
    if status not in ExecutionStatus.RUNNING_STATES:
        return BarState.UNKNOWN
    if agent_status != AgentStatus.ONLINE:
        return BarState.STALLED
    return BarState.QUEUED if status == ExecutionStatus.QUEUED else BarState.RUNNING


def _bar(label: str, execution: str | None, asked: float | None, described: Execution | None, state: str,
         planned: int, now: float) -> Bar:
    start = (described.start_time if described else None) or asked or now
    end = None
    if described is not None and described.status in ExecutionStatus.TERMINAL_STATES:
        end = described.end_time or max(start, described.launch_time or start)
    return Bar(label, execution or "", state, described.status if described else "", start,
               described.launch_time if described else None, end,
               described.bytes_transferred if described else 0, planned)


def _scope_bars(ledger: Ledger, described: Described, statuses: Mapping[str, str],
                now: float) -> list[tuple[str, Bar]]:
    """A static run: each attempt of each scope (the first execution, then its retries)."""
    placed = []
    for root, scope in ledger.scopes.items():
        for attempt in scope.attempts:
            if _never_ran(attempt):
                continue
            seen = described(attempt.execution)
            label = attempt.retry.task_name if attempt.retry else scope.key or root.rsplit("/", 1)[-1]
            state = bar_state(seen, attempt.active, attempt.returned, statuses.get(attempt.agent, NOT_LISTED))
            placed.append((attempt.agent, _bar(label, attempt.execution, attempt.retry.decided if attempt.retry
                                               else None, seen, state, scope.planned.bytes if scope.planned else 0,
                                               now)))
    return placed


def _chunk_bars(dispatch: Dispatch, described: Described, statuses: Mapping[str, str],
                now: float) -> list[tuple[str, Bar]]:
    """A dynamic run: each start of each chunk, on the agent it was given to."""
    placed = []
    for chunk in dispatch.chunks:
        for attempt in chunk.attempts:
            if _never_ran(attempt):
                continue
            seen = described(attempt.execution)
            state = bar_state(seen, attempt.active, attempt.returned, statuses.get(attempt.agent, NOT_LISTED))
            placed.append((attempt.agent, _bar(f"chunk {chunk.index}", attempt.execution, attempt.decided, seen,
                                               state, chunk.bytes, now)))
    return placed


def _never_ran(attempt: Attempt | ChunkAttempt) -> bool:
    """A start given back before any execution of it was seen (its agent was lost or barred meanwhile)."""
    return attempt.execution is None and not attempt.active

