"""Fixtures shared by the test modules, the ``e2e`` marker, and the Hypothesis profile.

Helpers live in plain modules beside the tests (sites, commands, trees, arns, calls,
profiles): pytest's default import mode puts this directory on the path for them. The project
itself is installed (`make test` installs it in editable mode), so nothing here edits sys.path.

The fast tier (``make test-fast``, ``pytest -m "not e2e"``) is every test not marked ``e2e``.
The marker is put on here, not written on each test: a test is e2e when its module is one of
the emulator's or the end-to-end ones (test_emulator*, test_e2e_*) or when it starts the
emulator through the ``site`` or ``emu`` fixture. So a new pure test joins the fast tier by
itself, and what is slow is told by what it does, not by someone remembering a marker; CI
runs every test either way."""

import functools
import os

import pytest
from hypothesis import settings

import profiles
from commands import run_in_process
from emulator.harness import Emulator
from sites import SERVER, make_site

profiles.load_from_environment()
os.environ.setdefault("DATASYNC_MULTI_SETTLE_SEC", "1")
"""A lost start is sent again once it is a second old, not two minutes (``datasync.settle_seconds``):
the emulator carries a call out at once, except under a ``late`` fault, whose tests set longer."""

E2E_MODULES = ("test_e2e_", "test_emulator")
EMULATOR_FIXTURES = {"site", "emu"}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name.startswith(E2E_MODULES) or EMULATOR_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


def pytest_report_header(config):
    return f"hypothesis profile: {settings.get_current_profile_name()}"


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


@pytest.fixture
def ds(emu):
    """A boto3 DataSync client of ``emu`` (parameter validation on)."""
    return emu.client()


@pytest.fixture
def in_process(tmp_path, monkeypatch, capsys):
    """Our commands through their ``main(argv)`` in this process: ``in_process(*args, script=...,
    env=...)`` as ``commands.run(tmp_path, ...)``, without starting a Python (see ``run_in_process``)."""
    return functools.partial(run_in_process, monkeypatch, capsys, tmp_path)
