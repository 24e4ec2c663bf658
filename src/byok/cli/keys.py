"""`byok keys check`: does each configured key still work?

Every key of every provider is probed at once (at most ``concurrency`` at a
time, each within ``timeout``) with the key probe of gateway/probe.py, the
models listing: no tokens are spent.  Verdicts: valid, invalid,
rate-limited, unreachable, error (the probe's docstring says which is which).
The table names keys by label and fingerprint; a secret is never formatted,
and any text that comes from elsewhere is scrubbed of every configured secret
before it prints.  The check fails (exit status 1) when a key is invalid or
a models listing answered 404 (its base URL is wrong, so every request with
that provider would fail too), else it passes (0).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from typing import TextIO

import trio

from ..config import Config, Key, Provider, from_environment, load
from ..credentials import Credentials
from ..gateway.probe import VERDICTS, Check, check_key
from ..http.upstream import Upstream
from .tables import columns

DEFAULT_TIMEOUT = 10.0
DEFAULT_CONCURRENCY = 16


async def check_all(
    config: Config,
    timeout: float = DEFAULT_TIMEOUT,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Callable[[int], None] | None = None,
) -> list[Check]:
    """Every key of every provider, probed concurrently; in the config's order.

    `progress(done)` is called as each probe ends."""
    keys = [(p, k) for p in config.providers.values() for k in p.keys]
    results: list[Check | None] = [None] * len(keys)
    limiter = trio.CapacityLimiter(concurrency)
    upstream = Upstream()
    # short-lived keys' tokens, refreshed if expired, but not a cluster's:
    # its replicas refresh them under its lock
    credentials = Credentials(may_refresh=config.cluster is None)
    credentials.adopt(config.short_lived())
    done = 0

    async def one(n: int, provider: Provider, key: Key) -> None:
        nonlocal done
        async with limiter:
            results[n] = await check_key(upstream, provider, key, timeout, credentials)
        done += 1
        if progress is not None:
            progress(done)

    try:
        async with trio.open_nursery() as nursery:
            for n, (provider, key) in enumerate(keys):
                nursery.start_soon(one, n, provider, key)
    finally:
        with trio.CancelScope(shield=True):
            await upstream.aclose()
    return [r for r in results if r is not None]


class Progress:
    """`checking 3/8 keys [#######.......]` on a terminal, redrawn in place;
    elsewhere (a pipe, a file) nothing until the closing line."""

    WIDTH = 20

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream = stream
        self.total = total
        self.started = time.perf_counter()
        self.live = _isatty(stream)
        self._drawn = 0  # length of the line on screen

    def update(self, done: int) -> None:
        if not self.live:
            return
        filled = self.WIDTH * done // max(self.total, 1)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self._draw(f"checking {done}/{self.total} keys [{bar}]")

    def finish(self) -> None:
        elapsed = time.perf_counter() - self.started
        noun = "key" if self.total == 1 else "keys"
        line = f"checked {self.total} {noun} in {elapsed:.1f} s"
        if self.live:
            self._draw(line)
            self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _draw(self, line: str) -> None:
        self.stream.write("\r" + line.ljust(self._drawn))  # spaces wipe a longer old line
        self.stream.flush()
        self._drawn = len(line)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced; text from elsewhere passes through this."""
    for secret in secrets:
        if len(secret) >= 4 and secret in text:
            text = text.replace(secret, "[secret]")
    return text


def format_checks(checks: list[Check], secrets: Iterable[str] = ()) -> str:
    """The verdicts as a table: label, provider, fingerprint, verdict, latency, note."""
    secrets = list(secrets)
    rows = [["key", "provider", "fingerprint", "verdict", "latency", "note"]]
    for check in checks:
        shown = check.verdict if check.status is None else f"{check.verdict} ({check.status})"
        latency = "-" if check.latency_ms is None else f"{check.latency_ms:.0f} ms"
        rows.append(
            [
                check.label,
                check.provider,
                check.fingerprint,
                shown,
                latency,
                scrub(check.detail, secrets),
            ]
        )
    return "\n".join(columns(rows, right={4}))


def fails(check: Check) -> bool:
    """Whether `check` fails `byok keys check`: a refused key, or a models
    listing that is not where the base URL says (404)."""
    return check.verdict == "invalid" or check.status == 404


def summary(checks: list[Check]) -> str:
    """`7 valid, 1 invalid, 0 rate-limited, 0 unreachable, 1 error`, and when
    the check fails, why: `; failed: 1 invalid, 1 listing not found (404)`."""
    counts = {v: 0 for v in VERDICTS}
    for check in checks:
        counts[check.verdict] += 1
    line = ", ".join(f"{counts[v]} {v}" for v in VERDICTS)
    invalid = counts["invalid"]
    not_found = sum(1 for c in checks if c.status == 404)
    why = [f"{invalid} invalid"] if invalid else []
    if not_found:
        why.append(f"{not_found} {'listing' if not_found == 1 else 'listings'} not found (404)")
    return f"{line}; failed: {', '.join(why)}" if why else line


def run(
    config_path: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    concurrency: int = DEFAULT_CONCURRENCY,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """`byok keys check`: 1 if a key is invalid or a models listing answered
    404, else 0 (ConfigError propagates)."""
    out = out or sys.stdout
    err = err or sys.stderr
    if not timeout > 0:
        print(f"byok keys check: --timeout must be above 0, got {timeout:g}", file=err)
        return 2
    if concurrency < 1:
        print(f"byok keys check: --concurrency must be 1 or more, got {concurrency}", file=err)
        return 2
    config = load(config_path) if config_path else from_environment()
    secrets = [k.secret for p in config.providers.values() for k in p.keys]
    progress = Progress(err, len(secrets))
    progress.update(0)
    checks = trio.run(check_all, config, timeout, concurrency, progress.update)
    progress.finish()
    print(format_checks(checks, secrets), file=out)
    print(summary(checks), file=out)
    notes = []
    if any(c.verdict == "rate-limited" for c in checks):
        notes.append("rate-limited keys are valid, at their limit for now")
    if any(c.verdict == "unreachable" for c in checks):
        notes.append("unreachable keys could not be judged")
    if notes:
        print("; ".join(notes), file=out)
    return 1 if any(fails(c) for c in checks) else 0
