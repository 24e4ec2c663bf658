# `cimport byok_core`: the engine's C-level contract under one name, for Cython
# code that picks keys without Python overhead (byok_core.Selector.choose()).
# The declarations live in _health.pxd and _selector.pxd; the C compiler needs
# byok_core.get_include() among its include_dirs (for _platform.h).

from byok_core._health cimport (
    AVAILABLE, BLOCKED, BYOK_NOW_UNSET, COOLING, DISABLED, PROBE, READY, UNAVAILABLE,
    HealthTable, availability, claim_probe, member_t,
)
from byok_core._selector cimport (
    LATENCY, LEAST_INFLIGHT, LEAST_USED, PRIORITY, RANDOM, ROUND_ROBIN, STICKY,
    WEIGHTED_RANDOM, WEIGHTED_ROUND_ROBIN, Selector, rank_t,
)
