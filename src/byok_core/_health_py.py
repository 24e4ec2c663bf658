"""Pure-Python twin of ``byok_core._health``: same surface, same results.

Read the theory of operation at the top of ``_health.pyx``; this twin follows
it step for step, with one lock per table where the compiled module uses
atomics and a spinlock per member.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, Optional, Union

from . import _args

READY, COOLING, BLOCKED, DISABLED = range(4)
UNAVAILABLE, AVAILABLE, PROBE = range(3)
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
)
# What copy_member() carries over: all but the in-flight count and its cap.
_COPIED = tuple(name for name in _FIELDS if name not in ("inflight", "max_inflight"))


class _Member:
    __slots__ = _FIELDS

    def __init__(self, max_inflight: int) -> None:
        for name in _FIELDS:
            setattr(self, name, 0)
        self.latency_ewma = 0.0
        self.max_inflight = max_inflight


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
        "_cooldown_ns",
        "_failure_threshold",
        "_latency_alpha",
        "_lock",
        "_max_cooldown_ns",
        "_members",
        "_probe_timeout_ns",
    )

    def __init__(
        self,
        size: int,
        *,
        cooldown: float = 1.0,
        max_cooldown: float = 300.0,
        failure_threshold: int = 3,
        probe_timeout: float = 30.0,
        latency_alpha: float = 0.3,
        max_inflight: Union[int, Sequence[int], None] = None,
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
        caps = _inflight_caps(max_inflight, size)
        self._members = [_Member(cap) for cap in caps]
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._members)

    # ---- what the selector asks on every pick ------------------------------

    def _availability(self, i: int, now: int) -> int:
        m = self._members[i]
        if m.max_inflight and m.inflight >= m.max_inflight:
            return UNAVAILABLE
        if m.state == READY:
            return AVAILABLE
        if m.state == COOLING and now >= m.until and m.probe_until <= now:
            return PROBE
        return UNAVAILABLE

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
    ) -> None:
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
            if m.state == READY:
                m.consecutive_failures = 0
                m.level = 0
            elif m.state == COOLING and t >= m.until:
                _make_ready(m)

    def report_rate_limited(
        self, index: int, retry_after: Optional[float] = None, now: Optional[float] = None
    ) -> None:
        m = self._members[self._check(index)]
        seconds = optional_seconds(retry_after, "retry_after")
        delay = int(seconds * 1e9) if seconds >= 0 else -1
        t = now_ns(now)
        with self._lock:
            m.failures += 1
            m.rate_limits += 1
            m.consecutive_failures += 1
            if m.state in (READY, COOLING):
                self._cool(m, t, delay)

    def report_error(self, index: int, now: Optional[float] = None) -> None:
        m = self._members[self._check(index)]
        t = now_ns(now)
        with self._lock:
            m.failures += 1
            m.consecutive_failures += 1
            if m.state == COOLING or (
                m.state == READY and m.consecutive_failures >= self._failure_threshold
            ):
                self._cool(m, t, -1)

    def _cool(self, m: _Member, now: int, delay: int) -> None:
        # From ready or half-open the backoff escalates; a failure that lands
        # while the member already cools (a request sent before it cooled)
        # only extends the deadline at the current level.
        escalate = m.state == READY or now >= m.until
        level = m.level if escalate else max(m.level - 1, 0)
        if delay < 0:
            delay = self._backoff(level)
        until = now + delay
        if m.state == COOLING and m.until > until:
            until = m.until
        m.until = until
        m.probe_until = 0
        m.state = COOLING
        if escalate:
            m.level += 1

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
            _make_ready(m)

    # ---- hot reload --------------------------------------------------------

    def copy_member(self, source: HealthTable, source_index: int, index: int) -> None:
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
        src = source._members[source._check(source_index)]
        dst = self._members[self._check(index)]
        # one lock at a time, as in _health.pyx: a snapshot, then the write
        with source._lock:
            values = [getattr(src, name) for name in _COPIED]
        with self._lock:
            for name, value in zip(_COPIED, values):
                setattr(dst, name, value)

    # ---- in-flight accounting ----------------------------------------------

    def acquire(self, index: int) -> bool:
        m = self._members[self._check(index)]
        with self._lock:
            if m.max_inflight and m.inflight >= m.max_inflight:
                return False
            m.inflight += 1
            return True

    def release(self, index: int) -> None:
        i = self._check(index)
        if not self._release(i):
            raise ValueError(f"member {i} has nothing in flight: release() must follow acquire()")

    def _release(self, i: int) -> bool:
        m = self._members[i]
        with self._lock:
            if m.inflight <= 0:
                return False
            m.inflight -= 1
            return True

    # ---- reading -----------------------------------------------------------

    def state(self, index: int, now: Optional[float] = None) -> str:
        m = self._members[self._check(index)]
        return _state_name(m, now_ns(now))

    def retry_after(self, now: Optional[float] = None) -> Optional[float]:
        t = now_ns(now)
        best: Optional[int] = None
        for m in self._members:
            if m.state == READY:
                return 0.0
            if m.state != COOLING:
                continue
            if t >= m.until:
                if m.probe_until <= t:
                    return 0.0
                wait = m.probe_until - t
            else:
                wait = m.until - t
            best = wait if best is None else min(best, wait)
        return None if best is None else best / 1e9

    def snapshot(self, now: Optional[float] = None) -> list[dict[str, Any]]:
        t = now_ns(now)
        return [_member_view(m, t) for m in self._members]

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
    m.state = READY
    m.until = 0
    m.probe_until = 0
    m.level = 0
    m.consecutive_failures = 0


def _state_name(m: _Member, now: int) -> str:
    if m.state == COOLING:
        return "cooldown" if now < m.until else "half_open"
    return ("ready", "", "blocked", "disabled")[m.state]


def _member_view(m: _Member, now: int) -> dict[str, Any]:
    name = _state_name(m, now)
    return {
        "state": name,
        "cooldown_remaining": (m.until - now) / 1e9 if name == "cooldown" else 0.0,
        "probing": name == "half_open" and m.probe_until > now,
        "backoff_level": m.level,
        "consecutive_failures": m.consecutive_failures,
        "picks": m.picks,
        "successes": m.successes,
        "failures": m.failures,
        "rate_limits": m.rate_limits,
        "inflight": m.inflight,
        "max_inflight": m.max_inflight or None,
        "latency_ewma": m.latency_ewma if m.latency_samples else None,
    }
