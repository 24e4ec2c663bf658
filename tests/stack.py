"""A running stack for tests: the simulated upstream and the proxy on loopback,
in a trio thread of their own, so that the official (blocking) SDKs can be the
clients, as in real use."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio

from byok.app import App
from byok.cli.simulator import SimulatedUpstream
from byok.config import Config, from_dict
from byok.http.server import Limits, bound_port, serve_http


class MonotonicClock(trio.abc.Clock):
    """trio's clock on time.monotonic() itself, with no offset: the proxy hands
    trio's time to the engine, and this test thread reads the engine without
    a `now`, on time.monotonic(); both must be one clock."""

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return time.monotonic()

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return deadline - time.monotonic()


class Stack:
    def __init__(
        self, build: Callable[[str], dict[str, Any]], limits: Limits | None = None
    ) -> None:
        """`build(upstream_url)` returns the config tables (the TOML shape); a
        reload (POST /admin/reload) calls it again, so a test that replaces
        `stack.build` and reloads swaps in a new config."""
        self.build = build
        self.limits = limits or Limits()
        self.simulator = SimulatedUpstream()
        self.url = ""  # the proxy, e.g. http://127.0.0.1:PORT
        self.upstream_url = ""
        self.app: App | None = None
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Stack:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the test stack did not start in 10 s")
        if self._failed:
            raise RuntimeError("the test stack failed to start") from self._failed
        return self

    def __exit__(self, *exc: object) -> None:
        trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        self._thread.join(10)

    def _run(self) -> None:
        try:
            trio.run(self._main, clock=MonotonicClock())
        except BaseException as error:  # surfaced to the test thread
            self._failed = error
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            self._scope = nursery.cancel_scope
            upstream = await nursery.start(serve_http, self.simulator, "127.0.0.1", 0)
            self.upstream_url = f"http://127.0.0.1:{bound_port(upstream)}"
            config = from_dict(self.build(self.upstream_url), "test")
            self.app = App(config, reloader=self._reload)
            nursery.start_soon(self.app.maintain)
            try:
                listeners = await nursery.start(serve_http, self.app, "127.0.0.1", 0, self.limits)
                self.url = f"http://127.0.0.1:{bound_port(listeners)}"
                self._ready.set()
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    await self.app.aclose()

    def _reload(self) -> Config:
        return from_dict(self.build(self.upstream_url), "test")

    def selector(self, provider: str, model: str) -> Any:
        """The engine behind one target, to look at or steer in a test."""
        assert self.app is not None
        return self.app.live.runtime.router.pool(provider, model).selector


class LiveStack:
    """The simulated upstream and the proxy in the test's own trio run: under
    pytest-trio's MockClock, cooldowns, backoff, windows and timeouts pass in
    virtual time (the proxy hands trio's clock to the engine)."""

    def __init__(self, build: Callable[[str], dict[str, Any]], nursery: trio.Nursery) -> None:
        self.build = build
        self.nursery = nursery
        self.simulator = SimulatedUpstream()
        self.url = ""
        self.upstream_url = ""
        self.app: App
        self.client: httpx.AsyncClient

    def selector(self, provider: str, model: str) -> Any:
        return self.app.live.runtime.router.pool(provider, model).selector

    def state(self, provider: str, model: str, label: str) -> str:
        """A key's state now, on the proxy's clock."""
        return str(self.selector(provider, model).state(label, now=trio.current_time()))

    def view(self, provider: str, model: str, label: str) -> dict[str, Any]:
        views = self.selector(provider, model).snapshot(now=trio.current_time())
        return next(v for v in views if v["id"] == label)


@asynccontextmanager
async def open_stack(
    build: Callable[[str], dict[str, Any]],
    secrets: dict[str, str] | None = None,
    limits: Limits | None = None,
    wall: Callable[[], float] = time.time,
) -> AsyncIterator[LiveStack]:
    """A LiveStack serving on loopback until the block ends; `secrets` (secret
    -> name) are the keys the simulator accepts; `wall` the wall clock that
    short-lived keys' tokens expire on (a test's virtual one)."""
    async with trio.open_nursery() as nursery:
        stack = LiveStack(build, nursery)
        for secret, name in (secrets or {}).items():
            stack.simulator.add_key(secret, name)
        upstream = await nursery.start(serve_http, stack.simulator, "127.0.0.1", 0)
        stack.upstream_url = f"http://127.0.0.1:{bound_port(upstream)}"

        def reload() -> Config:
            return from_dict(stack.build(stack.upstream_url), "test")

        stack.app = App(reload(), reloader=reload, wall=wall)
        listeners = await nursery.start(serve_http, stack.app, "127.0.0.1", 0, limits)
        nursery.start_soon(stack.app.maintain)
        stack.url = f"http://127.0.0.1:{bound_port(listeners)}"
        client_limits = httpx.Limits(max_connections=2000, max_keepalive_connections=2000)
        async with httpx.AsyncClient(
            base_url=stack.url, timeout=3600, limits=client_limits
        ) as stack.client:
            try:
                yield stack
            finally:
                nursery.cancel_scope.cancel()
                with trio.CancelScope(shield=True):
                    await stack.app.aclose()
