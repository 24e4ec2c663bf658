"""What a loaded config gives the running gateway, and how a reload swaps it.

A ``Runtime`` is what one config gives: the config itself, its router (the
pools of keys and their engines), the redactor of its secrets, the client
keys, its generation and load time, and the metrics and ledger (the same
objects from one runtime to the next: they outlive reloads).  It never
changes.  ``Live`` holds the runtime in force; the proxy and the admin API
both read ``live.runtime`` when a request begins, and a reload builds a new
Runtime and puts it in place in one assignment, so that a request sees one
config from its beginning to its end and neither holds the other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import trio

from ..config import Config, Redactor
from ..credentials import Credentials, TokenSource
from ..telemetry.ledger import Ledger
from ..telemetry.metrics import Metrics
from ..telemetry.usage_book import Tally, UsageBook
from .clients import Clients, SharedClients
from .revalidation import Revalidator
from .routing import Pool, Router

log = logging.getLogger("byok.proxy")

# Hears of each change of a key's state that this process decided:
# (provider, label, pool or None for every pool of the provider holding the
# label, what: a byok_core Transition, or "blocked", "disabled", "enabled",
# "restored", "revalidated").  byok.cluster tells other replicas.
KeyListener = Callable[[str, str, Pool | None, str], None]

# Server settings that the listening socket and the connections took at start.
RESTART_SETTINGS = (
    "host",
    "port",
    "max_body_bytes",
    "max_header_bytes",
    "max_headers",
    "read_timeout",
    "idle_timeout",
)


USAGE_HAND_OVER = 0.25  # seconds between two hand-overs of the requests' usage


class ReloadError(Exception):
    """A reload changed nothing; the message says where and why."""


@dataclass(frozen=True)
class Runtime:
    config: Config
    router: Router
    redact: Redactor  # every secret of this config, out of any text shown
    clients: Clients  # none: the proxy takes requests without a client key
    generation: int  # 1 at start, one more for each reload
    loaded_at: float  # wall-clock time
    metrics: Metrics
    ledger: Ledger


class Live:
    """The runtime in force, and what outlives reloads: the revalidator's
    schedule, the short-lived keys' credentials, and the reloader that reads
    the config anew."""

    def __init__(
        self,
        config: Config,
        reloader: Callable[[], Config] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """`reloader` reads the config anew (POST /admin/reload, SIGHUP); None
        when there is no file to read again (keys from the environment).
        `wall` is the wall clock the credentials' expiries are read on."""
        self.reloader = reloader
        self._reloading = trio.Lock()
        self.credentials = Credentials(wall, self._credential_renewed)
        self.credentials.adopt(config.short_lived())
        metrics, ledger = Metrics(self.key_states), Ledger()
        # the usage ledger outlives reloads: its file is the one at start
        self.usage_book = UsageBook(config.usage.path) if config.usage.enabled else None
        # what this process's requests count into it: see usage_book.Tally
        self.usage = Tally(self.usage_book) if self.usage_book is not None else None
        clients = Clients(config, self.usage)
        self.runtime = _runtime(
            config, Router(config), 1, metrics, ledger, clients, self.credentials
        )
        self.key_listeners: list[KeyListener] = []  # none: a key's change costs a loop over []
        # client rates and budgets shared by a cluster's replicas (byok.cluster)
        self.shared_clients: SharedClients | None = None
        self.revalidator = Revalidator(
            lambda: (self.runtime.config, self.runtime.router),
            lambda provider, label: self.key_changed(provider, label, None, "revalidated"),
            self.credentials,
        )

    def close(self) -> None:
        """What this process keeps beyond its requests, put away: the usage
        ledger's last rows written (after the requests have drained)."""
        if self.usage is not None:
            self.usage.hand_over()
            self.usage.book.close()

    async def hand_over_usage(self) -> None:
        """Until cancelled: what requests counted goes to the usage ledger's
        writer a few times a second (the writer writes once a second)."""
        usage = self.usage
        if usage is None:
            return
        while True:
            await trio.sleep(USAGE_HAND_OVER)
            usage.hand_over()

    def _credential_renewed(self, source: TokenSource) -> None:
        """A credential file brought a new token: the keys it serves that a
        refused credential (or a 401) blocked are ready again."""
        for provider in self.runtime.config.providers.values():
            for key in provider.keys:
                if key.source == source and self.revalidator.unblock(provider.name, key.label):
                    log.warning(
                        "key %s of %s: its credential file holds a new token; back to ready",
                        key.label,
                        provider.name,
                    )

    def key_changed(self, provider: str, label: str, pool: Pool | None, what: str) -> None:
        """A key's state changed here: every listener hears of it (KeyListener)."""
        for listener in self.key_listeners:
            listener(provider, label, pool, what)

    def key_states(self) -> Iterator[tuple[str, str, str, str]]:
        """(model, provider, key, state) of every key, for the metrics."""
        now = trio.current_time()
        for model, pools in self.runtime.router.pools_by_model():
            name = model.name if model else "*"
            for pool in pools:
                provider = pool.provider.name
                for view in pool.selector.snapshot(now=now):
                    yield name, provider, view["id"], view["state"]

    async def reload(self) -> dict[str, Any]:
        """Read the config anew and swap it in; ReloadError changes nothing."""
        if self.reloader is None:
            raise ReloadError(
                "this byok was started without --config (keys from the environment): "
                "there is no file to read again; restart it to change its keys"
            )
        metrics = self.runtime.metrics
        async with self._reloading:
            try:
                config = await trio.to_thread.run_sync(self.reloader)
            except (ValueError, OSError) as error:  # ConfigError is a ValueError
                metrics.reload(False)
                reason = self.runtime.redact(str(error))
                log.warning("reload refused, nothing changed: %s", reason)
                raise ReloadError(reason) from None
            summary = self.swap(config)
            metrics.reload(True)
            log.info(
                "config reloaded from %s: generation %d, %d key(s) kept, %d new, %d removed",
                config.source,
                summary["generation"],
                summary["kept_keys"],
                summary["new_keys"],
                summary["removed_keys"],
            )
            return summary

    def swap(self, config: Config) -> dict[str, Any]:
        """Put `config` in place at once; requests in flight keep their routes."""
        old = self.runtime

        def identities(c: Config) -> dict[tuple[str, str], str]:
            return {(p.name, k.label): k.identity for p in c.providers.values() for k in p.keys}

        before, after = identities(old.config), identities(config)
        kept = [k for k, identity in after.items() if before.get(k) == identity]
        for name in after.keys() & before.keys():
            if before[name] != after[name]:
                old.ledger.forget(*name)  # a new secret under an old label: a new key
        restart = [
            name
            for name in RESTART_SETTINGS
            if getattr(old.config.server, name) != getattr(config.server, name)
        ]
        if config.usage != old.config.usage:  # the ledger open is the one of the start
            restart.append("[usage]")
        router = Router(config, previous=old.router)
        clients = Clients(config, self.usage, previous=old.clients)
        self.credentials.adopt(config.short_lived())
        self.runtime = _runtime(
            config,
            router,
            old.generation + 1,
            old.metrics,
            old.ledger,
            clients,
            self.credentials,
        )
        return {
            "reloaded": True,
            "generation": self.runtime.generation,
            "source": config.source,
            "kept_keys": len(kept),
            "new_keys": len(after) - len(kept),
            "removed_keys": len(before.keys() - after.keys()),
            "restart_needed": restart,
        }


def _runtime(
    config: Config,
    router: Router,
    generation: int,
    metrics: Metrics,
    ledger: Ledger,
    clients: Clients,
    credentials: Credentials,
) -> Runtime:
    for provider in config.providers.values():  # at start and at every reload
        if not provider.egress.verify:
            log.warning(
                "providers.%s: verify = false: the TLS certificate of %s is NOT checked; "
                "anyone on the network path can read and change this traffic, keys included",
                provider.name,
                provider.base_url,
            )
    return Runtime(
        config=config,
        router=router,
        redact=Redactor(config.secrets(), credentials.book),
        clients=clients,
        generation=generation,
        loaded_at=time.time(),
        metrics=metrics,
        ledger=ledger,
    )
