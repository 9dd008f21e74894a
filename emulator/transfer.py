"""Walking an NFS source tree and copying selected entries to the destination."""

from __future__ import annotations

import contextlib
import os
import stat
import uuid
from dataclasses import dataclass

from .filters import FilterSet


@dataclass
class Entry:
    rel: str  # "/a/b"
    kind: str  # "file" | "symlink" | "dir"
    size: int = 0
    mode: int = 0
    mtime_ns: int = 0
    atime_ns: int = 0
    target: str | None = None  # symlink target text


def plan(src_root: str, filters: FilterSet) -> list[Entry]:
    """Selected entries in pre-order (a directory before its contents).

    Never follows symlinks.  Devices, FIFOs and sockets are skipped.
    """
    out: list[Entry] = []
    # stack of (local dir path, relative path, parent selected?)
    stack = [(src_root, "", False)]
    while stack:
        local, rel_dir, parent_selected = stack.pop()
        try:
            with os.scandir(local) as it:
                entries = sorted(it, key=lambda e: e.name)
        except FileNotFoundError:
            continue
        children: list[tuple[str, str, bool]] = []
        for e in entries:
            _visit(e, f"{rel_dir}/{e.name}", parent_selected, filters, out, children)
        # pre-order, in name order: push in reverse
        for child in reversed(children):
            stack.append(child)
    # the stack-based walk above visits a directory's children after all of
    # its siblings' entries were listed; re-sort so each dir precedes contents
    out.sort(key=lambda en: en.rel.split("/"))
    return out


def _visit(e: os.DirEntry, rel: str, parent_selected: bool, filters: FilterSet, out: list[Entry],
           children: list[tuple[str, str, bool]]) -> None:
    """One entry of a directory the walk reads: selected (into ``out``), and a directory to
    read next (into ``children``: selected, or holding what an include may select)."""
    if FilterSet.default_ignored(rel):
        return
    is_link = e.is_symlink()
    is_dir = (not is_link) and e.is_dir(follow_symlinks=False)
    if filters.excluded(rel):
        if is_dir and filters.rescues_below(rel):
            children.append((e.path, rel, False))
        return
    # no ancestor of an unselected parent's entry is included: only the entry itself can be
    if not (parent_selected or filters.matches_itself(rel)):
        if is_dir and filters.traverse_only(rel):
            children.append((e.path, rel, False))
        return
    entry = _entry(e, rel, is_link, is_dir)
    if entry is not None:
        out.append(entry)
    if is_dir:
        children.append((e.path, rel, True))


def _entry(e: os.DirEntry, rel: str, is_link: bool, is_dir: bool) -> Entry | None:
    """A selected entry as the transfer sees it; None for a device, FIFO or socket, which
    are skipped (PreserveDevices is not emulated)."""
    st = e.stat(follow_symlinks=False)
    if is_link:
        return Entry(rel, "symlink", 0, stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_atime_ns, os.readlink(e.path))
    if is_dir:
        return Entry(rel, "dir", 0, stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_atime_ns)
    if stat.S_ISREG(st.st_mode):
        return Entry(rel, "file", st.st_size, stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_atime_ns)
    return None


def dest_path(dst_root: str, rel: str) -> str:
    return os.path.join(dst_root, *rel.strip("/").split("/"))


NAME_MAX = 255
"""Bytes in a file name (Linux file systems)."""
TEMP_SUFFIX = ".emu-tmp-"


def temp_name(path: str) -> str:
    """A hidden name beside ``path`` to write it under: ``.<name>.emu-tmp-<12 hex>``, the name
    cut (in bytes) so that a name of NAME_MAX bytes still gets one."""
    d, name = os.path.split(path)
    room = NAME_MAX - len(".") - len(TEMP_SUFFIX) - 12
    return os.path.join(d, f".{os.fsdecode(os.fsencode(name)[:room])}{TEMP_SUFFIX}{uuid.uuid4().hex[:12]}")


def file_unchanged(entry: Entry, dst: str) -> bool:
    try:
        st = os.lstat(dst)
    except FileNotFoundError:
        return False
    return (stat.S_ISREG(st.st_mode) and st.st_size == entry.size
            and st.st_mtime_ns == entry.mtime_ns)


def is_current(entry: Entry, dst: str, never_overwrite: bool) -> bool:
    """Whether the destination already holds this entry as CHANGED mode sees it: a real
    directory; a file or symlink unchanged, or present at all under OverwriteMode NEVER."""
    if entry.kind == "dir":
        return os.path.isdir(dst) and not os.path.islink(dst)
    if not os.path.lexists(dst):
        return False
    if never_overwrite:
        return True
    return symlink_unchanged(entry, dst) if entry.kind == "symlink" else file_unchanged(entry, dst)


def symlink_unchanged(entry: Entry, dst: str) -> bool:
    try:
        return os.path.islink(dst) and os.readlink(dst) == entry.target
    except OSError:
        return False


def discard(path: str) -> None:
    """Remove a temp file left by a failed write, if it is there."""
    with contextlib.suppress(OSError):
        os.unlink(path)


def write_symlink(entry: Entry, dst: str) -> None:
    if entry.target is None:
        raise ValueError(f"{entry.rel} is a {entry.kind} entry, not a symlink with its target")
    tmp = temp_name(dst)
    os.symlink(entry.target, tmp)
    try:
        os.replace(tmp, dst)
    except BaseException:
        discard(tmp)
        raise
