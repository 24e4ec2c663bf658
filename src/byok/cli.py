"""The `byok` command: serve (the default), demo, check-config, tour."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

import trio

from . import __version__, demo, tour
from .config import Config, ConfigError, from_environment, load
from .proxy import Proxy
from .server import Limits, Shutdown, bound_port, serve_http


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if not args.quiet else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # One line per request is on the hot path: skip the caller lookup and the
    # thread and process names that no byok format shows (the logging HOWTO's
    # "Optimization" section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # byok logs one line per request itself; httpx's own line per upstream call is noise
    for noisy in ("httpx", "httpx2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    command = args.command or "serve"
    try:
        if command == "serve":
            return _serve(args)
        if command == "check-config":
            print(load(args.file).describe())
            return 0
        if command == "demo":
            return demo.run(port=args.port, duration=args.duration, traffic=not args.no_traffic)
        return tour.run([])
    except ConfigError as error:
        print(f"byok: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="byok", description="A bring-your-own-keys gateway for LLM APIs."
    )
    parser.add_argument("--version", action="version", version=f"byok {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the proxy (the default command)")
    for target in (parser, serve):
        target.add_argument("--config", help="a TOML file; default: keys from the environment")
        target.add_argument("--host", help="address to listen on (overrides the config)")
        target.add_argument("--port", type=int, help="port to listen on (overrides the config)")
    check = commands.add_parser("check-config", help="validate a config file, print its routes")
    check.add_argument("file")
    demo = commands.add_parser(
        "demo", help="simulated upstreams with a proxy in front, and a live key table"
    )
    demo.add_argument("--port", type=int, default=8787, help="the proxy's port (default 8787)")
    demo.add_argument("--duration", type=float, help="stop after this many seconds")
    demo.add_argument("--no-traffic", action="store_true", help="send no requests of its own")
    commands.add_parser("tour", help="the selection engine on simulated keys, no network")
    return parser


def _serve(args: argparse.Namespace) -> int:
    config = load(args.config) if args.config else from_environment()
    host = args.host or config.server.host
    port = config.server.port if args.port is None else args.port
    trio.run(serve, config, host, port)
    return 0


async def serve(config: Config, host: str, port: int) -> None:
    """Run the proxy until SIGINT/SIGTERM, then drain for the grace period."""
    server = config.server
    limits = Limits(
        max_header_bytes=server.max_header_bytes,
        max_headers=server.max_headers,
        max_body_bytes=server.max_body_bytes,
        read_timeout=server.read_timeout,
        idle_timeout=server.idle_timeout,
    )
    proxy = Proxy(config)
    shutdown = Shutdown()
    log = logging.getLogger("byok")
    try:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(serve_http, proxy, host, port, limits, shutdown)
            log.info(
                "byok %s listening on http://%s:%d (%s; models: %s)",
                __version__,
                host,
                bound_port(listeners),
                config.source,
                ", ".join(config.models) or "passthrough",
            )
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    log.info(
                        "%s: draining requests in flight for up to %gs",
                        signal.Signals(signum).name,
                        server.shutdown_grace,
                    )
                    shutdown.start(server.shutdown_grace)
                    break
    finally:
        with trio.CancelScope(shield=True):
            await proxy.aclose()
