# cython: language_level=3, freethreading_compatible=True
# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The selector: which member (upstream key) serves the next request.

Theory of operation
-------------------
A selector owns a HealthTable (see _health.pyx) and adds what choosing needs:
member ids, weights and one small piece of state per strategy.  A pick looks
at every member once, asks the health table whether it is available now
(ready, or half-open with its probe free) and lets the strategy choose among
those that are:

    round_robin           the next available member after the last one picked
    weighted_round_robin  nginx's smooth weighted round robin over available
                          members (weights 5,1,1: a a b a c a a)
    random                uniform over available members (seeded splitmix64)
    weighted_random       proportional to weight
    priority              the first available member in definition order
    least_used            fewest picks, ties to definition order
    least_inflight        fewest calls in flight, then fewest picks
    latency               lowest latency EWMA; members with no sample go first
    sticky                weighted rendezvous hashing of the caller's key: a
                          key keeps its member while that member is available,
                          and only that member's keys move when it leaves;
                          without a key, smooth weighted round robin
    headroom              the largest share left of its limits (the provider's
                          figures, and rpm/tpm/daily_tokens), then fewest picks

If the choice is a half-open member, the pick must win its probe (see
_health.pyx); a loser chooses again and no longer sees it.

Limits (see _health.pyx): a member over a limit in force is not available
for a request of ``cost`` estimated tokens.  pick() takes the request from
the chosen member's limits; order() takes nothing, and acquire() takes the
request from the member it is called for (use pick() alone, or order() and
acquire()).  The pool itself may have limits (pool_rpm, pool_tpm,
pool_max_inflight), kept in one more record: while the pool is over one,
pick() and order() find nothing, and acquire() takes from the pool and the
member together or from neither.

order() ranks every available member in failover order: priority in
definition order, round robin as a rotation from the next position, weighted
strategies by sampling without replacement (Efraimidis-Spirakis keys for
weighted_random, the next smooth round for weighted_round_robin), the rest by
their pick criterion.  Its head is what pick() would have returned (for the
random strategies: drawn from the same distribution), and it counts as one
pick.  A half-open member appears only at the head, as the
probe this caller claimed: placed further down it would be claimed and, more
often than not, never tried.

Reports go straight to the health table's C calls (see _health.pyx for the
circuit, the failure-rate window and the backoff), and come back as the
transition they caused: a byok_core.Transition (a str enum) or None, from a
tuple of its members indexed by the table's code.  outlook() and retry_after() are the table's.
The pick path reads only a member's state, deadlines, in-flight count and,
for some strategies, its picks and latency: never the window or the cause.

Concurrency: round robin advances its cursor with compare-and-swap; priority,
least_*, latency and sticky read the table without any lock; smooth weighted
round robin and the random strategies keep a few words of state (current
weights, RNG) behind one short spinlock.  Nothing on the pick path allocates
except the reference to the returned id.

Randomness and hashing are splitmix64 and FNV-1a, written out here and in the
pure-Python twin alike, so that a seeded selector gives the same sequence in
both, and a sticky key maps to the same member in every process.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Calloc, PyMem_Free, PyMem_Malloc
from cpython.tuple cimport PyTuple_GET_ITEM
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.math cimport INFINITY, log
from libc.stdint cimport int64_t, uint64_t

from byok_core._health cimport (
    AVAILABLE, BLOCKED, DISABLED, LIMITS, READY, HealthTable, availability, byok_cas,
    byok_fetch_add, byok_forget_self, byok_load, byok_load_f64, byok_lock, byok_unlock,
    charge, claim_probe, clock, cost_units, headroom_share, limits_wait, member_t, now_ns,
    report_seconds,
)

import os

from byok_core import _args
from byok_core._names import Cause

STRATEGIES = _args.STRATEGIES  # byok_core.Strategy members by strategy code
cdef tuple TRANSITION_NAMES = (None,) + _args.TRANSITIONS  # by the codes in _health.pxd


@cython.final
cdef class Selector:
    """Picks which member (upstream key) serves the next request.

    See the module docstring for the strategies and the README for a tour.

    ``shared=segment, scope="pool"``: the members' health lives in a
    byok_core.HealthSegment (shared memory), in the slots of (scope, id), so
    that selectors of that scope in every process attached to the segment
    see and update one record per id (cooldowns, probes, max_inflight,
    counters); cursors, weights and the RNG stay this selector's own.  Every
    process must then pass ``now`` from one clock, time.monotonic()
    (CLOCK_MONOTONIC, which the engine reads when ``now`` is None).  A
    selector built again with the same scope (a reload) finds the same
    records: inherit() copies nothing for them.
    """

    def __cinit__(self, ids, strategy="round_robin", weights=None, cooldown=1.0,
                  max_cooldown=15.0, failure_threshold=3, seed=None, *,
                  max_inflight=None, probe_timeout=30.0, latency_alpha=0.3,
                  failure_rate=0.5, failure_rate_window=30.0, failure_rate_min_attempts=10,
                  shared=None, scope=None, rpm=None, tpm=None, daily_tokens=None,
                  pool_rpm=0, pool_tpm=0, pool_max_inflight=0):
        self.ids = _args.member_ids(ids)
        self.strategy_code = _args.strategy_code(strategy)
        weight_list = _args.per_member(weights, self.ids, "weights", 1, 1)
        caps = _args.per_member(max_inflight, self.ids, "max_inflight", 0, 0)
        limits = _args.per_member_limits(rpm, tpm, daily_tokens, self.ids)
        self.health = HealthTable(
            len(self.ids), cooldown=cooldown, max_cooldown=max_cooldown,
            failure_threshold=failure_threshold, probe_timeout=probe_timeout,
            latency_alpha=latency_alpha, max_inflight=caps, failure_rate=failure_rate,
            failure_rate_window=failure_rate_window,
            failure_rate_min_attempts=failure_rate_min_attempts,
            shared=shared, scope=scope, ids=self.ids if shared is not None else None,
            rpm=[lim[0] for lim in limits], tpm=[lim[1] for lim in limits],
            daily_tokens=[lim[2] for lim in limits],
        )
        pool = _args.pool_limits(pool_rpm, pool_tpm, pool_max_inflight)
        if pool is not None:
            self.pool = HealthTable(
                1, max_inflight=[pool[2]], rpm=[pool[0]], tpm=[pool[1]], shared=shared,
                scope=scope, ids=(_args.POOL_ID,) if shared is not None else None,
            )
            self.pool_record = self.pool.records[0]
        self.index = {member: i for i, member in enumerate(self.ids)}
        self.rng = _args.seed64(seed)
        self.n = len(self.ids)
        self.members = self.health.members
        self.records = self.health.records
        cdef size_t slots = self.n if self.n else 1
        self.weights = <int64_t *>PyMem_Calloc(slots, sizeof(int64_t))
        self.current = <int64_t *>PyMem_Calloc(slots, sizeof(int64_t))
        self.id_hashes = <uint64_t *>PyMem_Calloc(slots, sizeof(uint64_t))
        self.scratch = <rank_t *>PyMem_Calloc(slots, sizeof(rank_t))
        if not (self.weights and self.current and self.id_hashes and self.scratch):
            raise MemoryError()
        for i in range(self.n):
            self.weights[i] = weight_list[i]
            self.id_hashes[i] = hash_key(self.ids[i])

    def __dealloc__(self):
        PyMem_Free(self.weights)
        PyMem_Free(self.current)
        PyMem_Free(self.id_hashes)
        PyMem_Free(self.scratch)

    # ---- picking -----------------------------------------------------------

    def pick(self, key=None, now=None, cost=0):
        """The member to use now for a request of ``cost`` estimated tokens,
        taken from its limits (and the pool's); None when none is available."""
        cdef int64_t t = now_ns(now)
        cdef int64_t units = cost_units(cost)
        cdef int strategy = self.strategy_code
        cdef uint64_t key_hash = 0
        cdef Py_ssize_t i, attempt
        cdef int kind
        if strategy == STICKY:
            if key is None:
                strategy = WEIGHTED_ROUND_ROBIN
            else:
                key_hash = hash_key(key)
        for attempt in range(self.n + 1):
            if self.pool_record != NULL and not self.pool_open(&t, units):
                return None
            i = self.choose(strategy, key_hash, &t, units, &kind)
            if i < 0:
                return None
            if kind == AVAILABLE or claim_probe(self.records[i], t, self.health.probe_timeout_ns):
                if not self.take(i, units, t):
                    continue  # another caller took what was left: choose again
                byok_fetch_add(&self.records[i].picks, 1)
                return self.ids[i]
        return None

    cdef bint take(self, Py_ssize_t i, int64_t cost, int64_t now):
        # pick(): the request from the pool's limits, then the member's
        cdef member_t *m = self.records[i]
        cdef member_t *p = self.pool_record
        cdef bint taken
        if p != NULL and byok_load(&p.limited):
            clock(&now)
            byok_lock(&p.lock)
            taken = charge(p, cost, now)
            byok_unlock(&p.lock)
            if not taken:
                return False
        if byok_load(&m.limited):
            clock(&now)
            byok_lock(&m.lock)
            taken = charge(m, cost, now)
            byok_unlock(&m.lock)
            if not taken:
                if p != NULL:
                    self.pool.refund(0, cost)
                return False
        return True

    cdef bint pool_open(self, int64_t *now, int64_t cost) noexcept nogil:
        # the pool is under its max_inflight and its limits can take the request
        cdef member_t *p = self.pool_record
        cdef int64_t cap = byok_load(&p.max_inflight)
        if cap and byok_load(&p.inflight) >= cap:
            return False
        return not byok_load(&p.limited) or limits_wait(p, cost, clock(now), NULL) <= 0

    cdef Py_ssize_t choose(self, int strategy, uint64_t key_hash, int64_t *now,
                           int64_t cost, int *kind) noexcept nogil:
        cdef Py_ssize_t i, best = -1
        cdef rank_t rank, best_rank
        cdef double bound
        if strategy == ROUND_ROBIN:
            return self.rotate(now, cost, kind)
        if strategy == PRIORITY:
            for i in range(self.n):
                kind[0] = availability(self.records[i], now, cost)
                if kind[0]:
                    return i
            return -1
        if strategy == WEIGHTED_ROUND_ROBIN:
            byok_lock(&self.lock)
            best = self.smooth_step(now, cost, kind)
            byok_unlock(&self.lock)
            return best
        if strategy == RANDOM or strategy == WEIGHTED_RANDOM:
            byok_lock(&self.lock)
            best = self.draw(strategy, now, cost, kind)
            byok_unlock(&self.lock)
            return best
        bound = INFINITY
        best_rank.primary = INFINITY
        best_rank.secondary = 0
        if strategy == HEADROOM:
            clock(now)
        for i in range(self.n):
            rank.kind = availability(self.records[i], now, cost)
            if not rank.kind:
                continue
            if strategy == STICKY:
                # Rendezvous: -log(u)/w, but -log(u) >= 1-u, so a member whose
                # bound already loses needs no log().  The margin covers
                # rounding, so the winner is exactly the one the twin finds.
                if (1.0 - unit(mix64(key_hash ^ self.id_hashes[i]))
                        > bound * <double>self.weights[i]):
                    continue
            rank_member(strategy, key_hash, self.records[i], self.id_hashes[i],
                        self.weights[i], now[0], &rank)
            if rank.primary < best_rank.primary or (
                    rank.primary == best_rank.primary and rank.secondary < best_rank.secondary):
                best = i
                best_rank = rank
                bound = best_rank.primary * (1.0 + 1e-9)
        if best >= 0:
            kind[0] = best_rank.kind
        return best

    cdef Py_ssize_t rotate(self, int64_t *now, int64_t cost, int *kind) noexcept nogil:
        cdef int64_t start
        cdef Py_ssize_t k, i
        while True:
            start = byok_load(&self.cursor)
            for k in range(self.n):
                i = (start + k) % self.n
                kind[0] = availability(self.records[i], now, cost)
                if kind[0]:
                    break
            else:
                return -1
            if byok_cas(&self.cursor, start, (i + 1) % self.n):
                return i

    cdef Py_ssize_t smooth_step(self, int64_t *now, int64_t cost, int *kind) noexcept nogil:
        # caller holds self.lock
        cdef Py_ssize_t i, best = -1
        cdef int64_t total = 0
        cdef int a
        for i in range(self.n):
            a = availability(self.records[i], now, cost)
            if a:
                self.current[i] += self.weights[i]
                total += self.weights[i]
                if best < 0 or self.current[i] > self.current[best]:
                    best = i
                    kind[0] = a
        if best >= 0:
            self.current[best] -= total
        return best

    cdef Py_ssize_t draw(self, int strategy, int64_t *now, int64_t cost,
                         int *kind) noexcept nogil:
        # caller holds self.lock
        cdef Py_ssize_t i, k = 0, count = 0  # k = 0: gcc cannot see that count > 0 runs the loop
        cdef int64_t total = 0
        cdef uint64_t r
        cdef int a
        for i in range(self.n):
            a = availability(self.records[i], now, cost)
            if a:
                self.scratch[count].index = i
                self.scratch[count].kind = a
                count += 1
                total += self.weights[i]
        if count == 0:
            return -1
        r = next_random(&self.rng)
        if strategy == RANDOM:
            k = r % <uint64_t>count
        else:
            r = r % <uint64_t>total
            for k in range(count):
                i = self.scratch[k].index
                if r < <uint64_t>self.weights[i]:
                    break
                r -= self.weights[i]
        kind[0] = self.scratch[k].kind
        return self.scratch[k].index

    def order(self, key=None, now=None, cost=0):
        """Available members in failover order, for a request of ``cost``
        estimated tokens; counts as one pick and takes nothing from the
        limits (acquire() does).  Empty while the pool is over a limit."""
        cdef int64_t t = now_ns(now)
        cdef int64_t units = cost_units(cost)
        cdef int strategy = self.strategy_code
        cdef uint64_t key_hash = 0
        cdef Py_ssize_t count, head, k
        if strategy == STICKY:
            if key is None:
                strategy = WEIGHTED_ROUND_ROBIN
            else:
                key_hash = hash_key(key)
        if self.n == 0 or (self.pool_record != NULL and not self.pool_open(&t, units)):
            return []
        cdef rank_t *ranks = <rank_t *>PyMem_Malloc(self.n * sizeof(rank_t))
        if ranks == NULL:
            raise MemoryError()
        try:
            count = self.ordered(strategy, key_hash, &t, units, ranks)
            for head in range(count):
                if ranks[head].kind == AVAILABLE or claim_probe(
                        self.records[ranks[head].index], t, self.health.probe_timeout_ns):
                    break
            else:
                return []
            byok_fetch_add(&self.records[ranks[head].index].picks, 1)
            result = [self.ids[ranks[head].index]]
            for k in range(head + 1, count):
                if ranks[k].kind == AVAILABLE:
                    result.append(self.ids[ranks[k].index])
            return result
        finally:
            PyMem_Free(ranks)

    cdef Py_ssize_t ordered(self, int strategy, uint64_t key_hash, int64_t *now,
                            int64_t cost, rank_t *ranks) noexcept nogil:
        """Fill `ranks` with the available members in failover order."""
        cdef Py_ssize_t i, k, j, head, count = 0
        cdef int a
        cdef int64_t start
        cdef rank_t swap
        for i in range(self.n):
            a = availability(self.records[i], now, cost)
            if a:
                ranks[count].index = i
                ranks[count].kind = a
                ranks[count].primary = 0.0
                ranks[count].secondary = 0
                count += 1
        if count == 0 or strategy == PRIORITY:
            return count
        if strategy == ROUND_ROBIN:
            while True:  # the head is the first available at or after the cursor
                start = byok_load(&self.cursor)
                j = 0
                for k in range(count):
                    if ranks[k].index >= start:
                        j = k
                        break
                if byok_cas(&self.cursor, start, (ranks[j].index + 1) % self.n):
                    break
            rotate_left(ranks, count, j)
            return count
        elif strategy == WEIGHTED_ROUND_ROBIN:
            byok_lock(&self.lock)
            head = self.smooth_step(now, cost, &a)
            for k in range(count):
                i = ranks[k].index
                if i == head:
                    ranks[k].primary = -1.0
                else:
                    ranks[k].secondary = -(self.current[i] + self.weights[i])
            byok_unlock(&self.lock)
        elif strategy == RANDOM:
            byok_lock(&self.lock)  # Fisher-Yates
            for k in range(count - 1, 0, -1):
                j = next_random(&self.rng) % <uint64_t>(k + 1)
                swap = ranks[k]
                ranks[k] = ranks[j]
                ranks[j] = swap
            byok_unlock(&self.lock)
            return count
        elif strategy == WEIGHTED_RANDOM:
            # Efraimidis-Spirakis: sorting by -log(u)/w samples without replacement
            byok_lock(&self.lock)
            for k in range(count):
                ranks[k].primary = (-log(unit(next_random(&self.rng)))
                                    / <double>self.weights[ranks[k].index])
            byok_unlock(&self.lock)
        else:
            if strategy == HEADROOM:
                clock(now)
            for k in range(count):
                i = ranks[k].index
                rank_member(strategy, key_hash, self.records[i], self.id_hashes[i],
                            self.weights[i], now[0], &ranks[k])
        sort_ranks(ranks, count)
        return count

    # ---- outcomes, operator actions, accounting ----------------------------

    def report_success(self, id, latency=None, now=None):
        """A call on this member succeeded, in `latency` seconds if given.
        Returns Transition.READY if that closed its circuit, else None."""
        cdef Py_ssize_t i = self.member(id)
        return transition_name(
            self.health.succeed(i, report_seconds(latency, "latency"), now_ns(now))
        )

    def report_rate_limited(self, id, retry_after=None, now=None):
        """The member answered 429; `retry_after` seconds if the upstream said.
        Returns Transition.COOLED if that sent it cooling, else None."""
        cdef Py_ssize_t i = self.member(id)
        cdef double delay = report_seconds(retry_after, "retry_after")
        return transition_name(self.health.rate_limited(
            i, <int64_t>(delay * 1e9) if delay >= 0 else -1, now_ns(now)
        ))

    def report_error(self, id, now=None):
        """A server error, overload, timeout or connection failure.  Returns
        Transition.OPENED, OPENED_BY_RATE or PROBE_FAILED if that sent it
        cooling, else None."""
        return transition_name(self.health.fail(self.member(id), now_ns(now)))

    def report_abandoned(self, id, now=None):
        """The attempt that claimed this member's half-open probe gave up
        without a verdict: the probe is free again at once.  Counts nothing."""
        self.health.abandon(self.member(id), now_ns(now))

    def block(self, id):
        """Out until restore(): the key was refused (401/403)."""
        self.health.set_state(self.member(id), BLOCKED)

    def disable(self, id):
        """Out until restore(): an operator took it out."""
        self.health.set_state(self.member(id), DISABLED)

    def restore(self, id):
        """Back to ready with a clean slate, whatever the state was."""
        self.health.set_state(self.member(id), READY)

    def impose(self, id, state, until=None, cause=None, now=None):
        """Apply a state learned from elsewhere (another replica, through
        Redis): "cooldown" until ``until`` (seconds on the clock of ``now``,
        time.monotonic() by default) because of ``cause`` ("rate_limited" or
        "failing"), or "ready" (an operator's restore, a re-validation),
        "blocked" or "disabled".  A cooldown never shortens one (a member
        cooling until later keeps its deadline; a blocked or disabled one
        stays out; a deadline already past changes nothing); "ready",
        "disabled" and "blocked" always apply (but "blocked" leaves a disabled
        member disabled, as block() does).  Counts nothing and never raises
        the backoff level; "ready" clears it as restore() does.  Returns True
        if the member's state or deadline changed, else False."""
        cdef Py_ssize_t i = self.member(id)
        code, deadline, why = _args.imposed(state, until, cause)
        return self.health.impose_state(i, code, deadline, why, now_ns(now))

    def acquire(self, id, cost=0, now=None):
        """Count one more call in flight, of ``cost`` estimated tokens, and
        take it from the member's limits and the pool's; False (and nothing
        taken) if the member or the pool is at max_inflight or over a limit."""
        cdef Py_ssize_t i = self.member(id)
        cdef int64_t units = cost_units(cost)
        cdef int64_t t = now_ns(now)
        if self.pool_record == NULL:
            return self.health.acquire_slot(i, units, t)
        if not self.pool.acquire_slot(0, units, t):
            return False
        if self.health.acquire_slot(i, units, t):
            return True
        self.pool.refund(0, units)
        self.pool.release_slot(0, units)
        return False

    def release(self, id, cost=0):
        """Count one call less in flight (``cost``: as it was acquired)."""
        cdef int64_t units = cost_units(cost)
        if not self.health.release_slot(self.member(id), units):
            raise ValueError(f"member {id!r} has nothing in flight: release() must follow acquire()")
        if self.pool_record != NULL:
            self.pool.release_slot(0, units)

    def report_headroom(self, id, requests_remaining=None, requests_limit=None,
                        requests_reset=None, tokens_remaining=None, tokens_limit=None,
                        tokens_reset=None, cost=0, now=None, sent=None):
        """What the provider's answer says the member has left (see
        HealthTable.report_headroom): its provider_requests and
        provider_tokens limits are rebuilt from it, unless the call it
        answers was sent before the one they last came from."""
        self.health.report_headroom(
            self.member(id), requests_remaining, requests_limit, requests_reset,
            tokens_remaining, tokens_limit, tokens_reset, cost, now, sent,
        )

    def report_usage(self, id, estimated, actual, now=None):
        """The answer's real token count against the estimate acquire() took:
        the member's and the pool's tpm and daily_tokens take the difference."""
        cdef Py_ssize_t i = self.member(id)
        cdef int64_t delta = cost_units(actual)
        delta -= cost_units(estimated)
        cdef int64_t t = now_ns(now)
        self.health.correct(i, delta, t)  # nothing to do for a member without limits
        if self.pool_record != NULL:
            self.pool.correct(0, delta, t)

    def limits_wait(self, id=None, cost=0, now=None):
        """(seconds until the member, or the pool when ``id`` is None, can
        take a request of ``cost`` estimated tokens, the limit that holds it
        back): (0.0, None) when it can now or has no limits; the wait counts
        only limits, not a cooldown or max_inflight."""
        cdef int64_t units = cost_units(cost)
        cdef int64_t t = now_ns(now)
        cdef member_t *m
        cdef int which = 0
        cdef int64_t wait
        if id is None:
            if self.pool_record == NULL:
                return (0.0, None)
            m = self.pool_record
        else:
            m = self.records[self.member(id)]
        if not byok_load(&m.limited):
            return (0.0, None)
        wait = limits_wait(m, units, clock(&t), &which)
        if wait <= 0:
            return (0.0, None)
        return (wait / 1e9, _args.LIMIT_NAMES[which])

    # ---- hot reload ----------------------------------------------------------

    def inherit(self, other):
        """Carry the health of every member id also in ``other`` over to this
        selector, for a configuration reload: build the new selector, call
        ``new.inherit(old)``, then switch to it.  A member whose record is the
        very one ``other`` uses (shared selectors of one segment and scope)
        is carried as it is: nothing is copied or counted twice.  A kept key keeps its state
        (a cooling one its deadline and backoff level, a blocked or disabled
        one stays out), its counters and its latency EWMA; calls in flight
        stay counted on ``other``, and max_inflight is this selector's.  Ids
        only here start ready; ids only in ``other`` are dropped.  The
        failure-rate window, the cause of a cooldown and the backoff level
        carry over too, so a key on probation stays on probation.  Returns the
        ids carried over, in this selector's order.  ``other`` must be a
        Selector of the same implementation (compiled or pure Python)."""
        if not isinstance(other, Selector):
            raise TypeError(
                f"inherit() takes a {type(self).__module__}.Selector, got "
                f"{type(other).__module__}.{type(other).__qualname__}"
                " (the compiled engine and its pure-Python twin do not mix)"
            )
        cdef Selector old = <Selector>other
        carried = []
        for i in range(self.n):
            j = old.index.get(self.ids[i])
            if j is not None:
                self.health.copy_from(old.health, j, i)
                carried.append(self.ids[i])
        return carried

    # ---- reading -----------------------------------------------------------

    def state(self, id, now=None):
        """A byok_core.State: ready, cooldown, half_open, blocked or disabled."""
        return self.health.state(self.member(id), now)

    def retry_after(self, now=None, cost=0):
        """0.0 if a member is available (for a request of ``cost`` estimated
        tokens), else seconds until the soonest one returns; None if none
        will without an operator (or there are none)."""
        wait, _ = self.outlook(now, cost)
        return wait

    def outlook(self, now=None, cost=0):
        """(0.0, "available") if a member is available (for a request of
        ``cost`` estimated tokens); else (seconds until the soonest one
        returns, why: Cause.RATE_LIMITED or FAILING for a cooldown,
        Cause.LIMITED for a limit of a member or of the pool); (None, "out")
        if none will without an operator (or there are none)."""
        outlook = self.health.outlook(now, cost)
        if self.pool_record == NULL or outlook[0] is None:
            return outlook
        pool_wait, _ = self.limits_wait(None, cost, now)
        if pool_wait > outlook[0]:
            return (pool_wait, Cause.LIMITED)
        return outlook

    def snapshot(self, now=None):
        """One dict per member: id, state, cause, weight, counters, window,
        timings and limits."""
        views = self.health.snapshot(now)
        return [
            {"id": self.ids[i], "weight": self.weights[i], **views[i]}
            for i in range(self.n)
        ]

    def pool_snapshot(self, now=None):
        """The pool's own record, if it has limits: {"inflight",
        "max_inflight", "limits"} as in a member's snapshot; else None."""
        if self.pool is None:
            return None
        view = self.pool.snapshot(now)[0]
        return {
            "inflight": view["inflight"],
            "max_inflight": view["max_inflight"],
            "limits": view["limits"],
        }

    @property
    def strategy(self):
        return STRATEGIES[self.strategy_code]

    def __len__(self):
        return self.n

    def __contains__(self, id):
        return id in self.index

    def __repr__(self):
        return f"<Selector {self.strategy} over {self.n} members>"

    cdef Py_ssize_t member(self, object id) except -1:
        index = self.index.get(id)
        if index is None:
            raise KeyError(f"no member {id!r} in this selector")
        return index


def _forget_process_id():
    """After fork(): lock words name the child, not its parent (_platform.h)."""
    byok_forget_self()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_process_id)


cdef inline object transition_name(int code):
    """A transition code as the Transition report_*() returns (None for NO_CHANGE)."""
    return <object>PyTuple_GET_ITEM(TRANSITION_NAMES, code)


cdef inline void rank_member(int strategy, uint64_t key_hash, member_t *m, uint64_t id_hash,
                             int64_t weight, int64_t now, rank_t *rank) noexcept nogil:
    """The pick criterion of the ranked strategies: the lowest rank wins
    (`now` is resolved for headroom only)."""
    if strategy == LEAST_USED:
        rank.primary = <double>byok_load(&m.picks)
        rank.secondary = 0
    elif strategy == LEAST_INFLIGHT:
        rank.primary = <double>byok_load(&m.inflight)
        rank.secondary = byok_load(&m.picks)
    elif strategy == LATENCY:
        rank.primary = byok_load_f64(&m.latency_ewma) if byok_load(&m.latency_samples) else -1.0
        rank.secondary = byok_load(&m.picks)
    elif strategy == HEADROOM:
        rank.primary = -headroom_share(m, now)
        rank.secondary = byok_load(&m.picks)
    else:  # sticky: weighted rendezvous hashing
        rank.primary = -log(unit(mix64(key_hash ^ id_hash))) / <double>weight
        rank.secondary = 0


cdef inline bint rank_before(const rank_t *x, const rank_t *y) noexcept nogil:
    if x.primary != y.primary:
        return x.primary < y.primary
    if x.secondary != y.secondary:
        return x.secondary < y.secondary
    return x.index < y.index


cdef void sort_ranks(rank_t *ranks, Py_ssize_t count) noexcept nogil:
    """Shell sort with Ciura's gaps: no recursion, no comparator calls through
    a pointer as qsort makes, and fast at the sizes a key pool has."""
    cdef Py_ssize_t gaps[16]
    gaps[:8] = [1, 4, 10, 23, 57, 132, 301, 701]
    cdef Py_ssize_t ngaps = 8, g, gap, i, j
    cdef rank_t item
    while ngaps < 16 and gaps[ngaps - 1] < count:
        gaps[ngaps] = gaps[ngaps - 1] * 9 // 4
        ngaps += 1
    for g in range(ngaps - 1, -1, -1):
        gap = gaps[g]
        if gap >= count:
            continue
        for i in range(gap, count):
            item = ranks[i]
            j = i
            while j >= gap and rank_before(&item, &ranks[j - gap]):
                ranks[j] = ranks[j - gap]
                j -= gap
            ranks[j] = item


cdef void rotate_left(rank_t *ranks, Py_ssize_t count, Py_ssize_t by) noexcept nogil:
    # three reversals: ranks[by:] + ranks[:by], in place
    reverse(ranks, 0, by)
    reverse(ranks, by, count)
    reverse(ranks, 0, count)


cdef inline void reverse(rank_t *ranks, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef rank_t swap
    hi -= 1
    while lo < hi:
        swap = ranks[lo]
        ranks[lo] = ranks[hi]
        ranks[hi] = swap
        lo += 1
        hi -= 1


cdef inline uint64_t mix64(uint64_t z) noexcept nogil:
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef inline uint64_t next_random(uint64_t *state) noexcept nogil:
    state[0] += 0x9E3779B97F4A7C15ULL
    return mix64(state[0])


cdef inline double unit(uint64_t z) noexcept nogil:
    return (<double>(z >> 12) + 0.5) * (1.0 / 4503599627370496.0)


cdef uint64_t hash_key(object key) except? 0:
    """FNV-1a over the key's UTF-8 bytes, then mixed."""
    cdef const unsigned char *data
    cdef Py_ssize_t size, k
    if isinstance(key, str):
        data = <const unsigned char *>PyUnicode_AsUTF8AndSize(key, &size)
    elif isinstance(key, bytes):
        data = <const unsigned char *>PyBytes_AS_STRING(key)
        size = PyBytes_GET_SIZE(key)
    else:
        raise TypeError(f"a sticky key must be str or bytes, got {type(key).__name__}")
    cdef uint64_t h = 0xCBF29CE484222325ULL
    for k in range(size):
        h = (h ^ data[k]) * 0x100000001B3ULL
    return mix64(h)
