"""From a public model name to the pools of keys that can serve it.

A pool is one target: a provider's keys serving one upstream model, with its
own ``byok_core.Selector`` (rate limits are per model on both big providers,
so a key cooling for one model stays usable for another).  A 401/403 is about
the key itself, so it blocks that key in every pool of its provider.

A request for a configured model tries that model's targets in order, then
each fallback model's targets, of either API: a target that does not speak
the client's API natively is reached through translation (translation/),
its route naming the crossing and the upstream path.  A request for a model that no [models] table
names goes to the passthrough provider of the endpoint's dialect, if there is
one, with the model name unchanged.

A reload builds a new Router from the new config and the old Router: a pool
whose provider, keys, strategy and engine settings are all unchanged is the
same pool object (the same Selector, health and counters); any other pool is
new, and its keys inherit the health of the same key in the old pool of that
target, so that a cooling key stays cooling and a disabled key stays disabled.
A label whose secret changed is a new key under an old name: it starts ready.

In a worker of `byok serve --workers N`, every pool keeps its keys' health
in the group's shared segment (``share_health``), under the pool's name:
the workers' pools of one target, and a reload's, are the same records.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from byok_core import HealthSegment, Selector

from ..config import Config, Key, Model, PoolLimits, Provider, RetryPolicy
from .translation import Crossing, crossing

# the health table this process shares with the other workers of its group
_shared: HealthSegment | None = None


def shared_segment() -> HealthSegment | None:
    """The segment pools are made in now (share_health), for other engine records."""
    return _shared


def share_health(segment: HealthSegment | None) -> None:
    """Pools made from now on keep their keys' health in `segment`, which
    the other workers of the group attached too (None: in this process)."""
    global _shared
    _shared = segment


@dataclass
class Pool:
    provider: Provider
    selector: Selector
    keys: dict[str, Key]  # by label
    name: str  # the target: "provider/upstream-model", or "provider/*" for passthrough
    limits: PoolLimits = field(default_factory=PoolLimits)
    # the provider's keys' own limits (rpm, tpm, daily_tokens over all their
    # models), one selector per provider shared by its pools; None: no key has any
    accounts: Selector | None = None

    @property
    def passthrough(self) -> bool:
        return self.name.endswith("/*")


@dataclass(frozen=True)
class Route:
    pool: Pool
    upstream_model: str
    path: str  # the upstream endpoint ("": byok answers itself, as for count_tokens)
    crossing: Crossing | None = None  # the translation between the client's API and the target's


def route(pool: Pool, upstream_model: str, path: str) -> Route | None:
    """The route to `pool` for a request to the client endpoint `path`:
    native, or through translation; None if the target cannot serve it."""
    if path in pool.provider.spec.native:
        return Route(pool, upstream_model, path)
    found = crossing(path, pool.provider.spec)
    if found is None:
        return None
    return Route(pool, upstream_model, found[1], found[0])


def upstream_url(provider: Provider, path: str) -> str:
    return provider.spec.url(provider.base_url, path)


class Router:
    def __init__(self, config: Config, previous: Router | None = None) -> None:
        self.config = config
        self._pools: dict[tuple[str, str], Pool] = {}
        self._passthrough: dict[str, Pool] = {}
        self._accounts: dict[str, Selector] = {}
        same_engine = previous is not None and _engine(previous.config) == _engine(config)
        for provider in config.providers.values():
            if any(k.rpm or k.tpm or k.daily_tokens for k in provider.keys):
                self._accounts[provider.name] = self._account(provider, previous)
        for model in config.models.values():
            for target in model.targets:
                key = (target.provider, target.model)
                if key not in self._pools:  # the first model to name a target sets its limits
                    provider = config.providers[target.provider]
                    old = previous._pools.get(key) if previous else None
                    self._pools[key] = self._pool(
                        provider, target.model, model.strategy, model.limits, old, same_engine
                    )
        for provider in config.providers.values():
            if provider.passthrough:
                old = previous._passthrough.get(provider.dialect) if previous else None
                pool = self._pool(
                    provider, "*", "weighted_round_robin", PoolLimits(), old, same_engine
                )
                self._passthrough[provider.dialect] = pool
        self._by_name = {pool.name: pool for pool in self.pools}

    def _account(self, provider: Provider, previous: Router | None) -> Selector:
        """The selector that holds the provider's keys' own limits."""
        selector = Selector(
            [k.label for k in provider.keys],
            rpm=[k.rpm for k in provider.keys],
            tpm=[k.tpm for k in provider.keys],
            daily_tokens=[k.daily_tokens for k in provider.keys],
            shared=_shared,
            scope=f"{provider.name}/=keys" if _shared is not None else None,
        )
        old = previous._accounts.get(provider.name) if previous else None
        if old is not None:
            selector.inherit(old)  # what was spent stays spent
        return selector

    def _pool(
        self,
        provider: Provider,
        model: str,
        strategy: str,
        limits: PoolLimits,
        old: Pool | None,
        same_engine: bool,
    ) -> Pool:
        """The pool of one target: the old one if nothing about it changed."""
        if old is None:
            return self._new_pool(provider, model, strategy, limits)
        if (
            same_engine
            and old.provider == provider
            and old.selector.strategy == strategy
            and old.limits == limits
        ):
            old.accounts = self._accounts.get(provider.name)
            return old
        pool = self._new_pool(provider, model, strategy, limits)
        if old.provider.name == provider.name:
            pool.selector.inherit(old.selector)
            for label, key in pool.keys.items():
                before = old.keys.get(label)
                if before is not None and before.identity != key.identity:
                    pool.selector.restore(label)  # a new secret under an old label
        return pool

    def _new_pool(self, provider: Provider, model: str, strategy: str, limits: PoolLimits) -> Pool:
        server = self.config.server
        selector = Selector(
            [k.label for k in provider.keys],
            strategy=strategy,
            weights=[k.weight for k in provider.keys],
            max_inflight=[k.max_inflight for k in provider.keys],
            cooldown=server.cooldown,
            max_cooldown=max(server.max_cooldown, server.cooldown),
            failure_threshold=server.failure_threshold,
            failure_rate=server.failure_rate,
            failure_rate_window=server.failure_rate_window,
            failure_rate_min_attempts=server.failure_rate_min_attempts,
            shared=_shared,
            scope=f"{provider.name}/{model}" if _shared is not None else None,
            pool_rpm=limits.rpm,
            pool_tpm=limits.tpm,
            pool_max_inflight=limits.max_inflight,
        )
        keys = {k.label: k for k in provider.keys}
        accounts = self._accounts.get(provider.name)
        return Pool(provider, selector, keys, f"{provider.name}/{model}", limits, accounts)

    @property
    def pools(self) -> list[Pool]:
        return [*self._pools.values(), *self._passthrough.values()]

    def pools_by_model(self) -> list[tuple[Model | None, list[Pool]]]:
        """Each configured model with its own targets' pools, then each
        passthrough pool (model None), for views of the key table."""
        listing: list[tuple[Model | None, list[Pool]]] = [
            (m, [self._pools[(t.provider, t.model)] for t in m.targets])
            for m in self.config.models.values()
        ]
        listing += [(None, [pool]) for pool in self._passthrough.values()]
        return listing

    def pool(self, provider: str, upstream_model: str) -> Pool:
        """The pool of one configured target."""
        return self._pools[(provider, upstream_model)]

    def known_models(self) -> list[str]:
        return list(self.config.models)

    def policy(self, model: str) -> RetryPolicy:
        found = self.config.models.get(model)
        return found.retry if found else RetryPolicy()

    def routes(self, model: str, dialect: str, path: str) -> list[Route] | None:
        """Routes in the order to try them; None if nothing is named `model`."""
        configured = self.config.models.get(model)
        if configured is None:
            pool = self._passthrough.get(dialect)
            if pool is None or path not in pool.provider.spec.native:
                return None
            return [Route(pool, model, path)]
        chain: list[Model] = [configured]
        chain += [self.config.models[name] for name in configured.fallbacks]
        routes = []
        for entry in chain:
            for target in entry.targets:
                found = route(self._pools[(target.provider, target.model)], target.model, path)
                if found is not None:
                    routes.append(found)
        return routes

    def block(self, provider: str, label: str, identity: str | None = None) -> None:
        """The key was refused: out of every pool of its provider that has it
        (a reload may have removed it while a request on it was in flight).
        With `identity`, only where the label still names that key: a key
        rotated by a reload is a new key, and the old one's refusal is not its."""
        for pool in self.each_key(provider, label):
            if identity is None or pool.keys[label].identity == identity:
                pool.selector.block(label)

    def current(self, pool: Pool) -> Pool | None:
        """The pool that serves `pool`'s target now: itself, or its successor
        after a reload (None if the target is gone)."""
        return self._by_name.get(pool.name)

    def each_key(self, provider: str, label: str) -> list[Pool]:
        """The pools of a provider that hold a key with this label."""
        return [p for p in self.pools if p.provider.name == provider and label in p.keys]


def _engine(config: Config) -> tuple[float, float, int, float, float, int]:
    server = config.server
    return (
        server.cooldown,
        server.max_cooldown,
        server.failure_threshold,
        server.failure_rate,
        server.failure_rate_window,
        server.failure_rate_min_attempts,
    )
