"""Audit a migration: compare the share with its destination, as a whole.

parse flags -> check input -> the run's tasks and chunks (for who should have carried what)
-> stream the source (the mount, the manifest) and the destination (the S3 location's
bucket and prefix, or a mounted destination) in key order -> merge -> report

Installed as ``datasync-multi-audit``; ``datasync_multi_audit.py`` in a checkout runs the
same ``main``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import Any, TextIO

from . import datasync as ds
from .audit import CATEGORIES, METADATA_READERS, MISSING, Audit, Carrier, Carriers, Difference, Tally, parse_mtime
from .cli import Parser, run, setup_logging
from .errors import EXIT_OK, UserError
from .files import check_writable, read_json
from .ledger import Ledger, ledger_path
from .manifest import read_manifest
from .ordered import DIR, OBJECT, Entry, OrderedWalk
from .plan import Plan

log = logging.getLogger("audit")
LOG_FILE = "ds_audit.log"
EXIT_DIFFERENT = 7

EXIT_CODES = f"""exit codes:
  0   the destination holds every entry in scope, with its size (and, where read, its
      modification time), and nothing else
  {EXIT_DIFFERENT}   differences: the console counts them with examples, the report lists every one
  1   an AWS call failed after retries
  2   bad input (flags, manifest, a location that is not S3, no AWS credentials)"""

USAGE = """%(prog)s --mount_path_dir DIR --dest_loc ARN [options]
       %(prog)s --mount_path_dir DIR --dest_mount DIR [options]"""


def parse(argv: list[str] | None):
    p = Parser(description=__doc__.splitlines()[0], epilog=EXIT_CODES, usage=USAGE)
    p.add_flag("--mount_path_dir", required=True, metavar="DIR", help="where the source export is mounted; required")
    p.add_flag("--source_file", default="source_file.manifest", help="the directories in scope, one per line")
    p.add_flag("--dest_loc", metavar="ARN", help="the S3 destination location: its bucket and prefix are listed")
    p.add_flag("--dest_mount", metavar="DIR",
               help="a destination mounted here instead (EFS, FSx over NFS): both sides by lstat")
    p.add_flag("--metadata_sample", default="1000", metavar="N|all",
               help="with --dest_loc: objects whose modification time is read (one HeadObject each), at random; "
                    "'all' for every one, 0 for none (default 1000)")
    p.add_flag("--mtime_window_sec", type=float, default=1.0,
               help="modification times closer than this are the same (default 1)")
    p.add_flag("--report", default="audit_report.jsonl", help="the complete lists, one JSON line per difference")
    p.add_flag("--arn_file", default="arn_file.txt",
               help="the run's arn file: its ledger (or --plan_file) says which task or chunk should carry each path")
    p.add_flag("--ledger_file", help="the run's ledger (default: <arn_file>.ledger.json)")
    p.add_flag("--plan_file", default="plan.json", help="read for the tasks or chunks when there is no ledger")
    p.add_flag("--scan_workers", type=int, help="threads reading each mounted tree (default as the scan's)")
    p.add_aws_and_log_flags(LOG_FILE)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run(audit, argv, LOG_FILE)


def audit(argv: list[str] | None) -> int:
    a = parse(argv)
    setup_logging(LOG_FILE, a.log_dir, a.verbose)
    sample = _check(a)
    manifest = read_manifest(a.source_file, a.mount_path_dir)
    roots = manifest.entries
    carriers = load_carriers(ledger_path(a.arn_file, a.ledger_file), a.plan_file)
    source = OrderedWalk(a.mount_path_dir, roots, a.scan_workers)
    checker = Audit(carriers, int(a.mtime_window_sec * 1e9))
    if a.dest_mount:
        dest: Any = OrderedWalk(a.dest_mount, roots, a.scan_workers)
        where = a.dest_mount
    else:
        s3 = ds.make_s3_client(a.region, a.profile, a.endpoint_url, connections=METADATA_READERS + 1)  # + the listing
        bucket, prefix = ds.s3_location(ds.make_client(a.region, a.profile, a.endpoint_url), a.dest_loc)
        dest = s3_entries(s3, bucket, prefix, roots)
        where = f"s3://{bucket}/{prefix}"
        if sample != 0:
            checker.metadata = lambda d: _mtime_of(s3, bucket, prefix, d)
            checker.sample = sample
    log.info("auditing %s against %s (%d manifest entr%s)", a.mount_path_dir, where, len(roots),
             "y" if len(roots) == 1 else "ies")
    with open(a.report, "w", encoding="utf-8") as report:
        tally = checker.run(source, dest, lambda d: _write(report, d.to_json()))
        _write(report, tally.to_json())
    if source.past_limit:
        log.info("%d source entr%s past DataSync's path limit not compared", source.past_limit,
                 "y lies" if source.past_limit == 1 else "ies lie")
    print(summary(tally, where, a.report), flush=True)
    return EXIT_OK if tally.same else EXIT_DIFFERENT


def _check(a) -> int | None:
    """Refuse bad input in one line; the metadata sample (None: every object)."""
    if bool(a.dest_loc) == bool(a.dest_mount):
        raise UserError("give the destination: --dest_loc ARN (S3) or --dest_mount DIR, one of them")
    for flag in ("mount_path_dir", "dest_mount"):
        path = getattr(a, flag)
        if path is not None and not os.path.isdir(path):
            raise UserError(f"--{flag} {path!r} is not a directory")
    if a.dest_loc and not ds.model_pattern("LocationArn").fullmatch(a.dest_loc):
        raise UserError(f"--dest_loc {a.dest_loc!r} is not a valid LocationArn")
    if a.mtime_window_sec < 0:
        raise UserError("--mtime_window_sec must not be negative")
    if a.scan_workers is not None and a.scan_workers < 1:
        raise UserError("--scan_workers must be at least 1")
    check_writable(a.report, "--report")
    if a.metadata_sample == "all":
        return None
    if not a.metadata_sample.isdigit():
        raise UserError(f"--metadata_sample {a.metadata_sample!r} is neither a count nor 'all'")
    return int(a.metadata_sample)


def s3_entries(client, bucket: str, prefix: str, roots: tuple[str, ...]) -> Iterator[Entry]:
    """The objects under each root of the location, in key order (the roots' own order is
    the walk's: each root's keys form one block)."""
    for root in sorted(roots, key=lambda r: os.fsencode(r + "/" if r else "")):
        under = prefix + (root + "/" if root else "")
        for obj in ds.list_objects(client, bucket, under):
            key = obj["Key"][len(prefix):].encode("utf-8")
            if key:
                yield Entry(key, DIR if key.endswith(b"/") else OBJECT, int(obj["Size"]))


def _mtime_of(client, bucket: str, prefix: str, d: Entry) -> int | str:
    try:
        return parse_mtime(ds.object_metadata(client, bucket, prefix + d.key.decode("utf-8")))
    except ds.AWSError as exc:
        return f"its metadata could not be read: {ds.describe_error(exc)}"


def load_carriers(ledger_file: str, plan_file: str) -> Carriers | None:
    """The run's tasks or chunks, with how their executions ended, from the ledger (or the plan
    file, without executions); None when neither is there."""
    if os.path.exists(ledger_file):
        ledger = Ledger.read(ledger_file)
        if ledger.dispatch is not None:
            return Carriers([_chunk_carrier(ledger, c) for c in ledger.dispatch.chunks])
        if ledger.run is not None:
            return Carriers([_task_carrier(ledger, name, planned.includes) for name, planned in
                             ledger.run.scopes.items()])
    data = read_json(plan_file, what="plan file")
    if data is None:
        log.warning("no ledger (%s) and no plan file (%s): missing entries are not traced to a task", ledger_file,
                    plan_file)
        return None
    plan = Plan.from_json(data)
    return Carriers([Carrier(f"chunk {c.index}", c.includes) for c in plan.chunks]
                    or [Carrier(f"task {t.name}", t.includes) for t in plan.tasks])


def _chunk_carrier(ledger: Ledger, chunk) -> Carrier:
    latest = chunk.latest
    execution = latest.execution or "" if latest else ""
    ended = ledger.finished.get(execution)
    return Carrier(f"chunk {chunk.index}", chunk.includes, execution, ended.status if ended else "")


def _task_carrier(ledger: Ledger, name: str, includes: tuple[str, ...]) -> Carrier:
    scope = next((s for s in ledger.scopes.values() if s.planned is not None and s.planned.task_name == name), None)
    execution = scope.latest.execution or "" if scope is not None else ""
    ended = ledger.finished.get(execution)
    return Carrier(f"task {name}", includes, execution, ended.status if ended else "")


def _write(fh: TextIO, record: dict[str, Any]) -> None:
    fh.write(json.dumps(record, ensure_ascii=False) + "\n")


def summary(tally: Tally, where: str, report: str) -> str:
    """The console's account: counts, and the first examples of each kind of difference."""
    lines = [f"audit of {where}: {tally.source_entries:,} source entries, {tally.dest_entries:,} at the destination, "
             f"{tally.matched:,} the same" + (f", {tally.metadata_checked:,} modification times read"
                                             if tally.metadata_checked else "")]
    if tally.same:
        lines.append("the destination holds every entry in scope, and nothing else")
    for category in CATEGORIES:
        count = tally.counts[category]
        if not count:
            continue
        lines.append(f"{category}: {count:,}")
        for d in tally.examples[category]:
            lines.append(f"  {d.path}" + (f": {d.detail}" if d.detail else "") + _carried(d))
    if not tally.same:
        lines.append(f"every difference: {report}")
    return "\n".join(lines)


def _carried(d: Difference) -> str:
    if d.category != MISSING or not d.carriers:
        return ""
    c = d.carriers
    status = f" ({c['execution'].rsplit('/', 1)[-1]}, {c['status']})" if c.get("execution") else ""
    return f" -- {c['verdict']}{status}"


