"""What the watcher shows at each check: one summary line, and the full table only when
something changed (a start, an end, a failure, a move, an error) or when asked (--table).

On a terminal the summary line redraws in place; elsewhere (cron, a pipe) it is a plain
line, repeated at most once a minute while nothing changes. The log file keeps every
table shown and the summary at the same pace, so a long migration's log holds every
change and not every repetition. What was last shown is kept beside the ledger, so a
watcher under cron (one check per run) shows the table only when something changed too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from dataclasses import dataclass, field
from typing import TextIO

from .cli import FILE_ONLY
from .errors import RecordError
from .files import read_json, write_json
from .report import Outcome

log = logging.getLogger("ha")

QUIET_FOR = 60.0
"""Seconds an unchanged summary is not repeated in the log, or on a stream that is not a terminal."""


@dataclass
class Display:
    state_file: str
    """Where what was last shown is kept (beside the ledger)."""
    table_always: bool = False
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    redraw: bool | None = None
    """Redraw the summary in place (None: when the stream is a terminal)."""
    _pending: bool = False
    """A redrawn line is on the terminal without its newline."""

    def __post_init__(self) -> None:
        if self.redraw is None:
            self.redraw = self.stream.isatty()

    def show(self, result: Outcome, now: float) -> None:
        last = self._last()
        fingerprint = hashlib.sha256(json.dumps(result.fingerprint(), default=str).encode()).hexdigest()
        changed = result.acted or fingerprint != last.get("fingerprint")
        due = changed or now - float(last.get("said", 0.0)) >= QUIET_FOR
        summary = result.summary()
        if changed or self.table_always:
            table = result.table()  # it says the job's totals too, so no summary line follows it
            self._print(table)
            for line in table.splitlines():
                log.info("%s", line, extra=FILE_ONLY)
        elif due:
            log.info("%s", summary, extra=FILE_ONLY)
        if self.redraw:
            self.stream.write("\r\x1b[K" + summary)
            self.stream.flush()
            self._pending = True
        elif due and not (changed or self.table_always):
            self._print(summary)
        shown = {"fingerprint": fingerprint, "said": now if due else last.get("said", 0.0)}
        if shown != last:
            self._keep(shown)

    def close(self) -> None:
        """End a redrawn line, so what follows starts on a line of its own."""
        if self._pending:
            self.stream.write("\n")
            self.stream.flush()
            self._pending = False

    def _print(self, text: str) -> None:
        self.close()
        print(text, file=self.stream, flush=True)

    def _last(self) -> dict:
        try:
            last = read_json(self.state_file, default={})
        except Exception:  # noqa: BLE001 - what was shown is not a record: a damaged one is shown again
            return {}
        return last if isinstance(last, dict) else {}

    def _keep(self, shown: dict) -> None:
        try:
            write_json(self.state_file, shown)
        except RecordError as exc:  # a full disk: the table is shown again next time, nothing worse
            log.debug("could not keep what was shown: %s", exc)
