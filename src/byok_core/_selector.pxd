# The contract of byok_core._selector: Cython code may cimport Selector and
# call choose() without Python overhead.

from libc.stdint cimport int64_t, uint64_t

from byok_core._health cimport HealthTable, member_t

cdef enum:
    ROUND_ROBIN = 0
    WEIGHTED_ROUND_ROBIN = 1
    RANDOM = 2
    WEIGHTED_RANDOM = 3
    PRIORITY = 4
    LEAST_USED = 5
    LEAST_INFLIGHT = 6
    LATENCY = 7
    STICKY = 8
    HEADROOM = 9

# One candidate in a failover order: sorted by (primary, secondary, index).
ctypedef struct rank_t:
    double primary
    int64_t secondary
    Py_ssize_t index
    int kind


cdef class Selector:
    cdef readonly tuple ids
    cdef dict index
    cdef int strategy_code
    cdef HealthTable health
    cdef HealthTable pool            # the pool's own limits, one record; None if it has none
    cdef member_t *pool_record       # pool.records[0], cached; NULL without pool limits
    cdef member_t **records          # health.records, cached: member i's record
    cdef member_t *members           # health.members: NULL when the table is shared
    cdef Py_ssize_t n
    cdef int64_t *weights
    cdef int64_t *current            # smooth weighted round robin state
    cdef uint64_t *id_hashes         # for rendezvous hashing
    cdef rank_t *scratch             # eligible members of a random draw
    cdef int64_t cursor              # round robin: the next position
    cdef uint64_t rng                # splitmix64 state
    cdef int64_t lock                # guards current, rng and scratch

    # `now` points at the caller's time, or at BYOK_NOW_UNSET: the clock is
    # read only if a member's state depends on it (see _health.pxd)
    # `cost`: the request's estimated tokens, for the members' token limits
    cdef Py_ssize_t choose(self, int strategy, uint64_t key_hash, int64_t *now,
                           int64_t cost, int *kind) noexcept nogil
    cdef Py_ssize_t rotate(self, int64_t *now, int64_t cost, int *kind) noexcept nogil
    cdef Py_ssize_t smooth_step(self, int64_t *now, int64_t cost, int *kind) noexcept nogil
    cdef Py_ssize_t draw(self, int strategy, int64_t *now, int64_t cost, int *kind) noexcept nogil
    cdef Py_ssize_t ordered(self, int strategy, uint64_t key_hash, int64_t *now,
                            int64_t cost, rank_t *ranks) noexcept nogil
    cdef bint pool_open(self, int64_t *now, int64_t cost) noexcept nogil
    cdef bint take(self, Py_ssize_t i, int64_t cost, int64_t now)
    cdef Py_ssize_t member(self, object id) except -1
