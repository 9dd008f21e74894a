"""A sample share for the demo and the end-to-end tests, and a way to compare two trees."""

from __future__ import annotations

import hashlib
import os
import random


def build_sample_share(root: str, seed: int = 1, scale: int = 1) -> None:
    """A small share with what real ones hold: a dominant directory, a long tail, loose
    files at every level, empty directories, symlinks, dot-folders, unicode and names no
    DataSync pattern can carry."""
    rng = random.Random(seed)

    def files(directory: str, count: int, size: int) -> None:
        os.makedirs(directory, exist_ok=True)
        for i in range(count):
            with open(os.path.join(directory, f"file{i:03d}.dat"), "wb") as fh:
                fh.write(rng.randbytes(rng.randint(size // 2, size)))

    files(root, 3, 2000)
    for p in range(4):  # the dominant project, several levels deep
        files(os.path.join(root, "projects", "big", f"part{p}"), 12 * scale, 40_000)
        files(os.path.join(root, "projects", "big", f"part{p}", "raw"), 6 * scale, 60_000)
    files(os.path.join(root, "projects", "big"), 4, 30_000)
    for t in range(12):  # the long tail
        files(os.path.join(root, "projects", f"small{t:02d}"), rng.randint(1, 4), 5_000)
    files(os.path.join(root, "projects"), 2, 1_000)
    files(os.path.join(root, "home", ".config"), 2, 500)
    files(os.path.join(root, "home", "naïve café"), 3, 3_000)
    files(os.path.join(root, "home", "日本語"), 2, 3_000)
    files(os.path.join(root, "home", "pipe|name"), 2, 3_000)
    files(os.path.join(root, "home", "star*name", "inner"), 2, 3_000)
    files(os.path.join(root, "home", "back\\slash"), 1, 3_000)
    files(os.path.join(root, "home", "with space"), 2, 3_000)
    for empty in ("empty", os.path.join("projects", "big", "empty-inside"), os.path.join("home", "e m p t y")):
        os.makedirs(os.path.join(root, empty), exist_ok=True)
    os.symlink("../projects/big", os.path.join(root, "home", "link-to-big"))
    os.symlink("does-not-exist", os.path.join(root, "projects", "dangling"))
    os.symlink("file000.dat", os.path.join(root, "projects", "big", "part0", "alias"))


def digest(root: str) -> dict[str, tuple]:
    """Every entry under root: kind, and size plus content hash, or link target."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if os.path.islink(path):
                out[rel] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                out[rel] = ("dir", bool(os.listdir(path)) or "empty")
            else:
                with open(path, "rb") as fh:
                    out[rel] = ("file", os.path.getsize(path), hashlib.sha256(fh.read()).hexdigest())
    return out


def differences(source: str, dest: str, limit: int = 10) -> list[str]:
    """What differs between two trees (empty when they are equal)."""
    a, b = digest(source), digest(dest)
    missing = sorted(set(a) - set(b))
    extra = sorted(set(b) - set(a))
    changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    out = [f"missing: {k}" for k in missing] + [f"extra: {k}" for k in extra] + [f"differs: {k}" for k in changed]
    return out[:limit] + ([f"... and {len(out) - limit} more"] if len(out) > limit else [])
