"""A site for end-to-end tests: the sample share, a local S3, the emulator over both, and our
scripts run against it as subprocesses."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from commands import ROOT
from emulator.harness import Emulator
from emulator.sample import build_sample_share, differences

SERVER, EXPORT = "198.51.100.10", "/vol1"
SLOW = 60_000  # bytes per second: slow enough to act mid-transfer, fast enough for CI


@dataclass
class Site:
    """A share, a local S3, an emulator over them, and a way to run our scripts against it."""

    emu: Emulator
    share: str
    dest_dir: str
    dest_loc: str
    work: str

    @property
    def client(self):
        return self.emu.client()

    def command(self, script: str, *args: str) -> list[str]:
        return [sys.executable, os.path.join(ROOT, script), "--log_dir", os.path.join(self.work, "log"), *args]

    def run(self, script: str, *args: str, env_extra: dict | None = None, timeout: float = 120):
        env = self.emu.env()
        env.update(env_extra or {})
        return subprocess.run(self.command(script, *args), cwd=self.work, env=env, capture_output=True, text=True,
                              timeout=timeout)

    def spawn(self, script: str, *args: str, name: str) -> subprocess.Popen:
        """The script started and left running; its stdout and stderr go to ``<work>/<name>.out``
        and ``.err`` (files, not pipes: a chatty process never blocks on a full pipe)."""
        with open(os.path.join(self.work, name + ".out"), "w") as out, \
                open(os.path.join(self.work, name + ".err"), "w") as err:
            return subprocess.Popen(self.command(script, *args), cwd=self.work, env=self.emu.env(), stdout=out,
                                    stderr=err)

    def output(self, name: str) -> str:
        """What a spawned process has written to stdout and stderr so far."""
        return "".join(open(os.path.join(self.work, name + ext)).read() for ext in (".out", ".err"))

    def scheduler_args(self, *args: str) -> list[str]:
        return ["datasync_multi_agents_scheduler.py", "--task_name", "Mig_", "--nfs_server_name", SERVER,
                "--sub_dir", EXPORT, "--mount_path_dir", self.share, "--dest_loc", self.dest_loc,
                "--source_file", os.path.join(self.work, "source_file.manifest"), *args]

    def schedule(self, *args: str, **kw):
        return self.run(*self.scheduler_args(*args), **kw)

    def spawn_schedule(self, *args: str, name: str = "scheduler") -> subprocess.Popen:
        return self.spawn(*self.scheduler_args(*args), name=name)

    def watch(self, *args: str, **kw):
        return self.run("datasync_agent_ha.py", "--arn_file", "arn_file.txt", *args, **kw)

    def spawn_watch(self, *args: str, name: str = "watcher") -> subprocess.Popen:
        return self.spawn("datasync_agent_ha.py", "--arn_file", "arn_file.txt", *args, name=name)

    @property
    def journal(self) -> str:
        """A live run's journal (beside the ledger, where the watcher looks)."""
        return os.path.join(self.work, "arn_file.txt.ledger.json.journal")

    def arns(self) -> list[str]:
        """The executions recorded in the arn file (none if it was never written)."""
        try:
            with open(os.path.join(self.work, "arn_file.txt")) as fh:
                return [line.strip() for line in fh if line.strip()]
        except FileNotFoundError:
            return []

    def writes(self) -> dict[str, int]:
        return self.emu.state()["writes"]


@contextlib.contextmanager
def make_site(root, **emulator_options):
    """The sample share, an emulator over it (three Basic mode agents unless told otherwise;
    new tasks stay CREATING a moment, as in DataSync) and an S3 destination location."""
    share, dest, work = root / "share", root / "s3", root / "work"
    for d in (share, dest, work):
        d.mkdir()
    build_sample_share(str(share))
    (work / "source_file.manifest").write_text("/\n")
    options = dict(agents=3, phase_delay=0.02, offline_error_delay=0.5, task_create_delay=0.3)
    options.update(emulator_options)
    with Emulator().start({f"{SERVER}:{EXPORT}": str(share)}, str(dest), **options) as emu:
        yield Site(emu, str(share), str(dest / "migration-target" / "share"), s3_destination(emu.client()), str(work))


def s3_destination(client) -> str:
    """The S3 location the runs copy to: bucket migration-target, prefix /share."""
    return client.create_location_s3(
        S3BucketArn="arn:aws:s3:::migration-target", Subdirectory="/share",
        S3Config={"BucketAccessRoleArn": "arn:aws:iam::111122223333:role/datasync"})["LocationArn"]


def ledger(site) -> dict:
    """The run's ledger as the commands last saved it."""
    with open(os.path.join(site.work, "arn_file.txt.ledger.json")) as fh:
        return json.load(fh)


def chunks(site) -> list[dict]:
    """A dynamic run's chunks, from its ledger."""
    return ledger(site)["dispatch"]["chunks"]


def starts(site) -> int:
    """How many executions the emulator was asked to start."""
    return site.emu.calls()["calls"].get("StartTaskExecution", 0)


def run_to_the_end(site, *args: str):
    """The watcher in loop mode: it exits when every chunk has ended."""
    r = site.watch("--timeout_sec", "0.2", *args, timeout=240)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert "every chunk has succeeded" in r.stderr
    return r


def assert_exact_copy(site, retried: int = 0):
    """Destination == source, no path written twice, every execution DataSync made recorded
    in the ledger, once, each chunk run once (plus its retries), and each run selecting
    exactly its own paths: no two chunks' filters overlap.

    Executions, not StartTaskExecution calls: a call DataSync refused made nothing, and a
    start a killed scheduler sent may land only after its rerun has given that chunk back
    unstarted (its task was busy with it), to be adopted by its tag at the next check."""
    assert differences(site.share, site.dest_dir) == []
    assert max(site.writes().values()) == 1
    done = chunks(site)
    executions = site.emu.state()["executions"]
    recorded = sorted(a["execution"] for c in done for a in c["attempts"] if a.get("execution"))
    assert recorded == sorted(e["arn"] for e in executions), (  # what to look at when they disagree
        site.emu.calls()["calls"], [(c["index"], c["attempts"]) for c in done],
        [(e["arn"], e["task"], e["status"]) for e in executions])
    assert sum(1 for c in done for a in c["attempts"] if a.get("failed")) == retried
    if not retried:
        assert max(site.emu.state()["selections"].values()) == 1


def wait_transferring(site, agent: str) -> dict:
    """The execution the agent runs, once it has copied something."""
    return site.emu.wait_for(
        lambda st: next((e for e in st["executions"] if e["agent"] == agent and e["status"] == "TRANSFERRING"
                         and e["counters"].get("BytesTransferred", 0) > 0), None), timeout=60)


def poll(condition, what: str, timeout: float = 60, interval: float | Callable[[], float] = 0.002):
    """``condition()`` once it is truthy, asked every ``interval`` seconds (or ``interval()``);
    AssertionError naming ``what`` if it is not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(interval() if callable(interval) else interval)


def journal_lines(path: str) -> list[dict]:
    """A live run's journal, line by line (a last line without its end is not read)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh.read().split("\n")[:-1]]
    except FileNotFoundError:
        return []


def kinds(lines: list[dict]) -> list[str]:
    return [line["kind"] for line in lines]


def journaled(lines: list[dict]) -> dict[int, list[str]]:
    """The chunks of a journal's lines: index -> includes."""
    return {line["chunk"]["index"]: line["chunk"]["includes"] for line in lines if line["kind"] == "chunk"}


def _free(fd: int) -> bool:
    """Whether no other process holds the lock of the file open at ``fd`` (asked as a watcher asks)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


class ScanGate:
    """Holds a live run's scan between two lines of its journal through the locks the scheduler
    itself takes, so that a test acts at a point of the scan it chose instead of racing it.

    Made before the scheduler starts, it holds ``<journal>.lock``, which the scheduler takes
    before it scans: the run is recorded and the journal begun, then the scheduler waits.
    :meth:`begun` then holds the journal file, which every append locks, and lets the scan
    start: it waits before its first line. :meth:`step_until` lets lines through until the
    journal reads as the test wants. The scheduler's checks go on meanwhile (they read the
    journal without its lock). What is read while the gate is held is whole lines and cannot
    change: every line reaches the disk under that lock.

    Letting exactly one line through cannot be promised: the gate waits behind the append it
    sees begin and holds the journal again before the next one only if it runs first when the
    scheduler lets go; on a busy machine the scheduler may slip in a few more lines."""

    def __init__(self, site: Site) -> None:
        self.path = site.journal
        self._scan: int | None = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._scan, fcntl.LOCK_EX)
        self._journal: int | None = None

    def begun(self, proc: subprocess.Popen) -> list[dict]:
        """Once the scheduler has begun the journal: hold it, and let the scan start; returns
        once the scheduler holds the scan's lock (a watcher sees the scan alive)."""
        poll(lambda: proc.poll() is not None or kinds(journal_lines(self.path))[:1] == ["begin"],
             "the scheduler begins the journal", timeout=120)
        assert proc.poll() is None, f"the scheduler exited {proc.returncode} before scanning"
        self._journal = os.open(self.path, os.O_RDONLY)
        fcntl.flock(self._journal, fcntl.LOCK_EX)
        assert self._scan is not None
        fcntl.flock(self._scan, fcntl.LOCK_UN)
        poll(lambda: proc.poll() is not None or not _free(self._scan), "the scheduler takes the scan's lock")
        assert proc.poll() is None, f"the scheduler exited {proc.returncode} before scanning"
        os.close(self._scan)
        self._scan = None
        return self.lines()

    def lines(self) -> list[dict]:
        return journal_lines(self.path)

    def step_until(self, proc: subprocess.Popen, wanted, what: str) -> list[dict]:
        """Let the scan append until ``wanted(lines)``, looking after each line or few; the
        scan is held there. AssertionError if the scan ends (or the scheduler exits) first."""
        assert self._journal is not None
        lines = self.lines()
        while not wanted(lines):
            assert "end" not in kinds(lines), f"the scan ended before {what}: {kinds(lines)}"
            self._one_more(proc, os.fstat(self._journal).st_size)
            assert proc.poll() is None, f"the scheduler exited {proc.returncode} before {what}"
            lines = self.lines()
        return lines

    def _one_more(self, proc: subprocess.Popen, size: int) -> None:
        """Let go of the journal; hold it again once a line has begun past ``size`` bytes (so,
        mostly, behind that line's append). Looks often at first, then less."""
        assert self._journal is not None
        fcntl.flock(self._journal, fcntl.LOCK_UN)
        start = time.monotonic()
        poll(lambda: proc.poll() is not None or os.path.getsize(self.path) > size, f"a line after {size} bytes",
             interval=lambda: 0.00005 if time.monotonic() - start < 0.05 else 0.001)
        fcntl.flock(self._journal, fcntl.LOCK_EX)

    def release(self) -> None:
        """Let the scan run on (what a test does last, whatever happened)."""
        for fd in (self._scan, self._journal):
            if fd is not None:
                os.close(fd)
        self._scan = self._journal = None
