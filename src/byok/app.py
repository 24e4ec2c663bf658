"""byok as one server: the gateway's endpoints and the operator's, on one
listener, with the work that runs beside them, until a signal stops it.

``App`` is what the HTTP server calls for each request: the proxy answers the
LLM endpoints and the models listing, the admin API everything else it knows
(health, readiness, the admin routes, metrics, the dashboard), and the rest
is a 404.  Both read the same ``Live`` runtime; neither holds the other.

``serve()`` runs one byok process: on its own, or as one worker of the
group that ``byok serve --workers N`` starts (byok.supervisor).  A worker
opens its listeners with SO_REUSEPORT, tells the supervisor over a socket
pair when it listens (the supervisor then says so once for the group) and
when an admin had it reload (the supervisor then reloads the others), and
drains when that socket pair ends (the supervisor is gone).  Every serve
runs on ``MonotonicClock``: the deadlines that byok hands the engine are
then comparable across the processes that share its health table.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import trio

from byok_core import HealthSegment

from . import __version__
from .config import Config
from .gateway import dialects
from .gateway.proxy import Proxy
from .gateway.relay import error_response
from .gateway.routing import share_health
from .gateway.runtime import Live, ReloadError, Runtime
from .http.server import Limits, Request, Response, Shutdown, bound_port, serve_http
from .http.upstream import Upstream
from .ops.admin import Admin
from .telemetry import logs
from .telemetry.group import GroupShare, publish_every

log = logging.getLogger("byok")

# SIGHUP reloads the config; Windows has no SIGHUP (POST /admin/reload works everywhere)
RELOAD_SIGNALS = (signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()

# set by the supervisor in each worker's environment: "INDEX:FD", FD the
# worker's end of the socket pair to the supervisor
WORKER_ENV = "BYOK_WORKER"
# the name of the group's shared health table (byok_core.HealthSegment)
HEALTH_ENV = "BYOK_HEALTH_SEGMENT"
# ... and the directory where the workers leave their counters for each other
GROUP_ENV = "BYOK_GROUP_DIR"
# what a worker tells its supervisor, a line each
READY, RELOAD = "ready", "reload"
# True in the task that reloads on SIGHUP: in a worker, that signal came
# from the supervisor, which sends it to every worker, so the worker does
# not ask it to reload the others
_SIGNALLED: contextvars.ContextVar[bool] = contextvars.ContextVar("byok_sighup", default=False)
# the backlog trio gives its listeners; the kernel caps it at somaxconn
_BACKLOG = 0xFFFF


class App:
    def __init__(
        self,
        config: Config,
        upstream: Upstream | None = None,
        reloader: Callable[[], Config] | None = None,
        worker: int | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """`reloader` reads the config anew (POST /admin/reload and SIGHUP);
        `worker`, the index of this process in a group of workers, goes out
        on every answer as x-byok-worker (which process answered); `wall` is
        the wall clock short-lived tokens expire on (a test's is virtual)."""
        self.upstream = upstream or Upstream()
        self.live = Live(config, reloader, wall)
        self.proxy = Proxy(self.live, self.upstream)
        self.admin = Admin(self.live)
        self._worker = None if worker is None else ("x-byok-worker", str(worker))

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
        if self._worker is not None:
            response.headers.append(self._worker)
        return response

    async def maintain(self) -> None:
        """Background work while serving, until cancelled: idle upstream
        connections swept, blocked keys re-validated, short-lived keys'
        tokens renewed, request lines written."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.upstream.housekeeping)
            nursery.start_soon(self.live.revalidator.run, self.upstream)
            nursery.start_soon(self.live.credentials.run, self.upstream)
            nursery.start_soon(logs.flush_lines)
            nursery.start_soon(self.live.hand_over_usage)

    async def aclose(self) -> None:
        await self.upstream.aclose()
        await trio.to_thread.run_sync(self.live.close)  # the usage ledger's last write


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


class MonotonicClock(trio.abc.Clock):
    """trio's clock read from time.monotonic() itself, which every process
    on the machine shares (trio's own clock adds a random offset per run).
    The engine's cooldowns are deadlines on the clock byok hands it, so the
    workers that share one health table must all hand it this one."""

    def start_clock(self) -> None:
        """Nothing to start: the system's clock runs already."""

    def current_time(self) -> float:
        return time.monotonic()

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return deadline - time.monotonic()


class Worker:
    """This process as worker `index` of a `byok serve --workers N` group:
    `channel` its end of the socket pair to the supervisor, `segment` the
    health table of the group's keys."""

    def __init__(
        self,
        index: int,
        channel: socket.socket,
        segment: HealthSegment | None = None,
        counters: GroupShare | None = None,
    ) -> None:
        self.index = index
        self.segment = segment
        self.counters = counters
        self._channel = trio.SocketStream(trio.socket.from_stdlib_socket(channel))
        self._telling = trio.Lock()  # a ready and a reload may be said at once

    @classmethod
    def from_environment(cls) -> Worker | None:
        """The worker that $BYOK_WORKER and $BYOK_HEALTH_SEGMENT describe;
        None in a byok of its own."""
        value = os.environ.get(WORKER_ENV)
        if not value:
            return None
        index, fd = (int(part) for part in value.split(":"))
        name = os.environ.get(HEALTH_ENV)
        segment = HealthSegment.attach(name, worker=index) if name else None
        directory = os.environ.get(GROUP_ENV)
        counters = GroupShare(directory, index) if directory else None
        return cls(index, socket.socket(fileno=fd), segment, counters)

    def share_counters(self, runtime: Runtime) -> dict[str, Callable[[], bytes]]:
        """Have `runtime`'s metrics and ledger show the group's counts, after
        taking over those that this index's previous worker left: the
        snapshots to publish for the others (publish_every)."""
        share = self.counters
        if share is None:
            return {}
        metrics, ledger = runtime.metrics, runtime.ledger
        for name, owner in (("metrics", metrics), ("ledger", ledger)):
            previous = share.previous(name)
            if previous is not None:
                try:
                    owner.absorb(previous)
                except msgspec.DecodeError:  # left by another version: counted anew
                    log.warning("ignored the %s a previous worker %d left", name, self.index)
        metrics.group = ledger.group = share
        return {"metrics": metrics.export, "ledger": ledger.export}

    async def ready(self) -> None:
        """Tell the supervisor that this worker listens."""
        await self._tell(READY)

    def reloading_the_group(self, reloader: Callable[[], Config]) -> Callable[[], Config]:
        """`reloader`, which also asks the supervisor to reload the other
        workers once it read the file, unless a SIGHUP from the supervisor
        (which all the workers got) is what has this worker reload."""

        def reload() -> Config:
            config = reloader()  # in a thread of trio's (Live.reload)
            if not _SIGNALLED.get():
                trio.from_thread.run(self._tell, RELOAD)
            return config

        return reload

    async def watch(self, gone: Callable[[], None]) -> None:
        """Call `gone` when the supervisor is gone (its end of the socket
        pair closed: it never writes to this one)."""
        with contextlib.suppress(trio.BrokenResourceError):
            while await self._channel.receive_some():
                pass
        if self.segment is not None:
            # the supervisor would have removed it; no worker attaches it again
            self.segment.unlink()
        gone()

    async def _tell(self, message: str) -> None:
        async with self._telling:
            # a supervisor that is gone hears nothing: watch() drains this worker
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self._channel.send_all(f"{message}\n".encode())


def set_listener_options(sock: socket.socket | trio.socket.SocketType, *, share: bool) -> None:
    """The options trio gives a listening socket (SO_REUSEADDR: a port whose
    last connections wait in TIME_WAIT is free; IPv6 alone on an IPv6
    socket) and, with `share`, SO_REUSEPORT: every socket of the same user
    bound with it shares the port, and the kernel spreads new connections
    over the ones that listen."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if share:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)


async def open_shared_listeners(host: str, port: int) -> list[trio.SocketListener]:
    """Listeners on every address of `host` at `port`, which the other
    workers of the group open too (SO_REUSEPORT)."""
    listeners: list[trio.SocketListener] = []
    try:
        for family, kind, proto, _, address in await trio.socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        ):
            sock = trio.socket.socket(family, kind, proto)
            try:
                set_listener_options(sock, share=True)
                await sock.bind(address)
                sock.listen(_BACKLOG)
            except BaseException:
                sock.close()
                raise
            listeners.append(trio.SocketListener(sock))
    except BaseException:
        for listener in listeners:
            listener.socket.close()
        raise
    return listeners


def run(
    config: Config,
    host: str,
    port: int,
    reloader: Callable[[], Config] | None = None,
    worker: Worker | None = None,
) -> None:
    """serve() in a trio run of its own, on MonotonicClock."""
    trio.run(serve, config, host, port, reloader, worker, clock=MonotonicClock())


async def serve(
    config: Config,
    host: str,
    port: int,
    reloader: Callable[[], Config] | None = None,
    worker: Worker | None = None,
) -> None:
    """Run byok until SIGINT/SIGTERM, then drain for the grace period and
    return (a shutdown that was asked for is a success: the command exits 0,
    as systemd and docker expect of a server); a second SIGINT or SIGTERM
    ends the drain at once with Stopped.  SIGHUP reloads the config through
    `reloader`.  A listener that cannot open raises ListenError.

    As a `worker`, it shares the port with the other workers, leaves the
    listening line to the supervisor, has a reload that an admin asked for
    reach the whole group, and drains when the supervisor is gone."""
    server = config.server
    limits = Limits(
        max_header_bytes=server.max_header_bytes,
        max_headers=server.max_headers,
        max_body_bytes=server.max_body_bytes,
        read_timeout=server.read_timeout,
        idle_timeout=server.idle_timeout,
    )
    if worker is not None:
        share_health(worker.segment)  # before the first pools are made
        if reloader is not None:
            reloader = worker.reloading_the_group(reloader)
    app = App(config, reloader=reloader, worker=None if worker is None else worker.index)
    # the group's counts in this worker's pages, before it serves
    snapshots = {} if worker is None else worker.share_counters(app.live.runtime)
    shutdown = Shutdown()
    raise_open_files_limit()
    try:
        async with trio.open_nursery() as nursery:

            async def serving(*, task_status: trio.TaskStatus[Any]) -> None:
                shared = None if worker is None else await open_shared_listeners(host, port)
                await serve_http(
                    app, host, port, limits, shutdown, listeners=shared, task_status=task_status
                )
                nursery.cancel_scope.cancel()  # drained and done: maintain() stops too

            def drain(why: str) -> None:
                # a reload may have changed it
                grace = app.live.runtime.config.server.shutdown_grace
                log.info("%s: draining requests in flight for up to %gs", why, grace)
                app.admin.draining = True  # /ready: 503 from now on
                shutdown.start(grace)

            def orphaned() -> None:
                if not shutdown.requested.is_set():
                    drain("the supervisor is gone")

            wanted = (signal.SIGINT, signal.SIGTERM, *RELOAD_SIGNALS)
            # taken before the listener opens (a signal that comes while byok
            # starts waits its turn) until the drain is done: serving() then
            # cancels this loop
            with trio.open_signal_receiver(*wanted) as signals:
                if config.cluster is not None:  # the other replicas' key states, before serving
                    # imported here: coredis takes a third of a second to import
                    from .cluster import serve_cluster

                    await nursery.start(serve_cluster, app.live, config.cluster)
                with listening(host, port):
                    listeners = await nursery.start(serving)
                nursery.start_soon(app.maintain)
                if worker is None:
                    log.info(
                        "byok %s listening on http://%s:%d (%s; models: %s)",
                        __version__,
                        host,
                        bound_port(listeners),
                        config.source,
                        ", ".join(config.models) or "passthrough",
                    )
                else:  # the supervisor says it once, when every worker listens
                    await worker.ready()
                    nursery.start_soon(worker.watch, orphaned)
                    if worker.counters is not None:
                        nursery.start_soon(publish_every, worker.counters, snapshots)
                async for signum in signals:
                    if signum in RELOAD_SIGNALS:
                        signalled = _SIGNALLED.set(True)
                        try:
                            await app.live.reload()
                        except ReloadError:
                            pass  # logged; nothing changed
                        except Exception:  # a reload must never take byok down
                            log.exception("reload failed, nothing changed")
                        finally:
                            _SIGNALLED.reset(signalled)
                        continue
                    if shutdown.requested.is_set():
                        raise Stopped(signum)  # a second one: the drain ends at once
                    drain(signal.Signals(signum).name)
    finally:
        with trio.CancelScope(shield=True):
            await app.aclose()
