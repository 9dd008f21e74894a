import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]

import subprocess  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import pytest  # noqa: E402

from emulator.harness import Emulator  # noqa: E402
from emulator.sample import build_sample_share  # noqa: E402

ROOT = os.path.dirname(HERE)
SERVER, EXPORT = "198.51.100.10", "/vol1"


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
        with open(os.path.join(self.work, "arn_file.txt")) as fh:
            return [line.strip() for line in fh if line.strip()]

    def writes(self) -> dict[str, int]:
        return self.emu.state()["writes"]


@pytest.fixture
def site(tmp_path):
    share, dest, work = tmp_path / "share", tmp_path / "s3", tmp_path / "work"
    for d in (share, dest, work):
        d.mkdir()
    build_sample_share(str(share))
    (work / "source_file.manifest").write_text("/\n")
    with Emulator().start({f"{SERVER}:{EXPORT}": str(share)}, str(dest), agents=3,
                          phase_delay=0.02, offline_error_delay=0.5, task_create_delay=0) as emu:
        client = emu.client()
        dest_loc = client.create_location_s3(
            S3BucketArn="arn:aws:s3:::migration-target", Subdirectory="/share",
            S3Config={"BucketAccessRoleArn": "arn:aws:iam::111122223333:role/datasync"})["LocationArn"]
        yield Site(emu, str(share), str(dest / "migration-target" / "share"), dest_loc, str(work))
