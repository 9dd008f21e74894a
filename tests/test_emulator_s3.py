"""The emulator's S3 side (emulator/s3api.py, s3store.py): a real boto3 S3 client lists and
reads what a real run copied into the S3 root, as an audit of the destination will.

The expected objects are worked out here from the source share, independently of the
emulator: a key per file, symlink and directory (``name/``) below the location, under its
prefix, in UTF-8 byte order."""

from __future__ import annotations

import http.client
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote
from xml.etree import ElementTree

import boto3
import botocore.exceptions
import pytest
from boto3.s3.transfer import TransferConfig

from calls import HOST, ROLE, nfs_location, write
from emulator.harness import Emulator
from emulator.s3store import Bucket

BUCKET = "audit-bucket"
PREFIX = "mig/share/"
MTIME_NS = 1_595_002_920_123_456_789
LONG = "\u00e9" * 125 + "x.txt"
"""A name of 255 bytes, the most a Linux file system takes."""
DEEP = "/".join(f"level{i:02d}" for i in range(30)) + "/bottom.txt"
AWKWARD = ["with space.txt", "100%.txt", "a+b.txt", "100%25+%2B.txt", "\u00e9.txt", "e\u0301.txt",
           "line\nbreak.txt", "cr\rand\ttab.txt", "x&<y>'\".txt", "?#=;~.txt", "back\\slash", "pipe|star*",
           "\u65e5\u672c\u8a9e/\U0001f600.txt", ".dot/.hidden", LONG, DEEP]
"""Names that an encoding slip would change: kept by a run, they must come back exactly.
NFC and NFD spellings of é sit side by side."""
AROUND_SLASH = ["a!", "a-b", "a.b", "a/inside.txt", "a0"]
"""Around '/' (0x2F) in byte order: '!' '-' '.' sort before it, '0' after, so the directory
``a`` lists (as ``a/``) between ``a.b`` and ``a0``."""


def build_share(src: Path) -> None:
    write(src / "plain.txt", "plain", 0o640)
    os.utime(src / "plain.txt", ns=(MTIME_NS, MTIME_NS))
    for name in AWKWARD + AROUND_SLASH:
        write(src / name, name)
    write(src / "sub" / "dir" / "f.bin", os.urandom(3000))
    os.chmod(src / "sub", 0o750)
    (src / "empty").mkdir()
    os.symlink("plain.txt", src / "link")
    os.symlink("nowhere/x", src / "dangling")


def expected_objects(src: str, prefix: str) -> dict[str, int]:
    """key -> size of every object a copy of ``src`` under ``prefix`` holds: files, symlinks
    (their target text) and directories (``name/``, empty), the source root itself not one."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(src):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            key = prefix + os.path.relpath(path, src)
            if os.path.islink(path):
                out[key] = len(os.readlink(path).encode())
            elif os.path.isdir(path):
                out[key + "/"] = 0
            else:
                out[key] = os.path.getsize(path)
    return out


def in_s3_order(keys) -> list[str]:
    return sorted(keys, key=lambda key: key.encode("utf-8"))


def listing(s3, bucket: str, **kw) -> list[dict]:
    """Every object, through boto3's paginator (``PageSize`` is MaxKeys)."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, **kw)
    return [obj for page in pages for obj in page.get("Contents", [])]


def error_of(excinfo) -> tuple[str, int]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


@dataclass
class Copied:
    emu: Emulator
    s3: object
    src: Path
    s3_root: Path

    def stored(self, key: str) -> Path:
        return self.s3_root / BUCKET / key


@pytest.fixture(scope="module")
def copied(tmp_path_factory):
    """The share copied by a real task execution to s3://audit-bucket/mig/share/ (STANDARD_IA),
    and a file written beside the location, outside it."""
    root = tmp_path_factory.mktemp("s3-side")
    src, s3_root = root / "share", root / "s3"
    src.mkdir()
    s3_root.mkdir()
    build_share(src)
    with Emulator().start({f"{HOST}:/vol1": str(src)}, str(s3_root), agents=1, phase_delay=0.01,
                          task_create_delay=0) as emu:
        ds = emu.client()
        dest = ds.create_location_s3(S3BucketArn=f"arn:aws:s3:::{BUCKET}", Subdirectory="/" + PREFIX,
                                     S3StorageClass="STANDARD_IA",
                                     S3Config={"BucketAccessRoleArn": ROLE})["LocationArn"]
        task = ds.create_task(SourceLocationArn=nfs_location(ds, emu.agent_arns()[0]),
                              DestinationLocationArn=dest)["TaskArn"]
        emu.wait_task_created(task)
        execution = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        done = emu.wait_executions_done([execution])[execution]
        assert done["status"] == "SUCCESS", (done["result"].get("ErrorCode"), done["result"].get("ErrorDetail"))
        write(s3_root / BUCKET / "outside.txt", "beside the location")
        yield Copied(emu, emu.s3_client(), src, s3_root)


# ------------------------------------------------------------------ listing
def test_every_file_and_directory_is_listed_once_with_its_size_in_utf8_byte_order(copied):
    objects = listing(copied.s3, BUCKET)
    keys = [obj["Key"] for obj in objects]
    expected = expected_objects(str(copied.src), PREFIX) | {"outside.txt": len("beside the location")}
    assert len(keys) == len(set(keys))
    assert {obj["Key"]: obj["Size"] for obj in objects} == expected
    assert keys == in_s3_order(expected)
    around = ["a!", "a-b", "a.b", "a/", "a/inside.txt", "a0"]
    assert [k for k in keys if k.removeprefix(PREFIX) in around] == [PREFIX + name for name in around]
    # the location's own directory and the one above it are where the run wrote, not folders it copied
    assert "mig/" not in keys and PREFIX not in keys
    assert {PREFIX + "empty/", PREFIX + "sub/", PREFIX + "sub/dir/"} <= set(keys)


def test_last_modified_is_when_the_copy_was_stored_and_the_storage_class_the_locations(copied):
    objects = {obj["Key"]: obj for obj in listing(copied.s3, BUCKET)}
    plain = objects[PREFIX + "plain.txt"]
    assert plain["LastModified"].timestamp() == pytest.approx(os.lstat(copied.stored(PREFIX + "plain.txt")).st_ctime,
                                                              abs=0.001)
    assert plain["LastModified"].timestamp() > MTIME_NS / 1e9 + 86400  # not the source's mtime
    assert {obj["StorageClass"] for key, obj in objects.items() if key.startswith(PREFIX)} == {"STANDARD_IA"}
    assert objects["outside.txt"]["StorageClass"] == "STANDARD"
    assert all(re.fullmatch(r'"[0-9a-f]{32}(-1)?"', obj["ETag"]) for obj in objects.values())


def test_pages_of_two_and_start_after_give_the_same_keys(copied):
    keys = [obj["Key"] for obj in listing(copied.s3, BUCKET)]
    pages = list(copied.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, PaginationConfig={"PageSize": 2}))
    assert [obj["Key"] for page in pages for obj in page["Contents"]] == keys
    assert len(pages) == (len(keys) + 1) // 2
    assert all(page["KeyCount"] == len(page["Contents"]) <= 2 and page["MaxKeys"] == 2 for page in pages)
    assert [page["IsTruncated"] for page in pages] == [True] * (len(pages) - 1) + [False]
    for i in (0, 7, len(keys) // 2, len(keys) - 2):
        after = copied.s3.list_objects_v2(Bucket=BUCKET, StartAfter=keys[i], MaxKeys=2)
        assert [obj["Key"] for obj in after["Contents"]] == keys[i + 1:i + 3]
        assert [obj["Key"] for obj in listing(copied.s3, BUCKET, StartAfter=keys[i])] == keys[i + 1:]
    tail = listing(copied.s3, BUCKET, StartAfter=keys[-12], PaginationConfig={"PageSize": 2})
    assert [obj["Key"] for obj in tail] == keys[-11:]
    between = PREFIX + "a/"  # a key that is no object's: the listing goes on after it
    assert [obj["Key"] for obj in listing(copied.s3, BUCKET, StartAfter=between)] == [k for k in keys
                                                                                      if k.encode() > between.encode()]


def test_a_prefix_lists_the_keys_that_start_with_it(copied):
    keys = [obj["Key"] for obj in listing(copied.s3, BUCKET)]
    for prefix in (PREFIX + "a", PREFIX + "sub/", PREFIX + "level00/level01/lev", PREFIX + "\u65e5",
                   "nothing-here/"):
        assert [obj["Key"] for obj in listing(copied.s3, BUCKET, Prefix=prefix, PaginationConfig={"PageSize": 3})] \
            == [k for k in keys if k.startswith(prefix)], prefix
    assert [obj["Key"] for obj in listing(copied.s3, BUCKET, Prefix="mig")] == keys[:-1]  # all but outside.txt


def test_awkward_names_round_trip_exactly(copied):
    keys = {obj["Key"] for obj in listing(copied.s3, BUCKET)}
    for name in AWKWARD:
        key = PREFIX + name
        assert key in keys, name
        head = copied.s3.head_object(Bucket=BUCKET, Key=key)
        assert head["ContentLength"] == len(name.encode())
        assert copied.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == name.encode()
    assert len(LONG.encode()) == 255 and PREFIX + "\u00e9.txt" != PREFIX + "e\u0301.txt"


@pytest.mark.parametrize("name, encoded", [("line\nbreak.txt", "line%0Abreak.txt"),
                                           ("cr\rand\ttab.txt", "cr%0Dand%09tab.txt"),
                                           ("100%25+%2B.txt", "100%2525%2B%252B.txt"),
                                           ("x&<y>'\".txt", "x%26%3Cy%3E%27%22.txt")])
def test_keys_are_url_encoded_on_the_wire_when_asked_and_exact_otherwise(copied, name, encoded):
    def keys(query: str) -> list[str]:
        url = f"{copied.emu.url}/{BUCKET}?list-type=2&prefix={quote(PREFIX + name[:-4], safe='')}{query}"
        with urllib.request.urlopen(url) as r:
            xml = r.read()
        ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
        return [el.text or "" for el in ElementTree.fromstring(xml).findall("s3:Contents/s3:Key", ns)]

    assert keys("&encoding-type=url") == [PREFIX + encoded]
    assert keys("") == [PREFIX + name]


# ------------------------------------------------------------------ objects
def test_head_object_carries_the_source_metadata(copied):
    source = os.lstat(copied.src / "plain.txt")
    head = copied.s3.head_object(Bucket=BUCKET, Key=PREFIX + "plain.txt")
    meta = head["Metadata"]
    assert meta["file-mtime"] == f"{source.st_mtime_ns}ns" == f"{MTIME_NS}ns"
    assert meta["file-permissions"] == f"0{source.st_mode:o}" == "0100640"
    assert (meta["file-owner"], meta["file-group"]) == (str(source.st_uid), str(source.st_gid))
    assert re.fullmatch(r"\d+ns", meta["file-atime"])
    assert head["ContentLength"] == 5 and head["StorageClass"] == "STANDARD_IA"
    listed = copied.s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX + "plain.txt")["Contents"][0]
    assert (head["ETag"], head["LastModified"]) == (listed["ETag"], listed["LastModified"].replace(microsecond=0))


def test_a_directory_is_an_empty_object_with_its_mode(copied):
    head = copied.s3.head_object(Bucket=BUCKET, Key=PREFIX + "sub/")
    assert head["ContentLength"] == 0
    assert head["Metadata"]["file-permissions"] == f"0{os.lstat(copied.src / 'sub').st_mode:o}" == "040750"
    assert copied.s3.get_object(Bucket=BUCKET, Key=PREFIX + "empty/")["Body"].read() == b""


def test_a_symlink_is_an_object_holding_its_target(copied):
    for name, target in (("link", b"plain.txt"), ("dangling", b"nowhere/x")):
        head = copied.s3.head_object(Bucket=BUCKET, Key=PREFIX + name)
        assert head["Metadata"]["file-permissions"] == "0120777"
        assert head["ContentLength"] == len(target)
        assert copied.s3.get_object(Bucket=BUCKET, Key=PREFIX + name)["Body"].read() == target


@pytest.mark.parametrize("key", ["mig/share/nothing", "mig/share/sub", "mig/share/plain.txt/", "mig/share/",
                                 "mig/", "mig/share/../../../etc/passwd", "mig/share/sub/./dir/f.bin",
                                 "mig//share/plain.txt", "/mig/share/plain.txt"])
def test_what_is_no_object_is_404(copied, key):
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        copied.s3.head_object(Bucket=BUCKET, Key=key)
    assert error_of(excinfo) == ("404", 404)
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        copied.s3.get_object(Bucket=BUCKET, Key=key)
    assert error_of(excinfo) == ("NoSuchKey", 404)


@pytest.mark.parametrize("path", ["/mig/share/../../../../../etc/passwd", "/mig/share/./plain.txt",
                                  "/mig/share/link/", "/mig/share/%2E%2E/share/plain.txt"])
def test_a_path_that_climbs_or_follows_a_link_is_404(copied, path):
    """As sent, not normalised by a client: nothing outside the bucket, and no symlink followed."""
    conn = http.client.HTTPConnection(copied.emu.url.removeprefix("http://"), timeout=30)
    for method in ("HEAD", "GET"):
        conn.request(method, f"/{BUCKET}{path}")
        response = conn.getresponse()
        response.read()
        assert response.status == 404, (method, path)
    conn.close()


def test_a_missing_bucket_is_no_such_bucket(copied):
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        copied.s3.list_objects_v2(Bucket="no-such-bucket")
    assert error_of(excinfo) == ("NoSuchBucket", 404)


def test_get_object_reads_a_range_and_checks_if_match(copied, tmp_path):
    key = PREFIX + "sub/dir/f.bin"
    data = (copied.src / "sub" / "dir" / "f.bin").read_bytes()
    part = copied.s3.get_object(Bucket=BUCKET, Key=key, Range="bytes=100-1099")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206 and part["Body"].read() == data[100:1100]
    assert copied.s3.get_object(Bucket=BUCKET, Key=key, Range="bytes=-10")["Body"].read() == data[-10:]
    etag = copied.s3.head_object(Bucket=BUCKET, Key=key)["ETag"]
    assert copied.s3.get_object(Bucket=BUCKET, Key=key, IfMatch=etag)["Body"].read() == data
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        copied.s3.get_object(Bucket=BUCKET, Key=key, IfMatch='"0123"')
    assert error_of(excinfo) == ("PreconditionFailed", 412)
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        copied.s3.get_object(Bucket=BUCKET, Key=key, Range="bytes=5000-")
    assert error_of(excinfo) == ("InvalidRange", 416)
    # boto3's managed download: ranged GETs of 1 KiB, each with If-Match
    copied.s3.download_file(BUCKET, key, str(tmp_path / "f.bin"),
                            Config=TransferConfig(multipart_threshold=1024, multipart_chunksize=1024))
    assert (tmp_path / "f.bin").read_bytes() == data


@pytest.mark.parametrize("call, operation", [
    (lambda s3: s3.put_object(Bucket=BUCKET, Key="new", Body=b"data"), "PutObject"),
    (lambda s3: s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "outside.txt"}]}), "DeleteObjects"),
    (lambda s3: s3.get_object_tagging(Bucket=BUCKET, Key="outside.txt"), "GetObjectTagging"),
    (lambda s3: s3.list_objects(Bucket=BUCKET), "ListObjects"),
    (lambda s3: s3.list_objects_v2(Bucket=BUCKET, Delimiter="/"), "ListObjectsV2 with Delimiter"),
    (lambda s3: s3.head_object(Bucket=BUCKET, Key="outside.txt", VersionId="v1"), None),
])
def test_what_is_not_served_is_501_not_implemented(copied, call, operation):
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        call(copied.s3)
    if operation is None:  # a HEAD: the status code alone
        assert error_of(excinfo) == ("501", 501)
        return
    assert error_of(excinfo) == ("NotImplemented", 501)
    assert operation in excinfo.value.response["Error"]["Message"]
    assert not (copied.s3_root / BUCKET / "new").exists() and (copied.s3_root / BUCKET / "outside.txt").exists()


def test_bad_parameters_are_invalid_argument(copied):
    for query in ("max-keys=ten", "max-keys=-1", "encoding-type=base64", "continuation-token=%21%21"):
        with pytest.raises(urllib.error.HTTPError) as excinfo:
            urllib.request.urlopen(f"{copied.emu.url}/{BUCKET}?list-type=2&{query}")
        assert excinfo.value.code == 400 and b"<Code>InvalidArgument</Code>" in excinfo.value.read(), query


def test_a_client_made_from_the_environment_reaches_the_s3_side(copied, monkeypatch):
    """What an audit command run against the emulator gets: boto3's defaults, and the endpoint
    from AWS_ENDPOINT_URL (emu.env()), as on AWS with none."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in copied.emu.env().items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    s3 = boto3.session.Session().client("s3")
    assert [obj["Key"] for obj in listing(s3, BUCKET)] == [obj["Key"] for obj in listing(copied.s3, BUCKET)]


# ------------------------------------------------- a tree written into the S3 root
def test_what_cannot_be_an_object_is_left_out(copied):
    bucket = copied.s3_root / "written-bucket"
    write(bucket / "ok.txt", "ok")
    write(bucket / ".ok.txt.emu-tmp-0123456789ab", "a copy in flight")
    os.mkfifo(bucket / "fifo")
    raw = os.fsencode(bucket)
    with open(os.path.join(raw, b"bad-\xff-name"), "w") as fh:
        fh.write("not UTF-8")
    os.makedirs(os.path.join(raw, b"bad-\xfe-dir", b"inner"))
    too_long = "/".join(["d" * 250] * 4) + "/f"  # 1005 bytes: its folders fit in 1024, the file too
    write(bucket / too_long, "deep")
    write(bucket / too_long.replace("/f", "/" + "f" * 30), "past 1024 bytes")
    keys = [obj["Key"] for obj in listing(copied.s3, "written-bucket")]
    assert keys == [*["/".join(["d" * 250] * n) + "/" for n in range(1, 5)], too_long, "ok.txt"]
    for key in (".ok.txt.emu-tmp-0123456789ab", "fifo", "/".join(["d" * 250] * 4) + "/" + "f" * 30):
        with pytest.raises(botocore.exceptions.ClientError) as excinfo:
            copied.s3.head_object(Bucket="written-bucket", Key=key)
        assert error_of(excinfo) == ("404", 404), key


def test_the_walk_reads_a_directory_only_when_it_gets_there(tmp_path):
    """Each directory is read when the walk gets to it, never the whole bucket at once: a file
    added to one not reached yet is listed, one added to a directory already read is not."""
    for name in ("a/1", "b/1", "c/1"):
        write(tmp_path / "bkt" / name)
    objects = Bucket(str(tmp_path), "bkt").objects()
    assert [next(objects).key for _ in range(2)] == [b"a/", b"a/1"]
    write(tmp_path / "bkt" / "a" / "0")  # a/ was read
    write(tmp_path / "bkt" / "z")  # so was the bucket's top
    write(tmp_path / "bkt" / "b" / "0")  # ahead
    write(tmp_path / "bkt" / "c" / "2")
    assert [obj.key for obj in objects] == [b"b/", b"b/0", b"b/1", b"c/", b"c/1", b"c/2"]
