"""The plan: which agent's task carries which units, and why.

``split.py`` cuts the tree into units, each one include pattern that reaches nothing
another unit holds; ``pack.py`` spreads them over the agents. This module chooses how
finely to cut, builds the plan value that the launcher, the report and the tests read,
and says what the user should know about it.

Balance: cost = bytes + items x per-file cost. Units are cut to at most a threshold (an
even share, then halves of it while the heaviest task is more than 1% above the lower
bound) and packed; the best packing wins. Every order is total, so the same tree gives
the same plan.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .cost import Estimate, Rates
from .errors import UserError
from .filters import MAX_FILTER_BYTES, filter_value, is_nameable, value_bytes
from .pack import Limits, pack
from .scan import Tree
from .split import DIR, GROUP, Split, Unit, split_tree
from .split import shown as _shown

log = logging.getLogger(__name__)

PLAN_VERSION = 2
"""Version 2: include-only units, each with its pattern."""
DYNAMIC_PLAN_VERSION = 3
"""Version 3: a dynamic plan (chunks). Static plans stay version 2, so an older watcher
reads them as before and refuses a dynamic one rather than misread it."""

DEFAULT_PER_FILE_COST = 512 * 1024
BASIC_MODE_ITEM_QUOTA = 50_000_000
"""Files, objects and directories one Basic-mode execution may list (docs/datasync-facts.md §3)."""
TOLERANCE = 0.01
"""A plan whose heaviest task is within 1% of the lower bound is not cut any finer."""
FINEST_SPLIT = 7
"""The threshold is halved at most this many times below an even share (1/128 of it)."""
UNEVEN = 0.05
"""A plan whose heaviest task (or chunk) ends more than 5% above the lower bound always says why."""
HELD_SHOWN = 5
"""Units named in the warning about units that could not be cut."""


@dataclass(frozen=True)
class Units:
    """A set of units moved by one execution: its include filter and what it carries."""

    units: tuple[Unit, ...]

    @property
    def includes(self) -> tuple[str, ...]:
        return tuple(u.pattern for u in self.units)

    @property
    def include_chars(self) -> int:
        """The include value's length in code points, for people."""
        return len(filter_value(self.includes))

    @property
    def include_bytes(self) -> int:
        """The include value's length in UTF-8 bytes: what DataSync's limit is checked against."""
        return value_bytes(filter_value(self.includes))

    @property
    def bytes(self) -> int:
        return sum(u.bytes for u in self.units)

    @property
    def files(self) -> int:
        return sum(u.files for u in self.units)

    @property
    def dirs(self) -> int:
        return sum(u.dirs for u in self.units)

    @property
    def items(self) -> int:
        """What the task's includes reach, and so what DataSync lists: exactly what it moves."""
        return sum(u.items for u in self.units)

    @property
    def cost(self) -> int:
        return sum(u.cost for u in self.units)

    def units_json(self) -> list[dict[str, Any]]:
        return [unit_json(u) for u in self.units]


@dataclass(frozen=True, kw_only=True)
class TaskPlan(Units):
    """One agent's task. In a static plan its units are the agent's whole share; in a
    dynamic plan it has none of its own: each execution carries one chunk."""

    agent_arn: str
    name: str


@dataclass(frozen=True, kw_only=True)
class Chunk(Units):
    """One piece of a dynamic plan: started as one execution on whichever agent frees first."""

    index: int

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "includes": list(self.includes), "include_chars": self.include_chars,
                "include_bytes": self.include_bytes, "bytes": self.bytes, "files": self.files, "dirs": self.dirs,
                "items": self.items, "cost": self.cost, "units": self.units_json()}


@dataclass(frozen=True)
class Plan:
    """A static plan gives each agent's task its share (``tasks``). A dynamic plan
    (``chunks``) gives the tasks no share of their own: each chunk is started on whichever
    agent frees first, as one execution of one of that agent's tasks (one task per queue
    slot). ``lower_bound``, ``max_cost`` and ``balance`` are per task in a static plan and
    per chunk in a dynamic one."""

    tasks: tuple[TaskPlan, ...]
    agents: tuple[str, ...]
    roots: tuple[str, ...]
    per_file_cost: int
    max_depth: int | None
    lower_bound: int
    """max(total cost / scopes, cost of the largest single file): no plan can beat it."""
    threshold: int
    warnings: tuple[str, ...] = ()
    chunks: tuple[Chunk, ...] = ()
    cost: Estimate | None = None
    """What moving it once should cost, at the run's rates (set by the scheduler)."""

    def with_cost(self, rates: Rates) -> Plan:
        """This plan with its estimate: one execution per scope, a PUT per file, link and directory."""
        return dataclasses.replace(self, cost=Estimate(self.total_bytes, len(self.scopes),
                                                       self.total_files + self.total_dirs, rates))

    @property
    def dynamic(self) -> bool:
        return bool(self.chunks)

    @property
    def slots(self) -> int:
        """Tasks per agent: one, or a dynamic plan's queue depth."""
        return len(self.tasks) // max(len(self.agents), 1) if self.tasks else 1

    @property
    def scopes(self) -> tuple[Units, ...]:
        """What the executions carry: the chunks of a dynamic plan, the tasks of a static one."""
        return self.chunks if self.chunks else self.tasks

    @property
    def total_bytes(self) -> int:
        return sum(t.bytes for t in self.scopes)

    @property
    def total_files(self) -> int:
        return sum(t.files for t in self.scopes)

    @property
    def total_dirs(self) -> int:
        return sum(t.dirs for t in self.scopes)

    @property
    def total_cost(self) -> int:
        return sum(t.cost for t in self.scopes)

    @property
    def max_cost(self) -> int:
        return max((t.cost for t in self.scopes), default=0)

    @property
    def balance(self) -> float:
        """Heaviest task (or chunk) over the lower bound (1.0 is perfect)."""
        return self.max_cost / self.lower_bound if self.lower_bound else 1.0

    def to_json(self) -> dict:
        total = self.total_cost
        out = {
            "version": DYNAMIC_PLAN_VERSION if self.dynamic else PLAN_VERSION,
            "roots": ["/" + r for r in self.roots],
            "agents": list(self.agents),
            "per_file_cost": self.per_file_cost,
            "max_depth": self.max_depth,
            "totals": {"bytes": self.total_bytes, "files": self.total_files,
                       "dirs": self.total_dirs, "cost": total},
            "lower_bound": self.lower_bound,
            "max_task_cost": self.max_cost,
            "balance": round(self.balance, 4),
            "split_threshold": self.threshold,
            "warnings": list(self.warnings),
            "tasks": [{
                "agent_arn": t.agent_arn,
                "name": t.name,
                "includes": list(t.includes),
                "excludes": [],
                "include_chars": t.include_chars,
                "include_bytes": t.include_bytes,
                "bytes": t.bytes,
                "files": t.files,
                "dirs": t.dirs,
                "items": t.items,
                "cost": t.cost,
                "share": round(t.cost / total, 4) if total else 0.0,
                "units": t.units_json(),
            } for t in self.tasks],
        }
        if self.dynamic:
            out["chunks"] = [c.to_json() for c in self.chunks]
        if self.cost is not None:
            out["cost_estimate"] = self.cost.to_json()
        return out

    @classmethod
    def from_json(cls, data: object) -> Plan:
        """The plan ``to_json()`` wrote (the plan file), rebuilt; what is derived from the
        units (includes, totals, shares) is recomputed, not read.

        Reads version 2 (a static plan) and version 3 (a dynamic plan, with chunks). Raises
        UserError for a file of any other version (a version 1 plan is an older scheduler's:
        rerun the scheduler) or one this version would not have written.
        """
        if not isinstance(data, Mapping):
            raise UserError("not a plan file (it holds no JSON object)")
        version = data.get("version")
        if version not in (PLAN_VERSION, DYNAMIC_PLAN_VERSION):
            if isinstance(version, int) and version < PLAN_VERSION:
                raise UserError(f"written by an older version of the scheduler (plan version {version}, this one "
                                f"reads versions {PLAN_VERSION} and {DYNAMIC_PLAN_VERSION}); rerun the scheduler to "
                                "write the plan again")
            raise UserError(f"plan version {version!r} is not one this version reads (versions {PLAN_VERSION} "
                            f"and {DYNAMIC_PLAN_VERSION}): "
                            "it was written by another version of the scheduler")
        try:
            tasks = tuple(_task_from_json(t) for t in data["tasks"])
            plan = cls(tasks=tasks, agents=tuple(str(a) for a in data["agents"]),
                       roots=tuple(_root_from_json(r) for r in data["roots"]),
                       per_file_cost=int(data["per_file_cost"]),
                       max_depth=None if data["max_depth"] is None else int(data["max_depth"]),
                       lower_bound=int(data["lower_bound"]), threshold=int(data["split_threshold"]),
                       warnings=tuple(str(w) for w in data["warnings"]),
                       chunks=tuple(chunk_from_json(c) for c in data["chunks"]) if version == DYNAMIC_PLAN_VERSION
                       else ())
            if version == DYNAMIC_PLAN_VERSION and not plan.chunks:
                raise ValueError("a dynamic plan (version 3) with no chunk")
            return plan
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            detail = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
            raise UserError(f"not a plan this version wrote: {detail}") from None


def unit_json(u: Unit) -> dict[str, Any]:
    return {"pattern": u.pattern, "kind": u.kind, "bytes": u.bytes, "files": u.files, "dirs": u.dirs, "cost": u.cost}


def unit_from_json(u: Mapping[str, Any]) -> Unit:
    return Unit(str(u["pattern"]), _kind(u["kind"]), int(u["bytes"]), int(u["files"]), int(u["dirs"]), int(u["cost"]))


def _units_from_json(scope: Mapping[str, Any]) -> tuple[Unit, ...]:
    return tuple(unit_from_json(u) for u in scope["units"])


def chunk_from_json(chunk: Mapping[str, Any]) -> Chunk:
    rebuilt = Chunk(_units_from_json(chunk), index=int(chunk["index"]))
    if list(chunk["includes"]) != list(rebuilt.includes) or not rebuilt.units:
        raise ValueError(f"chunk {rebuilt.index}'s includes are not its units' patterns")
    return rebuilt


def _task_from_json(task: Mapping[str, Any]) -> TaskPlan:
    units = _units_from_json(task)
    rebuilt = TaskPlan(units, agent_arn=str(task["agent_arn"]), name=str(task["name"]))
    if list(task["includes"]) != list(rebuilt.includes):
        raise ValueError(f"task {rebuilt.name}'s includes are not its units' patterns")
    if task["excludes"]:
        raise ValueError(f"task {rebuilt.name} has excludes, which an include-only plan never holds")
    return rebuilt


def _kind(kind: object) -> str:
    if kind not in (DIR, GROUP):
        raise ValueError(f"unit kind {kind!r} is neither {DIR!r} nor {GROUP!r}")
    return str(kind)


def _root_from_json(root: object) -> str:
    """A root as the plan holds it: relative to the mount, '' for the whole export."""
    if not isinstance(root, str) or not root.startswith("/"):
        raise ValueError(f"root {root!r} does not start with '/'")
    return root[1:]


def task_name_for(prefix: str, agent_arn: str, slot: int = 1) -> str:
    """One stable task name per agent (and queue slot), so a rerun finds and reuses it."""
    return prefix + agent_arn.rsplit("/", 1)[-1] + (f"_q{slot}" if slot > 1 else "")


def make_plan(tree: Tree, agents: Sequence[str], *, task_name: str,
              per_file_cost: int = DEFAULT_PER_FILE_COST, max_depth: int | None = None,
              filter_limit: int = MAX_FILTER_BYTES,
              item_cap: int | None = BASIC_MODE_ITEM_QUOTA, chunks_per_agent: int = 1, queue_depth: int = 1) -> Plan:
    """Plan the transfer of ``tree`` over ``agents`` (ARNs).

    With ``chunks_per_agent`` 1, a static plan: one task per agent that gets work, carrying
    its share. With K > 1, a dynamic plan: about K x agents chunks of even cost, each within
    one execution's filter and item limits, and ``queue_depth`` tasks per agent to run them.
    ``max_depth`` None lets the cut go as deep as balance needs; ``item_cap`` None lifts
    the per-execution item quota (Enhanced mode). Raises UserError when the manifest's own
    entries cannot fit the agents' filters.
    """
    if not agents:
        raise ValueError("no agent to plan for")
    if chunks_per_agent < 1 or queue_depth < 1:
        raise ValueError("chunks_per_agent and queue_depth must be at least 1")
    agents = tuple(sorted(agents))
    n = len(agents) * chunks_per_agent  # the scopes to cut: tasks, or chunks
    cut = _best_cut(tree, n, per_file_cost, max_depth, filter_limit, item_cap)
    chunks: tuple[Chunk, ...] = ()
    if chunks_per_agent == 1:
        tasks = _static_tasks(cut.packing, agents, task_name)
    else:
        tasks, chunks = _dynamic_tasks(cut.packing, agents, task_name, queue_depth)
    plan = Plan(tasks, agents, tree.roots, per_file_cost, max_depth, cut.lower_bound, cut.threshold, chunks=chunks)
    warnings = tuple(_warnings(tree, plan, cut.split, cut.finest, filter_limit if cut.filters_full else None,
                               item_cap, n))
    for w in warnings:
        log.warning("%s", w)
    return dataclasses.replace(plan, warnings=warnings)


@dataclass(frozen=True)
class _Cut:
    """The threshold search's outcome: the best cut and its packing into scopes, and what the
    warnings need to say why it is not better."""

    threshold: int
    split: Split
    packing: list[list[Unit]]
    lower_bound: int
    """Of record: counts what the units hold, for a directory that was cut is listed by every
    task with something inside it, and belongs to none."""
    finest: Split
    """The finest cut tried: what it still holds whole could not be cut at all."""
    filters_full: bool
    """Some cut did not fit the filter limit."""


def _best_cut(tree: Tree, n: int, per_file_cost: int, max_depth: int | None, filter_limit: int,
              item_cap: int | None) -> _Cut:
    """Cut at an even share of ``n`` scopes, then at halves of it while the heaviest scope is
    more than 1% above the lower bound, and at doubles of it only while no cut has fit the
    limits; pack each cut and keep the best packing. Raises UserError when no cut fits."""
    def cost(nbytes: int, items: int) -> int:
        return nbytes + items * per_file_cost

    roots = [tree.dirs[r] for r in tree.roots]
    total = sum(cost(d.bytes, d.files + d.dirs) for d in roots)
    largest = cost(tree.largest_file, 1) if any(d.files for d in roots) else 0
    bound = max(-(-total // n), largest)
    share = max(total // n, 1)
    limits = Limits(filter_limit, item_cap)

    best: tuple[float, int, Split, list[list[Unit]]] | None = None
    finer = [max(share >> step, 1) for step in range(FINEST_SPLIT + 1)]
    coarser = [share << step for step in range(1, max(total // share, 1).bit_length() + 1)]
    finest = Split()
    filters_full = False
    for threshold in dict.fromkeys(finer + coarser):
        split = split_tree(tree, cost, threshold, max_depth=max_depth, item_cap=item_cap, name_target=finer[-1])
        if threshold <= share:  # finer thresholds come first, falling
            finest = split
        packing = pack(split.units, n, limits)
        if packing is None:
            filters_full = True
            if best is not None:
                break  # finer cuts only need more patterns
            continue
        ratio = max(sum(u.cost for u in m) for m in packing) / bound if bound else 1.0
        if best is None or ratio < best[0] - 1e-9:
            best = (ratio, threshold, split, packing)
        if ratio <= 1 + TOLERANCE or n == 1 or threshold == 1 or threshold > share:
            break
    if best is None:
        raise _nothing_fits(sum(d.files + d.dirs for d in roots), n, filter_limit, item_cap)
    _, threshold, split, packing = best
    lower_bound = max(-(-sum(u.cost for u in split.units) // n), largest)
    return _Cut(threshold, split, packing, lower_bound, finest, filters_full)


def _nothing_fits(items: int, n: int, filter_limit: int, item_cap: int | None) -> UserError:
    """Why no cut fits ``n`` scopes: too many items to list, or the manifest's entries need longer filters."""
    if item_cap is not None and items > n * item_cap:
        return UserError(f"the share holds {items:,} items, more than {n} agent(s) may list at "
                         f"{item_cap:,} per execution in Basic mode; add agents, or use Enhanced mode")
    return UserError(f"the manifest's entries need longer include filters than {n} agent(s) can carry "
                     f"({filter_limit:,} UTF-8 bytes each); list fewer, higher directories")


def _static_tasks(packing: list[list[Unit]], agents: tuple[str, ...], task_name: str) -> tuple[TaskPlan, ...]:
    """A static plan's tasks: one per agent that gets work, carrying its share."""
    return tuple(TaskPlan(tuple(members), agent_arn=agents[i], name=task_name_for(task_name, agents[i]))
                 for i, members in enumerate(packing) if members)


def _dynamic_tasks(packing: list[list[Unit]], agents: tuple[str, ...], task_name: str,
                   queue_depth: int) -> tuple[tuple[TaskPlan, ...], tuple[Chunk, ...]]:
    """A dynamic plan's tasks, ``queue_depth`` per agent and with no share of their own, and
    its chunks, heaviest first."""
    pieces = sorted((tuple(m) for m in packing if m), key=lambda m: (-sum(u.cost for u in m), m[0].pattern))
    lanes = tuple(TaskPlan((), agent_arn=a, name=task_name_for(task_name, a, slot))
                  for a in agents for slot in range(1, queue_depth + 1))
    return lanes, tuple(Chunk(units, index=i) for i, units in enumerate(pieces))


def _uneven(plan: Plan, finest: Split, full_limit: int | None, n: int) -> str | None:
    """Why the heaviest task (or chunk) ends above the lower bound, when it ends more than 5%
    above it, or above it with a unit heavier than the threshold that could not be cut: the
    heaviest units the finest cut tried still held whole, with why, and whether a finer cut
    needed more than ``full_limit``. None when there is nothing to say."""
    held = sorted(finest.held, key=lambda p: (-p[0].cost, p[0].pattern))
    over = any(u.cost > plan.threshold for u, _ in held)
    if not (plan.balance > 1 + UNEVEN or over and (plan.balance > 1 + TOLERANCE or len(plan.scopes) < n)):
        return None
    even = "chunk" if plan.dynamic else "share"

    def weight(u: Unit) -> str:
        return f"{u.pattern} ({u.cost * n / max(plan.total_cost, 1):.2f}x an even {even})"

    why = []
    if held:
        why.append(f"{len(held)} unit(s) could not be cut further; heaviest: "
                   + "; ".join(f"{weight(u)}: {reason}" for u, reason in held[:HELD_SHOWN]))
    if full_limit is not None:
        why.append(f"a finer cut needs more than {full_limit:,} UTF-8 bytes in some filter")
    if not why:
        heaviest = max(plan.scopes, key=lambda t: t.cost).units
        why.append("its units pack no more evenly; heaviest: "
                   + ", ".join(weight(u) for u in sorted(heaviest, key=lambda u: (-u.cost, u.pattern))[:HELD_SHOWN]))
    return f"the heaviest {'chunk' if plan.dynamic else 'task'} is {plan.balance:.2f}x the lower bound: " + \
        "; ".join(why)


def _warnings(tree: Tree, plan: Plan, split: Split, finest: Split, full_limit: int | None, item_cap: int | None,
              n: int) -> list[str]:
    """What the user should know; ``n`` is how many scopes (tasks or chunks) were asked for,
    ``full_limit`` the filter limit when a finer cut did not fit it."""
    out = []
    scopes = plan.scopes
    units = sum(len(t.units) for t in scopes)
    if len(scopes) < n:
        why = f"the share cuts into {units} unit(s)" if units < n else "the units do not spread further"
        out.append(f"only {len(scopes)} of {n} chunks could be cut: {why}" if plan.dynamic
                   else f"only {len(scopes)} of {n} agents get work: {why}")
    why_uneven = _uneven(plan, finest, full_limit, n)
    if why_uneven:
        out.append(why_uneven)
    for rel in split.bare_empty_roots:
        out.append(f"/{rel} is an empty directory and a sibling's name starts with its name: it is selected "
                   f"as '/{rel}/', which creates it only if DataSync reads that as the folder itself")
    out += _scan_warnings(tree)
    named: list[tuple[str, Units]] = [(f"chunk {c.index}", c) for c in plan.chunks]
    named = named or [(f"task {t.name}", t) for t in plan.tasks]
    for name, t in named:
        if item_cap is not None and t.items > item_cap:
            out.append(f"{name} lists {t.items:,} items, above DataSync's {item_cap:,} per-execution "
                       "quota in Basic mode; a unit that large could not be cut")
    groups = sum(1 for t in scopes for u in t.units if u.kind == GROUP)
    if groups:
        log.info("%d prefix group(s): files added after the scan under a name no group's prefix "
                 "starts are not selected; a rerun before cutover rescans and copies them", groups)
    return out


def _scan_warnings(tree: Tree) -> list[str]:
    """What the scan met that the plan carries without measuring or naming it."""
    out = []
    notes = sorted((rel, d.note) for rel, d in tree.dirs.items() if d.note)
    if notes:
        out.append(f"{len(notes)} directory(ies) could not be scanned; each travels whole inside a unit "
                   f"of its parent, e.g. /{notes[0][0]} ({notes[0][1]})")
    unnamed = sorted(c for d in tree.dirs.values() for c in d.children if not is_nameable(c.rpartition("/")[2]))
    if unnamed:
        out.append(f"{len(unnamed)} directory name(s) hold a character no DataSync filter can carry; each "
                   f"travels inside the prefix group or directory that holds it, e.g. {_shown('/' + unnamed[0])}")
    if tree.stat_errors:
        out.append(f"{tree.stat_errors} entr{'y' if tree.stat_errors == 1 else 'ies'} could not be measured "
                   "(see the log); they travel with their directory but are not counted")
    links = sum(d.hardlinked for d in tree.dirs.values())
    if links:
        out.append(f"{links} file(s) have hard links; links that land in different tasks arrive "
                   "as separate copies")
    if tree.skipped:
        out.append(f"{len(tree.skipped)} path(s) are skipped by DataSync by default and left out, "
                   f"e.g. {_shown('/' + tree.skipped[0])}")
    return out + tree.warnings()
