"""byok_core: the selection engine of byok, usable on its own.

    from byok_core import Selector
    sel = Selector(["key-a", "key-b"], strategy="weighted_round_robin", weights=[3, 1])
    member = sel.pick()
    sel.report_rate_limited(member, retry_after=2.0)

The compiled modules load by default; ``BYOK_NO_EXTENSIONS=1`` in the
environment selects their pure-Python twins (same surface, same results).
``COMPILED`` says which ones this process is running.

Worker processes on one host share their keys' health through a
``HealthSegment`` in shared memory::

    segment = HealthSegment.create()                          # the supervisor
    segment = HealthSegment.attach(name, worker=i)            # each worker
    sel = Selector(["key-a", "key-b"], shared=segment, scope="gpt-4o/openai")

A 429 reported in one process then cools the key in every process at once
(every process passes ``now`` from time.monotonic(), or leaves it None).
"""

import os as _os

from ._args import STATES, STRATEGIES, TRANSITIONS
from ._names import (
    Cause,
    KeyView,
    LimitView,
    MemberView,
    PoolView,
    State,
    Strategy,
    Transition,
)

__version__ = "0.1.0"

COMPILED: bool
if _os.environ.get("BYOK_NO_EXTENSIONS", "") not in ("", "0"):
    from ._health_py import HealthTable
    from ._segment_py import HealthSegment
    from ._selector_py import Selector

    COMPILED = False
else:
    try:
        from ._health import HealthTable  # type: ignore[assignment]
        from ._segment import HealthSegment  # type: ignore[assignment]
        from ._selector import Selector  # type: ignore[assignment]

        COMPILED = True
    except ImportError:  # a platform without a wheel and without a compiler
        from ._health_py import HealthTable
        from ._segment_py import HealthSegment
        from ._selector_py import Selector

        COMPILED = False


def get_include() -> str:
    """The directory of byok_core's C-level contract, for other Cython code.

    It holds ``_health.pxd``, ``_selector.pxd``, ``__init__.pxd`` and
    ``_platform.h``: the package directory itself (as numpy and asyncpg do).
    Pass it to the C compiler, which needs ``_platform.h``::

        Extension("mine", ["mine.pyx"], include_dirs=[byok_core.get_include()])

    and ``cimport byok_core`` (or ``from byok_core._selector cimport Selector``)
    in ``mine.pyx``.  Cython finds the ``.pxd`` files through ``sys.path``
    where byok_core is installed; if the Cython that compiles ``mine.pyx``
    cannot import byok_core, give ``cythonize()`` the parent directory:
    ``include_path=[os.path.dirname(byok_core.get_include())]``.
    """
    return _os.path.dirname(_os.path.abspath(__file__))


__all__ = [
    "COMPILED",
    "STATES",
    "STRATEGIES",
    "TRANSITIONS",
    "Cause",
    "HealthSegment",
    "HealthTable",
    "KeyView",
    "LimitView",
    "MemberView",
    "PoolView",
    "Selector",
    "State",
    "Strategy",
    "Transition",
    "__version__",
    "get_include",
]
