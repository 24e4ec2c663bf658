"""What a credential may meet that it must survive: values no CLI writes
(numbers past any float, NaN, digits of other scripts, deep nesting, line
breaks in a token), a token endpoint's odd answers, a lock another process
holds, a caller that leaves mid-renewal, a command's expiry in the past, a
symlinked file, a file older than the tokens held.  Each is the module's
own error or a sane value: never an exception that stops the gateway."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import trio

from byok.credentials import (
    CredentialError,
    Credentials,
    OAuthClient,
    OAuthFile,
    TokenCommand,
    Use,
    command,
    files,
    locks,
    oauth,
)
from byok.credentials.files import CredentialFileError
from byok.http.server import bound_port, serve_http
from byok.http.upstream import Upstream

from .token_server import TokenServer

NOW = 1_800_000_000.0
DEEP = "[" * 100_000 + "]" * 100_000


def wall() -> float:
    return NOW + trio.current_time()


@pytest.mark.parametrize(
    "expiry",
    ["9" * 400, '"²"', "1e400", '"NaN"', "-5", "1e20", '"99999999999999999999999"', "true"],
)
def test_an_expiry_no_cli_writes_is_an_error_of_the_file(expiry):
    data = f'{{"access_token": "a", "expires_at": {expiry}}}'.encode()
    with pytest.raises(CredentialFileError, match="expires_at is neither"):
        files.parse(data, NOW)


@pytest.mark.parametrize(
    "data",
    [
        DEEP.encode(),
        b'{"access_token": "a\\r\\nX-Evil: 1"}',
        b'{"access_token": "caf\\u00e9"}',
        b'{"access_token": "\\ud800"}',
    ],
)
def test_a_file_nested_too_deep_or_with_a_token_no_header_can_carry_is_refused(data):
    with pytest.raises(CredentialFileError):
        files.parse(data, NOW)


def test_a_jwt_with_an_expiry_past_any_date_has_none():
    import base64

    claims = base64.urlsafe_b64encode(b'{"exp": 1e400}').decode().rstrip("=")
    assert files.jwt_expiry(f"e30.{claims}.c2ln") is None


def test_an_expiry_past_year_9999_is_written_as_the_last_date_a_file_can_say():
    parsed, _ = files.parse(b'{"access_token": "a", "expiry": "2027-01-01T00:00:00Z"}', NOW)
    data = files.updated(parsed, files.Tokens("b", "", 1e300), NOW, {})
    assert json.loads(data)["expiry"] == "9999-12-31T23:59:59Z"


def test_a_nanosecond_rfc3339_time_is_read():  # Go's oauth2 writes them
    _, tokens = files.parse(
        b'{"access_token": "a", "expiry": "2027-01-15T08:00:00.123456789Z"}', NOW
    )
    assert tokens.expires_at == pytest.approx(1_800_000_000.123456)


@pytest.mark.parametrize(
    ("answer", "lifetime"),
    [
        (b'{"access_token": "t", "expires_in": 1e400}', None),
        (b'{"access_token": "t", "expires_in": "\xc2\xb2"}', None),
        (b'{"access_token": "t", "expires_in": NaN}', None),
        (b'{"access_token": "t", "expires_in": 99999999999}', None),
        (b'{"access_token": "t", "expires_in": "3600"}', 3600.0),
    ],
)
def test_a_grant_with_a_lifetime_not_to_believe_has_none(answer, lifetime):
    assert oauth.grant_of(answer, "the token endpoint").lifetime == lifetime


@pytest.mark.parametrize(
    "answer", [DEEP.encode(), b'{"access_token": "a b"}', b'{"access_token": 5}', b"\xff"]
)
def test_a_grant_without_a_usable_token_is_a_passing_failure(answer):
    with pytest.raises(CredentialError, match="without an access_token") as caught:
        oauth.grant_of(answer, "the token endpoint")
    assert not caught.value.blocks


def test_a_command_printing_json_nested_too_deep_is_refused():
    with pytest.raises(CredentialError, match="does not parse"):
        command.token_of(("{" + DEEP[1:]).encode(), NOW, "cmd")


def test_an_endpoints_long_description_loses_the_refresh_token_before_it_is_cut():
    answer = json.dumps({"error": "invalid_grant", "error_description": "x" * 290 + "RT-SECRET"})
    said = oauth._said(answer.encode(), ("RT-SECRET",))
    assert said == ", " + ("invalid_grant: " + "x" * 290 + "[redacted]")[:300]
    assert "RT-S" not in said


@pytest.fixture
def lock_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    return tmp_path


def test_the_lock_directory_is_this_users_alone(lock_home):
    directory = Path(locks.lock_directory())
    assert directory.parent == lock_home
    assert directory.stat().st_mode & 0o777 == 0o700
    directory.chmod(0o777)  # as another user could have made it
    with pytest.raises(OSError, match="not a directory of this user's alone"):
        locks.lock_directory()


async def test_a_lock_held_by_another_process_fails_the_renewal_after_its_wait(
    autojump_clock, lock_home, tmp_path
):
    import fcntl

    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"access_token": "a", "refresh_token": "r", "expires_at": 0}))
    source = OAuthFile(str(path), OAuthClient("https://127.0.0.1:9/token", "c"))
    held = os.open(locks.lock_path(str(path)), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        credentials = Credentials(wall)
        credentials.adopt([Use("p", "k", source, None)])
        with pytest.raises(CredentialError, match="held its refresh lock for over 60s") as caught:
            await credentials.token(Upstream(), source)
        assert not caught.value.blocks
        assert trio.current_time() == pytest.approx(60, abs=0.1)
    finally:
        os.close(held)


async def test_a_caller_that_leaves_stops_waiting_and_the_renewal_goes_on(
    autojump_clock, lock_home, tmp_path
):
    async with trio.open_nursery() as nursery:
        server = TokenServer()
        server.accept("rt-0")
        server.delay = 5.0
        listeners = await nursery.start(serve_http, server, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{bound_port(listeners)}/oauth/token"
        path = tmp_path / "credentials.json"
        path.write_text(json.dumps({"access_token": "a", "refresh_token": "rt-0", "expires_at": 0}))
        source = OAuthFile(str(path), OAuthClient(url, "c"))
        credentials = Credentials(wall)
        credentials.adopt([Use("p", "k", source, None)])
        upstream = Upstream()
        await nursery.start(credentials.run, upstream)
        with trio.move_on_after(1) as left:
            await credentials.token(upstream, source)
        assert left.cancelled_caught
        assert trio.current_time() == pytest.approx(1, abs=0.01)  # it left at once
        await trio.sleep(5)  # the renewal it started went on without it
        assert json.loads(path.read_text())["access_token"].startswith("at-sim-access-0001")
        assert len(server.grants) == 1
        await upstream.aclose()
        nursery.cancel_scope.cancel()


def unrefreshable(tmp_path: Path) -> tuple[Credentials, OAuthFile]:
    """A credential whose token has expired, with no token endpoint to refresh it."""
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"access_token": "a", "refresh_token": "r", "expires_at": 0}))
    source = OAuthFile(str(path), None)
    credentials = Credentials(wall)
    credentials.adopt([Use("p", "k", source, None)])
    return credentials, source


async def test_each_caller_gets_an_error_of_its_own(autojump_clock, tmp_path):
    credentials, source = unrefreshable(tmp_path)
    errors = []
    for _ in range(3):
        with pytest.raises(CredentialError) as caught:
            await credentials.token(Upstream(), source)
        errors.append(caught.value)
    assert len({id(e) for e in errors}) == 3  # not one instance, its traceback growing
    assert all(e.__traceback__ is not None for e in errors)


async def test_a_command_whose_expiry_is_past_keeps_its_token_for_its_ttl(tmp_path):
    code = "import json; print(json.dumps({'access_token': 'T', 'expires_on': 1000}))"
    dial = [NOW]
    source = TokenCommand((sys.executable, "-c", code), ttl=600)
    credentials = Credentials(lambda: dial[0])
    credentials.adopt([Use("p", "k", source, None)])
    assert await credentials.token(Upstream(), source) == "T"
    view = credentials.view(source)
    assert view is not None
    assert view["expires_at"] == NOW + 600


async def test_a_symlinked_file_is_written_through_its_link(autojump_clock, lock_home, tmp_path):
    async with trio.open_nursery() as nursery:
        server = TokenServer()
        server.accept("rt-0")
        listeners = await nursery.start(serve_http, server, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{bound_port(listeners)}/oauth/token"
        real = tmp_path / "dotfiles" / "credentials.json"
        real.parent.mkdir()
        real.write_text(json.dumps({"access_token": "a", "refresh_token": "rt-0", "expires_at": 0}))
        link = tmp_path / "credentials.json"
        link.symlink_to(real)
        source = OAuthFile(str(link), OAuthClient(url, "c"))
        credentials = Credentials(wall)
        credentials.adopt([Use("p", "k", source, None)])
        upstream = Upstream()
        await credentials.token(upstream, source)
        assert link.is_symlink()
        assert json.loads(real.read_text())["refresh_token"].startswith("at-sim-refresh-0001")
        await upstream.aclose()
        nursery.cancel_scope.cancel()


def test_a_file_older_than_the_tokens_held_is_left_unread(tmp_path):
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"access_token": "a-1", "refresh_token": "r-1"}))
    credentials = Credentials(lambda: NOW)
    source = OAuthFile(str(path), None)
    credentials.adopt([Use("p", "k", source, None)])
    credential = credentials._by_source[source]
    path.write_text(json.dumps({"access_token": "a-2", "refresh_token": "r-2"}))
    assert credential.load_file()
    # a write-back failed meanwhile, then the old file came back (a remount)
    path.write_text(json.dumps({"access_token": "a-1", "refresh_token": "r-1"}))
    assert not credential.load_file()
    assert credential.held is not None
    assert credential.held.token == "a-2"
    assert credential.refresh_token == "r-2"


async def test_a_credential_failing_for_days_keeps_its_backoff_at_the_cap(autojump_clock, tmp_path):
    credentials, source = unrefreshable(tmp_path)
    for _ in range(1100):  # past 2**1024, which no float holds
        with pytest.raises(CredentialError):
            await credentials.token(Upstream(), source, force=True)
    credential = credentials._by_source[source]
    assert credential.retry_at - wall() == 900.0
