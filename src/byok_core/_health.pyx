# cython: language_level=3, freethreading_compatible=True
"""The health table: how each member (an upstream key) is doing.

Theory of operation
-------------------
Every member is one ``member_t`` record in a flat C array.  Its state moves
through this table; every other combination leaves it where it is:

    state      event                             next state
    ---------  --------------------------------  ------------------------------
    ready      rate limited                      cooling (Retry-After, or backoff)
    ready      error, failure_threshold reached  cooling (backoff): circuit opens
    cooling    now >= until                      half-open (derived, no write)
    half-open  probe claimed by one pick         half-open, others skip it
    half-open  success                           ready, counters reset
    half-open  rate limited or error             cooling, longer backoff
    cooling    rate limited or error (late)      cooling, deadline only extended
    any        block()  (401/403)                blocked  (disabled stays disabled)
    any        disable()                         disabled
    any        restore()                         ready, counters reset

"Backoff" is cooldown * 2**level capped at max_cooldown; level counts the
cooling events since the last success.  A failure that lands while the member
already cools comes from a request sent before it cooled: it may push the
deadline out but never shortens it and never escalates the level, so fifty
requests that were in flight when a key died cost it one cooldown, not fifty.

Half-open is not stored: it is "cooling and the deadline has passed".  The
probe is a deadline of its own (``probe_until``), claimed under the member's
lock after checking again that the member is still half-open and unclaimed,
so exactly one caller gets it; if that caller never reports, the claim lapses
after ``probe_timeout`` and another caller probes.

Concurrency: the picking side reads ``state``, ``until``, ``probe_until``,
``inflight`` and ``max_inflight`` with atomic loads and takes no lock (but
for claiming a probe, a rare event).
Transitions change several fields together, so they run under the member's
own spinlock, a word inside the record (no Python lock, nothing that could not
live in shared memory).  Counters that pick and acquire touch (``picks``,
``inflight``) change only by atomic read-modify-write.

Hot reload: ``copy_member()`` carries one member's record over to another
table (``Selector.inherit()`` does it for every id the two selectors share).
It reads the source under the source's lock into locals, lets go, then writes
the destination under the destination's lock: never two locks at once, so no
lock order to get wrong, and a table may copy onto itself.  ``inflight`` and
``max_inflight`` stay: calls in flight release on the table that counted them,
and the cap is the new configuration's.
"""

cimport cython
from cpython.mem cimport PyMem_Calloc, PyMem_Free

from byok_core import _args

_STATE_NAMES = ("ready", "cooldown", "blocked", "disabled")


@cython.final
cdef class HealthTable:
    """Health of ``size`` members, addressed by index.

    ``byok_core.Selector`` keeps one of these; it is public so that other
    code can drive the same state machine on its own terms.
    """

    def __cinit__(self, size, *, cooldown=1.0, max_cooldown=300.0,
                  failure_threshold=3, probe_timeout=30.0, latency_alpha=0.3,
                  max_inflight=None):
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"size must be an integer of 0 or more, got {size!r}")
        self.cooldown_ns = _args.duration_ns(cooldown, "cooldown")
        self.max_cooldown_ns = _args.duration_ns(max_cooldown, "max_cooldown")
        if self.max_cooldown_ns < self.cooldown_ns:
            raise ValueError(
                f"max_cooldown ({max_cooldown}) must be at least cooldown ({cooldown})"
            )
        self.probe_timeout_ns = _args.duration_ns(probe_timeout, "probe_timeout")
        self.failure_threshold = _args.positive_int(failure_threshold, "failure_threshold")
        self.latency_alpha = _args.fraction(latency_alpha, "latency_alpha")
        if isinstance(max_inflight, dict):
            raise TypeError("max_inflight of a HealthTable is an int or a sequence, not a mapping")
        caps = _args.per_member(max_inflight, [str(i) for i in range(size)], "max_inflight", 0, 0)
        # calloc: all zero is a ready member with no history
        self.members = <member_t *>PyMem_Calloc(size if size else 1, sizeof(member_t))
        if self.members == NULL:
            raise MemoryError()
        self.size = size
        for i in range(size):
            self.members[i].max_inflight = caps[i]

    def __dealloc__(self):
        PyMem_Free(self.members)

    def __len__(self):
        return self.size

    # ---- outcomes ----------------------------------------------------------

    def report_success(self, index, latency=None, now=None):
        """Record a successful call, with its latency in seconds if known
        (clamped into [0, 1e8]; NaN counts as unknown)."""
        cdef Py_ssize_t i = self.check(index)
        self.succeed(i, report_seconds(latency, "latency"), now_ns(now))

    def report_rate_limited(self, index, retry_after=None, now=None):
        """Record a 429: cool until now + retry_after, or for the backoff.
        retry_after is clamped into [0, 1e8] seconds; NaN counts as not given."""
        cdef Py_ssize_t i = self.check(index)
        cdef double delay = report_seconds(retry_after, "retry_after")
        self.rate_limited(i, <int64_t>(delay * 1e9) if delay >= 0 else -1, now_ns(now))

    def report_error(self, index, now=None):
        """Record a server error, overload, timeout or connection failure."""
        self.fail(self.check(index), now_ns(now))

    cdef void succeed(self, Py_ssize_t i, double latency, int64_t now) noexcept nogil:
        cdef member_t *m = &self.members[i]
        cdef double ewma
        byok_lock(&m.lock)
        byok_store(&m.successes, byok_load(&m.successes) + 1)
        if latency >= 0:
            if byok_load(&m.latency_samples):
                ewma = byok_load_f64(&m.latency_ewma)
                byok_store_f64(&m.latency_ewma, ewma + self.latency_alpha * (latency - ewma))
            else:
                byok_store_f64(&m.latency_ewma, latency)
            byok_store(&m.latency_samples, byok_load(&m.latency_samples) + 1)
        cdef int64_t state = byok_load(&m.state)
        if state == READY:
            byok_store(&m.consecutive_failures, 0)
            byok_store(&m.level, 0)
        elif state == COOLING and clock(&now) >= byok_load(&m.until):
            make_ready(m)
        byok_unlock(&m.lock)

    cdef void rate_limited(self, Py_ssize_t i, int64_t delay, int64_t now) noexcept nogil:
        cdef member_t *m = &self.members[i]
        byok_lock(&m.lock)
        byok_store(&m.failures, byok_load(&m.failures) + 1)
        byok_store(&m.rate_limits, byok_load(&m.rate_limits) + 1)
        byok_store(&m.consecutive_failures, byok_load(&m.consecutive_failures) + 1)
        cdef int64_t state = byok_load(&m.state)
        if state == READY or state == COOLING:
            self.cool(m, now, delay)
        byok_unlock(&m.lock)

    cdef void fail(self, Py_ssize_t i, int64_t now) noexcept nogil:
        cdef member_t *m = &self.members[i]
        byok_lock(&m.lock)
        byok_store(&m.failures, byok_load(&m.failures) + 1)
        cdef int64_t failures = byok_load(&m.consecutive_failures) + 1
        byok_store(&m.consecutive_failures, failures)
        cdef int64_t state = byok_load(&m.state)
        if state == COOLING or (state == READY and failures >= self.failure_threshold):
            self.cool(m, now, -1)
        byok_unlock(&m.lock)

    cdef void cool(self, member_t *m, int64_t now, int64_t delay) noexcept nogil:
        # caller holds m.lock; see the theory of operation for `escalate`
        clock(&now)
        cdef int64_t state = byok_load(&m.state)
        cdef int64_t old_until = byok_load(&m.until)
        cdef int64_t level = byok_load(&m.level)
        cdef bint escalate = state == READY or now >= old_until
        if delay < 0:
            delay = backoff(self.cooldown_ns, self.max_cooldown_ns,
                            level if escalate else (level - 1 if level > 0 else 0))
        cdef int64_t until = now + delay
        if state == COOLING and old_until > until:
            until = old_until
        byok_store(&m.until, until)
        byok_store(&m.probe_until, 0)
        byok_store(&m.state, COOLING)
        if escalate:
            byok_store(&m.level, level + 1)

    # ---- operator actions --------------------------------------------------

    def block(self, index):
        """Out until restore(): the key was refused (401/403)."""
        self.set_state(self.check(index), BLOCKED)

    def disable(self, index):
        """Out until restore(): an operator took it out."""
        self.set_state(self.check(index), DISABLED)

    def restore(self, index):
        """Back to ready with a clean slate, whatever the state was."""
        self.set_state(self.check(index), READY)

    cdef void set_state(self, Py_ssize_t i, int64_t state) noexcept nogil:
        cdef member_t *m = &self.members[i]
        byok_lock(&m.lock)
        if state == READY:
            make_ready(m)
        elif not (state == BLOCKED and byok_load(&m.state) == DISABLED):
            byok_store(&m.state, state)
        byok_unlock(&m.lock)

    # ---- hot reload --------------------------------------------------------

    def copy_member(self, source, source_index, index):
        """Make member ``index`` of this table a copy of member ``source_index``
        of ``source`` (a HealthTable of the same implementation; it may be this
        one): state, deadlines, backoff level, counters and latency EWMA.
        ``inflight`` and ``max_inflight`` are not copied: calls in flight
        release on the table that counted them, and the cap stays this one's."""
        if not isinstance(source, HealthTable):
            raise TypeError(
                f"source must be a {type(self).__module__}.HealthTable, got "
                f"{type(source).__module__}.{type(source).__qualname__}"
            )
        cdef HealthTable table = <HealthTable>source
        cdef Py_ssize_t j = table.check(source_index)
        self.copy_from(table, j, self.check(index))

    cdef void copy_from(self, HealthTable source, Py_ssize_t source_index,
                        Py_ssize_t index) noexcept nogil:
        # one lock at a time: a snapshot of the source, then the write
        cdef member_t *src = &source.members[source_index]
        cdef member_t *dst = &self.members[index]
        byok_lock(&src.lock)
        cdef int64_t state = byok_load(&src.state)
        cdef int64_t until = byok_load(&src.until)
        cdef int64_t probe_until = byok_load(&src.probe_until)
        cdef int64_t level = byok_load(&src.level)
        cdef int64_t consecutive_failures = byok_load(&src.consecutive_failures)
        cdef int64_t picks = byok_load(&src.picks)
        cdef int64_t successes = byok_load(&src.successes)
        cdef int64_t failures = byok_load(&src.failures)
        cdef int64_t rate_limits = byok_load(&src.rate_limits)
        cdef int64_t latency_ewma = byok_load(&src.latency_ewma)  # the double's bits
        cdef int64_t latency_samples = byok_load(&src.latency_samples)
        byok_unlock(&src.lock)
        byok_lock(&dst.lock)
        # the deadlines before the state, as cool() does, for lock-free readers
        byok_store(&dst.until, until)
        byok_store(&dst.probe_until, probe_until)
        byok_store(&dst.level, level)
        byok_store(&dst.consecutive_failures, consecutive_failures)
        byok_store(&dst.picks, picks)
        byok_store(&dst.successes, successes)
        byok_store(&dst.failures, failures)
        byok_store(&dst.rate_limits, rate_limits)
        byok_store(&dst.latency_ewma, latency_ewma)
        byok_store(&dst.latency_samples, latency_samples)
        byok_store(&dst.state, state)
        byok_unlock(&dst.lock)

    # ---- in-flight accounting ----------------------------------------------

    def acquire(self, index):
        """Count one more call in flight; False if the member is at its cap."""
        return self.acquire_slot(self.check(index))

    def release(self, index):
        """Count one call less in flight."""
        cdef Py_ssize_t i = self.check(index)
        if not self.release_slot(i):
            raise ValueError(f"member {i} has nothing in flight: release() must follow acquire()")

    cdef bint acquire_slot(self, Py_ssize_t i) noexcept nogil:
        cdef member_t *m = &self.members[i]
        cdef int64_t cap = byok_load(&m.max_inflight)
        cdef int64_t current
        while True:
            current = byok_load(&m.inflight)
            if cap and current >= cap:
                return False
            if byok_cas(&m.inflight, current, current + 1):
                return True

    cdef bint release_slot(self, Py_ssize_t i) noexcept nogil:
        cdef member_t *m = &self.members[i]
        cdef int64_t current
        while True:
            current = byok_load(&m.inflight)
            if current <= 0:
                return False
            if byok_cas(&m.inflight, current, current - 1):
                return True

    # ---- reading -----------------------------------------------------------

    def state(self, index, now=None):
        """'ready', 'cooldown', 'half_open', 'blocked' or 'disabled'."""
        return state_name(&self.members[self.check(index)], now_ns(now))

    def retry_after(self, now=None):
        """0.0 if a member can be used now, else seconds until the soonest
        one can; None if none ever will without an operator."""
        cdef int64_t wait = self.wait_ns(now_ns(now))
        return None if wait < 0 else wait / 1e9

    cdef int64_t wait_ns(self, int64_t now) noexcept nogil:
        cdef int64_t best = -1
        cdef int64_t wait, state, until, probe_until
        cdef member_t *m
        clock(&now)
        for i in range(self.size):
            m = &self.members[i]
            state = byok_load(&m.state)
            if state == READY:
                return 0
            if state != COOLING:
                continue
            until = byok_load(&m.until)
            if now >= until:
                probe_until = byok_load(&m.probe_until)
                if probe_until <= now:
                    return 0
                wait = probe_until - now
            else:
                wait = until - now
            if best < 0 or wait < best:
                best = wait
        return best

    def snapshot(self, now=None):
        """One dict per member: state, counters and timings."""
        cdef int64_t t = now_ns(now)
        clock(&t)
        return [member_view(&self.members[i], t) for i in range(self.size)]

    cdef Py_ssize_t check(self, object index) except -1:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"member index must be an int, got {index!r}")
        if not 0 <= index < self.size:
            raise IndexError(f"member index {index} out of range for {self.size} members")
        return index


cdef double optional_seconds(object value, str name) except? -2.0:
    """A report's seconds (latency, Retry-After); -1.0 stands for None.

    An outcome must never be lost to a bad number, so out-of-range values are
    clamped into [0, MAX_SECONDS] (a Retry-After date already past is 0) and
    NaN counts as "not given"; only a value that is not a number raises.
    """
    if value is None:
        return -1.0
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    cdef double seconds = value
    if seconds != seconds:
        return -1.0
    return min(max(seconds, 0.0), _args.MAX_SECONDS)


cdef int reject_now(object now) except -1:
    raise _args.bad_now(now)


cdef inline int64_t backoff(int64_t cooldown, int64_t cap, int64_t level) noexcept nogil:
    if level >= 63 or cooldown > (cap >> level):
        return cap
    return cooldown << level


cdef inline void make_ready(member_t *m) noexcept nogil:
    byok_store(&m.until, 0)
    byok_store(&m.probe_until, 0)
    byok_store(&m.level, 0)
    byok_store(&m.consecutive_failures, 0)
    byok_store(&m.state, READY)


cdef str state_name(member_t *m, int64_t now):
    cdef int64_t state = byok_load(&m.state)
    if state == COOLING:
        return "cooldown" if clock(&now) < byok_load(&m.until) else "half_open"
    return _STATE_NAMES[state]


cdef dict member_view(member_t *m, int64_t now):
    name = state_name(m, now)
    samples = byok_load(&m.latency_samples)
    cap = byok_load(&m.max_inflight)
    return {
        "state": name,
        "cooldown_remaining": (byok_load(&m.until) - now) / 1e9 if name == "cooldown" else 0.0,
        "probing": name == "half_open" and byok_load(&m.probe_until) > now,
        "backoff_level": byok_load(&m.level),
        "consecutive_failures": byok_load(&m.consecutive_failures),
        "picks": byok_load(&m.picks),
        "successes": byok_load(&m.successes),
        "failures": byok_load(&m.failures),
        "rate_limits": byok_load(&m.rate_limits),
        "inflight": byok_load(&m.inflight),
        "max_inflight": cap if cap else None,
        "latency_ewma": byok_load_f64(&m.latency_ewma) if samples else None,
    }
