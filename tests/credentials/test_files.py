"""Credential files in the shapes the vendors' CLIs keep them: read, and
written back in the same shape (names, units, layout, other fields kept),
atomically and with mode 0600; a file that cannot serve says why without
showing a token."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
from pathlib import Path

import pytest

from byok.credentials import files
from byok.credentials.files import CredentialFileError, Tokens

NOW = 1_800_000_000.0  # a wall-clock time, in 2027

CLAUDE = {
    "claudeAiOauth": {
        "accessToken": "sk-ant-oat01-AAAA",
        "refreshToken": "sk-ant-ort01-RRRR",
        "expiresAt": int((NOW + 3600) * 1000),
        "scopes": ["user:inference", "user:profile"],
        "subscriptionType": "max",
    }
}
GEMINI = {
    "access_token": "ya29.AAAA",
    "refresh_token": "1//RRRR",
    "expiry_date": int((NOW + 1800) * 1000),
    "token_type": "Bearer",
    "scope": "https://www.googleapis.com/auth/cloud-platform",
}


def jwt(claims: dict) -> str:
    def part(data: dict) -> str:
        raw = base64.urlsafe_b64encode(json.dumps(data).encode()).decode()
        return raw.rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


CODEX = {
    "OPENAI_API_KEY": None,
    "tokens": {
        "id_token": "id-OLD",
        "access_token": jwt({"exp": int(NOW + 7200), "sub": "u"}),
        "refresh_token": "rt-RRRR",
        "account_id": "acct-1",
    },
    "last_refresh": "2027-01-01T00:00:00Z",
}


def parsed(document: dict, modified: float = NOW) -> tuple[files.CredentialFile, Tokens]:
    return files.parse(json.dumps(document, indent=2).encode(), modified)


@pytest.mark.parametrize(
    ("document", "access", "refresh", "expires_at"),
    [
        (CLAUDE, "sk-ant-oat01-AAAA", "sk-ant-ort01-RRRR", NOW + 3600),
        (GEMINI, "ya29.AAAA", "1//RRRR", NOW + 1800),
        (CODEX, CODEX["tokens"]["access_token"], "rt-RRRR", NOW + 7200),  # the JWT's exp
        ({"access_token": "a", "refresh_token": "r", "expires_at": NOW + 60}, "a", "r", NOW + 60),
        ({"access_token": "a", "expires_in": 120}, "a", "", NOW + 120),  # from the file's change
        ({"accessToken": "a", "expiresAt": "2027-01-15T08:00:00Z"}, "a", "", 1_800_000_000.0),
        ({"provider": {"refresh_token": "r"}}, "", "r", None),  # refresh only: renewed first
        ({"access_token": "opaque"}, "opaque", "", None),  # valid until refused
    ],
)
def test_the_common_shapes_are_read(document, access, refresh, expires_at):
    _, tokens = parsed(document)
    assert (tokens.access, tokens.refresh, tokens.expires_at) == (access, refresh, expires_at)


def test_write_back_keeps_the_shape_names_units_and_other_fields(tmp_path: Path):
    path = tmp_path / ".credentials.json"
    path.write_text(json.dumps(CLAUDE, indent=2) + "\n")
    path.chmod(0o644)
    parsed_file, _ = files.read(path)[:2]
    new = Tokens("sk-ant-oat01-NEW", "sk-ant-ort01-NEW", NOW + 28800)
    files.write_atomically(path, files.updated(parsed_file, new, NOW, {}))
    written = json.loads(path.read_text())
    assert written == {
        "claudeAiOauth": {
            **CLAUDE["claudeAiOauth"],
            "accessToken": "sk-ant-oat01-NEW",
            "refreshToken": "sk-ant-ort01-NEW",
            "expiresAt": int((NOW + 28800) * 1000),  # milliseconds, as it was
        }
    }
    assert path.read_text().startswith('{\n  "claudeAiOauth"')  # indented, as it was
    assert path.read_text().endswith("}\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == [".credentials.json"]  # no temporary file left
    assert files.read(path)[1] == new


def test_write_back_of_codex_updates_the_id_token_and_last_refresh_and_adds_nothing():
    parsed_file, _ = parsed(CODEX)
    access = jwt({"exp": int(NOW + 864000)})
    extra = {"id_token": "id-NEW", "scope": "openid"}
    data = files.updated(parsed_file, Tokens(access, "rt-NEW", NOW + 864000), NOW, extra)
    written = json.loads(data)
    assert written["tokens"] == {
        "id_token": "id-NEW",
        "access_token": access,
        "refresh_token": "rt-NEW",
        "account_id": "acct-1",
    }  # no expiry field and no scope: the file had none
    assert written["last_refresh"] == "2027-01-15T08:00:00Z"
    assert written["OPENAI_API_KEY"] is None


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("expiry_date", int(NOW * 1000), int((NOW + 3600) * 1000)),  # ms
        ("expires_at", int(NOW), int(NOW + 3600)),  # seconds
        ("expiry", "2027-01-15T08:00:00Z", "2027-01-15T09:00:00Z"),  # RFC 3339
        ("expires_in", 60, 3600),  # the grant's lifetime, from the write
    ],
)
def test_the_expiry_is_written_in_the_unit_it_was_read(field, value, expected):
    parsed_file, _ = parsed({"access_token": "a", "refresh_token": "r", field: value})
    data = files.updated(parsed_file, Tokens("b", "", NOW + 3600), NOW, {})
    written = json.loads(data)
    assert written[field] == expected
    assert written["refresh_token"] == "r"  # the endpoint kept it: so does the file


def test_a_compact_file_stays_compact():
    parsed_file, _ = files.parse(b'{"access_token":"a","refresh_token":"r"}', NOW)
    data = files.updated(parsed_file, Tokens("b", "s", None), NOW, {})
    assert data == b'{"access_token":"b","refresh_token":"s"}'


def test_a_directory_names_the_file_the_vendors_cli_keeps_in_it(tmp_path: Path):
    (tmp_path / "auth.json").write_text(json.dumps(CODEX))
    assert files.resolve(tmp_path) == tmp_path / "auth.json"
    (tmp_path / "credentials.json").write_text(json.dumps(GEMINI))
    assert files.resolve(tmp_path) == tmp_path / "credentials.json"  # the first name wins
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CredentialFileError, match="holds no credential file"):
        files.resolve(empty)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"access_token": "sk-secret-AAAA"', "is not JSON (line 1, column 34)"),
        (b"\xff\xfe", "is not UTF-8 text"),
        (b'["sk-secret-AAAA"]', "is not a JSON object"),
        (b'{"user": "me"}', "holds no access or refresh token"),
        (b'{"a": {"access_token": "x"}, "b": {"refresh_token": "y"}}', "under 2 keys"),
        (b'{"access_token": 12}', "access_token is not a string"),
        (b'{"access_token": "x", "expires_at": "soon"}', "expires_at is neither"),
        (b'{"access_token": "x", "expires_in": "an hour"}', "expires_in is not a number"),
    ],
)
def test_a_file_that_cannot_serve_says_why_and_never_shows_a_token(data, message):
    with pytest.raises(CredentialFileError, match=re.escape(message)) as caught:
        files.parse(data, NOW, "creds.json")
    assert "sk-secret" not in str(caught.value)
    assert str(caught.value).startswith("creds.json")


def test_an_unreadable_or_huge_file_is_refused(tmp_path: Path):
    with pytest.raises(CredentialFileError, match="not found"):
        files.read(tmp_path / "missing.json")
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * (files.MAX_FILE_BYTES + 1))
    with pytest.raises(CredentialFileError, match="is over"):
        files.read(huge)


def test_a_token_that_is_not_a_jwt_has_no_expiry():
    assert files.jwt_expiry("opaque") is None
    assert files.jwt_expiry("a.b.c") is None  # not base64 JSON
    assert files.jwt_expiry(jwt({"sub": "no exp"})) is None
    assert files.jwt_expiry(jwt({"exp": 17})) == 17.0
