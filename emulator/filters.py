"""DataSync SIMPLE_PATTERN filter matching, as the emulator reads the rules.

This is the emulator's own reading of the filter rules in docs/datasync-facts.md
(§2), written independently of the project's code.

Paths are relative to the location subdirectory and look like ``/a/b/c``.

* A rule Value holds patterns separated by ``|`` (empty pieces are ignored).
* A pattern without ``*``: one trailing ``/`` is stripped; it matches ``p``
  when ``p == pattern`` or ``p`` starts with ``pattern + "/"`` (component-wise:
  ``/dir`` does not match ``/dir2``).
* ``/`` and ``/*`` match everything.
* Include patterns may contain ``*`` only as the last character; ``/dir*``
  matches every path that starts with the string ``/dir`` (so ``/dir2/x`` too).
  A ``*`` anywhere else in an include is invalid (:class:`FilterError`).
* Exclude patterns may contain ``*`` anywhere; ``*`` matches any run of
  characters including ``/``; only ``*`` is special.  A path is excluded when it
  or one of its ancestors matches.
* Exclude wins over include.  Matching is case-sensitive.

Those are the default answers to the questions the docs leave open. A :class:`Reading`
(``--match``, ``--star`` and ``--precedence`` on the command line) picks the others, so a
test can copy under each: ``prefix`` matching makes a pattern without ``*`` a plain string
prefix (``/dir`` also takes ``/dir2``; ``/dir/`` takes what is below ``/dir``); ``stops``
keeps a final ``*`` from crossing ``/``; ``include`` lets an include beat an exclude.
* Default-ignored: a path whose last component ends with ``.snapshot``, and
  ``/.aws-datasync``, ``/.awssync``, ``/.zfs`` at the top level (and
  everything beneath them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

TOP_LEVEL_IGNORED = ("/.aws-datasync", "/.awssync", "/.zfs")


class FilterError(ValueError):
    """A filter value that DataSync would reject."""


def split_patterns(value: str) -> list[str]:
    return [p for p in value.split("|") if p != ""]


def _rules_value(rules) -> str | None:
    """Join the Value of a FilterList (0 or 1 rules) -> str or None."""
    if not rules:
        return None
    vals = [r.get("Value", "") for r in rules if r.get("Value")]
    if not vals:
        return None
    return "|".join(vals)


EXECUTION_FILTERS = ("replace", "merge")
"""How StartTaskExecution's ``Includes``/``Excludes`` combine with the task's (UNCONFIRMED in
the docs): ``replace`` takes the execution's own list instead of the task's; ``merge`` takes
the union of both, the task's read when the execution launches."""


def merge_rules(*filter_lists) -> list[dict]:
    """One FilterList selecting the union of these: their rule values joined with ``|``, empty
    ones dropped (``[]`` when none is left). Task "/a|/b" and execution "/c" give "/a|/b|/c"."""
    values = [r["Value"] for rules in filter_lists for r in rules or [] if r.get("Value")]
    return [{"FilterType": "SIMPLE_PATTERN", "Value": "|".join(values)}] if values else []


def validate_includes(rules) -> None:
    value = _rules_value(rules)
    if value is None:
        return
    for pat in split_patterns(value):
        if "*" in pat[:-1]:
            raise FilterError(
                f"Include filter pattern {pat!r} is invalid: the wildcard (*) "
                "is supported only as the rightmost character of an include pattern"
            )


def _ancestors_and_self(path: str):
    """'/a/b/c' -> '/a', '/a/b', '/a/b/c'."""
    parts = path.strip("/").split("/")
    cur = ""
    for part in parts:
        cur = cur + "/" + part
        yield cur


@dataclass(frozen=True)
class Reading:
    """One answer to each open question of the filter rules."""

    match: str = "component"  # or "prefix"
    star: str = "crosses"  # or "stops"
    precedence: str = "exclude"  # or "include"


DEFAULT_READING = Reading()


@dataclass
class _Include:
    kind: str  # "all" | "exact" | "prefix"
    text: str
    reading: Reading = DEFAULT_READING
    raw: str = ""  # the pattern as written, for the prefix reading of "exact"

    def matches(self, p: str) -> bool:
        if self.kind == "all":
            return True
        if self.kind == "prefix":
            return p.startswith(self.text) and (self.reading.star == "crosses" or "/" not in p[len(self.text):])
        if self.reading.match == "prefix":
            return p.startswith(self.raw)
        return p == self.text or p.startswith(self.text + "/")

    def may_select_below(self, d: str) -> bool:
        """True if something strictly below directory ``d`` could match."""
        if self.kind == "all":
            return True
        d = d.rstrip("/")  # the root "/" becomes ""
        if self.kind == "prefix" or self.reading.match == "prefix":
            # anything below d starts with d + "/"; a match needs a common
            # prefix with the pattern's text
            dd, text = d + "/", self.text if self.kind == "prefix" else self.raw
            return text.startswith(dd) or dd.startswith(text)
        return self.text.startswith(d + "/") or (d != "" and self.matches(d))


def _compile_include(pat: str, reading: Reading) -> _Include:
    if pat in ("/", "/*"):
        return _Include("all", "", reading)
    if pat.endswith("*"):
        return _Include("prefix", pat[:-1], reading)
    return _Include("exact", pat[:-1] if pat.endswith("/") else pat, reading, pat)


def _compile_exclude(pat: str, reading: Reading):
    if pat in ("/", "/*"):
        return re.compile(r"[\s\S]*")
    if reading.match == "prefix" and "*" not in pat:
        return re.compile(re.escape(pat) + r"[\s\S]*")
    if pat.endswith("/") and len(pat) > 1:
        pat = pat[:-1]
    star = "[\\s\\S]*" if reading.star == "crosses" else "[^/]*"
    rx = star.join(re.escape(piece) for piece in pat.split("*"))
    return re.compile(rx)


@dataclass
class FilterSet:
    """Compiled include/exclude rules for one execution."""

    includes: list[_Include] | None = None  # None: no include rule given
    excludes: list = field(default_factory=list)
    reading: Reading = DEFAULT_READING

    @classmethod
    def from_rules(cls, includes=None, excludes=None, reading: Reading = DEFAULT_READING) -> FilterSet:
        validate_includes(includes)
        inc_value = _rules_value(includes)
        exc_value = _rules_value(excludes)
        inc = None
        if inc_value is not None:
            pats = split_patterns(inc_value)
            inc = [_compile_include(p, reading) for p in pats] if pats else None
        exc = [_compile_exclude(p, reading) for p in split_patterns(exc_value)] if exc_value else []
        return cls(inc, exc, reading)

    # -- single predicates -------------------------------------------------
    @staticmethod
    def default_ignored(p: str) -> bool:
        last = p.rsplit("/", 1)[-1]
        if last.endswith(".snapshot"):
            return True
        for top in TOP_LEVEL_IGNORED:
            if p == top or p.startswith(top + "/"):
                return True
        return False

    def excluded(self, p: str) -> bool:
        """p or an ancestor matches an exclude, and (under the include-wins reading) no include."""
        if not self.excludes:
            return False
        if self.reading.precedence == "include" and self.includes is not None and self.included(p):
            return False
        for anc in _ancestors_and_self(p):
            for rx in self.excludes:
                if rx.fullmatch(anc):
                    return True
        return False

    def included(self, p: str) -> bool:
        """p or one of its ancestors matches an include (True if no includes)."""
        return any(self.matches_itself(anc) for anc in _ancestors_and_self(p))

    def matches_itself(self, p: str) -> bool:
        """An include matches ``p`` itself (True if no includes): :meth:`included` for a
        path none of whose ancestors is included, as a walk that stops at the first
        included directory knows of every path it checks."""
        if self.includes is None:
            return True
        return any(inc.matches(p) for inc in self.includes)

    def traverse_only(self, d: str) -> bool:
        """Directory d is not itself included but may hold included entries."""
        if self.includes is None:
            return False
        return any(inc.may_select_below(d) for inc in self.includes)

    def rescues_below(self, d: str) -> bool:
        """Under the include-wins reading, an include may select something below the
        excluded directory ``d``: the walk looks inside it."""
        return self.reading.precedence == "include" and self.traverse_only(d)

    def ignored_anywhere(self, p: str) -> bool:
        return any(self.default_ignored(a) for a in _ancestors_and_self(p))

    def selects(self, p: str) -> bool:
        """Is the entry at relative path p transferred (and counted)?"""
        if self.ignored_anywhere(p) or self.excluded(p):
            return False
        return self.included(p)
