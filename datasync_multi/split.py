"""Cut the scanned tree into units that include filters alone can select, exactly once.

A unit is one include pattern:

``/d/``        a whole directory (``/*`` for the whole location): the trailing ``/`` keeps
               it from reaching a sibling ``/d2`` even if DataSync reads ``/d`` as a
               string prefix;
``/d/p*``      a prefix group: every entry of ``/d`` whose name starts with ``p``, loose
               files, links and subdirectories alike, with all below them.

A directory heavier than the threshold is cut by the names of its entries, walking the
trie of those names. A prefix whose entries fit the threshold becomes a group. A heavier
prefix splits by its next character; a subdirectory named exactly by the prefix then
becomes a unit of its own (``/d/p/``), cut again if it is still too heavy. So no group's
prefix starts another unit's name, no two groups overlap, and every entry falls in exactly
one unit, under every reading of the open filter rules (see ``filters.py``).

Three things stop a prefix from splitting further, and its group then stays whole:
a file, link or empty directory named exactly by the prefix (a pattern for it would also
reach the longer names: ``u1`` holds ``u10`` under string-prefix matching), a name that
continues with a character no pattern can carry (``|``, ``*``, ``\\``, a line break,
bytes that are not UTF-8), and a bucket of names the bounded name count could not
resolve. Where that stops the directory itself from splitting, it stays one unit. Each
such unit above the threshold is reported, with the names responsible.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate

from .filters import WHOLE_LOCATION, is_safe_char
from .names import BUCKET, NameCount
from .scan import Tree, join

DIR, GROUP = "dir", "group"

Cost = Callable[[int, int], int]
"""cost(bytes, items): the weight of a unit in the balance."""


@dataclass(frozen=True, slots=True)
class Unit:
    pattern: str
    """The one include pattern that selects this unit and nothing else."""
    kind: str
    """DIR or GROUP."""
    bytes: int
    files: int
    """Files, links and other non-directories."""
    dirs: int
    cost: int

    @property
    def items(self) -> int:
        """What DataSync lists for this unit (files and directories)."""
        return self.files + self.dirs


@dataclass
class Split:
    units: list[Unit] = field(default_factory=list)
    held: list[tuple[Unit, str]] = field(default_factory=list)
    """Units above the threshold that could not be cut further, with the reason."""
    bare_empty_roots: list[str] = field(default_factory=list)
    """Empty manifest directories a sibling's name extends: selected by '/d/', which a
    string-prefix reading may not take to mean the folder itself."""


def dir_pattern(rel: str, tree: Tree) -> str:
    if not rel:
        return WHOLE_LOCATION
    d = tree.dirs[rel]
    if d.files == 0 and d.dirs == 1 and rel in tree.lone_roots:
        return "/" + rel  # an empty directory: only the exact name selects it under every reading
    return "/" + rel + "/"


def split_tree(tree: Tree, cost: Cost, threshold: int, *, max_depth: int | None,
               item_cap: int | None, name_target: int) -> Split:
    """Units for the whole tree, each at most ``threshold`` in cost (and ``item_cap`` in
    items) where the names allow. ``name_target`` is how finely flat directories are
    counted by name: the finest threshold the caller will try."""
    out = Split()
    rules = _Rules(tree, cost, threshold, max_depth, item_cap, name_target)
    roots = frozenset(tree.roots)
    stack = [(r, 0) for r in reversed(tree.roots)]
    while stack:
        rel, level = stack.pop()
        d = tree.dirs[rel]
        whole = Unit(dir_pattern(rel, tree), DIR, d.bytes, d.files, d.dirs, cost(d.bytes, d.files + d.dirs))
        if not rules.too_heavy(d.bytes, d.files + d.dirs, threshold) or d.dirs == 1 and not d.files:
            out.units.append(whole)
            if whole.pattern.endswith("/") and d.files == 0 and d.dirs == 1 and rel in roots:
                out.bare_empty_roots.append(rel)
            continue
        cut = rules.cut_directory(rel, level)
        if isinstance(cut, str):
            out.units.append(whole)
            out.held.append((whole, cut))
            continue
        groups, subdirs = cut
        for prefix, members, why in groups:
            nbytes, files, dirs = (sum(m.bytes for m in members), sum(m.files for m in members),
                                   sum(m.dirs for m in members))
            unit = Unit("/" + join(rel, prefix) + "*", GROUP, nbytes, files, dirs, cost(nbytes, files + dirs))
            out.units.append(unit)
            if why:
                out.held.append((unit, why))
        stack += [(join(rel, name), level + 1) for name in reversed(subdirs)]
    return out


@dataclass(frozen=True)
class _Rules:
    """The rules of one cut, apart from the walk that applies them: when a directory is too
    heavy to be one unit, and how it is cut (or why it stays whole)."""

    tree: Tree
    cost: Cost
    threshold: int
    max_depth: int | None
    item_cap: int | None
    name_target: int

    def too_heavy(self, nbytes: int, items: int, limit: int) -> bool:
        return self.cost(nbytes, items) > limit or (self.item_cap is not None and items > self.item_cap)

    def cut_directory(self, rel: str, level: int) -> tuple[Groups, list[str]] | str:
        """The directory's groups and the subdirectories that become units, or why it stays whole."""
        d = self.tree.dirs[rel]
        if d.note:
            return f"could not be scanned ({d.note})"
        if self.max_depth is not None and level >= self.max_depth:
            return f"at --max_depth {self.max_depth}"
        cost, item_cap = self.cost, self.item_cap
        loose = self.tree.loose_names(rel, lambda c: max(cost(c.bytes, c.files) / self.name_target,
                                                         c.files / item_cap if item_cap else 0.0))
        if loose is None:
            return "could not be read again to count its names"
        return cut_by_name(_items(self.tree, rel, loose, cost), self.threshold, self.too_heavy)


@dataclass(frozen=True, slots=True)
class Item:
    """One entry of a directory being cut, or a bucket of its loose names."""

    key: str
    """The entry's name, or a prefix + BUCKET."""
    splittable: bool
    """A readable, non-empty subdirectory: it may become a unit of its own."""
    bytes: int
    files: int
    dirs: int
    cost: int


def _items(tree: Tree, rel: str, loose: list[NameCount], cost: Cost) -> list[Item]:
    items = [Item(c.key, False, c.bytes, c.files, 0, cost(c.bytes, c.files)) for c in loose]
    skip = len(rel) + 1 if rel else 0
    for child in tree.dirs[rel].children:
        c = tree.dirs[child]
        items.append(Item(child[skip:], not c.note and (c.files > 0 or c.dirs > 1), c.bytes, c.files, c.dirs,
                           cost(c.bytes, c.files + c.dirs)))
    items.sort(key=lambda it: it.key)
    return items


Groups = list[tuple[str, list[Item], str]]
"""(prefix, its entries, why it is above the threshold or '')."""


def cut_by_name(items: list[Item], limit: int,
                 too_heavy: Callable[[int, int, int], bool]) -> tuple[Groups, list[str]] | str:
    """Prefix groups and subdirectories covering ``items`` once, or why the directory cannot be cut."""
    cut = _ByName(items, limit, too_heavy)
    failure = cut.walk("", 0, len(items))
    return failure if failure else (cut.groups, cut.subdirs)


class _ByName:
    """One directory's entries, sorted by name, being cut: a walk down the trie of their names
    that keeps a prefix as a group where it is light enough or can be cut no further."""

    def __init__(self, items: list[Item], limit: int, too_heavy: Callable[[int, int, int], bool]) -> None:
        self.items = items
        self.keys = [it.key for it in items]
        self.nbytes = [0, *accumulate(it.bytes for it in items)]
        self.counts = [0, *accumulate(it.files + it.dirs for it in items)]
        self.limit = limit
        self.too_heavy = too_heavy
        self.groups: Groups = []
        self.subdirs: list[str] = []

    def heavy(self, lo: int, hi: int) -> bool:
        return self.too_heavy(self.nbytes[hi] - self.nbytes[lo], self.counts[hi] - self.counts[lo], self.limit)

    def walk(self, prefix: str, lo: int, hi: int) -> str | None:
        """Keep the entries lo:hi (whose names start with ``prefix``) as a group, or go down into
        them; why the directory cannot be cut at all, if it cannot."""
        keys, n = self.keys, len(prefix)
        i, own_dir, blocker = _named_exactly(self.items, prefix, lo, hi)
        branches, unsafe = _branches(keys, n, i, hi)
        if prefix and (blocker or unsafe or not self.heavy(lo, hi)):
            why = ""
            if self.heavy(lo, hi) and self.counts[hi] - self.counts[lo] > 1:  # a lone file is as fine as a cut gets
                why = _why_held(prefix, blocker, unsafe)
            self.groups.append((prefix, self.items[lo:hi], why))
            return None
        if not prefix and unsafe:
            return f"the name {shown(unsafe)} starts with a character no filter can carry"
        if not prefix and blocker:
            return "its names could not be counted finely enough to cut it"
        if own_dir is not None:
            self.subdirs.append(own_dir)
        if i == lo and len(branches) == 1 and not unsafe:  # one path down: jump to where it forks
            stem = os.path.commonprefix([keys[lo], keys[hi - 1]]).rstrip(BUCKET)
            safe = next((m for m in range(n, len(stem)) if not is_safe_char(stem[m])), len(stem))
            if safe > n + 1:
                return self.walk(stem[:safe], lo, hi)
        for ch, j, k in branches:
            self.walk(prefix + ch, j, k)
        return None


def _named_exactly(items: list[Item], prefix: str, lo: int, hi: int) -> tuple[int, str | None, Item | None]:
    """The entries from ``lo`` named exactly by ``prefix`` (the name itself, or the bucket of
    its loose names): where they end, the subdirectory among them, and an entry that stops
    the prefix from splitting further."""
    i, own_dir, blocker = lo, None, None
    while i < hi and items[i].key in (prefix, prefix + BUCKET):
        if items[i].splittable:
            own_dir = items[i].key
        else:
            blocker = items[i]
        i += 1
    return i, own_dir, blocker


def _branches(keys: list[str], n: int, lo: int, hi: int) -> tuple[list[tuple[str, int, int]], str | None]:
    """``keys[lo:hi]`` (each longer than ``n``) by their character at ``n``: (character, start,
    end) for each, and the first key whose character there no filter can carry."""
    branches, unsafe = [], None
    j = lo
    while j < hi:
        ch = keys[j][n]
        # The branch of ch ends at the first key whose next character is above ch: found by
        # that character itself, since U+10FFFF, the last code point, has none above it.
        k = bisect.bisect_right(keys, ch, j, hi, key=lambda key: key[n])
        branches.append((ch, j, k))
        if unsafe is None and not is_safe_char(ch):
            unsafe = keys[j]
        j = k
    return branches, unsafe


def _why_held(prefix: str, blocker: Item | None, unsafe: str | None) -> str:
    """Why the group of ``prefix``, heavier than the threshold, is cut no further."""
    if blocker and blocker.key.endswith(BUCKET):
        return f"the names starting with {shown(prefix)} could not be counted more finely"
    if blocker:
        return (f"the entry {shown(prefix)} is a file, link or empty directory, and a pattern naming it "
                f"would also reach the longer names that start with it")
    if unsafe:
        return f"the name {shown(unsafe)} continues with a character no filter can carry"
    return ""


def shown(name: str) -> str:
    """A name for messages, escaped where it holds line breaks or bytes that are not UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return ascii(name)
    return repr(name) if name.isprintable() else ascii(name)
