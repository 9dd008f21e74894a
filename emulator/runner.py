"""The execution runner: launches queued executions, one at a time per agent and per task,
and walks each through DataSync's phases on a thread of its own.

LAUNCHING waits (for ever while the agent is OFFLINE), then pays DataSync's per-execution
start overhead (``launch_delay``) and fixes the filters the run selects by; then every phase
of :data:`PHASES` runs its work, lasts at least ``phase_delay`` seconds and records its
status and duration in the execution's ``Result``. Each entry transferred costs the per-file
overhead (``file_delay``). Every wait and every entry copied is a checkpoint: a cancel
ends the execution, a stop of the emulator abandons it, and an agent OFFLINE for longer
than ``offline_error_delay`` fails it. Walking the source and writing the destination
are :mod:`emulator.transfer`'s; what runs here is what DataSync's agent decides and counts.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import transfer
from .filters import FilterError, FilterSet, merge_rules
from .resources import OCCUPYING, TERMINAL, ExecFailed, Execution, State

CHUNK = 64 * 1024
"""Bytes copied between two checkpoints (fewer under a bandwidth limit)."""


class _Cancelled(Exception):
    """CancelTaskExecution asked this execution to stop."""


class _AgentOffline(Exception):
    """The execution's agent stayed OFFLINE longer than ``offline_error_delay``."""


class _Stopping(Exception):
    """The emulator is shutting down: leave the execution as it is."""


@dataclass
class _Job:
    """One execution's run: where it reads and writes, and what each phase hands the next."""

    execution: Execution
    filters: FilterSet
    src_dir: str
    dst_dir: str
    entries: list[transfer.Entry] = field(default_factory=list)
    transferred: list[transfer.Entry] = field(default_factory=list)


def _prepare(st: State, job: _Job) -> None:
    """List what the filters select (the Basic mode quota applies here) and estimate what is left."""
    e = job.execution
    job.entries = transfer.plan(job.src_dir, job.filters)
    if e.task_mode == "BASIC" and len(job.entries) > st.item_quota:
        raise ExecFailed("ItemQuotaExceeded",
                         f"{len(job.entries)} items exceed the Basic mode quota of {st.item_quota} "
                         f"items per task execution")
    with st.lock:
        for x in job.entries:
            if x.kind != "dir":
                st.selections[f"{job.src_dir}:{x.rel}"] += 1
    _estimate(st, e, job.entries, job.dst_dir)


def _transfer_selected(st: State, job: _Job) -> None:
    job.transferred = _transfer(st, job.execution, job.entries, job.src_dir, job.dst_dir)


def _verify_selected(st: State, job: _Job) -> None:
    """Check what VerifyMode asks for: everything selected, only what was transferred, or nothing."""
    mode = job.execution.options.get("VerifyMode", "POINT_IN_TIME_CONSISTENT")
    if mode != "NONE":
        todo = job.entries if mode == "POINT_IN_TIME_CONSISTENT" else job.transferred
        _verify(st, job.execution, todo, job.dst_dir)


@dataclass(frozen=True)
class Phase:
    """One phase of an execution after LAUNCHING."""

    status: str
    """The execution's Status while the phase runs."""
    result: str
    """Its name in the execution's Result: ``<result>Status`` and ``<result>Duration``."""
    work: Callable[[State, _Job], None]


PHASES = (Phase("PREPARING", "Prepare", _prepare),
          Phase("TRANSFERRING", "Transfer", _transfer_selected),
          Phase("VERIFYING", "Verify", _verify_selected))
RUNNING_PHASES = tuple(phase.status for phase in PHASES)


def schedule_locked(st: State) -> None:
    """Launch every QUEUED execution whose agent and task are free (FIFO). Hold ``st.lock``."""
    if st.stopping:
        return
    busy_agents = {e.agent_arn for e in st.executions.values()
                   if e.status in OCCUPYING and e.agent_arn is not None}
    ordered = sorted(st.executions.values(), key=lambda e: e.seq)
    for e in ordered:
        if e.status != "QUEUED":
            continue
        if e.agent_arn is not None and e.agent_arn in busy_agents:
            continue
        blocked = any(o.task_arn == e.task_arn and o.seq < e.seq and o.status not in TERMINAL
                      for o in ordered)
        if blocked:
            continue
        e.status = "LAUNCHING"
        e.launch_time = time.time()
        if e.agent_arn is not None:
            busy_agents.add(e.agent_arn)
        e.thread = threading.Thread(target=_run, args=(st, e), daemon=True,
                                    name=f"exec-{e.arn[-17:]}")
        e.thread.start()
    st.cond.notify_all()


def finish_locked(st: State, e: Execution, status: str, code: str | None = None, detail: str | None = None) -> None:
    """End an execution (SUCCESS, or ERROR with its code and detail) and launch what it held
    back. Hold ``st.lock``."""
    now = time.time()
    e.status = status
    e.end_time = now
    r = e.result
    if status == "ERROR":
        for phase in PHASES:
            if r[f"{phase.result}Status"] == "PENDING":
                r[f"{phase.result}Status"] = "ERROR"
                break
        r["ErrorCode"] = code or "Error"
        r["ErrorDetail"] = detail or ""
    r["TotalDuration"] = int((now - (e.launch_time or e.start_time)) * 1000)
    schedule_locked(st)
    st.cond.notify_all()


def stop(st: State, timeout: float = 5.0) -> None:
    """Tell every execution thread to stop, and wait up to ``timeout`` seconds for them."""
    with st.lock:
        st.stopping = True
        st.cond.notify_all()
        threads = [e.thread for e in st.executions.values() if e.thread is not None]
    deadline = time.time() + timeout
    for th in threads:
        th.join(max(0.0, deadline - time.time()))


def _run(st: State, e: Execution) -> None:
    """Run one execution to its end, and end it in ERROR with DataSync's code for what stopped it."""
    phase_t0 = [time.time()]  # when the current phase began: a failure's duration counts from it
    try:
        try:
            _execute(st, e, phase_t0)
        except _Cancelled:
            _fail(st, e, phase_t0[0], "OperationAborted", "Task execution was cancelled by the user")
        except _AgentOffline as exc:
            ag = exc.args[0]
            _fail(st, e, phase_t0[0], "AgentOffline",
                  f"The DataSync agent {ag.arn} ({ag.name}) went offline during the "
                  f"task execution and did not reconnect within "
                  f"{st.offline_error_delay:g} seconds")
        except ExecFailed as exc:
            _fail(st, e, phase_t0[0], exc.code, exc.detail)
        except OSError as exc:
            _fail(st, e, phase_t0[0], "TransferFailed", f"{type(exc).__name__}: {exc}")
    except _Stopping:
        return
    except Exception as exc:  # pragma: no cover - defensive
        try:
            _fail(st, e, phase_t0[0], "InternalError", repr(exc))
        except Exception:
            pass


def _execute(st: State, e: Execution, phase_t0: list[float]) -> None:
    """Launch (stuck while the agent is OFFLINE, then the start overhead), then each phase."""
    _wait(st, e, st.phase_delay, running=False)
    _wait(st, e, st.launch_delay, running=False)
    src_dir, dst_dir = _resolve_dirs(st, e)
    e.source_dir, e.dest_dir = src_dir, dst_dir
    includes, excludes = _filters_at_launch(st, e)
    try:
        filters = FilterSet.from_rules(includes, excludes, st.reading)
    except FilterError as exc:
        raise ExecFailed("InvalidFilter", str(exc)) from exc
    job = _Job(e, filters, src_dir, dst_dir)
    for phase in PHASES:
        _set_status(st, e, phase.status)
        phase_t0[0] = time.time()
        phase.work(st, job)
        _wait(st, e, st.phase_delay - (time.time() - phase_t0[0]), running=True)
        with st.lock:
            e.result[f"{phase.result}Status"] = "SUCCESS"
            e.result[f"{phase.result}Duration"] = int((time.time() - phase_t0[0]) * 1000)
            if phase is PHASES[-1]:  # in the same hold of the lock: no cancel in between
                finish_locked(st, e, "SUCCESS")


def _fail(st: State, e: Execution, phase_t0: float, code: str, detail: str) -> None:
    """End the execution in ERROR; the phase it failed in gets its duration so far."""
    with st.lock:
        if st.stopping:
            return
        took = int((time.time() - phase_t0) * 1000)
        for phase in PHASES:
            if e.result[f"{phase.result}Status"] == "PENDING":
                if e.status in RUNNING_PHASES or e.status == "CANCELLING":
                    e.result[f"{phase.result}Duration"] = took
                break
        finish_locked(st, e, "ERROR", code, detail)


# ------------------------------------------------------------------ checkpoints
def _gate(st: State, e: Execution, running: bool) -> None:
    """Raise if the execution must stop; block while its agent is OFFLINE.

    Must be called with the lock held.  Returns when the agent is ONLINE.
    """
    while True:
        if st.stopping:
            raise _Stopping()
        if e.cancel_requested:
            raise _Cancelled()
        ag = st.agents.get(e.agent_arn) if e.agent_arn else None
        if ag is None or ag.status == "ONLINE":
            return
        if running:
            left = (ag.offline_since or time.time()) + st.offline_error_delay - time.time()
            if left <= 0:
                raise _AgentOffline(ag)
            st.cond.wait(left)
        else:
            st.cond.wait(1.0)


def _wait(st: State, e: Execution, seconds: float, running: bool) -> None:
    """Wait `seconds` (wall clock) while honouring cancel/offline/stop."""
    deadline = time.time() + seconds
    with st.lock:
        while True:
            _gate(st, e, running)
            left = deadline - time.time()
            if left <= 0:
                return
            st.cond.wait(left)


def _checkpoint(st: State, e: Execution) -> None:
    with st.lock:
        _gate(st, e, running=True)


def _set_status(st: State, e: Execution, status: str) -> None:
    with st.lock:
        _gate(st, e, running=e.status in RUNNING_PHASES)
        e.status = status
        st.cond.notify_all()


# ------------------------------------------------------------ what a phase does
def _resolve_dirs(st: State, e: Execution) -> tuple[str, str]:
    """The local directories the execution reads (its NFS export) and writes (its S3 prefix)."""
    with st.lock:
        t = st.tasks.get(e.task_arn)
        src = st.locations.get(t.source) if t else None
        dst = st.locations.get(t.dest) if t else None
    if src is None or dst is None:
        raise ExecFailed("InvalidLocation", "The task's locations no longer exist")
    if src.type != "NFS" or dst.type != "S3":
        raise ExecFailed("UnsupportedTransfer",
                         "The emulator transfers only from an NFS location to an S3 location")
    src_dir = st.export_dir(src)
    sub = dst.subdirectory.strip("/")
    dst_dir = os.path.join(st.s3_root, dst.bucket, *sub.split("/")) if sub \
        else os.path.join(st.s3_root, dst.bucket)
    return src_dir, dst_dir


def _filters_at_launch(st: State, e: Execution) -> tuple[list, list]:
    """The Includes and Excludes this run selects by, recorded on the execution. ``replace``:
    the execution's own, else the task's when it started. ``merge``: the union of the task's,
    as the task holds them now that LAUNCHING ends, and the execution's own."""
    with st.lock:
        t = st.tasks.get(e.task_arn)
        if st.execution_filters == "merge" and t is not None:
            e.used_includes = merge_rules(t.includes, e.own_includes)
            e.used_excludes = merge_rules(t.excludes, e.own_excludes)
        else:
            e.used_includes, e.used_excludes = e.includes, e.excludes
        return e.used_includes, e.used_excludes


def _estimate(st: State, e: Execution, entries: list[transfer.Entry], dst_dir: str) -> None:
    """What is left to transfer: in CHANGED mode the difference between source and
    destination (0 over a complete copy), in ALL mode everything selected."""
    if e.options.get("TransferMode") == "ALL":
        todo = entries
    else:
        never = e.options.get("OverwriteMode") == "NEVER"
        todo = [en for en in entries if not transfer.is_current(en, transfer.dest_path(dst_dir, en.rel), never)]
    folders = sum(1 for en in todo if en.kind == "dir") if e.task_mode == "ENHANCED" else 0
    with st.lock:
        e.counters["EstimatedFilesToTransfer"] = len(todo) - folders
        e.counters["EstimatedBytesToTransfer"] = sum(x.size for x in todo)
        if e.task_mode == "ENHANCED":
            e.counters["EstimatedFoldersToTransfer"] = folders


def _count(st: State, e: Execution, entry: transfer.Entry, what: str) -> None:
    """Count one entry as Transferred, Skipped or Verified: Enhanced mode counts
    directories as folders, Basic mode as files."""
    kind = "Folders" if e.task_mode == "ENHANCED" and entry.kind == "dir" else "Files"
    _bump(st, e, **{kind + what: 1})


def _bump(st: State, e: Execution, **kw: int) -> None:
    with st.lock:
        for k, v in kw.items():
            e.counters[k] += v


def _count_write(st: State, path: str) -> None:
    with st.lock:
        st.writes[path] += 1


def _rate(st: State, e: Execution) -> int | None:
    """Bytes per second this execution may copy: the lower of its agent's and its own limit."""
    with st.lock:
        rates = []
        ag = st.agents.get(e.agent_arn) if e.agent_arn else None
        if ag and ag.bytes_per_second:
            rates.append(ag.bytes_per_second)
        bps = e.options.get("BytesPerSecond", -1)
        if bps and bps > 0:
            rates.append(bps)
        return min(rates) if rates else None


class Pace:
    """One execution's clock for its modelled costs: each entry's overhead and its bytes over
    the bandwidth fall due one after another, so the emulator's own work on an entry (opening,
    writing, renaming) is spent inside the modelled time instead of on top of it. A lag of up to
    SLACK seconds is made up (an emulator busy on 2 cores took 1.4 to 3.1 times the model
    when each wait came after the work); more is forgiven, so that an agent's time OFFLINE
    or an emulator slower than the model never buys a burst of unpaced entries."""

    SLACK = 0.5

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.due = clock()

    def owe(self, seconds: float) -> float:
        """Add ``seconds`` of modelled work; the seconds left to wait for all of it."""
        now = self.clock()
        self.due = max(self.due, now - self.SLACK) + seconds
        return self.due - now


def _transfer(st: State, e: Execution, entries: list[transfer.Entry], src_root: str,
              dst_root: str) -> list[transfer.Entry]:
    opts = e.options
    mode_all = opts.get("TransferMode") == "ALL"
    never_overwrite = opts.get("OverwriteMode") == "NEVER"
    keep_perm = opts.get("PosixPermissions", "PRESERVE") == "PRESERVE"
    keep_mtime = opts.get("Mtime", "PRESERVE") == "PRESERVE"
    os.makedirs(dst_root, exist_ok=True)
    real_root = os.path.realpath(dst_root)
    real_s3 = os.path.realpath(st.s3_root)
    if not _inside(real_root, real_s3):
        raise ExecFailed("TransferFailed",
                         f"destination {dst_root} resolves outside the S3 root")
    transferred = []
    dir_modes = []
    pace = Pace()
    # Parents made and found inside the root: each checked once per execution (a real
    # directory cannot be renamed over by a link, so what was inside stays inside).
    parents_inside: set[str] = set()
    for en in entries:
        _checkpoint(st, e)
        dst = transfer.dest_path(dst_root, en.rel)
        parent = os.path.dirname(dst)
        if parent not in parents_inside:
            os.makedirs(parent, exist_ok=True)
            if not _inside(os.path.realpath(parent), real_root):
                # a symlink copied earlier sits where a directory is expected
                raise ExecFailed("TransferFailed",
                                 f"{en.rel}: a parent directory at the destination is a "
                                 f"symbolic link; refusing to write through it")
            parents_inside.add(parent)
        current = transfer.is_current(en, dst, never_overwrite)
        if en.kind == "dir":
            dir_modes.append((dst, en))
        # an existing directory is transferred again in ALL mode, even under OverwriteMode NEVER
        if current and (not mode_all or (never_overwrite and en.kind != "dir")):
            _count(st, e, en, "Skipped")
            continue
        _wait(st, e, pace.owe(st.file_delay), running=True)  # DataSync's per-file overhead
        _write_entry(st, e, en, src_root, dst, current, keep_perm, keep_mtime, pace)
        _count(st, e, en, "Transferred")
        transferred.append(en)
    # directory metadata last (a read-only source dir must not block writes)
    for dst, en in reversed(dir_modes):
        os.chmod(dst, en.mode if keep_perm else 0o755)
        if keep_mtime:
            os.utime(dst, ns=(en.atime_ns, en.mtime_ns))
    return transferred


def _write_entry(st: State, e: Execution, en: transfer.Entry, src_root: str, dst: str, current: bool,
                 keep_perm: bool, keep_mtime: bool, pace: Pace) -> None:
    """Write one entry at the destination: a directory (its metadata comes last), a link, a file."""
    if en.kind == "dir":
        if not current:
            os.mkdir(dst, 0o700)
            _count_write(st, dst)
        return
    if en.kind == "symlink":
        transfer.write_symlink(en, dst)
    else:
        _copy_file(st, e, en, src_root, dst, keep_perm, keep_mtime, pace)
    _count_write(st, dst)


def _copy_file(st: State, e: Execution, en: transfer.Entry, src_root: str, dst: str,
               keep_perm: bool, keep_mtime: bool, pace: Pace) -> None:
    src = os.path.join(src_root, *en.rel.strip("/").split("/"))
    tmp = transfer.temp_name(dst)
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            while True:
                rate = _rate(st, e)  # read for each piece: a limit lifted or set takes effect at once
                n = CHUNK if not rate else max(1024, min(CHUNK, rate // 10))
                buf = fin.read(n)
                if not buf:
                    break
                fout.write(buf)
                _bump(st, e, BytesTransferred=len(buf), BytesWritten=len(buf))
                if rate:
                    _wait(st, e, pace.owe(len(buf) / rate), running=True)
                else:
                    _checkpoint(st, e)
        os.chmod(tmp, en.mode if keep_perm else 0o644)
        if keep_mtime:
            os.utime(tmp, ns=(en.atime_ns, en.mtime_ns))
        _checkpoint(st, e)
        os.replace(tmp, dst)
    except BaseException:
        transfer.discard(tmp)
        raise


def _verify(st: State, e: Execution, entries: list[transfer.Entry], dst_root: str) -> None:
    for en in entries:
        _checkpoint(st, e)
        dst = transfer.dest_path(dst_root, en.rel)
        try:
            found = os.lstat(dst)
        except FileNotFoundError:
            raise ExecFailed("VerificationFailed", f"{en.rel} is missing at the destination") from None
        ok = ((en.kind == "dir" and stat.S_ISDIR(found.st_mode))
              or (en.kind == "symlink" and stat.S_ISLNK(found.st_mode))
              or (en.kind == "file" and stat.S_ISREG(found.st_mode) and found.st_size == en.size))
        if not ok:
            raise ExecFailed("VerificationFailed",
                             f"{en.rel} differs between source and destination")
        _count(st, e, en, "Verified")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
