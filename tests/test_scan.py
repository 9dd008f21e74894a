"""The walk: measures everything, follows no symlink, survives unreadable directories."""

from __future__ import annotations

import io
import json
import logging
import os
import pathlib
import random
import subprocess
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arns
from datasync_multi import scan as scan_module
from datasync_multi.plan import make_plan
from datasync_multi.scan import STATVFS_TRUSTED, Progress, SizeGuess, guess_size, scan, weigh_statvfs
from profiles import examples
from trees import entries, straddling_share, within_limit

AGENTS = arns.AGENTS[:4]


def test_counts_bytes_files_and_dirs_without_following_symlinks(tmp_path):
    (tmp_path / "a/b").mkdir(parents=True)
    (tmp_path / "a/f").write_bytes(b"x" * 10)
    (tmp_path / "a/b/g").write_bytes(b"x" * 5)
    (tmp_path / "a/loop").symlink_to("..")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden/h").write_bytes(b"x")
    (tmp_path / "x.snapshot").mkdir()
    tree = scan(str(tmp_path), ("",), workers=3)
    root = tree.dirs[""]
    assert (root.bytes, root.files, root.dirs) == (16, 4, 4)
    assert tree.skipped == ["x.snapshot"]


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_only_on_a_terminal(tmp_path):
    (tmp_path / "d").mkdir()
    quiet, loud = io.StringIO(), Tty()
    scan(str(tmp_path), ("",), progress=Progress(quiet))
    scan(str(tmp_path), ("",), progress=Progress(loud))
    assert quiet.getvalue() == "" and "scanned 2 dirs" in loud.getvalue()


def test_an_unreadable_directory_stays_whole_inside_its_parent():
    """Scan as an unprivileged user (root reads everything), in a forked child, over a tree
    with one directory that user may not read."""
    with tempfile.TemporaryDirectory() as top:  # pytest's tmp_path sits under a root-only dir
        _unreadable_case(pathlib.Path(top))


def _unreadable_case(tmp_path):
    share = tmp_path / "share"
    (share / "open/locked").mkdir(parents=True)
    (share / "open/other").mkdir()
    (share / "open/other/f").write_bytes(b"x" * 100)
    (share / "open/locked/secret").write_bytes(b"x")
    os.chmod(share / "open/locked", 0)
    for p in (tmp_path, share, share / "open", share / "open/other"):
        os.chmod(p, 0o755)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, scan, plan, report, exit
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            records = []
            handler = logging.Handler()
            handler.emit = records.append
            logging.getLogger("datasync_multi").addHandler(handler)
            tree = scan(str(share), ("",))
            plan = make_plan(tree, AGENTS, task_name="T_", per_file_cost=0)
            out = [tree.dirs["open/locked"].note, [t.includes for t in plan.tasks], list(plan.warnings),
                   [r.getMessage() for r in records]]
            os.write(write_end, json.dumps(out).encode())
        except BaseException as exc:
            os.write(write_end, json.dumps(["child failed: " + repr(exc), [], [], []]).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as fh:
        note, includes, warnings, logged = json.loads(fh.read())
    os.waitpid(pid, 0)
    assert note == "unreadable" and any("cannot read /open/locked" in m for m in logged)
    assert not any("/open/locked" in p for inc in includes for p in inc)
    assert any("could not be scanned" in w for w in warnings)


def test_another_file_system_is_not_entered(tmp_path):
    """A file system mounted inside the share (here a tmpfs) is neither scanned nor split off."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data/f").write_bytes(b"x" * 10)
    inner = tmp_path / "data/mnt"
    inner.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "none", str(inner)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        (inner / "elsewhere").write_bytes(b"x" * 1000)
        tree = scan(str(tmp_path), ("",))
        plan = make_plan(tree, AGENTS, task_name="T_", per_file_cost=0)
    finally:
        subprocess.run(["umount", str(inner)], check=True)
    assert tree.dirs["data/mnt"].note == "other file system"
    assert tree.dirs[""].bytes == 10
    assert not any("mnt" in p for t in plan.tasks for p in t.includes)


def test_a_share_past_datasync_path_limit_counts_what_it_can_take_and_names_the_rest(tmp_path):
    """Paths past DataSync's 4,096 bytes, and directories whose full path is past the kernel's
    PATH_MAX, are read: what DataSync can take is in the totals, what lies past its limit is
    counted apart and named where paths cross it."""
    straddling_share(str(tmp_path))
    tree = scan(str(tmp_path), ("",), workers=4)
    on_disk = entries(str(tmp_path))
    within = [(path, size) for path, kind, size in on_disk if kind == "file" and within_limit(path)]
    dirs = [path for path, kind, _ in on_disk if kind in ("dir", "empty-dir") and within_limit(path)]
    root = tree.dirs[""]
    assert (root.files, root.bytes, root.dirs) == (len(within), sum(s for _, s in within), len(dirs) + 1)
    assert (root.files, root.bytes) == (5, 3800)
    assert not any(d.note for d in tree.dirs.values())
    assert (tree.past_limit.files, tree.past_limit.bytes, tree.past_limit.dirs) == (3, 1300, 1)
    [warning] = tree.warnings()
    assert warning.startswith("3 file(s) (1.3 KiB) and 1 directory(ies) lie past DataSync's 4,096-byte path limit")
    assert warning.count("(4,097 bytes)") == 2 and "kkkk/' (4,101 bytes)" in warning, warning


@settings(max_examples=examples(50))
@given(names=st.sets(st.text("ab-", min_size=1, max_size=3), min_size=1, max_size=10), data=st.data())
def test_a_root_is_lone_when_no_sibling_name_extends_it(names, data):
    """Each parent is listed once for all its roots ('p/a' is not lone beside 'p/ab' or 'p/a-')."""
    listed = data.draw(st.lists(st.sampled_from(sorted(names)), min_size=1, unique=True))
    with tempfile.TemporaryDirectory() as mount:
        for name in names:
            os.makedirs(os.path.join(mount, "p", name))
        tree = scan(mount, tuple("p/" + n for n in listed))
    assert tree.lone_roots == {"p/" + n for n in listed if not any(o != n and o.startswith(n) for o in names)}


def test_the_size_guess_is_exact_on_a_tree_of_even_shape(tmp_path):
    """Knuth's estimate: each directory on a random path stands for as many as the branching
    above it multiplies to; on a tree where every directory looks alike it is exact."""
    def build(at, level):
        for f in range(3):
            (at / f"f{f}").write_bytes(b"x" * 100)
        if level < 3:
            for d in range(4):
                (at / f"d{d}").mkdir()
                build(at / f"d{d}", level + 1)
    (tmp_path / "share").mkdir()
    build(tmp_path / "share", 0)
    guess = guess_size(str(tmp_path), ("share",), probes=8)
    dirs = 1 + 4 + 16 + 64
    assert (guess.bytes, guess.entries) == (dirs * 300, dirs * 4)
    assert "Knuth's estimate" in guess.how


def test_the_size_guess_weighs_a_large_directory_from_a_sample_of_its_files(tmp_path, monkeypatch):
    """A directory of more entries than the sample measures (a flat directory of millions, on
    NFS an lstat each) is counted from its listing and weighed from a random draw of its
    files: with files of one size the guess is still exact, and it says so."""
    monkeypatch.setattr(scan_module, "SIZE_SAMPLE_STATS", 50)
    share = tmp_path / "share"
    (share / "flat").mkdir(parents=True)
    for f in range(400):
        (share / "flat" / f"f{f:03d}").write_bytes(b"x" * 100)
    for d in range(3):
        (share / "flat" / f"d{d}").mkdir()
        (share / "flat" / f"d{d}" / "g").write_bytes(b"y" * 10)
    guess = guess_size(str(tmp_path), ("share",), probes=16)
    assert (guess.bytes, guess.entries) == (400 * 100 + 3 * 10, 1 + 1 + 400 + 3 * 2)
    assert "1 of them weighed from 50 of their entries" in guess.how
    monkeypatch.setattr(scan_module, "SIZE_SAMPLE_STATS", 1000)
    assert "weighed" not in guess_size(str(tmp_path), ("share",), probes=16).how


def test_a_directory_the_size_guess_cannot_open_weighs_nothing_as_in_the_walk(tmp_path, monkeypatch):
    """A directory on a sampled path that cannot be opened (EACCES on NFS) counts as empty,
    as the walk counts it, rather than failing the guess and the run."""
    share = tmp_path / "share"
    (share / "locked").mkdir(parents=True)
    (share / "locked" / "f").write_bytes(b"x" * 100)
    (share / "g").write_bytes(b"y" * 10)
    real_open = os.open

    def refusing(path, flags, *args, **kwargs):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)
    monkeypatch.setattr(os, "open", refusing)
    guess = guess_size(str(tmp_path), ("share",), probes=16)
    assert (guess.bytes, guess.entries) == (10, (1 + 1) + (0 + 1))  # share and its file g; "locked" as empty


def test_the_file_system_s_use_is_taken_only_where_the_sample_agrees():
    sample = SizeGuess(10**9, 1000, "Knuth's estimate")
    agreeing = weigh_statvfs(sample, 2 * 10**9, 1200)
    assert (agreeing.bytes, agreeing.entries) == (2 * 10**9, 1200) and "statvfs" in agreeing.how
    larger_volume = weigh_statvfs(sample, (STATVFS_TRUSTED + 1) * 10**9, 10**6)
    assert (larger_volume.bytes, larger_volume.entries) == (10**9, 1000) and "more than this share" in larger_volume.how
    # compressed, deduplicated or sparse: DataSync moves the files' sizes, not the blocks they take
    sparse = weigh_statvfs(sample, 4096, 1200)
    assert (sparse.bytes, sparse.entries) == (10**9, 1200) and "sparse" in sparse.how
    assert weigh_statvfs(sample, 0, 0) == sample


def test_the_size_guess_is_the_same_however_many_threads_draw_its_paths(tmp_path, monkeypatch):
    """The probes run side by side on a network mount; each draws from its own seed, and a
    directory two probes pass at once is listed once: the threads change neither the guess
    nor how many directories it lists."""
    rng = random.Random(7)
    share = tmp_path / "share"

    def build(at, level):
        at.mkdir()
        for f in range(rng.randint(0, 6)):
            (at / f"f{f}").write_bytes(b"x" * rng.randint(0, 500))
        for d in range(rng.randint(0, 4) if level < 4 else 0):
            build(at / f"d{d}", level + 1)
    build(share, 0)
    guesses = []
    for threads in (1, 8):
        monkeypatch.setattr(scan_module, "default_workers", lambda path, n=threads: n)
        guesses.append(guess_size(str(tmp_path), ("share",), probes=64))
    assert guesses[0] == guesses[1]
    assert guesses[0].entries > 1
