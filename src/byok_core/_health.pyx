# cython: language_level=3, freethreading_compatible=True
"""The health table: how each member (an upstream key) is doing.

Theory of operation
-------------------
Every member is one ``member_t`` record in a flat C array.  Its state moves
through this table; every other combination leaves it where it is.  The last
column is what the report returns (see "Transitions" below):

    state      event                              next state                      returns
    ---------  ---------------------------------  ------------------------------  --------------
    ready      429 with a delay (Retry-After)     cooling for exactly that delay  cooled
    ready      429 without a delay                cooling (backoff), level + 1    cooled
    ready      error, failure_threshold in a row  cooling (backoff), level + 1    opened
    ready      error, the window's failure share  cooling (backoff), level + 1    opened_by_rate
               reaches failure_rate (below)
    ready      success                            ready, consecutive count 0;     None
                                                  level 0 only if forgiven
    cooling    now >= until                       half-open (derived, no write)   -
    half-open  probe claimed by one pick          half-open, others skip it       -
    half-open  success                            ready; level 0 only if forgiven ready
    half-open  429 with a delay                   cooling for that delay          cooled
    half-open  429 without a delay                cooling (backoff), level + 1    cooled
    half-open  error                              cooling (backoff), level + 1    probe_failed
    cooling    success (late)                     cooling, unchanged              None
    cooling    429 or error (late)                cooling, deadline only extended None
    any        block()  (401/403)                 blocked  (disabled stays disabled)
    any        disable()                          disabled
    any        restore()                          ready, level, window and cause cleared

Backoff and level.  "Backoff" is cooldown * 2**level capped at max_cooldown.
The level counts the cooling events caused by unexplained failures (errors,
429s without a delay) since the key was last forgiven.  A 429 that names its
delay is capacity, not health: the member cools for exactly that delay and
its level, consecutive count and window stay as they were.  A failure that
lands while the member already cools comes from a request sent before it
cooled: it may push the deadline out but never shortens it and never
escalates the level, so fifty requests that were in flight when a key died
cost it one cooldown, not fifty.

The failure-rate window.  Each member counts its recent attempts and
failures in WINDOW_BUCKETS buckets of failure_rate_window / WINDOW_BUCKETS,
a ring indexed by epoch = floor(now_ns / bucket_ns): a report writes into its
epoch's bucket (emptying it first if it holds an older epoch), and the
window is the sum over the buckets whose epoch is in (current - 10, current].
A success counts one attempt; an error or a 429 without a delay one attempt
and one failure; a 429 with a delay neither.  From ready, an error opens the
circuit when the window's failures reach failure_rate * attempts and the
window holds failure_rate_min_attempts attempts, or the key is on probation
(level > 0: it cooled for unexplained failures and was not forgiven since),
where the share counts without the minimum.  failure_rate = 0 turns the rule
off.

Forgiving (hysteresis).  A success clears the level only when failure_rate
is 0, when the window holds no failure at all (a quiet key is forgiven once
failure_rate_window has passed without one), or when it holds
failure_rate_min_attempts attempts of which fewer than failure_rate / 2
failed.  A probe that succeeds closes the circuit
(ready) but leaves the level: a key that fails every second request stays on
probation, its next failure reopens the circuit for twice as long, and it
gets few requests until it really recovers.

Cause.  A cooling member records why (``cause``): RATE_LIMITED (a 429) or
FAILING (errors).  A late report that extends the deadline sets its own cause;
one that does not leaves the cause.  Ready, blocked and disabled members have
none (it is cleared when the member becomes ready and not shown otherwise).

Transitions.  report_success/rate_limited/error return what they changed,
a byok_core.Transition (a str enum) or None, taken from a module-level tuple
by a C code (no allocation); state() and snapshot() name states and causes
the same way, with byok_core.State and byok_core.Cause.  outlook() says when
the table can serve again and why not now: (0.0, "available"), (seconds,
Cause of the soonest member), or (None, "out") when every member waits for
an operator.

Half-open is not stored: it is "cooling and the deadline has passed".  The
probe is a deadline of its own (``probe_until``), claimed under the member's
lock after checking again that the member is still half-open and unclaimed,
so exactly one caller gets it; if that caller never reports, the claim lapses
after ``probe_timeout`` and another caller probes (report_abandoned() frees it
at once, for a caller that gave up on its probe).

Concurrency: the picking side reads ``state``, ``until``, ``probe_until``,
``inflight`` and ``max_inflight`` with atomic loads and takes no lock (but
for claiming a probe, a rare event); it never touches the window or the cause.
Transitions change several fields together, so they run under the member's
own spinlock, a word inside the record (no Python lock, nothing that could not
live in shared memory).  Counters that pick and acquire touch (``picks``,
``inflight``) change only by atomic read-modify-write.  snapshot() reads the
window without the lock: a bucket is rewritten as epoch -1, counts, epoch,
and attempts grow before failures, so a reader that reads epoch, failures,
attempts and the epoch again (retrying if it moved) never sees a bucket half
reset, nor more failures than attempts.

Limits.  A member may have up to five limits, each a token bucket kept the
way GCRA keeps one, as a single deadline (``limit_t`` in _health.pxd): the
bucket holds ``capacity`` units, refills one every ``interval`` ns, and is
full when its ``tat`` is not after now.  A request that takes c units fits
when max(tat, now) + c * interval - period <= now (period = capacity *
interval), and taking them moves tat to max(tat, now) + c * interval.  A
request larger than the bucket takes the whole bucket: it waits until the
bucket is full instead of never.

    rpm, tpm, daily_tokens   configured; a request takes 1 of rpm and its
                             estimated tokens (``cost``) of the others; the
                             day is a bucket refilled over 24 h, not a
                             calendar day
    provider_requests        learned from the provider's answers
    provider_tokens          (report_headroom): see below

A member over any limit in force is not available (picks, orders and
acquires pass it by) until the request would fit: a soft wait that is
neither a failure nor a cooldown, never counted and never escalating.
acquire(cost) takes the units of every limit at once, under the member's
lock, or none (False).  report_usage(estimated, actual) corrects the
configured token limits by the difference once the answer tells the real
count (the provider's own figures correct themselves with its next answer).

Headroom.  Providers tell on every answer how much a key has left: remaining
requests and tokens, the limit, and when the bucket is full again.  Both
OpenAI's and Anthropic's limits refill continuously, so the bucket is
rebuilt from the figures: the refill rate is (limit - remaining) / reset
(for a bucket already full, limit per minute), and tat is set so that the
bucket holds ``remaining`` less what the calls still in flight will take
(they were sent after the provider counted: one request each, and their
estimated tokens, ``pending_tokens``).  Between answers, acquire() draws on
it as on any limit, so a burst of concurrent requests cannot overdraw a key
that the last answer said was nearly empty.  Answers overtake each other: the
figures of a call sent before the one they last came from (``learned_sent``)
are older than what the bucket holds, and are dropped, or they would give
back what later calls already spent.

Shared memory: ``records[i]`` points at member i's record, in the table's
own array or in a HealthSegment that other processes map too (see
_segment.pyx); nothing above changes, the record is simply shared.

Hot reload: ``copy_member()`` carries one member's record over to another
table (``Selector.inherit()`` does it for every id the two selectors share;
two tables on one shared record have nothing to copy).
It reads the source under the source's lock into locals, lets go, then writes
the destination under the destination's lock: never two locks at once, so no
lock order to get wrong, and a table may copy onto itself.  ``inflight``,
``pending_tokens`` and ``max_inflight`` stay: calls in flight release on the
table that counted them, and the cap is the new configuration's.  Limits carry
what was spent (their tat); the provider's limits come as learned, the
configured ones keep the destination's configuration.  The window's buckets are mapped by
their start time onto the destination's bucket width (the same buckets when
the two windows are equally wide).
"""

cimport cython
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cpython.tuple cimport PyTuple_GET_ITEM

import os

from byok_core import _args, _region

# byok_core.State members by view code (below), Transition members by
# transition code and Cause members by cause code (the enums in _health.pxd)
cdef tuple STATE_NAMES = _args.STATES
cdef tuple TRANSITION_NAMES = (None,) + _args.TRANSITIONS
cdef tuple CAUSE_NAMES = (None,) + _args.CAUSES
cdef tuple LIMIT_NAMES = _args.LIMIT_NAMES

cdef enum:  # the bits in `limited` of the limits learned from the provider
    LEARNED_LIMITS = (1 << LIMIT_PROVIDER_REQUESTS) | (1 << LIMIT_PROVIDER_TOKENS)

cdef enum:  # a member's state as the reader sees it: its index in _args.STATES
    VIEW_READY = 0
    VIEW_COOLDOWN = 1    # COOLING before `until`
    VIEW_HALF_OPEN = 2   # COOLING after it
    VIEW_BLOCKED = 3
    VIEW_DISABLED = 4


@cython.final
cdef class HealthTable:
    """Health of ``size`` members, addressed by index.

    ``byok_core.Selector`` keeps one of these; it is public so that other
    code can drive the same state machine on its own terms.

    ``shared=segment, scope=..., ids=...``: the records live in a
    HealthSegment, member i in the slot of (scope, ids[i]) (ids default to
    "0", "1", ...), shared with every table of that scope in every process
    attached to it (see _segment.pyx); ``now`` must then come from
    time.monotonic() in every process.
    """

    def __cinit__(self, size, *, cooldown=1.0, max_cooldown=15.0,
                  failure_threshold=3, probe_timeout=30.0, latency_alpha=0.3,
                  max_inflight=None, failure_rate=0.5, failure_rate_window=30.0,
                  failure_rate_min_attempts=10, shared=None, scope=None, ids=None,
                  rpm=None, tpm=None, daily_tokens=None):
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
        self.failure_rate = _args.share(failure_rate, "failure_rate")
        self.bucket_ns = _args.window_bucket_ns(failure_rate_window, "failure_rate_window")
        self.min_attempts = _args.positive_int(
            failure_rate_min_attempts, "failure_rate_min_attempts"
        )
        if isinstance(max_inflight, dict):
            raise TypeError("max_inflight of a HealthTable is an int or a sequence, not a mapping")
        for values in (max_inflight, rpm, tpm, daily_tokens):
            if isinstance(values, dict):
                raise TypeError(
                    "per-member options of a HealthTable are an int or a sequence, not a mapping"
                )
        positions = [str(i) for i in range(size)]
        caps = _args.per_member(max_inflight, positions, "max_inflight", 0, 0)
        limits = _args.per_member_limits(rpm, tpm, daily_tokens, positions)
        names = _region.check_sharing(shared, scope, size, ids)
        self.records = <member_t **>PyMem_Calloc(size if size else 1, sizeof(member_t *))
        if self.records == NULL:
            raise MemoryError()
        self.size = size
        if shared is None:
            # calloc: all zero is a ready member with no history
            self.members = <member_t *>PyMem_Calloc(size if size else 1, sizeof(member_t))
            if self.members == NULL:
                raise MemoryError()
            for i in range(size):
                self.records[i] = &self.members[i]
        else:
            from byok_core._segment import HealthSegment
            if not isinstance(shared, HealthSegment):
                raise _region.not_a_segment(shared, _region.COMPILED)
            self.counted = <int64_t **>PyMem_Calloc(size if size else 1, sizeof(int64_t *))
            if self.counted == NULL:
                raise MemoryError()
            shared._bind(self, scope, names)
        for i in range(size):  # the latest configuration's cap and limits, shared or not
            byok_store(&self.records[i].max_inflight, caps[i])
            for k in range(LIMIT_PROVIDER_REQUESTS):
                configure_limit(self.records[i], k, limits[i][k], _args.CONFIGURED_PERIODS_NS[k])

    def __dealloc__(self):
        PyMem_Free(self.records)
        PyMem_Free(self.members)
        PyMem_Free(self.counted)

    def __len__(self):
        return self.size

    # ---- outcomes ----------------------------------------------------------

    def report_success(self, index, latency=None, now=None):
        """Record a successful call, with its latency in seconds if known
        (clamped into [0, 1e8]; NaN counts as unknown).  Returns
        Transition.READY if it closed the circuit (a half-open probe succeeded), else None."""
        cdef Py_ssize_t i = self.check(index)
        return transition_name(self.succeed(i, report_seconds(latency, "latency"), now_ns(now)))

    def report_rate_limited(self, index, retry_after=None, now=None):
        """Record a 429: cool until now + retry_after (clamped into [0, 1e8]
        seconds; NaN counts as not given), or without one, for the backoff
        as an unexplained failure.  Returns Transition.COOLED if it sent a
        ready or half-open member cooling, else None."""
        cdef Py_ssize_t i = self.check(index)
        cdef double delay = report_seconds(retry_after, "retry_after")
        return transition_name(
            self.rate_limited(i, <int64_t>(delay * 1e9) if delay >= 0 else -1, now_ns(now))
        )

    def report_error(self, index, now=None):
        """Record a server error, overload, timeout or connection failure.
        Returns Transition.OPENED, OPENED_BY_RATE or PROBE_FAILED if it sent
        the member cooling, else None."""
        return transition_name(self.fail(self.check(index), now_ns(now)))

    cdef int succeed(self, Py_ssize_t i, double latency, int64_t now) noexcept nogil:
        cdef member_t *m = self.records[i]
        cdef double ewma
        cdef int result = NO_CHANGE
        clock(&now)
        byok_lock(&m.lock)
        byok_store(&m.successes, byok_load(&m.successes) + 1)
        if latency >= 0:
            if byok_load(&m.latency_samples):
                ewma = byok_load_f64(&m.latency_ewma)
                byok_store_f64(&m.latency_ewma, ewma + self.latency_alpha * (latency - ewma))
            else:
                byok_store_f64(&m.latency_ewma, latency)
            byok_store(&m.latency_samples, byok_load(&m.latency_samples) + 1)
        self.record(m, now, False)
        cdef int64_t state = byok_load(&m.state)
        if state == COOLING and now >= byok_load(&m.until):
            make_ready(m)  # the probe succeeded: the circuit closes
            result = BECAME_READY
        elif state == READY:
            byok_store(&m.consecutive_failures, 0)
        else:
            byok_unlock(&m.lock)  # cooling before its deadline, blocked, disabled
            return result
        if byok_load(&m.level) and self.forgives(m, now):
            byok_store(&m.level, 0)
        byok_unlock(&m.lock)
        return result

    cdef int rate_limited(self, Py_ssize_t i, int64_t delay, int64_t now) noexcept nogil:
        cdef member_t *m = self.records[i]
        cdef int result = NO_CHANGE
        clock(&now)
        byok_lock(&m.lock)
        byok_store(&m.failures, byok_load(&m.failures) + 1)
        byok_store(&m.rate_limits, byok_load(&m.rate_limits) + 1)
        if delay < 0:  # no delay given: an unexplained failure
            byok_store(&m.consecutive_failures, byok_load(&m.consecutive_failures) + 1)
            self.record(m, now, True)
        cdef int64_t state = byok_load(&m.state)
        if state == READY or state == COOLING:
            result = self.cool(m, now, delay, RATE_LIMITED)
        byok_unlock(&m.lock)
        return result

    cdef int fail(self, Py_ssize_t i, int64_t now) noexcept nogil:
        cdef member_t *m = self.records[i]
        cdef int result = NO_CHANGE
        cdef int64_t attempts, failures
        clock(&now)
        byok_lock(&m.lock)
        byok_store(&m.failures, byok_load(&m.failures) + 1)
        cdef int64_t consecutive = byok_load(&m.consecutive_failures) + 1
        byok_store(&m.consecutive_failures, consecutive)
        self.record(m, now, True)
        cdef int64_t state = byok_load(&m.state)
        if state == READY:
            if consecutive >= self.failure_threshold:
                result = OPENED
            elif self.failure_rate > 0:
                window_totals(m, now, self.bucket_ns, &attempts, &failures)
                if (<double>failures >= self.failure_rate * <double>attempts
                        and (attempts >= self.min_attempts or byok_load(&m.level) > 0)):
                    result = OPENED_BY_RATE
            if result != NO_CHANGE:
                self.cool(m, now, -1, FAILING)
        elif state == COOLING:
            if now >= byok_load(&m.until):
                result = PROBE_FAILED
            self.cool(m, now, -1, FAILING)
        byok_unlock(&m.lock)
        return result

    def report_abandoned(self, index, now=None):
        """The attempt that claimed this member's half-open probe ended without
        a verdict (its client left, another attempt won): the probe is free
        again at once, instead of after probe_timeout.  Counts nothing."""
        self.abandon(self.check(index), now_ns(now))

    cdef void abandon(self, Py_ssize_t i, int64_t now) noexcept nogil:
        cdef member_t *m = self.records[i]
        clock(&now)
        byok_lock(&m.lock)
        if byok_load(&m.state) == COOLING and now >= byok_load(&m.until):
            byok_store(&m.probe_until, 0)
        byok_unlock(&m.lock)

    def report_headroom(self, index, requests_remaining=None, requests_limit=None,
                        requests_reset=None, tokens_remaining=None, tokens_limit=None,
                        tokens_reset=None, cost=0, now=None, sent=None):
        """What the provider's answer says the member has left: remaining
        requests and tokens, their limits, and seconds until each is full
        again (None: not said).  Rebuilds the provider_requests and
        provider_tokens limits (see "Headroom" above); ``cost`` is the
        estimated tokens of the call that got this answer, still in flight,
        and ``sent`` when it was sent (default: now): the answer of a call
        sent before the one the figures last came from is older news, and
        changes nothing."""
        cdef Py_ssize_t i = self.check(index)
        # the common figures (whole counts, float seconds, in range) inline,
        # anything else checked the long way (_args.headroom); on every answer
        cdef int64_t rr = figure(requests_remaining)
        cdef int64_t rl = figure(requests_limit)
        cdef int64_t rs = reset_ns(requests_reset)
        cdef int64_t tr = figure(tokens_remaining)
        cdef int64_t tl = figure(tokens_limit)
        cdef int64_t ts = reset_ns(tokens_reset)
        if rr == -2 or rl == -2 or rs == -2:
            rr, rl, rs = _args.headroom(
                requests_remaining, requests_limit, requests_reset, "requests"
            )
        if tr == -2 or tl == -2 or ts == -2:
            tr, tl, ts = _args.headroom(tokens_remaining, tokens_limit, tokens_reset, "tokens")
        requests = (rr, rl, rs)
        tokens = (tr, tl, ts)
        cdef int64_t own = cost_units(cost)
        cdef int64_t t = now_ns(now)
        cdef int64_t since = now_ns(sent) if sent is not None else BYOK_NOW_UNSET
        cdef member_t *m = self.records[i]
        clock(&t)
        if since == BYOK_NOW_UNSET:
            since = t
        byok_lock(&m.lock)
        if since < byok_load(&m.learned_sent):
            byok_unlock(&m.lock)  # an older call's answer, overtaken by a newer one's
            return
        byok_store(&m.learned_sent, since)
        cdef int64_t others = byok_load(&m.inflight) - 1
        learn_limit(m, LIMIT_PROVIDER_REQUESTS, requests[0], requests[1], requests[2],
                    others if others > 0 else 0, t)
        others = byok_load(&m.pending_tokens) - own
        learn_limit(m, LIMIT_PROVIDER_TOKENS, tokens[0], tokens[1], tokens[2],
                    others if others > 0 else 0, t)
        byok_unlock(&m.lock)

    def report_usage(self, index, estimated, actual, now=None):
        """The answer's real token count: the configured token limits (tpm,
        daily_tokens) take or give back the difference from the estimate
        that acquire() took (a bucket never fills beyond full)."""
        cdef Py_ssize_t i = self.check(index)
        cdef int64_t delta = cost_units(actual)
        delta -= cost_units(estimated)
        self.correct(i, delta, now_ns(now))

    cdef void correct(self, Py_ssize_t i, int64_t delta, int64_t now) noexcept nogil:
        cdef member_t *m = self.records[i]
        if not delta or not byok_load(&m.limited):
            return
        clock(&now)
        byok_lock(&m.lock)
        correct_limit(&m.limits[LIMIT_TPM], delta, now)
        correct_limit(&m.limits[LIMIT_DAILY_TOKENS], delta, now)
        byok_unlock(&m.lock)

    cdef int cool(self, member_t *m, int64_t now, int64_t delay, int64_t cause) noexcept nogil:
        # Caller holds m.lock and resolved `now`; the member is ready or cooling.
        # delay < 0: an unexplained failure, cool for the backoff.  Returns
        # COOLED if the member was ready or half-open, NO_CHANGE for a late
        # report on a cooling member (it only ever extends the deadline).
        cdef int64_t state = byok_load(&m.state)
        cdef int64_t old_until = byok_load(&m.until)
        cdef int64_t level = byok_load(&m.level)
        cdef bint fresh = state == READY or now >= old_until
        cdef int64_t until
        if fresh:
            if delay < 0:
                delay = backoff(self.cooldown_ns, self.max_cooldown_ns, level)
                byok_store(&m.level, level + 1)
            # the deadline and the cause before the state, for lock-free readers
            byok_store(&m.until, now + delay)
            byok_store(&m.probe_until, 0)
            byok_store(&m.cause, cause)
            byok_store(&m.state, COOLING)
            return COOLED
        if delay < 0:
            delay = backoff(self.cooldown_ns, self.max_cooldown_ns, level - 1 if level > 0 else 0)
        until = now + delay
        if until > old_until:
            byok_store(&m.until, until)
            byok_store(&m.cause, cause)
        byok_store(&m.probe_until, 0)
        return NO_CHANGE

    @cython.cdivision(True)
    cdef void record(self, member_t *m, int64_t now, bint failed) noexcept nogil:
        # Caller holds m.lock; now >= 0.  Attempts grow before failures.
        cdef int64_t epoch = now // self.bucket_ns
        cdef bucket_t *b = &m.window[epoch % WINDOW_BUCKETS]
        if byok_load(&b.epoch) != epoch:
            write_bucket(b, epoch, 0, 0)
        byok_store(&b.attempts, byok_load(&b.attempts) + 1)
        if failed:
            byok_store(&b.failures, byok_load(&b.failures) + 1)

    cdef bint forgives(self, member_t *m, int64_t now) noexcept nogil:
        # Caller holds m.lock.  A window without failures, or enough attempts
        # with a failure share well under failure_rate: the level goes back
        # to 0 (see the module doc).
        cdef int64_t attempts, failures
        if self.failure_rate == 0:
            return True
        window_totals(m, now, self.bucket_ns, &attempts, &failures)
        return failures == 0 or (
            attempts >= self.min_attempts
            and <double>failures < (self.failure_rate / 2) * <double>attempts)

    # ---- operator actions --------------------------------------------------

    def block(self, index):
        """Out until restore(): the key was refused (401/403)."""
        self.set_state(self.check(index), BLOCKED)

    def disable(self, index):
        """Out until restore(): an operator took it out."""
        self.set_state(self.check(index), DISABLED)

    def restore(self, index):
        """Back to ready with a clean slate, whatever the state was: deadlines,
        backoff level, consecutive count, failure-rate window and cause are
        cleared (the lifetime counters stay)."""
        self.set_state(self.check(index), READY)

    cdef int64_t set_state(self, Py_ssize_t i, int64_t state) noexcept nogil:
        cdef member_t *m = self.records[i]
        byok_lock(&m.lock)
        cdef int64_t before = byok_load(&m.state)
        if state == READY:
            make_ready(m)
            byok_store(&m.level, 0)
            for k in range(WINDOW_BUCKETS):
                write_bucket(&m.window[k], 0, 0, 0)
        elif not (state == BLOCKED and before == DISABLED):
            byok_store(&m.state, state)
        byok_unlock(&m.lock)
        return before

    def impose(self, index, state, until=None, cause=None, now=None):
        """Apply a state learned from elsewhere (another replica): "cooldown"
        until ``until`` (seconds on the clock of ``now``) because of ``cause``
        ("rate_limited" or "failing"), or "ready", "blocked", "disabled".

        A cooldown never shortens one: a member cooling until later keeps its
        deadline, a blocked or disabled one stays out, and a deadline already
        past changes nothing.  "ready" (an operator's restore, a re-validation)
        and "disabled" always apply; "blocked" too, but for a disabled member,
        as block() does.  Nothing is counted and the backoff level stays (but
        for "ready", which clears it as restore() does).  Returns True if the
        member's state or deadline changed, False if it already was so or
        the rules above kept it."""
        cdef Py_ssize_t i = self.check(index)
        code, deadline, why = _args.imposed(state, until, cause)
        return self.impose_state(i, code, deadline, why, now_ns(now))

    cdef bint impose_state(self, Py_ssize_t i, int64_t state, int64_t until, int64_t cause,
                           int64_t now) noexcept nogil:
        cdef member_t *m = self.records[i]
        cdef int64_t current
        cdef bint changed = False
        if state != COOLING:
            current = self.set_state(i, state)
            return current != state and not (state == BLOCKED and current == DISABLED)
        if until <= clock(&now):
            return False
        byok_lock(&m.lock)
        current = byok_load(&m.state)
        if current == READY or (current == COOLING and until > byok_load(&m.until)):
            # the deadline and the cause before the state, for lock-free readers
            byok_store(&m.until, until)
            byok_store(&m.probe_until, 0)
            byok_store(&m.cause, cause)
            byok_store(&m.state, COOLING)
            changed = True
        byok_unlock(&m.lock)
        return changed

    # ---- hot reload --------------------------------------------------------

    def copy_member(self, source, source_index, index):
        """Make member ``index`` of this table a copy of member ``source_index``
        of ``source`` (a HealthTable of the same implementation; it may be this
        one): state, deadlines, cause, backoff level, counters, failure-rate
        window and latency EWMA.  ``inflight`` and ``max_inflight`` are not
        copied: calls in flight release on the table that counted them, and the
        cap stays this one's.  If the two windows differ in width, each bucket
        of the source lands in the bucket of this table's where it starts."""
        if not isinstance(source, HealthTable):
            raise TypeError(
                f"source must be a {type(self).__module__}.HealthTable, got "
                f"{type(source).__module__}.{type(source).__qualname__}"
            )
        cdef HealthTable table = <HealthTable>source
        cdef Py_ssize_t j = table.check(source_index)
        self.copy_from(table, j, self.check(index))

    @cython.cdivision(True)
    cdef void copy_from(self, HealthTable source, Py_ssize_t source_index,
                        Py_ssize_t index) noexcept nogil:
        # one lock at a time: a snapshot of the source, then the write
        cdef member_t *src = source.records[source_index]
        cdef member_t *dst = self.records[index]
        cdef bucket_t window[WINDOW_BUCKETS]
        cdef bucket_t mapped[WINDOW_BUCKETS]
        cdef limit_t limits[LIMITS]
        cdef int64_t epoch
        cdef Py_ssize_t k, slot
        if src == dst:  # one record (itself, or one slot of a shared segment)
            return
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
        cdef int64_t cause = byok_load(&src.cause)
        cdef int64_t learned = byok_load(&src.limited) & LEARNED_LIMITS
        for k in range(LIMITS):
            limits[k].interval = byok_load(&src.limits[k].interval)
            limits[k].capacity = byok_load(&src.limits[k].capacity)
            limits[k].period = byok_load(&src.limits[k].period)
            limits[k].tat = byok_load(&src.limits[k].tat)
        for k in range(WINDOW_BUCKETS):
            window[k].epoch = byok_load(&src.window[k].epoch)
            window[k].attempts = byok_load(&src.window[k].attempts)
            window[k].failures = byok_load(&src.window[k].failures)
        byok_unlock(&src.lock)
        # Each bucket that holds reports goes where its start time falls in
        # this table's window; of two landing in one slot the later epoch wins
        # and equal epochs add up (the same buckets if the widths are equal).
        for k in range(WINDOW_BUCKETS):
            mapped[k].epoch = 0
            mapped[k].attempts = 0
            mapped[k].failures = 0
        for k in range(WINDOW_BUCKETS):
            if window[k].attempts == 0:
                continue
            epoch = window[k].epoch
            if source.bucket_ns != self.bucket_ns:
                epoch = epoch * source.bucket_ns // self.bucket_ns
            slot = epoch % WINDOW_BUCKETS
            if mapped[slot].attempts and mapped[slot].epoch == epoch:
                mapped[slot].attempts += window[k].attempts
                mapped[slot].failures += window[k].failures
            elif mapped[slot].attempts == 0 or mapped[slot].epoch < epoch:
                mapped[slot] = window[k]
                mapped[slot].epoch = epoch
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
        byok_store(&dst.cause, cause)
        for k in range(WINDOW_BUCKETS):
            write_bucket(&dst.window[k], mapped[k].epoch, mapped[k].attempts,
                         mapped[k].failures)
        # what was spent of every limit; the provider's limits as learned,
        # the configured ones as this table's configuration says
        for k in range(LIMITS):
            if k >= LIMIT_PROVIDER_REQUESTS:
                byok_store(&dst.limits[k].interval, limits[k].interval)
                byok_store(&dst.limits[k].capacity, limits[k].capacity)
                byok_store(&dst.limits[k].period, limits[k].period)
            byok_store(&dst.limits[k].tat, limits[k].tat)
        byok_store(&dst.limited, (byok_load(&dst.limited) & ~LEARNED_LIMITS) | learned)
        byok_store(&dst.state, state)
        byok_unlock(&dst.lock)

    # ---- in-flight accounting ----------------------------------------------

    def acquire(self, index, cost=0, now=None):
        """Count one more call in flight, of ``cost`` estimated tokens, and
        take it from the member's limits; False (and nothing taken) if the
        member is at its cap or over a limit."""
        cdef Py_ssize_t i = self.check(index)
        return self.acquire_slot(i, cost_units(cost), now_ns(now))

    def release(self, index, cost=0):
        """Count one call less in flight (``cost``: as it was acquired)."""
        cdef Py_ssize_t i = self.check(index)
        if not self.release_slot(i, cost_units(cost)):
            raise ValueError(f"member {i} has nothing in flight: release() must follow acquire()")

    cdef bint acquire_slot(self, Py_ssize_t i, int64_t cost, int64_t now) noexcept nogil:
        cdef member_t *m = self.records[i]
        cdef int64_t *mine = self.counted[i] if self.counted != NULL else NULL
        cdef int64_t cap = byok_load(&m.max_inflight)
        cdef int64_t current
        cdef bint charged
        if mine != NULL:  # this worker's count first (_segment.pyx, "In flight")
            byok_fetch_add(mine, 1)
        while True:
            current = byok_load(&m.inflight)
            if cap and current >= cap:
                if mine != NULL:
                    byok_fetch_add(mine, -1)
                return False
            if byok_cas(&m.inflight, current, current + 1):
                break
        if byok_load(&m.limited):
            clock(&now)
            byok_lock(&m.lock)
            charged = charge(m, cost, now)
            byok_unlock(&m.lock)
            if not charged:
                byok_fetch_add(&m.inflight, -1)
                if mine != NULL:
                    byok_fetch_add(mine, -1)
                return False
        if cost:
            byok_fetch_add(&m.pending_tokens, cost)
        return True

    cdef void refund(self, Py_ssize_t i, int64_t cost) noexcept nogil:
        # gives back what acquire_slot() took of the limits (its caller then
        # releases the slot): a Selector whose pool took a request that no
        # member could
        cdef member_t *m = self.records[i]
        cdef limit_t *b
        cdef double interval
        byok_lock(&m.lock)
        for k in range(LIMITS):
            b = &m.limits[k]
            interval = byok_load_f64(&b.interval)
            if interval > 0:
                byok_store(&b.tat, byok_load(&b.tat)
                           - <int64_t>(<double>limit_units(b, k, cost) * interval))
        byok_unlock(&m.lock)

    cdef bint release_slot(self, Py_ssize_t i, int64_t cost) noexcept nogil:
        cdef member_t *m = self.records[i]
        cdef int64_t *mine = self.counted[i] if self.counted != NULL else NULL
        cdef int64_t current
        while mine != NULL:  # shared: what this worker counted is what it may release
            current = byok_load(mine)
            if current <= 0:
                return False
            if byok_cas(mine, current, current - 1):
                break
        while True:
            current = byok_load(&m.inflight)
            if current <= 0:  # shared: a reclaim() already took it off the total
                if mine == NULL:
                    return False
                break
            if byok_cas(&m.inflight, current, current - 1):
                break
        if cost:
            byok_fetch_add(&m.pending_tokens, -cost)
        return True

    # ---- reading -----------------------------------------------------------

    def state(self, index, now=None):
        """A byok_core.State: ready, cooldown, half_open, blocked or disabled."""
        return state_name(self.records[self.check(index)], now_ns(now))

    def retry_after(self, now=None, cost=0):
        """0.0 if a member can be used now (for a request of ``cost``
        estimated tokens), else seconds until the soonest one can; None if
        none ever will without an operator."""
        cdef int64_t units = cost_units(cost)
        cdef int64_t wait = self.wait_ns(now_ns(now), units, NULL)
        return None if wait < 0 else wait / 1e9

    def outlook(self, now=None, cost=0):
        """(0.0, "available") if a member can be used now (as retry_after()
        counts it); else (seconds until the soonest member returns, why it
        is out: Cause.RATE_LIMITED or Cause.FAILING for a cooldown,
        Cause.LIMITED for a ready member over a limit); (None, "out") if none
        ever will without an operator (or there are none)."""
        cdef int64_t units = cost_units(cost)
        cdef int64_t cause = CAUSE_NONE
        cdef int64_t wait = self.wait_ns(now_ns(now), units, &cause)
        if wait < 0:
            return (None, "out")
        if wait == 0:
            return (0.0, "available")
        return (wait / 1e9, CAUSE_NAMES[cause if cause != CAUSE_NONE else FAILING])

    cdef int64_t wait_ns(self, int64_t now, int64_t cost, int64_t *cause) noexcept nogil:
        # 0 if a member is available now, -1 if none will return by itself,
        # else the soonest return in ns and, if `cause` is given, its cause
        cdef int64_t best = -1
        cdef int64_t wait, state, until, probe_until, limited, why
        cdef member_t *m
        clock(&now)
        for i in range(self.size):
            m = self.records[i]
            state = byok_load(&m.state)
            wait = 0
            why = CAUSE_NONE
            if state == COOLING:
                until = byok_load(&m.until)
                if now >= until:
                    probe_until = byok_load(&m.probe_until)
                    if probe_until > now:
                        wait = probe_until - now
                else:
                    wait = until - now
                why = byok_load(&m.cause)
            elif state != READY:
                continue
            if byok_load(&m.limited):
                limited = limits_wait(m, cost, now, NULL)
                if limited > wait:
                    wait = limited
                    why = LIMITED
            if wait <= 0:
                return 0
            if best < 0 or wait < best:
                best = wait
                if cause != NULL:
                    cause[0] = why
        return best

    def snapshot(self, now=None):
        """One dict per member: state, cause, counters, window and timings."""
        cdef int64_t t = now_ns(now)
        clock(&t)
        return [member_view(self.records[i], t, self.bucket_ns) for i in range(self.size)]

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


cdef inline int64_t figure(object value):
    """A headroom count: -1 for None, the int when it is one in range, else
    -2 (the long way decides)."""
    cdef long long count
    if value is None:
        return -1
    if PyLong_CheckExact(value):
        count = value
        if 0 <= count <= (1LL << 40):  # _args.MAX_LIMIT
            return count
    return -2


cdef inline int64_t reset_ns(object value):
    """A headroom reset in ns: -1 for None, the float's when it is one in
    range, else -2 (the long way decides)."""
    cdef double seconds
    if value is None:
        return -1
    if PyFloat_CheckExact(value):
        seconds = PyFloat_AS_DOUBLE(value)
        if 0 <= seconds <= 1e8:  # _args.MAX_SECONDS
            return <int64_t>(seconds * 1e9)
    return -2


cdef int64_t checked_cost(object value) except -1:
    return _args.cost(value)


cdef int reject_now(object now) except -1:
    raise _args.bad_now(now)


cdef inline object transition_name(int code):
    """A transition code as the Transition report_*() returns (None for NO_CHANGE)."""
    return <object>PyTuple_GET_ITEM(TRANSITION_NAMES, code)


cdef inline int64_t backoff(int64_t cooldown, int64_t cap, int64_t level) noexcept nogil:
    if level >= 63 or cooldown > (cap >> level):
        return cap
    return cooldown << level


cdef inline void make_ready(member_t *m) noexcept nogil:
    # Closing the circuit; restore() also clears the level and the window.
    byok_store(&m.until, 0)
    byok_store(&m.probe_until, 0)
    byok_store(&m.consecutive_failures, 0)
    byok_store(&m.cause, CAUSE_NONE)
    byok_store(&m.state, READY)


cdef inline void write_bucket(bucket_t *b, int64_t epoch, int64_t attempts,
                              int64_t failures) noexcept nogil:
    # Caller holds the member's lock.  Epoch -1 first: a lock-free reader
    # that sees the epoch change under it reads the bucket again.
    byok_store(&b.epoch, -1)
    byok_store(&b.attempts, attempts)
    byok_store(&b.failures, failures)
    byok_store(&b.epoch, epoch)


@cython.cdivision(True)
cdef void window_totals(member_t *m, int64_t now, int64_t bucket_ns,
                        int64_t *attempts, int64_t *failures) noexcept nogil:
    """The window's attempts and failures at `now` (resolved, >= 0): the sum
    over the buckets whose epoch is in (current - WINDOW_BUCKETS, current].
    Safe without the lock (see the module doc), exact under it."""
    cdef int64_t current = now // bucket_ns
    cdef int64_t epoch, a, f
    cdef bucket_t *b
    cdef int tries
    attempts[0] = 0
    failures[0] = 0
    for k in range(WINDOW_BUCKETS):
        b = &m.window[k]
        for tries in range(64):
            epoch = byok_load(&b.epoch)
            f = byok_load(&b.failures)  # failures before attempts: f <= a
            a = byok_load(&b.attempts)
            if epoch >= 0 and byok_load(&b.epoch) == epoch:
                break
            byok_cpu_relax()
        else:
            continue  # a writer stalled mid-reset: the bucket is being emptied
        if current - WINDOW_BUCKETS < epoch <= current:
            attempts[0] += a
            failures[0] += f


cdef inline int view_state(member_t *m, int64_t now) noexcept nogil:
    cdef int64_t state = byok_load(&m.state)
    if state == READY:
        return VIEW_READY
    if state == COOLING:
        return VIEW_COOLDOWN if clock(&now) < byok_load(&m.until) else VIEW_HALF_OPEN
    return VIEW_BLOCKED if state == BLOCKED else VIEW_DISABLED


cdef inline object state_name(member_t *m, int64_t now):
    """The member's byok_core.State (a module-level member, no allocation)."""
    return <object>PyTuple_GET_ITEM(STATE_NAMES, view_state(m, now))


cdef dict member_view(member_t *m, int64_t now, int64_t bucket_ns):
    cdef int64_t attempts, failures
    cdef int view = view_state(m, now)
    samples = byok_load(&m.latency_samples)
    cap = byok_load(&m.max_inflight)
    cooling = view == VIEW_COOLDOWN or view == VIEW_HALF_OPEN
    window_totals(m, now, bucket_ns, &attempts, &failures)
    return {
        "state": <object>PyTuple_GET_ITEM(STATE_NAMES, view),
        "cause": CAUSE_NAMES[byok_load(&m.cause)] if cooling else None,
        "cooldown_remaining": (byok_load(&m.until) - now) / 1e9 if view == VIEW_COOLDOWN else 0.0,
        "probing": view == VIEW_HALF_OPEN and byok_load(&m.probe_until) > now,
        "backoff_level": byok_load(&m.level),
        "consecutive_failures": byok_load(&m.consecutive_failures),
        "picks": byok_load(&m.picks),
        "successes": byok_load(&m.successes),
        "failures": byok_load(&m.failures),
        "rate_limits": byok_load(&m.rate_limits),
        "window_attempts": attempts,
        "window_failures": failures,
        "inflight": byok_load(&m.inflight),
        "max_inflight": cap if cap else None,
        "latency_ewma": byok_load_f64(&m.latency_ewma) if samples else None,
        "limits": limit_views(m, now) if byok_load(&m.limited) else {},
    }


cdef dict limit_views(member_t *m, int64_t now):
    cdef dict views = {}
    cdef limit_t *b
    cdef double interval
    cdef int64_t debt
    for k in range(LIMITS):
        b = &m.limits[k]
        interval = byok_load_f64(&b.interval)
        if interval <= 0:
            continue
        debt = byok_load(&b.tat) - now
        if debt < 0:
            debt = 0
        capacity = byok_load(&b.capacity)
        views[LIMIT_NAMES[k]] = {
            "limit": capacity,
            "remaining": capacity - <int64_t>(debt / interval + 0.999999),
            "full_in": debt / 1e9,
        }
    return views


cdef void configure_limit(member_t *m, int k, int64_t capacity, int64_t period) noexcept nogil:
    # a configured limit: `capacity` units refilled over `period` ns (0: off);
    # the bucket's level (tat) stays, so a reload keeps what was spent
    cdef limit_t *b = &m.limits[k]
    byok_lock(&m.lock)
    if capacity:
        byok_store(&b.capacity, capacity)
        byok_store(&b.period, period)
        byok_store_f64(&b.interval, <double>period / <double>capacity)
        byok_store(&m.limited, byok_load(&m.limited) | (1 << k))
    else:
        byok_store_f64(&b.interval, 0.0)
        byok_store(&m.limited, byok_load(&m.limited) & ~(1 << k))
    byok_unlock(&m.lock)


cdef void correct_limit(limit_t *b, int64_t delta, int64_t now) noexcept nogil:
    # Caller holds the member's lock: `delta` units more (or fewer) than taken
    cdef double interval = byok_load_f64(&b.interval)
    if interval <= 0:
        return
    cdef int64_t tat = byok_load(&b.tat)
    if tat < now:
        tat = now
    tat += <int64_t>(<double>delta * interval)
    byok_store(&b.tat, tat if tat > now else now)


cdef void learn_limit(member_t *m, int k, int64_t remaining, int64_t limit, int64_t reset,
                      int64_t others, int64_t now) noexcept nogil:
    # Caller holds m.lock.  The provider's figures for one limit (-1: not
    # given) rebuild its bucket: see "Headroom" in the module doc.
    cdef limit_t *b = &m.limits[k]
    if remaining < 0:
        return
    cdef int64_t capacity = limit if limit > 0 else byok_load(&b.capacity)
    if capacity < remaining:
        capacity = remaining
    if capacity <= 0:
        return
    cdef int64_t used = capacity - remaining
    cdef double interval
    if reset < 0:
        reset = 60 * 1000000000  # not said: providers' limits are per minute
    if used > 0 and reset > 0:
        interval = <double>reset / <double>used
    else:
        interval = 60e9 / <double>capacity
    byok_store(&b.capacity, capacity)
    byok_store(&b.period, <int64_t>(<double>capacity * interval))
    byok_store(&b.tat, now + <int64_t>(<double>(used + others) * interval))
    byok_store_f64(&b.interval, interval)
    byok_store(&m.limited, byok_load(&m.limited) | (1 << k))


def _forget_process_id():
    """After fork(): lock words name the child, not its parent (_platform.h)."""
    byok_forget_self()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_process_id)
