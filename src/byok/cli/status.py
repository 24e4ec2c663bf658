"""`byok status`: the key table of a running proxy, from its admin API.

It reads ``GET /admin/keys`` (docs/admin-api.md) with an admin key and
prints, per model and target, each key's state, when a cooling key comes
back, its counters, latency and tokens, and why a key that is out is out
(the table is tables.format_table).  The proxy and the admin key are found
as remote.py says: the options, BYOK_ADMIN_KEY, the proxy's config.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from .remote import AdminError, RunningProxy, ask, error_message, locate
from .tables import format_table


def fetch(proxy: RunningProxy, timeout: float = 10.0) -> dict[str, Any]:
    """GET /admin/keys; an AdminError says what went wrong and what to do."""
    reply = ask(proxy, "GET", "/admin/keys", timeout)
    where = f"{proxy.url}/admin/keys"
    if reply.status_code != 200:
        message = error_message(reply)
        detail = f" ({message})" if message else ""
        raise AdminError(f"{where} answered {reply.status_code}{detail}")
    try:
        view = reply.json()
    except ValueError:
        raise AdminError(f"{where} answered something that is not JSON") from None
    if not isinstance(view, dict):
        raise AdminError(f"{where} answered JSON that is not an object")
    return view


def run(
    config_path: str | None = None,
    url: str | None = None,
    admin_key: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """`byok status`: 0 with the table printed, 2 with the reason it could not be."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        view = fetch(locate(config_path, url, admin_key))
    except AdminError as error:
        print(f"byok status: {error}", file=err)
        return 2
    print(format_table(view), file=out)
    return 0
