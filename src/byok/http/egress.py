"""Egress: how a connection to an upstream leaves this host (the proxy, TLS).

Theory of operation
-------------------
Each provider says how its connections leave (``byok.config.Egress``; the
``EgressSettings`` shape here): through which proxy, trusting which
certificates, with which client certificate.  This module turns those
settings into what the upstream client connects with, a ``Proxy`` (or
None) and an ``ssl.SSLContext``, and ``check`` tries them when a config
loads, so that settings that cannot work fail there, naming the field,
rather than at the first request.

The proxy, as curl and httpx choose it:

- ``proxy = "http://user:password@host:port"``: that proxy for this
  provider, whatever the environment says; ``proxy = ""``: none.
- unset: the environment.  ``https_proxy`` (then ``HTTPS_PROXY``) for an
  https upstream, ``http_proxy`` (then ``HTTP_PROXY``) for an http one,
  else ``all_proxy`` / ``ALL_PROXY``; the lowercase name first, an empty
  value as if unset.  ``no_proxy`` / ``NO_PROXY`` lists what is reached
  directly: ``*`` (everything), a domain (``example.com``, ``.example.com``
  and ``*.example.com`` alike match it and every name under it), an IP
  address or a network (``10.0.0.0/8``), each optionally with ``:port``.
  Loopback is not exempt unless listed, as with httpx (list ``localhost``
  and ``127.0.0.1`` for local upstreams); names are not resolved to match
  an address entry, as with curl.

A proxy URL is ``http://`` (or ``https://``, TLS to the proxy itself,
trusted as the provider's upstream is); a scheme-less value in the
environment means ``http://``, as curl reads it; no port means the scheme's
(80, 443).  SOCKS is not spoken: such a URL is a config error.  Its
user:password, percent-decoded, go to the proxy as ``Proxy-Authorization:
Basic``, and are never shown: an error names the proxy by host and port.

TLS: the system's trust store by default (OpenSSL's default paths, which
``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` override; on Windows the system
store; on macOS the Keychain, through truststore); certifi's bundle is
never added because it happens to be installed.
``ca_file`` replaces the store with its CA certificates (curl's
``--cacert``); ``client_cert`` (and ``client_key``, unless the key is in
the certificate's file) is presented for mutual TLS; ``verify = false``
checks nothing (the caller warns loudly at start).
"""

from __future__ import annotations

import base64
import ipaddress
import ssl
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


class EgressError(ValueError):
    """Egress settings that cannot work; `field` names the setting at fault.
    The message never holds a proxy URL (it may hold a password)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


class EgressSettings(Protocol):
    """How to reach one provider (byok.config.Egress is one).  Hashable and
    compared by value: connections are pooled per base URL and settings."""

    @property
    def proxy(self) -> str | None: ...  # None: the environment's; "": none
    @property
    def ca_file(self) -> str | None: ...
    @property
    def client_cert(self) -> str | None: ...
    @property
    def client_key(self) -> str | None: ...
    @property
    def verify(self) -> bool: ...
    @property
    def connect_timeout(self) -> float | None: ...
    @property
    def max_connections(self) -> int: ...


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy: where it listens, and the ``Proxy-Authorization``
    value made of its URL's user:password (never shown)."""

    scheme: str  # "http" or "https" (TLS to the proxy)
    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        """host:port, as errors name the proxy."""
        return authority(self.host, self.port)


def authority(host: str, port: int) -> str:
    """host:port, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def resolve_proxy(
    setting: str | None, scheme: str, host: str, port: int, environ: Mapping[str, str]
) -> Proxy | None:
    """The proxy for an upstream at scheme://host:port: the provider's
    `setting` ("" for none), or when it is None the environment's."""
    if setting == "":
        return None
    if setting is not None:
        if "://" not in setting:
            raise EgressError("proxy", "expected a URL such as http://proxy.example:3128")
        return parse_proxy(setting, "")
    found = environment_proxy(scheme, host, port, environ)
    return None if found is None else parse_proxy(found[1], found[0])


def environment_proxy(
    scheme: str, host: str, port: int, environ: Mapping[str, str]
) -> tuple[str, str] | None:
    """The variable that names a proxy for scheme://host:port and its value,
    or None: none is set, or NO_PROXY exempts the host."""
    names = ("https_proxy", "HTTPS_PROXY") if scheme == "https" else ("http_proxy", "HTTP_PROXY")
    chosen = _first_set(environ, (*names, "all_proxy", "ALL_PROXY"))
    if chosen is None:
        return None
    exempt = _first_set(environ, ("no_proxy", "NO_PROXY"))
    if exempt is not None and bypassed(host, port, environ[exempt]):
        return None
    return chosen, environ[chosen].strip()


def _first_set(environ: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    return next((name for name in names if environ.get(name, "").strip()), None)


def bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Whether a NO_PROXY list (comma-separated) exempts host:port."""
    host = host.lower().rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in no_proxy.split(","):
        entry = entry.strip().lower()
        if entry == "*":
            return True
        name, wanted = _split_port(entry)
        if not name or (wanted is not None and wanted != port):
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(name, strict=False):
                    return True
            except ValueError:  # a domain: never matches an address
                pass
            continue
        domain = name.lstrip("*").lstrip(".").rstrip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    """A NO_PROXY entry's host (or network) and port, if it names one."""
    if entry.startswith("["):  # [v6]:port or [v6]
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, int(port)
    return entry, None  # a name, an IPv4 address or network, or a bare IPv6 one


def parse_proxy(url: str, variable: str) -> Proxy:
    """A Proxy from its URL; `variable` names the environment variable it
    came from ("" for the config), for errors that never repeat the URL."""
    where = f"{variable} (in the environment) " if variable else ""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text  # as curl and httpx read a bare host:port
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise EgressError("proxy", f"{where}is not a proxy URL (http://host:port)") from None
    scheme = parts.scheme.lower()
    if scheme.startswith("socks"):
        raise EgressError(
            "proxy",
            f"{where}names a {scheme}:// proxy; byok speaks to HTTP proxies only "
            '(http:// or https://): give one, or proxy = "" to connect directly',
        )
    if scheme not in DEFAULT_PORTS:
        raise EgressError("proxy", f"{where}is not an http:// or https:// proxy URL")
    if not parts.hostname:
        raise EgressError("proxy", f"{where}names no host (http://host:port)")
    authorization = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")
    return Proxy(scheme, parts.hostname, port or DEFAULT_PORTS[scheme], authorization)


def tls_context(
    ca_file: str | None = None,
    client_cert: str | None = None,
    client_key: str | None = None,
    verify: bool = True,
) -> ssl.SSLContext:
    """A client TLS context: the system's trust store, or only `ca_file`'s
    CAs; `client_cert`/`client_key` for mutual TLS; no checks at all
    when `verify` is false.  EgressError names the field at fault."""
    if ca_file is not None and not verify:
        raise EgressError("verify", "verify = false would ignore ca_file: set one or the other")
    if client_key is not None and client_cert is None:
        raise EgressError("client_key", "needs client_cert, the certificate it belongs to")
    if ca_file is None:
        context = _system_trust()
    else:
        path = _readable(ca_file, "ca_file")
        try:
            context = ssl.create_default_context(cafile=path)
        except ssl.SSLError as error:
            message = f"{path} holds no usable PEM certificate ({error.reason or error})"
            raise EgressError("ca_file", message) from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_cert is not None:
        cert = _readable(client_cert, "client_cert")
        key = None if client_key is None else _readable(client_key, "client_key")
        try:
            context.load_cert_chain(cert, key, password=_no_password)
        except _Encrypted:
            raise EgressError(
                "client_key", f"{key or cert}: the key is encrypted; give it unencrypted"
            ) from None
        except ssl.SSLError as error:
            pair = cert if key is None else f"{cert} and {key}"
            message = f"{pair}: not a usable certificate and key ({error.reason or error})"
            raise EgressError("client_cert", message) from None
    return context


def _system_trust() -> ssl.SSLContext:
    """The operating system's trust store, and never certifi's bundle.
    OpenSSL's default paths are that store on Linux and the BSDs, and on
    Windows Python loads the system store into them; on macOS they are not
    (python.org's Python has none at all), so the Keychain is asked through
    truststore there."""
    if sys.platform == "darwin":
        import truststore

        return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return ssl.create_default_context()


class _Encrypted(Exception):
    pass


def _no_password() -> str:
    # OpenSSL would otherwise ask for the key's passphrase on the terminal
    raise _Encrypted


def _readable(name: str, field_name: str) -> str:
    path = Path(name).expanduser()
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        raise EgressError(field_name, f"cannot read {path}: {error.strerror}") from None
    return str(path)


def check(settings: EgressSettings, base_url: str, environ: Mapping[str, str]) -> None:
    """Raise EgressError unless these settings can work for `base_url`: a
    proxy URL (given, or the environment's) byok can use, certificate and
    key files it can load."""
    parts = urlsplit(base_url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme, 0)
    except ValueError:  # not a URL: the upstream client refuses it at the first request
        port = 0
    if parts.hostname and port:
        resolve_proxy(settings.proxy, scheme, parts.hostname, port, environ)
    if settings.ca_file or settings.client_cert or settings.client_key or not settings.verify:
        tls_context(settings.ca_file, settings.client_cert, settings.client_key, settings.verify)
