"""The running proxy, as `byok status` and `byok reload` reach it: where it
listens, and the admin key that opens its admin API (docs/admin-api.md).

Each comes from the first place that gives it: the command line (``--url``,
``--admin-key``), the environment (``BYOK_ADMIN_KEY``), the config the proxy
runs with (``--config`` or ``BYOK_CONFIG``: ``[server]`` host and port, the
first of its ``admin_keys``), else the defaults (http://127.0.0.1:8787, no
key).  Only the ``[server]`` table is read, and only what is needed of it:
a file the proxy would refuse (which `byok reload` is there to report) still
says where the proxy is, and upstream keys kept in variables that the
operator's shell does not have are never looked at.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2 as httpx

from ..config import Server

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ADMIN_KEY_ENV = "BYOK_ADMIN_KEY"
_DEFAULTS = Server()  # where a proxy listens when its config does not say
DEFAULT_URL = f"http://{_DEFAULTS.host}:{_DEFAULTS.port}"
# a proxy listening on every address is asked on the loopback one
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


class AdminError(Exception):
    """Why the admin API could not be asked, in a sentence for the terminal."""


@dataclass(frozen=True)
class RunningProxy:
    """A proxy's base URL, the admin key to send it, and where that key came
    from (for the message when the proxy refuses it)."""

    url: str
    admin_key: str | None = field(default=None, repr=False)
    key_from: str = ""


def locate(
    config_path: str | None,
    url: str | None = None,
    admin_key: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> RunningProxy:
    """The proxy to ask, from the options, the environment and the config;
    an AdminError when the config is needed but does not say."""
    env = os.environ if environ is None else environ
    key_from = "--admin-key"
    if not admin_key:
        admin_key, key_from = env.get(ADMIN_KEY_ENV, "").strip() or None, ADMIN_KEY_ENV
    if config_path and not (url and admin_key):
        server = _server_table(config_path)
        url = url or _listening_url(config_path, server)
        if not admin_key:
            admin_key = _first_admin_key(config_path, server, env)
            key_from = f"{config_path} [server] admin_keys[0]"
    return RunningProxy((url or DEFAULT_URL).rstrip("/"), admin_key, key_from)


def ask(proxy: RunningProxy, method: str, path: str, timeout: float = 10.0) -> httpx.Response:
    """`method path` on the proxy with its admin key.  An AdminError when
    nothing answers, the admin key is missing or refused, or nothing at the
    URL serves the admin API (404); any other answer is the caller's to read."""
    url = proxy.url + path
    headers = {"authorization": f"Bearer {proxy.admin_key}"} if proxy.admin_key else {}
    try:
        # an HTTP(S)_PROXY of the environment cannot reach this host's loopback
        reply = httpx.request(
            method, url, headers=headers, timeout=timeout, trust_env=not _loopback(proxy.url)
        )
    except httpx.ConnectError:
        raise AdminError(f"nothing answers at {proxy.url}: is byok serve running?") from None
    except httpx.TimeoutException:
        raise AdminError(f"{proxy.url} did not answer within {timeout:g}s") from None
    except httpx.HTTPError as error:
        raise AdminError(f"cannot reach {proxy.url}: {type(error).__name__}") from None
    if reply.status_code in (401, 403):
        raise AdminError(_refused(proxy, reply.status_code))
    if reply.status_code == 404:
        raise AdminError(f"{url} answered 404{_detail(reply)}: is it byok, with the admin API?")
    return reply


def error_message(reply: httpx.Response) -> str:
    """The message of an answer in byok's error shape, or ""."""
    try:
        message = reply.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return ""
    return str(message)[:500]


def _detail(reply: httpx.Response) -> str:
    message = error_message(reply)
    return f" ({message})" if message else ""


def _refused(proxy: RunningProxy, status: int) -> str:
    how = f"pass --admin-key KEY or set {ADMIN_KEY_ENV}"
    if status == 403:
        return (
            f"{proxy.url} refused the admin API (403): it is off until admin_keys are set in "
            f"the proxy's [server] table; then {how} with one of them"
        )
    if proxy.admin_key is not None:
        return (
            f"{proxy.url} refused the admin key (401) given by {proxy.key_from}: "
            f"{how} with one of the admin_keys of the proxy's config"
        )
    return (
        f"{proxy.url} wants an admin key (401): {how}, one of the admin_keys "
        "in the proxy's [server] table (or pass --config FILE, the proxy's config)"
    )


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _server_table(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise AdminError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise AdminError(f"{path}: not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise AdminError(f"{path}: not UTF-8 text") from None
    except OSError as error:
        raise AdminError(f"{path}: cannot read the file: {error.strerror}") from None
    server = data.get("server", {})
    if not isinstance(server, dict):
        raise AdminError(f"{path}: [server]: expected a table")
    return server


def _listening_url(path: str, server: dict[str, Any]) -> str:
    host = server.get("host", _DEFAULTS.host)
    port = server.get("port", _DEFAULTS.port)
    if not isinstance(host, str):
        raise AdminError(f"{path}: [server] host: expected a string; pass --url")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise AdminError(f"{path}: [server] port: expected a port from 1 to 65535; pass --url")
    if port == 0:
        raise AdminError(
            f"{path}: [server] port is 0 (any free port): pass --url with the port "
            "the proxy logged at start"
        )
    host = _ANY_ADDRESS.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _first_admin_key(path: str, server: dict[str, Any], env: Mapping[str, str]) -> str | None:
    """The first of the config's admin_keys, resolved as the proxy resolves
    it (a literal, env:NAME or file:PATH); None when there is none."""
    keys = server.get("admin_keys", [])
    if not isinstance(keys, list) or not keys:
        return None
    value = keys[0]
    where = f"{path}: [server] admin_keys[0]"
    if not isinstance(value, str) or not value.strip():
        raise AdminError(f"{where}: expected a key: a literal, env:NAME or file:PATH")
    if value.startswith("env:"):
        name = value[4:]
        secret = env.get(name, "").strip()
        if not secret:
            names = " or ".join(dict.fromkeys([name, ADMIN_KEY_ENV]))
            raise AdminError(
                f"{where} is env:{name}, which is not set here: set {names}, "
                "or pass --admin-key KEY"
            )
        return secret
    if value.startswith("file:"):
        key_file = Path(value[5:]).expanduser()
        try:
            secret = key_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise AdminError(
                f"{where}: cannot read key file {key_file}: {error.strerror}; pass --admin-key KEY"
            ) from None
        except UnicodeDecodeError:
            raise AdminError(f"{where}: key file {key_file} is not UTF-8 text") from None
        if not secret:
            raise AdminError(f"{where}: key file {key_file} is empty")
        return secret
    return value.strip()
