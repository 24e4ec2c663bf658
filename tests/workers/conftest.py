"""The simulated upstream behind every group, and a port another program holds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..cli.test_exits import busy_port  # noqa: F401 (a fixture, for these tests too)
from ..stack import Stack
from .group import KEYS


@pytest.fixture
def simulated() -> Iterator[Stack]:
    """The simulated upstream (the stack's own proxy goes unused) with KEYS."""
    with Stack(lambda upstream: {"providers": {"x": {"kind": "openai", "keys": ["k"]}}}) as sim:
        for secret, label in KEYS.items():
            sim.simulator.add_key(secret, label)
        yield sim
