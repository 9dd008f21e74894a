"""Read and check ``source_file.manifest``: the directories, relative to the mount, to move."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from .errors import UserError
from .filters import is_nameable

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


def read_manifest(path: str, mount: str) -> Manifest:
    """Parse the manifest at ``path`` and check every entry against the mounted tree."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise UserError(f"manifest {path!r} does not exist") from None
    except OSError as exc:
        raise UserError(f"cannot read manifest {path!r}: {exc.strerror}") from None

    lines = manifest_lines(text)
    if not lines:
        raise UserError(f"manifest {path!r} lists no directory")
    entries = []
    for line in lines:
        rel = normalize_entry(line)
        _check_entry(line, rel, mount)
        entries.append(rel)

    kept: list[str] = []
    merged: list[str] = []
    for rel in sorted(set(entries), key=lambda r: r.split("/") if r else []):
        if any(rel == k or k == "" or rel.startswith(k + "/") for k in kept):
            merged.append(rel)
            log.warning("manifest entry /%s is inside another entry; it is moved once, with that entry", rel)
        else:
            kept.append(rel)
    return Manifest(tuple(kept), tuple(merged))


def _check_entry(line: str, rel: str, mount: str) -> None:
    """Refuse an entry DataSync could not select as written: a name no filter can carry, a
    path that is not a directory, or one reached through a symlink (DataSync copies a
    symlink as a link and never follows it, so no task would select what is behind it)."""
    shown = "/" + rel
    parts = rel.split("/") if rel else []
    if any(not is_nameable(c) for c in parts):
        raise UserError(f"manifest entry {shown!r} has a name no DataSync filter can carry "
                        "('|', '*', '\\' or non-UTF-8)")
    for depth in range(1, len(parts) + 1):
        link = os.path.join(mount, *parts[:depth])
        if os.path.islink(link):
            through = "/" + "/".join(parts[:depth])
            what = "is a symlink" if depth == len(parts) else f"is reached through the symlink {through!r}"
            raise UserError(f"manifest entry {shown!r} {what} (-> {os.readlink(link)}), which DataSync does not "
                            "follow; list the directory it points to instead")
    full = os.path.join(mount, *parts)
    if not os.path.lexists(full):
        raise UserError(f"manifest entry {shown!r} does not exist under {mount}{_blanks_hint(line, mount)}")
    if not os.path.isdir(full):
        raise UserError(f"manifest entry {shown!r} is not a directory under {mount}")


def _blanks_hint(line: str, mount: str) -> str:
    """Point at blanks around a line when the line without them names a directory."""
    trimmed = line.strip()
    if trimmed == line or ".." in trimmed.split("/"):
        return ""
    rel = normalize_entry(trimmed)
    if not os.path.isdir(os.path.join(mount, rel)):
        return ""
    return f" (names keep their blanks as written; without the blanks around it the line would name {'/' + rel!r})"
