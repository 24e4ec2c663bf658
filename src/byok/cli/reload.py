"""`byok reload`: a running proxy reads its config file again.

``POST /admin/reload`` with an admin key, the proxy and the key found as
remote.py says (the options, BYOK_ADMIN_KEY, the proxy's config).  Unlike a
SIGHUP, it reaches exactly one proxy, the one at that address, and works
where there are no signals (Windows).  Exit status: 0 reloaded, 1 the proxy
refused the file (it changed nothing, and says where the file is wrong), 2
the proxy could not be asked.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from .remote import AdminError, ask, error_message, locate


def describe(summary: dict[str, Any]) -> str:
    """The proxy's account of a reload in a line, and a second one when a
    setting changed that only a restart applies."""
    line = (
        f"reloaded {summary.get('source', 'the config')}: generation {summary.get('generation')}"
        f"; keys: {summary.get('kept_keys', 0)} kept, {summary.get('new_keys', 0)} new, "
        f"{summary.get('removed_keys', 0)} removed"
    )
    restart = [str(name) for name in summary.get("restart_needed") or []]
    if restart:
        # [server] settings by name, other tables by their own "[table]"
        server = [name for name in restart if not name.startswith("[")]
        named = ([f"[server] {', '.join(server)}"] if server else []) + [
            name for name in restart if name.startswith("[")
        ]
        line += f"\nrestart needed: {'; '.join(named)} changed, which a reload does not apply"
    return line


def run(
    config_path: str | None = None,
    url: str | None = None,
    admin_key: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """`byok reload`: 0 reloaded, 1 refused by the proxy, 2 not asked."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        proxy = locate(config_path, url, admin_key)
        reply = ask(proxy, "POST", "/admin/reload")
    except AdminError as error:
        print(f"byok reload: {error}", file=err)
        return 2
    if reply.status_code == 400:  # the file is wrong, or there is none to read
        print(f"byok reload: {error_message(reply) or 'refused'}", file=err)
        return 1
    try:
        summary = reply.json() if reply.status_code == 200 else None
    except ValueError:
        summary = None
    if not isinstance(summary, dict):
        message = error_message(reply)
        detail = f" ({message})" if message else ""
        print(
            f"byok reload: {proxy.url}/admin/reload answered {reply.status_code}{detail}",
            file=err,
        )
        return 2
    print(describe(summary), file=out)
    return 0
