"""Generated directory trees for the tests: hypothesis strategies and a builder on disk.

Trees are built and read through directory file descriptors, a name at a time, so a path
may be longer than one system call takes (PATH_MAX): DataSync's own limit is 4,096 bytes.
"""

from __future__ import annotations

import os

from hypothesis import strategies as st

from datasync_multi.scan import DATASYNC_MAX_PATH, NAME_MAX

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
DEEP = st.tuples(st.just("deep"), st.tuples(
    st.integers(DATASYNC_MAX_PATH - 24, DATASYNC_MAX_PATH + 4),
    st.dictionaries(NAME, st.recursive(st.one_of(FILE, HEAVY, LINK, st.just(("dir", {}))), _dirs, max_leaves=12),
                    min_size=1, max_size=5)))
"""A chain of long directory names down to near DataSync's path limit (its path ends at the
number drawn, in bytes of the location path), and a small tree there whose entries fall on
both sides of the limit, heavy enough at times to be cut there by name."""
TOP = st.dictionaries(NAME, st.one_of(TREE, FLAT, FAMILY, DEEP), min_size=1, max_size=6)


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
    ("flat", (count, style)) | ("deep", (path bytes, {...}))) under root."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _build(fd, spec, 0)
    finally:
        os.close(fd)


def _write(fd: int, name: str, size: int, fill: bytes = b"x") -> None:
    out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd)
    try:
        os.write(out, fill * size)
    finally:
        os.close(out)


def _build(fd: int, spec: dict, at: int) -> None:
    """``spec`` in the directory ``fd``, whose location path is ``at`` bytes long."""
    for name, (kind, value) in spec.items():
        if kind == "file":
            _write(fd, name, value)
        elif kind == "link":
            os.symlink(value, name, dir_fd=fd)
        else:
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            try:
                here = at + 1 + len(os.fsencode(name))
                if kind == "flat":
                    for i, leaf in enumerate(flat_names(*value)):
                        _write(inner, leaf, i % 97, b"y")
                elif kind == "deep":
                    bottom, length = chain(inner, here, value[0])
                    try:
                        _build(bottom, value[1], length)
                    finally:
                        os.close(bottom)
                else:
                    _build(inner, value, here)
            finally:
                os.close(inner)


def chain(fd: int, at: int, until: int) -> tuple[int, int]:
    """Nested directories of long names in ``fd`` (a directory whose location path is ``at``
    bytes long) whose deepest one's path is ``until`` bytes long: a new fd of that one (the
    caller closes it) and its length."""
    cur = os.dup(fd)
    try:
        while until - at > 1:
            room = until - at - 1
            name = "c" * (200 if room == NAME_MAX + 1 else min(room, NAME_MAX))  # never leave 1 byte: no name fits
            os.mkdir(name, dir_fd=cur)
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=cur)
            os.close(cur)
            cur, at = inner, at + 1 + len(name)
        return cur, at
    except BaseException:
        os.close(cur)
        raise


def entries(root: str) -> list[tuple[str, str, int]]:
    """Every entry under root as (location path, kind, size), kind being file, link, dir or
    empty-dir."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return _entries(fd, "")
    finally:
        os.close(fd)


def _entries(fd: int, rel: str) -> list[tuple[str, str, int]]:
    out = []
    with os.scandir(fd) as it:
        for e in it:
            child = f"{rel}/{e.name}"
            if e.is_dir(follow_symlinks=False):
                inner_fd = os.open(e.name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
                try:
                    inner = _entries(inner_fd, child)
                finally:
                    os.close(inner_fd)
                out.append((child, "dir" if inner else "empty-dir", 0))
                out += inner
            elif e.is_symlink():
                out.append((child, "link", 0))
            else:
                out.append((child, "file", e.stat(follow_symlinks=False).st_size))
    return out


def within_limit(path: str) -> bool:
    """Whether DataSync can take this location path (bytes, as the scan counts them)."""
    return len(os.fsencode(path)) <= DATASYNC_MAX_PATH


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
        self.lengths = sorted({len(stem) for stem in self.by_stem if len(stem) >= 2})
        """The stems' lengths: a path costs one lookup per length, not one per character."""

    def owners(self, path: str) -> list[str]:
        """The tasks selecting ``path``, each once."""
        out = list(self.everything)
        for end in self.lengths:
            if end > len(path):
                break
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


def straddling_share(root: str) -> None:
    """A share whose paths cross DataSync's limit: /proj near the top, and under /deep a chain
    of long names down to 4,060 bytes of path, holding files and directories on both sides
    of the limit: within it 5 files of 3,800 bytes, past it 3 files of 1,300 bytes and one
    directory."""
    build(root, {"proj": ("dir", {"a": ("file", 1000), "b": ("file", 2000)}),
                 "deep": ("deep", (4060, {
                     "f" * 20: ("file", 100),  # 4,081 bytes of path
                     "g" * 35: ("file", 200),  # 4,096: at the limit, within it
                     "h" * 36: ("file", 300),  # 4,097: past it
                     "sub": ("dir", {"i" * 32: ("file", 400), "j": ("file", 500)}),  # 4,097 and 4,066
                     "k" * 40: ("dir", {"l": ("file", 600)}),  # a directory past the limit, and in it
                 }))})
