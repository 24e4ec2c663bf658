"""The `byok` command: serve (the default), demo, check-config, keys check,
status, reload, usage, tour."""

from __future__ import annotations

import argparse
import builtins
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any

import trio

from .. import __version__, app, supervisor
from ..config import Config, ConfigError, from_environment, load
from ..providers import ANTHROPIC, OPENAI, base_url_problem
from ..telemetry import logs
from ..telemetry.usage_book import UsageBookError
from . import demo, tour

log = logging.getLogger("byok.config")
CONFIG_ENV = "BYOK_CONFIG"  # the config file of every command that takes --config
ENVIRONMENT = f"""\
environment:
  OPENAI_API_KEY, OPENAI_API_KEYS
                        upstream keys when there is no config (the KEYS
                        variables: comma-separated); every model passes through
  ANTHROPIC_API_KEY, ANTHROPIC_API_KEYS
                        the same for Anthropic
  OPENAI_BASE_URL       where those OpenAI keys go, with its /v1
                        (default {OPENAI.default_base_url})
  ANTHROPIC_BASE_URL    where those Anthropic keys go, the bare host
                        (default {ANTHROPIC.default_base_url})
  {CONFIG_ENV}           the config file when --config is not given (serve,
                        check-config, keys check, status, reload, usage)
  BYOK_ADMIN_KEY        the admin key of status and reload (default: the first
                        of the config's admin_keys)
  BYOK_USAGE_DB         the usage ledger that `byok usage` reads, in place of
                        the config's [usage] path (default: usage.sqlite3 in
                        $XDG_DATA_HOME/byok, else ~/.local/share/byok; in
                        ~/Library/Application Support/byok on macOS, in
                        %LOCALAPPDATA%\\byok on Windows)
  HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY (or lowercase)
                        the proxy that upstream requests go through, as curl
                        reads them; a provider's `proxy = "..."` overrides them
  SSL_CERT_FILE, SSL_CERT_DIR
                        where the trusted CA certificates are, in place of
                        OpenSSL's default paths; a provider's `ca_file` replaces them
  XDG_RUNTIME_DIR       where the lock files of OAuth refreshes go, in a
                        directory of byok's user alone (default: the system's
                        temporary directory)
  BYOK_NO_EXTENSIONS=1  the engine's pure-Python twin instead of the compiled one
  and any variable that a config names as env:NAME
"""


def main(argv: Sequence[str] | None = None) -> int:
    """`byok ARGS`: the exit status each command gives, 2 for an expected
    failure (said in one line on stderr), 128 + a signal's number when
    SIGINT or SIGTERM ended the command (`serve` drains on the first: 0)."""
    args = _parser().parse_args(argv)
    logs.setup(
        getattr(args, "log_format", None) or "text",
        logging.WARNING if args.quiet else logging.INFO,
    )
    command = args.command or "serve"
    name = f"keys {args.keys_command}" if command == "keys" else command  # for messages
    with _sigterm_interrupts(name) as terminated:
        try:
            return _dispatch(command, args)
        except BaseException as error:
            return _ended(name, error, terminated)


def _dispatch(command: str, args: argparse.Namespace) -> int:
    try:
        if command == "serve":
            return _serve(args)
        if command == "check-config":
            return _check_config(args)
        if command == "demo":
            return demo.run(port=args.port, duration=args.duration, traffic=not args.no_traffic)
        if command == "keys":
            from . import keys as keycheck

            return keycheck.run(
                _config_path(args), timeout=args.timeout, concurrency=args.concurrency
            )
        if command == "status":
            from . import status

            return status.run(_config_path(args), args.url, args.admin_key)
        if command == "reload":
            from . import reload

            return reload.run(_config_path(args), args.url, args.admin_key)
        if command == "usage":
            from . import usage

            if args.db and args.config:
                print(
                    "byok usage: --db and --config both name the ledger: give one", file=sys.stderr
                )
                return 2
            return usage.run(
                db=args.db,
                config_path=_config_path(args),
                by=args.by,
                since=args.since,
                until=args.until,
                form=args.format,
            )
        return tour.run()
    except (ConfigError, UsageBookError) as error:
        print(f"byok: {error}", file=sys.stderr)
        return 2


# trio raises what a task raised wrapped in exception groups, one per nursery
# it crossed: the built-in ones from 3.11, the backport (a dependency of
# trio's) before
if sys.version_info >= (3, 11):
    _GROUPS: tuple[type[Any], ...] = (builtins.BaseExceptionGroup,)
else:
    _GROUPS = (importlib.import_module("exceptiongroup").BaseExceptionGroup,)
# a failure said in one line, not a bug
_EXPECTED = (ConfigError, app.ListenError, UsageBookError)


@contextlib.contextmanager
def _sigterm_interrupts(command: str) -> Iterator[list[int]]:
    """While a command runs, SIGTERM ends it as Ctrl-C does: a
    KeyboardInterrupt, raised through SIGINT's handler of the moment, which
    is trio's own while trio runs (it interrupts only where that is safe).
    The list it yields holds SIGTERM once one came.  Commands that take
    signals themselves (serve, demo) override this while they can."""
    terminated: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield terminated  # only the main thread may set signal handlers
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        terminated.append(signum)
        interrupt = signal.getsignal(signal.SIGINT)
        if callable(interrupt):
            interrupt(signal.SIGINT, frame)
        elif trio.lowlevel.in_trio_run():
            # SIGINT is ignored (a background job of a script), so trio took
            # no handler of its own: nothing can interrupt it safely, and
            # nothing a command holds needs more than the system's cleanup
            os.write(2, f"byok {command}: stopped by SIGTERM\n".encode())
            os._exit(128 + signum)
        else:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield terminated
    finally:
        signal.signal(signal.SIGTERM, previous)


def _ended(command: str, error: BaseException, terminated: list[int]) -> int:
    """The exit status of a command that raised `error`: a signal ends it
    with a line and 128 + the signal's number, an expected failure with a
    line and 2, a closed pipe quietly; anything else is a bug, raised on
    with its traceback."""
    leaves = _leaves(error)
    if all(isinstance(leaf, (KeyboardInterrupt, app.Stopped)) for leaf in leaves):
        # a signal that the command took itself (Stopped), or a KeyboardInterrupt
        # from SIGINT or, through _sigterm_interrupts, SIGTERM
        stopped = [leaf.signum for leaf in leaves if isinstance(leaf, app.Stopped)]
        signum = (stopped or terminated or [signal.SIGINT])[0]
        print(f"byok {command}: stopped by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + signum
    if len(leaves) == 1 and isinstance(leaves[0], _EXPECTED):
        print(f"byok: {leaves[0]}", file=sys.stderr)
        return 2
    if all(isinstance(leaf, BrokenPipeError) for leaf in leaves):
        # the reader left (`byok ... | head`): as if SIGPIPE had ended us, and
        # with nothing left to flush at exit (Python's "Note on SIGPIPE")
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # SIGPIPE's number (a name Windows lacks)
    raise error


def _leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside `error`, out of their groups."""
    if isinstance(error, _GROUPS):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="byok",
        description="A bring-your-own-keys gateway for LLM APIs.",
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"byok {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser(
        "serve",
        help="run the proxy (the default command)",
        description="Run the proxy until SIGINT or SIGTERM; SIGHUP or `byok reload` reads "
        "the config file again.",
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for target in (parser, serve):
        # the subcommand's copies default to nothing, so that `byok --port 9 serve` keeps 9
        default = None if target is parser else argparse.SUPPRESS
        _config_option(target, "a TOML file", default)
        target.add_argument(
            "--host", default=default, help="address to listen on (overrides the config)"
        )
        target.add_argument(
            "--port", type=int, default=default, help="port to listen on (overrides the config)"
        )
        target.add_argument(
            "--workers",
            default=default,
            metavar="N",
            help="processes that serve the port together, each on a core: a number, or "
            "auto for one per core (default 1: byok alone, no supervisor)",
        )
        target.add_argument(
            "--log-format",
            choices=logs.FORMATS,
            default=default,
            help="text (the default: one readable line per event) or json (JSON lines)",
        )
    check = commands.add_parser(
        "check-config",
        help="validate a config file, print its routes",
        description="Validate a config (or the keys of the environment) and print its "
        "routes; warn about base URLs that are probably wrong.  Exit status 2 if it "
        "is invalid.",
    )
    _config_option(check, "the TOML file to check")
    check.add_argument("file", nargs="?", help="the same as --config FILE")
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
        "unreachable or error. Exit status 1 if a key is invalid or a models listing "
        "answers 404 (a wrong base URL, such as an OpenAI-style one without /v1).",
    )
    _config_option(keys_check, "a TOML file")
    keys_check.add_argument(
        "--timeout", type=float, default=10.0, help="seconds per probe (default 10)"
    )
    keys_check.add_argument(
        "--concurrency", type=int, default=16, help="probes at once (default 16)"
    )
    status = commands.add_parser(
        "status",
        help="the key table of a running byok, from its admin API",
        description="Print the key table of a running byok serve (GET /admin/keys). "
        "Exit status 2 if it cannot be asked.",
    )
    reload = commands.add_parser(
        "reload",
        help="make a running byok read its config file again",
        description="Make a running byok serve read its config file again "
        "(POST /admin/reload) and print what changed.  Exit status 1 if it refused "
        "the file (nothing changed; the reason says where the file is wrong), 2 if it "
        "cannot be asked.",
    )
    for target in (status, reload):
        _config_option(target, "the proxy's config: where it listens, its admin key", otherwise="")
        target.add_argument(
            "--url",
            help="the proxy, such as http://127.0.0.1:8787 (default: [server] host and "
            "port of the config, else http://127.0.0.1:8787)",
        )
        target.add_argument(
            "--admin-key",
            help="one of the proxy's [server] admin_keys (default: $BYOK_ADMIN_KEY, "
            "else the config's first)",
        )
    _usage_parser(commands)
    return parser


def _usage_parser(commands: Any) -> None:
    usage = commands.add_parser(
        "usage",
        help="requests, tokens and cost from the usage ledger",
        description="Print the requests, tokens, errors and cost that the usage ledger "
        "holds, summed by the --by columns, for the hours from --since to --until (UTC). "
        "It reads --db, else $BYOK_USAGE_DB, else the config's [usage] path, else the "
        "default path; it never writes it.  No ledger there yet: a line says so, exit "
        "status 0.  Exit status 2 if it cannot be read.",
    )
    _config_option(usage, "the proxy's config: its [usage] path", otherwise="")
    usage.add_argument("--db", metavar="PATH", help="the usage ledger (an SQLite file)")
    usage.add_argument(
        "--by",
        default="day,client,model,key",
        metavar="COLUMNS",
        help="sum by these, comma-separated: hour, day, month, client, provider, key (a "
        "provider's key label), model (default: day,client,model,key)",
    )
    usage.add_argument(
        "--since",
        metavar="WHEN",
        help="from the hour that holds WHEN: 2026-12-01, 2026-12-01T10:00 (UTC), or an "
        "age such as 7d, 24h, 30m (default: the start of this month, UTC)",
    )
    usage.add_argument(
        "--until", metavar="WHEN", help="up to WHEN, as --since takes it (default: now)"
    )
    usage.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="table (the default), csv (a header row first) or json (a list of objects)",
    )


def _config_option(
    command: argparse.ArgumentParser,
    what: str,
    default: str | None = argparse.SUPPRESS,
    otherwise: str = ", else keys from the environment",
) -> None:
    """--config on `command`; by default only a given one is set, so that
    `byok --config FILE keys check` keeps FILE."""
    command.add_argument(
        "--config",
        default=default,
        metavar="FILE",
        help=f"{what} (default: ${CONFIG_ENV}{otherwise})",
    )


def _config_path(args: argparse.Namespace) -> str | None:
    """The config file of a command: --config, else $BYOK_CONFIG, else none."""
    return args.config or os.environ.get(CONFIG_ENV, "").strip() or None


def _check_config(args: argparse.Namespace) -> int:
    if args.file and args.config and args.file != args.config:
        print(
            f"byok check-config: two files given, {args.file} and --config {args.config}: give one",
            file=sys.stderr,
        )
        return 2
    path = args.file or _config_path(args)
    config = load(path) if path else from_environment()
    print(config.describe())
    for warning in base_url_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def base_url_warnings(config: Config) -> list[str]:
    """A line for each provider whose base URL is probably wrong
    (providers.base_url_problem), named as the config names it."""
    found = []
    for provider in config.providers.values():
        problem = base_url_problem(provider.kind, provider.base_url)
        if problem is not None:
            where = (
                f"{provider.name.upper()}_BASE_URL"  # from_environment's providers
                if config.source == "environment"
                else f"[providers.{provider.name}]"
            )
            found.append(f"{where} {problem}")
    return found


def _serve(args: argparse.Namespace) -> int:
    worker = app.Worker.from_environment()  # started by a supervisor: one of its workers
    try:
        workers = 1 if worker else supervisor.worker_count(args.workers)
    except ValueError as error:
        print(f"byok serve: {error}", file=sys.stderr)
        return 2
    # of a group, worker 0 alone says what looks wrong in the config (not N times)
    warns = worker.index == 0 if worker else workers == 1
    path = _config_path(args)
    config = _read(path, warns)
    host = args.host or config.server.host
    port = config.server.port if args.port is None else args.port
    if workers > 1:
        command = [sys.executable, "-m", "byok", *(["-q"] if args.quiet else []), "serve"]
        command += ["--host", host, "--log-format", args.log_format or "text"]
        command += ["--config", path] if path else []
        validate = (lambda: load(path)) if path else None
        return supervisor.run(config, host, port, workers, command, validate)
    app.run(config, host, port, (lambda: _read(path, warns)) if path else None, worker)
    return 0


def _read(path: str | None, warns: bool) -> Config:
    """The config of `path`, else of the environment; with `warns`, its
    probable mistakes logged."""
    config = load(path) if path else from_environment()
    return _warned(config) if warns else config


def _warned(config: Config) -> Config:
    """`config`, its probable mistakes logged: at start, and at each reload."""
    for warning in base_url_warnings(config):
        log.warning("%s", warning)
    return config
