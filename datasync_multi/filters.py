"""DataSync SIMPLE_PATTERN filters: the rules we rely on, how we build patterns, how they match.

The reading, from ``shared/research/datasync-facts.md`` (section 1):

* A filter value is patterns joined by ``|``; at most one include rule and one exclude
  rule per task or execution; each value holds at most 102,400 characters.
* Paths are relative to the location's subdirectory and start with ``/``.
* ``/dir`` and ``/dir/`` select the folder and everything under it, component by
  component: ``/dir`` does not select ``/dir2``. UNCONFIRMED upstream, and we rely on it:
  siblings ``/d/dir`` and ``/d/dir2`` may go to different tasks. It is the reading the
  docs imply by writing ``/reports*`` whenever they want prefix matching; the emulator
  follows it, and the README asks for a check on a real account.
* ``*`` in an include may only be the last character and then matches any string
  continuation (the docs' ``/documents*``; excludes allow it too, ``/reports*``). We write
  it in two places only: ``/*`` for the whole location, and ``/d/prefix*`` for a prefix
  group, which selects every entry of ``/d`` whose name starts with ``prefix`` and all
  below it. Whether ``*`` itself crosses ``/`` is UNCONFIRMED; both readings select the
  same paths here, because a matched folder brings its contents. A group is exactly-once
  whatever matches it, since the task holding the directory's rest excludes the very
  same pattern.
* When a path matches both an include and an exclude, the exclude wins (UNCONFIRMED
  upstream; it is the only reading under which DataSync's own examples, such as include
  ``/a`` with exclude ``*/tmp``, make sense). Plans that carry excludes depend on it, and
  the README says so.

Names that no pattern can carry safely (``|`` splits patterns, ``*`` is a wildcard, ``\\``
may be an escape, line breaks break our line-based files, and bytes that are not UTF-8
cannot travel in a JSON request) are never written into a pattern: the planner keeps
such an entry inside its parent's unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

MAX_FILTER_CHARS = 102_400
"""DataSync's limit on one filter value (``FilterValue`` max length in botocore's model)."""

WHOLE_LOCATION = "/*"
"""The include pattern that selects everything under the location."""

_UNSAFE_CHARS = frozenset("|*\\\n\r\x00")


def is_nameable(name: str) -> bool:
    """Whether one path component can be written into a DataSync pattern."""
    if not name or _UNSAFE_CHARS.intersection(name):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes arrive as surrogate escapes
        return False
    return True


def pattern_for(relpath: str) -> str:
    """The pattern selecting ``relpath`` (relative to the location, '' for its root) and all below it."""
    return "/" + relpath if relpath else WHOLE_LOCATION


def filter_value(patterns: Sequence[str]) -> str:
    """The single filter value DataSync receives for these patterns."""
    return "|".join(patterns)


def split_value(value: str) -> list[str]:
    """The patterns of a filter value (the inverse of :func:`filter_value`)."""
    return [p for p in value.split("|") if p]


def pattern_matches(pattern: str, path: str) -> bool:
    """Whether ``pattern`` selects ``path`` (a location path such as ``/a/b``).

    Only the two forms we write are accepted: a path (``/a/b``, optionally with one
    trailing ``/``) and a path followed by a final ``*``.
    """
    if pattern.endswith("*"):
        prefix = pattern[:-1]
        if "*" in prefix:
            raise ValueError(f"'*' may only end a pattern: {pattern!r}")
        return path.startswith(prefix)
    if "*" in pattern:
        raise ValueError(f"'*' may only end a pattern: {pattern!r}")
    base = pattern[:-1] if pattern.endswith("/") else pattern
    if base == "":
        return True
    return path == base or path.startswith(base + "/")


def selects(path: str, includes: Iterable[str], excludes: Iterable[str]) -> bool:
    """Whether a task with these include and exclude patterns transfers ``path``.

    No include pattern means everything is included; an exclude wins over an include.
    """
    includes = list(includes)
    included = not includes or any(pattern_matches(p, path) for p in includes)
    return included and not any(pattern_matches(p, path) for p in excludes)
