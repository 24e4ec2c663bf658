"""Blocked keys are asked again: a refusal (401/403) may have been transient.

Theory of operation
-------------------
When an attempt's 401 or 403 blocks a key, the key is scheduled for a check
``revalidate_blocked`` seconds later (0: never).  The check is the cheapest
authenticated call there is, the provider's models listing (as ``byok keys
check`` makes it): no tokens are spent.  A 2xx restores the key in every pool
of its provider; a 401/403 keeps it blocked until the next check; anything
else (a 429, a 5xx, no answer) says nothing about the key and is asked again
at the next interval.  A key that an operator restored or disabled meanwhile,
or that a reload removed, is dropped from the schedule.

Times are the proxy's trio clock; the admin view turns them into wall-clock
times.  The schedule is keyed by provider and label, so it outlives reloads.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import trio

from byok_core import State

from ..config import Config
from ..credentials import Credentials
from ..http.upstream import Upstream
from .probe import check_key
from .routing import Router

log = logging.getLogger("byok.proxy")

PROBE_TIMEOUT = 10.0


class Revalidator:
    def __init__(
        self,
        runtime: Callable[[], tuple[Config, Router]],
        restored: Callable[[str, str], None],
        credentials: Credentials,
    ) -> None:
        """`runtime()` gives the config and router in force now (a reload swaps them);
        `restored(provider, label)` hears of each key a check brought back;
        `credentials` give short-lived keys their tokens."""
        self._runtime = runtime
        self._restored = restored
        self._credentials = credentials
        self.due: dict[tuple[str, str], float] = {}  # (provider, label) -> when to ask
        self._changed = trio.Event()

    def schedule(self, provider: str, label: str, now: float) -> None:
        """A key was just blocked: ask again after the configured interval."""
        interval = self._runtime()[0].server.revalidate_blocked
        if interval <= 0:
            return
        self.due[(provider, label)] = now + interval
        self._changed.set()

    def unblock(self, provider: str, label: str) -> bool:
        """The key is known good again: ready in every pool of its provider
        where it was blocked, and off the schedule.  Whether it was blocked."""
        router = self._runtime()[1]
        now = trio.current_time()
        blocked = False
        for pool in router.each_key(provider, label):
            if pool.selector.state(label, now=now) is State.BLOCKED:
                pool.selector.restore(label)
                blocked = True
        self.due.pop((provider, label), None)
        if blocked:
            self._restored(provider, label)
        return blocked

    def next_check(self, provider: str, label: str) -> float | None:
        return self.due.get((provider, label))

    async def run(self, upstream: Upstream) -> None:
        """Ask each blocked key when it is due, until cancelled."""
        while True:
            soonest = min(self.due.values(), default=math.inf)
            self._changed = trio.Event()
            with trio.move_on_at(soonest):
                await self._changed.wait()
                continue
            now = trio.current_time()
            for key, when in sorted(self.due.items(), key=lambda item: item[1]):
                if when <= now:
                    await self._check(upstream, *key)

    async def _check(self, upstream: Upstream, provider_name: str, label: str) -> None:
        config, router = self._runtime()
        provider = config.providers.get(provider_name)
        key = next((k for k in provider.keys if k.label == label), None) if provider else None
        pools = router.each_key(provider_name, label)
        now = trio.current_time()
        if (
            provider is None
            or key is None
            or not any(p.selector.state(label, now=now) is State.BLOCKED for p in pools)
        ):
            self.due.pop((provider_name, label), None)  # restored, disabled or gone
            return
        check = await check_key(upstream, provider, key, PROBE_TIMEOUT, self._credentials)
        now = trio.current_time()
        where = f"key {label} ({key.fingerprint}) of {provider_name}"
        if check.verdict == "valid":
            self.unblock(provider_name, label)
            log.warning(
                "%s re-validated: the models listing answered %s; back to ready",
                where,
                check.status,
            )
            return
        interval = config.server.revalidate_blocked
        if interval <= 0:  # turned off by a reload meanwhile
            self.due.pop((provider_name, label), None)
            return
        self.due[(provider_name, label)] = now + interval
        answer = check.status if check.status is not None else check.detail or "no answer"
        log.info(
            "%s stays blocked: the models listing answered %s; next check in %gs",
            where,
            answer,
            interval,
        )
