"""Split the scanned tree into units and pack them onto agents, exactly once and evenly.

Units
    ``whole``  a directory and everything below it (include ``/d``);
    ``rest``   a split directory minus the children split off from it: its loose files,
               the children too small or impossible to name, and anything created there
               after the scan (include ``/d``, exclude each split-off child held by
               another task);
    ``file``   one large loose file split off from its directory (include ``/d/f``);
    ``group``  the light children of a wide directory whose names start with one prefix
               (include ``/d/prefix*``), so that 50,000 home directories need a few
               hundred patterns rather than 50,000.

A task's filters are derived from the units it holds. A ``rest`` unit relies on an
exclude winning over an include, and one exclude is task-wide: a task that holds
``rest(p)`` excludes ``/p/c`` when another task holds ``c``, so the first task must not
hold anything below ``c`` unless it also holds ``rest(c)``. That is the one packing
constraint (:func:`_chain_ok`); the packer repairs and keeps it.

Balance: cost = bytes + items x per-file cost. Units are split until each is at most a
threshold (an even share, then halves of it while the heaviest task is more than 1%
above the lower bound), packed largest-first onto the least-loaded agent, then improved
by moves and swaps off the heaviest task. Every order is a total order on (cost, path),
so the same tree gives the same plan.
"""

from __future__ import annotations

import bisect
import heapq
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .filters import MAX_FILTER_CHARS, filter_value, is_nameable, pattern_for
from .scan import Tree, depth, join

log = logging.getLogger(__name__)

WHOLE, REST, FILE, GROUP = "whole", "rest", "file", "group"
GROUP_FROM = 64
"""A split cutting more light children than this from one directory packs them into prefix groups."""
DEFAULT_PER_FILE_COST = 512 * 1024
BASIC_MODE_ITEM_QUOTA = 50_000_000
TOLERANCE = 0.01
FINEST_SPLIT = 7
"""The threshold is halved at most this many times below an even share."""


@dataclass(frozen=True)
class Unit:
    path: str
    """Relative to the mount; '' is the mount itself."""
    kind: str
    bytes: int
    files: int
    dirs: int
    cost: int
    parent: str | None
    """The split directory this unit was cut from; None for a manifest entry."""


@dataclass(frozen=True)
class TaskPlan:
    agent_arn: str
    name: str
    includes: tuple[str, ...]
    excludes: tuple[str, ...]
    units: tuple[Unit, ...]
    bytes: int
    files: int
    dirs: int
    cost: int

    @property
    def include_chars(self) -> int:
        return len(filter_value(self.includes))

    @property
    def exclude_chars(self) -> int:
        return len(filter_value(self.excludes))


@dataclass(frozen=True)
class Plan:
    tasks: tuple[TaskPlan, ...]
    agents: tuple[str, ...]
    roots: tuple[str, ...]
    per_file_cost: int
    max_depth: int
    total_bytes: int
    total_files: int
    total_dirs: int
    total_cost: int
    lower_bound: int
    """max(total cost / agents, cost of the largest single file): no plan can beat it."""
    threshold: int
    warnings: tuple[str, ...] = ()

    @property
    def max_cost(self) -> int:
        return max((t.cost for t in self.tasks), default=0)

    @property
    def balance(self) -> float:
        """Heaviest task over the lower bound (1.0 is perfect)."""
        return self.max_cost / self.lower_bound if self.lower_bound else 1.0

    def to_json(self) -> dict:
        return {
            "version": 1,
            "roots": ["/" + r for r in self.roots],
            "agents": list(self.agents),
            "per_file_cost": self.per_file_cost,
            "max_depth": self.max_depth,
            "totals": {"bytes": self.total_bytes, "files": self.total_files,
                       "dirs": self.total_dirs, "cost": self.total_cost},
            "lower_bound": self.lower_bound,
            "max_task_cost": self.max_cost,
            "balance": round(self.balance, 4),
            "split_threshold": self.threshold,
            "warnings": list(self.warnings),
            "tasks": [{
                "agent_arn": t.agent_arn,
                "name": t.name,
                "includes": list(t.includes),
                "excludes": list(t.excludes),
                "include_chars": t.include_chars,
                "exclude_chars": t.exclude_chars,
                "bytes": t.bytes,
                "files": t.files,
                "dirs": t.dirs,
                "cost": t.cost,
                "share": round(t.cost / self.total_cost, 4) if self.total_cost else 0.0,
                "units": [{"path": "/" + u.path, "kind": u.kind, "bytes": u.bytes,
                           "files": u.files, "dirs": u.dirs, "cost": u.cost} for u in t.units],
            } for t in self.tasks],
        }


def task_name_for(prefix: str, agent_arn: str) -> str:
    """One stable task name per agent, so a rerun finds and reuses the agent's task."""
    return prefix + agent_arn.rsplit("/", 1)[-1]


def make_plan(tree: Tree, agents: Sequence[str], *, task_name: str,
              per_file_cost: int = DEFAULT_PER_FILE_COST, max_depth: int = 5,
              filter_limit: int = MAX_FILTER_CHARS, group_from: int = GROUP_FROM) -> Plan:
    """Plan the transfer of ``tree`` over ``agents`` (ARNs): one task per agent that gets work."""
    if not agents:
        raise ValueError("no agent to plan for")
    agents = tuple(sorted(agents))

    def cost(nbytes: int, items: int) -> int:
        return nbytes + items * per_file_cost

    total_bytes = sum(tree.dirs[r].bytes for r in tree.roots)
    total_files = sum(tree.dirs[r].files for r in tree.roots)
    total_dirs = sum(tree.dirs[r].dirs for r in tree.roots)
    total = cost(total_bytes, total_files + total_dirs)
    largest = max((tree.dirs[r].largest_file for r in tree.roots), default=0)
    bound = max(-(-total // len(agents)), cost(largest, 1) if total_files else 0)

    best: tuple[float, int, _Packing] | None = None
    share = max(total // len(agents), 1)
    for step in range(FINEST_SPLIT + 1):
        threshold = max(share >> step, 1)
        packing = _pack_within_limits(tree, cost, threshold, max_depth, len(agents), filter_limit, group_from)
        ratio = packing.max_load / bound if bound else 1.0
        if best is None or ratio < best[0] - 1e-9:
            best = (ratio, threshold, packing)
        if ratio <= 1 + TOLERANCE or len(agents) == 1 or threshold == 1:
            break
    assert best is not None
    _, threshold, packing = best

    tasks = tuple(
        TaskPlan(agents[i], task_name_for(task_name, agents[i]), inc, exc,
                 tuple(packing.units[p] for p in members),
                 sum(packing.units[p].bytes for p in members),
                 sum(packing.units[p].files for p in members),
                 sum(packing.units[p].dirs for p in members),
                 sum(packing.units[p].cost for p in members))
        for i, (members, inc, exc) in enumerate(packing.tasks) if members)
    warnings = _warnings(tree, packing, tasks, agents, max_depth)
    for w in warnings:
        log.warning("%s", w)
    return Plan(tasks, agents, tree.roots, per_file_cost, max_depth, total_bytes, total_files,
                total_dirs, total, bound, threshold, tuple(warnings))


# --- splitting -------------------------------------------------------------------------


@dataclass
class _Split:
    units: dict[str, Unit]
    split_off: dict[str, list[str]]
    """For each split directory, the children cut from it, in order."""
    deep: list[str] = field(default_factory=list)
    """Units above the threshold that the depth limit kept whole."""


def _split(tree: Tree, cost, threshold: int, max_depth: int, caps: dict[str, int], group_from: int) -> _Split:
    out = _Split({}, {})
    stack: list[tuple[str, str | None, int]] = [(r, None, 0) for r in tree.roots]
    while stack:
        rel, parent, level = stack.pop()
        d = tree.dirs[rel]
        whole_cost = cost(d.bytes, d.files + d.dirs)
        chosen: list[_Piece] = []
        if whole_cost > threshold and level < max_depth and not d.note:
            chosen = _children_to_split_off(tree, rel, cost, threshold, whole_cost, caps.get(rel), group_from)
        elif whole_cost > threshold and level >= max_depth and not d.note:
            out.deep.append(rel)
        if not chosen:
            out.units[rel] = Unit(rel, WHOLE, d.bytes, d.files, d.dirs, whole_cost, parent)
            continue
        nbytes, files, dirs = d.bytes, d.files, d.dirs
        for piece in chosen:
            if piece.kind == FILE:
                nbytes, files = nbytes - piece.size, files - 1
                out.units[piece.path] = Unit(piece.path, FILE, piece.size, 1, 0, piece.cost, rel)
                continue
            members = [tree.dirs[m] for m in piece.members]
            b, f, n = (sum(m.bytes for m in members), sum(m.files for m in members), sum(m.dirs for m in members))
            nbytes, files, dirs = nbytes - b, files - f, dirs - n
            if piece.kind == GROUP:
                out.units[piece.path] = Unit(piece.path, GROUP, b, f, n, piece.cost, rel)
            else:
                stack.append((piece.path, rel, level + 1))
        out.units[rel] = Unit(rel, REST, nbytes, files, dirs, cost(nbytes, files + dirs), parent)
        out.split_off[rel] = [piece.path for piece in chosen]
    return out


@dataclass(frozen=True)
class _Piece:
    """Something cut from a split directory: a subdirectory, a file, or a prefix group."""

    cost: int
    path: str
    kind: str
    """WHOLE (a subdirectory, which may be split further), FILE or GROUP."""
    members: tuple[str, ...] = ()
    """The subdirectories a piece carries (itself, for a subdirectory)."""
    size: int = 0
    """A file's bytes."""


def _children_to_split_off(tree: Tree, rel: str, cost, threshold: int, whole_cost: int,
                           cap: int | None, group_from: int) -> list[_Piece]:
    """The heaviest nameable children, taken until what stays behind fits the threshold.

    When that takes many light children, they go in prefix groups instead (``/d/ab*``):
    far fewer patterns, so a directory of 50,000 home directories still fits DataSync's
    filter limit. The heavy ones stay pieces of their own.
    """
    dirs = [(cost(c.bytes, c.files + c.dirs), child) for child, c in ((ch, tree.dirs[ch]) for ch in tree.children(rel))
            if not c.note and is_nameable(child.rsplit("/", 1)[-1])]
    candidates = [_Piece(c, child, WHOLE, (child,)) for c, child in dirs]
    candidates += [_Piece(cost(size, 1), join(rel, name), FILE, size=size) for size, name in tree.loose_files(rel)
                   if is_nameable(name) and cost(size, 1) * 8 >= threshold]
    candidates.sort(key=lambda p: (-p.cost, p.path))
    chosen: list[_Piece] = []
    remainder = whole_cost
    for piece in candidates:
        if remainder <= threshold or (cap is not None and len(chosen) >= cap):
            break
        chosen.append(piece)
        remainder -= piece.cost
    if len(chosen) <= group_from:
        return chosen
    heavy = [p for p in chosen if p.kind == FILE or p.cost * 4 >= threshold]
    reserved = {p.path.rsplit("/", 1)[-1] for p in heavy}
    light = {child.rsplit("/", 1)[-1]: (c, child) for c, child in dirs
             if child.rsplit("/", 1)[-1] not in reserved}
    pieces = heavy + _prefix_groups(rel, light, reserved, threshold)
    pieces.sort(key=lambda p: (-p.cost, p.path))
    return pieces[:cap] if cap is not None else pieces


def _prefix_groups(rel: str, light: dict[str, tuple[int, str]], reserved: set[str], limit: int) -> list[_Piece]:
    """Cover the light children with disjoint name prefixes, each group at most ``limit``.

    A trie walk over the sorted names: a prefix becomes a group when what starts with it
    fits the limit and no reserved name (a piece of its own) starts with it; otherwise it
    splits by the next character. A name equal to a prefix that had to split stays behind,
    in the directory's rest. So no group's prefix starts another piece's name, and no two
    groups overlap.
    """
    names = sorted(set(light) | reserved)
    groups: list[_Piece] = []

    def walk(prefix: str, lo: int, hi: int) -> None:
        inside = names[lo:hi]
        if prefix and is_nameable(prefix) and not any(n in reserved for n in inside):
            total = sum(light[n][0] for n in inside)
            if total <= limit:
                groups.append(_Piece(total, join(rel, prefix + "*"), GROUP, tuple(light[n][1] for n in inside)))
                return
        i = lo + (1 if lo < hi and names[lo] == prefix else 0)
        while i < hi:
            nxt = names[i][len(prefix)]
            j = i
            while j < hi and names[j][len(prefix)] == nxt:
                j += 1
            walk(prefix + nxt, i, j)
            i = j

    walk("", 0, len(names))
    return groups


# --- packing ---------------------------------------------------------------------------


@dataclass
class _Packing:
    units: dict[str, Unit]
    split_off: dict[str, list[str]]
    tasks: list[tuple[list[str], tuple[str, ...], tuple[str, ...]]]
    """Per agent: unit paths, include patterns, exclude patterns."""
    max_load: int
    coarsened: dict[str, int]
    deep: list[str]


def _pack_within_limits(tree: Tree, cost, threshold: int, max_depth: int, n: int,
                        filter_limit: int, group_from: int) -> _Packing:
    """Split and pack; while a filter would be too long, split the guilty directory less."""
    caps: dict[str, int] = {}
    while True:
        split = _split(tree, cost, threshold, max_depth, caps, group_from)
        owner = _assign(split, n)
        tasks = []
        too_long: list[str] = []
        for i in range(n):
            members = sorted((p for p, o in owner.items() if o == i), key=_path_key)
            inc, exc = _filters(split, set(members))
            if len(filter_value(inc)) > filter_limit or len(filter_value(exc)) > filter_limit:
                too_long += [p for p in inc + exc]
            tasks.append((members, tuple(inc), tuple(exc)))
        if not too_long:
            loads = [sum(split.units[p].cost for p in m) for m, _, _ in tasks]
            return _Packing(split.units, split.split_off, tasks, max(loads), caps, split.deep)
        guilty = _most_split_parent(split, too_long)
        if guilty is None:
            raise ValueError("the manifest's own entries do not fit DataSync's filter limit; "
                             "list fewer, higher directories")
        caps[guilty] = len(split.split_off[guilty]) // 2
        log.info("/%s: split into fewer pieces to fit the %d-character filter limit", guilty, filter_limit)


def _most_split_parent(split: _Split, patterns: list[str]) -> str | None:
    """The split directory whose children fill the over-long filters most."""
    weight: dict[str, int] = {}
    for pat in patterns:
        rel = pat[1:] if pat != "/*" else ""
        unit = split.units.get(rel)
        parent = unit.parent if unit is not None else rel.rpartition("/")[0]
        if parent is not None and parent in split.split_off and split.split_off[parent]:
            weight[parent] = weight.get(parent, 0) + len(pat) + 1
    return max(sorted(weight), key=lambda p: weight[p]) if weight else None


def _path_key(path: str) -> list[str]:
    return path.split("/") if path else []


def _chain(split: _Split, path: str) -> list[str]:
    """The split directories above a unit, nearest first."""
    out = []
    parent = split.units[path].parent
    while parent is not None:
        out.append(parent)
        parent = split.units[parent].parent
    return out


def _chain_ok(chain: list[str], held: set[str]) -> bool:
    """A task may hold a unit only if the rest-units it holds above it are the nearest ones.

    Holding ``rest(p)`` excludes every split-off child of ``p`` the task does not hold,
    and an exclude wins: so along the chain, once a rest-unit is not held, none further
    up may be.
    """
    gap = False
    for s in chain:
        if s in held:
            if gap:
                return False
        else:
            gap = True
    return True


def _fits(path: str, held: set[str], chains, below) -> bool:
    """Whether a task holding ``held`` may take ``path`` without breaking the chain rule."""
    held.add(path)
    try:
        return all(_chain_ok(chains[x], held) for x in (path, *below[path]) if x in held)
    finally:
        held.discard(path)


def _assign(split: _Split, n: int) -> dict[str, int]:
    """Largest first onto the least-loaded agent, repair the chain rule, then improve."""
    units = split.units
    chains = {p: _chain(split, p) for p in units}
    below: dict[str, list[str]] = {p: [] for p in units}
    for p, chain in chains.items():
        for s in chain:
            below[s].append(p)

    owner: dict[str, int] = {}
    members: list[set[str]] = [set() for _ in range(n)]
    loads = [0] * n
    for u in sorted(units.values(), key=lambda u: (-u.cost, u.path)):
        order = sorted(range(n), key=lambda i: (loads[i], i))
        i = next((b for b in order if _fits(u.path, members[b], chains, below)), order[0])
        owner[u.path] = i
        members[i].add(u.path)
        loads[i] += u.cost

    # Top-down, pull rest(c) onto the task of rest(parent) when that task holds units below c.
    for c in sorted((p for p, u in units.items() if u.kind == REST and u.parent is not None),
                    key=lambda p: (depth(p), p)):
        t = owner[units[c].parent]
        if owner[c] != t and any(owner[x] == t for x in below[c]):
            owner[c] = t

    members = [set() for _ in range(n)]
    for p, i in owner.items():
        members[i].add(p)
    assert all(_chain_ok(chains[p], members[owner[p]]) for p in units), "repair left a conflict"
    _improve(units, chains, below, owner, members)
    return owner


def _improve(units, chains, below, owner, members, max_rounds: int = 2000) -> None:
    """Move or swap units off the heaviest task while that lowers it (and the rule holds)."""
    n = len(members)
    loads = [sum(units[p].cost for p in m) for m in members]

    def ok_after(moves: list[tuple[str, int, int]]) -> bool:
        touched: set[str] = set()
        for p, a, b in moves:
            members[a].discard(p)
            members[b].add(p)
            touched.add(p)
            touched.update(below[p])
        good = all(_chain_ok(chains[x], members[_where(x, moves)]) for x in touched)
        if not good:
            for p, a, b in reversed(moves):
                members[b].discard(p)
                members[a].add(p)
        return good

    def _where(x: str, moves) -> int:
        for p, a, b in moves:
            if p == x:
                return b
        return owner[x]

    for _ in range(max_rounds):
        a = max(range(n), key=lambda i: (loads[i], -i))
        others = sorted((i for i in range(n) if i != a), key=lambda i: (loads[i], i))
        mine = sorted(members[a], key=lambda p: (-units[p].cost, p))
        done = False
        for p in mine:
            c = units[p].cost
            for b in others:
                if loads[b] + c >= loads[a]:
                    break
                if ok_after([(p, a, b)]):
                    owner[p] = b
                    loads[a] -= c
                    loads[b] += c
                    done = True
                    break
            if done:
                break
        if not done:
            done = _try_swap(units, owner, members, loads, a, others, mine, ok_after)
        if not done:
            return


def _try_swap(units, owner, members, loads, a, others, mine, ok_after, tries: int = 8) -> bool:
    """Swap a unit of the heaviest task for a lighter one elsewhere, if that lowers it.

    A swap of p (from a) for q (from b) helps when 0 < cost(p) - cost(q) < the load gap;
    the partners in that cost window are found by bisection, best first (a difference
    near half the gap evens the pair out most).
    """
    for b in others:
        gap = loads[a] - loads[b]
        theirs = sorted(members[b], key=lambda q: (units[q].cost, q))
        costs = [units[q].cost for q in theirs]
        for p in mine:
            cp = units[p].cost
            lo, hi = bisect.bisect_right(costs, cp - gap), bisect.bisect_left(costs, cp)
            if lo >= hi:
                continue
            mid = bisect.bisect_left(costs, cp - gap / 2, lo, hi)
            window = range(max(lo, mid - tries), min(hi, mid + tries))
            for k in sorted(window, key=lambda k: abs(k - mid))[:tries]:
                q = theirs[k]
                if ok_after([(p, a, b), (q, b, a)]):
                    delta = cp - units[q].cost
                    owner[p], owner[q] = b, a
                    loads[a] -= delta
                    loads[b] += delta
                    return True
    return False


def _filters(split: _Split, held: set[str]) -> tuple[list[str], list[str]]:
    """Include and exclude patterns that select exactly the units in ``held``."""
    includes, excludes = [], []
    for p in sorted(held, key=_path_key):
        unit = split.units[p]
        if unit.parent is None or unit.parent not in held:
            includes.append(pattern_for(p))
        if unit.kind == REST:
            excludes += [pattern_for(c) for c in split.split_off[p] if c not in held]
    excludes.sort(key=lambda s: _path_key(s[1:]))
    return includes, excludes


# --- what the user should know ---------------------------------------------------------


def _warnings(tree: Tree, packing: _Packing, tasks: Iterable[TaskPlan], agents: Sequence[str],
              max_depth: int) -> list[str]:
    out = []
    tasks = list(tasks)
    if len(tasks) < len(agents):
        out.append(f"only {len(tasks)} of {len(agents)} agents get work: the share splits into "
                   f"{len(packing.units)} unit(s) (max_depth {max_depth})")
    for rel, cap in sorted(packing.coarsened.items()):
        out.append(f"/{rel}: only {cap} children split off, to keep filters within "
                   f"{MAX_FILTER_CHARS:,} characters")
    if packing.deep:
        out.append(f"{len(packing.deep)} unit(s) above the split threshold sit at max_depth "
                   f"{max_depth}, e.g. {_shown(sorted(packing.deep)[0])}; a larger --max_depth may balance better")
    notes = sorted((rel, d.note) for rel, d in tree.dirs.items() if d.note)
    if notes:
        out.append(f"{len(notes)} directory(ies) could not be scanned and travel whole with their "
                   f"parent, e.g. {_shown(notes[0][0])} ({notes[0][1]})")
    unnamed = sorted(rel for rel in tree.dirs if rel and not is_nameable(rel.rsplit("/", 1)[-1]))
    if unnamed:
        out.append(f"{len(unnamed)} directory name(s) cannot appear in a DataSync filter and travel "
                   f"with their parent, e.g. {_shown(unnamed[0])}")
    links = sum(d.hardlinked for d in tree.dirs.values())
    if links:
        out.append(f"{links} file(s) have hard links; links that land in different tasks arrive "
                   "as separate copies")
    if tree.skipped:
        out.append(f"{len(tree.skipped)} path(s) are skipped by DataSync by default and left out, "
                   f"e.g. {_shown(tree.skipped[0])}")
    for t in tasks:
        if t.files + t.dirs > BASIC_MODE_ITEM_QUOTA:
            out.append(f"task {t.name} holds {t.files + t.dirs:,} items, above DataSync's "
                       f"{BASIC_MODE_ITEM_QUOTA:,} per-execution quota in Basic mode")
    return out


def _shown(rel: str) -> str:
    """A path for messages: as it is, or escaped where it holds line breaks or non-UTF-8 bytes."""
    path = "/" + rel
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return ascii(path)
    return path if path.isprintable() else ascii(path)
