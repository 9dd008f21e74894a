"""Create an S3 destination location on a running emulator and say where its copies land.

    python3 -m emulator.destination --endpoint-url http://127.0.0.1:PORT --bucket my-bucket --subdirectory /dest

Prints the LocationArn (for the scheduler's --dest_loc) on stdout, and the local directory
that stands in for ``s3://my-bucket/dest/`` on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request

import boto3

ROLE = "arn:aws:iam::111122223333:role/datasync"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m emulator.destination", description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint-url", required=True, help="the URL the emulator printed")
    ap.add_argument("--bucket", default="my-bucket", help="bucket name (default: my-bucket)")
    ap.add_argument("--subdirectory", default="/", help="prefix in the bucket (default: the bucket root)")
    ap.add_argument("--region", default="us-east-1")
    a = ap.parse_args(argv)
    client = boto3.session.Session().client("datasync", region_name=a.region, endpoint_url=a.endpoint_url,
                                            aws_access_key_id="testing", aws_secret_access_key="testing")
    arn = client.create_location_s3(S3BucketArn=f"arn:aws:s3:::{a.bucket}", Subdirectory=a.subdirectory,
                                    S3Config={"BucketAccessRoleArn": ROLE})["LocationArn"]
    with urllib.request.urlopen(a.endpoint_url.rstrip("/") + "/_emulator/state", timeout=30) as resp:
        s3_root = json.load(resp)["config"]["s3_root"]
    print(arn)
    print(f"copies land in {os.path.join(s3_root, a.bucket, *[p for p in a.subdirectory.split('/') if p])}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
