"""Prometheus metrics (``GET /metrics``), rendered by prometheus-client.

Each running byok has a registry of its own (tests run several in one process).
The request path does not call prometheus-client: its counters and
histograms take a lock and walk their labels on every update, and byok runs
on one thread.  Instead each update adds to a plain dict keyed by the label
values (a histogram's buckets are a list of counts found by bisection), and
a collector turns those dicts into metric families when Prometheus scrapes.
Key states are not updated as they change either: a collector reads the
engine's snapshots at scrape time.

In a group of workers (``byok serve --workers N``) each worker's page adds
the other workers' latest snapshots (byok.telemetry.group) to its own
counts, so that the page shows the group whichever worker answers.

The families carry no ``*_created`` samples (prometheus-client adds them to
its own counters and histograms; Prometheus's text format turns them into
gauge families of their own that nobody graphs).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator

import msgspec
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from byok_core import STATES

from .group import GroupShare

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
FIRST_BYTE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

# (model, provider, key label, state) for every key of every pool
KeyStates = Callable[[], Iterable[tuple[str, str, str, str]]]


class _Snapshot(msgspec.Struct, frozen=True):
    """One process's counts, as its group's other workers read them."""

    counters: dict[str, list[tuple[list[str], float]]] = msgspec.field(default_factory=dict)
    # label values, bucket counts (not cumulative), sum
    histograms: dict[str, list[tuple[list[str], list[int], float]]] = msgspec.field(
        default_factory=dict
    )


_encode_snapshot = msgspec.json.Encoder().encode
_decode_snapshot = msgspec.json.Decoder(_Snapshot).decode


class _Counter:
    """A counter family's values by label values, added to on the request path."""

    def __init__(self, name: str, documentation: str, labels: list[str]) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self.values: dict[tuple[str, ...], float] = {}

    def export(self) -> list[tuple[list[str], float]]:
        return [(list(labels), value) for labels, value in list(self.values.items())]

    def absorb(self, values: dict[tuple[str, ...], float], exported: _Snapshot) -> None:
        for labels, value in exported.counters.get(self.name, ()):
            key = tuple(labels)
            values[key] = values.get(key, 0.0) + value

    def family(self, peers: list[_Snapshot]) -> CounterMetricFamily:
        values = dict(self.values)
        for peer in peers:
            self.absorb(values, peer)
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, value in values.items():
            family.add_metric(labels, value)
        return family


class _Histogram:
    """A histogram family: per label values, the count in each bucket (not
    cumulative: one bisection and one increment per observation) and the sum."""

    def __init__(
        self, name: str, documentation: str, labels: list[str], buckets: tuple[float, ...]
    ) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self.bounds = buckets  # the last bucket, +Inf, is implied
        self.values: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        found = self.values.get(labels)
        if found is None:
            found = self.values[labels] = ([0] * (len(self.bounds) + 1), [0.0])
        counts, total = found
        counts[bisect_left(self.bounds, value)] += 1  # le: a value on a bound is in it
        total[0] += value

    def export(self) -> list[tuple[list[str], list[int], float]]:
        return [
            (list(labels), list(counts), total[0])
            for labels, (counts, total) in list(self.values.items())
        ]

    def absorb(
        self,
        values: dict[tuple[str, ...], tuple[list[int], list[float]]],
        exported: _Snapshot,
    ) -> None:
        for labels, counts, total in exported.histograms.get(self.name, ()):
            if len(counts) != len(self.bounds) + 1:
                continue  # another version's buckets: not comparable
            key = tuple(labels)
            mine = values.get(key)
            if mine is None:
                values[key] = (list(counts), [total])
            else:
                values[key] = ([a + b for a, b in zip(mine[0], counts)], [mine[1][0] + total])

    def family(self, peers: list[_Snapshot]) -> HistogramMetricFamily:
        values = {labels: (list(c), list(t)) for labels, (c, t) in list(self.values.items())}
        for peer in peers:
            self.absorb(values, peer)
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        # as prometheus-client writes these bounds ("0.0001", "1.0", ...)
        names = [*(repr(float(b)) for b in self.bounds), "+Inf"]
        for labels, (counts, total) in values.items():
            cumulative, running = [], 0
            for name, count in zip(names, counts):
                running += count
                cumulative.append((name, running))
            family.add_metric(list(labels), cumulative, total[0])
        return family


class _Families(Collector):
    """The page's families, built from the dicts at scrape time."""

    def __init__(
        self,
        families: list[_Counter | _Histogram],
        key_states: KeyStates,
        peers: Callable[[], list[_Snapshot]],
    ) -> None:
        self.families, self.key_states, self.peers = families, key_states, peers

    def describe(self) -> Iterator[Metric]:
        # the registry asks for names at registration: no snapshot needed for that
        for each in self.families:
            yield each.family([])
        yield _key_state_family()

    def collect(self) -> Iterator[Metric]:
        peers = self.peers()
        for each in self.families:
            yield each.family(peers)
        family = _key_state_family()
        for model, provider, key, current in self.key_states():
            for state in STATES:
                family.add_metric([model, provider, key, state], 1.0 if state == current else 0.0)
        yield family


def _key_state_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "byok_key_state",
        "1 for the state each key is in, per model (ready, cooldown, half_open, ...)",
        labels=["model", "provider", "key", "state"],
    )


class Metrics:
    """One process's metrics: updated as requests pass, rendered for ``GET /metrics``."""

    def __init__(self, key_states: KeyStates) -> None:
        self._requests = _Counter(
            "byok_requests",
            "Client requests answered, by model, endpoint and status",
            ["model", "endpoint", "status"],
        )
        self._attempts = _Counter(
            "byok_attempts", "Upstream attempts, by key and outcome", ["provider", "key", "outcome"]
        )
        self._overhead = _Histogram(
            "byok_proxy_overhead_seconds",
            "Time byok added to a request: its whole time minus the time waiting on upstreams",
            ["endpoint"],
            OVERHEAD_BUCKETS,
        )
        self._first_byte = _Histogram(
            "byok_upstream_first_byte_seconds",
            "From sending an attempt to the upstream's response head",
            ["provider"],
            FIRST_BYTE_BUCKETS,
        )
        self._cooldowns = _Counter(
            "byok_cooldowns",
            "Times a key went into cooldown (rate limit or open circuit)",
            ["provider", "key"],
        )
        self._tokens = _Counter(
            "byok_tokens",
            "Tokens in the usage of answers, by key, model (the name clients ask for, as in "
            "byok_requests), target (provider/upstream-model) and kind (input, output)",
            ["provider", "key", "model", "target", "kind"],
        )
        self._reloads = _Counter(
            "byok_config_reloads", "Config reloads, by result (ok, error)", ["result"]
        )
        self._translated = _Counter(
            "byok_translated_attempts",
            "Upstream attempts translated between the two APIs, by crossing "
            "(messages→chat: an Anthropic client on an OpenAI target; chat→messages: the reverse)",
            ["crossing"],
        )
        self._dropped = _Counter(
            "byok_translation_dropped_hints",
            "Request fields a translation left out because the target's API has no "
            "equivalent and the answer means the same without them (cache_control, seed, ...), "
            "by crossing and field",
            ["crossing", "field"],
        )
        self.registry = CollectorRegistry(auto_describe=True)
        self._counters = [
            self._requests,
            self._attempts,
            self._cooldowns,
            self._tokens,
            self._reloads,
            self._translated,
            self._dropped,
        ]
        self._histograms = [self._overhead, self._first_byte]
        # the other workers' counts, when this process is one of a group
        self.group: GroupShare | None = None
        self.registry.register(
            _Families([*self._counters, *self._histograms], key_states, self._peers)
        )

    def export(self) -> bytes:
        """This process's counts, for the other workers of its group."""
        return _encode_snapshot(
            _Snapshot(
                counters={c.name: c.export() for c in self._counters},
                histograms={h.name: h.export() for h in self._histograms},
            )
        )

    def absorb(self, exported: bytes) -> None:
        """Add counts `export` made (a dead worker's, this one's predecessor) to these."""
        snapshot = _decode_snapshot(exported)
        for counter in self._counters:
            counter.absorb(counter.values, snapshot)
        for histogram in self._histograms:
            histogram.absorb(histogram.values, snapshot)

    def _peers(self) -> list[_Snapshot]:
        return [] if self.group is None else self.group.peers("metrics", _decode_snapshot)

    def request(self, model: str, endpoint: str, status: int, overhead: float | None) -> None:
        values, labels = self._requests.values, (model, endpoint, str(status))
        values[labels] = values.get(labels, 0.0) + 1
        if overhead is not None:
            self._overhead.observe((endpoint,), overhead)

    def attempt(self, provider: str, key: str, outcome: str) -> None:
        values, labels = self._attempts.values, (provider, key, outcome)
        values[labels] = values.get(labels, 0.0) + 1

    def first_byte(self, provider: str, seconds: float) -> None:
        self._first_byte.observe((provider,), seconds)

    def cooldown(self, provider: str, key: str) -> None:
        values, labels = self._cooldowns.values, (provider, key)
        values[labels] = values.get(labels, 0.0) + 1

    def tokens(
        self, provider: str, key: str, model: str, target: str, taken: int, given: int
    ) -> None:
        """Tokens one answer used: `model` is the public name, as `request()` takes it."""
        values = self._tokens.values
        if taken:
            labels = (provider, key, model, target, "input")
            values[labels] = values.get(labels, 0.0) + taken
        if given:
            labels = (provider, key, model, target, "output")
            values[labels] = values.get(labels, 0.0) + given

    def translated(self, crossing: str, dropped: list[str]) -> None:
        """An attempt sent through translation, and the hints its translation dropped."""
        values = self._translated.values
        values[(crossing,)] = values.get((crossing,), 0.0) + 1
        values = self._dropped.values
        for name in dropped:
            values[(crossing, name)] = values.get((crossing, name), 0.0) + 1

    def reload(self, ok: bool) -> None:
        values, labels = self._reloads.values, ("ok" if ok else "error",)
        values[labels] = values.get(labels, 0.0) + 1

    def render(self) -> bytes:
        """The page Prometheus scrapes (text format 0.0.4, CONTENT_TYPE)."""
        return generate_latest(self.registry)
