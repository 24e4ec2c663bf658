"""The extension modules; everything else about the package is in pyproject.toml."""

import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

if sys.platform == "win32":
    COMPILE_ARGS = ["/O2"]
else:
    # -ffp-contract=off: no fused multiply-add, so that floating-point results
    # (latency EWMA, weighted sampling keys) match the pure-Python twin bit
    # for bit on every architecture, aarch64 included.
    COMPILE_ARGS = ["-O3", "-ffp-contract=off"]

MODULES = ["_health", "_segment", "_selector"]

extensions = [
    Extension(
        f"byok_core.{name}",
        [f"src/byok_core/{name}.pyx"],
        include_dirs=["src/byok_core"],
        extra_compile_args=COMPILE_ARGS,
    )
    for name in MODULES
] + [
    # the stream translators' commonest event, in C (the Python path stands in without it)
    Extension(
        "byok.gateway.translation._fast_text",
        ["src/byok/gateway/translation/_fast_text.pyx"],
        extra_compile_args=COMPILE_ARGS,
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["src"],
        compiler_directives={"language_level": 3, "embedsignature": True},
    )
)
