"""A running stack for tests: the simulated upstream and the proxy on loopback,
in a trio thread of their own, so that the official (blocking) SDKs can be the
clients, as in real use."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import trio

from byok.config import Config, from_dict
from byok.proxy import Proxy
from byok.server import Limits, bound_port, serve_http
from byok.simulator import SimulatedUpstream


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
        self.proxy: Proxy | None = None
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
            trio.run(self._main)
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
            self.proxy = Proxy(config, reloader=self._reload)
            try:
                listeners = await nursery.start(serve_http, self.proxy, "127.0.0.1", 0, self.limits)
                self.url = f"http://127.0.0.1:{bound_port(listeners)}"
                self._ready.set()
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    await self.proxy.aclose()

    def _reload(self) -> Config:
        return from_dict(self.build(self.upstream_url), "test")

    def selector(self, provider: str, model: str) -> Any:
        """The engine behind one target, to look at or steer in a test."""
        assert self.proxy is not None
        return self.proxy.router.pool(provider, model).selector
