"""Fixtures shared by the test modules.

Helpers live in plain modules beside the tests (sites, commands, trees): pytest's default
import mode puts this directory on the path for them. The project itself is installed
(`make test` installs it in editable mode), so nothing here edits sys.path."""

import pytest

from emulator.harness import Emulator
from sites import SERVER, make_site


@pytest.fixture
def site(tmp_path):
    with make_site(tmp_path) as s:
        yield s


@pytest.fixture
def dirs(tmp_path):
    """An empty share and an empty local S3 for the emulator's own tests."""
    src = tmp_path / "share"
    dst = tmp_path / "s3"
    src.mkdir()
    dst.mkdir()
    return src, dst


@pytest.fixture
def emu(dirs):
    """The emulator alone over ``dirs``: three Basic agents, new tasks ready at once."""
    src, dst = dirs
    e = Emulator().start({f"{SERVER}:/vol1": str(src)}, str(dst), agents=3,
                         phase_delay=0.02, offline_error_delay=0.5, task_create_delay=0)
    try:
        yield e
    finally:
        assert e.stop() == 0, e.stderr()
