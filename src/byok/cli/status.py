"""`byok status`: the key table of a running proxy, from its admin API.

It reads ``GET /admin/keys`` (docs/admin-api.md) with an admin key and
prints, per model and target, each key's state, when a cooling key comes
back, its counters, latency and tokens, and why a key that is out is out
(the table is tables.format_table).
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

import httpx2 as httpx

from .tables import format_table

DEFAULT_URL = "http://127.0.0.1:8787"
ADMIN_KEY_ENV = "BYOK_ADMIN_KEY"


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
