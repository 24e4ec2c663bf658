"""`byok status`: the key table of a running proxy, from its admin API.

It reads ``GET /admin/keys`` (docs/admin-api.md) with an admin key and
prints, per model and target, each key's state, when a cooling key comes
back, its counters, latency and tokens, and why a key that is out is out.
``format_table`` is pure (a view in, text out) so that other commands can
show the same table.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Container, Mapping, Sequence
from typing import Any, TextIO

import httpx2 as httpx

DEFAULT_URL = "http://127.0.0.1:8787"
ADMIN_KEY_ENV = "BYOK_ADMIN_KEY"
HEADER = (
    "key",
    "state",
    "back in",
    "picks",
    "ok",
    "failed",
    "in flight",
    "latency",
    "tokens in",
    "tokens out",
    "reason",
)
NUMERIC = frozenset({2, 3, 4, 5, 6, 7, 8, 9})  # columns aligned right
INDENT = "    "  # key rows sit under their target, which sits under its model


def columns(rows: Sequence[Sequence[str]], right: Container[int] = ()) -> list[str]:
    """Rows of cells as aligned lines, two spaces apart; `right` columns flush right."""
    if not rows:
        return []
    widths = [max(len(row[n]) for row in rows) for n in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if n in right else cell.ljust(width)
            for n, (cell, width) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def format_table(view: Mapping[str, Any]) -> str:
    """The /admin/keys view as a terminal table, grouped by model and target."""
    now = _number(view.get("now")) or time.time()
    out: list[str] = []
    config = view.get("config") or {}
    if config:
        parts = [str(config.get("source", "?"))]
        if config.get("generation") is not None:
            parts.append(f"generation {config['generation']}")
        loaded = _number(config.get("loaded_at"))
        if loaded is not None:
            parts.append(f"loaded {_ago(now - loaded)} ago")
        out.append("config: " + ", ".join(parts))
    # Group lines (model, target) interleave with key rows; the key rows of
    # every group share one set of column widths, so the table reads as one.
    entries: list[str | list[str]] = []
    for model in view.get("models") or []:
        entries.append(_model_line(model))
        for target in model.get("targets") or []:
            entries.append(f"  {target.get('provider', '?')}/{target.get('model', '?')}")
            keys = target.get("keys") or []
            if not keys:
                entries.append(INDENT + "(no keys)")
            entries.extend(_key_row(key, now) for key in keys)
    rows = [list(HEADER)] + [e for e in entries if isinstance(e, list)]
    aligned = iter(columns(rows, NUMERIC))
    out.append(INDENT + next(aligned))
    for entry in entries:
        out.append(entry if isinstance(entry, str) else INDENT + next(aligned))
    if not view.get("models"):
        out.append("(no models)")
    return "\n".join(out)


def _model_line(model: Mapping[str, Any]) -> str:
    name = str(model.get("name", "?"))
    details = ["passthrough"] if model.get("passthrough") else []
    if model.get("strategy"):
        details.append(str(model["strategy"]))
    if model.get("fallbacks"):
        details.append("fallbacks: " + ", ".join(str(f) for f in model["fallbacks"]))
    return f"model {name}" + (f" ({'; '.join(details)})" if details else "")


def _key_row(key: Mapping[str, Any], now: float) -> list[str]:
    state = str(key.get("state", "?"))
    remaining = _number(key.get("cooldown_remaining"))
    latency = _number(key.get("latency_ewma_ms"))
    tokens = key.get("tokens") or {}
    return [
        str(key.get("label", "?")),
        state,
        f"{remaining:.1f}s" if remaining else "-",
        _count(key.get("picks")),
        _count(key.get("successes")),
        _count(key.get("failures")),
        _count(key.get("inflight")),
        f"{latency:.0f}ms" if latency is not None else "-",
        _count(tokens.get("input")),
        _count(tokens.get("output")),
        _reason(key.get("reason"), now) + _next_check(key, now) if state != "ready" else "",
    ]


def _next_check(key: Mapping[str, Any], now: float) -> str:
    """A blocked key is asked again later: when."""
    due = _number(key.get("revalidate_at"))
    return "" if due is None else f"; next check in {_ago(max(due - now, 0))}"


def _reason(reason: Any, now: float) -> str:
    """Why a key is out: the last failure, `429 Rate limit reached, 10s ago`."""
    if not isinstance(reason, Mapping):
        return "-"
    text = " ".join(
        str(part) for part in (reason.get("status"), reason.get("message")) if part is not None
    )
    at = _number(reason.get("at"))
    if at is not None:
        text = f"{text}, {_ago(now - at)} ago" if text else f"{_ago(now - at)} ago"
    return text or "-"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _count(value: Any) -> str:
    number = _number(value)
    if number is None:
        return "-"
    if number < 10_000:
        return f"{number:.0f}"
    if number < 1_000_000:
        return f"{number / 1000:.1f}k"
    return f"{number / 1_000_000:.1f}M"


def _ago(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    if seconds < 86400:
        return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"
    return f"{seconds // 86400:.0f}d{seconds % 86400 // 3600:02.0f}h"


class StatusError(Exception):
    """Why the table could not be fetched, in a sentence for the terminal."""


def fetch(url: str, admin_key: str | None, timeout: float = 10.0) -> dict[str, Any]:
    """GET {url}/admin/keys; a StatusError says what went wrong and what to do."""
    base = url.rstrip("/")
    headers = {"authorization": f"Bearer {admin_key}"} if admin_key else {}
    try:
        reply = httpx.get(f"{base}/admin/keys", headers=headers, timeout=timeout)
    except httpx.ConnectError:
        raise StatusError(f"nothing answers at {base}: is byok serve running?") from None
    except httpx.TimeoutException:
        raise StatusError(f"{base} did not answer within {timeout:g}s") from None
    except httpx.HTTPError as error:
        raise StatusError(f"cannot reach {base}: {type(error).__name__}") from None
    if reply.status_code in (401, 403):
        raise StatusError(_refused(base, reply.status_code, admin_key is not None))
    if reply.status_code != 200:
        message = _error_message(reply)
        hint = ": is it byok, with the admin API?" if reply.status_code == 404 else ""
        detail = f" ({message})" if message else ""
        raise StatusError(f"{base}/admin/keys answered {reply.status_code}{detail}{hint}")
    try:
        view = reply.json()
    except ValueError:
        raise StatusError(f"{base}/admin/keys answered something that is not JSON") from None
    if not isinstance(view, dict):
        raise StatusError(f"{base}/admin/keys answered JSON that is not an object")
    return view


def _refused(base: str, status: int, had_key: bool) -> str:
    how = f"pass --admin-key KEY or set {ADMIN_KEY_ENV}"
    if status == 403:
        return (
            f"{base} refused the admin API (403): it is off until admin_keys are set in "
            f"the proxy's [server] table; then {how} with one of them"
        )
    if had_key:
        return f"{base} refused the admin key (401): {how} with one of the proxy's admin_keys"
    return (
        f"{base} wants an admin key (401): {how}, one of the admin_keys "
        "in the proxy's [server] table"
    )


def _error_message(reply: httpx.Response) -> str:
    try:
        body = reply.json()
        message = body["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return ""
    return str(message)[:200]


def run(
    url: str | None = None,
    admin_key: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """`byok status`: 0 with the table printed, 2 with the reason it could not be."""
    out = out or sys.stdout
    err = err or sys.stderr
    key = admin_key or os.environ.get(ADMIN_KEY_ENV, "").strip() or None
    try:
        view = fetch(url or DEFAULT_URL, key)
    except StatusError as error:
        print(f"byok status: {error}", file=err)
        return 2
    print(format_table(view), file=out)
    return 0
