from collections.abc import Iterable, Mapping, Sequence
from typing import Optional, Union

from typing_extensions import Self

# from byok_core, not re-exported: the compiled module holds none of them
from ._names import KeyView, PoolView, State, Strategy, Transition
from ._region import Segment

STRATEGIES: tuple[Strategy, ...]

_PerMember = Union[int, Sequence[int], Mapping[str, int], None]

class Selector:
    """Picks which member (upstream key) serves the next request."""

    def __init__(
        self,
        ids: Iterable[str],
        strategy: str = "round_robin",
        weights: _PerMember = None,
        cooldown: float = 1.0,
        max_cooldown: float = 15.0,
        failure_threshold: int = 3,
        seed: Optional[int] = None,
        *,
        max_inflight: _PerMember = None,
        probe_timeout: float = 30.0,
        latency_alpha: float = 0.3,
        failure_rate: float = 0.5,
        failure_rate_window: float = 30.0,
        failure_rate_min_attempts: int = 10,
        shared: Optional[Segment] = None,
        scope: Optional[str] = None,
        rpm: _PerMember = None,
        tpm: _PerMember = None,
        daily_tokens: _PerMember = None,
        pool_rpm: int = 0,
        pool_tpm: int = 0,
        pool_max_inflight: int = 0,
    ) -> None: ...
    def pick(
        self, key: Union[str, bytes, None] = None, now: Optional[float] = None, cost: int = 0
    ) -> Optional[str]: ...
    def order(
        self, key: Union[str, bytes, None] = None, now: Optional[float] = None, cost: int = 0
    ) -> list[str]: ...
    def report_success(
        self, id: str, latency: Optional[float] = None, now: Optional[float] = None
    ) -> Optional[Transition]: ...
    def report_rate_limited(
        self, id: str, retry_after: Optional[float] = None, now: Optional[float] = None
    ) -> Optional[Transition]: ...
    def report_error(self, id: str, now: Optional[float] = None) -> Optional[Transition]: ...
    def report_abandoned(self, id: str, now: Optional[float] = None) -> None: ...
    def block(self, id: str) -> None: ...
    def disable(self, id: str) -> None: ...
    def restore(self, id: str) -> None: ...
    def impose(
        self,
        id: str,
        state: str,
        until: Optional[float] = None,
        cause: Optional[str] = None,
        now: Optional[float] = None,
    ) -> bool: ...
    def inherit(self, other: Self) -> list[str]: ...
    def acquire(self, id: str, cost: int = 0, now: Optional[float] = None) -> bool: ...
    def release(self, id: str, cost: int = 0) -> None: ...
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
    ) -> None: ...
    def report_usage(
        self, id: str, estimated: int, actual: int, now: Optional[float] = None
    ) -> None: ...
    def limits_wait(
        self, id: Optional[str] = None, cost: int = 0, now: Optional[float] = None
    ) -> tuple[float, Optional[str]]: ...
    def state(self, id: str, now: Optional[float] = None) -> State: ...
    def retry_after(self, now: Optional[float] = None, cost: int = 0) -> Optional[float]: ...
    def outlook(
        self, now: Optional[float] = None, cost: int = 0
    ) -> tuple[Optional[float], str]: ...
    def snapshot(self, now: Optional[float] = None) -> list[KeyView]: ...
    def pool_snapshot(self, now: Optional[float] = None) -> Optional[PoolView]: ...
    @property
    def ids(self) -> tuple[str, ...]: ...
    @property
    def strategy(self) -> Strategy: ...
    def __len__(self) -> int: ...
    def __contains__(self, id: object) -> bool: ...
