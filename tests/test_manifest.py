"""The manifest is read as written: lines end at '\\n' only, names keep their blanks,
and an entry DataSync could not select as written is refused."""

from __future__ import annotations

import os

import pytest

from datasync_multi.errors import UserError
from datasync_multi.manifest import read_manifest


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
