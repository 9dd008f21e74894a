"""The audit against a mounted destination: an exact copy (awkward names included) reports
nothing; seeded differences are reported exactly, each in its category; a missing file is
traced to the chunk that should have carried it; both sides stream in S3's key order."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasync_multi.audit import (
    EXTRA,
    KIND,
    MISSING,
    MTIME,
    SIZE,
    UNJUDGED,
    UNREADABLE,
    Audit,
    Carrier,
    Carriers,
    parse_mtime,
)
from datasync_multi.filters import READINGS
from datasync_multi.ordered import OrderedWalk
from profiles import examples

AWKWARD = ["plain.txt", "with space.txt", "100%.txt", "a+b.txt", unicodedata.normalize("NFC", "café.txt"),
           unicodedata.normalize("NFD", "café.txt"), "new\nline.txt", "x" * 255, "a-b", "a.b", "a0"]


def make_share(root, names=AWKWARD, depth: int = 12) -> None:
    """Files with awkward names at the top and in a deep chain, a directory 'a' beside 'a-b'
    and 'a.b' (which sort around its keys 'a/...'), an empty directory, a symlink."""
    os.makedirs(root)
    for i, name in enumerate(names):
        with open(os.path.join(root, name), "wb") as fh:
            fh.write(b"x" * (i * 37))
    deep = os.path.join(root, *[f"level{i}" for i in range(depth)])
    os.makedirs(deep)
    with open(os.path.join(deep, "bottom.txt"), "w") as fh:
        fh.write("bottom")
    os.makedirs(os.path.join(root, "a", "inner"))
    with open(os.path.join(root, "a", "inner", "f"), "w") as fh:
        fh.write("f")
    os.makedirs(os.path.join(root, "empty"))
    os.symlink("plain.txt", os.path.join(root, "link"))


def audit(src, dst, roots=("",), carriers=None):
    found = []
    tally = Audit(carriers).run(OrderedWalk(str(src), roots, workers=4), OrderedWalk(str(dst), roots, workers=4),
                                found.append)
    return tally, {(d.category, d.path) for d in found}, found


def test_an_exact_copy_with_awkward_names_reports_nothing(tmp_path):
    make_share(tmp_path / "src")
    shutil.copytree(tmp_path / "src", tmp_path / "dst", symlinks=True)
    tally, found, _ = audit(tmp_path / "src", tmp_path / "dst")
    assert found == set() and tally.same
    assert tally.matched == tally.source_entries == tally.dest_entries > len(AWKWARD)


def test_seeded_differences_are_reported_exactly_each_in_its_category(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_share(src)
    shutil.copytree(src, dst, symlinks=True)
    os.remove(dst / "with space.txt")                                     # missing
    os.remove(dst / unicodedata.normalize("NFD", "café.txt"))             # missing beside its NFC twin
    (dst / "extra%.txt").write_text("e")                                  # extra
    with open(dst / "100%.txt", "r+b") as fh:                             # truncated
        fh.truncate(3)
    os.utime(dst / "a+b.txt", ns=(0, 10**9))                              # touched
    os.remove(dst / "new\nline.txt")
    os.mkdir(dst / "new\nline.txt")                                       # a directory where a file was
    shutil.rmtree(dst / "level0" / "level1")                              # a deep subtree gone
    _, found, _ = audit(src, dst)
    deep = ["/level0/level1/"] + ["/" + "/".join(f"level{i}" for i in range(n)) + "/" for n in range(3, 13)]
    assert found == {
        (MISSING, "/with space.txt"), (MISSING, "/" + unicodedata.normalize("NFD", "café.txt")),
        (EXTRA, "/extra%.txt"), (SIZE, "/100%.txt"), (MTIME, "/a+b.txt"),
        (MISSING, "/new\nline.txt"), (EXTRA, "/new\nline.txt/"),
        *((MISSING, p) for p in deep), (MISSING, "/" + "/".join(f"level{i}" for i in range(12)) + "/bottom.txt"),
    }


def test_a_type_change_at_the_same_key(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_share(src)
    shutil.copytree(src, dst, symlinks=True)
    os.remove(dst / "link")
    (dst / "link").write_text("plain.txt")  # a file of the link's size where the link was
    _, found, _ = audit(src, dst)
    assert found == {(KIND, "/link")}


def audit_as_nobody(src, dst) -> set:
    """The audit's findings, run by a user that permissions stop (root reads everything)."""
    if os.geteuid() != 0:
        return audit(src, dst)[1]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, audit, send the findings back
        try:
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, json.dumps(sorted(audit(src, dst)[1])).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as fh:
        found = fh.read()
    os.waitpid(pid, 0)
    return {tuple(f) for f in json.loads(found)}


def test_a_source_directory_that_cannot_be_read_is_reported_and_nothing_below_it_is_judged():
    base = tempfile.mkdtemp()
    try:
        os.chmod(base, 0o755)
        src, dst = os.path.join(base, "src"), os.path.join(base, "dst")
        make_share(src)
        shutil.copytree(src, dst, symlinks=True)
        os.chmod(os.path.join(src, "a"), 0)
        found = audit_as_nobody(src, dst)
    finally:
        os.chmod(os.path.join(base, "src", "a"), 0o755)
        shutil.rmtree(base)
    assert found == {(UNREADABLE, "/a/"), (UNJUDGED, "/a/inner/"), (UNJUDGED, "/a/inner/f")}


def test_a_missing_file_is_traced_to_the_chunk_that_should_have_carried_it_under_every_reading(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_share(src)
    shutil.copytree(src, dst, symlinks=True)
    os.remove(dst / "a" / "inner" / "f")
    os.remove(dst / "plain.txt")
    carriers = Carriers([Carrier("chunk 0", ("/a/",), "exec-0", "SUCCESS"), Carrier("chunk 1", ("/level0/",)),
                         Carrier("chunk 2", ("/p*", "/w*"))])
    _, found, differences = audit(src, dst, carriers=carriers)
    by_path = {d.path: d.carriers for d in differences}
    assert by_path["/a/inner/f"] == {"verdict": "chunk 0 should have carried it: a transfer problem",
                                     "carrier": "chunk 0", "execution": "exec-0", "status": "SUCCESS"}
    assert by_path["/plain.txt"]["carrier"] == "chunk 2"
    assert by_path["/plain.txt"]["status"] == "not known to have ended"


def test_a_path_no_chunk_selects_is_a_planning_problem_and_readings_that_disagree_are_named():
    carriers = Carriers([Carrier("chunk 0", ("/d",)), Carrier("chunk 1", ("/d2/",))])
    assert carriers.explain("/x/y")["verdict"].endswith("a planning problem")
    split = carriers.explain("/d2/f")  # '/d' reaches '/d2' only under the string-prefix reading
    assert split["verdict"] == "the readings of DataSync's filter rules disagree"
    assert {tuple(v) for v in split["by_reading"].values()} == {("chunk 1",), ("chunk 0", "chunk 1")}
    assert len(split["by_reading"]) == len(READINGS)


def test_the_walk_streams_in_s3_key_order_even_spilled_to_disk(tmp_path):
    make_share(tmp_path / "src")
    for name in ("b", "b-c", "b.c", "b0", "bb"):
        (tmp_path / "src" / name).mkdir()
        (tmp_path / "src" / name / "f").write_text(name)
    streams = []
    for spill_at in (2, 10**6):
        for workers in (1, 3):  # one thread reads in the walk's own; more read ahead on a pool
            entries = list(OrderedWalk(str(tmp_path / "src"), ("",), workers=workers, spill_at=spill_at,
                                       spill_dir=str(tmp_path)))
            keys = [e.key for e in entries]
            assert keys == sorted(keys) and len(keys) == len(set(keys))
            streams.append(entries)
    assert all(stream == streams[0] for stream in streams)
    assert not [p for p in os.listdir(tmp_path) if p.startswith("audit-run-")]  # runs are removed once merged


@pytest.mark.parametrize("value,ns", [("1595002920000000000ns", 1595002920000000000),
                                      ("1595002920000", 1595002920 * 10**9)])
def test_datasync_mtime_metadata_in_nanoseconds_or_milliseconds(value, ns):
    assert parse_mtime({"file-mtime": value}) == ns


def test_metadata_without_a_time_cannot_be_judged():
    assert "cannot be judged" in parse_mtime({"file-owner": "0"})
    assert "no form" in parse_mtime({"file-mtime": "yesterday"})


names = st.text(st.sampled_from("ab-.+% é\u0301"), min_size=1, max_size=6).filter(lambda n: n not in (".", ".."))


@settings(max_examples=examples(60), suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(tree=st.dictionaries(names, st.one_of(st.integers(0, 50), st.dictionaries(names, st.integers(0, 50),
                                                                                  max_size=4)), max_size=8),
       data=st.data())
def test_the_audit_reports_exactly_the_differences_seeded_in_a_copy(tmp_path_factory, tree, data):
    base = tmp_path_factory.mktemp("audit")
    src, dst = base / "src", base / "dst"

    def build(root, spec) -> None:
        root.mkdir()
        for name, value in spec.items():
            if isinstance(value, dict):
                build(root / name, value)
            else:
                (root / name).write_bytes(b"x" * value)
    build(src, tree)
    shutil.copytree(src, dst)
    files = sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file())
    gone = set(data.draw(st.lists(st.sampled_from(files), unique=True), label="removed") if files else [])
    grown = set(data.draw(st.lists(st.sampled_from(sorted(set(files) - gone)), unique=True), label="grown")
                if set(files) - gone else [])
    for rel in gone:
        os.remove(dst / rel)
    for rel in grown:
        with open(dst / rel, "ab") as fh:
            fh.write(b"+")
    _, found, _ = audit(src, dst)
    assert found == {(MISSING, "/" + rel) for rel in gone} | {(SIZE, "/" + rel) for rel in grown}
