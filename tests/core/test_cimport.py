"""Other Cython code can `cimport byok_core`: the .pxd files and _platform.h
are installed where byok_core.get_include() says, and an extension built
against them reads the engine's own structs and calls its C methods.

This builds a real extension with Cython and the C compiler (gcc, clang or
MSVC), as the README tells users to: a missing compiler or Cython fails the
test, it does not skip it.  It runs against the installed package too (the
wheel tests), which is where the .pxd and .h files must have been shipped.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import byok_core

PROBE = "byok_cimport_probe"

# Everything through `cimport byok_core` (its __init__.pxd), plus one
# submodule cimport as the pxd files themselves do.
PROBE_PYX = """\
# cython: language_level=3, freethreading_compatible=True
from libc.stdint cimport int64_t

cimport byok_core
from byok_core._health cimport byok_load, clock

READY = byok_core.READY
COOLING = byok_core.COOLING
BLOCKED = byok_core.BLOCKED
AVAILABLE = byok_core.AVAILABLE
PROBE = byok_core.PROBE


def records(byok_core.Selector sel):
    \"\"\"(state, picks, failures, rate_limits) of each member, read from the
    member_t array itself: a wrong layout reads the wrong words.\"\"\"
    cdef byok_core.member_t *m
    rows = []
    for i in range(sel.n):
        m = &sel.members[i]
        rows.append((byok_load(&m.state), byok_load(&m.picks),
                     byok_load(&m.failures), byok_load(&m.rate_limits)))
    return rows


def choose(byok_core.Selector sel, int64_t now_ns, int count):
    \"\"\"`count` calls of the C method choose() (round robin), as (index, kind).\"\"\"
    cdef int64_t now = now_ns
    cdef int kind = 0
    cdef Py_ssize_t i
    out = []
    for _ in range(count):
        kind = 0
        i = sel.choose(byok_core.ROUND_ROBIN, 0, &now, 0, &kind)
        out.append((i, kind))
    return out


def clock_reads():
    \"\"\"BYOK_NOW_UNSET resolved by the clock of _platform.h, twice.\"\"\"
    cdef int64_t first = byok_core.BYOK_NOW_UNSET
    cdef int64_t second = byok_core.BYOK_NOW_UNSET
    return clock(&first), clock(&second)
"""

SETUP_PY = f"""\
import byok_core
from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    name="{PROBE}",
    ext_modules=cythonize(
        [Extension("{PROBE}", ["{PROBE}.pyx"], include_dirs=[byok_core.get_include()])]
    ),
)
"""


def build_probe(directory: Path) -> ModuleType:
    (directory / f"{PROBE}.pyx").write_text(PROBE_PYX)
    (directory / "setup.py").write_text(SETUP_PY)
    result = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        "building an extension that cimports byok_core failed (this test needs "
        "Cython, setuptools and a C compiler):\n" + result.stdout[-4000:] + result.stderr[-4000:]
    )
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    (built,) = [
        p for p in directory.iterdir() if p.name.startswith(PROBE) and p.name.endswith(suffixes)
    ]
    spec = importlib.util.spec_from_file_location(PROBE, built)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_get_include_holds_the_pxd_files_and_the_header():
    include = byok_core.get_include()
    assert os.path.isabs(include)
    assert include == os.path.dirname(os.path.abspath(byok_core.__file__))
    shipped = set(os.listdir(include))
    assert {"__init__.pxd", "_health.pxd", "_selector.pxd", "_platform.h"} <= shipped


def test_an_extension_that_cimports_byok_core_reads_and_drives_the_engine(tmp_path):
    # the compiled Selector whatever BYOK_NO_EXTENSIONS says: a cimport binds to it
    from byok_core._selector import Selector

    probe = build_probe(tmp_path)
    assert len({probe.READY, probe.COOLING, probe.BLOCKED}) == 3

    sel = Selector(["a", "b", "c"], strategy="round_robin", cooldown=5.0)
    assert [sel.pick(now=1.0) for _ in range(4)] == ["a", "b", "c", "a"]
    sel.report_rate_limited("c", retry_after=30.0, now=1.0)  # cools until 31 s
    sel.report_error("a", now=1.0)  # one failure: the circuit stays closed
    sel.block("b")
    states = (probe.READY, probe.BLOCKED, probe.COOLING)
    view = sel.snapshot(now=2.0)
    assert [(row["picks"], row["failures"], row["rate_limits"]) for row in view] == [
        (2, 1, 0),
        (1, 0, 0),
        (1, 1, 1),  # a 429 counts as a failure too
    ]
    assert probe.records(sel) == [
        (state, row["picks"], row["failures"], row["rate_limits"])
        for state, row in zip(states, view)
    ]

    # at 2 s only a is available; at 40 s c's cooldown is over and it is
    # offered as a probe, in round-robin turn after a
    assert probe.choose(sel, 2_000_000_000, 2) == [(0, probe.AVAILABLE)] * 2
    assert probe.choose(sel, 40_000_000_000, 2) == [(2, probe.PROBE), (0, probe.AVAILABLE)]

    first, second = probe.clock_reads()
    assert 0 < first <= second
