"""What the emulator's own tests share (test_emulator*.py): locations and filter rules made
through a real boto3 client, and files written into the emulated share."""

from __future__ import annotations

import os

from sites import SERVER

HOST = SERVER
"""The NFS server of the emulated share (the ``emu`` fixture exports HOST:/vol1)."""
ROLE = "arn:aws:iam::111122223333:role/datasync-s3"


def nfs_location(ds, agent, sub="/vol1", tags=None):
    kw = {"Tags": tags} if tags else {}
    return ds.create_location_nfs(Subdirectory=sub, ServerHostname=HOST,
                                  OnPremConfig={"AgentArns": [agent]}, **kw)["LocationArn"]


def s3_location(ds, bucket="bucket", sub="/dest", tags=None):
    kw = {"Tags": tags} if tags else {}
    return ds.create_location_s3(S3BucketArn=f"arn:aws:s3:::{bucket}", Subdirectory=sub,
                                 S3Config={"BucketAccessRoleArn": ROLE}, **kw)["LocationArn"]


def rules(value):
    return [{"FilterType": "SIMPLE_PATTERN", "Value": value}]


def write(path, data=b"x", mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    if mode is not None:
        os.chmod(path, mode)
