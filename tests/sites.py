"""A site for end-to-end tests: the sample share, a local S3, the emulator over both, and our
scripts run against it as subprocesses."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass

from commands import ROOT
from emulator.harness import Emulator
from emulator.sample import build_sample_share

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

    def run(self, script: str, *args: str, env_extra: dict | None = None, timeout: float = 120):
        env = self.emu.env()
        env.update(env_extra or {})
        return subprocess.run([sys.executable, os.path.join(ROOT, script), "--log_dir",
                               os.path.join(self.work, "log"), *args],
                              cwd=self.work, env=env, capture_output=True, text=True, timeout=timeout)

    def schedule(self, *args: str, **kw):
        return self.run("datasync_multi_agents_scheduler.py", "--task_name", "Mig_", "--nfs_server_name", SERVER,
                        "--sub_dir", EXPORT, "--mount_path_dir", self.share, "--dest_loc", self.dest_loc,
                        "--source_file", os.path.join(self.work, "source_file.manifest"), *args, **kw)

    def watch(self, *args: str, **kw):
        return self.run("datasync_agent_ha.py", "--arn_file", "arn_file.txt", *args, **kw)

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


def wait_transferring(site, agent: str) -> dict:
    """The execution the agent runs, once it has copied something."""
    return site.emu.wait_for(
        lambda st: next((e for e in st["executions"] if e["agent"] == agent and e["status"] == "TRANSFERRING"
                         and e["counters"].get("BytesTransferred", 0) > 0), None), timeout=60)
