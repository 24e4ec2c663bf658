"""Pure-Python twin of ``byok_core._health``: same surface, same results.

Read the theory of operation at the top of ``_health.pyx``; this twin follows
it step for step, with one lock per table where the compiled module uses
atomics and a spinlock per member.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Optional, Union

from . import _args, _region
from ._names import Cause, LimitView, MemberView, State, Transition

if TYPE_CHECKING:
    from typing_extensions import Self

    from ._region import Segment

READY, COOLING, BLOCKED, DISABLED = range(4)
UNAVAILABLE, AVAILABLE, PROBE = range(3)
CAUSE_NONE, RATE_LIMITED, FAILING, LIMITED = range(4)
NO_CHANGE, BECAME_READY, COOLED, OPENED, OPENED_BY_RATE, PROBE_FAILED = range(6)
# the members returned, by the codes above (COOLING: cooldown or half_open)
_TRANSITION_NAMES: tuple[Optional[Transition], ...] = (None, *_args.TRANSITIONS)
_CAUSE_NAMES: tuple[Optional[Cause], ...] = (None, *_args.CAUSES)
_STATE_NAMES = (State.READY, State.COOLDOWN, State.BLOCKED, State.DISABLED)
BUCKETS = _args.WINDOW_BUCKETS
LIMITS = len(_args.LIMIT_NAMES)
LIMIT_RPM, LIMIT_TPM, LIMIT_DAILY_TOKENS, LIMIT_PROVIDER_REQUESTS, LIMIT_PROVIDER_TOKENS = range(
    LIMITS
)
_REQUEST_LIMITS = (LIMIT_RPM, LIMIT_PROVIDER_REQUESTS)  # a request takes 1 of these
_LEARNED = (1 << LIMIT_PROVIDER_REQUESTS) | (1 << LIMIT_PROVIDER_TOKENS)
_FIELDS = (
    "state",
    "until",
    "probe_until",
    "level",
    "consecutive_failures",
    "picks",
    "successes",
    "failures",
    "rate_limits",
    "inflight",
    "max_inflight",
    "latency_ewma",
    "latency_samples",
    "cause",
    "limited",
    "pending_tokens",
    "learned_sent",
)
# What copy_member() carries over as it is: all but the in-flight count, its
# cap and the tokens in flight, the limits (`limited` and the four lists,
# merged as _health.pyx does) and the window, mapped bucket by bucket.
_COPIED = tuple(
    name
    for name in _FIELDS
    if name not in ("inflight", "max_inflight", "limited", "pending_tokens", "learned_sent")
)


class _Member:
    __slots__ = (
        *_FIELDS,
        "counted",
        "epochs",
        "attempts",
        "failed",
        "lim_interval",
        "lim_capacity",
        "lim_period",
        "lim_tat",
    )

    # _FIELDS, set to 0 by __init__ (latency_ewma to 0.0)
    state: int
    until: int
    probe_until: int
    level: int
    consecutive_failures: int
    picks: int
    successes: int
    failures: int
    rate_limits: int
    inflight: int
    max_inflight: int
    latency_ewma: float
    latency_samples: int
    cause: int
    limited: int
    pending_tokens: int
    learned_sent: int
    counted: int  # calls in flight this process counted (the total, unshared)
    # the limits, one list per limit_t field (_health.pxd), by limit index
    lim_interval: Any  # floats: ns per unit (0.0: off)
    lim_capacity: Any
    lim_period: Any
    lim_tat: Any

    def __init__(self, max_inflight: int) -> None:
        for name in _FIELDS:
            setattr(self, name, 0)
        self.latency_ewma = 0.0
        self.max_inflight = max_inflight
        self.counted = 0
        # the failure-rate window: per bucket its epoch, attempts and failures
        self.epochs = [0] * BUCKETS
        self.attempts = [0] * BUCKETS
        self.failed = [0] * BUCKETS
        self.lim_interval = [0.0] * LIMITS
        self.lim_capacity = [0] * LIMITS
        self.lim_period = [0] * LIMITS
        self.lim_tat = [0] * LIMITS

    # ---- limits (see "Limits" in _health.pyx); callers hold the table lock ----

    def units(self, k: int, cost: int) -> int:
        units = 1 if k in _REQUEST_LIMITS else cost
        capacity: int = self.lim_capacity[k]
        return min(units, capacity)

    def limits_wait(self, cost: int, now: int) -> tuple[int, int]:
        """(ns until every limit in force takes the request (<= 0: now), the
        limit that waits longest)."""
        longest, which = -1, 0
        for k in range(LIMITS):
            interval = self.lim_interval[k]
            if interval <= 0:
                continue
            tat = max(self.lim_tat[k], now)
            wait = tat + int(float(self.units(k, cost)) * interval) - self.lim_period[k] - now
            if wait > longest:
                longest, which = wait, k
        return longest, which

    def charge(self, cost: int, now: int) -> bool:
        if self.limits_wait(cost, now)[0] > 0:
            return False
        for k in range(LIMITS):
            interval = self.lim_interval[k]
            if interval > 0:
                tat = max(self.lim_tat[k], now)
                self.lim_tat[k] = tat + int(float(self.units(k, cost)) * interval)
        return True

    def refund(self, cost: int) -> None:
        for k in range(LIMITS):
            interval = self.lim_interval[k]
            if interval > 0:
                self.lim_tat[k] -= int(float(self.units(k, cost)) * interval)

    def share(self, now: int) -> float:
        share = 1.0
        if not self.limited:
            return share
        for k in range(LIMITS):
            if self.lim_interval[k] <= 0:
                continue
            debt, period = self.lim_tat[k] - now, self.lim_period[k]
            if debt <= 0 or period <= 0:
                continue
            share = min(share, 1.0 - float(debt) / float(period))
        return share

    def configure(self, k: int, capacity: int, period: int) -> None:
        if capacity:
            self.lim_capacity[k] = capacity
            self.lim_period[k] = period
            self.lim_interval[k] = float(period) / float(capacity)
            self.limited |= 1 << k
        else:
            self.lim_interval[k] = 0.0
            self.limited &= ~(1 << k)

    def correct(self, k: int, delta: int, now: int) -> None:
        interval = self.lim_interval[k]
        if interval <= 0:
            return
        tat = max(self.lim_tat[k], now) + int(float(delta) * interval)
        self.lim_tat[k] = max(tat, now)

    def learn(self, k: int, remaining: int, limit: int, reset: int, others: int, now: int) -> None:
        if remaining < 0:
            return
        capacity = max(limit if limit > 0 else self.lim_capacity[k], remaining)
        if capacity <= 0:
            return
        used = capacity - remaining
        if reset < 0:
            reset = 60 * _args.NS_PER_S  # not said: providers' limits are per minute
        if used > 0 and reset > 0:
            interval = float(reset) / float(used)
        else:
            interval = 60e9 / float(capacity)
        self.lim_capacity[k] = capacity
        self.lim_period[k] = int(float(capacity) * interval)
        self.lim_tat[k] = now + int(float(used + others) * interval)
        self.lim_interval[k] = interval
        self.limited |= 1 << k

    def limit_views(self, now: int) -> dict[str, LimitView]:
        views: dict[str, LimitView] = {}
        if not self.limited:
            return views
        for k in range(LIMITS):
            interval = self.lim_interval[k]
            if interval <= 0:
                continue
            debt = max(self.lim_tat[k] - now, 0)
            capacity = self.lim_capacity[k]
            views[_args.LIMIT_NAMES[k]] = {
                "limit": capacity,
                "remaining": capacity - int(debt / interval + 0.999999),
                "full_in": debt / 1e9,
            }
        return views

    def record(self, now: int, bucket_ns: int, failed: bool) -> None:
        epoch = now // bucket_ns
        slot = epoch % BUCKETS
        if self.epochs[slot] != epoch:
            self.epochs[slot], self.attempts[slot], self.failed[slot] = epoch, 0, 0
        self.attempts[slot] += 1
        if failed:
            self.failed[slot] += 1

    def same(self, other: _Member) -> bool:
        """Whether the two are one record (a shared segment's slot: see _segment_py)."""
        return other is self

    def window(self, now: int, bucket_ns: int) -> tuple[int, int]:
        """(attempts, failures) over the buckets of the window ending at now."""
        current = now // bucket_ns
        attempts = failures = 0
        for epoch, a, f in zip(self.epochs, self.attempts, self.failed):
            if current - BUCKETS < epoch <= current:
                attempts += a
                failures += f
        return attempts, failures


def now_ns(now: Optional[float]) -> int:
    if now is None:
        return time.monotonic_ns()
    if isinstance(now, (str, bytes)):
        raise TypeError(f"now must be a number, not {type(now).__name__}")
    seconds = float(now)
    if not 0 <= seconds <= _args.MAX_NOW:
        raise _args.bad_now(now)
    return int(seconds * 1e9)


def optional_seconds(value: object, name: str) -> float:
    """A report's seconds; -1.0 stands for None.  Clamped, as in _health.pyx."""
    if value is None:
        return -1.0
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    seconds = float(value)  # type: ignore[arg-type]
    if seconds != seconds:
        return -1.0
    return min(max(seconds, 0.0), _args.MAX_SECONDS)


class HealthTable:
    """Health of ``size`` members, addressed by index (see ``_health.pyx``)."""

    __slots__ = (
        "_bucket_ns",
        "_cooldown_ns",
        "_failure_rate",
        "_failure_threshold",
        "_latency_alpha",
        "_lock",
        "_max_cooldown_ns",
        "_members",
        "_min_attempts",
        "_probe_timeout_ns",
    )

    def __init__(
        self,
        size: int,
        *,
        cooldown: float = 1.0,
        max_cooldown: float = 15.0,
        failure_threshold: int = 3,
        probe_timeout: float = 30.0,
        latency_alpha: float = 0.3,
        max_inflight: Union[int, Sequence[int], None] = None,
        failure_rate: float = 0.5,
        failure_rate_window: float = 30.0,
        failure_rate_min_attempts: int = 10,
        shared: Optional[Segment] = None,
        scope: Optional[str] = None,
        ids: Optional[Sequence[str]] = None,
        rpm: Union[int, Sequence[int], None] = None,
        tpm: Union[int, Sequence[int], None] = None,
        daily_tokens: Union[int, Sequence[int], None] = None,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"size must be an integer of 0 or more, got {size!r}")
        self._cooldown_ns = _args.duration_ns(cooldown, "cooldown")
        self._max_cooldown_ns = _args.duration_ns(max_cooldown, "max_cooldown")
        if self._max_cooldown_ns < self._cooldown_ns:
            raise ValueError(
                f"max_cooldown ({max_cooldown}) must be at least cooldown ({cooldown})"
            )
        self._probe_timeout_ns = _args.duration_ns(probe_timeout, "probe_timeout")
        self._failure_threshold = _args.positive_int(failure_threshold, "failure_threshold")
        self._latency_alpha = _args.fraction(latency_alpha, "latency_alpha")
        self._failure_rate = _args.share(failure_rate, "failure_rate")
        self._bucket_ns = _args.window_bucket_ns(failure_rate_window, "failure_rate_window")
        self._min_attempts = _args.positive_int(
            failure_rate_min_attempts, "failure_rate_min_attempts"
        )
        for values in (max_inflight, rpm, tpm, daily_tokens):
            if isinstance(values, dict):
                raise TypeError(
                    "per-member options of a HealthTable are an int or a sequence, not a mapping"
                )
        positions = [str(i) for i in range(size)]
        caps = _args.per_member(max_inflight, positions, "max_inflight", 0, 0)
        limits = _args.per_member_limits(rpm, tpm, daily_tokens, positions)
        names = _region.check_sharing(shared, scope, size, ids)
        self._members = [_Member(cap) for cap in caps]
        self._lock: AbstractContextManager[Any] = threading.Lock()
        if shared is not None:
            # the twin's HealthSegment says so (_segment_py imports this
            # module: an import of it here would make a cycle)
            if getattr(type(shared), "_implementation", None) != _region.PURE:
                raise _region.not_a_segment(shared, _region.PURE)
            shared._bind(self, scope or "", names)  # type: ignore[attr-defined]
        with self._lock:  # the latest configuration's cap and limits, shared or not
            for m, cap, configured in zip(self._members, caps, limits):
                m.max_inflight = cap
                for k in range(LIMIT_PROVIDER_REQUESTS):
                    m.configure(k, configured[k], _args.CONFIGURED_PERIODS_NS[k])

    def _share(self, members: list[_Member], lock: AbstractContextManager[Any]) -> None:
        """Take the records of a shared segment, and its lock (_segment_py)."""
        self._members = members
        self._lock = lock

    def __len__(self) -> int:
        return len(self._members)

    # ---- what the selector asks on every pick ------------------------------

    def _availability(self, i: int, now: int, cost: int = 0) -> int:
        m = self._members[i]
        if m.max_inflight and m.inflight >= m.max_inflight:
            return UNAVAILABLE
        if m.state == READY:
            kind = AVAILABLE
        elif m.state == COOLING and now >= m.until and m.probe_until <= now:
            kind = PROBE
        else:
            return UNAVAILABLE
        if m.limited:
            with self._lock:
                if m.limits_wait(cost, now)[0] > 0:
                    return UNAVAILABLE
        return kind

    def _take(self, i: int, cost: int, now: int) -> bool:
        """pick(): the request from member i's limits, if it fits them all."""
        m = self._members[i]
        if not m.limited:
            return True
        with self._lock:
            return m.charge(cost, now)

    def _refund(self, i: int, cost: int) -> None:
        m = self._members[i]
        with self._lock:
            m.refund(cost)

    def _open(self, now: int, cost: int) -> bool:
        """A pool's record (member 0): under its max_inflight and its limits."""
        m = self._members[0]
        if m.max_inflight and m.inflight >= m.max_inflight:
            return False
        if not m.limited:
            return True
        with self._lock:
            return m.limits_wait(cost, now)[0] <= 0

    def _limits_wait(self, i: int, cost: int, now: int) -> tuple[int, int]:
        m = self._members[i]
        if not m.limited:
            return -1, 0
        with self._lock:
            return m.limits_wait(cost, now)

    def _headroom_share(self, i: int, now: int) -> float:
        m = self._members[i]
        with self._lock:
            return m.share(now)

    def _claim_probe(self, i: int, now: int) -> bool:
        m = self._members[i]
        with self._lock:  # re-checked: the probe may have failed meanwhile
            if m.state != COOLING or now < m.until or m.probe_until > now:
                return False
            m.probe_until = now + self._probe_timeout_ns
            return True

    def _count_pick(self, i: int) -> None:
        m = self._members[i]
        with self._lock:
            m.picks += 1

    # ---- outcomes ----------------------------------------------------------

    def report_success(
        self, index: int, latency: Optional[float] = None, now: Optional[float] = None
    ) -> Optional[Transition]:
        m = self._members[self._check(index)]
        latency = optional_seconds(latency, "latency")
        t = now_ns(now)
        with self._lock:
            m.successes += 1
            if latency >= 0:
                if m.latency_samples:
                    m.latency_ewma += self._latency_alpha * (latency - m.latency_ewma)
                else:
                    m.latency_ewma = latency
                m.latency_samples += 1
            m.record(t, self._bucket_ns, False)
            result = NO_CHANGE
            if m.state == COOLING and t >= m.until:
                _make_ready(m)  # the probe succeeded: the circuit closes
                result = BECAME_READY
            elif m.state == READY:
                m.consecutive_failures = 0
            else:
                return None  # cooling before its deadline, blocked, disabled
            if m.level and self._forgives(m, t):
                m.level = 0
            return _TRANSITION_NAMES[result]

    def report_rate_limited(
        self, index: int, retry_after: Optional[float] = None, now: Optional[float] = None
    ) -> Optional[Transition]:
        m = self._members[self._check(index)]
        seconds = optional_seconds(retry_after, "retry_after")
        delay = int(seconds * 1e9) if seconds >= 0 else -1
        t = now_ns(now)
        with self._lock:
            m.failures += 1
            m.rate_limits += 1
            if delay < 0:  # no delay given: an unexplained failure
                m.consecutive_failures += 1
                m.record(t, self._bucket_ns, True)
            result = NO_CHANGE
            if m.state in (READY, COOLING):
                result = self._cool(m, t, delay, RATE_LIMITED)
            return _TRANSITION_NAMES[result]

    def report_error(self, index: int, now: Optional[float] = None) -> Optional[Transition]:
        m = self._members[self._check(index)]
        t = now_ns(now)
        with self._lock:
            m.failures += 1
            m.consecutive_failures += 1
            m.record(t, self._bucket_ns, True)
            result = NO_CHANGE
            if m.state == READY:
                if m.consecutive_failures >= self._failure_threshold:
                    result = OPENED
                elif self._failure_rate > 0:
                    attempts, failures = m.window(t, self._bucket_ns)
                    if float(failures) >= self._failure_rate * float(attempts) and (
                        attempts >= self._min_attempts or m.level > 0
                    ):
                        result = OPENED_BY_RATE
                if result != NO_CHANGE:
                    self._cool(m, t, -1, FAILING)
            elif m.state == COOLING:
                if t >= m.until:
                    result = PROBE_FAILED
                self._cool(m, t, -1, FAILING)
            return _TRANSITION_NAMES[result]

    def _cool(self, m: _Member, now: int, delay: int, cause: int) -> int:
        # From ready or half-open the member cools (for the backoff, one
        # level up, if no delay was given); a failure that lands while it
        # already cools (a request sent before it cooled) only extends the
        # deadline at the current level.
        if m.state == READY or now >= m.until:
            if delay < 0:
                delay = self._backoff(m.level)
                m.level += 1
            m.until = now + delay
            m.probe_until = 0
            m.cause = cause
            m.state = COOLING
            return COOLED
        if delay < 0:
            delay = self._backoff(max(m.level - 1, 0))
        if now + delay > m.until:
            m.until = now + delay
            m.cause = cause
        m.probe_until = 0
        return NO_CHANGE

    def _forgives(self, m: _Member, now: int) -> bool:
        if self._failure_rate == 0:
            return True
        attempts, failures = m.window(now, self._bucket_ns)
        return failures == 0 or (
            attempts >= self._min_attempts
            and float(failures) < (self._failure_rate / 2) * float(attempts)
        )

    def report_abandoned(self, index: int, now: Optional[float] = None) -> None:
        m = self._members[self._check(index)]
        t = now_ns(now)
        with self._lock:
            if m.state == COOLING and t >= m.until:
                m.probe_until = 0

    def _backoff(self, level: int) -> int:
        return min(self._cooldown_ns << min(level, 63), self._max_cooldown_ns)

    # ---- operator actions --------------------------------------------------

    def block(self, index: int) -> None:
        m = self._members[self._check(index)]
        with self._lock:
            if m.state != DISABLED:
                m.state = BLOCKED

    def disable(self, index: int) -> None:
        m = self._members[self._check(index)]
        with self._lock:
            m.state = DISABLED

    def restore(self, index: int) -> None:
        m = self._members[self._check(index)]
        with self._lock:
            _clean_slate(m)

    def impose(
        self,
        index: int,
        state: str,
        until: Optional[float] = None,
        cause: Optional[str] = None,
        now: Optional[float] = None,
    ) -> bool:
        """A state learned from elsewhere (see ``_health.pyx``)."""
        m = self._members[self._check(index)]
        code, deadline, why = _args.imposed(state, until, cause)
        t = now_ns(now)
        with self._lock:
            if code == READY:
                changed = m.state != READY
                _clean_slate(m)
                return changed
            if code != COOLING:
                if m.state == code or (code == BLOCKED and m.state == DISABLED):
                    return False
                m.state = code
                return True
            if deadline <= t or not (
                m.state == READY or (m.state == COOLING and deadline > m.until)
            ):
                return False
            m.until, m.probe_until, m.cause, m.state = deadline, 0, why, COOLING
            return True

    # ---- hot reload --------------------------------------------------------

    def copy_member(self, source: Self, source_index: int, index: int) -> None:
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
        src = source._members[source._check(source_index)]
        dst = self._members[self._check(index)]
        if src.same(dst):  # one record (itself, or one slot of a shared segment)
            return
        # one lock at a time, as in _health.pyx: a snapshot, then the write
        with source._lock:
            values = [getattr(src, name) for name in _COPIED]
            window = list(zip(src.epochs, src.attempts, src.failed))
            learned = src.limited & _LEARNED
            limits = [
                list(src.lim_interval),
                list(src.lim_capacity),
                list(src.lim_period),
                list(src.lim_tat),
            ]
        # as in _health.pyx: each bucket with reports lands where it starts;
        # of two in one slot the later epoch wins, equal epochs add up
        epochs, attempts, failed = [0] * BUCKETS, [0] * BUCKETS, [0] * BUCKETS
        for epoch, a, f in window:
            if a == 0:
                continue
            if source._bucket_ns != self._bucket_ns:
                epoch = epoch * source._bucket_ns // self._bucket_ns
            slot = epoch % BUCKETS
            if attempts[slot] and epochs[slot] == epoch:
                attempts[slot] += a
                failed[slot] += f
            elif attempts[slot] == 0 or epochs[slot] < epoch:
                epochs[slot], attempts[slot], failed[slot] = epoch, a, f
        with self._lock:
            for name, value in zip(_COPIED, values):
                setattr(dst, name, value)
            dst.epochs, dst.attempts, dst.failed = epochs, attempts, failed
            # as in _health.pyx: what was spent of every limit; the provider's
            # limits as learned, the configured ones as this table says
            interval, capacity, period, tat = limits
            for k in range(LIMITS):
                if k >= LIMIT_PROVIDER_REQUESTS:
                    dst.lim_interval[k] = interval[k]
                    dst.lim_capacity[k] = capacity[k]
                    dst.lim_period[k] = period[k]
                dst.lim_tat[k] = tat[k]
            dst.limited = (dst.limited & ~_LEARNED) | learned

    # ---- in-flight accounting ----------------------------------------------

    def acquire(self, index: int, cost: int = 0, now: Optional[float] = None) -> bool:
        i = self._check(index)
        return self._acquire(i, _args.cost(cost) if cost else 0, now_ns(now))

    def _acquire(self, i: int, cost: int, now: int) -> bool:
        m = self._members[i]
        with self._lock:
            if m.max_inflight and m.inflight >= m.max_inflight:
                return False
            if m.limited and not m.charge(cost, now):
                return False
            m.inflight += 1
            m.counted += 1
            m.pending_tokens += cost
            return True

    def release(self, index: int, cost: int = 0) -> None:
        i = self._check(index)
        if not self._release(i, _args.cost(cost) if cost else 0):
            raise ValueError(f"member {i} has nothing in flight: release() must follow acquire()")

    def _release(self, i: int, cost: int = 0) -> bool:
        m = self._members[i]
        with self._lock:
            # what this process counted is what it may release; a reclaim()
            # may have taken the total down already (_segment.pyx, "In flight")
            if m.counted <= 0:
                return False
            m.counted -= 1
            m.inflight = max(m.inflight - 1, 0)
            m.pending_tokens -= cost
            return True

    # ---- reading -----------------------------------------------------------

    def state(self, index: int, now: Optional[float] = None) -> State:
        m = self._members[self._check(index)]
        return _state_name(m, now_ns(now))

    def retry_after(self, now: Optional[float] = None, cost: int = 0) -> Optional[float]:
        wait, _ = self._wait(now_ns(now), _args.cost(cost) if cost else 0)
        return None if wait < 0 else wait / 1e9

    def outlook(self, now: Optional[float] = None, cost: int = 0) -> tuple[Optional[float], str]:
        wait, cause = self._wait(now_ns(now), _args.cost(cost) if cost else 0)
        if wait < 0:
            return (None, "out")
        if wait == 0:
            return (0.0, "available")
        why = _CAUSE_NAMES[cause if cause != CAUSE_NONE else FAILING]
        assert why is not None
        return (wait / 1e9, why)

    def _wait(self, t: int, cost: int) -> tuple[int, int]:
        """(0, _) if a member is available, (-1, _) if none will return by
        itself, else (ns until the soonest returns, why: its cause, or LIMITED)."""
        best, cause = -1, CAUSE_NONE
        with self._lock:
            for m in self._members:
                wait, why = 0, CAUSE_NONE
                if m.state == COOLING:
                    if t >= m.until:
                        if m.probe_until > t:
                            wait = m.probe_until - t
                    else:
                        wait = m.until - t
                    why = m.cause
                elif m.state != READY:
                    continue
                if m.limited:
                    limited, _ = m.limits_wait(cost, t)
                    if limited > wait:
                        wait, why = limited, LIMITED
                if wait <= 0:
                    return 0, CAUSE_NONE
                if best < 0 or wait < best:
                    best, cause = wait, why
        return best, cause

    def report_headroom(
        self,
        index: int,
        requests_remaining: Optional[float] = None,
        requests_limit: Optional[float] = None,
        requests_reset: Optional[float] = None,
        tokens_remaining: Optional[float] = None,
        tokens_limit: Optional[float] = None,
        tokens_reset: Optional[float] = None,
        cost: int = 0,
        now: Optional[float] = None,
        sent: Optional[float] = None,
    ) -> None:
        m = self._members[self._check(index)]
        requests = _args.headroom(requests_remaining, requests_limit, requests_reset, "requests")
        tokens = _args.headroom(tokens_remaining, tokens_limit, tokens_reset, "tokens")
        own = _args.cost(cost) if cost else 0
        t = now_ns(now)
        since = t if sent is None else now_ns(sent)
        with self._lock:
            if since < m.learned_sent:
                return  # an older call's answer, overtaken by a newer one's
            m.learned_sent = since
            m.learn(LIMIT_PROVIDER_REQUESTS, *requests, max(m.inflight - 1, 0), t)
            m.learn(LIMIT_PROVIDER_TOKENS, *tokens, max(m.pending_tokens - own, 0), t)

    def report_usage(
        self, index: int, estimated: int, actual: int, now: Optional[float] = None
    ) -> None:
        m = self._members[self._check(index)]
        delta = _args.cost(actual) - _args.cost(estimated)
        t = now_ns(now)
        if not delta or not m.limited:
            return
        with self._lock:
            for k in (LIMIT_TPM, LIMIT_DAILY_TOKENS):
                m.correct(k, delta, t)

    def snapshot(self, now: Optional[float] = None) -> list[MemberView]:
        t = now_ns(now)
        return [_member_view(m, t, self._bucket_ns) for m in self._members]

    def _check(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"member index must be an int, got {index!r}")
        if not 0 <= index < len(self._members):
            raise IndexError(f"member index {index} out of range for {len(self._members)} members")
        return index


def _inflight_caps(values: Union[int, Sequence[int], None], size: int) -> list[int]:
    if isinstance(values, dict):
        raise TypeError("max_inflight of a HealthTable is an int or a sequence, not a mapping")
    return _args.per_member(values, [str(i) for i in range(size)], "max_inflight", 0, 0)


def _make_ready(m: _Member) -> None:
    # Closing the circuit; restore() also clears the level and the window.
    m.state = READY
    m.until = 0
    m.probe_until = 0
    m.consecutive_failures = 0
    m.cause = CAUSE_NONE


def _clean_slate(m: _Member) -> None:
    # restore(): ready, and the level and the window cleared too
    _make_ready(m)
    m.level = 0
    m.epochs = [0] * BUCKETS
    m.attempts = [0] * BUCKETS
    m.failed = [0] * BUCKETS


def _state_name(m: _Member, now: int) -> State:
    if m.state == COOLING:
        return State.COOLDOWN if now < m.until else State.HALF_OPEN
    return _STATE_NAMES[m.state]


def _member_view(m: _Member, now: int, bucket_ns: int) -> MemberView:
    name = _state_name(m, now)
    attempts, failures = m.window(now, bucket_ns)
    return {
        "state": name,
        "cause": _CAUSE_NAMES[m.cause] if name in (State.COOLDOWN, State.HALF_OPEN) else None,
        "cooldown_remaining": (m.until - now) / 1e9 if name is State.COOLDOWN else 0.0,
        "probing": name is State.HALF_OPEN and m.probe_until > now,
        "backoff_level": m.level,
        "consecutive_failures": m.consecutive_failures,
        "picks": m.picks,
        "successes": m.successes,
        "failures": m.failures,
        "rate_limits": m.rate_limits,
        "window_attempts": attempts,
        "window_failures": failures,
        "inflight": m.inflight,
        "max_inflight": m.max_inflight or None,
        "latency_ewma": m.latency_ewma if m.latency_samples else None,
        "limits": m.limit_views(now),
    }


if TYPE_CHECKING:
    # mypy holds this twin to the compiled module's stub (_health.pyi), both
    # ways: see the end of _selector_py.py.
    from collections.abc import Callable

    from typing_extensions import ParamSpec

    from . import _health

    class _TwinAsStub(HealthTable, _health.HealthTable): ...

    class _StubAsTwin(_health.HealthTable, HealthTable): ...

    _P = ParamSpec("_P")

    def _arguments(cls: Callable[_P, object]) -> Callable[_P, None]: ...

    _stub_init = _arguments(_health.HealthTable)
    _stub_init = _arguments(HealthTable)
    _twin_init = _arguments(HealthTable)
    _twin_init = _arguments(_health.HealthTable)
