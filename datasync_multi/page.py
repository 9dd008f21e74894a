"""``--html FILE``: the picture of the run, written again at each check.

The page shows bytes moved over time, which no single check sees: each check appends
its sample (time, bytes moved, bytes planned) to a small file beside the ledger,
``<ledger>.progress.jsonl``, one JSON line each. The file stays small on a migration of
weeks: past ``MAX_SAMPLES`` lines the older half is thinned to every other sample, so
recent checks keep their detail and the start of the run is still there. The page
itself is replaced atomically, so a browser never reads half of it. Neither is a
record: a failure to write them is said once and never stops the watcher.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from . import picture, timeline
from .cli import FILE_ONLY
from .errors import RecordError
from .files import append_line, read_lines, write_atomic
from .ledger import Ledger
from .picture import Sample
from .records import Execution
from .report import Outcome

log = logging.getLogger("ha")

PROGRESS_SUFFIX = ".progress.jsonl"
MAX_SAMPLES = 1000
"""Samples kept beside the ledger (about 50 KB); past it, the older half is thinned."""
MIN_REFRESH = 5.0
"""Seconds: the page never asks the browser to reload it more often."""


def progress_file(ledger_file: str) -> str:
    return ledger_file + PROGRESS_SUFFIX


def read_samples(path: str) -> list[Sample]:
    """The samples kept; a line that is not one (a write a crash cut short) is skipped."""
    samples = []
    for line in read_lines(path):
        try:
            data = json.loads(line)
            samples.append(Sample(float(data["t"]), int(data["done"]), int(data["planned"])))
        except (ValueError, KeyError, TypeError):
            continue
    return samples


def record_sample(path: str, sample: Sample, keep: int = MAX_SAMPLES) -> list[Sample]:
    """Append this check's sample, thin the file if it grew past ``keep`` samples; every sample kept."""
    append_line(path, json.dumps({"t": sample.time, "done": sample.done, "planned": sample.planned}))
    samples = read_samples(path)
    if len(samples) > keep:
        samples = thin(samples)
        write_atomic(path, "".join(json.dumps({"t": s.time, "done": s.done, "planned": s.planned}) + "\n"
                                   for s in samples))
    return samples


def thin(samples: list[Sample]) -> list[Sample]:
    """Every other sample of the older half (its first kept), the newer half whole."""
    half = len(samples) // 2
    return samples[:half:2] + samples[half:]


class Page:
    """The page at one path, written after each check."""

    def __init__(self, path: str, refresh: float):
        self.path = path
        self.refresh = max(refresh, MIN_REFRESH)
        self.failing = False
        """The last write failed, and said so: the next failures are not said again."""

    def write(self, ledger: Ledger, seen: Mapping[str, Execution], statuses: Mapping[str, str], result: Outcome,
              now: float) -> None:
        """Record this check's sample and draw the page from it and the ledger. Any failure is
        logged once (a bug's traceback goes to the log file) and
        the watcher goes on: the page is a view of the run, never a reason to stop moving it."""
        try:
            samples = record_sample(progress_file(ledger.path), Sample(now, result.bytes_done, result.bytes_total))
            scene = timeline.scene_of(ledger, seen, statuses, result, samples[:-1], now, self.refresh)
            write_atomic(self.path, picture.render(scene))
        except Exception as exc:  # noqa: BLE001 - the page is not a record: the watcher must go on without it
            if not self.failing:
                log.warning("could not write the page %s (%s); the watcher goes on and tries again at each check",
                            self.path, " ".join(f"{type(exc).__name__}: {exc}".split()))
                if not isinstance(exc, (OSError, RecordError)):  # a bug: its traceback is the point
                    log.error("the page's traceback", exc_info=True, extra=FILE_ONLY)
            self.failing = True
            return
        if self.failing:
            log.info("the page %s is written again", self.path)
        self.failing = False
