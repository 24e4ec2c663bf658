# The contract of byok_core._health: the member record, its states, and the
# calls that _selector makes on every pick without going through Python.

from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_CheckExact
from cpython.long cimport PyLong_CheckExact
from libc.stdint cimport int64_t

cdef extern from "_platform.h" nogil:
    int64_t byok_load(const int64_t *p)
    void byok_store(int64_t *p, int64_t v)
    int64_t byok_fetch_add(int64_t *p, int64_t d)
    bint byok_cas(int64_t *p, int64_t expected, int64_t desired)
    double byok_load_f64(const int64_t *p)
    void byok_store_f64(int64_t *p, double v)
    void byok_lock(int64_t *lock)
    void byok_unlock(int64_t *lock)
    void byok_forget_self()
    int64_t byok_monotonic_ns()
    void byok_cpu_relax()
    int64_t BYOK_NOW_UNSET

cdef enum:
    READY = 0
    COOLING = 1      # "cooldown" before `until`, "half_open" after it
    BLOCKED = 2
    DISABLED = 3

cdef enum:
    UNAVAILABLE = 0
    AVAILABLE = 1
    PROBE = 2        # half-open and its probe is free: whoever claims it tries it

cdef enum:           # why a member cools: `cause`
    CAUSE_NONE = 0
    RATE_LIMITED = 1     # a 429
    FAILING = 2          # errors
    LIMITED = 3          # outlook() only: ready, but over a limit (never a cooling cause)

cdef enum:           # what a report changed: 0, or 1 + its index in _args.TRANSITIONS
    NO_CHANGE = 0
    BECAME_READY = 1     # "ready": a half-open probe succeeded
    COOLED = 2           # "cooled": a 429 sent a ready or half-open member cooling
    OPENED = 3           # "opened": failure_threshold errors in a row
    OPENED_BY_RATE = 4   # "opened_by_rate": the window's failure share
    PROBE_FAILED = 5     # "probe_failed": an error on a half-open member

cdef enum:
    WINDOW_BUCKETS = 10  # _args.WINDOW_BUCKETS

cdef enum:           # a member's limits: its index in limits[] and its bit in `limited`
    LIMIT_RPM = 0            # configured: requests per minute
    LIMIT_TPM = 1            # configured: tokens per minute
    LIMIT_DAILY_TOKENS = 2   # configured: tokens per day (a bucket refilled over 24 h)
    LIMIT_PROVIDER_REQUESTS = 3  # learned from the provider's answers (headroom)
    LIMIT_PROVIDER_TOKENS = 4
    LIMITS = 5           # _args.LIMIT_NAMES

# One bucket of the failure-rate window: the reports of one epoch, that is
# floor(now_ns / bucket_ns).  Written under the member's lock; see
# write_bucket() in _health.pyx for the order that lock-free readers rely on.
ctypedef struct bucket_t:
    int64_t epoch
    int64_t attempts
    int64_t failures

# One limit: a token bucket kept as GCRA's theoretical arrival time.  It
# holds `capacity` units and refills one unit per `interval` ns (`period` =
# capacity * interval ns from empty to full); it is full when tat <= now, and
# a request of `cost` units fits when max(tat, now) + cost * interval - period
# <= now.  Off while interval is 0.0.  See "Limits" in _health.pyx.
ctypedef struct limit_t:
    int64_t interval            # a double, bit for bit: ns per unit
    int64_t capacity
    int64_t period              # ns
    int64_t tat                 # ns on the caller's clock

# One member's record.  Fixed size, no Python objects, every field a 64-bit
# word read and written with atomics: an array of these can later live in
# shared memory.  `lock` guards multi-field transitions; readers never take it.
ctypedef struct member_t:
    int64_t lock
    int64_t state
    int64_t until               # cooldown deadline, monotonic ns
    int64_t probe_until         # a claimed probe is outstanding until then
    int64_t level               # backoff level: cooling events since last success
    int64_t consecutive_failures
    int64_t picks
    int64_t successes
    int64_t failures
    int64_t rate_limits
    int64_t inflight
    int64_t max_inflight        # 0: no cap
    int64_t latency_ewma        # a double, bit for bit
    int64_t latency_samples
    # Read by reports and snapshot() only, never on the pick path:
    int64_t cause               # RATE_LIMITED or FAILING while cooling, else CAUSE_NONE
    int64_t limited             # bit k: limits[k] is in force (0: no limit, the common case)
    int64_t pending_tokens      # estimated tokens of the calls in flight
    int64_t learned_sent        # when the call whose answer headroom last came from was sent
    bucket_t window[WINDOW_BUCKETS]  # the failure-rate window, a ring by epoch
    limit_t limits[LIMITS]


cdef class HealthTable:
    # records[i] is member i's record: in `members`, this table's own array,
    # or in a shared segment (_segment.pyx), where members is NULL.
    cdef member_t **records
    cdef member_t *members
    # shared: counted[i] is this worker's count of member i's calls in flight
    # (see _segment.pyx); NULL for a table of its own
    cdef int64_t **counted
    cdef object mapping             # a shared segment's memory, kept mapped
    cdef Py_ssize_t size
    cdef int64_t cooldown_ns
    cdef int64_t max_cooldown_ns
    cdef int64_t probe_timeout_ns
    cdef int64_t failure_threshold
    cdef double latency_alpha
    cdef double failure_rate        # 0: the rate rule is off
    cdef int64_t bucket_ns          # failure_rate_window / WINDOW_BUCKETS
    cdef int64_t min_attempts       # failure_rate_min_attempts

    cdef Py_ssize_t check(self, object index) except -1
    # the report_*() calls return a transition code (NO_CHANGE, BECAME_READY, ...)
    cdef int succeed(self, Py_ssize_t i, double latency, int64_t now) noexcept nogil
    cdef int rate_limited(self, Py_ssize_t i, int64_t delay, int64_t now) noexcept nogil
    cdef int fail(self, Py_ssize_t i, int64_t now) noexcept nogil
    cdef void abandon(self, Py_ssize_t i, int64_t now) noexcept nogil
    cdef int cool(self, member_t *m, int64_t now, int64_t delay, int64_t cause) noexcept nogil
    cdef void record(self, member_t *m, int64_t now, bint failed) noexcept nogil
    cdef bint forgives(self, member_t *m, int64_t now) noexcept nogil
    cdef int64_t set_state(self, Py_ssize_t i, int64_t state) noexcept nogil  # the state before
    cdef bint impose_state(self, Py_ssize_t i, int64_t state, int64_t until, int64_t cause,
                           int64_t now) noexcept nogil
    cdef void copy_from(self, HealthTable source, Py_ssize_t source_index,
                        Py_ssize_t index) noexcept nogil
    cdef bint acquire_slot(self, Py_ssize_t i, int64_t cost, int64_t now) noexcept nogil
    cdef bint release_slot(self, Py_ssize_t i, int64_t cost) noexcept nogil
    cdef void refund(self, Py_ssize_t i, int64_t cost) noexcept nogil
    cdef void correct(self, Py_ssize_t i, int64_t delta, int64_t now) noexcept nogil
    cdef int64_t wait_ns(self, int64_t now, int64_t cost, int64_t *cause) noexcept nogil


cdef double optional_seconds(object value, str name) except? -2.0
cdef int reject_now(object now) except -1
cdef int64_t checked_cost(object value) except -1


cdef inline int64_t cost_units(object value) except -1:
    """A request's estimated tokens (`cost`), the common case inlined: an int
    in range; anything else is checked the long way (_args.cost)."""
    cdef long long units
    if PyLong_CheckExact(value):
        units = value
        if 0 <= units <= (1LL << 40):  # _args.MAX_LIMIT
            return units
    return checked_cost(value)


cdef inline double report_seconds(object value, str name) except? -2.0:
    """optional_seconds() with the common cases inlined: None and a float."""
    cdef double seconds
    if value is None:
        return -1.0
    if PyFloat_CheckExact(value):
        seconds = PyFloat_AS_DOUBLE(value)
        if 0 <= seconds <= 1e8:  # _args.MAX_SECONDS; NaN and the rest go the long way
            return seconds
    return optional_seconds(value, name)


cdef inline int64_t now_ns(object now) except? -1:
    """The caller's `now` in ns, or BYOK_NOW_UNSET to read the clock lazily."""
    if now is None:
        return BYOK_NOW_UNSET
    cdef double seconds = now
    if not (0 <= seconds <= 9e9):  # _args.MAX_NOW, so that ns fit in int64
        reject_now(now)
    return <int64_t>(seconds * 1e9)


cdef inline int64_t clock(int64_t *now) noexcept nogil:
    if now[0] == BYOK_NOW_UNSET:
        now[0] = byok_monotonic_ns()
    return now[0]


cdef inline int64_t limit_units(limit_t *b, int k, int64_t cost) noexcept nogil:
    # what a request takes of limit k: one request, or its tokens, at most
    # the whole bucket (a request larger than the bucket waits for it full)
    cdef int64_t units = 1 if k == LIMIT_RPM or k == LIMIT_PROVIDER_REQUESTS else cost
    cdef int64_t capacity = byok_load(&b.capacity)
    return units if units < capacity else capacity


cdef inline int64_t limits_wait(member_t *m, int64_t cost, int64_t now, int *which) noexcept nogil:
    # ns until every limit in force can take the request (<= 0: now), and
    # which limit waits longest; `now` is resolved
    cdef int64_t longest = -1
    cdef int64_t wait, tat
    cdef double interval
    cdef limit_t *b
    for k in range(LIMITS):
        b = &m.limits[k]
        interval = byok_load_f64(&b.interval)
        if interval <= 0:
            continue
        tat = byok_load(&b.tat)
        if tat < now:
            tat = now
        wait = (tat + <int64_t>(<double>limit_units(b, k, cost) * interval)
                - byok_load(&b.period) - now)
        if wait > longest:
            longest = wait
            if which != NULL:
                which[0] = k
    return longest


cdef inline bint charge(member_t *m, int64_t cost, int64_t now) noexcept nogil:
    # Caller holds m.lock; `now` resolved.  Takes the request from every
    # limit in force if it fits them all, else nothing.
    cdef limit_t *b
    cdef double interval
    cdef int64_t tat
    if limits_wait(m, cost, now, NULL) > 0:
        return False
    for k in range(LIMITS):
        b = &m.limits[k]
        interval = byok_load_f64(&b.interval)
        if interval <= 0:
            continue
        tat = byok_load(&b.tat)
        if tat < now:
            tat = now
        byok_store(&b.tat, tat + <int64_t>(<double>limit_units(b, k, cost) * interval))
    return True


cdef inline double headroom_share(member_t *m, int64_t now) noexcept nogil:
    # the smallest share left over the limits in force (1.0: none); `now` resolved
    cdef double share = 1.0, left
    cdef int64_t debt, period
    cdef limit_t *b
    if not byok_load(&m.limited):
        return share
    for k in range(LIMITS):
        b = &m.limits[k]
        if byok_load_f64(&b.interval) <= 0:
            continue
        debt = byok_load(&b.tat) - now
        period = byok_load(&b.period)
        if debt <= 0 or period <= 0:
            continue
        left = 1.0 - <double>debt / <double>period
        if left < share:
            share = left
    return share


cdef inline int availability(member_t *m, int64_t *now, int64_t cost) noexcept nogil:
    # `cost`: the request's estimated tokens, for the member's token limits
    cdef int64_t cap = byok_load(&m.max_inflight)
    cdef int kind
    if cap and byok_load(&m.inflight) >= cap:
        return UNAVAILABLE
    cdef int64_t state = byok_load(&m.state)
    if state == READY:
        kind = AVAILABLE
    elif (state == COOLING and clock(now) >= byok_load(&m.until)
            and byok_load(&m.probe_until) <= now[0]):
        kind = PROBE
    else:
        return UNAVAILABLE
    if byok_load(&m.limited) and limits_wait(m, cost, clock(now), NULL) > 0:
        return UNAVAILABLE
    return kind


cdef inline bint claim_probe(member_t *m, int64_t now, int64_t timeout) noexcept nogil:
    # `now` is resolved: only availability() == PROBE leads here.  Under the
    # member's lock, so that a probe that failed in the meantime (cooling
    # again, probe_until back to 0) cannot be claimed a second time.
    cdef bint claimed = False
    byok_lock(&m.lock)
    if (byok_load(&m.state) == COOLING and now >= byok_load(&m.until)
            and byok_load(&m.probe_until) <= now):
        byok_store(&m.probe_until, now + timeout)
        claimed = True
    byok_unlock(&m.lock)
    return claimed
