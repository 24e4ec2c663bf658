"""From a public model name to the pools of keys that can serve it.

A pool is one target: a provider's keys serving one upstream model, with its
own ``byok_core.Selector`` (rate limits are per model on both big providers,
so a key cooling for one model stays usable for another).  A 401/403 is about
the key itself, so it blocks that key in every pool of its provider.

A request for a configured model tries that model's targets in order, then
each fallback model's targets.  A request for a model that no [models] table
names goes to the passthrough provider of the endpoint's dialect, if there is
one, with the model name unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from byok_core import Selector

from .config import Config, Key, Model, Provider, RetryPolicy
from .dialects import ENDPOINTS

OPENAI_PATHS = frozenset(p for p, dialect in ENDPOINTS.items() if dialect == "openai")
ANTHROPIC_PATHS = frozenset(p for p, dialect in ENDPOINTS.items() if dialect == "anthropic")
# Anthropic also answers OpenAI's chat completions (its OpenAI compatibility
# layer), so an OpenAI client may fall back to a Claude model.
ANTHROPIC_OPENAI_PATHS = frozenset({"/v1/chat/completions"})


@dataclass
class Pool:
    provider: Provider
    selector: Selector
    keys: dict[str, Key]  # by label


@dataclass(frozen=True)
class Route:
    pool: Pool
    upstream_model: str


def serves(provider: Provider, path: str) -> bool:
    if provider.kind == "anthropic":
        return path in ANTHROPIC_PATHS or path in ANTHROPIC_OPENAI_PATHS
    return path in OPENAI_PATHS


def upstream_url(provider: Provider, path: str) -> str:
    # OpenAI-style base URLs end in /v1 (as the SDKs take them); Anthropic's do not.
    if provider.kind == "anthropic":
        return provider.base_url + path
    return provider.base_url + path.removeprefix("/v1")


class Router:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._pools: dict[tuple[str, str], Pool] = {}
        self._passthrough: dict[str, Pool] = {}
        for model in config.models.values():
            for target in model.targets:
                key = (target.provider, target.model)
                if key not in self._pools:
                    provider = config.providers[target.provider]
                    self._pools[key] = self._new_pool(provider, model.strategy)
        for provider in config.providers.values():
            if provider.passthrough:
                self._passthrough[provider.dialect] = self._new_pool(
                    provider, "weighted_round_robin"
                )

    def _new_pool(self, provider: Provider, strategy: str) -> Pool:
        server = self.config.server
        selector = Selector(
            [k.label for k in provider.keys],
            strategy=strategy,
            weights=[k.weight for k in provider.keys],
            max_inflight=[k.max_inflight for k in provider.keys],
            cooldown=server.cooldown,
            max_cooldown=max(server.max_cooldown, server.cooldown),
            failure_threshold=server.failure_threshold,
        )
        return Pool(provider, selector, {k.label: k for k in provider.keys})

    @property
    def pools(self) -> list[Pool]:
        return [*self._pools.values(), *self._passthrough.values()]

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
            if pool is None or not serves(pool.provider, path):
                return None
            return [Route(pool, model)]
        chain: list[Model] = [configured]
        chain += [self.config.models[name] for name in configured.fallbacks]
        routes = []
        for entry in chain:
            for target in entry.targets:
                pool = self._pools[(target.provider, target.model)]
                if serves(pool.provider, path):
                    routes.append(Route(pool, target.model))
        return routes

    def block(self, provider: str, label: str) -> None:
        """The key was refused: out of every pool of its provider."""
        for pool in self.pools:
            if pool.provider.name == provider:
                pool.selector.block(label)

    def retry_after(self, routes: list[Route]) -> float | None:
        """Seconds until the soonest key of these routes returns (None: never)."""
        waits = [w for w in (r.pool.selector.retry_after() for r in routes) if w is not None]
        return min(waits) if waits else None
