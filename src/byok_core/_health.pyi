from collections.abc import Sequence
from typing import Optional, Union

from typing_extensions import Self

# from byok_core, not re-exported: the compiled module holds none of them
from ._names import MemberView, State, Transition
from ._region import Segment

class HealthTable:
    """Health of ``size`` members, addressed by index."""

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
    ) -> None: ...
    def report_success(
        self, index: int, latency: Optional[float] = None, now: Optional[float] = None
    ) -> Optional[Transition]: ...
    def report_rate_limited(
        self, index: int, retry_after: Optional[float] = None, now: Optional[float] = None
    ) -> Optional[Transition]: ...
    def report_error(self, index: int, now: Optional[float] = None) -> Optional[Transition]: ...
    def report_abandoned(self, index: int, now: Optional[float] = None) -> None: ...
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
    ) -> None: ...
    def report_usage(
        self, index: int, estimated: int, actual: int, now: Optional[float] = None
    ) -> None: ...
    def block(self, index: int) -> None: ...
    def disable(self, index: int) -> None: ...
    def restore(self, index: int) -> None: ...
    def impose(
        self,
        index: int,
        state: str,
        until: Optional[float] = None,
        cause: Optional[str] = None,
        now: Optional[float] = None,
    ) -> bool: ...
    def copy_member(self, source: Self, source_index: int, index: int) -> None: ...
    def acquire(self, index: int, cost: int = 0, now: Optional[float] = None) -> bool: ...
    def release(self, index: int, cost: int = 0) -> None: ...
    def state(self, index: int, now: Optional[float] = None) -> State: ...
    def retry_after(self, now: Optional[float] = None, cost: int = 0) -> Optional[float]: ...
    def outlook(
        self, now: Optional[float] = None, cost: int = 0
    ) -> tuple[Optional[float], str]: ...
    def snapshot(self, now: Optional[float] = None) -> list[MemberView]: ...
    def __len__(self) -> int: ...
