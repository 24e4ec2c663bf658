"""`byok serve --workers N`: one supervisor and N byok processes on one port.

Theory of operation.  The supervisor holds the port.  It binds it once
without SO_REUSEPORT, which fails if anything listens there (another
program, or the workers of another group, which would otherwise share the
port silently), then keeps a socket bound to it with SO_REUSEPORT that never
listens: that turns port 0 into a number for the workers, and keeps the port
the group's while a worker restarts.  Each worker is `byok serve` itself
(``python -m byok serve --port P ...``) with ``$BYOK_WORKER`` naming its
index and its end of a socket pair to the supervisor (byok.app.Worker): it
opens its own listeners with SO_REUSEPORT, and the kernel spreads new
connections over the listeners that are open, so that while one worker is
down the others take every connection.  The keys' health lives in a
byok_core.HealthSegment that the supervisor creates and every worker
attaches (``$BYOK_HEALTH_SEGMENT``): a key that one worker saw rate-limited
cools for all of them at once, and a worker that dies leaves it as it was.
The workers' counters (metrics, the ledger) meet in a directory the
supervisor makes (``$BYOK_GROUP_DIR``, byok.telemetry.group), so that any
worker's /metrics and admin API show the group.

A worker says "ready" on its socket pair once it listens; the supervisor
says "listening on" once, when all of them have.  A worker that exits
unless told to is started again, 0.5 s later, then twice as late after each
exit that follows a start by less than a minute, up to 30 s.  SIGHUP: the
supervisor reads the config (a bad file: one line, and the workers keep the
one they have) and passes SIGHUP to every worker, each of which reloads as
a single byok does; a worker that reloaded because an admin asked it to
says "reload", and the supervisor passes SIGHUP to the others.  SIGINT or
SIGTERM: SIGTERM to every worker, which drains as a single byok does; the
supervisor ends when they all have.  A second signal ends their drains at
once (a SIGINT to each), a third kills them.  The workers run in a session
of their own, so that a terminal's Ctrl-C reaches the supervisor alone.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import tempfile
from collections.abc import AsyncIterator, Callable

import trio

from byok_core import HealthSegment

from . import __version__
from .app import (
    GROUP_ENV,
    HEALTH_ENV,
    READY,
    RELOAD,
    WORKER_ENV,
    Stopped,
    listening,
    set_listener_options,
)
from .config import Config, Redactor

log = logging.getLogger("byok")

FIRST_DELAY = 0.5  # seconds before a worker that exited starts again
MAX_DELAY = 30.0  # the delay doubles up to this
STABLE = 60.0  # a worker that ran this long before it exited starts again at FIRST_DELAY
MAX_WORKERS = 1024  # a bound on a typing mistake, far above any machine's cores


def worker_count(text: str | None) -> int:
    """The number of workers that --workers asks for: a whole number from
    1, or auto (one per core); ValueError says what to give.  Where the
    system cannot share a port between processes (no SO_REUSEPORT), 1,
    and a line that says why."""
    cores = os.cpu_count() or 1
    if text is None:
        return 1
    try:
        count = cores if text == "auto" else int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_WORKERS:
        raise ValueError(
            f"--workers {text}: give a number of processes, 1 to {MAX_WORKERS}, "
            f"or auto (one per core: {cores} here)"
        )
    if count > 1 and not hasattr(socket, "SO_REUSEPORT"):
        log.warning(
            "--workers %s: this system cannot share a port between processes "
            "(no SO_REUSEPORT): serving in one process",
            text,
        )
        return 1
    return count


def reserve(host: str, port: int) -> list[socket.socket]:
    """Sockets that hold `port` on every address of `host` for the group
    (port 0: a free port, the same on every address); ListenError if
    anything listens there already."""
    held: list[socket.socket] = []
    try:
        with listening(host, port):
            for family, kind, proto, _, address in socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            ):
                if held:  # port 0 chose the first address's port: the others take it too
                    address = (address[0], held[0].getsockname()[1], *address[2:])
                # without SO_REUSEPORT: listeners that share the port refuse this bind
                with socket.socket(family, kind, proto) as probe:
                    set_listener_options(probe, share=False)
                    probe.bind(address)
                    address = probe.getsockname()
                keeper = socket.socket(family, kind, proto)
                held.append(keeper)
                set_listener_options(keeper, share=True)
                keeper.bind(address)
    except BaseException:
        for sock in held:
            sock.close()
        raise
    return held


def run(
    config: Config,
    host: str,
    port: int,
    workers: int,
    command: list[str],
    validate: Callable[[], Config] | None,
) -> int:
    """Run `workers` byok processes on host:port until SIGINT or SIGTERM,
    then until they have drained: the exit status (0, or that of a worker
    that could not start).  `command` starts a worker (its --port follows);
    `validate` reads the config file anew on SIGHUP (None: no file).  A
    port in use raises ListenError; a drain ended by a second signal,
    Stopped."""
    held = reserve(host, port)
    try:
        with (
            HealthSegment.create(_capacity(config), workers=workers) as segment,
            # where the workers leave their counters for each other (byok.telemetry.group)
            tempfile.TemporaryDirectory(prefix="byok-group-") as counters,
        ):
            try:
                group = Supervisor(
                    config,
                    host,
                    held[0].getsockname()[1],
                    workers,
                    command,
                    validate,
                    segment,
                    counters,
                )
                trio.run(group.run)
                return group.status
            finally:
                segment.unlink()
    finally:
        for sock in held:
            sock.close()


def _capacity(config: Config) -> int:
    """Slots for a health table: four times the (pool, key) pairs of
    `config`, for the keys that reloads add (a slot is never freed), and
    never fewer than byok_core's default."""
    targets = {(t.provider, t.model) for m in config.models.values() for t in m.targets}
    pairs = sum(len(config.providers[provider].keys) for provider, _ in targets)
    pairs += sum(len(p.keys) for p in config.providers.values() if p.passthrough)
    return max(4096, 4 * pairs)


class Supervisor:
    """The workers of one group, kept running until the group stops."""

    def __init__(
        self,
        config: Config,
        host: str,
        port: int,
        size: int,
        command: list[str],
        validate: Callable[[], Config] | None,
        segment: HealthSegment,
        counters: str,
    ) -> None:
        self.config, self.host, self.port, self.size = config, host, port, size
        self.segment = segment
        self.counters = counters  # the directory of the workers' counters
        self.command = [*command, "--port", str(port)]
        self.validate = validate
        self.status = 0  # the exit status of the command
        self._processes: dict[int, trio.Process] = {}  # running workers by index
        self._ready: set[int] = set()  # those that listen
        self._announced = False  # every worker has listened once
        self._stopping = trio.Event()
        self._forced: int | None = None  # the signal that ended the drain

    async def run(self) -> None:
        """Until every worker has exited after a stop."""
        wanted = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
        with trio.open_signal_receiver(*wanted) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._take, signals)
                async with trio.open_nursery() as workers:
                    for index in range(self.size):
                        workers.start_soon(self._keep, index)
                nursery.cancel_scope.cancel()
        if self._forced is not None:
            raise Stopped(self._forced)

    def stop(self) -> None:
        """SIGTERM to every worker, none started again: each drains."""
        self._stopping.set()
        self._signal(signal.SIGTERM)

    async def _take(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            if signum == signal.SIGHUP:
                await self._reload()
            elif not self._stopping.is_set():
                log.info(
                    "%s: stopping %d workers; each drains its requests in flight",
                    signal.Signals(signum).name,
                    self.size,
                )
                self.stop()
            else:
                # SIGINT, not SIGTERM again: a worker that has not yet taken
                # the first would take the two as one
                forced = self._forced is not None
                self._forced = signum
                self._signal(signal.SIGKILL if forced else signal.SIGINT)

    async def _reload(self) -> None:
        if self.validate is None:
            log.warning(
                "SIGHUP: this byok was started without --config (keys from the "
                "environment): there is no file to read again; restart it to change its keys"
            )
            return
        try:
            self.config = await trio.to_thread.run_sync(self.validate)
        except (ValueError, OSError) as error:  # ConfigError is a ValueError
            reason = Redactor(self.config.secrets())(str(error))
            log.warning("reload refused, nothing changed in any worker: %s", reason)
            return
        self._signal(signal.SIGHUP)

    def _signal(self, signum: int, but: int | None = None) -> None:
        """`signum` to every running worker but `but`; SIGHUP only to those
        that listen (until then, one would end a worker: it reads the
        file as it starts)."""
        for index, process in self._processes.items():
            if index != but and (signum != signal.SIGHUP or index in self._ready):
                process.send_signal(signum)

    async def _keep(self, index: int) -> None:
        """Worker `index` running until the group stops."""
        delay = FIRST_DELAY
        while not self._stopping.is_set():
            started = trio.current_time()
            pid, code = await self._run_worker(index)
            if self._stopping.is_set():
                return
            if not self._announced:
                self._failed(index, pid, code)
                return
            # the calls it had in flight count against no key's max_inflight now
            self.segment.reclaim(index)
            if trio.current_time() - started >= STABLE:
                delay = FIRST_DELAY
            log.warning(
                "worker %d (pid %d) %s; starting it again in %gs",
                index,
                pid,
                _exit(code),
                delay,
            )
            with trio.move_on_after(delay):
                await self._stopping.wait()
            delay = min(delay * 2, MAX_DELAY)

    async def _run_worker(self, index: int) -> tuple[int, int]:
        """Start worker `index` and wait for its end: its pid, its exit status."""
        ours, theirs = socket.socketpair()
        with theirs:
            process = await trio.lowlevel.open_process(
                self.command,
                env={
                    **os.environ,
                    WORKER_ENV: f"{index}:{theirs.fileno()}",
                    HEALTH_ENV: self.segment.name,
                    GROUP_ENV: self.counters,
                },
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )
        self._processes[index] = process
        log.info("worker %d started (pid %d)", index, process.pid)
        if self._stopping.is_set():  # it began to stop while this one started
            process.send_signal(signal.SIGTERM)
        channel = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._hear, index, channel)
                code = await process.wait()
                nursery.cancel_scope.cancel()
        finally:
            del self._processes[index]
            self._ready.discard(index)
            await channel.aclose()
        return process.pid, code

    async def _hear(self, index: int, channel: trio.SocketStream) -> None:
        """What worker `index` says, a line at a time, until it is gone."""
        pending = b""
        async for data in channel:
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                if line == READY.encode():
                    self._listens(index)
                elif line == RELOAD.encode():
                    log.info("worker %d reloaded its config: the others reload too", index)
                    self._signal(signal.SIGHUP, but=index)

    def _listens(self, index: int) -> None:
        self._ready.add(index)
        if self._announced or len(self._ready) < self.size:
            return
        self._announced = True
        log.info(
            "byok %s listening on http://%s:%d (%s; models: %s; %d workers)",
            __version__,
            self.host,
            self.port,
            self.config.source,
            ", ".join(self.config.models) or "passthrough",
            self.size,
        )

    def _failed(self, index: int, pid: int, code: int) -> None:
        """Worker `index` ended before the group listened: the group stops.
        A worker that exited with a status said why (its one line, as a
        single byok says it); the status is the command's."""
        if code < 0:
            log.error("worker %d (pid %d) %s before it listened", index, pid, _exit(code))
        self.status = code if code > 0 else 1
        self.stop()


def _exit(code: int) -> str:
    """How a process ended, as its exit status (subprocess's) says it."""
    if code >= 0:
        return f"exited with status {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:  # a signal Python has no name for
        return f"was killed by signal {-code}"
