"""The emulator's S3 root seen as S3 buckets: the objects DataSync would have written there.

Bucket ``B`` is the directory ``<s3_root>/B``; the transfers write a location with subdirectory
``/p/q`` under ``<s3_root>/B/p/q``. This module presents what such a directory holds the way
DataSync stores it in S3 (``s3api`` serves it over HTTP):

- **Keys.** An object's key is its path below the bucket directory: the S3 location's
  subdirectory (its prefix, without a leading ``/``) joined with the file's path relative to
  the location, as raw UTF-8 with no escaping and no Unicode normalisation (NFC and NFD
  spellings of one name are two keys, as they are two files).
- **Directories** are zero-byte objects whose key ends with ``/`` (the DataSync user guide,
  special-files-copied: "directories are represented as empty objects that have prefixes and
  end with a forward slash"). Not the bucket directory itself, and not the directory of an
  S3 location created on this emulator (its subdirectory) nor any directory above one: those
  are where a transfer writes, not folders it transferred. The emulator never copies the
  source root's metadata onto a location's directory, so a ``prefix/`` object would carry
  metadata DataSync never saw. Whether DataSync writes a ``prefix/`` object for the root
  folder of a transfer is **UNCONFIRMED**; here it does not.
- **Symlinks** are objects whose body is the link's target text.
- **Metadata** (``x-amz-meta-*``, HeadObject's ``Metadata``): ``file-permissions`` (octal
  ``st_mode`` with its file type bits: ``0100644``, ``040755``, ``0120777``), ``file-owner``
  and ``file-group`` (uid and gid), ``file-mtime`` and ``file-atime`` (nanoseconds with an
  ``ns`` suffix: ``1595002920000000000ns``), all read from the stored copy, which the
  transfer gave the source's mode and times. The key names and formats are FSx for Lustre's
  (POSIX metadata support for data repositories); DataSync's metadata page only says its S3
  user metadata is interoperable with FSx for Lustre and File Gateway, so the exact keys
  DataSync writes are **UNCONFIRMED** by AWS docs.
- **LastModified** is the stored copy's ctime: when the emulator wrote it, as S3's
  LastModified is when the object was uploaded, never the source's mtime (which is
  ``file-mtime``).
- **ETag**: a directory's is the MD5 of no bytes and a symlink's the MD5 of its target (both
  what S3 gives a one-part upload); a file's is a digest of its inode, size, mtime and ctime
  with S3's multipart ``-1`` suffix: stable while the file is unchanged, and, as for
  DataSync's multipart uploads on AWS, not the MD5 of the content.

Left out, in listings and lookups alike:

- names that are not valid UTF-8: an S3 key is UTF-8 text, so such a name cannot be a key
  (its directory's whole subtree is skipped);
- keys longer than 1024 bytes, S3's limit;
- the hidden temp files of copies in flight (``.<name>.emu-tmp-<12 hex>``, see
  :func:`emulator.transfer.temp_name`): an upload in progress is not an object yet;
- devices, FIFOs and sockets, which DataSync does not copy to S3.

Listing is lazy and in S3's order (UTF-8 byte order of the keys): a depth-first walk that
reads one directory at a time and sorts its entries by key bytes, a directory sorting as
``name/``, so that each subtree's keys form one run in key order. Memory holds the sorted
entries of the directories on the current path, never the bucket.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass

MAX_KEY = 1024
"""S3's limit on a key, in UTF-8 bytes."""
TEMP_NAME = re.compile(rb"\..+\.emu-tmp-[0-9a-f]{12}", re.DOTALL)
"""A copy in flight (``transfer.temp_name``)."""
EMPTY_MD5 = hashlib.md5(b"").hexdigest()
DIR, FILE, LINK = "dir", "file", "symlink"

_Child = tuple[bytes, bytes, bool]
"""An entry of a directory being walked: its key (``name/`` for a directory), its path, is it a directory."""


@dataclass(frozen=True)
class StoredObject:
    """One object of a bucket: its key, where it is stored, and what ``lstat`` says of it."""

    key: bytes
    path: bytes
    kind: str
    st: os.stat_result
    target: bytes | None = None
    """A symlink's target text: its body."""

    @property
    def size(self) -> int:
        if self.kind == LINK:
            return len(self.target or b"")
        return self.st.st_size if self.kind == FILE else 0

    @property
    def etag(self) -> str:
        if self.kind == DIR:
            return f'"{EMPTY_MD5}"'
        if self.kind == LINK:
            return f'"{hashlib.md5(self.target or b"").hexdigest()}"'
        st = self.st
        ident = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
        return f'"{hashlib.md5(ident.encode()).hexdigest()}-1"'

    @property
    def last_modified_ns(self) -> int:
        return self.st.st_ctime_ns

    def metadata(self) -> dict[str, str]:
        """The user metadata, without the ``x-amz-meta-`` prefix."""
        st = self.st
        return {"file-permissions": f"0{st.st_mode:o}", "file-owner": str(st.st_uid), "file-group": str(st.st_gid),
                "file-mtime": f"{st.st_mtime_ns}ns", "file-atime": f"{st.st_atime_ns}ns"}


class Bucket:
    """A bucket directory of the S3 root, and where the S3 locations created on it write.

    ``locations`` maps each location subdirectory in this bucket (normalised: ``""`` for the
    bucket root, else ``p/q``) to its storage class."""

    def __init__(self, s3_root: str, name: str, locations: dict[str, str] | None = None):
        self.name = name
        self.path = os.fsencode(os.path.join(s3_root, name))
        hidden: set[bytes] = set()
        classes = []
        for sub, storage_class in (locations or {}).items():
            parts = sub.encode().split(b"/") if sub else []
            hidden.update(b"/".join(parts[:i]) + b"/" for i in range(1, len(parts) + 1))
            classes.append((b"/".join(parts) + b"/" if parts else b"", storage_class))
        self.hidden = frozenset(hidden)
        """The keys of directories that are no object: location directories and those above them."""
        self.classes = sorted(classes, key=lambda c: -len(c[0]))
        """(key prefix, storage class), deepest location first."""

    def exists(self) -> bool:
        return _is_real_dir(self.path)

    def storage_class(self, key: bytes) -> str:
        """The storage class of the deepest location the key lies in (STANDARD outside any)."""
        return next((cls for prefix, cls in self.classes if key.startswith(prefix) and key != prefix), "STANDARD")

    # ----------------------------------------------------------------- listing
    def objects(self, prefix: bytes = b"", after: bytes = b"") -> Iterator[StoredObject]:
        """The objects whose key starts with ``prefix`` and sorts after ``after``, in key order,
        read as they are reached (a file added ahead of the walk is listed)."""
        stack = [self._children(self.path, b"", prefix, after)]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                continue
            key, path, is_dir = child
            if not is_dir or (key > after and key.startswith(prefix) and key not in self.hidden):
                obj = _stored(key, path)
                if obj is not None:
                    yield obj
            if is_dir:
                stack.append(self._children(path, key, prefix, after))

    def _children(self, path: bytes, dir_key: bytes, prefix: bytes, after: bytes) -> Iterator[_Child]:
        """The entries of one directory that hold keys the listing wants, in key order."""
        try:
            with os.scandir(path) as it:
                found = [_child(entry, dir_key) for entry in it]
        except (FileNotFoundError, NotADirectoryError):  # gone since its parent was read
            return iter(())
        return iter(sorted(c for c in found if c is not None and _wanted(c, prefix, after)))

    # ------------------------------------------------------------------ lookup
    def head(self, key: bytes) -> StoredObject | None:
        """The object with this key, or None. Never follows a symlink, nor leaves the bucket."""
        if not key or len(key) > MAX_KEY or key in self.hidden:
            return None
        parts = (key[:-1] if key.endswith(b"/") else key).split(b"/")
        if not all(_is_name(part) for part in parts):
            return None
        path = self.path
        for part in parts[:-1]:
            path = os.path.join(path, part)
            if not _is_real_dir(path):
                return None
        return _stored(key, os.path.join(path, parts[-1]))


def _is_name(part: bytes) -> bool:
    """Whether a key component can name a stored entry that is an object."""
    if part in (b"", b".", b"..") or b"\0" in part or TEMP_NAME.fullmatch(part):
        return False
    try:
        part.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_real_dir(path: bytes) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _child(entry: os.DirEntry, dir_key: bytes) -> _Child | None:
    """A directory entry as the walk sees it; None for what is no object (see the module's docstring)."""
    name = entry.name
    assert isinstance(name, bytes)  # scandir of a bytes path
    if not _is_name(name):
        return None
    if entry.is_symlink() or entry.is_file(follow_symlinks=False):
        return dir_key + name, entry.path, False
    if entry.is_dir(follow_symlinks=False):
        return dir_key + name + b"/", entry.path, True
    return None


def _wanted(child: _Child, prefix: bytes, after: bytes) -> bool:
    """Whether an entry is, or holds, a key that starts with ``prefix`` and sorts after ``after``.
    A directory's object and everything below it have keys that start with its key."""
    key, _, is_dir = child
    if len(key) > MAX_KEY:
        return False
    if not is_dir:
        return key > after and key.startswith(prefix)
    return (key.startswith(prefix) or prefix.startswith(key)) and (key > after or after.startswith(key))


def _stored(key: bytes, path: bytes) -> StoredObject | None:
    """The object stored at ``path``, if it is one of the kind its key says (a key ending in
    ``/`` is a directory); None if it is gone or is something else."""
    try:
        st = os.lstat(path)
        if key.endswith(b"/"):
            return StoredObject(key, path, DIR, st) if stat.S_ISDIR(st.st_mode) else None
        if stat.S_ISLNK(st.st_mode):
            return StoredObject(key, path, LINK, st, os.readlink(path))
        return StoredObject(key, path, FILE, st) if stat.S_ISREG(st.st_mode) else None
    except (FileNotFoundError, NotADirectoryError):
        return None
