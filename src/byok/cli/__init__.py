"""The `byok` command: serve (the default), demo, check-config, keys check, status, tour."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

import trio

from .. import __version__
from ..config import Config, ConfigError, from_environment, load
from ..gateway.proxy import Proxy, ReloadError
from ..http.server import Limits, Shutdown, bound_port, serve_http
from ..telemetry import logs
from . import demo, tour


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.setup(
        getattr(args, "log_format", None) or "text",
        logging.WARNING if args.quiet else logging.INFO,
    )
    command = args.command or "serve"
    try:
        if command == "serve":
            return _serve(args)
        if command == "check-config":
            print(load(args.file).describe())
            return 0
        if command == "demo":
            return demo.run(port=args.port, duration=args.duration, traffic=not args.no_traffic)
        if command == "keys":
            from . import keys as keycheck

            config = getattr(args, "config", None)  # `keys check --config` or `byok --config`
            return keycheck.run(config, timeout=args.timeout, concurrency=args.concurrency)
        if command == "status":
            from . import status

            return status.run(args.url, args.admin_key)
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
        target.add_argument(
            "--log-format",
            choices=logs.FORMATS,
            help="text (the default: one readable line per event) or json (JSON lines)",
        )
    check = commands.add_parser("check-config", help="validate a config file, print its routes")
    check.add_argument("file")
    demo = commands.add_parser(
        "demo", help="simulated upstreams with a proxy in front, and a live key table"
    )
    demo.add_argument("--port", type=int, default=8787, help="the proxy's port (default 8787)")
    demo.add_argument("--duration", type=float, help="stop after this many seconds")
    demo.add_argument("--no-traffic", action="store_true", help="send no requests of its own")
    commands.add_parser("tour", help="the selection engine on simulated keys, no network")
    keys = commands.add_parser("keys", help="look after the upstream keys")
    key_commands = keys.add_subparsers(dest="keys_command", metavar="{check}", required=True)
    keys_check = key_commands.add_parser(
        "check",
        help="probe every configured key with its provider's models listing",
        description="Probe every configured key with its provider's models listing "
        "(no tokens spent) and print a verdict per key: valid, invalid, rate-limited, "
        "unreachable or error. Exit status 1 if a key is invalid.",
    )
    keys_check.add_argument(
        "--config",
        default=argparse.SUPPRESS,  # keeps a `byok --config FILE keys check`
        help="a TOML file; default: keys from the environment",
    )
    keys_check.add_argument(
        "--timeout", type=float, default=10.0, help="seconds per probe (default 10)"
    )
    keys_check.add_argument(
        "--concurrency", type=int, default=16, help="probes at once (default 16)"
    )
    status = commands.add_parser(
        "status",
        help="the key table of a running byok, from its admin API",
        description="Print the key table of a running byok serve (GET /admin/keys).",
    )
    status.add_argument(
        "--url", default="http://127.0.0.1:8787", help="the proxy (default http://127.0.0.1:8787)"
    )
    status.add_argument(
        "--admin-key",
        help="one of the proxy's [server] admin_keys; default: $BYOK_ADMIN_KEY",
    )
    return parser


def _serve(args: argparse.Namespace) -> int:
    path = args.config
    config = load(path) if path else from_environment()
    host = args.host or config.server.host
    port = config.server.port if args.port is None else args.port
    trio.run(serve, config, host, port, (lambda: load(path)) if path else None)
    return 0


# SIGHUP reloads the config; Windows has no SIGHUP (POST /admin/reload works everywhere)
_RELOAD_SIGNALS = (signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()


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
    """Run the proxy until SIGINT/SIGTERM, then drain for the grace period;
    SIGHUP reloads the config through `reloader`."""
    server = config.server
    limits = Limits(
        max_header_bytes=server.max_header_bytes,
        max_headers=server.max_headers,
        max_body_bytes=server.max_body_bytes,
        read_timeout=server.read_timeout,
        idle_timeout=server.idle_timeout,
    )
    proxy = Proxy(config, reloader=reloader)
    shutdown = Shutdown()
    log = logging.getLogger("byok")
    raise_open_files_limit()
    try:
        async with trio.open_nursery() as nursery:

            async def serving(*, task_status: trio.TaskStatus[Any]) -> None:
                await serve_http(proxy, host, port, limits, shutdown, task_status=task_status)
                nursery.cancel_scope.cancel()  # drained and done: maintain() stops too

            listeners = await nursery.start(serving)
            nursery.start_soon(proxy.maintain)
            log.info(
                "byok %s listening on http://%s:%d (%s; models: %s)",
                __version__,
                host,
                bound_port(listeners),
                config.source,
                ", ".join(config.models) or "passthrough",
            )
            wanted = (signal.SIGINT, signal.SIGTERM, *_RELOAD_SIGNALS)
            with trio.open_signal_receiver(*wanted) as signals:
                async for signum in signals:
                    if signum in _RELOAD_SIGNALS:
                        try:
                            await proxy.reload()
                        except ReloadError:
                            pass  # logged; nothing changed
                        except Exception:  # a reload must never take the proxy down
                            log.exception("reload failed, nothing changed")
                        continue
                    grace = proxy.config.server.shutdown_grace  # a reload may have changed it
                    log.info(
                        "%s: draining requests in flight for up to %gs",
                        signal.Signals(signum).name,
                        grace,
                    )
                    shutdown.start(grace)
                    break
    finally:
        with trio.CancelScope(shield=True):
            await proxy.aclose()
