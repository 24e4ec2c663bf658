"""byok as one server: the gateway's endpoints and the operator's, on one
listener, with the work that runs beside them, until a signal stops it.

``App`` is what the HTTP server calls for each request: the proxy answers the
LLM endpoints and the models listing, the admin API everything else it knows
(health, readiness, the admin routes, metrics, the dashboard), and the rest
is a 404.  Both read the same ``Live`` runtime; neither holds the other.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Any

import trio

from . import __version__
from .config import Config
from .gateway import dialects
from .gateway.proxy import Proxy
from .gateway.relay import error_response
from .gateway.runtime import Live, ReloadError
from .http.server import Limits, Request, Response, Shutdown, bound_port, serve_http
from .http.upstream import Upstream
from .ops.admin import Admin
from .telemetry import logs

log = logging.getLogger("byok")

# SIGHUP reloads the config; Windows has no SIGHUP (POST /admin/reload works everywhere)
RELOAD_SIGNALS = (signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()


class App:
    def __init__(
        self,
        config: Config,
        upstream: Upstream | None = None,
        reloader: Callable[[], Config] | None = None,
    ) -> None:
        """`reloader` reads the config anew (POST /admin/reload and SIGHUP)."""
        self.upstream = upstream or Upstream()
        self.live = Live(config, reloader)
        self.proxy = Proxy(self.live, self.upstream)
        self.admin = Admin(self.live)

    async def __call__(self, request: Request) -> Response:
        rid = logs.request_id(request.header("x-request-id"))
        logs.REQUEST_ID.set(rid)
        response = await self.proxy(request)
        if response is None:
            response = await self.admin(request)
        if response is None:
            known = ", ".join(["/v1/models", *dialects.ENDPOINTS])
            message = f"no endpoint {request.path}; byok serves {known}"
            response = error_response("openai", 404, message)
        response.headers.append(("x-request-id", rid))
        return response

    async def maintain(self) -> None:
        """Background work while serving, until cancelled: idle upstream
        connections swept, blocked keys re-validated."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.upstream.sweep_idle)
            nursery.start_soon(self.live.revalidator.run, self.upstream)

    async def aclose(self) -> None:
        await self.upstream.aclose()


def raise_open_files_limit() -> None:
    """Each client connection and each upstream connection is a file
    descriptor: a gateway with thousands of concurrent streams needs more than
    the usual soft limit of 1024, so take what the hard limit allows."""
    try:
        import resource
    except ImportError:  # Windows has no such limit
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        # if refused, keep what we have: connects beyond it fail as refused
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def serve(
    config: Config, host: str, port: int, reloader: Callable[[], Config] | None = None
) -> None:
    """Run byok until SIGINT/SIGTERM, then drain for the grace period;
    SIGHUP reloads the config through `reloader`."""
    server = config.server
    limits = Limits(
        max_header_bytes=server.max_header_bytes,
        max_headers=server.max_headers,
        max_body_bytes=server.max_body_bytes,
        read_timeout=server.read_timeout,
        idle_timeout=server.idle_timeout,
    )
    app = App(config, reloader=reloader)
    shutdown = Shutdown()
    raise_open_files_limit()
    try:
        async with trio.open_nursery() as nursery:

            async def serving(*, task_status: trio.TaskStatus[Any]) -> None:
                await serve_http(app, host, port, limits, shutdown, task_status=task_status)
                nursery.cancel_scope.cancel()  # drained and done: maintain() stops too

            listeners = await nursery.start(serving)
            nursery.start_soon(app.maintain)
            log.info(
                "byok %s listening on http://%s:%d (%s; models: %s)",
                __version__,
                host,
                bound_port(listeners),
                config.source,
                ", ".join(config.models) or "passthrough",
            )
            wanted = (signal.SIGINT, signal.SIGTERM, *RELOAD_SIGNALS)
            with trio.open_signal_receiver(*wanted) as signals:
                async for signum in signals:
                    if signum in RELOAD_SIGNALS:
                        try:
                            await app.live.reload()
                        except ReloadError:
                            pass  # logged; nothing changed
                        except Exception:  # a reload must never take byok down
                            log.exception("reload failed, nothing changed")
                        continue
                    # a reload may have changed it
                    grace = app.live.runtime.config.server.shutdown_grace
                    log.info(
                        "%s: draining requests in flight for up to %gs",
                        signal.Signals(signum).name,
                        grace,
                    )
                    shutdown.start(grace)
                    break
    finally:
        with trio.CancelScope(shield=True):
            await app.aclose()
