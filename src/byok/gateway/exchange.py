"""One client request on its way through byok: what every part of its
handling reads (the proxy, the relay of its answer, its report)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..config import ClientKey, RetryPolicy
from ..http.server import Request
from .body import AskUsage
from .runtime import Runtime
from .translation import Translation

# what most requests have: no target of the other API (shared, read-only)
NO_TRANSLATIONS: Mapping[tuple[str, str], Translation] = MappingProxyType({})


@dataclass
class Exchange:
    request: Request
    runtime: Runtime  # the one in force when the request began, to its end
    path: str
    dialect: str
    model: str
    stream: bool
    policy: RetryPolicy
    started: float  # perf_counter, for the overhead figure
    # the request for each route to a target of the other API, by (pool name,
    # upstream model); most requests share NO_TRANSLATIONS
    translations: Mapping[tuple[str, str], Translation]
    upstream_seconds: float = 0.0  # spent waiting on upstreams
    overhead: float | None = None  # seconds byok added, once the answer is made
    # byok asks the upstream for the usage of a stream the client did not ask
    # it for (body.ask_usage); the relay keeps it from the client
    ask_usage: AskUsage = "no"
    client: ClientKey | None = None  # the client key it came with (None: none needed)
    cost: int = 0  # its estimated tokens (estimate.py)
    input_tokens: int = 0  # what its answer's usage said, so far
    output_tokens: int = 0
    booked: bool = False  # its row is in the usage ledger: later tokens go in a row of their own
