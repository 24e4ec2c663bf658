"""The compiled modules load in a normal install, and the switch to the twins works."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import pytest

import byok_core
from byok_core import _health_py, _selector_py


def test_compiled_engine_loaded():
    """Fails when the extension did not build or import: a normal install must
    run the compiled engine, not silently fall back to the twins."""
    if os.environ.get("BYOK_NO_EXTENSIONS", "") not in ("", "0"):
        assert byok_core.COMPILED is False
        return
    from byok_core import _selector

    assert byok_core.COMPILED is True
    assert byok_core.Selector is _selector.Selector
    assert _selector.__file__.endswith((".so", ".pyd"))


@pytest.mark.parametrize(("flag", "expected"), [("1", "False"), ("0", "True"), ("", "True")])
def test_environment_switch_selects_the_twins(flag, expected):
    env = {**os.environ, "BYOK_NO_EXTENSIONS": flag}
    code = "import byok_core; print(byok_core.COMPILED, byok_core.Selector.__module__)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == expected
    assert out[1] == ("byok_core._selector_py" if expected == "False" else "byok_core._selector")


def public(cls):
    return {name for name in dir(cls) if not name.startswith("_")} | (
        {"__len__", "__contains__"} & set(dir(cls))
    )


def test_twins_have_the_same_public_surface():
    from byok_core import _health, _selector

    assert public(_selector.Selector) == public(_selector_py.Selector)
    assert public(_health.HealthTable) == public(_health_py.HealthTable)


@pytest.mark.parametrize(
    ("compiled", "pure"), [("_selector", _selector_py), ("_health", _health_py)]
)
def test_twins_take_the_same_arguments(compiled, pure):
    module = __import__(f"byok_core.{compiled}", fromlist=["*"])
    cls_name = "Selector" if compiled == "_selector" else "HealthTable"
    fast, slow = getattr(module, cls_name), getattr(pure, cls_name)
    for name in public(slow) - {"ids", "strategy", "__len__", "__contains__"}:
        want = list(inspect.signature(getattr(slow, name)).parameters)
        have = list(inspect.signature(getattr(fast, name)).parameters)
        assert have == want, name


def test_package_ships_stubs_and_the_pxd_contract():
    root = os.path.dirname(byok_core.__file__)
    for name in ["py.typed", "_selector.pyi", "_health.pyi", "_selector.pxd", "_health.pxd"]:
        assert os.path.exists(os.path.join(root, name)), name
