#!/usr/bin/env python3
"""Make a deterministic test tree of sparse files (terabytes of apparent size, no disk).

    python3 bench/gen_tree.py --shape skewed --files 100000 --seed 1 OUTDIR

OUTDIR gets ``tree/`` (the tree to scan) and ``gen.json`` (the parameters and the
totals). ``gen.json`` is written last, as the marker of a finished tree: asked again for
the same parameters, the generator reuses the tree instead of making it anew. A half-made
tree (no marker, or other parameters) is removed and made again.

Shapes
    flat    every file in one huge directory (the mount itself).
    deep    a binary-ish tree about log2(dirs) levels deep, files spread evenly.
    skewed  a random tree (half uniform attachment, which makes it deep, half preferential,
            which makes a few directories wide); files land by Pareto weights, and three
            giant directories several levels down hold about 40% of the bytes (big loose
            files and big subtrees). Sizes are log-normal (median 256 KiB, mean ~6 MiB).

From Python: ``ensure_tree("skewed", 100_000, seed=1)`` returns the tree's path under
``bench/work/`` (gitignored), making it only if it is not there yet.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import time

WORK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "work")
SHAPES = ("flat", "deep", "skewed")
VERSION = 1
"""Bump when the generator changes, so old trees are made again."""
MAX_FILE = 200 * 2**30


def default_dirs(shape: str, files: int) -> int:
    return 1 if shape == "flat" else max(files // 10, 1)


def work_dir(shape: str, files: int, seed: int = 1, dirs: int | None = None, size_scale: float = 1.0) -> str:
    dirs = default_dirs(shape, files) if dirs is None else dirs
    scaled = "" if size_scale == 1 else f"-x{size_scale:g}"
    return os.path.join(WORK, f"{shape}-f{files}-d{dirs}-s{seed}{scaled}")


def ensure_tree(shape: str, files: int, seed: int = 1, dirs: int | None = None,
                outdir: str | None = None, quiet: bool = False, size_scale: float = 1.0) -> str:
    """The path of the tree with these parameters, made now only if it does not exist.
    ``size_scale`` multiplies every file's size (the same tree, smaller files: a share an
    emulated transfer can really copy); such a tree's files take their blocks (fallocate),
    as a real share's do, so that its file system's use (statvfs) is the share's."""
    dirs = default_dirs(shape, files) if dirs is None else dirs
    outdir = outdir or work_dir(shape, files, seed, dirs, size_scale)
    params = {"version": VERSION, "shape": shape, "files": files, "dirs": dirs, "seed": seed}
    if size_scale != 1:
        params["size_scale"] = size_scale
        params["dense"] = True
    marker = os.path.join(outdir, "gen.json")
    tree = os.path.join(outdir, "tree")
    try:
        with open(marker, encoding="utf-8") as fh:
            if json.load(fh)["params"] == params and os.path.isdir(tree):
                return tree
    except (OSError, ValueError, KeyError):
        pass
    if os.path.exists(tree):
        shutil.rmtree(tree)
    if os.path.exists(marker):
        os.remove(marker)
    os.makedirs(tree)
    t0 = time.monotonic()
    layout = build_layout(shape, files, dirs, seed, size_scale)
    totals = materialize(tree, layout, quiet=quiet, dense=size_scale != 1)
    totals["seconds"] = round(time.monotonic() - t0, 1)
    with open(marker + ".tmp", "w", encoding="utf-8") as fh:
        json.dump({"params": params, "totals": totals}, fh, indent=1)
    os.replace(marker + ".tmp", marker)
    if not quiet:
        print(f"made {tree}: {totals}", file=sys.stderr)
    return tree


def totals_of(tree: str) -> dict:
    with open(os.path.join(os.path.dirname(tree), "gen.json"), encoding="utf-8") as fh:
        return json.load(fh)["totals"]


# --- layout: pure, seeded -----------------------------------------------------------------


def _size(rng: random.Random, scale: float = 1.0) -> int:
    # log-normal: median 256 KiB, sigma 2.5 -> mean ~6 MiB, a long tail up to tens of GB
    return min(int(rng.lognormvariate(math.log(256 * 1024 * scale), 2.5)), MAX_FILE)


def build_layout(shape: str, files: int, dirs: int, seed: int, size_scale: float = 1.0):
    """Return (dir_paths, files_per_dir) where files_per_dir[i] = list of sizes (each drawn as
    at size_scale 1, then multiplied: the same random sequence, so the same tree)."""
    rng = random.Random(seed)
    if shape == "flat":
        return [""], [[int(_size(rng) * size_scale) for _ in range(files)]]
    if shape == "deep":
        parents, weights, scales = _deep_dirs(dirs)
    elif shape == "skewed":
        parents, weights, scales = _skewed_dirs(rng, dirs)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    sizes = _file_sizes(rng, files, weights, scales)
    if size_scale != 1:
        sizes = [[int(size * size_scale) for size in d] for d in sizes]
    return _dir_paths(parents), sizes


def _deep_dirs(dirs: int) -> tuple[list[int], list[float], list[float]]:
    """A complete binary tree in BFS order (dir i's parent is (i-1)//2): parents, and even
    weights and size scales."""
    return [-1] + [(i - 1) // 2 for i in range(1, dirs)], [1.0] * dirs, [1.0] * dirs


def _skewed_dirs(rng: random.Random, dirs: int) -> tuple[list[int], list[float], list[float]]:
    """A random tree with three giant directories several levels down: parents, Pareto
    weights (the giants' children heavy too) and size scales."""
    parents = [-1]
    depth = [0]
    pool = [0]  # each dir once, plus once per child: preferential attachment
    for i in range(1, dirs):
        p = rng.choice(pool) if rng.random() < 0.5 else rng.randrange(i)
        parents.append(p)
        depth.append(depth[p] + 1)
        pool.append(p)
        pool.append(i)
    weights = [rng.paretovariate(1.1) for _ in range(dirs)]
    scales = [1.0] * dirs
    # three giant directories several levels down: many files and large ones
    deepish = [i for i in range(dirs) if 3 <= depth[i] <= 5] or list(range(1, dirs)) or [0]
    giants = rng.sample(deepish, min(3, len(deepish)))
    total_w = sum(weights)
    for g, share, scale in zip(giants, (0.12, 0.08, 0.05), (8.0, 6.0, 4.0), strict=False):
        weights[g] = total_w * share
        scales[g] = scale
    # and make the giants' subtrees heavy too: their children get big weights
    for i in range(dirs):
        if parents[i] in giants:
            weights[i] *= 20
    return parents, weights, scales


def _dir_paths(parents: list[int]) -> list[str]:
    """Names unique per parent, deterministic; a parent's path comes before its children's."""
    paths = [""]
    nchild = [0] * len(parents)
    for i in range(1, len(parents)):
        p = parents[i]
        nchild[p] += 1
        name = f"d{nchild[p]:04d}"
        paths.append(f"{paths[p]}/{name}" if paths[p] else name)
    return paths


def _file_sizes(rng: random.Random, files: int, weights: list[float], scales: list[float]) -> list[list[int]]:
    """The first ``dirs`` files one per directory when there are enough (no empty dirs unless
    files < dirs), the rest by weight."""
    dirs = len(weights)
    per_dir: list[list[int]] = [[] for _ in range(dirs)]
    choices = rng.choices(range(dirs), weights=weights, k=max(files - dirs, 0))
    for i in range(min(files, dirs)):
        per_dir[i].append(_size(rng, scales[i]))
    for i in choices:
        per_dir[i].append(_size(rng, scales[i]))
    return per_dir


# --- on disk ------------------------------------------------------------------------------


def materialize(tree: str, layout, quiet: bool = False, dense: bool = False) -> dict:
    paths, per_dir = layout
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    nbytes = nfiles = 0
    largest = 0
    t0 = last = time.monotonic()
    for rel in paths[1:]:  # parents come before children
        os.mkdir(os.path.join(tree, rel))
    for rel, sizes in zip(paths, per_dir, strict=False):
        base = os.path.join(tree, rel) if rel else tree
        for k, size in enumerate(sizes):
            fd = os.open(f"{base}/f{k:05d}.dat", flags, 0o644)
            if size and dense:
                os.posix_fallocate(fd, 0, size)
            elif size:
                os.ftruncate(fd, size)
            os.close(fd)
        nfiles += len(sizes)
        s = sum(sizes)
        nbytes += s
        if sizes:
            largest = max(largest, max(sizes))
        now = time.monotonic()
        if not quiet and now - last > 5:
            last = now
            print(f"  {nfiles:,} files written ({nfiles / (now - t0):,.0f}/s)", file=sys.stderr)
    return {"files": nfiles, "dirs": len(paths), "bytes": nbytes, "largest_file": largest}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", choices=SHAPES, default="skewed")
    p.add_argument("--files", type=int, default=100_000)
    p.add_argument("--dirs", type=int, help="directories (default files/10; flat: 1)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--size-scale", type=float, default=1.0,
                   help="multiply every file's size (e.g. 0.001 for a share a transfer can copy)")
    p.add_argument("outdir", nargs="?", help="default: bench/work/<shape>-f<files>-d<dirs>-s<seed>")
    a = p.parse_args(argv)
    if a.shape == "flat" and a.dirs not in (None, 1):
        p.error("flat has one directory")
    print(ensure_tree(a.shape, a.files, a.seed, a.dirs, a.outdir, size_scale=a.size_scale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
