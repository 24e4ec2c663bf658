"""Prometheus metrics (``GET /metrics``), with prometheus-client.

Each running byok has a registry of its own (tests run several in one process).
Counters and histograms are updated as requests pass; labelled children are
cached in plain dicts, because ``.labels()`` takes a lock and builds a tuple
on every call and this is the hot path.  Key states are not updated as they
change: a collector reads the engine's snapshots when Prometheus scrapes.

The ``*_created`` samples (each series' creation time, which prometheus-client
adds to counters and histograms) are left out of the page: Prometheus's text
format turns them into gauge families of their own that nobody graphs.
prometheus-client's own switch for that (``disable_created_metrics()``) is
global to the process and would change every other registry in it, so the
page is filtered here instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from byok_core import STATES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
FIRST_BYTE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

# (model, provider, key label, state) for every key of every pool
KeyStates = Callable[[], Iterable[tuple[str, str, str, str]]]


class _KeyStateCollector(Collector):
    def __init__(self, key_states: KeyStates) -> None:
        self.key_states = key_states

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # the registry asks for names at registration: no snapshot needed for that
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        for model, provider, key, current in self.key_states():
            for state in STATES:
                family.add_metric([model, provider, key, state], 1.0 if state == current else 0.0)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "byok_key_state",
            "1 for the state each key is in, per model (ready, cooldown, half_open, ...)",
            labels=["model", "provider", "key", "state"],
        )


class _WithoutCreated(Collector):
    """A registry as the page shows it: every family, without its ``*_created`` samples."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            # each collect() builds new families: filtering them changes nothing kept
            created = family.name + "_created"
            family.samples = [s for s in family.samples if s.name != created]
            yield family


class Metrics:
    """One process's metrics: updated as requests pass, rendered for ``GET /metrics``."""

    def __init__(self, key_states: KeyStates) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "byok_requests",
            "Client requests answered, by model, endpoint and status",
            ["model", "endpoint", "status"],
            registry=registry,
        )
        self._attempts = Counter(
            "byok_attempts",
            "Upstream attempts, by key and outcome",
            ["provider", "key", "outcome"],
            registry=registry,
        )
        self._overhead = Histogram(
            "byok_proxy_overhead_seconds",
            "Time byok added to a request: its whole time minus the time waiting on upstreams",
            ["endpoint"],
            buckets=OVERHEAD_BUCKETS,
            registry=registry,
        )
        self._first_byte = Histogram(
            "byok_upstream_first_byte_seconds",
            "From sending an attempt to the upstream's response head",
            ["provider"],
            buckets=FIRST_BYTE_BUCKETS,
            registry=registry,
        )
        self._cooldowns = Counter(
            "byok_cooldowns",
            "Times a key went into cooldown (rate limit or open circuit)",
            ["provider", "key"],
            registry=registry,
        )
        self._tokens = Counter(
            "byok_tokens",
            "Tokens in the usage of answers, by key, model (the name clients ask for, as in "
            "byok_requests), target (provider/upstream-model) and kind (input, output)",
            ["provider", "key", "model", "target", "kind"],
            registry=registry,
        )
        self._reloads = Counter(
            "byok_config_reloads",
            "Config reloads, by result (ok, error)",
            ["result"],
            registry=registry,
        )
        registry.register(_KeyStateCollector(key_states))
        self._page = _WithoutCreated(registry)
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def request(self, model: str, endpoint: str, status: int, overhead: float | None) -> None:
        self._child(self._requests, model, endpoint, str(status)).inc()
        if overhead is not None:
            self._child(self._overhead, endpoint).observe(overhead)

    def attempt(self, provider: str, key: str, outcome: str) -> None:
        self._child(self._attempts, provider, key, outcome).inc()

    def first_byte(self, provider: str, seconds: float) -> None:
        self._child(self._first_byte, provider).observe(seconds)

    def cooldown(self, provider: str, key: str) -> None:
        self._child(self._cooldowns, provider, key).inc()

    def tokens(
        self, provider: str, key: str, model: str, target: str, taken: int, given: int
    ) -> None:
        """Tokens one answer used: `model` is the public name, as `request()` takes it."""
        if taken:
            self._child(self._tokens, provider, key, model, target, "input").inc(taken)
        if given:
            self._child(self._tokens, provider, key, model, target, "output").inc(given)

    def reload(self, ok: bool) -> None:
        self._child(self._reloads, "ok" if ok else "error").inc()

    def render(self) -> bytes:
        """The page Prometheus scrapes (text format 0.0.4, CONTENT_TYPE)."""
        return generate_latest(self._page)
