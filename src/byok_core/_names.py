"""The engine's words: states, causes, transitions and strategies as str enums,
and the rows that snapshot() returns.

Each member is a str: ``State.COOLDOWN == "cooldown"``, with the same hash,
and ``str()``, f-strings, json and msgspec give the bare value, so code that
compares with plain strings keeps working.  The compiled modules and their
twins return these very members, kept in module-level tuples by code: nothing
is built per call.
"""

from __future__ import annotations

import enum
from typing import Optional, TypedDict


class StrEnum(str, enum.Enum):
    """``enum.StrEnum`` (Python 3.11), defined here for 3.10 as well: a member
    is a str, and str() and format() give its value."""

    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, format_spec: str) -> str:
        return str.__format__(self, format_spec)


class State(StrEnum):
    """A member's state, as state() and snapshot()["state"] say it."""

    READY = "ready"
    COOLDOWN = "cooldown"  # cooling: out until its deadline
    HALF_OPEN = "half_open"  # cooling, deadline passed: one probe may try it
    BLOCKED = "blocked"  # refused (401/403): out until restore()
    DISABLED = "disabled"  # taken out by an operator: out until restore()


class Cause(StrEnum):
    """Why a cooling member cools: snapshot()["cause"], and outlook()'s reason."""

    RATE_LIMITED = "rate_limited"  # a 429
    FAILING = "failing"  # errors
    # outlook() only: ready, but over a limit (configured, or the provider's
    # headroom) until then; never the cause of a cooldown
    LIMITED = "limited"


class Transition(StrEnum):
    """What a report_*() call changed (it returns None when nothing changed)."""

    READY = "ready"  # a half-open probe succeeded: the circuit closed
    COOLED = "cooled"  # a 429 sent a ready or half-open member cooling
    OPENED = "opened"  # failure_threshold errors in a row
    OPENED_BY_RATE = "opened_by_rate"  # the window's failure share reached failure_rate
    PROBE_FAILED = "probe_failed"  # an error on a half-open member


class Strategy(StrEnum):
    """How a Selector chooses (see _selector.pyx)."""

    ROUND_ROBIN = "round_robin"
    WEIGHTED_ROUND_ROBIN = "weighted_round_robin"
    RANDOM = "random"
    WEIGHTED_RANDOM = "weighted_random"
    PRIORITY = "priority"
    LEAST_USED = "least_used"
    LEAST_INFLIGHT = "least_inflight"
    LATENCY = "latency"
    STICKY = "sticky"
    HEADROOM = "headroom"


class LimitView(TypedDict):
    """One limit in force on a member, as snapshot()["limits"][name] shows it."""

    limit: int  # what the bucket holds when full: requests or tokens
    remaining: int  # what it holds now (negative: a usage correction overdrew it)
    full_in: float  # seconds until it is full again


class MemberView(TypedDict):
    """One row of HealthTable.snapshot(): a member's health."""

    state: State
    cause: Optional[Cause]  # while cooling (cooldown or half_open), else None
    cooldown_remaining: float  # seconds; 0.0 unless in cooldown
    probing: bool  # half-open and its probe is claimed
    backoff_level: int
    consecutive_failures: int
    picks: int
    successes: int
    failures: int
    rate_limits: int
    window_attempts: int  # the failure-rate window's attempts
    window_failures: int  # ... and failures
    inflight: int
    max_inflight: Optional[int]  # None: no cap
    latency_ewma: Optional[float]  # seconds; None before the first sample
    # the limits in force, by name: rpm, tpm, daily_tokens (configured),
    # provider_requests, provider_tokens (learned from the provider's answers)
    limits: dict[str, LimitView]


class PoolView(TypedDict):
    """Selector.pool_snapshot(): the pool's own record, when it has limits."""

    inflight: int
    max_inflight: Optional[int]
    limits: dict[str, LimitView]


class KeyView(MemberView):
    """One row of Selector.snapshot(): a member's id and weight, and its health."""

    id: str
    weight: int
