"""Read and check ``source_file.manifest``: the directories, relative to the mount, to move."""

from __future__ import annotations

import codecs
import logging
import os
import stat
from dataclasses import dataclass

from .errors import UserError
from .filters import is_nameable
from .scan import DATASYNC_MAX_PATH, DATASYNC_SKIPS, datasync_skips, path_bytes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Manifest:
    """Directories to move, as paths relative to the mount ('' is the mount itself)."""

    entries: tuple[str, ...]
    merged: tuple[str, ...] = ()
    """Entries dropped because an earlier entry already covers them."""


def normalize_entry(line: str) -> str:
    """Turn a manifest line into a relative path; refuse one that climbs out of the mount."""
    parts: list[str] = []
    for part in line.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise UserError(f"manifest entry {line!r} escapes the mount")
            parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


def manifest_lines(text: str) -> list[str]:
    """The entries of a manifest's text, exactly as written.

    Lines end at '\\n' (and a '\\r' before it) only: U+2028, U+0085 or a form feed may be
    part of a file name, so ``str.splitlines`` would cut a name in two. Nothing else is
    stripped: a name may really end in a space. Blank lines and '#' comments are skipped.
    """
    lines = (line.removesuffix("\r") for line in text.split("\n"))
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


def manifest_text(raw: bytes, path: str) -> str:
    """A manifest's bytes as text: UTF-8, with a byte-order mark at the start left out (an
    editor on Windows writes one; no name on the first line starts with it); bytes that are
    not UTF-8 kept as surrogates, so such a name is refused by name. A UTF-16 or UTF-32
    manifest (one starting with their byte-order mark) is refused, saying so."""
    for bom, encoding in ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                          (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")):
        if raw.startswith(bom):
            raise UserError(f"manifest {path!r} is {encoding} (it starts with a {encoding} byte-order mark): "
                            "save it as UTF-8")
    return raw.removeprefix(codecs.BOM_UTF8).decode("utf-8", errors="surrogateescape")


def read_manifest(path: str, mount: str) -> Manifest:
    """Parse the manifest at ``path`` and check every entry against the mounted tree."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise UserError(f"manifest {path!r} does not exist") from None
    except OSError as exc:
        raise UserError(f"cannot read manifest {path!r}: {exc.strerror}") from None

    lines = manifest_lines(manifest_text(raw, path))
    if not lines:
        raise UserError(f"manifest {path!r} lists no directory")
    entries = []
    for line in lines:
        rel = normalize_entry(line)
        _check_entry(line, rel, mount)
        entries.append(rel)

    kept: list[str] = []
    merged: list[str] = []
    # Sorted by components, what lies inside an entry comes right after it, before any
    # entry it is not inside: the last entry kept is the only one to compare with.
    for rel in sorted(set(entries), key=lambda r: r.split("/") if r else []):
        if kept and (kept[-1] == "" or rel.startswith(kept[-1] + "/")):
            merged.append(rel)
            log.warning("manifest entry /%s is inside another entry; it is moved once, with that entry", rel)
        else:
            kept.append(rel)
    if all(datasync_skips(rel) for rel in kept):
        raise UserError(f"every entry of manifest {path!r} is a path DataSync skips by default ({DATASYNC_SKIPS}): "
                        "nothing to move")
    return Manifest(tuple(kept), tuple(merged))


def _check_entry(line: str, rel: str, mount: str) -> None:
    """Refuse an entry DataSync could not select as written: a name no filter can carry, a
    path past DataSync's path limit, a path that is not a directory, or one reached through
    a symlink (DataSync copies a symlink as a link and never follows it, so no task would
    select what is behind it). The path is walked a name at a time, so any depth is read."""
    shown = "/" + rel
    parts = rel.split("/") if rel else []
    if any(not is_nameable(c) for c in parts):
        raise UserError(f"manifest entry {shown!r} has a name no DataSync filter can carry "
                        "('|', '*', '\\' or non-UTF-8)")
    if path_bytes(rel) > DATASYNC_MAX_PATH:
        raise UserError(f"manifest entry {shown[:60]!r}... is {path_bytes(rel):,} bytes long, past DataSync's "
                        f"{DATASYNC_MAX_PATH:,}-byte path limit: DataSync can move nothing in it")
    fd = -1
    try:
        fd = os.open(mount, os.O_RDONLY | os.O_DIRECTORY)
        for depth, name in enumerate(parts, 1):
            try:
                mode = os.lstat(name, dir_fd=fd).st_mode
            except FileNotFoundError:
                raise UserError(f"manifest entry {shown!r} does not exist under {mount}"
                                f"{_blanks_hint(line, mount)}") from None
            if stat.S_ISLNK(mode):
                through = "/" + "/".join(parts[:depth])
                what = "is a symlink" if depth == len(parts) else f"is reached through the symlink {through!r}"
                raise UserError(f"manifest entry {shown!r} {what} (-> {os.readlink(name, dir_fd=fd)}), which "
                                "DataSync does not follow; list the directory it points to instead")
            if not stat.S_ISDIR(mode):
                raise UserError(f"manifest entry {shown!r} " + ("is not a directory" if depth == len(parts)
                                                                 else "does not exist") + f" under {mount}")
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
    except OSError as exc:
        raise UserError(f"cannot read manifest entry {shown!r} under {mount}: {exc.strerror}") from None
    finally:
        if fd >= 0:
            os.close(fd)


def _blanks_hint(line: str, mount: str) -> str:
    """Point at blanks around a line when the line without them names a directory."""
    trimmed = line.strip()
    if trimmed == line or ".." in trimmed.split("/"):
        return ""
    rel = normalize_entry(trimmed)
    if not os.path.isdir(os.path.join(mount, rel)):
        return ""
    return f" (names keep their blanks as written; without the blanks around it the line would name {'/' + rel!r})"
