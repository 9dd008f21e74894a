"""Fixtures shared by the test modules.

Helpers live in plain modules beside the tests (sites, commands, trees): pytest's default
import mode puts this directory on the path for them. The project itself is installed
(`make test` installs it in editable mode), so nothing here edits sys.path."""

import pytest

from sites import make_site


@pytest.fixture
def site(tmp_path):
    with make_site(tmp_path) as s:
        yield s
