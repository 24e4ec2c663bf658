"""What every test shares: a usage ledger of their own.

byok keeps its usage ledger in the platform's data directory by default
($XDG_DATA_HOME/byok/usage.sqlite3); the tests, and the byok processes they
start, keep theirs in a directory of this run instead, never in the home of
whoever runs them."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_data_home = ""


def pytest_configure(config: pytest.Config) -> None:
    global _data_home
    _data_home = tempfile.mkdtemp(prefix="byok-tests-data-")
    os.environ["XDG_DATA_HOME"] = _data_home


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_data_home, ignore_errors=True)
