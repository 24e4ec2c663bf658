"""Every core test runs over the compiled engine and its pure-Python twin."""

from __future__ import annotations

import types

import pytest

import byok_core._health_py
import byok_core._segment_py
import byok_core._selector_py

IMPLEMENTATIONS = ["compiled", "pure"]


def load(name: str) -> types.SimpleNamespace:
    if name == "compiled":
        # No fallback here: a compiled module that fails to import fails the test.
        from byok_core import _health, _segment, _selector

        return types.SimpleNamespace(
            name=name,
            Selector=_selector.Selector,
            HealthTable=_health.HealthTable,
            HealthSegment=_segment.HealthSegment,
        )
    return types.SimpleNamespace(
        name=name,
        Selector=byok_core._selector_py.Selector,
        HealthTable=byok_core._health_py.HealthTable,
        HealthSegment=byok_core._segment_py.HealthSegment,
    )


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> types.SimpleNamespace:
    return load(request.param)


@pytest.fixture
def both() -> tuple[types.SimpleNamespace, types.SimpleNamespace]:
    return load("compiled"), load("pure")
