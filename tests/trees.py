"""Generated directory trees for the tests: hypothesis strategies and a builder on disk."""

from __future__ import annotations

import os

from hypothesis import strategies as st

TOP_CODE_POINT = "\U0010ffff"
"""The last code point: nothing sorts above it, so no branch of names ends past it."""
EMOJI = "\U0001f600"
"""An astral character: one code point, two UTF-16 units, four UTF-8 bytes."""
NFC_E, NFD_E = "\u00e9", "e\u0301"
"""'é' composed and decomposed: two names to the file system, one to a reader."""

# Names a real share holds: dot-folders, spaces, unicode (the last code point, astral
# characters, one name in both its composed and decomposed forms), names that are string
# prefixes of their siblings (u1, u10, u100), names ending in a space or a dot, and the
# characters no DataSync pattern can carry ('|', '*', '\\', a line break, bytes that are not UTF-8).
NAME = st.one_of(
    st.sampled_from(["a", "ab", "abc", "b", "data", "data2", "data-old", "dir", "dir2", "u1", "u10", "u100",
                     "u1.tar", ".hidden", ".git", "with space", "trailing ", "trailing", "dot.", "naïve", "日本",
                     "x|y", "star*", "back\\slash", "line\nbreak", "a.b", "-dash", "2024",
                     TOP_CODE_POINT, "a" + TOP_CODE_POINT, TOP_CODE_POINT + "z", EMOJI, EMOJI + "\U0001f601",
                     NFC_E, NFD_E, "e", "caf" + NFC_E, "caf" + NFD_E,
                     "latin1-\udce9t\udce9"]),  # bytes that are not UTF-8, as Python names them
    st.text(alphabet=["a", "b", "u", "X", "Y", "Z", "0", "1", "9", ".", "_", "-", " ", "|", "*", NFC_E, "e",
                      "\u0301", EMOJI, TOP_CODE_POINT], min_size=1, max_size=6).filter(lambda s: s not in (".", "..")),
)

FILE = st.tuples(st.just("file"), st.integers(min_value=0, max_value=5000))
LINK = st.tuples(st.just("link"), st.sampled_from(["../a", "target", "/etc/passwd", "."]))
FLAT = st.tuples(st.just("flat"), st.tuples(st.integers(50, 1500),
                                            st.sampled_from(["seq", "padded", "mixed", "unicode"])))
"""A flat directory of many small files, named m1, m2, ... m10 ... (seq: string prefixes of
each other), m00001 ... (padded), both with odd characters (mixed), or starting with the
last code point, an astral character, or 'é' composed or decomposed (unicode)."""


HEAVY = st.tuples(st.just("file"), st.integers(min_value=20_000, max_value=200_000))
FAMILY = st.dictionaries(st.sampled_from(["u1", "u10", "u100", "u11", "u2", "data", "data2", "data-old",
                                          TOP_CODE_POINT, TOP_CODE_POINT + "1", EMOJI, NFC_E, NFD_E, "e"]),
                         st.one_of(HEAVY, FILE, st.just(("dir", {})), st.dictionaries(
                             st.sampled_from(["in", "f", "g"]), st.one_of(HEAVY, FILE), min_size=1, max_size=3
                         ).map(lambda d: ("dir", d))), min_size=2, max_size=8).map(lambda d: ("dir", d))
"""Siblings whose names are string prefixes of each other, some heavy enough to be units of
their own: where a pattern for one would reach another under the string-prefix reading."""


def _dirs(children):
    return st.dictionaries(NAME, children, max_size=5).map(lambda d: ("dir", d))


TREE = st.recursive(st.one_of(FILE, LINK, st.just(("dir", {}))), _dirs, max_leaves=40)
TOP = st.dictionaries(NAME, st.one_of(TREE, FLAT, FAMILY), min_size=1, max_size=6)


def flat_names(count: int, style: str) -> list[str]:
    if style == "seq":
        return [f"m{i}" for i in range(1, count + 1)]
    if style == "padded":
        return [f"m{i:05d}" for i in range(count)]
    if style == "unicode":
        first = [TOP_CODE_POINT, EMOJI, NFC_E, NFD_E, "e", TOP_CODE_POINT + TOP_CODE_POINT]
        return [f"{first[i % 6]}{i}" for i in range(count)]
    odd = ["|", "*", "\\", " ", "."]
    return [f"m{i}{odd[i % 5]}" if i % 7 == 0 else f"n{i:04d}" for i in range(count)]


def build(root: str, spec: dict) -> None:
    """Create ``spec`` (name -> ("file", size) | ("link", target) | ("dir", {...}) |
    ("flat", (count, style))) under root."""
    for name, (kind, value) in spec.items():
        path = os.path.join(root, name)
        if kind == "file":
            with open(path, "wb") as fh:
                fh.write(b"x" * value)
        elif kind == "link":
            os.symlink(value, path)
        elif kind == "flat":
            os.mkdir(path)
            count, style = value
            for i, leaf in enumerate(flat_names(count, style)):
                with open(os.path.join(path, leaf), "wb") as fh:
                    fh.write(b"y" * (i % 97))
        else:
            os.mkdir(path)
            build(path, value)


def entries(root: str, rel: str = "") -> list[tuple[str, str, int]]:
    """Every entry under root as (location path, kind, size), kind being file, link, dir or
    empty-dir."""
    out = []
    with os.scandir(os.path.join(root, rel) if rel else root) as it:
        for e in it:
            child = f"{rel}/{e.name}" if rel else e.name
            if e.is_dir(follow_symlinks=False):
                inner = entries(root, child)
                out.append(("/" + child, "dir" if inner else "empty-dir", 0))
                out += inner
            elif e.is_symlink():
                out.append(("/" + child, "link", 0))
            else:
                out.append(("/" + child, "file", e.stat().st_size))
    return out


class Selection:
    """Which tasks select each path under one reading of the open rules, written apart from
    ``datasync_multi.filters`` (a second implementation) and indexed by pattern, so that
    thousands of paths against thousands of patterns stay fast. A pattern selects a path
    when it matches the path or one of its ancestors (see ``filters.READINGS``)."""

    def __init__(self, tasks: list[tuple[str, list[str]]], reading):
        self.reading = reading
        self.everything: list[str] = []
        self.by_stem: dict[str, list[tuple[str, str]]] = {}
        for name, includes in tasks:
            for pattern in includes:
                if pattern in ("/", "/*"):
                    self.everything.append(name)
                elif pattern.endswith("*"):
                    self.by_stem.setdefault(pattern[:-1], []).append((name, "star"))
                else:
                    self.by_stem.setdefault(pattern, []).append((name, "prefix"))
                    self.by_stem.setdefault(pattern.rstrip("/"), []).append((name, "component"))

    def owners(self, path: str) -> list[str]:
        """The tasks selecting ``path``, each once."""
        out = list(self.everything)
        for end in range(2, len(path) + 1):
            for name, kind in self.by_stem.get(path[:end], ()):
                if kind == "star":
                    # the ancestor that ends at the first '/' after the stem starts with the
                    # stem and holds no '/' past it: '*' crossing '/' or not, it matches
                    out.append(name)
                elif kind == "prefix" and self.reading.matching == "prefix":
                    out.append(name)
                elif kind == "component" and self.reading.matching == "component" \
                        and (end == len(path) or path[end] == "/"):
                    out.append(name)
        return list(dict.fromkeys(out))


def selection_faults(tasks: list[tuple[str, list[str]]], everything: list[tuple[str, str, int]],
                     roots: list[str], reading) -> list[str]:
    """What is wrong with these tasks' includes (name, patterns) under ``reading``: paths in
    scope selected by no task or by two, paths outside it selected at all."""
    selection = Selection(tasks, reading)
    faults = []
    for path, kind, _ in everything:
        if kind == "dir":
            continue  # a non-empty directory arrives with what is inside it
        owners = selection.owners(path)
        in_scope = any(r == "" or path == r or path.startswith(r + "/") for r in roots)
        if in_scope and len(owners) != 1:
            faults.append(f"{reading}: {path!r} ({kind}) selected by {owners}")
        elif not in_scope and owners:
            faults.append(f"{reading}: {path!r} is outside the manifest but selected by {owners}")
    return faults


def skewed_tree(seed: int, top: int = 60, giants: int = 3):
    """An in-memory scanned tree shaped like a real share: a few giant project directories
    several levels deep and a long Pareto tail of small ones, with loose files everywhere."""
    import random

    from datasync_multi.scan import Dir, Tree, aggregate

    rng = random.Random(seed)
    dirs: dict[str, Dir] = {}
    loose: dict[str, list[tuple[str, int]]] = {}

    def make(rel: str, level: int, weight: float) -> None:
        d = dirs[rel] = Dir()
        sizes = [int(weight * 0.05 * rng.random() / 20) for _ in range(rng.randint(1, 40))]
        d.own_files, d.bytes = len(sizes), sum(sizes)
        loose[rel] = [(f"f{j:02d}", s) for j, s in enumerate(sizes)]
        if level < 6 and weight > 1e9:
            for j in range(rng.randint(3, 12)):
                d.children += (f"{rel}/d{j:02d}",)
                make(f"{rel}/d{j:02d}", level + 1, weight * rng.random() / 6)

    root = dirs[""] = Dir()
    for i in range(top):
        root.children += (f"p{i:03d}",)
        make(f"p{i:03d}", 1, 5e12 if i < giants else rng.paretovariate(1.2) * 1e9)
    tree = Tree(dirs, ("",), lambda rel: iter(loose.get(rel, ())),
                largest_file=max(s for files in loose.values() for _, s in files))
    aggregate(tree)
    return tree
