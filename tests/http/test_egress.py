"""Egress through company networks: proxies from the environment or the
config (CONNECT tunnels, forwarded plain HTTP, proxy authentication, a proxy
that refuses), TLS per provider (a private CA, mutual TLS, verify = false),
the connect timeout and the connection cap per provider; and the whole
proxy wired to them from its config."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
import trustme
from cryptography.hazmat.primitives import serialization

from byok.config import ConfigError, Egress, from_dict
from byok.gateway.probe import check_key
from byok.gateway.runtime import Live
from byok.http.egress import (
    EgressError,
    bypassed,
    environment_proxy,
    parse_proxy,
    resolve_proxy,
    tls_context,
)
from byok.http.upstream import Upstream, UpstreamError

from ..stack import open_stack
from .egress_servers import HttpProxy, TlsFront
from .test_upstream import OK, Reader, Server, keep_answering

PROXY_VARIABLES = ["http_proxy", "https_proxy", "all_proxy", "no_proxy"]


@pytest.fixture(autouse=True)
def no_proxy_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the variables it means; none leak in from the shell."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(authority: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return str(path)


def server_tls(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    return context


@asynccontextmanager
async def running(*servers: Any) -> AsyncIterator[list[str]]:
    """Start each server (its serve(task_status=...)); yield their URLs."""
    async with trio.open_nursery() as nursery:
        yield [await nursery.start(server.serve) for server in servers]
        nursery.cancel_scope.cancel()


async def post(upstream: Upstream, base: str, egress: Egress | None = None) -> tuple[int, bytes]:
    response = await upstream.send(
        base, "POST", base + "/chat/completions", [("x-test", "1")], b"{}", egress=egress
    )
    return response.status, await response.read()


async def once(base: str, egress: Egress | None = None) -> tuple[int, bytes]:
    """One request on an Upstream of its own (the environment read anew)."""
    upstream = Upstream()
    try:
        return await post(upstream, base, egress)
    finally:
        await upstream.aclose()


ANSWER = (200, b'{"ok": true}')


# -- choosing the proxy: the environment, NO_PROXY, the provider's setting --


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "exempt"),
    [
        ("*", "api.openai.com", 443, True),
        ("example.com", "example.com", 443, True),
        ("example.com", "api.example.com", 443, True),
        (".example.com", "example.com", 443, True),  # as curl: the domain itself too
        (".example.com", "api.example.com", 443, True),
        ("*.example.com", "deep.api.example.com", 443, True),
        ("example.com", "notexample.com", 443, False),
        ("example.com", "example.com.evil.net", 443, False),
        ("Example.COM", "api.example.com", 443, True),
        (" other.net , example.com ", "api.example.com", 443, True),
        ("example.com:8443", "example.com", 8443, True),
        ("example.com:8443", "example.com", 443, False),
        ("10.1.2.3", "10.1.2.3", 443, True),
        ("10.0.0.0/8", "10.200.0.1", 443, True),
        ("10.0.0.0/8", "11.0.0.1", 443, False),
        ("10.0.0.0/8", "ten.example", 443, False),  # names are not resolved
        ("::1", "::1", 443, True),
        ("[::1]:8080", "::1", 8080, True),
        ("[::1]:8080", "::1", 443, False),
        ("fd00::/8", "fd12::5", 443, True),
        ("localhost", "127.0.0.1", 443, False),  # an address is not a name
        ("", "127.0.0.1", 443, False),  # loopback is not exempt unless listed (as httpx)
    ],
)
def test_no_proxy_entries(no_proxy: str, host: str, port: int, exempt: bool) -> None:
    assert bypassed(host, port, no_proxy) is exempt


def test_the_environment_names_the_proxy_by_scheme_lowercase_first() -> None:
    env = {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:1", "HTTP_PROXY": "h:2"}
    assert environment_proxy("https", "a.example", 443, env) == ("https_proxy", "http://lower:1")
    assert environment_proxy("http", "a.example", 80, env) == ("HTTP_PROXY", "h:2")
    fallback = {"ALL_PROXY": "http://all:3", "https_proxy": " "}  # blank: as if unset
    assert environment_proxy("https", "a.example", 443, fallback) == ("ALL_PROXY", "http://all:3")
    assert environment_proxy("https", "a.example", 443, {}) is None
    exempt = {**env, "no_proxy": "a.example", "NO_PROXY": "b.example"}  # lowercase wins here too
    assert environment_proxy("https", "a.example", 443, exempt) is None
    assert environment_proxy("https", "b.example", 443, exempt) is not None


def test_the_providers_setting_overrides_the_environment() -> None:
    env = {"HTTPS_PROXY": "http://env-proxy:3128", "NO_PROXY": "api.example"}
    assert resolve_proxy("", "https", "a.example", 443, env) is None  # "": no proxy at all
    from_env = resolve_proxy(None, "https", "a.example", 443, env)
    assert from_env is not None
    assert from_env.address == "env-proxy:3128"
    assert resolve_proxy(None, "https", "api.example", 443, env) is None
    # named for the provider: NO_PROXY is the environment's rule, not the config's
    given = resolve_proxy("http://corp:8080", "https", "api.example", 443, env)
    assert given is not None
    assert given.address == "corp:8080"


def test_a_proxy_url_credentials_port_and_scheme() -> None:
    proxy = parse_proxy("http://us%40er:p%3Ass@proxy.corp:3128/", "")
    assert (proxy.scheme, proxy.host, proxy.port) == ("http", "proxy.corp", 3128)
    assert proxy.authorization == "Basic dXNAZXI6cDpzcw=="  # base64 of "us@er:p:ss"
    assert "p:ss" not in repr(proxy)
    assert "dXNA" not in repr(proxy)
    assert parse_proxy("proxy.corp:3128", "HTTPS_PROXY").scheme == "http"  # bare, as curl reads it
    assert parse_proxy("http://proxy.corp", "").port == 80
    assert parse_proxy("https://proxy.corp", "").port == 443
    assert parse_proxy("http://[fd00::1]:3128", "").address == "[fd00::1]:3128"


@pytest.mark.parametrize(
    ("url", "variable", "expected"),
    [
        (
            "socks5://me:hunter2@proxy:1080",
            "ALL_PROXY",
            r"ALL_PROXY \(in the environment\) names a socks5",
        ),
        ("socks5h://me:hunter2@proxy:1080", "", r"^names a socks5h:// proxy; byok speaks to HTTP"),
        ("ftp://me:hunter2@proxy:21", "", "not an http:// or https:// proxy URL"),
        ("http://me:hunter2@proxy:notaport", "", "not a proxy URL"),
        ("http://me:hunter2@:3128", "", "names no host"),
    ],
)
def test_a_proxy_byok_cannot_use_is_refused_without_repeating_the_url(url, variable, expected):
    with pytest.raises(EgressError, match=expected) as caught:
        parse_proxy(url, variable)
    assert "hunter2" not in str(caught.value)
    assert caught.value.field == "proxy"


# -- the config: checked when it loads --


def config_with(environ: dict[str, str] | None = None, **egress: Any) -> Any:
    tables = {
        "providers": {
            "corp": {"kind": "openai", "base_url": "https://api.example/v1", "keys": ["sk-x"]}
        }
    }
    tables["providers"]["corp"].update(egress)
    return from_dict(tables, "byok.toml", environ=environ or {})


def test_the_config_carries_the_egress_settings(ca_file) -> None:
    config = config_with(proxy="http://u:secret-pw@p:3128", ca_file=ca_file, connect_timeout=5)
    egress = config.providers["corp"].egress
    assert (egress.proxy, egress.ca_file, egress.connect_timeout) == (
        "http://u:secret-pw@p:3128",
        ca_file,
        5,
    )
    assert "secret-pw" in config.secrets()  # so it is redacted wherever text is shown


@pytest.mark.parametrize(
    ("egress", "expected"),
    [
        (
            {"ca_file": "/no/such/ca.pem"},
            r"\[providers.corp\] ca_file: cannot read /no/such/ca.pem",
        ),
        ({"client_cert": "/no/cert.pem"}, r"\[providers.corp\] client_cert: cannot read /no/cert"),
        ({"client_key": "/k.pem"}, r"\[providers.corp\] client_key: needs client_cert"),
        ({"ca_file": "CA", "verify": False}, r"\[providers.corp\] verify: verify = false would"),
        ({"proxy": "proxy.corp:3128"}, r"\[providers.corp\] proxy: expected a URL such as http://"),
        ({"proxy": "socks5://u:pw-123@p:1080"}, r"\[providers.corp\] proxy: names a socks5://"),
    ],
)
def test_egress_settings_that_cannot_work_fail_at_load_naming_the_field(ca_file, egress, expected):
    if egress.get("ca_file") == "CA":
        egress["ca_file"] = ca_file
    with pytest.raises(ConfigError, match=expected) as caught:
        config_with(**egress)
    assert "pw-123" not in str(caught.value)


def test_a_socks_proxy_in_the_environment_fails_at_load_unless_bypassed() -> None:
    environ = {"HTTPS_PROXY": "socks5://me:env-pw@proxy:1080"}
    with pytest.raises(ConfigError, match=r"proxy: HTTPS_PROXY \(in the environment\) names a"):
        config_with(environ)
    assert config_with(environ, proxy="").providers["corp"].egress.proxy == ""
    assert config_with({**environ, "NO_PROXY": ".example"})  # not used for it


def test_a_file_that_is_no_certificate_is_a_config_error(tmp_path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"ca_file: .*junk.pem holds no usable PEM certificate"):
        config_with(ca_file=str(junk))
    with pytest.raises(ConfigError, match=r"client_cert: .*junk.pem: not a usable certificate"):
        config_with(client_cert=str(junk))


def test_an_encrypted_client_key_is_refused_rather_than_prompted_for(authority, tmp_path) -> None:
    issued = authority.issue_cert("client.example")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    private = serialization.load_pem_private_key(issued.private_key_pem.bytes(), None)
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    with pytest.raises(EgressError, match="the key is encrypted; give it unencrypted"):
        tls_context(client_cert=str(cert), client_key=str(key))


# -- through a proxy, over real sockets --


async def test_https_through_a_connect_tunnel_with_proxy_auth_and_a_private_ca(authority, ca_file):
    proxy = HttpProxy(credentials="alice:s3cr%t")
    server = Server(keep_answering, server_tls(authority))
    async with running(proxy, server) as (proxy_url, base):
        upstream = Upstream()
        egress = Egress(proxy=proxy_url.replace("://", "://alice:s3cr%25t@"), ca_file=ca_file)
        for _ in range(3):
            assert await post(upstream, base, egress) == ANSWER
        await upstream.aclose()
    port = base.split(":")[2].split("/")[0]
    assert proxy.seen == [f"CONNECT 127.0.0.1:{port}"]  # one tunnel, kept alive
    assert proxy.authorizations == ["Basic YWxpY2U6czNjciV0"]  # alice:s3cr%t
    assert server.connections == 1


async def test_a_wrong_proxy_password_is_byoks_own_failure_and_never_shown(authority, ca_file):
    proxy = HttpProxy(credentials="alice:right")
    server = Server(keep_answering, server_tls(authority))
    async with running(proxy, server) as (proxy_url, base):
        egress = Egress(proxy=proxy_url.replace("://", "://alice:wrong-pw@"), ca_file=ca_file)
        with pytest.raises(UpstreamError) as caught:
            await once(base, egress)
        missing = Egress(proxy=proxy_url, ca_file=ca_file)
        with pytest.raises(UpstreamError, match="it wants credentials: http://user:password@"):
            await once(base, missing)
    message = str(caught.value)
    assert caught.value.kind == "local"  # the proxy refuses byok: no key's fault
    assert proxy_url.removeprefix("http://") in message
    assert "407 Proxy Authentication Required" in message
    assert "rejected the user:password" in message
    assert "wrong-pw" not in message
    assert "alice" not in message
    assert server.connections == 0


@pytest.mark.parametrize(("status", "kind"), [(403, "local"), (502, "refused")])
async def test_a_proxy_that_refuses_the_tunnel(authority, ca_file, status, kind):
    """403: the proxy's policy refuses byok ("local": no key is blamed); 502:
    the proxy could not reach the upstream, as a failed connect would be."""
    proxy = HttpProxy(refuse=status)
    server = Server(keep_answering, server_tls(authority))
    async with running(proxy, server) as (proxy_url, base):
        with pytest.raises(
            UpstreamError, match=f"would not connect to 127.0.0.1:.*: {status}"
        ) as caught:
            await once(base, Egress(proxy=proxy_url, ca_file=ca_file))
    assert caught.value.kind == kind
    assert server.connections == 0


async def test_an_unreachable_proxy_is_byoks_own_failure() -> None:
    with trio.socket.socket() as probe:  # a port with nobody listening
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UpstreamError, match=f"cannot connect to proxy 127.0.0.1:{port}") as caught:
        await once("https://api.example/v1", Egress(proxy=f"http://127.0.0.1:{port}"))
    assert caught.value.kind == "local"


async def test_the_environment_proxy_is_used_and_no_proxy_bypasses_it(
    monkeypatch, authority, ca_file
):
    proxy = HttpProxy()
    server = Server(keep_answering, server_tls(authority))
    async with running(proxy, server) as (proxy_url, base):
        monkeypatch.setenv("HTTPS_PROXY", proxy_url)
        assert await once(base, Egress(ca_file=ca_file)) == ANSWER
        assert len(proxy.seen) == 1
        monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
        assert await once(base, Egress(ca_file=ca_file)) == ANSWER
        assert len(proxy.seen) == 1  # direct
    assert server.connections == 2


async def test_proxy_empty_for_a_provider_connects_directly(monkeypatch, authority, ca_file):
    refusing = HttpProxy(refuse=403)
    server = Server(keep_answering, server_tls(authority))
    async with running(refusing, server) as (proxy_url, base):
        monkeypatch.setenv("https_proxy", proxy_url)
        assert await once(base, Egress(proxy="", ca_file=ca_file)) == (
            200,
            b'{"ok": true}',
        )
    assert refusing.seen == []


async def test_plain_http_goes_through_the_proxy_in_absolute_form(monkeypatch):
    proxy = HttpProxy(credentials="bob:pw")
    seen: list[bytes] = []

    async def answering(stream: trio.abc.Stream, n: int) -> None:
        reader = Reader(stream)
        while (request := await reader.request()) is not None:
            seen.append(request)
            await stream.send_all(OK)

    server = Server(answering)
    async with running(proxy, server) as (proxy_url, base):
        monkeypatch.setenv("HTTP_PROXY", proxy_url.replace("://", "://bob:pw@"))
        upstream = Upstream()
        for _ in range(2):
            assert await post(upstream, base) == ANSWER
        await upstream.aclose()
        monkeypatch.setenv("HTTP_PROXY", proxy_url.replace("://", "://bob:nope@"))
        with pytest.raises(UpstreamError, match="407") as caught:  # the proxy's, not relayed
            await once(base)
    assert caught.value.kind == "local"
    assert proxy.seen[:2] == [f"POST {base}/chat/completions"] * 2
    assert proxy.authorizations[:2] == ["Basic Ym9iOnB3"] * 2
    assert proxy.connections == 2  # one kept alive for both, one for the refused
    assert len(seen) == 2
    assert seen[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"proxy-authorization" not in seen[0].lower()


async def test_an_https_proxy_speaks_tls_itself(authority, ca_file):
    """TLS to the proxy, and TLS to the upstream inside the tunnel; both
    trusted by the provider's ca_file."""
    proxy = HttpProxy(tls=server_tls(authority))
    server = Server(keep_answering, server_tls(authority))
    async with running(proxy, server) as (proxy_url, base):
        assert proxy_url.startswith("https://")
        upstream = Upstream()
        egress = Egress(proxy=proxy_url, ca_file=ca_file)
        for _ in range(2):
            assert await post(upstream, base, egress) == ANSWER
        await upstream.aclose()
    assert proxy.connections == 1
    assert server.connections == 1


# -- TLS per provider --


async def test_a_private_ca_replaces_the_system_store(authority, ca_file):
    server = Server(keep_answering, server_tls(authority))
    async with running(server) as (base,):
        with pytest.raises(UpstreamError, match=r"cannot connect to 127\.0\.0\.1") as caught:
            await once(base)  # the system store does not know this CA
        assert caught.value.kind == "refused"
        assert await once(base, Egress(ca_file=ca_file)) == ANSWER


async def test_the_default_trust_is_the_system_store_and_never_certifi(
    monkeypatch, authority, ca_file, tmp_path
):
    """OpenSSL's default paths (SSL_CERT_FILE stands in for the system store
    here); certifi's bundle is not consulted even when it is installed."""
    import certifi

    other = trustme.CA()
    certifi_bundle = tmp_path / "certifi.pem"
    other.cert_pem.write_to_path(str(certifi_bundle))
    monkeypatch.setattr(certifi, "where", lambda: str(certifi_bundle))
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "empty"))
    trusted = Server(keep_answering, server_tls(authority))
    certifi_only = Server(keep_answering, server_tls(other))
    async with running(trusted, certifi_only) as (system_base, certifi_base):
        assert await once(system_base) == ANSWER
        with pytest.raises(UpstreamError, match="certificate verify failed"):
            await once(certifi_base)


async def test_mutual_tls_presents_the_client_certificate(authority, ca_file, tmp_path):
    context = server_tls(authority)
    context.verify_mode = ssl.CERT_REQUIRED
    authority.configure_trust(context)
    peers: list[Any] = []

    async def answer_with_peer(stream: trio.abc.Stream, n: int) -> None:
        assert isinstance(stream, trio.SSLStream)
        await stream.do_handshake()
        peers.append(stream.getpeercert())
        await keep_answering(stream, n)

    client = authority.issue_cert("byok-client.example")
    both = tmp_path / "client.pem"  # key and chain in one file: client_key may stay unset
    client.private_key_and_cert_chain_pem.write_to_path(str(both))
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    server = Server(answer_with_peer, context)
    async with running(server) as (base,):
        for egress in (
            Egress(ca_file=ca_file, client_cert=str(both)),
            Egress(ca_file=ca_file, client_cert=str(cert), client_key=str(key)),
        ):
            assert await once(base, egress) == ANSWER
        with pytest.raises(UpstreamError):  # no certificate: the server refuses
            await once(base, Egress(ca_file=ca_file))
    assert [peer["subjectAltName"] for peer in peers] == [(("DNS", "byok-client.example"),)] * 2


async def test_verify_false_accepts_any_certificate(authority):
    server = Server(keep_answering, server_tls(trustme.CA()))  # a CA nobody trusts
    async with running(server) as (base,):
        with pytest.raises(UpstreamError, match="certificate verify failed"):
            await once(base)
        assert await once(base, Egress(verify=False)) == ANSWER


def test_verify_false_is_warned_about_at_start_and_at_every_reload(caplog) -> None:
    tables = {
        "providers": {
            "careless": {
                "kind": "openai",
                "base_url": "https://self-signed.example/v1",
                "keys": ["sk-x"],
                "verify": False,
            },
            "careful": {"kind": "openai", "base_url": "https://ok.example/v1", "keys": ["sk-y"]},
        }
    }
    config = from_dict(tables, "byok.toml", environ={})
    with caplog.at_level(logging.WARNING):
        live = Live(config)
        live.swap(config)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        warnings
        == [
            "providers.careless: verify = false: the TLS certificate of "
            "https://self-signed.example/v1 is NOT checked; anyone on the network path can "
            "read and change this traffic, keys included"
        ]
        * 2
    )


# -- the connect timeout and the connection cap, per provider --


async def test_the_connect_timeout_bounds_a_proxy_that_never_answers(autojump_clock):
    proxy = HttpProxy(silent=True)
    async with running(proxy) as (proxy_url,):
        started = trio.current_time()
        egress = Egress(proxy=proxy_url, connect_timeout=7)
        with pytest.raises(UpstreamError, match=r"through proxy 127.0.0.1:\d+ took over 7s"):
            await once("https://api.example/v1", egress)
        assert trio.current_time() - started == pytest.approx(7)
    assert proxy.seen == ["CONNECT api.example:443"]


async def test_the_connect_timeout_bounds_a_tls_handshake_that_never_ends(autojump_clock):
    async def never_speaks(stream: trio.abc.Stream, n: int) -> None:
        await trio.sleep_forever()

    server = Server(never_speaks)  # plain TCP: our TLS hello gets no answer
    async with running(server) as (base,):
        started = trio.current_time()
        https = base.replace("http://", "https://")
        with pytest.raises(UpstreamError, match=r"took over 2\.5s") as caught:
            await once(https, Egress(connect_timeout=2.5))
        assert caught.value.kind == "refused"
        assert trio.current_time() - started == pytest.approx(2.5)


async def test_each_provider_has_its_own_pool_and_cap():
    release = trio.Event()

    async def slow(stream: trio.abc.Stream, n: int) -> None:
        reader = Reader(stream)
        while await reader.request() is not None:
            await release.wait()
            await stream.send_all(OK)

    server = Server(slow)
    async with running(server) as (base,):
        upstream = Upstream()
        capped, other = Egress(max_connections=2), Egress(max_connections=3, connect_timeout=9)
        async with trio.open_nursery() as nursery:
            for egress in [capped] * 4 + [other] * 4:
                nursery.start_soon(post, upstream, base, egress)
            await trio.testing.wait_all_tasks_blocked()
            assert server.open == 5  # 2 for one provider, 3 for the other
            release.set()
        # equal settings share a pool (the same base URL and egress settings)
        assert upstream.idle_connections(base, Egress(max_connections=2)) == 2
        assert upstream.idle_connections(base, other) == 3
        assert upstream.idle_connections(base) == 0
        await upstream.aclose()
    assert server.most_open == 5


# -- the whole proxy, from its config --


async def test_a_key_check_goes_through_the_providers_proxy(authority, ca_file):
    """`byok keys check` and the re-validation of blocked keys: the same egress."""
    company = HttpProxy(refuse=407)
    server = Server(keep_answering, server_tls(authority))
    async with running(company, server) as (proxy_url, base):
        tables = {"kind": "openai", "base_url": base, "keys": ["sk-probe-0"]}
        tables.update(proxy=proxy_url, ca_file=ca_file)
        provider = from_dict({"providers": {"corp": tables}}, "byok.toml").providers["corp"]
        upstream = Upstream()
        check = await check_key(upstream, provider, provider.keys[0], timeout=5)
        await upstream.aclose()
    assert check.verdict == "unreachable"
    assert "proxy 127.0.0.1" in check.detail
    assert "407" in check.detail
    assert company.seen == [f"CONNECT {base.split('/')[2]}"]
    assert server.connections == 0


SECRETS = {"sk-egress-alpha-0": "alpha"}


async def test_the_proxy_reaches_an_https_upstream_through_a_company_proxy(authority, ca_file):
    company = HttpProxy(credentials="svc:pw-egress-1")
    front = TlsFront(server_tls(authority))
    async with running(company, front) as (proxy_url, front_url):

        def tables(simulator: str) -> dict[str, Any]:
            host, port = simulator.removeprefix("http://").split(":")
            front.target = (host, int(port))
            return {
                "providers": {
                    "corp": {
                        "kind": "openai",
                        "base_url": f"{front_url}/v1",
                        "keys": [{"key": k, "label": v} for k, v in SECRETS.items()],
                        "proxy": proxy_url.replace("://", "://svc:pw-egress-1@"),
                        "ca_file": ca_file,
                        "connect_timeout": 5,
                    }
                },
                "models": {"m": {"targets": ["corp/up"]}},
            }

        async with open_stack(tables, SECRETS) as stack:
            reply = await stack.client.post(
                "/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert reply.status_code == 200, reply.text
            assert reply.headers["x-byok-key"] == "alpha"
            assert stack.simulator.requests_for("sk-egress-alpha-0") == 1
            # the proxy now refuses: byok says so, and blames no key
            company.refuse = 403
            await stack.app.upstream.aclose()  # no kept-alive tunnel: the next one asks anew
            reply = await stack.client.post(
                "/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert reply.status_code == 503
            assert "would not connect" in reply.text
            assert "403 Forbidden" in reply.text
            assert "pw-egress-1" not in reply.text
            assert stack.state("corp", "up", "alpha") == "ready"
    assert company.seen[0] == f"CONNECT {front_url.removeprefix('https://')}"
    assert front.connections == 1
