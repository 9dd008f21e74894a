"""The manifest is read as written: lines end at '\\n' only, names keep their blanks,
and an entry DataSync could not select as written is refused."""

from __future__ import annotations

import codecs
import os
import re
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasync_multi.errors import UserError
from datasync_multi.manifest import read_manifest
from datasync_multi.plan import make_plan
from datasync_multi.scan import scan
from profiles import examples
from trees import build, entries

AGENT = "arn:aws:datasync:us-east-1:111122223333:agent/agent-00000000000000001"


def manifest(tmp_path, text: str) -> str:
    path = tmp_path / "source_file.manifest"
    path.write_bytes(text.encode("utf-8"))
    return str(path)


@pytest.mark.parametrize("breaker", ["\u2028", "\u0085", "\x0c", "\u2029", "\x1c"])
def test_a_character_splitlines_breaks_on_stays_inside_the_name(tmp_path, breaker):
    mount = tmp_path / "fsx"
    for d in ("rep", "orts", f"rep{breaker}orts"):
        (mount / d).mkdir(parents=True)
    m = read_manifest(manifest(tmp_path, f"# reports\n/rep{breaker}orts\n"), str(mount))
    assert m.entries == (f"rep{breaker}orts",)


def test_windows_line_endings_are_line_endings(tmp_path):
    mount = tmp_path / "fsx"
    (mount / "data").mkdir(parents=True)
    (mount / "more").mkdir()
    assert read_manifest(manifest(tmp_path, "/data\r\n/more\r\n"), str(mount)).entries == ("data", "more")


@pytest.mark.parametrize("first", ["/data", "# what to move", "/"])
def test_a_utf8_byte_order_mark_is_not_part_of_the_first_line(tmp_path, first):
    """As a Windows editor saves it: the mark before the first line, which is an entry, a
    comment or the whole export."""
    mount = tmp_path / "fsx"
    (mount / "data").mkdir(parents=True)
    (mount / "more").mkdir()
    path = tmp_path / "bom.manifest"
    path.write_bytes(b"\xef\xbb\xbf" + f"{first}\r\n/more\r\n".encode())
    expected = {"/data": ("data", "more"), "# what to move": ("more",), "/": ("",)}[first]
    assert read_manifest(str(path), str(mount)).entries == expected


@pytest.mark.parametrize("bom, codec, name", [(codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"),
                                              (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"),
                                              (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32")])
def test_a_utf16_or_utf32_manifest_is_refused_naming_its_encoding(tmp_path, bom, codec, name):
    """As Windows Notepad saves "Unicode": not a name of it would be found, so say why."""
    mount = tmp_path / "fsx"
    (mount / "data").mkdir(parents=True)
    path = tmp_path / "wide.manifest"
    path.write_bytes(bom + "/data\n".encode(codec))
    said = f"manifest '{path}' is {name} (it starts with a {name} byte-order mark): save it as UTF-8"
    with pytest.raises(UserError, match=re.escape(said)):
        read_manifest(str(path), str(mount))


def test_a_name_ending_in_a_space_is_kept_as_written(tmp_path):
    mount = tmp_path / "fsx"
    (mount / "data").mkdir(parents=True)
    (mount / "data ").mkdir()
    assert read_manifest(manifest(tmp_path, "/data \n"), str(mount)).entries == ("data ",)
    assert read_manifest(manifest(tmp_path, "/data\n"), str(mount)).entries == ("data",)


def test_a_name_with_a_stray_space_that_does_not_exist_is_refused_not_trimmed(tmp_path):
    mount = tmp_path / "fsx"
    (mount / "data").mkdir(parents=True)
    with pytest.raises(UserError, match=r"'/data ' does not exist under .*without the blanks .* '/data'"):
        read_manifest(manifest(tmp_path, "/data \n"), str(mount))


def test_an_entry_reached_through_a_symlinked_directory_is_refused_naming_the_symlink(tmp_path):
    mount = tmp_path / "fsx"
    (mount / "real" / "b").mkdir(parents=True)
    (mount / "x").mkdir()
    os.symlink("../real", mount / "x" / "link")
    with pytest.raises(UserError, match=r"'/x/link/b' is reached through the symlink '/x/link' \(-> \.\./real\)"):
        read_manifest(manifest(tmp_path, "/x/link/b\n"), str(mount))
    with pytest.raises(UserError, match=r"'/x/link' is a symlink"):
        read_manifest(manifest(tmp_path, "/x/link\n"), str(mount))
    assert read_manifest(manifest(tmp_path, "/real/b\n"), str(mount)).entries == ("real/b",)


def test_a_file_is_not_a_directory_and_a_missing_entry_does_not_exist(tmp_path):
    mount = tmp_path / "fsx"
    mount.mkdir()
    (mount / "f").write_text("x")
    with pytest.raises(UserError, match="'/f' is not a directory"):
        read_manifest(manifest(tmp_path, "/f\n"), str(mount))
    with pytest.raises(UserError, match="'/nope' does not exist"):
        read_manifest(manifest(tmp_path, "/nope\n"), str(mount))


def test_an_entry_datasync_skips_is_left_out_and_named_in_the_plan_warnings(tmp_path):
    """DataSync skips any path ending in '.snapshot' and a top-level .zfs, .aws-datasync or
    .awssync, and so what is inside them: such an entry is neither counted nor given to a task."""
    mount = tmp_path / "fsx"
    for d in ("vol/.snapshot/hourly", "vol/data", ".zfs/snapshot/daily", "home/x.snapshot"):
        (mount / d).mkdir(parents=True)
        (mount / d / "f").write_bytes(b"x" * 1000)
    text = "/vol/.snapshot\n/vol/data\n/.zfs/snapshot/daily\n/home/x.snapshot\n/vol/.snapshot/hourly\n"
    m = read_manifest(manifest(tmp_path, text), str(mount))
    plan = make_plan(scan(str(mount), m.entries), [AGENT], task_name="T_")
    assert [list(t.includes) for t in plan.tasks] == [["/vol/data/"]]
    assert (plan.total_files, plan.total_bytes) == (1, 1000)
    [warning] = [w for w in plan.warnings if "skips by default" in w]
    assert warning.startswith("3 manifest entries are a path DataSync skips by default")
    assert warning.endswith(": '/.zfs/snapshot/daily', '/home/x.snapshot', '/vol/.snapshot'"), warning


def test_a_manifest_of_only_entries_datasync_skips_is_refused(tmp_path):
    mount = tmp_path / "fsx"
    (mount / "vol/.snapshot/hourly").mkdir(parents=True)
    with pytest.raises(UserError, match="every entry of manifest .* is a path DataSync skips by default"):
        read_manifest(manifest(tmp_path, "/vol/.snapshot/hourly\n"), str(mount))


def test_an_entry_of_any_depth_is_checked_and_one_past_the_path_limit_is_refused(tmp_path):
    """Within DataSync's 4,096 bytes, an entry whose full path is past the kernel's PATH_MAX is
    read; past DataSync's limit, an entry is one line of refusal."""
    mount = tmp_path / "fsx"
    mount.mkdir()
    build(str(mount), {"deep": ("deep", (4090, {}))})
    deepest = "/".join(p for p, kind, _ in entries(str(mount)) if kind == "empty-dir")
    assert len(os.fsencode(str(mount) + deepest)) > 4096
    assert read_manifest(manifest(tmp_path, deepest + "\n"), str(mount)).entries == (deepest[1:],)
    with pytest.raises(UserError, match=r"does not exist"):
        read_manifest(manifest(tmp_path, deepest + "x\n"), str(mount))
    with pytest.raises(UserError, match=r"is 4,098 bytes long, past DataSync's 4,096-byte path limit"):
        read_manifest(manifest(tmp_path, deepest + "/abcdefg\n"), str(mount))


@settings(max_examples=examples(50))
@given(entries=st.lists(st.lists(st.sampled_from(["a", "a-b", "ab", "b"]), min_size=0, max_size=3),
                        min_size=1, max_size=12))
def test_entries_inside_another_are_merged_into_it(entries):
    with tempfile.TemporaryDirectory() as top:
        for parts in entries:
            os.makedirs(os.path.join(top, "fsx", *parts), exist_ok=True)
        listed = ["/" + "/".join(parts) for parts in entries]
        with open(os.path.join(top, "m"), "w") as fh:
            fh.write("\n".join(listed) + "\n")
        m = read_manifest(os.path.join(top, "m"), os.path.join(top, "fsx"))
    rels = {path.strip("/") for path in listed}
    inside = {r for r in rels if any(o != r and (o == "" or r.startswith(o + "/")) for o in rels)}
    assert set(m.entries) == rels - inside and set(m.merged) == inside
