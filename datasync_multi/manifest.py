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


def _entry(line: str, mount: str) -> str:
    """Surrounding blanks are usually typing slips, but a name may really end in a space:
    the line as written wins when only it names a directory."""
    stripped = normalize_entry(line.strip())
    raw = normalize_entry(line)
    if raw != stripped and not os.path.isdir(os.path.join(mount, stripped)) \
            and os.path.isdir(os.path.join(mount, raw)):
        return raw
    return stripped


def read_manifest(path: str, mount: str) -> Manifest:
    """Parse the manifest at ``path`` and check every entry against the mounted tree."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        raise UserError(f"manifest {path!r} does not exist") from None
    except OSError as exc:
        raise UserError(f"cannot read manifest {path!r}: {exc.strerror}") from None

    entries = [_entry(line, mount) for line in lines if line.strip() and not line.strip().startswith("#")]
    if not entries:
        raise UserError(f"manifest {path!r} lists no directory")

    mount_real = os.path.realpath(mount)
    for rel in entries:
        _check_entry(rel, mount, mount_real)

    kept: list[str] = []
    merged: list[str] = []
    for rel in sorted(set(entries), key=lambda r: r.split("/") if r else []):
        if any(rel == k or k == "" or rel.startswith(k + "/") for k in kept):
            merged.append(rel)
            log.warning("manifest entry /%s is inside another entry; it is moved once, with that entry", rel)
        else:
            kept.append(rel)
    return Manifest(tuple(kept), tuple(merged))


def _check_entry(rel: str, mount: str, mount_real: str) -> None:
    shown = "/" + rel
    bad = [c for c in rel.split("/") if rel and not is_nameable(c)]
    if bad:
        raise UserError(f"manifest entry {shown!r} has a name no DataSync filter can carry ('|', '*', '\\' or non-UTF-8)")
    full = os.path.join(mount, rel) if rel else mount
    if os.path.islink(full):
        raise UserError(f"manifest entry {shown!r} is a symlink; list the directory it points to instead")
    if not os.path.isdir(full):
        raise UserError(f"manifest entry {shown!r} is not a directory under {mount}")
    real = os.path.realpath(full)
    if real != mount_real and not real.startswith(mount_real.rstrip("/") + "/"):
        raise UserError(f"manifest entry {shown!r} resolves outside the mount {mount}")
