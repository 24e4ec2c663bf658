"""One replica's side of the cluster: its events out, the others' in.

The request path only ever calls ``Replica.key_changed`` (through the
runtime's key listeners), which puts an event in a bounded queue without
waiting.  One task per Redis connection does the rest: it syncs, then
publishes what the queue holds, applies what the channel brings, and pings
Redis; any failure or silence ends the connection, and the task connects
again after a backoff.  See the package's docstring for the rules.
"""

from __future__ import annotations

import logging
import math
import os
import random
import secrets
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import anyio
import coredis
import msgspec
import trio
from coredis.exceptions import RedisError, ResponseError
from coredis.response.types import PubSubMessage
from coredis.retry import NoRetryPolicy
from coredis.tokens import PureToken
from prometheus_client import CollectorRegistry, Counter, Gauge

from byok_core import State

from ..config import Cluster
from ..gateway.routing import Pool
from ..gateway.runtime import Live
from . import _events
from ._clients import SharedClientLimits
from ._credentials import SharedCredentials
from ._events import EVERY_POOL, KeyEvent
from ._limits import GCRA, Limiter

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup
else:  # pragma: no cover - exercised on 3.10 only
    from exceptiongroup import BaseExceptionGroup

log = logging.getLogger("byok.cluster")

QUEUE_SIZE = 10_000  # events waiting for Redis; more are dropped, and counted
SYNC_TIMEOUT = 3.0  # how long serve() waits for the first sync before it serves anyway
TIMEOUT = 2.0  # a Redis call slower than this: Redis counts as away
HEARTBEAT = 1.0  # seconds between pings: a silent Redis is noticed within HEARTBEAT + TIMEOUT
BACKOFF = (0.1, 5.0)  # first and longest wait before connecting again
SAME = 0.1  # seconds: deadlines closer than this are one, whatever two clocks made of them

_COOLING = {"cooled", "opened", "opened_by_rate", "probe_failed"}  # byok_core's Transitions
_SETTLED = {
    "blocked": "blocked",
    "disabled": "disabled",
    _events.ENABLED: "ready",
    _events.RESTORED: "ready",
    _events.REVALIDATED: "ready",
}
_REDIS_FAILURES = (
    RedisError,
    OSError,
    trio.TooSlowError,
    trio.BrokenResourceError,
    anyio.BrokenResourceError,  # coredis's streams, as their connection breaks
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)


class _Lost(Exception):
    """The connection ended without an error of its own: the subscription
    ended, or connecting took too long."""


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.connected = Gauge(
            "byok_cluster_connected",
            "1 while this replica shares key states through Redis, 0 while it serves alone",
            registry=registry,
        )
        self.published = Counter(
            "byok_cluster_events_published",
            "Key events of this replica that changed the state kept in Redis",
            registry=registry,
        )
        self.applied = Counter(
            "byok_cluster_events_applied",
            "Key events of other replicas that changed a key here",
            registry=registry,
        )
        self.dropped = Counter(
            "byok_cluster_events_dropped",
            "Key events not shared: the queue to Redis was full (a re-sync covers them)",
            registry=registry,
        )

    def unregister(self) -> None:
        for metric in (self.connected, self.published, self.applied, self.dropped):
            self.registry.unregister(metric)


class Replica:
    """This process as one replica of a cluster: see ``serve_cluster``."""

    def __init__(self, live: Live, settings: Cluster) -> None:
        self.live = live
        self.settings = settings
        self.name = settings.replica or f"{socket.gethostname()}:{os.getpid()}"
        prefix = settings.prefix
        self.channel = f"{prefix}:events"
        self.states_key = f"{prefix}:keys"
        self.epoch_key = f"{prefix}:epoch"
        self.client: coredis.Redis[str] | None = None  # while connected and synced
        self.limiter = Limiter(lambda: self.client, prefix)
        self.metrics = _Metrics(live.runtime.metrics.registry)
        self._send, self._receive = trio.open_memory_channel[KeyEvent](QUEUE_SIZE)
        self._unsent: KeyEvent | None = None  # taken from the queue, not yet in Redis
        self._dropped = False  # since the last sync: the next one re-publishes every state
        self._epoch: str | None = None  # Redis's mark: another one means it lost its data
        # blocked or disabled here because another replica said so: the hash,
        # once synced, says whether that still holds
        self._learned: dict[tuple[str, str, str], str] = {}
        self._born = time.time()  # events of this name and before it: an earlier life's
        # the deadline (wall clock) each remote cooldown was applied with, by
        # (provider, label, pool): the same one again, back through Redis at a
        # re-sync, is no news
        self._applied_until: dict[tuple[str, str, str], float] = {}
        self._tried = trio.Event()  # the first connection synced, or failed
        self._away_since: float | None = None  # wall-clock; None while connected

    @property
    def connected(self) -> bool:
        return self.client is not None

    # ---- out: this replica's events ------------------------------------------------------

    def key_changed(self, provider: str, label: str, pool: Pool | None, what: str) -> None:
        """The runtime's key listener: queue the event, never wait."""
        fingerprint = self._fingerprint(provider, label)
        if not fingerprint:
            return  # a reload removed the key meanwhile: nobody has it any more
        self._learned.pop((provider, label, fingerprint), None)  # decided here now
        if _SETTLED.get(what) == "ready":  # back here: a cooldown heard again is news again
            for where in [w for w in self._applied_until if w[:2] == (provider, label)]:
                del self._applied_until[where]
        event = self._event(provider, label, fingerprint, pool, what)
        if event is None:
            return
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.metrics.dropped.inc()
            if not self._dropped:
                log.warning(
                    "cluster: %d key events wait for Redis; dropping more until it is back "
                    "(every key state is published again then)",
                    QUEUE_SIZE,
                )
            self._dropped = True

    def _event(
        self, provider: str, label: str, fingerprint: str, pool: Pool | None, what: str
    ) -> KeyEvent | None:
        if what in _SETTLED:
            return self._new(provider, label, fingerprint, what, EVERY_POOL, _SETTLED[what])
        if what not in _COOLING or pool is None:
            return None
        now = trio.current_time()
        view = next((v for v in pool.selector.snapshot(now=now) if v["id"] == label), None)
        if view is None or view["state"] != State.COOLDOWN:
            return None
        until = time.time() + view["cooldown_remaining"]
        return self._new(
            provider, label, fingerprint, what, pool.name, "cooldown", until, view["cause"]
        )

    def _new(
        self,
        provider: str,
        label: str,
        fingerprint: str,
        why: str,
        scope: str,
        state: str,
        until: float | None = None,
        cause: str | None = None,
    ) -> KeyEvent:
        return KeyEvent(
            replica=self.name,
            provider=provider,
            label=label,
            fingerprint=fingerprint,
            scope=scope,
            state=state,
            why=why,
            at=time.time(),
            until=until,
            cause=cause,
        )

    def _fingerprint(self, provider: str, label: str) -> str:
        found = self.live.runtime.config.providers.get(provider)
        key = next((k for k in found.keys if k.label == label), None) if found else None
        return key.fingerprint if key else ""

    def _local_states(self) -> Iterator[KeyEvent]:
        """Every key that is not ready here, as events (a re-sync's)."""
        now, wall = trio.current_time(), time.time()
        done: set[tuple[str, str]] = set()
        for pool in self.live.runtime.router.pools:
            provider = pool.provider.name
            for view in pool.selector.snapshot(now=now):
                label, state = view["id"], view["state"]
                fingerprint = pool.keys[label].fingerprint
                if state == State.COOLDOWN:
                    until = wall + view["cooldown_remaining"]
                    yield self._new(
                        provider,
                        label,
                        fingerprint,
                        _events.RESYNC,
                        pool.name,
                        state,
                        until,
                        view["cause"],
                    )
                elif state in (State.BLOCKED, State.DISABLED) and (provider, label) not in done:
                    done.add((provider, label))
                    yield self._new(provider, label, fingerprint, _events.RESYNC, EVERY_POOL, state)

    async def _record(self, client: coredis.Redis[str], event: KeyEvent) -> None:
        args = [
            event.key_id,
            event.scope,
            event.state,
            "" if event.until is None else repr(event.until),
            event.why,
            _events.encode(event).decode(),
            repr(time.time()),
            self.channel,
        ]
        try:
            with trio.fail_after(TIMEOUT):
                changed: int = await _events.RECORD(
                    keys=[self.states_key], args=args, client=client
                )
        except ResponseError as error:  # Redis answered and refused this one event
            log.error("cluster: Redis refused a key event, not shared: %s", error)
            return
        if changed:
            self.metrics.published.inc()

    async def _publish(self, client: coredis.Redis[str]) -> None:
        while True:
            self._unsent = await self._receive.receive()
            await self._record(client, self._unsent)
            self._unsent = None

    def _queued(self) -> Iterator[KeyEvent]:
        """The events that wait for Redis, the oldest first."""
        while True:
            if self._unsent is None:
                try:
                    self._unsent = self._receive.receive_nowait()
                except trio.WouldBlock:
                    return
            yield self._unsent
            self._unsent = None

    # ---- in: the other replicas' events --------------------------------------------------

    def _on_message(self, message: PubSubMessage) -> None:
        data = message["data"]
        if message["type"] != "message" or isinstance(data, int):
            return
        try:
            event = _events.decode(data)
        except (msgspec.DecodeError, TypeError):
            log.warning("cluster: a message on %s is no key event; ignored", self.channel)
            return
        if event.replica != self.name:  # its own, back from Redis
            self.apply(event)

    def apply(self, event: KeyEvent) -> bool:
        """Apply another replica's event to the keys it names here; whether
        it changed any.  A cooldown never shortens one in force; a block
        never covers a disable; an operator's disable or restore always wins."""
        router = self.live.runtime.router
        now, wall = trio.current_time(), time.time()
        changed: list[str] = []
        for pool in router.each_key(event.provider, event.label):
            if pool.keys[event.label].fingerprint != event.fingerprint:
                continue  # the label names another key here
            if event.scope not in (EVERY_POOL, pool.name):
                continue
            try:
                if self._impose(pool, event, now, wall):
                    changed.append(pool.name)
            except ValueError as error:  # a deadline out of the engine's range
                log.warning("cluster: an event of replica %s ignored: %s", event.replica, error)
                return False
        where = (event.provider, event.label, event.fingerprint)
        if event.state in ("blocked", "disabled"):
            self._learned[where] = event.state
        elif event.state == "ready":
            self._learned.pop(where, None)
        if changed:
            self.metrics.applied.inc()
            self._log(event, changed, wall)
        return bool(changed)

    def _impose(self, pool: Pool, event: KeyEvent, now: float, wall: float) -> bool:
        selector, label = pool.selector, event.label
        if event.state == "cooldown":
            if event.until is None or event.until <= wall:
                return False
            where = (event.provider, label, pool.name)
            if self._applied_until.get(where, 0.0) > event.until - SAME:
                return False  # the same deadline, back from Redis at a re-sync
            until = now + (event.until - wall)  # the deadline on this process's clock
            if not selector.impose(label, "cooldown", until=until, cause=event.cause, now=now):
                return False
            self._applied_until[where] = event.until
            return True
        if event.state == "blocked":
            if not selector.impose(label, "blocked", now=now):
                return False
            # this replica asks the key again itself: the one that saw the
            # refusal may be gone before its own check
            revalidator = self.live.revalidator
            if revalidator.next_check(event.provider, label) is None:
                revalidator.schedule(event.provider, label, now)
            return True
        if event.state == "disabled":
            return selector.impose(label, "disabled", now=now)
        if event.state != "ready":
            return False
        self._applied_until.pop((event.provider, label, pool.name), None)
        current = selector.state(label, now=now)
        if event.why == _events.ENABLED and current != State.DISABLED:
            return False  # enable undoes a disable, nothing else
        if event.why == _events.REVALIDATED and current != State.BLOCKED:
            return False  # a disable here stays
        return selector.impose(label, "ready", now=now)

    def _log(self, event: KeyEvent, pools: list[str], wall: float) -> None:
        key = f"key {event.label} ({event.fingerprint}) of {event.provider}"
        origin = f"replica {event.replica}"
        if event.state == "cooldown":
            assert event.until is not None
            why = "rate-limited" if event.cause == "rate_limited" else "failing"
            log.warning(
                "%s cooling for %.1fs in %s: %s at %s",
                key,
                event.until - wall,
                ", ".join(pools),
                why,
                origin,
            )
        elif event.state == "blocked":
            log.warning("%s blocked: the upstream refused it at %s", key, origin)
        elif event.state == "disabled":
            log.warning("%s disabled by an operator at %s", key, origin)
        elif event.why == _events.REVALIDATED:
            log.warning("%s re-validated at %s; back to ready", key, origin)
        else:
            log.warning("%s %s by an operator at %s; now ready", key, event.why, origin)

    # ---- the connection --------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[Replica] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Share key states until cancelled; started once the first sync is
        done, or failed, or SYNC_TIMEOUT passed."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._connect_forever)
            with trio.move_on_after(SYNC_TIMEOUT):
                await self._tried.wait()
            if not self._tried.is_set():
                self._away_since = time.time()  # said here, not again when it fails
                log.warning(
                    "cluster: Redis at %s did not answer within %gs: serving on this "
                    "replica's key states until it does",
                    self.settings.redis_shown,
                    SYNC_TIMEOUT,
                )
            task_status.started(self)

    async def _connect_forever(self) -> None:
        delay = BACKOFF[0]
        while True:
            began = trio.current_time()
            try:
                await self._session()
            except BaseException as error:
                cancelled, failure = _split(error)
                if cancelled is not None:
                    # what coredis's cleanup raised as it was cancelled is no news
                    raise cancelled from None
                if not isinstance(failure, Exception):
                    raise
                self._went_away(failure)
            self._tried.set()
            if trio.current_time() - began > 60:  # it held a while: a fresh start
                delay = BACKOFF[0]
            await trio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, BACKOFF[1])

    async def _session(self) -> None:
        await self._reachable()
        client: coredis.Redis[str] = coredis.Redis.from_url(
            self.settings.redis,
            decode_responses=True,
            retry_policy=NoRetryPolicy(),  # byok decides when to connect again
            connect_timeout=TIMEOUT,
        )
        # connecting and subscribing within SYNC_TIMEOUT; each call after, within TIMEOUT
        with trio.CancelScope(deadline=trio.current_time() + SYNC_TIMEOUT) as connecting:
            async with (
                client,
                client.pubsub(
                    channels=[self.channel], retry_policy=NoRetryPolicy()
                ) as subscription,
            ):
                # a long outage's queue may take longer to publish than connecting may
                connecting.deadline = math.inf
                loaded = await self._sync(client)
                self._came_back(loaded)
                self.client = client
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._publish, client)
                        nursery.start_soon(self._heartbeat, client)
                        async for message in subscription:
                            self._on_message(message)
                        raise _Lost("the subscription ended")
                finally:
                    self.client = None
                    self.metrics.connected.set(0)
        # here only when the deadline cancelled it: the rest ends by an exception
        raise _Lost(f"no answer within {SYNC_TIMEOUT:g}s")

    async def _reachable(self) -> None:
        """Raise OSError unless something listens at Redis's address.  A
        connection that coredis (6.9) fails to open leaves its buffers
        unclosed, a ResourceWarning each time, so it is asked only once a
        plain connection got through."""
        where = urlsplit(self.settings.redis)
        with trio.fail_after(TIMEOUT):
            if where.scheme == "unix":
                stream: trio.abc.Stream = await trio.open_unix_socket(where.path)
            else:
                stream = await trio.open_tcp_stream(where.hostname or "", where.port or 6379)
        await stream.aclose()

    async def _heartbeat(self, client: coredis.Redis[str]) -> None:
        while True:
            await trio.sleep(HEARTBEAT)
            with trio.fail_after(TIMEOUT):
                await client.ping()

    async def _sync(self, client: coredis.Redis[str]) -> int:
        """Put this replica's news in Redis, then take Redis's states: how many
        changed a key here."""
        with trio.fail_after(TIMEOUT):
            # loaded ahead: a first call then needs no second round trip
            for script in (_events.RECORD, GCRA):
                await client.script_load(script.script)
            await client.set(self.epoch_key, secrets.token_hex(8), condition=PureToken.NX)
            epoch = await client.get(self.epoch_key)
        # another mark: Redis restarted empty, and what it held lives on only in the replicas
        everything = self._dropped or (self._epoch is not None and epoch != self._epoch)
        self._epoch, self._dropped = epoch, False
        for event in self._queued():
            await self._record(client, event)
        if everything:
            for event in list(self._local_states()):
                await self._record(client, event)
        with trio.fail_after(TIMEOUT):
            entries = await client.hgetall(self.states_key)
        return self._load(entries.values())

    def _load(self, fields: Any) -> int:
        changed = 0
        held: set[tuple[str, str, str, str]] = set()
        for data in fields:
            try:
                events = _events.decode_held(data).values()
            except msgspec.DecodeError:
                continue  # not byok's: the prefix is shared with something else
            for event in events:
                held.add((event.provider, event.label, event.fingerprint, event.state))
                if not (event.replica == self.name and event.at >= self._born):
                    changed += self.apply(event)  # not this process's own news
        # blocked or disabled here on another replica's word, and no longer in
        # Redis: restored elsewhere while this replica could not hear it
        now = trio.current_time()
        for (provider, label, fingerprint), state in list(self._learned.items()):
            if (provider, label, fingerprint, state) in held:
                continue
            del self._learned[(provider, label, fingerprint)]
            for pool in self.live.runtime.router.each_key(provider, label):
                if (
                    pool.keys[label].fingerprint == fingerprint
                    and pool.selector.state(label, now=now) == state
                    and pool.selector.impose(label, "ready", now=now)
                ):
                    changed += 1
                    log.warning(
                        "key %s (%s) of %s: no longer %s in the cluster; now ready",
                        label,
                        fingerprint,
                        provider,
                        state,
                    )
        return changed

    def _came_back(self, loaded: int) -> None:
        self.metrics.connected.set(1)
        self._tried.set()
        away = "" if self._away_since is None else f" after {time.time() - self._away_since:.0f}s"
        log.info(
            "cluster: replica %s shares key states through Redis at %s%s (%d key state(s) "
            "taken from it)",
            self.name,
            self.settings.redis_shown,
            away,
            loaded,
        )
        self._away_since = None

    def _went_away(self, error: Exception) -> None:
        self.metrics.connected.set(0)
        failures = _leaves(error)
        if not all(isinstance(e, (*_REDIS_FAILURES, _Lost)) for e in failures):
            # a bug of byok's: said in full, and the replica serves on meanwhile
            log.error("cluster: replica %s failed; connecting again", self.name, exc_info=error)
        elif self._away_since is None:
            reason = "; ".join(_said(e) for e in failures)
            log.warning(
                "cluster: Redis at %s unreachable (%s): serving on this replica's key states, "
                "trying again",
                self.settings.redis_shown,
                self.live.runtime.redact(reason),
            )
        if self._away_since is None:
            self._away_since = time.time()


def _said(error: BaseException) -> str:
    if isinstance(error, trio.TooSlowError):
        return f"no answer within {TIMEOUT:g}s"
    return str(error) or type(error).__name__


def _split(error: BaseException) -> tuple[BaseException | None, BaseException | None]:
    """(the cancellation in `error`, the rest), either one None if there is none."""
    if isinstance(error, BaseExceptionGroup):
        return error.split(trio.Cancelled)
    if isinstance(error, trio.Cancelled):
        return error, None
    return None, error


def _leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside nested exception groups (trio's and anyio's nurseries)."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


async def serve_cluster(
    live: Live,
    settings: Cluster,
    *,
    task_status: trio.TaskStatus[Replica] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Share the key states of `live` with the other replicas of `settings`
    until cancelled: ``replica = await nursery.start(serve_cluster, live,
    settings)`` returns once this replica has loaded what Redis holds (or
    could not, within SYNC_TIMEOUT: it then serves on its own states, and
    catches up when Redis answers)."""
    # coredis's notes of each lost connection and retry: byok says it once, its own way
    logging.getLogger("coredis").setLevel(logging.WARNING)
    replica = Replica(live, settings)
    live.key_listeners.append(replica.key_changed)
    clients = SharedClientLimits(live, replica.limiter, lambda: replica.client, settings.prefix)
    live.shared_clients = clients
    live.credentials.share(
        SharedCredentials(lambda: replica.client, settings.prefix, live.credentials.wall)
    )
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(clients.run)
            await replica.run(task_status=task_status)
    finally:
        live.credentials.share(None)
        live.shared_clients = None
        live.key_listeners.remove(replica.key_changed)
        replica.metrics.unregister()
