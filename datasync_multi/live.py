"""Live mode's planner: units and chunks decided while the scan is still walking.

The scan reports each directory as it is listed (:meth:`LivePlanner.listed`); the planner
keeps a record only for directories still open (listed, but with a subdirectory not yet
closed) and frees a subtree's records once it is in a unit. Decisions are the static
split's (``split.py``), taken as soon as they can no longer change:

* a directory whose cost so far passes the unit threshold is *cut* at once, by the names
  of its complete listing (:func:`split.cut_by_name`): each subdirectory still open
  weighs more than any threshold there, so the cut isolates it as a unit of its own
  (``/d/s/``) where the names allow, and groups loose entries and closed subdirectories
  by prefix (``/d/p*``). A group holding an open subdirectory (one the names would not
  isolate) waits for it to close;
* a subdirectory the cut isolated becomes one unit when it closes, or is cut in turn
  when it grows past the threshold;
* a directory that closes below the threshold waits for its parent's decision: inside a
  parent that stays light it travels in the parent's unit.

A cut, once taken, is final and journaled before any of its units; a unit, once handed to
the packer, is final. Every unit is one a static split of the same tree could have made,
and no later unit reaches into an earlier one, so the plan is exactly-once under every
reading of DataSync's filter rules (``filters.py``), as the static plan is.

An open subdirectory isolated by a cut is named ``/d/s/`` (which, under the string-prefix
reading, selects what lies below ``/d/s`` only): where a sibling's name extends ``s``
and ``s`` might be empty, that pattern could miss the empty folder, so such a
subdirectory is looked into first (``is_empty``) and, when empty, stays in a group.
An empty isolated subdirectory no sibling's name extends is named exactly (``/d/s``).

Units and chunks never change once emitted, so a run killed mid-scan resumes from its
journal (:class:`Resume`): journaled cuts are applied as they were, what journaled chunks
cover is not walked again, and the rest is planned anew inside those cuts.
"""

from __future__ import annotations

import bisect
import logging
import os
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from . import scan
from .assign import Speed, Work
from .filters import MAX_FILTER_BYTES, WHOLE_LOCATION
from .names import NameCount
from .pack import Limits, pack_shares, take_oldest
from .plan import Chunk
from .scan import Dir, Loose, LooseReader, Progress, Tree, join
from .split import DIR, GROUP, Item, Unit, cut_by_name

log = logging.getLogger(__name__)

OPEN_WEIGHT = 1 << 62
"""What a subdirectory still open weighs in a cut: more than any threshold, so the cut
isolates it (a unit of its own) wherever its name allows."""

UNITS_PER_CHUNK = 4
"""The unit threshold is the first chunk target over this: units small enough that chunks
fill evenly and the last ones can be cut small. A unit closes only once all of it is read,
so with each walk thread inside a unit of its own, up to about one unit per thread is read
but not closed: finer units close the work sooner, but list more patterns per chunk. On the
bench's tree through a slow mount (``bench/live.py --mount-delay 1``; bench/RESULTS.md,
question 10, 2026-12-01 13:53 and 14:13), the ideal transfer of the work as it closed came
to 1.10 to 1.12, 1.10 and 1.01 of max(scan, ideal) at 4, 8 and 16 units a chunk, but the
emulator, matching every path against every pattern, took 49 to 52, 58 and 74 CPU-s,
slowing the scan beside it: the makespans were 176 and 186, 188, and 208 s."""
SERVED_AT = 4
"""An agent left idle gets its chunk once the pool holds this fraction of it (1/4); where
more waits, it takes up to this many times its chunk (``Demand.take``)."""


@dataclass(frozen=True)
class Sizing:
    """How a live plan sizes units and chunks, fixed for the run (and journaled)."""

    estimate: int
    """The share's cost as guessed before the scan (statvfs or a sample), or the fixed chunk target's
    scopes' worth of it when --chunk_size gives one."""
    scopes: int
    """Chunks per agent x agents: how many chunks an estimate's worth of work is cut into."""
    per_file_cost: int
    threshold: int
    """The unit threshold: a directory heavier than this is cut."""
    fixed_target: int | None = None
    """--chunk_size, as a cost; None: the target follows the work left (guided)."""
    agents: int = 1
    max_depth: int | None = None
    item_cap: int | None = None
    filter_limit: int = MAX_FILTER_BYTES

    @classmethod
    def guided(cls, estimate: int, agents: int, k: int, per_file_cost: int, **limits) -> Sizing:
        scopes = max(agents * k, 1)
        first = max(estimate // scopes, 1)
        return cls(estimate, scopes, per_file_cost, max(first // UNITS_PER_CHUNK, 1), agents=agents, **limits)

    @classmethod
    def fixed(cls, target: int, agents: int, k: int, per_file_cost: int, **limits) -> Sizing:
        target, scopes = max(target, 1), max(agents * k, 1)
        return cls(target * scopes, scopes, per_file_cost, max(target // UNITS_PER_CHUNK, 1), target, agents=agents,
                   **limits)

    def cost(self, nbytes: int, items: int) -> int:
        return nbytes + items * self.per_file_cost

    def too_heavy(self, nbytes: int, items: int, limit: int) -> bool:
        return self.cost(nbytes, items) > limit or (self.item_cap is not None and items > self.item_cap)

    def target(self, seen: int, emitted: int) -> int:
        """The next chunk's cost: fixed, or an even share of the estimate over the scopes until
        the work left is two such chunks per agent, then half the work left per agent, never
        below a unit threshold: the last chunks shrink, so the agents end together. Once the
        scan has seen more than the estimate, what is left cannot be known: chunks are then
        cut as if the share were what has been seen, and the last ones are cut small when
        the scan ends."""
        if self.fixed_target is not None:
            return self.fixed_target
        scopes = max(self.scopes, 1)
        if seen > self.estimate:
            return max(seen // scopes, self.threshold)
        return max(min(self.estimate // scopes, (self.estimate - emitted) // (2 * max(self.agents, 1))),
                   self.threshold)

    def to_json(self) -> dict:
        return {"estimate": self.estimate, "scopes": self.scopes, "per_file_cost": self.per_file_cost,
                "threshold": self.threshold, "fixed_target": self.fixed_target, "agents": self.agents,
                "max_depth": self.max_depth,
                "item_cap": self.item_cap, "filter_limit": self.filter_limit}

    @classmethod
    def from_json(cls, data: dict) -> Sizing:
        return cls(int(data["estimate"]), int(data["scopes"]), int(data["per_file_cost"]), int(data["threshold"]),
                   None if data["fixed_target"] is None else int(data["fixed_target"]), int(data["agents"]),
                   None if data["max_depth"] is None else int(data["max_depth"]),
                   None if data["item_cap"] is None else int(data["item_cap"]), int(data["filter_limit"]))


@dataclass(frozen=True)
class CutRecord:
    """A directory's cut as the journal keeps it: its group prefixes, and its isolated
    subdirectories' names, each with whether a sibling's name extends it; whether its loose
    entries were weighed by a guess (``LivePlanner.opened``; absent from older journals)."""

    rel: str
    groups: tuple[str, ...]
    isolated: tuple[tuple[str, bool], ...]
    guessed: bool = False

    def to_json(self) -> dict:
        return {"dir": self.rel, "groups": list(self.groups), "isolated": [list(i) for i in self.isolated],
                **({"guessed": True} if self.guessed else {})}

    @classmethod
    def from_json(cls, data: dict) -> CutRecord:
        return cls(str(data["dir"]), tuple(str(g) for g in data["groups"]),
                   tuple((str(n), bool(e)) for n, e in data["isolated"]), bool(data.get("guessed", False)))


@dataclass
class Resume:
    """What a killed run's journal holds: its cuts, and the patterns its chunks carry."""

    cuts: dict[str, CutRecord] = field(default_factory=dict)
    emitted: set[str] = field(default_factory=set)
    """The patterns of the journaled chunks and of the pooled units: none is planned again."""
    next_index: int = 0
    emitted_cost: int = 0
    pooled: list[Unit] = field(default_factory=list)
    """Units journaled but in no chunk: back into the packer's pool, as they were."""


class _Group:
    """One prefix group of a cut directory: what is known of it, and its subdirectories
    still open (it is emitted once none is)."""

    __slots__ = ("prefix", "open", "bytes", "files", "dirs", "done", "why")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.open: set[str] = set()
        self.bytes = self.files = self.dirs = 0
        self.done = False
        self.why = ""
        """Why the cut could not split it, where it was too heavy then (not journaled: empty on a resume)."""

    def add(self, nbytes: int, files: int, dirs: int) -> None:
        self.bytes += nbytes
        self.files += files
        self.dirs += dirs


class _Cut:
    """A cut directory: its groups (by prefix) and isolated subdirectories (name -> whether
    a sibling's name extends it)."""

    def __init__(self, record: CutRecord, whys: dict[str, str] | None = None) -> None:
        self.record = record
        self.groups = {p: _Group(p) for p in record.groups}
        for prefix, why in (whys or {}).items():
            self.groups[prefix].why = why
        self.prefixes = sorted(record.groups)
        self.isolated = dict(record.isolated)

    def place(self, name: str) -> _Group | str | None:
        """The group holding ``name``, ISOLATED, or None (a name the cut did not see)."""
        if name in self.isolated:
            return ISOLATED
        i = bisect.bisect_right(self.prefixes, name) - 1
        if i >= 0 and name.startswith(self.prefixes[i]):
            return self.groups[self.prefixes[i]]
        return None


UNMEASURED = "\0"
"""In a group's open set: loose entries of its not measured yet (no path is this string)."""
Parts = list[tuple[str, list[str]]]
"""A directory's loose names by part: (its group's prefix, or '' for a directory kept whole; the names)."""

OPEN, CUT, WHOLE = "open", "cut", "whole"
"""A node's state: not decided (light so far), cut by name, or heavy and kept whole."""
ROOT, ISOLATED, PENDING, ABSORBED = "root", "isolated", "pending", "absorbed"
"""A node's place: a manifest root; a unit of its own in its parent's cut; inside a parent
not decided yet; inside something that travels whole. A member of a group has the group."""


class _Node:
    __slots__ = ("rel", "parent", "level", "d", "bytes", "files", "dirs", "open", "state", "cut", "closed",
                 "why")

    def __init__(self, rel: str, parent: _Node | None, d: Dir) -> None:
        self.rel = rel
        self.parent = parent
        self.level: int = 0 if parent is None else parent.level + 1
        self.d = d
        self.bytes = self.files = self.dirs = 0
        """The subtree's totals so far."""
        self.open = 0
        """Subdirectories not closed yet."""
        self.state = OPEN
        self.cut: _Cut | None = None
        self.closed: dict[str, tuple[int, int, int, str]] = {}
        """While OPEN: its closed subdirectories' totals (bytes, files, dirs, note), for a cut."""
        self.why = ""
        """Why a WHOLE node could not be cut."""

    @property
    def name(self) -> str:
        return self.rel.rpartition("/")[2]


Emit = Callable[[Chunk], None]
Journal = Callable[[CutRecord], None]


class LivePlanner:
    """Units and chunks from directories as they are listed. Not thread-safe: one thread
    feeds it (``listed``), in an order where a directory comes after its parent."""

    def __init__(self, roots: tuple[str, ...], sizing: Sizing, read_loose: LooseReader,
                 is_empty: Callable[[str], bool], on_chunk: Emit, on_cut: Journal, *, lone_roots: frozenset[str],
                 tail_pieces: int = 1, resume: Resume | None = None, demand: Demand | None = None,
                 on_unit: Callable[[Unit], None] = lambda unit: None) -> None:
        self.roots = frozenset(roots)
        self.sizing = sizing
        self.is_empty = is_empty
        self.on_cut = on_cut
        self.lone_roots = lone_roots
        self.resume = resume or Resume()
        self._journaled = {rel: _Cut(record) for rel, record in self.resume.cuts.items()}
        """The journaled cuts, for :meth:`covered` (which the walk's threads call: read only)."""
        self.tree = Tree({}, roots, self._read_loose)
        """Open directories' records, for :meth:`Tree.loose_names`."""
        self._read_again = read_loose
        self._listing: tuple[str, Loose] | None = None
        """The directory being listed, with the loose entries its listing read (when kept)."""
        self.nodes: dict[str, _Node] = {}
        self.seen = self.resume.emitted_cost + sum(u.cost for u in self.resume.pooled)
        """Cost listed so far, and what earlier runs' chunks and pool carried."""
        self.on_unit = on_unit
        self.held: list[tuple[Unit, str]] = []
        self.late = 0
        """Entries that appeared after their directory was cut (on a resume): no unit carries them."""
        self.bare_empty_roots: list[str] = []
        self.packer = StreamPacker(sizing, on_chunk, self.resume.next_index, self.resume.emitted_cost,
                                   lambda: self.seen, tail_pieces, demand or Demand())
        for unit in self.resume.pooled:
            self.packer.keep(unit)

    # -- what the walk asks -------------------------------------------------------

    def covered(self, rel: str) -> bool:
        """Whether the walk may skip ``rel``: journaled chunks carry it, or (on a resume) its
        name appeared after its parent was cut, so no unit of this run can carry it."""
        if rel in self.roots:
            return self._root_pattern(rel, empty=False) in self.resume.emitted or \
                self._root_pattern(rel, empty=True) in self.resume.emitted
        parent, _, name = rel.rpartition("/")
        cut = self._journaled.get(parent)
        if cut is None:
            return False
        place = cut.place(name)
        if place is None:
            return True
        if isinstance(place, _Group):
            return "/" + join(parent, place.prefix) + "*" in self.resume.emitted
        return "/" + rel + "/" in self.resume.emitted or "/" + rel in self.resume.emitted

    # -- events -------------------------------------------------------------------

    def listed(self, rel: str, d: Dir, far_names: Iterable[str] = (), loose: Loose | None = None) -> None:
        """One directory's listing (``d``: its own entries, and its subdirectories within
        DataSync's path limit); ``far_names`` are its entries past that limit; ``loose`` its
        loose entries as the listing read them, if kept: cut now, it is cut by them."""
        self._listing = (rel, loose) if loose is not None else None
        try:
            self._listed(rel, d, far_names)
        finally:
            self._listing = None

    def opened(self, rel: str, d: Dir, far_names: list[str], names: list[str], guess: int) -> Parts | None:
        """A directory whose names are read but not yet measured: ``d`` holds its subdirectories
        and, in ``own_files``, how many loose entries it names (``names``, sorted); ``guess`` is
        the bytes of one of them, from a sample. Where those entries alone would pass the unit
        threshold, it is cut now, by its names weighed at ``guess`` each, and its loose entries
        are then measured one part at a time (:meth:`part_listed`, then :meth:`listing_done`):
        each group goes out once measured (and its subdirectories closed) rather than when the
        whole listing ends, so a heavy directory read late does not hold its bytes back to the
        end of the scan. Which names a group holds does not depend on the weights, so the cut
        is exactly-once as any other; what each group claims is what its part measured.

        Returns the names by part (a group's, or all of them for a directory kept whole), or
        None: nothing is decided, and the directory is listed whole (:meth:`listed`)."""
        parent = None if rel in self.roots else self.nodes[rel.rpartition("/")[0]]
        if rel in self.resume.cuts or d.note or not self.sizing.too_heavy(guess * len(names), len(names),
                                                                          self.sizing.threshold):
            return None
        chain = _up_from(parent)
        self._cut_heavy(chain, guess * len(names), len(names))  # as a listing cuts the ancestors it makes heavy
        node = _Node(rel, parent, d)
        if self._place(node) not in (ROOT, ISOLATED) or self._why_whole(node):
            return None
        self.nodes[rel] = node
        self.tree.dirs[rel] = d
        if far_names:
            self.tree.past_limit.names[rel] = list(far_names)
        node.open = 1 + sum(1 for c in d.children if not self.covered(c))
        self.seen += self.sizing.cost(0, 1)
        for n in (node, *chain):
            n.dirs += 1
        self._listing = (rel, [(name, guess) for name in names])
        try:
            self._cut(node, unmeasured=names)
        finally:
            self._listing = None
            self.tree._names.pop(rel, None)
        if node.state != CUT:
            return [("", names)]
        assert node.cut is not None
        parts: dict[str, list[str]] = {}
        for name in names:
            group = node.cut.place(name)
            assert isinstance(group, _Group), f"/{join(rel, name)} is in no group of the cut by its own names"
            parts.setdefault(group.prefix, []).append(name)
        return list(parts.items())

    def part_listed(self, rel: str, key: str, nbytes: int, files: int) -> None:
        """One part of a directory :meth:`opened` cut early, measured: its group goes out once
        nothing in it is open."""
        node = self.nodes[rel]
        self.seen += self.sizing.cost(nbytes, files)
        for up in _up_from(node):
            up.bytes += nbytes
            up.files += files
        if node.state == CUT:
            assert node.cut is not None
            group = node.cut.groups[key]
            group.add(nbytes, files, 0)
            group.open.discard(UNMEASURED)
            self._group_ready(node, group)
        self.packer.serve()

    def listing_done(self, rel: str, d: Dir) -> None:
        """Every part of a directory :meth:`opened` cut early is measured (``d``: its record)."""
        node = self.nodes[rel]
        node.d.own_files, node.d.bytes, node.d.hardlinked = d.own_files, d.bytes, d.hardlinked
        node.open -= 1
        if node.open == 0:
            self._close(node)
        self.packer.serve()

    def _read_loose(self, rel: str) -> Iterator[tuple[str, int]]:
        if self._listing is not None and self._listing[0] == rel:
            return iter(self._listing[1])
        return self._read_again(rel)

    def _listed(self, rel: str, d: Dir, far_names: Iterable[str]) -> None:
        parent = None if rel in self.roots else self.nodes[rel.rpartition("/")[0]]
        node = _Node(rel, parent, d)
        self.nodes[rel] = node
        self.tree.dirs[rel] = d
        far = list(far_names)
        if far:
            self.tree.past_limit.names[rel] = far
        skipped = [c for c in d.children if self.covered(c)]
        node.open = len(d.children) - len(skipped)
        cut = self._journaled.get(rel)
        if cut is not None:
            self.late += sum(1 for c in skipped if cut.place(c.rpartition("/")[2]) is None)
        cost = self.sizing.cost(d.bytes, d.own_files + 1)
        self.seen += cost
        chain = _up_from(node)
        for up in chain:
            up.bytes += d.bytes
            up.files += d.own_files
            up.dirs += 1
        record = self.resume.cuts.get(rel)
        if record is not None:
            self._apply(node, record, journaled=True)
        self._cut_heavy(chain)
        if node.open == 0:
            self._close(node)
        self.packer.serve()

    def finish(self) -> None:
        """The scan has ended: every directory is closed, so every unit is out; the last
        chunks go out, cut small."""
        if self.nodes:
            raise AssertionError(f"{len(self.nodes)} directories still open at the end of the scan")
        self.packer.finish()

    # -- decisions ----------------------------------------------------------------

    def _place(self, node: _Node) -> _Group | str:
        """Where ``node`` stands in its parent's decision (see ROOT ... ABSORBED)."""
        parent = node.parent
        if parent is None:
            return ROOT
        if parent.state == CUT:
            assert parent.cut is not None
            place = parent.cut.place(node.name)
            assert place is not None, f"/{node.rel} was walked though its parent's cut does not hold it"
            return place
        if parent.state == WHOLE:
            return ABSORBED
        above = self._place(parent)
        return ABSORBED if above == ABSORBED or isinstance(above, _Group) else PENDING

    def _cut_heavy(self, chain: list[_Node], nbytes: int = 0, items: int = 0) -> None:
        """Cut, top down, each directory of ``chain`` (nearest first) not decided yet, and
        cuttable, that is past the unit threshold with ``nbytes`` and ``items`` more."""
        for n in reversed(chain):
            if n.state == OPEN and self._cuttable(n) and self.sizing.too_heavy(
                    n.bytes + nbytes, n.files + n.dirs + items, self.sizing.threshold):
                self._cut(n)

    def _cuttable(self, node: _Node) -> bool:
        return self._place(node) in (ROOT, ISOLATED)

    def _cut(self, node: _Node, unmeasured: list[str] | None = None) -> None:
        """``node`` has grown past the threshold: cut it by name, or keep it whole if it cannot be cut.
        An empty directory is never cut: it is its own unit. ``unmeasured``: its loose entries'
        names, whose weights are only guessed; each group counts its own as they are measured."""
        if not node.d.own_files and not node.d.children and node.rel not in self.tree.past_limit.names:
            return
        why = self._why_whole(node)
        loose = None
        if not why:
            loose = self.tree.loose_names(node.rel, self._weigh)
            if loose is None:
                why = "could not be read again to count its names"
        if why or loose is None:
            node.state, node.why = WHOLE, why
            node.closed.clear()
            return
        items, extended = self._items(node, loose)
        cut = cut_by_name(items, self.sizing.threshold, self.sizing.too_heavy)
        if isinstance(cut, str):
            node.state, node.why = WHOLE, cut
            node.closed.clear()
            return
        groups, subdirs = cut
        record = CutRecord(node.rel, tuple(prefix for prefix, _, _ in groups),
                           tuple((name, name in extended) for name in subdirs), guessed=unmeasured is not None)
        self.on_cut(record)
        self._apply(node, record, journaled=False, loose=loose if unmeasured is None else [],
                    whys={prefix: why for prefix, _, why in groups}, unmeasured=unmeasured or ())

    def _why_whole(self, node: _Node) -> str:
        if node.d.note:
            return f"could not be scanned ({node.d.note})"
        if self.sizing.max_depth is not None and node.level >= self.sizing.max_depth:
            return f"at --max_depth {self.sizing.max_depth}"
        return ""

    def _weigh(self, c: NameCount) -> float:
        cap = self.sizing.item_cap
        return max(self.sizing.cost(c.bytes, c.files) / self.sizing.threshold, c.files / cap if cap else 0.0)

    def _items(self, node: _Node, loose: list[NameCount]) -> tuple[list[Item], set[str]]:
        """The cut's items: loose names, closed subdirectories as they are, open ones weighing
        OPEN_WEIGHT (not splittable where a sibling extends the name and the folder is empty);
        and the subdirectory names a sibling's name extends."""
        cost = self.sizing.cost
        items = [Item(c.key, False, c.bytes, c.files, 0, cost(c.bytes, c.files)) for c in loose]
        names = [child.rpartition("/")[2] for child in node.d.children]
        extended = _extended(names, loose)
        for child, name in zip(node.d.children, names, strict=True):
            closed = node.closed.get(name)
            if closed is not None:
                nbytes, files, dirs, note = closed
                items.append(Item(name, not note and (files > 0 or dirs > 1), nbytes, files, dirs,
                                  cost(nbytes, files + dirs)))
            else:
                splittable = name not in extended or not self._empty(child)
                items.append(Item(name, splittable, OPEN_WEIGHT, 0, 1, OPEN_WEIGHT))
        items.sort(key=lambda it: it.key)
        return items, extended

    def _empty(self, rel: str) -> bool:
        listed = self.nodes.get(rel)
        if listed is not None:
            return listed.d.own_files == 0 and not listed.d.children
        try:
            return self.is_empty(rel)
        except OSError:
            return True  # not known to hold anything: it stays in a group, which carries it either way

    def _apply(self, node: _Node, record: CutRecord, journaled: bool, loose: list[NameCount] | None = None,
               whys: dict[str, str] | None = None, unmeasured: Iterable[str] = ()) -> None:
        """Make ``record`` the node's cut: its loose entries and closed subdirectories go to
        their groups or out as units; groups with nothing open (nothing ``unmeasured``) go out."""
        cut = _Cut(record, whys)
        node.state, node.cut = CUT, cut
        if journaled:
            loose = self._loose_by_group(node, cut)
        assert loose is not None
        _count_loose(node.rel, cut, loose, unmeasured)
        for child in node.d.children:
            name = child.rpartition("/")[2]
            place = cut.place(name)
            if place is None or (journaled and self.covered(child)):
                continue
            closed = node.closed.get(name)
            if closed is not None:
                nbytes, files, dirs, _ = closed
                if isinstance(place, _Group):
                    place.add(nbytes, files, dirs)
                else:
                    self._emit(Unit("/" + child + "/", DIR, nbytes, files, dirs,
                                    self.sizing.cost(nbytes, files + dirs)))
            elif isinstance(place, _Group):
                place.open.add(child)
        node.closed.clear()
        for group in cut.groups.values():
            self._group_ready(node, group)

    def _loose_by_group(self, node: _Node, cut: _Cut) -> list[NameCount]:
        """A journaled cut's loose entries, read again and counted per group; those no group
        holds appeared after the cut and are counted as late."""
        counts: dict[str, list[int]] = {}
        if node.d.own_files:
            try:
                entries = list(self.tree.read_loose(node.rel))
            except OSError as exc:
                log.warning("cannot read /%s again (%s): its groups are counted empty", node.rel, exc.strerror)
                entries = []
            for name, size in entries:
                place = cut.place(name)
                if not isinstance(place, _Group):
                    self.late += 1
                    continue
                if "/" + join(node.rel, place.prefix) + "*" in self.resume.emitted:
                    continue
                count = counts.setdefault(place.prefix, [0, 0])
                count[0] += 1
                count[1] += size
        return [NameCount(prefix, files, nbytes) for prefix, (files, nbytes) in counts.items()]

    def _group_ready(self, node: _Node, group: _Group) -> None:
        if group.open or group.done:
            return
        group.done = True
        pattern = "/" + join(node.rel, group.prefix) + "*"
        if pattern in self.resume.emitted:
            return
        self._emit(Unit(pattern, GROUP, group.bytes, group.files, group.dirs,
                        self.sizing.cost(group.bytes, group.files + group.dirs)), group.why,
                   weighed=node.cut is not None and not node.cut.record.guessed)

    # -- closing ------------------------------------------------------------------

    def _close(self, node: _Node) -> None:
        """``node`` and everything below it are listed: emit what waited for it, free it, and
        close its parent if this was the last thing it waited for."""
        while node is not None:
            place = self._place(node)
            self._closed(node, place)
            del self.nodes[node.rel]
            self.tree.dirs.pop(node.rel, None)
            self.tree.past_limit.names.pop(node.rel, None)
            self.tree._names.pop(node.rel, None)
            parent = node.parent
            if parent is None:
                return
            parent.open -= 1
            if parent.open:
                return
            node = parent

    def _closed(self, node: _Node, place: _Group | str) -> None:
        cost = self.sizing.cost(node.bytes, node.files + node.dirs)
        if node.state == CUT:
            assert node.cut is not None
            assert all(g.done for g in node.cut.groups.values()), f"/{node.rel} closed with a group still waiting"
            return
        if isinstance(place, _Group):
            assert node.parent is not None
            place.add(node.bytes, node.files, node.dirs)
            place.open.discard(node.rel)
            self._group_ready(node.parent, place)
            return
        if place == ABSORBED:
            return
        if place == PENDING:
            assert node.parent is not None
            node.parent.closed[node.name] = (node.bytes, node.files, node.dirs, node.d.note)
            return
        empty = node.files == 0 and node.dirs == 1
        if place == ROOT:
            pattern = self._root_pattern(node.rel, empty)
            if empty and pattern.endswith("/"):
                self.bare_empty_roots.append(node.rel)
        else:
            assert node.parent is not None and node.parent.cut is not None
            extended = node.parent.cut.isolated[node.name]
            pattern = "/" + node.rel + ("/" if extended or not empty else "")
        unit = Unit(pattern, DIR, node.bytes, node.files, node.dirs, cost)
        if node.state == WHOLE and node.why:
            self.held.append((unit, node.why))
        self._emit(unit)

    def _root_pattern(self, rel: str, empty: bool) -> str:
        if not rel:
            return WHOLE_LOCATION
        return "/" + rel + ("" if empty and rel in self.lone_roots else "/")

    def _emit(self, unit: Unit, why: str = "", weighed: bool = True) -> None:
        """Hand ``unit`` to the packer; a group above the threshold (in cost, or in items past
        the cap: then no chunk can carry it within the cap) is held, with why (the cut's
        reason where it gave one). A group of a cut whose weights were guessed (not
        ``weighed``) and that the cut did not find too heavy is not held for its cost: a cut
        by its real weights might have split it."""
        cap = self.sizing.item_cap
        over_cap = cap is not None and unit.items > cap
        if unit.kind == GROUP and unit.items > 1 and self.sizing.too_heavy(unit.bytes, unit.items,
                                                                             self.sizing.threshold) \
                and (weighed or why or over_cap):
            over = f"it lists {unit.items:,} items, above the {cap:,} one execution may list, and " if over_cap else ""
            self.held.append((unit, over + (why or "its names could not be cut more finely")))
        self.on_unit(unit)
        self.packer.add(unit)


def _up_from(node: _Node | None) -> list[_Node]:
    """``node`` and the directories above it, nearest first."""
    chain = []
    while node is not None:
        chain.append(node)
        node = node.parent
    return chain


def _count_loose(rel: str, cut: _Cut, loose: list[NameCount], unmeasured: Iterable[str]) -> None:
    """Count a cut directory's loose entries into their groups; a group holding an entry
    not measured yet waits for it."""
    for c in loose:  # a bucket's key starts with the prefix of the group that holds it
        group = cut.place(c.key)
        if isinstance(group, _Group):
            group.add(c.bytes, c.files, 0)
    for name in unmeasured:
        group = cut.place(name)
        assert isinstance(group, _Group), f"/{join(rel, name)} is in no group of the cut by its own names"
        group.open.add(UNMEASURED)


def _extended(names: list[str], loose: list[NameCount]) -> set[str]:
    """The subdirectory names another entry's name extends (a longer name starting with it),
    counting a bucket of loose names as extending every name its stem starts or that starts it."""
    keys = sorted({*names, *(c.key for c in loose)})
    stems = {c.stem for c in loose if c.is_bucket}
    out = set()
    for name in names:
        i = bisect.bisect_right(keys, name)
        if i < len(keys) and keys[i].startswith(name) or any(name[:n] in stems for n in range(len(name) + 1)):
            out.add(name)
    return out


class Demand:
    """What the last check asked of the scan (the checks set it; the scan's thread takes from
    it): a chunk for each agent it left with a free slot and nothing waiting for it, sized to that agent
    (``appetites``: its rate over the fleet's mean, fastest first; ``askers``: where each of those
    agents is in ``reach``), and how far each agent's work reaches (``reach``: its speed, and the
    seconds until its work ends), so that chunks grow with the work waiting and the last
    chunks can end the agents together. Each agent's rate in cost units is taken on the mix
    of what the pool holds (``Speed.rate``): an agent fast on bytes is not fast on entries."""

    def __init__(self, appetites: tuple[float, ...] = (), reach: tuple[tuple[Speed, float], ...] = (),
                 askers: tuple[int, ...] = (), clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._appetites: list[float] = []
        self._askers: list[int | None] = []
        self._reach: tuple[tuple[Speed, float], ...] = ()
        self._reach_at = 0.0
        self.set(appetites, reach, askers)

    def set(self, appetites: tuple[float, ...], reach: tuple[tuple[Speed, float], ...],
            askers: tuple[int, ...] = (), at: float | None = None) -> None:
        """A check's asks; ``at``: when it measured ``reach`` (on this clock; now if None)."""
        with self._lock:
            self._appetites = list(appetites)
            known = len(askers) == len(appetites) and all(0 <= i < len(reach) for i in askers)
            self._askers = list(askers) if known else [None] * len(appetites)
            self._reach, self._reach_at = reach, self._clock() if at is None else at

    def asking(self) -> bool:
        """Whether an agent the last check left idle (running nothing) still waits for its chunk."""
        with self._lock:
            return any(not self._running(agent) for agent in self._askers)

    def _running(self, agent: int | None) -> bool:
        return agent is not None and self._reach_now()[agent][1] > 0

    def take(self, target: int, pooled: int, mix: Work, scaled: bool) -> int | None:
        """The cost of the chunk the first idle agent wants (fastest first) of which the pool
        holds a quarter (that agent's turn is then taken); None if no agent waits or the pool
        is too small for each. A slower agent is not kept idle while the pool fills for a
        faster one's larger chunk. An agent still running something asks for a chunk to queue
        behind it: it gets it once the pool holds all of it, so that it pays one start for a
        full chunk rather than one for each quarter. ``scaled``: the chunk follows the agent's
        rate (else every agent gets ``target``), and an agent the check measured takes its
        share of the pool as if the scan ended now (:func:`end_together`), up to four times
        its chunk: a backlog is moved in fewer executions, each paying its start once, and no
        agent is given more than would end it after the others (see :meth:`_serve`). ``mix``:
        the work the pool holds."""
        with self._lock:
            for i, appetite in enumerate(self._appetites):
                want = max(int(target * appetite) if scaled else target, 1)
                agent = self._askers[i]
                if pooled >= (want if self._running(agent) else max(want // SERVED_AT, 1)):
                    del self._appetites[i], self._askers[i]
                    return want if agent is None else self._serve(agent, want, pooled, mix, grow=scaled)
            return None

    def _serve(self, agent: int, want: int, pooled: int, mix: Work, grow: bool) -> int:
        """The chunk ``agent`` gets: ``want``, or (``grow``) its end-together share of
        ``pooled``, up to SERVED_AT times ``want``: for an agent running nothing, that share
        even where smaller than ``want`` (the scan may end now, and the rest of the pool is
        the other agents' share), for a queue slot the larger of the two. The agent is then
        taken as busy with what it gets, for the next agent asking before the next check and
        for the last shares. Where the share was not the cap, a chunk as large as ``want``
        took the whole pool as the bench's scan was ending, and its fast agent ended 7 s after
        the others."""
        reach = self._reach_now()
        rated = _rated(reach, mix, pooled)
        if grow:
            share = end_together(pooled, rated)[agent]
            want = min(max(want, share) if self._running(agent) else max(share, 1), want * SERVED_AT)
        speed, busy = reach[agent]
        reach[agent] = (speed, busy + min(want, pooled) / max(rated[agent][0], 1e-9))
        self._reach, self._reach_at = tuple(reach), self._clock()
        return want

    def _reach_now(self) -> list[tuple[Speed, float]]:
        """``reach`` with the time since the check taken off each agent's work."""
        gone = self._clock() - self._reach_at
        return [(speed, max(busy - gone, 0.0)) for speed, busy in self._reach]

    def shares(self, total: int, mix: Work, pieces: int, target: int, grown: bool) -> list[int]:
        """How to cut the last ``total`` (holding ``mix``): each agent's share so that the
        agents end together (:func:`end_together`), or ``pieces`` even shares of at most
        ``target`` when no check has measured the agents. A share is cut in even pieces no
        larger than its agent's full chunk (``target`` times its rate over the mean), or
        (``grown``: chunks follow the agents) than SERVED_AT of them, as a chunk grows
        during the scan, so that a failed piece is retried in bounded time. With one full
        chunk as the bound, the bench's last shares came in five pieces for four agents: the
        watcher handed the fifth to the fast agent, which ended 9 s after the rest."""
        with self._lock:
            reach = _rated(self._reach_now(), mix, total)
        if reach:
            mean = statistics.fmean(max(r, 1e-9) for r, _ in reach)
            chunks = SERVED_AT if grown else 1
            split = [(s, max(round(target * chunks * max(r, 1e-9) / mean), 1)) for s, (r, _) in
                     zip(end_together(total, reach), reach, strict=True)]
        else:
            split = [(s, max(target, 1)) for s in _even(total, max(pieces, 1))]
        return [part for share, most in split if share > 0 for part in _even(share, -(-share // most))]


def _rated(reach: Sequence[tuple[Speed, float]], mix: Work, cost: float) -> list[tuple[float, float]]:
    """Each agent's rate in cost units on work of ``mix`` (weighing ``cost``), and its busy time."""
    return [(speed.rate(mix, cost), busy) for speed, busy in reach]


def _even(total: int, pieces: int) -> list[int]:
    return [total // pieces + (1 if i < total % pieces else 0) for i in range(pieces)]


def end_together(total: int, reach: Sequence[tuple[float, float]]) -> list[int]:
    """Each agent's share of ``total`` (in its order) so that all that take a share end at once:
    agent i, at ``rate`` cost per second and busy for ``busy`` seconds, takes
    (T - busy) x rate for the one T that makes the shares add up to ``total``; an agent busy
    past T takes nothing."""
    order = sorted(range(len(reach)), key=lambda i: reach[i][1])
    rates = [max(r, 1e-9) for r, _ in reach]
    cost = speed = 0.0
    end = 0.0
    for k, i in enumerate(order):
        cost += rates[i] * reach[i][1]
        speed += rates[i]
        end = (total + cost) / speed
        if k + 1 == len(order) or end <= reach[order[k + 1]][1]:
            break
    raw = [max(end - busy, 0.0) * rates[i] for i, (_, busy) in enumerate(reach)]
    shares = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: shares[i] - raw[i])[:max(total - sum(shares), 0)]:
        shares[i] += 1
    if sum(shares) > total:  # float error past the total: off the largest share
        largest = max(range(len(shares)), key=lambda i: shares[i])
        shares[largest] -= sum(shares) - total
    return shares


class StreamPacker:
    """Keeps closed units in a pool, oldest first, and packs a chunk of them when it is wanted:

    * for an agent left idle with nothing to take (``Demand.take``), as soon as the pool holds
      a quarter of the chunk that agent wants: its even share of the work (``Sizing.target``)
      scaled by its rate, so a slow agent takes a small chunk and a fast one a large chunk;
    * with --chunk_size, a chunk of that size as soon as the pool holds one;
    * when the scan ends, the rest in shares that end the agents together (``Demand.shares``).

    Nothing else packs: while every agent is busy, units wait, so the chunks still to come can
    be sized for the agent that takes them and the last ones cut to end the agents together.
    A pooled unit costs a small record (the subtree's are freed), and it is journaled as it
    closes, so a kill loses none. Units are packed as they came, first in first out, so
    chunks follow the walk. Which units share a chunk never touches what each selects: any
    packing is exactly-once."""

    def __init__(self, sizing: Sizing, on_chunk: Emit, first_index: int, emitted: int,
                 seen: Callable[[], int], tail_pieces: int, demand: Demand) -> None:
        self.sizing = sizing
        self.demand = demand
        self.on_chunk = on_chunk
        self.index = first_index
        self.emitted = emitted
        self.seen = seen
        self.tail_pieces = max(tail_pieces, 1)
        self.limits = Limits(sizing.filter_limit, sizing.item_cap)
        self.pool: deque[Unit] = deque()
        self.cost = 0
        self.work = Work()
        """What the pool holds."""

    def add(self, unit: Unit) -> None:
        self.keep(unit)
        self.serve()

    def keep(self, unit: Unit) -> None:
        """Pool ``unit`` without packing (a resumed run's pool goes back as it was)."""
        self.pool.append(unit)
        self.cost += unit.cost
        self.work += Work(unit.bytes, unit.items)

    def serve(self) -> None:
        """Pack what the agents asking want; with --chunk_size, every full chunk."""
        while self.pool:
            target = self.sizing.target(self.seen(), self.emitted)
            want = self.demand.take(target, self.cost, self.work, scaled=self.sizing.fixed_target is None)
            if want is not None:
                self._out(take_oldest(self.pool, want, self.limits))
            elif self.sizing.fixed_target is not None and self.cost >= target:
                self._out(take_oldest(self.pool, target, self.limits))
            else:
                return

    def finish(self) -> None:
        """The last units, in shares that end the agents together (even, where none is measured)."""
        if not self.pool:
            return
        units = list(self.pool)
        self.pool.clear()
        target = self.sizing.target(self.seen(), self.emitted)
        shares = self.demand.shares(self.cost, self.work, self.tail_pieces, target,
                                    grown=self.sizing.fixed_target is None)[:len(units)] or [0]
        for piece in sorted(pack_shares(units, shares, self.limits), key=lambda p: -sum(u.cost for u in p)):
            self._out(piece)

    def _out(self, units: list[Unit]) -> None:
        """A chunk of ``units``, taken from the pool."""
        chunk = Chunk(tuple(sorted(units, key=lambda u: u.pattern)), index=self.index)
        self.index += 1
        self.emitted += chunk.cost
        self.cost -= chunk.cost
        self.work += Work(-chunk.bytes, -chunk.items)
        self.on_chunk(chunk)


def walk_and_plan(mount: str, roots: tuple[str, ...], sizing: Sizing, on_chunk: Emit, on_cut: Journal, *,
                  agents: int, workers: int | None = None, progress: Progress | None = None,
                  resume: Resume | None = None, demand: Demand | None = None,
                  on_unit: Callable[[Unit], None] = lambda unit: None) -> tuple[Tree, LivePlanner]:
    """Walk the roots and plan as the walk goes: each chunk goes to ``on_chunk`` as it closes,
    each cut to ``on_cut`` before any of its units. Returns the scan's facts (for warnings)
    and the planner (what it held whole, what appeared late)."""
    mount = os.path.realpath(mount)
    kept = tuple(r for r in roots if not scan.datasync_skips(r))
    planner = LivePlanner(kept, sizing, lambda rel: scan.loose_entries(mount, rel),
                          lambda rel: not scan.has_entries(mount, rel), on_chunk, on_cut,
                          lone_roots=scan.lone_roots(mount, kept), tail_pieces=agents, resume=resume,
                          demand=demand, on_unit=on_unit)
    tree = scan.scan_live(mount, roots, planner.listed, planner.covered, workers, progress,
                          scan.InParts(planner.opened, planner.part_listed, planner.listing_done))
    planner.finish()
    tree.lone_roots = planner.lone_roots
    return tree, planner
