"""Generated directory trees for the tests: hypothesis strategies and a builder on disk."""

from __future__ import annotations

import os

from hypothesis import strategies as st

# Names a real share holds: dot-folders, spaces, unicode, and the characters no DataSync
# pattern can carry ('|', '*', '\\'), which the planner must keep inside their parent.
NAME = st.one_of(
    st.sampled_from(["a", "b", "data", "data2", "dir", "dir2", ".hidden", ".git", "with space",
                     "naïve", "日本", "x|y", "star*", "back\\slash", "a.b", "-dash", "2024",
                     "latin1-\udce9t\udce9"]),  # bytes that are not UTF-8, as Python names them
    st.text(alphabet="abcXYZ019._- |*é", min_size=1, max_size=6).filter(lambda s: s not in (".", "..")),
)

FILE = st.tuples(st.just("file"), st.integers(min_value=0, max_value=5000))
LINK = st.tuples(st.just("link"), st.sampled_from(["../a", "target", "/etc/passwd", "."]))


def _dirs(children):
    return st.dictionaries(NAME, children, max_size=5).map(lambda d: ("dir", d))


TREE = st.recursive(st.one_of(FILE, LINK, st.just(("dir", {}))), _dirs, max_leaves=40)
TOP = st.dictionaries(NAME, TREE, min_size=1, max_size=6)


def build(root: str, spec: dict) -> None:
    """Create ``spec`` (name -> ("file", size) | ("link", target) | ("dir", {...})) under root."""
    for name, (kind, value) in spec.items():
        path = os.path.join(root, name)
        if kind == "file":
            with open(path, "wb") as fh:
                fh.write(b"x" * value)
        elif kind == "link":
            os.symlink(value, path)
        else:
            os.mkdir(path)
            build(path, value)


def entries(root: str, rel: str = "") -> list[tuple[str, str]]:
    """Every entry under root as (location path, kind), kind being file, link, dir or empty-dir."""
    out = []
    with os.scandir(os.path.join(root, rel) if rel else root) as it:
        for e in it:
            child = f"{rel}/{e.name}" if rel else e.name
            if e.is_dir(follow_symlinks=False):
                inner = entries(root, child)
                out.append(("/" + child, "dir" if inner else "empty-dir"))
                out += inner
            else:
                out.append(("/" + child, "link" if e.is_symlink() else "file"))
    return out


def skewed_tree(seed: int, top: int = 60, giants: int = 3):
    """An in-memory scanned tree shaped like a real share: a few giant project directories
    several levels deep and a long Pareto tail of small ones, with loose files everywhere."""
    import random

    import heapq

    from datasync_multi.scan import BIG_FILES_KEPT, LARGEST_FILES_KEPT, Dir, Tree, _aggregate

    rng = random.Random(seed)
    dirs: dict[str, Dir] = {}
    every_file: list[tuple[int, str, str]] = []

    def make(rel: str, level: int, weight: float) -> None:
        d = dirs[rel] = Dir()
        sizes = [int(weight * 0.05 * rng.random() / 20) for _ in range(rng.randint(1, 40))]
        d.own_files, d.own_bytes = len(sizes), sum(sizes)
        d.big_files = sorted(((s, f"f{j}") for j, s in enumerate(sizes)), key=lambda x: (-x[0], x[1]))[:BIG_FILES_KEPT]
        every_file.extend((s, rel, f"f{j}") for j, s in enumerate(sizes))
        if level < 6 and weight > 1e9:
            for j in range(rng.randint(3, 12)):
                d.subdirs.append(f"d{j:02d}")
                make(f"{rel}/d{j:02d}", level + 1, weight * rng.random() / 6)

    root = dirs[""] = Dir()
    for i in range(top):
        root.subdirs.append(f"p{i:03d}")
        make(f"p{i:03d}", 1, 5e12 if i < giants else rng.paretovariate(1.2) * 1e9)
    tree = Tree(dirs, ("",), largest=heapq.nlargest(LARGEST_FILES_KEPT, every_file))
    _aggregate(tree)
    return tree
