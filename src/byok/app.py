"""byok as one server: the gateway's endpoints and the operator's, on one
listener, with the work that runs beside them, until a signal stops it.

``App`` is what the HTTP server calls for each request: the proxy answers the
LLM endpoints and the models listing, the admin API everything else it knows
(health, readiness, the admin routes, metrics, the dashboard), and the rest
is a 404.  Both read the same ``Live`` runtime; neither holds the other.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import socket
from collections.abc import Callable, Iterator
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
            nursery.start_soon(self.upstream.housekeeping)
            nursery.start_soon(self.live.revalidator.run, self.upstream)

    async def aclose(self) -> None:
        await self.upstream.aclose()


class Stopped(Exception):
    """A signal ended the command before its time (the demo, or a drain cut
    short): it exits 128 + the signal's number, as a shell reports it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


class ListenError(Exception):
    """The listener could not be opened: why, and what to do, in one sentence."""


@contextlib.contextmanager
def listening(host: str, port: int) -> Iterator[None]:
    """Around the start of a listener: a port out of range, or the OSError of
    a bind that failed, becomes a ListenError that says what to do."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if not 0 <= port <= 65535:
        # the resolver would take it modulo 65536 and listen elsewhere
        raise ListenError(f"cannot listen on {where}: a port is 0 to 65535; pick one with --port")
    try:
        yield
    except OSError as error:
        raise ListenError(f"cannot listen on {where}: {_why(port, error)}") from None


def _why(port: int, error: OSError) -> str:
    if isinstance(error, socket.gaierror):
        return f"no such host ({error.strerror}); pick another with --host"
    if error.errno == errno.EADDRINUSE:
        return "the address is in use (another byok?); pick another with --port"
    if error.errno in (errno.EACCES, errno.EPERM):
        if port < 1024:
            return (
                "permission denied (a port below 1024 needs root or CAP_NET_BIND_SERVICE); "
                "pick another with --port"
            )
        return "permission denied; pick another with --port"
    if error.errno == errno.EADDRNOTAVAIL:
        return "the address is not one of this machine's; pick another with --host"
    return f"{error.strerror or error}"


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
    """Run byok until SIGINT/SIGTERM, then drain for the grace period and
    return (a shutdown that was asked for is a success: the command exits 0,
    as systemd and docker expect of a server); a second SIGINT or SIGTERM
    ends the drain at once with Stopped.  SIGHUP reloads the config through
    `reloader`.  A listener that cannot open raises ListenError."""
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

            wanted = (signal.SIGINT, signal.SIGTERM, *RELOAD_SIGNALS)
            # taken before the listener opens (a signal that comes while byok
            # starts waits its turn) until the drain is done: serving() then
            # cancels this loop
            with trio.open_signal_receiver(*wanted) as signals:
                with listening(host, port):
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
                async for signum in signals:
                    if signum in RELOAD_SIGNALS:
                        try:
                            await app.live.reload()
                        except ReloadError:
                            pass  # logged; nothing changed
                        except Exception:  # a reload must never take byok down
                            log.exception("reload failed, nothing changed")
                        continue
                    if shutdown.requested.is_set():
                        raise Stopped(signum)  # a second one: the drain ends at once
                    # a reload may have changed it
                    grace = app.live.runtime.config.server.shutdown_grace
                    log.info(
                        "%s: draining requests in flight for up to %gs",
                        signal.Signals(signum).name,
                        grace,
                    )
                    app.admin.draining = True  # /ready: 503 from now on
                    shutdown.start(grace)
    finally:
        with trio.CancelScope(shield=True):
            await app.aclose()
