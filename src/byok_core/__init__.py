"""byok_core: the selection engine of byok, usable on its own.

    from byok_core import Selector
    sel = Selector(["key-a", "key-b"], strategy="weighted_round_robin", weights=[3, 1])
    member = sel.pick()
    sel.report_rate_limited(member, retry_after=2.0)

The compiled modules load by default; ``BYOK_NO_EXTENSIONS=1`` in the
environment selects their pure-Python twins (same surface, same results).
``COMPILED`` says which ones this process is running.
"""

import os as _os

from ._args import STATES, STRATEGIES, TRANSITIONS

__version__ = "0.1.0"

COMPILED: bool
if _os.environ.get("BYOK_NO_EXTENSIONS", "") not in ("", "0"):
    from ._health_py import HealthTable
    from ._selector_py import Selector

    COMPILED = False
else:
    try:
        from ._health import HealthTable  # type: ignore[no-redef]
        from ._selector import Selector  # type: ignore[no-redef]

        COMPILED = True
    except ImportError:  # a platform without a wheel and without a compiler
        from ._health_py import HealthTable
        from ._selector_py import Selector

        COMPILED = False

__all__ = [
    "COMPILED",
    "STATES",
    "STRATEGIES",
    "TRANSITIONS",
    "HealthTable",
    "Selector",
    "__version__",
]
