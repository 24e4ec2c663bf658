"""Pure-Python twin of ``byok_core._selector``: same surface, same sequences.

The compiled module is the one to read for the theory of operation; this twin
makes the same choices with the same arithmetic (the same splitmix64 stream,
the same hashes, the same tie-breaks), so that a seeded selector gives the
same sequence in either.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Optional, Union

from . import _args
from ._health_py import AVAILABLE, UNAVAILABLE, HealthTable, now_ns
from ._names import Cause, KeyView, PoolView, State, Strategy, Transition

if TYPE_CHECKING:
    from typing_extensions import Self

    from ._region import Segment

STRATEGIES = _args.STRATEGIES
(
    ROUND_ROBIN,
    WEIGHTED_ROUND_ROBIN,
    RANDOM,
    WEIGHTED_RANDOM,
    PRIORITY,
    LEAST_USED,
    LEAST_INFLIGHT,
    LATENCY,
    STICKY,
    HEADROOM,
) = range(len(STRATEGIES))

_MASK = (1 << 64) - 1


def mix64(z: int) -> int:
    """splitmix64's finalizer: a 64-bit bijection that scatters bits."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def hash64(data: bytes) -> int:
    """FNV-1a over the bytes, then mixed: stable across processes and runs."""
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & _MASK
    return mix64(h)


def unit(z: int) -> float:
    """A 64-bit value mapped into the open interval (0, 1)."""
    return ((z >> 12) + 0.5) * (1.0 / 4503599627370496.0)


def key_bytes(key: Union[str, bytes]) -> bytes:
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, bytes):
        return key
    raise TypeError(f"a sticky key must be str or bytes, got {type(key).__name__}")


class Selector:
    """Picks which member (upstream key) serves the next request (see
    ``_selector.pyx``, shared= and scope= included)."""

    __slots__ = (
        "_current",
        "_cursor",
        "_health",
        "_id_hashes",
        "_ids",
        "_index",
        "_lock",
        "_pool",
        "_rng",
        "_strategy",
        "_weights",
    )

    def __init__(
        self,
        ids: Iterable[str],
        strategy: str = "round_robin",
        weights: _args.PerMember = None,
        cooldown: float = 1.0,
        max_cooldown: float = 15.0,
        failure_threshold: int = 3,
        seed: Optional[int] = None,
        *,
        max_inflight: _args.PerMember = None,
        probe_timeout: float = 30.0,
        latency_alpha: float = 0.3,
        failure_rate: float = 0.5,
        failure_rate_window: float = 30.0,
        failure_rate_min_attempts: int = 10,
        shared: Optional[Segment] = None,
        scope: Optional[str] = None,
        rpm: _args.PerMember = None,
        tpm: _args.PerMember = None,
        daily_tokens: _args.PerMember = None,
        pool_rpm: int = 0,
        pool_tpm: int = 0,
        pool_max_inflight: int = 0,
    ) -> None:
        self._ids = _args.member_ids(ids)
        self._strategy = _args.strategy_code(strategy)
        self._weights = _args.per_member(weights, self._ids, "weights", 1, 1)
        caps = _args.per_member(max_inflight, self._ids, "max_inflight", 0, 0)
        limits = _args.per_member_limits(rpm, tpm, daily_tokens, self._ids)
        self._health = HealthTable(
            len(self._ids),
            cooldown=cooldown,
            max_cooldown=max_cooldown,
            failure_threshold=failure_threshold,
            probe_timeout=probe_timeout,
            latency_alpha=latency_alpha,
            max_inflight=caps,
            failure_rate=failure_rate,
            failure_rate_window=failure_rate_window,
            failure_rate_min_attempts=failure_rate_min_attempts,
            shared=shared,
            scope=scope,
            ids=self._ids if shared is not None else None,
            rpm=[lim[0] for lim in limits],
            tpm=[lim[1] for lim in limits],
            daily_tokens=[lim[2] for lim in limits],
        )
        pool = _args.pool_limits(pool_rpm, pool_tpm, pool_max_inflight)
        self._pool: Optional[HealthTable] = None
        if pool is not None:
            self._pool = HealthTable(
                1,
                max_inflight=[pool[2]],
                rpm=[pool[0]],
                tpm=[pool[1]],
                shared=shared,
                scope=scope,
                ids=(_args.POOL_ID,) if shared is not None else None,
            )
        self._index = {member: i for i, member in enumerate(self._ids)}
        self._current = [0] * len(self._ids)
        self._cursor = 0
        self._rng = _args.seed64(seed)
        self._id_hashes = [hash64(member.encode("utf-8")) for member in self._ids]
        self._lock = threading.Lock()

    # ---- picking -----------------------------------------------------------

    def pick(
        self, key: Union[str, bytes, None] = None, now: Optional[float] = None, cost: int = 0
    ) -> Optional[str]:
        t = now_ns(now)
        units = _args.cost(cost) if cost else 0
        strategy = self._strategy
        if strategy == STICKY:
            if key is None:
                strategy = WEIGHTED_ROUND_ROBIN
            else:
                key = key_bytes(key)
        health, pool = self._health, self._pool
        for _ in range(len(self._ids) + 1):
            if pool is not None and not pool._open(t, units):
                return None
            i, kind = self._choose(strategy, key, t, units)
            if i < 0:
                return None
            if kind == AVAILABLE or health._claim_probe(i, t):
                if pool is not None and not pool._take(0, units, t):
                    continue  # another caller took what was left: choose again
                if not health._take(i, units, t):
                    if pool is not None:
                        pool._refund(0, units)
                    continue
                health._count_pick(i)
                return self._ids[i]
        return None

    def _choose(self, strategy: int, key: Any, t: int, cost: int) -> tuple[int, int]:
        avail = [self._health._availability(i, t, cost) for i in range(len(self._ids))]
        if strategy == ROUND_ROBIN:
            return self._rotate(avail)
        if strategy == PRIORITY:
            return next(((i, a) for i, a in enumerate(avail) if a), (-1, UNAVAILABLE))
        if strategy == WEIGHTED_ROUND_ROBIN:
            return self._smooth_step(avail)
        if strategy in (RANDOM, WEIGHTED_RANDOM):
            return self._draw(strategy, avail)
        ranks = self._ranks(strategy, key, avail, t)
        if not ranks:
            return -1, UNAVAILABLE
        i = min(ranks)[2]
        return i, avail[i]

    def _rotate(self, avail: list[int]) -> tuple[int, int]:
        n = len(avail)
        with self._lock:
            start = self._cursor
            for k in range(n):
                i = (start + k) % n
                if avail[i]:
                    self._cursor = (i + 1) % n
                    return i, avail[i]
        return -1, UNAVAILABLE

    def _smooth_step(self, avail: list[int]) -> tuple[int, int]:
        # nginx's smooth weighted round robin over the members available now
        best, total = -1, 0
        with self._lock:
            current = self._current
            for i, a in enumerate(avail):
                if a:
                    current[i] += self._weights[i]
                    total += self._weights[i]
                    if best < 0 or current[i] > current[best]:
                        best = i
            if best < 0:
                return -1, UNAVAILABLE
            current[best] -= total
        return best, avail[best]

    def _draw(self, strategy: int, avail: list[int]) -> tuple[int, int]:
        eligible = [i for i, a in enumerate(avail) if a]
        if not eligible:
            return -1, UNAVAILABLE
        with self._lock:
            z = self._next_random()
        if strategy == RANDOM:
            i = eligible[z % len(eligible)]
            return i, avail[i]
        r = z % sum(self._weights[i] for i in eligible)
        for i in eligible:
            r -= self._weights[i]
            if r < 0:
                return i, avail[i]
        raise AssertionError("unreachable: r < total weight")

    def _ranks(
        self, strategy: int, key: Any, avail: list[int], t: int
    ) -> list[tuple[float, int, int]]:
        """(primary, secondary, index) per available member: the lowest wins."""
        table = self._health
        health = table._members
        key_hash = hash64(key) if strategy == STICKY else 0
        ranks = []
        for i, a in enumerate(avail):
            if not a:
                continue
            m = health[i]
            if strategy == LEAST_USED:
                ranks.append((float(m.picks), 0, i))
            elif strategy == LEAST_INFLIGHT:
                ranks.append((float(m.inflight), m.picks, i))
            elif strategy == LATENCY:
                ewma = m.latency_ewma if m.latency_samples else -1.0
                ranks.append((ewma, m.picks, i))
            elif strategy == HEADROOM:
                ranks.append((-table._headroom_share(i, t), m.picks, i))
            else:  # sticky: weighted rendezvous hashing
                u = unit(mix64(key_hash ^ self._id_hashes[i]))
                ranks.append((-math.log(u) / self._weights[i], 0, i))
        return ranks

    def _next_random(self) -> int:
        # splitmix64; the caller holds the lock
        self._rng = (self._rng + 0x9E3779B97F4A7C15) & _MASK
        return mix64(self._rng)

    def order(
        self, key: Union[str, bytes, None] = None, now: Optional[float] = None, cost: int = 0
    ) -> list[str]:
        t = now_ns(now)
        units = _args.cost(cost) if cost else 0
        strategy = self._strategy
        if strategy == STICKY:
            if key is None:
                strategy = WEIGHTED_ROUND_ROBIN
            else:
                key = key_bytes(key)
        health = self._health
        if not self._ids or (self._pool is not None and not self._pool._open(t, units)):
            return []
        avail = [health._availability(i, t, units) for i in range(len(self._ids))]
        ranked = self._ordered(strategy, key, avail, t)
        # A half-open member is only ever offered first, as the probe of the
        # one caller that claims it; elsewhere in the list it would be claimed
        # and then, more often than not, never tried.
        while ranked:
            head = ranked[0]
            if avail[head] == AVAILABLE or health._claim_probe(head, t):
                health._count_pick(head)
                rest = [i for i in ranked[1:] if avail[i] == AVAILABLE]
                return [self._ids[i] for i in [head, *rest]]
            ranked.pop(0)
        return []

    def _ordered(self, strategy: int, key: Any, avail: list[int], t: int) -> list[int]:
        eligible = [i for i, a in enumerate(avail) if a]
        if not eligible or strategy == PRIORITY:
            return eligible
        if strategy == ROUND_ROBIN:
            head, _ = self._rotate(avail)
            n = len(avail)
            return sorted(eligible, key=lambda i: (i - head) % n)
        if strategy == WEIGHTED_ROUND_ROBIN:
            head, _ = self._smooth_step(avail)
            with self._lock:
                nxt = [(-(self._current[i] + self._weights[i]), i) for i in eligible if i != head]
            return [head] + [i for _, i in sorted(nxt)]
        if strategy == RANDOM:
            with self._lock:  # Fisher-Yates
                for k in range(len(eligible) - 1, 0, -1):
                    j = self._next_random() % (k + 1)
                    eligible[k], eligible[j] = eligible[j], eligible[k]
            return eligible
        if strategy == WEIGHTED_RANDOM:
            # Efraimidis-Spirakis: sorting by -log(u)/w samples without replacement
            with self._lock:
                keys = [
                    (-math.log(unit(self._next_random())) / self._weights[i], i) for i in eligible
                ]
            return [i for _, i in sorted(keys)]
        return [i for _, _, i in sorted(self._ranks(strategy, key, avail, t))]

    # ---- outcomes, operator actions, accounting ----------------------------

    def report_success(
        self, id: str, latency: Optional[float] = None, now: Optional[float] = None
    ) -> Optional[Transition]:
        return self._health.report_success(self._member(id), latency, now)

    def report_rate_limited(
        self, id: str, retry_after: Optional[float] = None, now: Optional[float] = None
    ) -> Optional[Transition]:
        return self._health.report_rate_limited(self._member(id), retry_after, now)

    def report_error(self, id: str, now: Optional[float] = None) -> Optional[Transition]:
        return self._health.report_error(self._member(id), now)

    def report_abandoned(self, id: str, now: Optional[float] = None) -> None:
        self._health.report_abandoned(self._member(id), now)

    def block(self, id: str) -> None:
        self._health.block(self._member(id))

    def disable(self, id: str) -> None:
        self._health.disable(self._member(id))

    def restore(self, id: str) -> None:
        self._health.restore(self._member(id))

    def impose(
        self,
        id: str,
        state: str,
        until: Optional[float] = None,
        cause: Optional[str] = None,
        now: Optional[float] = None,
    ) -> bool:
        return self._health.impose(self._member(id), state, until, cause, now)

    def acquire(self, id: str, cost: int = 0, now: Optional[float] = None) -> bool:
        i = self._member(id)
        units = _args.cost(cost) if cost else 0
        t = now_ns(now)
        pool = self._pool
        if pool is None:
            return self._health._acquire(i, units, t)
        if not pool._acquire(0, units, t):
            return False
        if self._health._acquire(i, units, t):
            return True
        pool._refund(0, units)
        pool._release(0, units)
        return False

    def release(self, id: str, cost: int = 0) -> None:
        units = _args.cost(cost) if cost else 0
        if not self._health._release(self._member(id), units):
            raise ValueError(
                f"member {id!r} has nothing in flight: release() must follow acquire()"
            )
        if self._pool is not None:
            self._pool._release(0, units)

    def report_headroom(
        self,
        id: str,
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
        self._health.report_headroom(
            self._member(id),
            requests_remaining,
            requests_limit,
            requests_reset,
            tokens_remaining,
            tokens_limit,
            tokens_reset,
            cost,
            now,
            sent,
        )

    def report_usage(
        self, id: str, estimated: int, actual: int, now: Optional[float] = None
    ) -> None:
        self._health.report_usage(self._member(id), estimated, actual, now)
        if self._pool is not None:
            self._pool.report_usage(0, estimated, actual, now)

    def limits_wait(
        self, id: Optional[str] = None, cost: int = 0, now: Optional[float] = None
    ) -> tuple[float, Optional[str]]:
        units = _args.cost(cost) if cost else 0
        t = now_ns(now)
        if id is None:
            if self._pool is None:
                return (0.0, None)
            table, i = self._pool, 0
        else:
            table, i = self._health, self._member(id)
        wait, which = table._limits_wait(i, units, t)
        if wait <= 0:
            return (0.0, None)
        return (wait / 1e9, _args.LIMIT_NAMES[which])

    # ---- hot reload --------------------------------------------------------

    def inherit(self, other: Self) -> list[str]:
        """Carry the health of every member id also in ``other`` over to this
        selector (see ``_selector.pyx``); returns the ids carried over, in
        this selector's order."""
        if not isinstance(other, Selector):
            raise TypeError(
                f"inherit() takes a {type(self).__module__}.Selector, got "
                f"{type(other).__module__}.{type(other).__qualname__}"
                " (the compiled engine and its pure-Python twin do not mix)"
            )
        carried = []
        for i, member in enumerate(self._ids):
            j = other._index.get(member)
            if j is not None:
                self._health.copy_member(other._health, j, i)
                carried.append(member)
        return carried

    # ---- reading -----------------------------------------------------------

    def state(self, id: str, now: Optional[float] = None) -> State:
        return self._health.state(self._member(id), now)

    def retry_after(self, now: Optional[float] = None, cost: int = 0) -> Optional[float]:
        wait, _ = self.outlook(now, cost)
        return wait

    def outlook(self, now: Optional[float] = None, cost: int = 0) -> tuple[Optional[float], str]:
        outlook = self._health.outlook(now, cost)
        if self._pool is None or outlook[0] is None:
            return outlook
        pool_wait, _ = self.limits_wait(None, cost, now)
        if pool_wait > outlook[0]:
            return (pool_wait, Cause.LIMITED)
        return outlook

    def pool_snapshot(self, now: Optional[float] = None) -> Optional[PoolView]:
        if self._pool is None:
            return None
        view = self._pool.snapshot(now)[0]
        return {
            "inflight": view["inflight"],
            "max_inflight": view["max_inflight"],
            "limits": view["limits"],
        }

    def snapshot(self, now: Optional[float] = None) -> list[KeyView]:
        views = self._health.snapshot(now)
        return [
            {"id": member, "weight": weight, **view}
            for member, weight, view in zip(self._ids, self._weights, views)
        ]

    @property
    def ids(self) -> tuple[str, ...]:
        return self._ids

    @property
    def strategy(self) -> Strategy:
        return STRATEGIES[self._strategy]

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, id: object) -> bool:
        return id in self._index

    def __repr__(self) -> str:
        return f"<Selector {self.strategy} over {len(self._ids)} members>"

    def _member(self, id: str) -> int:
        try:
            return self._index[id]
        except KeyError:
            raise KeyError(f"no member {id!r} in this selector") from None


if TYPE_CHECKING:
    # mypy holds this twin to the compiled module's stub (_selector.pyi), both
    # ways: a class with both as bases must find every method and property
    # alike, and the constructors (which that check leaves out) must take the
    # same arguments.
    from collections.abc import Callable

    from typing_extensions import ParamSpec

    from . import _selector

    class _TwinAsStub(Selector, _selector.Selector): ...

    class _StubAsTwin(_selector.Selector, Selector): ...

    _P = ParamSpec("_P")

    def _arguments(cls: Callable[_P, object]) -> Callable[_P, None]: ...

    _stub_init = _arguments(_selector.Selector)
    _stub_init = _arguments(Selector)
    _twin_init = _arguments(Selector)
    _twin_init = _arguments(_selector.Selector)
