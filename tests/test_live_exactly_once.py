"""Live mode's streamed plans are exactly-once under every reading of DataSync's filter rules,
whatever order the scan lists directories in, after a kill at any point of the journal and a
resume, and within the filter limits; and the real walk closes subtrees early, so chunks go
out long before the scan ends.

The planner (``live.LivePlanner``) is fed here as ``live.walk_and_plan`` feeds it, but in an
order the test chooses: each directory's record is read by the scan itself (``scan.scan_live``
with a feed that keeps them), then handed over in any order that lists a parent before its
children, skipping what the planner says is covered, as the walk does.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import os
import random
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from io import StringIO

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from datasync_multi import scan
from datasync_multi.assign import Speed, Work
from datasync_multi.filters import MAX_FILTER_BYTES, READINGS, filter_value, is_nameable, value_bytes
from datasync_multi.journal import Journal
from datasync_multi.live import (
    UNITS_PER_CHUNK,
    CutRecord,
    Demand,
    LivePlanner,
    Resume,
    Sizing,
    StreamPacker,
    end_together,
    walk_and_plan,
)
from datasync_multi.manifest import read_manifest
from datasync_multi.plan import Chunk, unit_json
from datasync_multi.scan import Dir, Progress
from datasync_multi.split import DIR, Unit
from profiles import examples
from trees import (
    FAMILY,
    FILE,
    FLAT,
    HEAVY,
    NAME,
    NFC_E,
    NFD_E,
    TOP,
    Selection,
    build,
    entries,
    selection_faults,
    within_limit,
)

Event = CutRecord | Chunk | Unit
"""A journal line the planner makes."""
ORDERS = ("random", "depth-first", "breadth-first", "heavy-last", "heaviest-deferred")
"""How the directories are handed to the planner (see :func:`_priority`)."""
WALK = "walk"
"""The real threaded walk (``walk_and_plan``) instead of an order of the test's."""
SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]
MEMORY = "/dev/shm"
"""Where trees are built when the machine has it: a file system in memory, where making a
file takes microseconds instead of a disk's milliseconds."""

# -- shapes -------------------------------------------------------------------------

ODD_NAME = st.sampled_from(["100%", "%", "%20", "a+b", "+", "c++", "with space", " lead", "trail ", "x %2F y",
                            NFC_E, NFD_E, NFC_E + "1", NFD_E + "1", "e", "e1", "caf" + NFC_E, "caf" + NFD_E])
LIVE_NAME = st.one_of(NAME, ODD_NAME)
EMPTY = st.just(("dir", {}))
ODD_FLAT = st.tuples(st.just("odd-flat"), st.tuples(st.integers(800, 3000),
                                                    st.sampled_from(["%", "+", " ", NFC_E, NFD_E])))
"""Thousands of files in one directory, each named by an odd character and a counter."""


def _live_dirs(children):
    return st.dictionaries(LIVE_NAME, children, max_size=5).map(lambda d: ("dir", d))


LIVE_TREE = st.recursive(st.one_of(FILE, HEAVY, EMPTY), _live_dirs, max_leaves=30)
PREFIXED = st.dictionaries(
    st.sampled_from(["u", "u1", "u10", "u100", "u11", "u1 ", "u1%", "u1+", "u2", NFC_E, NFC_E + "1", NFD_E]),
    st.one_of(FILE, EMPTY, st.dictionaries(st.sampled_from(["in", "in2", "f"]), st.one_of(HEAVY, FILE, EMPTY),
                                           min_size=1, max_size=3).map(lambda d: ("dir", d))),
    min_size=2, max_size=10).map(lambda d: ("dir", d))
"""Siblings named as prefixes of each other: files, empty folders and heavy folders alike."""
CHAIN = st.tuples(st.integers(5, 40), st.sampled_from(["a", "d+", "n %", NFC_E, NFD_E]),
                  st.dictionaries(LIVE_NAME, st.one_of(FILE, HEAVY, EMPTY), max_size=4))
"""A chain of directories (depth, name, what the deepest holds)."""
SHAPES = st.dictionaries(LIVE_NAME, st.one_of(LIVE_TREE, FLAT, ODD_FLAT, FAMILY, PREFIXED,
                                              CHAIN.map(lambda c: _chain(*c))), min_size=1, max_size=5)


def _chain(length: int, name: str, leaves: dict) -> tuple:
    """``length`` levels of ``name``, each with a file beside the next level, most with an empty
    'u1', and every other one with a file 'u10' that extends its name."""
    spec: tuple = ("dir", dict(leaves))
    for level in range(length):
        beside = {f"f{level}": ("file", 100 * level), **({"u1": ("dir", {})} if level % 3 else {}),
                  **({"u10": ("file", 10)} if level % 2 else {})}
        spec = ("dir", {name: spec, **beside})
    return spec


def _expand(spec: dict) -> dict:
    """``spec`` with the shapes ``trees.build`` does not know made plain directories."""
    out = {}
    for name, (kind, value) in spec.items():
        if kind == "odd-flat":
            count, odd = value
            out[name] = ("dir", {f"{odd}{i}": ("file", i % 89) for i in range(count)})
        elif kind == "dir":
            out[name] = ("dir", _expand(value))
        else:
            out[name] = (kind, value)
    return out


# -- the share on disk --------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    """A tree on disk, with room beside it for its manifest and journal."""

    base: str

    @property
    def mount(self) -> str:
        return os.path.join(self.base, "share")

    @property
    def journal(self) -> str:
        return os.path.join(self.base, "journal")


@contextlib.contextmanager
def scratch(spec: dict) -> Iterator[Share]:
    """A :class:`Share` built from ``spec`` (in memory where the machine allows), removed after."""
    fast = os.path.isdir(MEMORY) and os.access(MEMORY, os.W_OK | os.X_OK)
    with tempfile.TemporaryDirectory(dir=MEMORY if fast else None) as base:
        share = Share(base)
        os.mkdir(share.mount)
        build(share.mount, _expand(spec))
        yield share


def write_manifest(share: Share, spec: dict, data) -> tuple[str, ...]:
    """The whole location, or a few of the tree's directories (top-level or one below)."""
    candidates = sorted(n for n, (kind, _) in spec.items() if kind in ("dir", "flat") and is_nameable(n))
    candidates += sorted(f"{n}/{m}" for n, (kind, value) in spec.items() if kind == "dir" and is_nameable(n)
                         for m, (inner, _) in value.items() if inner == "dir" and is_nameable(m))
    chosen = ["/"]
    if candidates and data.draw(st.booleans(), label="subset"):
        chosen = data.draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=4, unique=True),
                           label="manifest")
    path = os.path.join(share.base, "manifest")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join("/" + c.lstrip("/") for c in chosen) + "\n")
    return read_manifest(path, share.mount).entries


# -- driving the planner ------------------------------------------------------------


Listing = tuple[Dir, list[str], "scan.Loose | None"]


def listings(mount: str, roots: tuple[str, ...]) -> dict[str, Listing]:
    """Every directory live mode would be handed, as the scan reads it."""
    out: dict[str, Listing] = {}

    def keep(rel: str, d: Dir, far: list[str], loose: scan.Loose | None) -> None:
        out[rel] = (d, list(far), loose)

    scan.scan_live(mount, roots, keep, lambda rel: False, workers=1)
    return out


def subtree_costs(listed: dict[str, Listing], per_file_cost: int) -> dict[str, int]:
    """Each directory's subtree cost (bytes and items), from the listings alone."""
    costs: dict[str, int] = {}
    for rel in sorted(listed, key=scan.depth, reverse=True):
        d = listed[rel][0]
        costs[rel] = d.bytes + (d.own_files + 1) * per_file_cost + sum(costs.get(c, 0) for c in d.children)
    return costs


@dataclass
class Run:
    """One planning run: what it journaled and emitted, in order, and its planner."""

    events: list[Event] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    """The directories in the order they were listed (not kept by the real walk)."""
    planner: LivePlanner | None = None

    @property
    def chunks(self) -> list[Chunk]:
        return [c for c in self.events if isinstance(c, Chunk)]

    @property
    def cuts(self) -> list[CutRecord]:
        return [c for c in self.events if isinstance(c, CutRecord)]


def _priority(order: str, rel: str, rng: random.Random, costs: dict[str, int], late: set[str], count: int):
    """The key a waiting directory is listed by (smallest first):

    * random: any directory whose parent is listed;
    * depth-first: the walk's own order (``scan.preorder``);
    * breadth-first: in the order they were found;
    * heavy-last: the lightest subtree first, so the heaviest ones close last;
    * heaviest-deferred: at random, but the few directories holding the most bytes of their
      own only once nothing else is left, so that their ancestors, listed early, close last."""
    if order == "depth-first":
        return (scan.preorder(rel),)
    if order == "breadth-first":
        return (count,)
    if order == "heavy-last":
        return (costs[rel], rng.random())
    if order == "heaviest-deferred":
        return (rel in late, rng.random())
    return (rng.random(),)


class Checks:
    """What the dispatcher's checks would ask of the scan, drawn at random: after a listing or a
    chunk, that share of the time, a new :class:`Demand` (zero to three idle agents of drawn
    rates, and drawn reaches, by which chunks grow with the pool and the last ones are cut, or none)."""

    def __init__(self, seed: int, idle: float) -> None:
        self.rng = random.Random(seed)
        self.idle = idle
        self.demand = Demand()
        self.again()

    def again(self) -> None:
        if self.rng.random() >= self.idle:
            return
        rng = self.rng
        appetites = sorted((rng.choice([0.25, 0.5, 1.0, 2.0, 3.0]) for _ in range(rng.randint(0, 3))), reverse=True)
        reach = tuple((Speed(rng.choice([0.25, 1.0, 2.0]) / 1000, rng.choice([0.0, 1.0, 10.0])),
                       rng.choice([0.0, 1.0, 10.0, 100.0])) for _ in range(rng.randint(0, 4)))
        askers = tuple(rng.randrange(len(reach)) for _ in appetites) if reach else ()
        self.demand.set(tuple(appetites), reach, askers)


def plan_in_order(mount: str, roots: tuple[str, ...], sizing: Sizing, order: str, seed: int,
                  resume: Resume | None = None, idle: float = 0.3) -> Run:
    """Plan ``roots`` of ``mount`` by feeding a :class:`LivePlanner`, built as ``walk_and_plan``
    builds it, each directory's listing in ``order`` (or by ``walk_and_plan`` itself, for WALK);
    checks (:class:`Checks`) ask for chunks that share of the time."""
    run = Run()
    checks = Checks(seed, idle)
    if order == WALK:
        return walk_run(run, checks, mount, roots, sizing, seed, resume)
    mount = os.path.realpath(mount)
    kept = tuple(r for r in roots if not scan.datasync_skips(r))
    listed = listings(mount, kept)
    costs = subtree_costs(listed, sizing.per_file_cost)
    rng = random.Random(seed)
    late = set(sorted(listed, key=lambda r: (-listed[r][0].bytes, r))[:rng.randint(1, 3)])
    planner = run.planner = LivePlanner(kept, sizing, lambda rel: scan.loose_entries(mount, rel),
                                        lambda rel: not scan.has_entries(mount, rel), run.events.append,
                                        run.events.append, lone_roots=scan.lone_roots(mount, kept),
                                        tail_pieces=sizing.agents, resume=resume, demand=checks.demand,
                                        on_unit=run.events.append)
    in_parts = InPartsFeed(planner, mount, rng, rng.choice([0.0, 0.5, 1.0]))
    waiting: list[tuple[tuple, int, str, tuple[str, list[str]] | None]] = []
    pushed = itertools.count()

    def found(rel: str, part: tuple[str, list[str]] | None = None) -> None:
        if part is not None or not planner.covered(rel):  # as the walk skips what journaled chunks carry
            key = _priority(order, rel, rng, costs, late, len(run.order) + len(waiting))
            heapq.heappush(waiting, (key, next(pushed), rel, part))

    for root in kept:
        found(root)
    while waiting:
        _, _, rel, part = heapq.heappop(waiting)
        d, far, loose = listed[rel]
        if part is not None:
            in_parts.measure(rel, *part)
        else:
            run.order.append(rel)
            for p in in_parts.offer(rel, d, far) or []:
                found(rel, p)
            if rel not in in_parts.left:
                # a record of its own, as each read of the scan gives; its loose entries handed over
                # with it, or (as for a directory past LOOSE_HANDED_OVER) read again when it is cut
                planner.listed(rel, replace(d), far, loose if rng.random() < 0.5 else None)
            for child in d.children:
                found(child)
        checks.again()
    planner.finish()
    return run


def walk_run(run: Run, checks: Checks, mount: str, roots: tuple[str, ...], sizing: Sizing, seed: int,
             resume: Resume | None) -> Run:
    """Plan by ``walk_and_plan`` itself, on one to four threads; at times every directory with a
    loose entry is offered in parts, not only the large ones, and the scout makes each such
    directory it finds urgent; a part is measured in slices of one or three entries."""
    def event(e: CutRecord | Chunk) -> None:
        run.events.append(e)
        checks.again()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scan, "PARTS_MIN", (1, 2, scan.PARTS_MIN)[seed % 3])
        mp.setattr(scan, "SCOUT_MIN", (1, 2, scan.SCOUT_MIN)[seed % 3])
        mp.setattr(scan, "SLICE", (1, 3, scan.SLICE)[seed // 3 % 3])
        _, run.planner = walk_and_plan(mount, roots, sizing, event, event, agents=sizing.agents,
                                       workers=1 + seed % 4, resume=resume, demand=checks.demand,
                                       on_unit=run.events.append)
    return run


class InPartsFeed:
    """Offers the planner a directory in parts (``LivePlanner.opened``), as the scan does for a
    large one, that share of the time, with a guess of an entry's size off by a drawn factor;
    each part it takes is then measured (``part_listed``) when the order pops it, in any order
    among the other directories and parts, its subdirectories possibly listed before; the last
    part ends the listing (``listing_done``)."""

    def __init__(self, planner: LivePlanner, mount: str, rng: random.Random, share: float) -> None:
        self.planner, self.mount, self.rng, self.share = planner, mount, rng, share
        self.left: dict[str, int] = {}
        self.measured: dict[str, Dir] = {}
        self.sizes: dict[str, dict[str, int]] = {}

    def offer(self, rel: str, d: Dir, far: list[str]) -> list[tuple[str, list[str]]] | None:
        if not d.own_files or self.rng.random() >= self.share:
            return None
        sizes = dict(scan.loose_entries(self.mount, rel))
        names = sorted(sizes)
        guess = int(d.bytes // d.own_files * self.rng.choice([0, 0.1, 1, 10]))
        parts = self.planner.opened(rel, Dir(own_files=len(names), children=d.children), far, names, guess)
        if parts is not None:
            assert sorted(n for _, part in parts for n in part) == names, rel
            self.left[rel] = len(parts)
            self.measured[rel] = Dir(children=d.children)
            self.sizes[rel] = sizes
        return parts

    def measure(self, rel: str, key: str, names: list[str]) -> None:
        nbytes = sum(self.sizes[rel][n] for n in names)
        self.planner.part_listed(rel, key, nbytes, len(names))
        total = self.measured[rel]
        total.own_files, total.bytes = total.own_files + len(names), total.bytes + nbytes
        self.left[rel] -= 1
        if not self.left[rel]:
            self.planner.listing_done(rel, total)


def journal(path: str, events: list[Event]) -> None:
    """Append ``events`` to the journal at ``path``, as a live run does."""
    j = Journal.read(path)
    j.mend()
    for e in events:
        if isinstance(e, CutRecord):
            j.cut(e)
        elif isinstance(e, Unit):
            j.unit(e)
        else:
            j.chunk(e)


def tear(path: str, e: Event) -> None:
    """What a kill in the middle of appending ``e`` leaves: half its line."""
    record = {"kind": "cut", **e.to_json()} if isinstance(e, CutRecord) else \
        {"kind": "unit", "unit": unit_json(e)} if isinstance(e, Unit) else {"kind": "chunk", "chunk": e.to_json()}
    line = json.dumps(record, ensure_ascii=False)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line[:len(line) // 2])


# -- what must hold -----------------------------------------------------------------


def bare_empty_roots(mount: str, roots: tuple[str, ...]) -> set[str]:
    """Empty manifest directories a sibling's name extends, found apart from the planner:
    no include selects the folder itself under the string-prefix reading."""
    out = set()
    for rel in roots:
        if rel and not os.listdir(os.path.join(mount, rel)):
            parent, _, name = rel.rpartition("/")
            if any(s != name and s.startswith(name) for s in os.listdir(os.path.join(mount, parent))):
                out.add("/" + rel)
    return out


def check_chunks(chunks: list[Chunk], mount: str, roots: tuple[str, ...]) -> None:
    """Indices unique; includes only, each a pattern we write; exactly once under every
    reading, nothing outside the roots; and under every reading, what each chunk claims
    (files, bytes) is what its includes select within DataSync's path limit."""
    assert len({c.index for c in chunks}) == len(chunks), sorted(c.index for c in chunks)
    everything = entries(mount)
    tasks = [(f"chunk {c.index}", list(c.includes)) for c in chunks]
    scoped = ["/" + r if r else "" for r in roots]
    bare = bare_empty_roots(mount, roots)
    for c in chunks:
        assert c.units, c
        for pattern in c.includes:
            assert pattern.startswith("/") and "*" not in pattern[:-1], pattern
            assert all(is_nameable(n) for n in pattern.rstrip("*").strip("/").split("/") if n), pattern
    for reading in READINGS:
        faults = [f for f in selection_faults(tasks, everything, scoped, reading)
                  if reading.matching != "prefix" or not any(f"{b!r} (empty-dir) selected by []" in f for b in bare)]
        assert not faults, faults[:10]
        selected = {name: [0, 0] for name, _ in tasks}
        selection = Selection(tasks, reading)
        for path, kind, size in everything:
            if kind in ("file", "link") and within_limit(path):
                for owner in selection.owners(path):
                    selected[owner][0] += 1
                    selected[owner][1] += size
        assert {f"chunk {c.index}": [c.files, c.bytes] for c in chunks} == selected, str(reading)


def check_journal(events: list[Event]) -> None:
    """Each directory is cut once, and its cut is journaled before any unit inside it; each
    unit is journaled once, before the chunk that carries it, and no chunk carries it twice."""
    cut_at: dict[str, int] = {}
    unit_at: dict[str, int] = {}
    packed: set[str] = set()
    for i, e in enumerate(events):
        if isinstance(e, CutRecord):
            assert e.rel not in cut_at, f"/{e.rel} cut twice"
            cut_at[e.rel] = i
        if isinstance(e, Unit):
            assert e.pattern not in unit_at, f"{e.pattern} journaled twice"
            unit_at[e.pattern] = i
        if isinstance(e, Chunk):
            assert all(unit_at.get(p, i) < i for p in e.includes), f"chunk {e.index} before its units' lines"
            assert not packed & set(e.includes)
            packed |= set(e.includes)
    for i, e in enumerate(events):
        if isinstance(e, (Chunk, Unit)):
            for pattern in e.includes if isinstance(e, Chunk) else (e.pattern,):
                for rel, at in cut_at.items():
                    inside = not rel or pattern.startswith("/" + rel + "/")
                    assert not inside or at < i, f"{pattern} went out before /{rel} was journaled as cut"


def check_limits(chunks: list[Chunk], sizing: Sizing, held: list[tuple[Unit, str]]) -> None:
    """A chunk's include value fits the filter limit and its items the cap, unless the chunk is
    one unit that is itself over them (nothing can carry that unit in less); a unit over the
    cap is one the planner reports as held (``held``: what it could not cut, and why)."""
    for c in chunks:
        over = sizing.item_cap is not None and c.items > sizing.item_cap
        if len(c.units) > 1:
            assert value_bytes(filter_value(c.includes)) <= sizing.filter_limit, (sizing.filter_limit, c.includes)
            assert not over, (sizing.item_cap, c.items, c.includes)
        elif over:
            assert c.units[0] in [unit for unit, _ in held], (sizing.item_cap, c.units[0], held)


def draw_sizing(data, mount: str, roots: tuple[str, ...], *, small_limits: bool = False) -> Sizing:
    """A unit threshold below the weight of one directory drawn from the tree (a half, a
    quarter or a sixteenth of it), so that cuts fall at every depth; chunks guided by an
    estimate or fixed; per file costs from none to heavy; at times a depth limit, a small
    filter limit and an item cap."""
    per_file_cost = data.draw(st.sampled_from([0, 1, 100, 1000]), label="per_file_cost")
    costs = subtree_costs(listings(mount, roots), per_file_cost)
    aim = data.draw(st.sampled_from(sorted(costs, key=lambda r: (-costs[r], r))), label="aim") if costs else ""
    threshold = max(costs.get(aim, 0) // data.draw(st.sampled_from([2, 4, 16]), label="below"), 1)
    limits = {
        "max_depth": data.draw(st.sampled_from([None, None, None, 0, 1, 3]), label="max_depth"),
        "item_cap": data.draw(st.sampled_from([None, 3, 20] if small_limits else [None, None, 50]), label="item_cap"),
        "filter_limit": data.draw(st.sampled_from([40, 80, 300] if small_limits else [MAX_FILTER_BYTES, 60]),
                                  label="filter_limit"),
    }
    agents = data.draw(st.sampled_from([1, 2, 5, 8]), label="agents")
    k = data.draw(st.sampled_from([1, 4]), label="chunks per agent")
    target = threshold * UNITS_PER_CHUNK
    if data.draw(st.booleans(), label="fixed"):
        return Sizing.fixed(target, agents, k, per_file_cost, **limits)
    return Sizing.guided(target * agents * k, agents, k, per_file_cost, **limits)


def note(run: Run) -> None:
    """What the example exercised, for --hypothesis-show-statistics."""
    event(f"cuts: {min(len(run.cuts), 3)}{'+' if len(run.cuts) >= 3 else ''}")
    event(f"chunks: {min(len(run.chunks), 3)}{'+' if len(run.chunks) >= 3 else ''}")
    event(f"an open subdirectory a sibling's name extends isolated: {any(x for c in run.cuts for _, x in c.isolated)}")


# -- 1. any order of listing --------------------------------------------------------


@settings(max_examples=examples(40), suppress_health_check=SLOW)
@given(spec=TOP, order=st.sampled_from(ORDERS), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_any_listing_order_that_lists_parents_first_plans_exactly_once(spec, order, seed, data):
    with scratch(spec) as share:
        roots = write_manifest(share, spec, data)
        sizing = draw_sizing(data, share.mount, roots)
        run = plan_in_order(share.mount, roots, sizing, order, seed)
        note(run)
        check_chunks(run.chunks, share.mount, roots)
        check_journal(run.events)
        check_limits(run.chunks, sizing, run.planner.held)
        assert [c.index for c in run.chunks] == list(range(len(run.chunks)))
        assert {"/" + r for r in run.planner.bare_empty_roots} == bare_empty_roots(share.mount, roots)


@pytest.mark.parametrize("order", ORDERS)
def test_heavy_directories_that_close_last_are_cut_around_while_open(order):
    """Subdirectories named as prefixes of each other and of loose files, some heavy: whatever
    closes last, their parent is cut by name around them, each piece selected once."""
    spec = {"top": ("dir", {
        "u1": ("dir", {"small": ("file", 2_000), "deeper": ("dir", {"f": ("file", 3_000)})}),
        "u10": ("file", 10), "u100": ("dir", {}), "u2": ("dir", {"g": ("file", 80_000)}),
        "w": ("dir", {f"x{i}": ("file", 3_000) for i in range(30)}),
        NFC_E: ("dir", {"h": ("file", 70_000)}), NFD_E: ("file", 5_000), "a b%+": ("dir", {"i": ("file", 40_000)}),
    }), "other": ("dir", {"z": ("file", 50_000)})}
    with scratch(spec) as share:
        run = plan_in_order(share.mount, ("",), Sizing.guided(400_000, 2, 4, 0), order, 7)
        check_chunks(run.chunks, share.mount, ("",))
    check_journal(run.events)
    assert "top" in {c.rel for c in run.cuts} and len(run.chunks) > 1
    [top] = [c for c in run.cuts if c.rel == "top"]
    if order != "heavy-last":  # u1 was still open when /top was cut: a unit of its own, though u10 extends its name
        assert ("u1", True) in top.isolated


@pytest.mark.parametrize("order", ORDERS)
def test_a_group_held_heavy_says_why_the_cut_could_not_split_it(order):
    """A file ``u`` beside directories ``u1`` and ``u10``: no pattern can name the file without
    reaching the others, so ``/u*`` stays one heavy group, and the plan says that is why."""
    spec = {"u": ("file", 10), "u1": ("dir", {f"f{i}": ("file", 30_000) for i in range(20)}),
            "u10": ("dir", {f"g{i}": ("file", 30_000) for i in range(20)}), "v": ("file", 50_000)}
    with scratch(spec) as share:
        run = plan_in_order(share.mount, ("",), Sizing.guided(400_000, 2, 4, 0), order, 3)
        check_chunks(run.chunks, share.mount, ("",))
    [(unit, why)] = run.planner.held
    assert unit.pattern == "/u*" and "the entry 'u' is a file" in why


# -- 2. shapes ----------------------------------------------------------------------


@settings(max_examples=examples(30), suppress_health_check=SLOW)
@given(spec=SHAPES, order=st.sampled_from(ORDERS), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_flat_directories_prefix_families_chains_and_odd_names_plan_exactly_once(spec, order, seed, data):
    with scratch(spec) as share:
        roots = write_manifest(share, spec, data)
        sizing = draw_sizing(data, share.mount, roots)
        run = plan_in_order(share.mount, roots, sizing, order, seed)
        note(run)
        check_chunks(run.chunks, share.mount, roots)
        check_journal(run.events)
        check_limits(run.chunks, sizing, run.planner.held)


@settings(max_examples=examples(30), suppress_health_check=SLOW)
@given(spec=st.one_of(TOP, SHAPES), keep=st.sampled_from((0, 1, 3, scan.LOOSE_HANDED_OVER)), data=st.data())
def test_a_listing_hands_over_the_loose_entries_a_second_read_finds(spec, keep, data):
    """What the planner cuts a directory by comes with its listing (up to LOOSE_HANDED_OVER
    entries) and is what reading it again gives; past that, nothing comes and it is read again."""
    with pytest.MonkeyPatch.context() as mp, scratch(spec) as share:
        mp.setattr(scan, "LOOSE_HANDED_OVER", keep)
        roots = write_manifest(share, spec, data)
        mount = os.path.realpath(share.mount)
        for rel, (d, _, loose) in listings(mount, tuple(r for r in roots if not scan.datasync_skips(r))).items():
            if keep and d.own_files <= keep:
                assert loose is not None and sorted(loose) == sorted(scan.loose_entries(mount, rel)), rel
                assert len(loose) == d.own_files and sum(size for _, size in loose) == d.bytes
            else:
                assert loose is None, rel


@pytest.mark.parametrize("style", ["seq", "odd"])
def test_a_directory_of_more_names_than_the_count_keeps_is_cut_by_prefix_exactly_once(style):
    """Past the name histogram's budget (4,096 keys) names are counted in buckets and read
    again; beside them, subdirectories whose names the loose files extend."""
    names = [f"m{i}" for i in range(1, 6001)] if style == "seq" else \
        [f"{'%+ '[i % 3]}{NFC_E if i % 2 else NFD_E}{i}" for i in range(6000)]
    flat = {name: ("file", i % 200) for i, name in enumerate(names)}
    flat.update({"m": ("dir", {"in": ("file", 5)}), "m6": ("dir", {"in": ("file", 50_000)}), "m7x": ("dir", {})})
    with scratch({"flat": ("dir", flat)}) as share:
        run = plan_in_order(share.mount, ("flat",), Sizing.guided(700_000, 4, 4, 10), "random", 3)
        check_chunks(run.chunks, share.mount, ("flat",))
    check_journal(run.events)
    assert len([u for c in run.chunks for u in c.units if u.kind == "group"]) > 10  # cut by prefix, not whole


# -- 3. resume ----------------------------------------------------------------------


@settings(max_examples=examples(40), suppress_health_check=SLOW)
@given(spec=st.one_of(TOP, SHAPES), orders=st.lists(st.sampled_from((*ORDERS, WALK)), min_size=2, max_size=3),
       seed=st.integers(0, 2**32 - 1), data=st.data())
def test_a_run_killed_anywhere_resumes_into_an_exactly_once_plan(spec, orders, seed, data):
    """Killed after any line of its journal, or in the middle of one (and again, at times,
    during the resumed run), each run in an order of its own: the journal's chunks are one
    exactly-once plan once a run ends. Each resumed run reads the journal back, as a rerun does."""
    with scratch(spec) as share:
        roots = write_manifest(share, spec, data)
        Journal(share.journal).begin("run", roots, draw_sizing(data, share.mount, roots), "drawn")
        kept: list[Event] = []
        held: list[tuple[Unit, str]] = []
        for attempt, order in enumerate(orders):
            back = Journal.read(share.journal, units=True)
            assert back.sizing is not None
            resume = back.resume() if attempt else None
            run = plan_in_order(share.mount, roots, back.sizing, order, seed + attempt, resume)
            note(run)
            assert run.planner.late == 0
            held += run.planner.held
            if resume is not None:
                assert not set(back.cuts) & {c.rel for c in run.cuts}  # a journaled cut is never taken again
                assert all(c.index >= resume.next_index for c in run.chunks)
            # drawn in fixed ranges: a walk on several threads (WALK) need not journal as many
            # events when Hypothesis replays the example, and a draw must not depend on that
            at = data.draw(st.integers(0, 1000), label=f"kill {attempt}, in thousandths of the run")
            torn = data.draw(st.booleans(), label="torn")
            kill = len(run.events) * at // 1000 if attempt < len(orders) - 1 else len(run.events)
            journal(share.journal, run.events[:kill])
            kept += run.events[:kill]
            if kill < len(run.events) and torn:
                tear(share.journal, run.events[kill])
        done = Journal.read(share.journal)
        assert [c.to_json() for c in done.chunks] == [c.to_json() for c in kept if isinstance(c, Chunk)]
        check_chunks(done.chunks, share.mount, roots)
        check_limits(done.chunks, done.sizing, held)
        check_journal(kept)
        if orders[-1] != WALK:
            assert {"/" + r for r in run.planner.bare_empty_roots} <= bare_empty_roots(share.mount, roots)


# -- 4. limits ----------------------------------------------------------------------


@settings(max_examples=examples(30), suppress_health_check=SLOW)
@given(spec=st.one_of(TOP, SHAPES), order=st.sampled_from(ORDERS), seed=st.integers(0, 2**32 - 1),
       data=st.data())
def test_every_chunk_fits_a_small_filter_limit_and_item_cap(spec, order, seed, data):
    with scratch(spec) as share:
        roots = write_manifest(share, spec, data)
        sizing = draw_sizing(data, share.mount, roots, small_limits=True)
        run = plan_in_order(share.mount, roots, sizing, order, seed)
        note(run)
        check_limits(run.chunks, sizing, run.planner.held)
        check_chunks(run.chunks, share.mount, roots)


def test_a_group_over_the_item_cap_that_cannot_be_cut_is_reported():
    """The file 'u1' stops its group from splitting: /d/u1* lists eleven items, over a cap of
    five though light in cost. It goes out alone, and the plan says why."""
    spec = {"d": ("dir", {"u1": ("file", 10), **{f"u1{i}": ("file", 10) for i in range(10)},
                          "v": ("dir", {"f": ("file", 5000)}), "w": ("file", 5000)})}
    with scratch(spec) as share:
        sizing = Sizing.fixed(4000, 2, 1, 0, item_cap=5)
        run = plan_in_order(share.mount, ("",), sizing, "depth-first", 0)
        check_chunks(run.chunks, share.mount, ("",))
    assert ("/d/u1*",) in [c.includes for c in run.chunks]
    assert [(u.pattern, why) for u, why in run.planner.held] == [
        ("/d/u1*", "it lists 11 items, above the 5 one execution may list, and the entry 'u1' is a file, link "
                   "or empty directory, and a pattern naming it would also reach the longer names that start with it")]
    check_limits(run.chunks, sizing, run.planner.held)


def test_the_last_units_are_shared_among_the_agents():
    """Twelve directories of 1,000 bytes against a chunk target of 16,000: nothing reaches it
    before the scan ends, and the units left then go out as one even chunk per agent."""
    spec = {f"d{i:02d}": ("dir", {"f": ("file", 1000)}) for i in range(12)}
    with scratch(spec) as share:
        run = plan_in_order(share.mount, ("",), Sizing.fixed(16_000, 4, 1, 0), "depth-first", 0, idle=0)
        check_chunks(run.chunks, share.mount, ("",))
    assert [c.cost for c in run.chunks] == [3000] * 4


def rated(*reach: tuple[float, float]) -> tuple[tuple[Speed, float], ...]:
    """(rate, busy) pairs as a check's reach, each agent at ``rate`` bytes a second (entries free)."""
    return tuple((Speed.of_cost(rate, 0), busy) for rate, busy in reach)


def unit_dirs(count: int, cost: int = 1000, start: int = 0) -> list[Unit]:
    return [Unit(f"/d{i:03d}/", DIR, cost, 0, 1, cost) for i in range(start, start + count)]


def test_an_idle_agent_gets_a_chunk_sized_by_its_rate_once_the_pool_holds_a_quarter_of_it():
    """Units of 1,000 against an even target of 8,000 (two agents, K = 4): nothing goes out
    while no agent asks; a fast agent (twice the mean) asks for 16,000 and takes the pool as
    soon as it holds 4,000; a slow one (half the mean) asks for 4,000 and takes 1,000; while
    no agent asks, units wait, however many; an agent at the mean rate takes the oldest 8,000;
    at the end the rest is cut so that both agents end together."""
    chunks: list[Chunk] = []
    demand = Demand()
    packer = StreamPacker(Sizing.guided(64_000, 2, 4, 0), chunks.append, 0, 0, lambda: 0, 2, demand)
    units = unit_dirs(80)
    for unit in units[:3]:
        packer.add(unit)
    assert chunks == []
    demand.set((2.0, 0.5), ())
    packer.add(units[3])
    assert [c.cost for c in chunks] == [4000]  # 16,000 wanted, a quarter of it pooled: all of it
    packer.add(units[4])
    assert [c.cost for c in chunks] == [4000, 1000]  # the slow agent's quarter of 4,000
    for unit in units[5:38]:
        packer.add(unit)
    assert [c.cost for c in chunks] == [4000, 1000] and packer.cost == 33_000
    demand.set((1.0,), ())
    packer.serve()  # as after the next listing
    assert [c.cost for c in chunks] == [4000, 1000, 8000]
    demand.set((), rated((4000.0, 0.0), (1000.0, 2.0)))  # a fast agent idle, a slow one busy 2 s more
    packer.finish()
    last = sorted((c.cost for c in chunks[3:]), reverse=True)
    assert sum(last) == 25_000 and len(last) == 2  # each share whole: under four full chunks (12,800 and 3,200)
    fast_end, slow_end = last[0] / 4000, 2 + last[1] / 1000
    assert abs(fast_end - slow_end) <= 1000 / 1000  # within one unit on the slower agent
    order = [u.pattern for c in chunks for u in c.units]
    assert sorted(order) == [u.pattern for u in units[:38]] and len(set(order)) == 38
    assert [u.pattern for c in chunks[:3] for u in c.units] == [u.pattern for u in units[:13]]  # oldest first


def test_a_resumed_runs_pool_goes_back_with_its_bytes_and_entries_for_the_shares():
    """The units a killed run left pooled go back into the pool counted as any other: their
    cost, and their bytes and entries, on which each agent's rate is taken when the pool is
    shared (missing, the pool's mix went negative once a resumed unit was packed)."""
    pooled = [Unit(f"/d{i}/", DIR, 1000 * i, i, 1, 1000 * i + (i + 1) * 10) for i in range(1, 4)]
    planner = LivePlanner(("",), Sizing.guided(64_000, 2, 4, 10), lambda rel: iter(()), lambda rel: False,
                          lambda chunk: None, lambda cut: None, lone_roots=frozenset(),
                          resume=Resume(pooled=pooled))
    assert list(planner.packer.pool) == pooled
    assert planner.packer.cost == sum(u.cost for u in pooled)
    assert planner.packer.work == Work(6000, 9)


def test_a_slow_idle_agent_is_not_kept_waiting_while_the_pool_fills_for_a_faster_ones_larger_chunk():
    """Two agents idle, the fast one first: a pool of a quarter of the slow one's chunk but
    not of the fast one's goes to the slow one at once; the fast one's turn waits for its own
    quarter."""
    chunks: list[Chunk] = []
    demand = Demand()
    packer = StreamPacker(Sizing.guided(64_000, 2, 4, 0), chunks.append, 0, 0, lambda: 0, 2, demand)
    units = unit_dirs(8)
    demand.set((2.0, 0.5), ())
    packer.add(units[0])
    assert [c.cost for c in chunks] == [1000]  # the slow agent's quarter of 4,000
    for unit in units[1:4]:
        packer.add(unit)
    assert [c.cost for c in chunks] == [1000]  # 3,000 pooled: under a quarter of the fast one's 16,000
    packer.add(units[4])
    assert [c.cost for c in chunks] == [1000, 4000]
    packer.add(units[5])
    assert [c.cost for c in chunks] == [1000, 4000] and packer.cost == 1000  # no agent asks any more


def test_an_idle_agent_takes_its_share_of_a_backlog_as_if_the_scan_ended_now_up_to_four_of_its_chunks():
    """Agents at 3,000 and 1,000 a second (mean 2,000), a target of 8,000: the fast one's chunk
    is 12,000, the slow one's 4,000. With 40,000 pooled and the slow one busy 10 s more at the
    check, 2 s ago, the agents would end together 12 s from now had the scan ended: the fast
    one takes 36,000. The slow one asks for a chunk to queue behind its running one: it waits
    for its whole chunk (4,000) to be pooled, and, counted busy with its 8 s left, takes its
    share of 6,000 (ending with the fast one at 12.5 s). Pooled past four of its chunks, an
    agent takes four."""
    now = [100.0]
    demand = Demand((1.5, 0.5), rated((3000.0, 0.0), (1000.0, 10.0)), (0, 1), clock=lambda: now[0])
    now[0] += 2.0
    assert demand.take(8000, 40_000, Work(40_000), scaled=True) == 36_000  # (40,000 + 8 s x 1,000) / 4,000 = 12 s
    assert demand.take(8000, 2_500, Work(2_500), scaled=True) is None
    assert demand.take(8000, 6_000, Work(6_000), scaled=True) == 4_500
    demand.set((1.5,), rated((3000.0, 0.0), (1000.0, 0.0)), (0,))
    assert demand.take(8000, 10**6, Work(10**6), scaled=True) == 4 * 12_000
    demand.set((1.5,), rated((3000.0, 0.0)), ())  # a check that does not say who asks: its chunk only
    assert demand.take(8000, 10**6, Work(10**6), scaled=True) == 12_000


def test_the_last_shares_end_the_agents_together_on_the_mix_the_pool_holds():
    """Two idle agents alike on entries (10 ms each), the first four times faster on bytes; an
    entry weighs 10 cost units. A pool of entries only is shared evenly, one of bytes only 4:1,
    and a mixed one in between: the agents end together on each (one rate per agent in cost
    units would share all three 4:1, and the fast agent would end the entries 2.5 times later)."""
    reach = ((Speed(1 / 4000, 0.01), 0.0), (Speed(1 / 1000, 0.01), 0.0))
    entries, nbytes, mixed = Work(0, 1000), Work(40_000, 0), Work(20_000, 1000)
    assert Demand((), reach).shares(10_000, entries, 2, 10**6, grown=False) == [5000, 5000]
    assert Demand((), reach).shares(40_000, nbytes, 2, 10**6, grown=False) == [32_000, 8000]
    # all of it: 15 s against 30 s
    assert Demand((), reach).shares(30_000, mixed, 2, 10**6, grown=False) == [20_000, 10_000]
    # served during the scan, each is counted busy at its rate on the pool's mix
    demand = Demand((2.0,), reach, (0,), clock=lambda: 0.0)
    assert demand.take(2000, 10_000, entries, scaled=True) == 5000  # its end-together share
    # busy 5 s already: the other takes all the rest
    assert demand.shares(5000, Work(0, 500), 2, 10**6, grown=False) == [5000]


def test_an_agent_served_is_counted_busy_with_what_it_got_when_the_last_shares_are_cut():
    """Two agents at 1,000 a second, the first with 1 s of work left, asking for a chunk to
    queue: it takes its whole chunk, 8,000, though its end-together share of the 10,000
    pooled was 4,500; the last 12,000 are then cut so that both end together, the first
    counted busy 9 s: it takes 1,500, the other 10,500 (in pieces of its full chunk or less)."""
    demand = Demand((1.0, 1.0), rated((1000.0, 1.0), (1000.0, 0.0)), (0, 1), clock=lambda: 0.0)
    assert demand.take(8000, 10_000, Work(10_000), scaled=True) == 8000
    assert demand.shares(12_000, Work(12_000), 2, 8000, grown=False) == [1500, 5250, 5250]


def test_an_agent_running_nothing_takes_no_more_than_its_end_together_share_however_large_its_chunk():
    """Two idle agents at 1,000 a second, each wanting 8,000, and 10,000 pooled: had the scan
    ended now, 5,000 each would end them together, so the first takes 5,000, not 8,000 (a
    chunk as large as the target took the whole pool as the bench's scan ended, and its
    agent ended 7 s after the rest); the second then takes the other 5,000."""
    demand = Demand((1.0, 1.0), rated((1000.0, 0.0), (1000.0, 0.0)), (0, 1), clock=lambda: 0.0)
    assert demand.take(8000, 10_000, Work(10_000), scaled=True) == 5000
    assert demand.take(8000, 5000, Work(5000), scaled=True) == 5000


def test_only_an_agent_running_nothing_makes_the_scheduler_skip_the_check_gap():
    now = [10.0]
    demand = Demand((1.0,), rated((1000.0, 5.0)), (0,), clock=lambda: now[0])
    assert not demand.asking()  # a queue slot: it loses nothing by waiting the gap
    demand.set((1.0,), rated((1000.0, 5.0)), (0,), at=4.0)  # measured 6 s ago, by a check that took that long
    assert demand.asking()
    assert Demand((1.0,), ()).asking() and not Demand().asking()


def test_an_agent_asking_for_a_chunk_to_queue_gets_it_once_the_pool_holds_all_of_it():
    """An agent running something asks for a chunk to queue (a free queue slot): a quarter of
    its chunk pooled is not enough, since it pays a start for each chunk; once its running
    work is over by the check's measure, a quarter is, as for any idle agent."""
    now = [0.0]
    demand = Demand((1.0,), rated((2000.0, 5.0)), (0,), clock=lambda: now[0])
    assert demand.take(8000, 7999, Work(7999), scaled=True) is None
    assert demand.take(8000, 8000, Work(8000), scaled=True) == 8000
    demand.set((1.0,), rated((2000.0, 5.0)), (0,))
    now[0] += 5.0
    # its running chunk should have ended: a quarter will do, and as the one agent it takes all the pool holds
    assert demand.take(8000, 2000, Work(2000), scaled=True) == 2000


def test_a_fixed_chunk_size_is_what_every_agent_gets_whatever_its_rate_and_goes_out_as_it_fills():
    chunks: list[Chunk] = []
    packer = StreamPacker(Sizing.fixed(4000, 2, 1, 0), chunks.append, 0, 0, lambda: 0, 2,
                          Demand((3.0, 0.25), ()))
    for unit in unit_dirs(11):
        packer.add(unit)
    assert [c.cost for c in chunks] == [1000, 1000, 4000, 4000]  # a quarter of 4,000 each (scaled: 3,000 first)
    packer.finish()
    assert [c.cost for c in chunks] == [1000, 1000, 4000, 4000, 1000]


speeds = st.builds(Speed, st.floats(1e-4, 1), st.floats(0, 10))
"""An agent's seconds per byte and per entry."""


@settings(max_examples=examples(200))
@given(costs=st.lists(st.integers(0, 5000), max_size=60), steps=st.data(), fixed=st.booleans(),
       agents=st.integers(1, 4), cap=st.none() | st.integers(1, 20), limit=st.sampled_from([40, 200, 10**6]))
def test_the_pool_packs_each_unit_once_oldest_first_when_asked_and_within_limits(costs, steps, fixed, agents, cap,
                                                                                 limit):
    units = [Unit(f"/u{i:03d}/", DIR, c, min(i % 7, (cap or 7) - 1), 1, c) for i, c in enumerate(costs)]
    sizing = Sizing.fixed(3000, agents, 4, 0, item_cap=cap, filter_limit=limit) if fixed else \
        Sizing.guided(20_000, agents, 4, 0, item_cap=cap, filter_limit=limit)
    chunks: list[Chunk] = []
    demand = Demand()
    packer = StreamPacker(sizing, chunks.append, 0, 0, lambda: 0, agents, demand)
    asked = 0
    for unit in units:
        if steps.draw(st.booleans(), label="a check asks"):
            appetites = steps.draw(st.lists(st.sampled_from([0.25, 1.0, 2.5]), max_size=3))
            reach = steps.draw(st.lists(st.tuples(speeds, st.floats(0, 100)), max_size=4), label="reach")
            askers = tuple(steps.draw(st.integers(0, len(reach) - 1)) for _ in appetites) if reach else ()
            demand.set(tuple(sorted(appetites, reverse=True)), tuple(reach), askers)
            asked += len(appetites)
        packer.add(unit)
        if fixed:  # chunks of the size asked go out as they fill
            assert packer.cost < sizing.target(0, packer.emitted)
        else:  # only an agent's ask packs a chunk
            assert len(chunks) <= asked
    sealed = len(chunks)
    reach = steps.draw(st.lists(st.tuples(speeds, st.floats(0, 100)), max_size=4), label="reach")
    demand.set((), tuple(reach))
    packer.finish()
    packed = [u.pattern for c in chunks for u in c.units]
    assert sorted(packed) == sorted(u.pattern for u in units) and len(set(packed)) == len(units)
    before = [u.pattern for c in chunks[:sealed] for u in sorted(c.units, key=lambda u: u.pattern)]
    assert before == [u.pattern for u in units[:len(before)]]  # packed as they came, until the seal
    for c in chunks:
        assert len(c.units) == 1 or (value_bytes(filter_value(c.includes)) <= limit
                                     and (cap is None or c.files + c.dirs <= cap))


@settings(max_examples=examples(300))
@given(total=st.integers(0, 10**9), reach=st.lists(st.tuples(st.floats(1e-2, 1e6), st.floats(0, 1e4)), min_size=1,
                                                  max_size=6))
def test_end_together_shares_the_total_so_that_the_agents_that_take_some_end_at_once(total, reach):
    check_end_together(total, reach)


def test_end_together_keeps_to_the_total_when_float_error_passes_it():
    reach = ((1e9, 83604450.0), (1e9, 34285249.0), (1e9, 99560964.0))
    shares = end_together(10**6, reach)
    assert sum(shares) == 10**6 and shares[1] == 10**6


def check_end_together(total: int, reach) -> None:
    shares = end_together(total, reach)
    assert sum(shares) == total and all(s >= 0 for s in shares)
    ends = [busy + share / rate for share, (rate, busy) in zip(shares, reach, strict=True)]
    taking = [i for i, s in enumerate(shares) if s > 0]
    if taking:
        last = max(ends[i] for i in taking)
        slack = max(1 / rate for rate, _ in reach) + 1e-6 * (1 + last)  # rounding to whole cost units
        assert all(abs(ends[i] - last) <= slack for i in taking)
        assert all(reach[i][1] + slack >= last for i in range(len(reach)) if shares[i] == 0)


def test_without_a_measure_of_the_agents_the_last_units_go_out_in_even_pieces():
    assert Demand().shares(10, Work(10), 4, 10, grown=False) == [3, 3, 2, 2]
    busy = Demand((), rated((1.0, 0.0), (1.0, 10.0)))
    assert busy.shares(4, Work(4), 4, 10, grown=False) == [4]  # the busy agent takes nothing


def test_no_last_share_is_larger_than_its_agents_full_chunk_or_four_of_them_where_chunks_grow():
    """A share past its agent's full chunk (the target times its rate over the mean) is cut in
    even pieces under it: a pool left large by busy agents does not end as a few huge chunks.
    Where chunks follow the agents (no --chunk_size), the bound is four full chunks, as for a
    chunk grown during the scan: each agent then takes its share in one piece where it can,
    so that the watcher cannot hand an agent a second piece meant for another."""
    assert Demand().shares(10, Work(10), 2, 2, grown=False) == [2, 2, 1, 2, 2, 1]
    two = Demand((), rated((3000.0, 0.0), (1000.0, 0.0)))
    shares = two.shares(40_000, Work(40_000), 2, 5000, grown=False)  # full chunks 7,500 and 2,500
    assert sum(shares) == 40_000 and shares == [7500] * 4 + [2500] * 4
    assert two.shares(40_000, Work(40_000), 2, 5000, grown=True) == [30_000, 10_000]  # under 30,000 and 10,000
    assert two.shares(80_000, Work(80_000), 2, 5000, grown=True) == [30_000, 30_000, 10_000, 10_000]


# -- 5. the real walk closes subtrees early -----------------------------------------


def similar_subtrees(count: int = 30, fanout: int = 2, depth: int = 4) -> tuple[dict, int]:
    """``count`` identical subtrees, ``fanout`` wide and ``depth`` deep, with two files in each
    leaf; and the number of directories."""
    def subtree(level: int) -> tuple:
        if level == depth:
            return ("dir", {"f1": ("file", 1000), "f2": ("file", 1000)})
        return ("dir", {f"s{i}": subtree(level + 1) for i in range(fanout)})

    return {f"t{i:03d}": subtree(0) for i in range(count)}, 1 + count * sum(fanout ** n for n in range(depth + 1))


FIRST_CHUNK_BY = 1 / 3
"""The share of directories read by the time the first chunk goes out. Each subtree ``t...``
(31 directories) is cut into two units as its last leaf is read, and the first chunk goes out
when the eighth unit would take it past its target: depth first on one thread, once four
subtrees are read, 125 of the 931 directories (13%). With w threads, a thread starts on a
new subtree only when no directory of an earlier one waits, so at most w are open at once:
at most 125 + 30 (w - 1) directories, whatever the scheduling (4 threads: 215; 125 to 211
measured on a loaded machine). A walk by levels reads every directory above the leaves
first: 55 to 58% (measured with ``scan.preorder`` ordering by depth)."""


@pytest.mark.parametrize("workers", [1, 4])
def test_the_walk_emits_the_first_chunk_before_a_third_of_the_tree_is_read(workers):
    spec, dirs = similar_subtrees()
    chunks: list[Chunk] = []
    read_at_first: list[int] = []
    progress = Progress(StringIO())  # counts the directories the walk has read; silent off a terminal

    def on_chunk(chunk: Chunk) -> None:
        if not chunks:
            read_at_first.append(progress.dirs)
        chunks.append(chunk)

    with scratch(spec) as share:
        walk_and_plan(share.mount, ("",), Sizing.guided(30 * 32_000, 2, 4, 0), on_chunk, lambda r: None, agents=2,
                      workers=workers, progress=progress, demand=Demand((1.0, 1.0), ()))
        check_chunks(chunks, share.mount, ("",))
    assert progress.dirs == dirs or workers > 1  # threads count without a lock: exact on one
    assert read_at_first[0] < FIRST_CHUNK_BY * dirs, (read_at_first, dirs)


def test_the_scout_finds_a_large_directory_late_in_the_walks_order_and_the_walk_reads_it_first():
    """A directory of many loose entries under the last top-level directory is found by the
    scout, reading names ahead of the walk; the walk then reads it, and the directory above
    it, before the directories that come first in its depth-first order. The walk's first
    visit waits until the scout has ended, so the order does not depend on which thread
    is faster."""
    spec = {"a": ("dir", {"f": ("file", 1)}), "b": ("dir", {}), "y": ("dir", {"f": ("file", 1)}),
            "z": ("dir", {"big": ("dir", {f"f{i:03d}": ("file", 1) for i in range(scan.SCOUT_MIN)})})}
    visited: list[str] = []
    with scratch(spec) as share:
        scout = scan.Scout(share.mount, os.lstat(share.mount).st_dev, lambda rel: False)

        def visit(rel: str) -> list[scan.WalkItem]:
            if not rel:
                with scout.turn:
                    assert scout.turn.wait_for(lambda: not scout.todo and not scout.looking, timeout=60)
            visited.append(rel)
            with os.scandir(os.path.join(share.mount, rel)) as it:
                return sorted(os.path.join(rel, e.name) if rel else e.name for e in it if e.is_dir())

        scan._ParallelWalk(visit, ("",)).run(1, None, scout)
    assert visited == ["", "z", "z/big", "a", "b", "y"]


@pytest.mark.parametrize("workers", [1, 4])
def test_a_heavy_directory_is_read_in_parts_and_its_groups_go_out_before_its_last_entry_is_measured(workers):
    """A flat directory holding most of the share (its files of unequal sizes, a subdirectory
    beside them) is cut by its names once they are read, and each group goes out as soon as its
    part is measured: the first groups leave while most of the directory is still unmeasured,
    measured on every thread of the walk; the plan is exactly-once, each group claiming what
    its pattern selects."""
    names = [f"f{i:04d}" for i in range(3000)]
    spec = {"big": ("dir", {**{n: ("file", (i * 7919) % 5000) for i, n in enumerate(names)},
                            "f05sub": ("dir", {"in": ("file", 100)})})}
    measured_at_unit: list[tuple[str, int]] = []
    progress = Progress(StringIO())  # counts what the walk has measured; silent off a terminal
    chunks: list[Chunk] = []
    with scratch(spec) as share:
        walk_and_plan(share.mount, ("big",), Sizing.guided(8_000_000, 2, 4, 100), chunks.append, lambda r: None,
                      agents=2, workers=workers, progress=progress, demand=Demand((1.0, 1.0), ()),
                      on_unit=lambda u: measured_at_unit.append((u.pattern, progress.files)))
        check_chunks(chunks, share.mount, ("big",))
    groups = [(p, files) for p, files in measured_at_unit if p.endswith("*")]
    assert len(groups) >= 8, measured_at_unit
    assert groups[0][1] < len(names) // 2, groups[:3]  # out before half the entries were measured
    assert sum(1 for _, files in groups if files < len(names)) >= len(groups) // 2, groups
