"""A session by hand on the emulator: ``python -m emulator --quickstart [DIR]`` (``make emulator``).

Makes DIR anew (a sample share, its manifest, a directory standing in for S3); once the
emulator serves, creates an S3 destination location and prints what a second shell needs,
ready to paste: the endpoint, dummy credentials and region as ``export`` lines, the location's
ARN, and the commands (the scheduler's dry run and run, then the watcher) by absolute path,
so they work from any directory and on this interpreter, which has boto3.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys

import botocore.session

from .harness import uninstalled_checkout
from .sample import build_sample_share

SERVER, EXPORT = "198.51.100.10", "/vol1"
"""The NFS export the sample share stands for."""
BUCKET, SUBDIRECTORY = "my-bucket", "/dest"
ROLE = "arn:aws:iam::111122223333:role/datasync"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
"""Dummy credentials: the emulator ignores the signature, but boto3 wants some to sign with."""
MARKER = ".emulator-quickstart"
"""In a directory --quickstart made, so that it is the only kind it empties."""


def prepare(work: str) -> tuple[str, str]:
    """Make ``work`` anew: ``share/`` (the sample share), ``s3/`` and ``source_file.manifest``
    (the whole export). Returns (share, s3). Raises ValueError, with the line to print, for a
    directory that is not empty and that --quickstart did not make: it is never emptied."""
    if os.path.lexists(work) and not os.path.isfile(os.path.join(work, MARKER)):
        if not os.path.isdir(work) or os.path.islink(work) or os.listdir(work):
            raise ValueError(f"--quickstart {work!r} exists and was not made by --quickstart: name a new directory")
    shutil.rmtree(work, ignore_errors=True)
    share, s3 = os.path.join(work, "share"), os.path.join(work, "s3")
    os.makedirs(share)
    os.makedirs(s3)
    open(os.path.join(work, MARKER), "w").close()
    build_sample_share(share)
    with open(os.path.join(work, "source_file.manifest"), "w") as fh:
        fh.write("# the whole export\n/\n")
    return share, s3


def create_destination(url: str, region: str) -> str:
    """An S3 destination location on the emulator at ``url``, by the call a real account takes."""
    client = botocore.session.get_session().create_client(
        "datasync", region_name=region, endpoint_url=url, aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    return client.create_location_s3(S3BucketArn=f"arn:aws:s3:::{BUCKET}", Subdirectory=SUBDIRECTORY,
                                     S3Config={"BucketAccessRoleArn": ROLE})["LocationArn"]


def environment(url: str, region: str) -> list[str]:
    """The ``export`` lines that point boto3, the AWS CLI and our commands at the emulator."""
    return [f"export AWS_ENDPOINT_URL={url}",
            " ".join(["export", *(f"{k}={v}" for k, v in CREDENTIALS.items()), f"AWS_DEFAULT_REGION={region}"])]


def python_command() -> str:
    """This interpreter by absolute path, with this emulator package on its path wherever it is
    started: as installed, or from an uninstalled checkout."""
    checkout = uninstalled_checkout()
    prefix = f"PYTHONPATH={shlex.quote(checkout)} " if checkout else ""
    return prefix + shlex.quote(sys.executable)


def command(name: str, script: str) -> str:
    """One of our commands by absolute path: the checkout's script on this interpreter, or the
    installed command beside this interpreter."""
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.isfile(os.path.join(checkout, script)):
        return f"{shlex.quote(sys.executable)} {shlex.quote(os.path.join(checkout, script))}"
    installed = os.path.join(os.path.dirname(sys.executable), name)
    return shlex.quote(installed) if os.path.isfile(installed) else name


def lines_to_paste(url: str, region: str, work: str, share: str, dest: str, agents: int) -> list[str]:
    """What --quickstart prints once it serves: comments and commands a shell takes as pasted."""
    work, share = os.path.abspath(work), os.path.abspath(share)
    source = (f"--nfs_server_name {SERVER} --sub_dir {EXPORT} --mount_path_dir {shlex.quote(share)} "
              '--dest_loc "$DEST_LOC"')
    scheduler = command("datasync-multi-scheduler", "datasync_multi_agents_scheduler.py")
    return [
        f"# The DataSync emulator serves at {url} with {agents} agents; Ctrl-C here stops it.",
        f"# The NFS export {SERVER}:{EXPORT} is {share}; the bucket {BUCKET} is "
        f"{os.path.join(work, 's3', BUCKET)}.",
        "# In another shell, paste these lines (the run's files go to the current directory):",
        f"cd {shlex.quote(work)}",
        *environment(url, region),
        f"export DEST_LOC={dest}",
        "# the plan, creating nothing; then the run; then the watcher, until every share is moved:",
        f"{scheduler} {source} --dry_run",
        f"{scheduler} {source}",
        f"{command('datasync-multi-watcher', 'datasync_agent_ha.py')} --timeout_sec 2",
        f"# The copies land in {os.path.join(work, 's3', BUCKET, SUBDIRECTORY.strip('/'))}.",
    ]


def startup_hint(url: str, region: str, s3_root: str) -> list[str]:
    """What the emulator prints on stderr when it starts without --quickstart: how a shell
    reaches it, and how to create a destination location, from any directory."""
    return [f"emulator at {url}; for a shell: {'; '.join(environment(url, region))}",
            f"a destination location: {python_command()} -m emulator.destination --endpoint-url {url} --region "
            f"{region} --bucket {BUCKET} --subdirectory {SUBDIRECTORY} (copies land in "
            f"{os.path.join(s3_root, BUCKET, SUBDIRECTORY.strip('/'))})"]
