"""The `byok` command: serve (the default), demo, check-config, keys check, status, tour."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import trio

from .. import __version__, app
from ..config import ConfigError, from_environment, load
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
    trio.run(app.serve, config, host, port, (lambda: load(path)) if path else None)
    return 0
