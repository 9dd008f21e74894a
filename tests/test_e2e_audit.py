"""The audit against an S3 destination, end to end: a run copies the sample share (and awkward
names) through the emulator, which serves its bucket over S3's API as DataSync lays it out;
the audit lists it with boto3 and reads metadata with HeadObject."""

from __future__ import annotations

import json
import os
import unicodedata

import pytest

from datasync_multi import datasync as ds
from datasync_multi.filters import READINGS
from sites import make_site
from trees import Selection

AWKWARD = ["with space.txt", "100%.txt", "a+b.txt", unicodedata.normalize("NFC", "café.txt"),
           unicodedata.normalize("NFD", "café.txt"), "new\nline.txt", "y" * 255, "x&<y>'z'.txt"]


@pytest.fixture(scope="module")
def copied(tmp_path_factory):
    """A share with awkward names beside the sample, copied by a dynamic run to the end."""
    with make_site(tmp_path_factory.mktemp("audit")) as site:
        odd = os.path.join(site.share, "odd", *[f"d{i}" for i in range(20)])
        os.makedirs(odd)
        for i, name in enumerate(AWKWARD):
            with open(os.path.join(site.share, "odd", name), "w") as fh:
                fh.write("z" * (i + 1))
        with open(os.path.join(odd, "deep.txt"), "w") as fh:
            fh.write("deep")
        assert site.schedule("--chunks_per_agent", "2").returncode == 0
        r = site.watch("--timeout_sec", "0.2", timeout=240)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "datasync_multi_audit.py --mount_path_dir <the export's mount> --dest_loc " + site.dest_loc in r.stderr
        yield site


def audit(site, *args: str):
    r = site.run("datasync_multi_audit.py", "--mount_path_dir", site.share, "--dest_loc", site.dest_loc,
                 "--source_file", os.path.join(site.work, "source_file.manifest"), "--report", "audit.jsonl", *args)
    with open(os.path.join(site.work, "audit.jsonl")) as fh:
        lines = [json.loads(line) for line in fh]
    return r, lines[:-1], lines[-1]["summary"]


def test_an_exact_copy_through_s3_reports_nothing_with_every_modification_time_read(copied):
    r, differences, summary = audit(copied, "--metadata_sample", "all")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert differences == [] and "nothing else" in r.stdout
    assert "pool is full" not in r.stderr, "the client keeps a connection for each thread reading metadata"
    assert summary["matched"] == summary["source_entries"] == summary["dest_entries"]
    files = sum(1 for _, _, names in os.walk(copied.share) for n in names)
    links = sum(1 for d, _, names in os.walk(copied.share) for n in names if os.path.islink(os.path.join(d, n)))
    assert summary["metadata_checked"] == files - links


def test_differences_seeded_in_the_bucket_are_named_and_a_missing_file_is_traced_to_its_chunk(copied):
    dest = copied.dest_dir
    moved = {}
    try:
        for name in ("file000.dat", os.path.join("odd", AWKWARD[4])):
            os.rename(os.path.join(dest, name), os.path.join(copied.work, f"aside-{len(moved)}"))
            moved[name] = os.path.join(copied.work, f"aside-{len(moved)}")
        with open(os.path.join(dest, "odd", "extra+1.txt"), "w") as fh:
            fh.write("e")
        with open(os.path.join(dest, "odd", "100%.txt"), "a") as fh:
            fh.write("grown")
        os.utime(os.path.join(dest, "odd", "a+b.txt"), ns=(0, 7 * 10**9))
        r, differences, _ = audit(copied, "--metadata_sample", "all")
    finally:
        for name, aside in moved.items():
            os.rename(aside, os.path.join(dest, name))
        os.remove(os.path.join(dest, "odd", "extra+1.txt"))
    assert r.returncode == 7, r.stderr
    found = {(d["category"], d["path"]) for d in differences}
    assert found == {("missing", "/file000.dat"), ("missing", "/odd/" + AWKWARD[4]), ("extra", "/odd/extra+1.txt"),
                     ("size differs", "/odd/100%.txt"), ("modification time differs", "/odd/a+b.txt")}
    missing = next(d for d in differences if d["path"] == "/file000.dat")
    with open(os.path.join(copied.work, "arn_file.txt.ledger.json")) as fh:
        chunks = json.load(fh)["dispatch"]["chunks"]
    (owner,) = Selection([(f"chunk {c['index']}", c["includes"]) for c in chunks], READINGS[0]).owners("/file000.dat")
    assert missing["carried_by"]["carrier"] == owner and missing["carried_by"]["status"] == "SUCCESS"
    assert f"/file000.dat -- {owner} should have carried it" in r.stdout


def test_a_sample_reads_as_many_times_as_asked_and_none_reads_none(copied):
    _, _, summary = audit(copied, "--metadata_sample", "5")
    assert summary["metadata_checked"] == 5
    _, differences, summary = audit(copied, "--metadata_sample", "0")
    assert summary["metadata_checked"] == 0
    assert not [d for d in differences if d["category"] == "modification time differs"], "no time read, none judged"


def test_the_audit_s_listing_reads_the_keys_and_sizes_botocore_reads(copied, monkeypatch):
    for name, value in copied.emu.env().items():
        monkeypatch.setenv(name, value)
    client = ds.make_s3_client()
    plain = [o for page in copied.emu.s3_client().get_paginator("list_objects_v2").paginate(
        Bucket="migration-target", Prefix="share/") for o in page.get("Contents", ())]
    ours = list(ds.list_objects(client, "migration-target", "share/"))
    assert ours == [{"Key": o["Key"], "Size": o["Size"]} for o in plain] != []


def test_bad_input_is_one_line_and_exit_2(copied):
    r = copied.run("datasync_multi_audit.py", "--mount_path_dir", copied.share, "--dest_loc", copied.dest_loc,
                   "--dest_mount", copied.share)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "one of them" in r.stderr
    r = copied.run("datasync_multi_audit.py", "--mount_path_dir", copied.share, "--dest_loc", copied.dest_loc,
                   "--metadata_sample", "many")
    assert r.returncode == 2 and "--metadata_sample" in r.stderr
