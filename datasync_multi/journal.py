"""A live run's journal: what the scan decided, one JSON line at a time, each on disk before
anything depends on it.

Lines, in order: ``begin`` (the run, the roots, how chunks are sized), then ``cut`` (a
directory's cut, before any of its units), ``unit`` (a unit closed, into the packer's
pool, and when), ``chunk`` (units packed, before they can be started: the dispatcher only
starts chunks it reads here) and ``progress`` (what the scan has read) as they come, and
``end`` once the scan has finished. Every line is appended and flushed to disk
(``files.append_line``), but for ``unit`` lines, which reach the disk with the next line
that is (a unit lost is walked again); a line a kill cut short is ignored when read, and
removed before the next append.

While a scheduler scans, it holds the journal's lock (:func:`scanning`); a watcher asks
:func:`scan_alive` to tell a scan still running from one that stopped midway, which only
a rerun of the scheduler can finish.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import UserError
from .files import append_line, record_error
from .live import CutRecord, Resume, Sizing
from .plan import Chunk, chunk_from_json, unit_from_json, unit_json
from .split import Unit

UNIT = "unit"
UNIT_LINE = json.dumps({"kind": UNIT})[:-1]
"""How a ``unit`` line begins (``kind`` is every line's first key): skipped unread where not needed."""


def journal_path(ledger_file: str) -> str:
    return ledger_file + ".journal"


@dataclass
class ScanProgress:
    """What the scan has read so far, as the journal last said."""

    dirs: int = 0
    files: int = 0
    bytes: int = 0
    at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"dirs": self.dirs, "files": self.files, "bytes": self.bytes, "at": self.at}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScanProgress:
        return cls(int(data["dirs"]), int(data["files"]), int(data["bytes"]), float(data["at"]))


@dataclass
class Journal:
    """A journal as read: its begin line, cuts, chunks, the last progress, whether it ended."""

    path: str
    run: str = ""
    roots: tuple[str, ...] = ()
    sizing: Sizing | None = None
    estimate_note: str = ""
    cuts: dict[str, CutRecord] = field(default_factory=dict)
    chunks: list[Chunk] = field(default_factory=list)
    units: list[Unit] | None = field(default_factory=list)
    """The units the journal held when read (each unit the scan closed, in a chunk or still in
    the packer's pool; not those appended since); None when read without them."""
    progress: ScanProgress = field(default_factory=ScanProgress)
    ended: bool = False
    warnings: tuple[str, ...] = ()

    @classmethod
    def read(cls, path: str, units: bool = False) -> Journal:
        """The journal in ``path`` (empty if there is none); a last line without its end (a
        kill during the append) is not read. Its ``unit`` lines only with ``units`` (a resume
        needs them; a check, which reads the journal each time, does not)."""
        journal = cls(path, units=[] if units else None)
        try:
            with open(path, encoding="utf-8") as fh:
                lines = fh.read().split("\n")[:-1]
        except FileNotFoundError:
            return journal
        except OSError as exc:
            raise UserError(f"cannot read the scan's journal {path!r}: {exc.strerror or exc}") from None
        for number, line in enumerate(lines, 1):
            if not units and line.startswith(UNIT_LINE):
                continue
            try:
                journal._add(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                raise UserError(f"the scan's journal {path!r} is damaged at line {number} ({exc}): put back a copy "
                                "of it, or move it and the ledger aside and start the run again") from None
        return journal

    def _add(self, record: dict[str, Any]) -> None:
        kind = record["kind"]
        if kind == "begin":
            self.run = str(record["run"])
            self.roots = tuple(str(r) for r in record["roots"])
            self.sizing = Sizing.from_json(record["sizing"])
            self.estimate_note = str(record.get("estimate", ""))
        elif kind == "cut":
            cut = CutRecord.from_json(record)
            self.cuts[cut.rel] = cut
        elif kind == "chunk":
            self.chunks.append(chunk_from_json(record["chunk"]))
        elif kind == UNIT and self.units is not None:
            self.units.append(unit_from_json(record["unit"]))
        elif kind == "progress":
            self.progress = ScanProgress.from_json(record)
        elif kind == "end":
            self.ended = True
            self.progress = ScanProgress.from_json(record)
            self.warnings = tuple(str(w) for w in record.get("warnings", []))

    def resume(self) -> Resume:
        """What a rerun keeps: the cuts as they were, what the chunks carry, and the units
        closed but in no chunk yet (the packer's pool when the run stopped)."""
        assert self.units is not None, "a journal read without its units cannot be resumed"
        packed = {p for c in self.chunks for p in c.includes}
        pooled = [u for u in self.units if u.pattern not in packed]
        return Resume(dict(self.cuts), packed | {u.pattern for u in pooled},
                      max((c.index for c in self.chunks), default=-1) + 1, sum(c.cost for c in self.chunks), pooled)

    # -- writing ------------------------------------------------------------------

    def begin(self, run: str, roots: tuple[str, ...], sizing: Sizing, estimate_note: str) -> None:
        self.run, self.roots, self.sizing, self.estimate_note = run, roots, sizing, estimate_note
        self._append({"kind": "begin", "run": run, "roots": list(roots), "sizing": sizing.to_json(),
                      "estimate": estimate_note})

    def cut(self, record: CutRecord) -> None:
        self.cuts[record.rel] = record
        self._append({"kind": "cut", **record.to_json()})

    def unit(self, unit: Unit) -> None:
        """A unit closed, and when (``at``: when its work could have started at the earliest;
        ``bench/live.py`` sets each run's makespan beside the ideal transfer of the work as it
        closed). Not forced to disk (a unit lost is only walked again), but on disk before any
        chunk line after it."""
        self._append({"kind": UNIT, "unit": unit_json(unit), "at": time.time()}, durable=False)

    def chunk(self, chunk: Chunk) -> None:
        self._append({"kind": "chunk", "chunk": chunk.to_json()})
        self.chunks.append(chunk)

    def note_progress(self, progress: ScanProgress) -> None:
        self.progress = progress
        self._append({"kind": "progress", **progress.to_json()})

    def end(self, progress: ScanProgress, warnings: list[str]) -> None:
        self._append({"kind": "end", **progress.to_json(), "warnings": warnings})
        self.ended, self.progress, self.warnings = True, progress, tuple(warnings)

    def _append(self, record: dict[str, Any], durable: bool = True) -> None:
        append_line(self.path, json.dumps(record, ensure_ascii=False), durable)

    def mend(self) -> None:
        """Remove a last line a kill cut short, so the next append starts a line of its own."""
        try:
            with open(self.path, "rb+") as fh:
                data = fh.read()
                if data and not data.endswith(b"\n"):
                    fh.truncate(data.rfind(b"\n") + 1)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise record_error(self.path, exc) from None


@contextlib.contextmanager
def scanning(path: str) -> Iterator[None]:
    """Held by the scheduler while it scans into the journal at ``path``."""
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits out a watcher's probe, never another scan (the run's lock is held)
        yield
    finally:
        os.close(fd)


def scan_alive(path: str) -> bool:
    """Whether a scheduler is scanning into the journal at ``path`` now."""
    try:
        fd = os.open(path + ".lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
