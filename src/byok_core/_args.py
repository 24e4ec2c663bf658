"""Argument checks shared by the compiled modules and their pure-Python twins.

Only construction-time checks live here: they run once per selector, so one
Python implementation serves both twins and their error messages are the same
word for word.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Union, cast

from ._names import Cause, State, Strategy, Transition

# The engine's words, in code order: the compiled modules and the twins map
# their int codes to these members through tuples (see _names.py).
STRATEGIES: tuple[Strategy, ...] = tuple(Strategy)

STATES: tuple[State, ...] = tuple(State)

# What a report_*() call changed, as it returns it (None: nothing worth telling).
TRANSITIONS: tuple[Transition, ...] = tuple(Transition)

# Why a cooling member cools, as snapshot()["cause"] and outlook() say it.
CAUSES: tuple[Cause, ...] = tuple(Cause)

WINDOW_BUCKETS = 10  # the failure-rate window is this many buckets of window/10

MAX_WEIGHT = 1 << 32  # keeps a sum over millions of members inside int64
NS_PER_S = 1_000_000_000
# Times are int64 nanoseconds: a `now` up to MAX_NOW plus a delay up to
# MAX_SECONDS stays inside int64 (9.2e18 ns).
MAX_SECONDS = 1e8  # about three years: any cooldown, timeout or Retry-After
MAX_NOW = 9e9  # seconds of time.monotonic(): about 285 years of uptime
MAX_COUNT = 1 << 62  # counts (failure_threshold, ...) live in an int64 word

# A member's limits by their index in member_t.limits (_health.pxd): three
# configured ones, with the period their capacity refills over, then the two
# the provider's answers tell (their capacity and refill are learned).
LIMIT_NAMES = ("rpm", "tpm", "daily_tokens", "provider_requests", "provider_tokens")
CONFIGURED_PERIODS_NS = (60 * NS_PER_S, 60 * NS_PER_S, 86400 * NS_PER_S)
MAX_LIMIT = 1 << 40  # a capacity or a cost: its ns products stay inside int64 arithmetic

PerMember = Union[int, Sequence[int], Mapping[str, int], None]


def strategy_code(strategy: object) -> int:
    if strategy not in STRATEGIES:
        valid = ", ".join(STRATEGIES)
        raise ValueError(f"unknown strategy {strategy!r}; choose one of: {valid}")
    return STRATEGIES.index(strategy)


def member_ids(ids: Iterable[str]) -> tuple[str, ...]:
    if isinstance(ids, (str, bytes)):
        raise TypeError("ids must be a list of strings, not a single string")
    result = tuple(ids)
    seen: set[str] = set()
    for member in result:
        if not isinstance(member, str):
            raise TypeError(f"member ids must be str, got {type(member).__name__}: {member!r}")
        if member in seen:
            raise ValueError(f"duplicate member id {member!r}: each id must appear once")
        seen.add(member)
    return result


def per_member(
    values: PerMember,
    ids: Sequence[str],
    name: str,
    minimum: int,
    default: int,
    maximum: int = MAX_WEIGHT,
) -> list[int]:
    """Spread a per-member option (weights, max_inflight) over the ids.

    Accepts None (the default for all), one int for all, a sequence aligned
    with the ids, or a mapping by id where missing ids take the default.
    """
    if values is None:
        return [default] * len(ids)
    if isinstance(values, int) and not isinstance(values, bool):
        return [_check_int(values, name, "all members", minimum, maximum)] * len(ids)
    if isinstance(values, Mapping):
        known = set(ids)
        unknown = [k for k in values if k not in known]
        if unknown:
            raise KeyError(f"{name} names unknown member ids: {', '.join(map(repr, unknown))}")
        return [_check_int(values.get(i, default), name, repr(i), minimum, maximum) for i in ids]
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of ints or a mapping of id to int")
    # a bool is all that is left besides sequences: list() refuses it (TypeError)
    values = list(cast(Sequence[int], values))
    if len(values) != len(ids):
        raise ValueError(f"{name} has {len(values)} entries but there are {len(ids)} members")
    return [_check_int(v, name, repr(i), minimum, maximum) for v, i in zip(values, ids)]


def per_member_limits(
    rpm: PerMember, tpm: PerMember, daily_tokens: PerMember, ids: Sequence[str]
) -> list[tuple[int, int, int]]:
    """Each member's configured (rpm, tpm, daily_tokens); 0 is no limit."""
    spread = [
        per_member(values, ids, name, 0, 0, MAX_LIMIT)
        for values, name in ((rpm, "rpm"), (tpm, "tpm"), (daily_tokens, "daily_tokens"))
    ]
    return list(zip(*spread)) if ids else []


# The pool's own record in a shared segment: an id no caller's member has
# (a member id is any str, but a NUL in a key label is not a thing).
POOL_ID = "\x00pool"


def pool_limits(rpm: object, tpm: object, max_inflight: object) -> tuple[int, int, int] | None:
    """A Selector's pool_rpm, pool_tpm and pool_max_inflight; None if all are 0."""
    values = []
    for value, name in ((rpm, "pool_rpm"), (tpm, "pool_tpm"), (max_inflight, "pool_max_inflight")):
        values.append(_check_int(value, name, "the pool", 0, MAX_LIMIT))
    return (values[0], values[1], values[2]) if any(values) else None


def cost(value: object) -> int:
    """A request's estimated tokens, as acquire(), pick() and the rest take it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"cost must be an integer number of tokens, got {value!r}")
    if not 0 <= value <= MAX_LIMIT:
        raise ValueError(f"cost must be from 0 to {MAX_LIMIT} tokens, got {value}")
    return value


def headroom(remaining: object, limit: object, reset: object, name: str) -> tuple[int, int, int]:
    """report_headroom()'s figures for one limit as (remaining, limit, reset
    ns), -1 for what was not given.  Like every report, it never raises for a
    number out of range: counts are clamped into [0, MAX_LIMIT], a reset into
    [0, MAX_SECONDS], and NaN counts as not given; only a non-number raises."""
    counts = []
    for value, what in ((remaining, "remaining"), (limit, "limit")):
        if value is None:
            counts.append(-1)
            continue
        if isinstance(value, (str, bytes, bool)) or not isinstance(value, (int, float)):
            raise TypeError(f"{name}_{what} must be a number, got {value!r}")
        counts.append(-1 if value != value else int(min(max(value, 0), MAX_LIMIT)))
    if reset is None:
        return counts[0], counts[1], -1
    if isinstance(reset, (str, bytes, bool)) or not isinstance(reset, (int, float)):
        raise TypeError(f"{name}_reset must be a number of seconds, got {reset!r}")
    if reset != reset:
        return counts[0], counts[1], -1
    return counts[0], counts[1], int(min(max(reset, 0.0), MAX_SECONDS) * NS_PER_S)


def _check_int(value: object, name: str, where: str, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} for {where} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} for {where} must be at least {minimum}, got {value}")
    if value > maximum:
        raise ValueError(f"{name} for {where} must be at most {maximum}, got {value}")
    return value


def seconds(value: object, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    value = float(value)
    if not (0 <= value <= MAX_SECONDS) or (value == 0 and not allow_zero):
        span = f"{'from' if allow_zero else 'above'} 0 to {MAX_SECONDS:g}"
        raise ValueError(f"{name} must be a number of seconds {span}; got {value}")
    return value


def duration_ns(value: object, name: str) -> int:
    ns = int(seconds(value, name) * NS_PER_S)
    if ns == 0:
        raise ValueError(f"{name} must be at least one nanosecond, got {value}")
    return ns


def positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer of at least 1, got {value!r}")
    if value > MAX_COUNT:
        raise ValueError(f"{name} must be an integer from 1 to 2**62, got {value!r}")
    return value


def share(value: object, name: str) -> float:
    """A share in [0, 1] (failure_rate: 0 turns its rule off)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number from 0 to 1, got {value!r}")
    return float(value)


def window_bucket_ns(value: object, name: str) -> int:
    """The width in ns of one of the WINDOW_BUCKETS buckets of a window."""
    bucket = duration_ns(value, name) // WINDOW_BUCKETS
    if bucket == 0:
        raise ValueError(
            f"{name} must be at least {WINDOW_BUCKETS} nanoseconds (one per bucket), got {value}"
        )
    return bucket


def fraction(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")
    return float(value)


def seed64(seed: object) -> int:
    """A 64-bit RNG seed; None draws one from the OS."""
    if seed is None:
        return int.from_bytes(os.urandom(8), "little")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    return seed & 0xFFFF_FFFF_FFFF_FFFF


def bad_now(now: object) -> ValueError:
    return ValueError(
        f"now must be monotonic seconds (time.monotonic()) from 0 to {MAX_NOW:g}; got {now!r}"
    )


# impose(): the states a member can be given from elsewhere, by the state codes
# of _health.pxd (READY, COOLING, BLOCKED, DISABLED); half-open is never stored.
IMPOSED_STATES = {State.READY: 0, State.COOLDOWN: 1, State.BLOCKED: 2, State.DISABLED: 3}
IMPOSED_CAUSES = {Cause.RATE_LIMITED: 1, Cause.FAILING: 2}  # the cause codes of _health.pxd
MAX_UNTIL = MAX_NOW + MAX_SECONDS  # the latest deadline a `now` plus a delay can reach


def imposed(state: object, until: object, cause: object) -> tuple[int, int, int]:
    """impose()'s arguments as (state code, deadline in ns, cause code).

    The deadline and the cause belong to a cooldown only (0 and 0 otherwise).
    """
    if not isinstance(state, str) or state not in IMPOSED_STATES:
        valid = ", ".join(IMPOSED_STATES)
        raise ValueError(f"cannot impose state {state!r}; impose one of: {valid}")
    code = IMPOSED_STATES[State(state)]
    if code != IMPOSED_STATES[State.COOLDOWN]:
        if until is not None or cause is not None:
            raise ValueError(f"until and cause go with a cooldown only, not with {state!r}")
        return code, 0, 0
    if isinstance(until, bool) or not isinstance(until, (int, float)):
        raise ValueError(
            f"a cooldown needs until, its deadline in the caller's `now` seconds; got {until!r}"
        )
    if not 0 <= until <= MAX_UNTIL:  # NaN fails this too
        raise ValueError(
            f"until must be monotonic seconds (time.monotonic()) from 0 to {MAX_UNTIL:g}; "
            f"got {until!r}"
        )
    if not isinstance(cause, str) or cause not in IMPOSED_CAUSES:
        valid = ", ".join(IMPOSED_CAUSES)
        raise ValueError(f"a cooldown needs its cause, one of: {valid}; got {cause!r}")
    return code, int(until * NS_PER_S), IMPOSED_CAUSES[Cause(cause)]
