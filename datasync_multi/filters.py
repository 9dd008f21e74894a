"""DataSync SIMPLE_PATTERN filters: what the docs settle, what they leave open, how we match.

Settled (``docs/datasync-facts.md`` §2):

* A filter value is patterns joined by ``|``; one include rule and one exclude rule per
  task or execution; a value holds at most 102,400 "characters". Which characters the
  docs mean (code points, UTF-16 units, bytes) is UNCONFIRMED, so we count the strict
  way, UTF-8 bytes: never fewer than either of the others (:func:`value_bytes`).
* Paths are relative to the location's subdirectory and start with ``/``.
* ``/dir`` and ``/dir/`` both select the folder and everything under it.
* In an include, ``*`` may only be the last character: ``/documents*``.

Open, and so built to hold under every answer (:data:`READINGS`):

* **matching**: whether ``/dir`` also selects ``/dir2`` (a string prefix) or only the
  component ``dir``; under the prefix reading ``/dir/`` selects what is below ``/dir``;
* **star**: whether a final ``*`` stops at ``/``;
* **precedence**: whether an exclude beats an include for a path matching both.

Our plans carry no excludes, so precedence never arises. They write two forms only:
``/d/`` for a directory (never ``/d``, which might reach ``/d2``; the one exception is an
empty manifest directory no sibling's name extends, see ``split.dir_pattern``), and
``/d/prefix*`` for a prefix group, which selects every entry of ``/d`` whose name starts
with ``prefix`` and all below it under every reading. The property tests check every plan
under all eight combinations, and the emulator can copy under each.

Names holding a character no pattern can carry safely (``|`` splits patterns, ``*`` is a
wildcard, ``\\`` may be an escape, line breaks break our line-based files, and bytes that
are not UTF-8 cannot travel in a JSON request) are never written into a pattern: a prefix
group stops before the character, and so carries them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MAX_FILTER_BYTES = 102_400
"""DataSync's limit on one filter value (``FilterValue`` max length in botocore's model),
held in UTF-8 bytes: an emoji is one code point, two UTF-16 units and four bytes, and a
value within the limit under the byte count is within it under every count."""

WHOLE_LOCATION = "/*"
"""The include pattern that selects everything under the location."""

_UNSAFE_CHARS = frozenset("|*\\\n\r\x00")


def is_safe_char(ch: str) -> bool:
    """Whether one character may appear in a pattern we write (surrogates stand for bytes
    that are not UTF-8)."""
    return ch not in _UNSAFE_CHARS and not "\ud800" <= ch <= "\udfff"


def is_nameable(name: str) -> bool:
    """Whether one path component can be written into a DataSync pattern."""
    return bool(name) and all(is_safe_char(ch) for ch in name)


def filter_value(patterns: Sequence[str]) -> str:
    """The single filter value DataSync receives for these patterns."""
    return "|".join(patterns)


def value_bytes(text: str) -> int:
    """The length of a filter value (or one pattern) as checked against MAX_FILTER_BYTES."""
    return len(text.encode("utf-8"))


def split_value(value: str) -> list[str]:
    """The patterns of a filter value (the inverse of :func:`filter_value`)."""
    return [p for p in value.split("|") if p]


@dataclass(frozen=True)
class Reading:
    """One answer to each open question of DataSync's filter rules."""

    matching: str
    """'component': ``/a`` selects /a and below; 'prefix': any path starting with ``/a``."""
    star_crosses_slash: bool
    precedence: str
    """'exclude' or 'include': which wins for a path matching both."""

    def __str__(self) -> str:
        return f"{self.matching}/{'star-crosses' if self.star_crosses_slash else 'star-stops'}/{self.precedence}-wins"


READINGS = tuple(Reading(m, s, p) for m in ("component", "prefix") for s in (True, False)
                 for p in ("exclude", "include"))
COMPONENT = READINGS[0]
"""The reading the emulator starts with by default."""


def _ancestors(path: str):
    """'/a/b/c' -> '/a', '/a/b', '/a/b/c'."""
    end = path.find("/", 1)
    while end != -1:
        yield path[:end]
        end = path.find("/", end + 1)
    yield path


def pattern_matches(pattern: str, path: str, reading: Reading = COMPONENT) -> bool:
    """Whether ``pattern`` selects ``path`` (a location path such as ``/a/b``): ``path`` or
    one of its ancestors matches. Only the forms we write are accepted: a path, optionally
    with one trailing ``/``, and a path followed by a final ``*``."""
    if pattern in ("/", WHOLE_LOCATION):
        return True
    star = pattern.endswith("*")
    stem = pattern[:-1] if star else pattern
    if "*" in stem:
        raise ValueError(f"'*' may only end a pattern: {pattern!r}")
    for a in _ancestors(path):
        if star:
            if a.startswith(stem) and (reading.star_crosses_slash or "/" not in a[len(stem):]):
                return True
        elif reading.matching == "prefix":
            if a.startswith(stem):
                return True
        elif a == stem.rstrip("/"):
            return True
    return False


def selects(path: str, includes: Iterable[str], excludes: Iterable[str] = (),
            reading: Reading = COMPONENT) -> bool:
    """Whether a task with these patterns transfers ``path`` under ``reading``.
    No include pattern means everything is included."""
    includes = list(includes)
    included = not includes or any(pattern_matches(p, path, reading) for p in includes)
    if reading.precedence == "include" and includes and included:
        return True
    return included and not any(pattern_matches(p, path, reading) for p in excludes)
