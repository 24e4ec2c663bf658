"""Credential files as the vendors' CLIs keep them: their tokens read, and
refreshed ones written back in the same shape, so that the CLI keeps working.

The shapes read (the one object holding the tokens is the top level, or the
one object under a top-level key that holds an access or refresh token):

    {"claudeAiOauth": {"accessToken", "refreshToken", "expiresAt": ms, ...}}    Claude Code
    {"tokens": {"access_token", "refresh_token", "id_token", ...},
     "last_refresh": "2026-01-01T00:00:00Z"}                                    Codex CLI
    {"access_token", "refresh_token", "expiry_date": ms, ...}                   Gemini CLI
    {"access_token", "refresh_token", "expires_at": s} or "expires_in": s

An expiry is read in whatever unit it comes: epoch milliseconds or seconds
(told apart by size), an RFC 3339 time, or ``expires_in`` seconds from the
file's last change.  Without one, a JWT access token's own ``exp`` claim
says it (Codex's file has no expiry field); else the token is taken as
valid until the provider refuses it.

Writing back changes only what the refresh changed, under the names and in
the units the file used (a field the file did not have is not added), keeps
every other field and the file's layout (indented or compact), and replaces
the file at once (a temporary file in the same directory, renamed over it)
with mode 0600.  No message here ever holds a token.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

# the file names the vendors' CLIs use, looked for in a directory given as a key
FILE_NAMES = ("credentials.json", ".credentials.json", "auth.json", "oauth_creds.json")
MAX_FILE_BYTES = 1024 * 1024  # a credential file is a few KB

_ACCESS = ("accessToken", "access_token")
_REFRESH = ("refreshToken", "refresh_token")
_EXPIRY = (
    "expiresAt",
    "expires_at",
    "expiry_date",
    "expiryDate",
    "expiry",
    "expires_on",
    "expiresOn",
    "expires_in",
    "expiresIn",
)
_RELATIVE = ("expires_in", "expiresIn")
_MS_ABOVE = 1e11  # an epoch time above this is in milliseconds (1e11 s is the year 5138)

ExpiryStyle = Literal["ms", "s", "iso", "in"]


class CredentialFileError(ValueError):
    """A credential file that cannot serve: the message says why, never a token."""


@dataclass(frozen=True)
class Tokens:
    """What a credential holds now; times are wall-clock epoch seconds."""

    access: str = field(repr=False)  # "": none yet (only a refresh token)
    refresh: str = field(repr=False)  # "": cannot be refreshed
    expires_at: float | None  # None: unknown (valid until refused)


@dataclass
class CredentialFile:
    """A parsed credential file: the document, and where its tokens sit."""

    document: dict[str, Any]
    holder_key: str | None  # the top-level key of the object holding the tokens (None: top)
    access_name: str
    refresh_name: str
    expiry_name: str | None
    expiry_style: ExpiryStyle | None
    indented: bool
    newline_at_end: bool

    @property
    def holder(self) -> dict[str, Any]:
        if self.holder_key is None:
            return self.document
        found = self.document[self.holder_key]
        assert isinstance(found, dict)
        return found


def resolve(path: str | os.PathLike[str]) -> Path:
    """The credential file at `path`, or in the directory `path` under one
    of the names the vendors' CLIs use."""
    given = Path(path)
    if not given.is_dir():
        return given
    for name in FILE_NAMES:
        candidate = given / name
        if candidate.is_file():
            return candidate
    raise CredentialFileError(
        f"directory {given} holds no credential file (looked for {', '.join(FILE_NAMES)})"
    )


def read(path: Path) -> tuple[CredentialFile, Tokens, tuple[int, int, int]]:
    """The file at `path` parsed, its tokens, and its signature (inode,
    size, change time), which tells when another program rewrote it."""
    try:
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise CredentialFileError(f"credential file {path} not found") from None
    except OSError as error:
        raise CredentialFileError(f"cannot read credential file {path}: {error.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise CredentialFileError(f"credential file {path} is over {MAX_FILE_BYTES} bytes")
    parsed, tokens = parse(data, stat.st_mtime, str(path))
    return parsed, tokens, (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def signature(path: Path) -> tuple[int, int, int] | None:
    """The file's (inode, size, change time), None if it cannot be seen."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def parse(
    data: bytes, modified: float, name: str = "credential file"
) -> tuple[CredentialFile, Tokens]:
    """A credential file's bytes; `modified` (its change time) is where an
    ``expires_in`` counts from."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialFileError(f"{name} is not UTF-8 text") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        # the position only: the message of a JSON error may quote the text
        raise CredentialFileError(
            f"{name} is not JSON (line {error.lineno}, column {error.colno})"
        ) from None
    if not isinstance(document, dict):
        raise CredentialFileError(f"{name} is not a JSON object")
    holder_key = _holder(document, name)
    holder = document if holder_key is None else document[holder_key]
    access_name, access = _text(holder, _ACCESS, name)
    refresh_name, refresh = _text(holder, _REFRESH, name)
    if not access and not refresh:
        raise CredentialFileError(
            f"{name} holds no access or refresh token "
            f"(expected {' or '.join(_ACCESS + _REFRESH)}, at the top or under one key)"
        )
    expiry_name, style, expires_at = expiry_of(holder, modified, name)
    if expires_at is None and access:
        expires_at = jwt_expiry(access)
    parsed = CredentialFile(
        document=document,
        holder_key=holder_key,
        access_name=access_name or _named_like(refresh_name, _ACCESS),
        refresh_name=refresh_name or _named_like(access_name, _REFRESH),
        expiry_name=expiry_name,
        expiry_style=style,
        indented=b"\n" in data.strip(),
        newline_at_end=data.endswith(b"\n"),
    )
    return parsed, Tokens(access, refresh, expires_at)


def _holds_tokens(value: Any) -> bool:
    return isinstance(value, dict) and any(name in value for name in _ACCESS + _REFRESH)


def _holder(document: dict[str, Any], name: str) -> str | None:
    if _holds_tokens(document):
        return None
    found = [key for key, value in document.items() if _holds_tokens(value)]
    if len(found) > 1:
        raise CredentialFileError(
            f"{name} holds tokens under {len(found)} keys ({', '.join(map(repr, found))}): "
            "give a file of one account"
        )
    return found[0] if found else None


def _text(holder: dict[str, Any], names: tuple[str, ...], name: str) -> tuple[str, str]:
    for field_name in names:
        value = holder.get(field_name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise CredentialFileError(f"{name}: {field_name} is not a string")
        return field_name, value.strip()
    return "", ""


def _named_like(sibling: str, names: tuple[str, str]) -> str:
    """The name of a field the file lacks, in its sibling's style."""
    camel, snake = names
    return snake if "_" in sibling else camel


def expiry_of(
    holder: dict[str, Any], modified: float, name: str
) -> tuple[str | None, ExpiryStyle | None, float | None]:
    """Where `holder` says its token expires: (field, style, epoch seconds),
    each None if it does not say; ``expires_in`` counts from `modified`."""
    for field_name in _EXPIRY:
        value = holder.get(field_name)
        if value is None:
            continue
        if field_name in _RELATIVE:
            seconds = _number(value)
            if seconds is None:
                raise CredentialFileError(f"{name}: {field_name} is not a number of seconds")
            return field_name, "in", modified + seconds
        number = _number(value)
        if number is not None:
            if number > _MS_ABOVE:
                return field_name, "ms", number / 1000
            return field_name, "s", number
        if isinstance(value, str):
            when = _rfc3339(value)
            if when is not None:
                return field_name, "iso", when
        raise CredentialFileError(
            f"{name}: {field_name} is neither an epoch time nor an RFC 3339 time"
        )
    return None, None, None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.strip().isdigit():
        return float(value.strip())
    return None


def _rfc3339(text: str) -> float | None:
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (read, not verified: it only says when to
    refresh), or None if `token` is not a JWT with one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, UnicodeDecodeError):  # binascii.Error is a ValueError
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


def updated(
    parsed: CredentialFile,
    tokens: Tokens,
    wall: float,
    lifetime: float | None,
    extra: dict[str, str],
) -> bytes:
    """The file's document with refreshed `tokens` in it, in its shape:
    `lifetime` is the grant's expires_in (for an ``expires_in`` field),
    `extra` the other strings the grant gave (an id_token, a scope), set
    where the file has a field of that name."""
    holder = parsed.holder
    holder[parsed.access_name] = tokens.access
    if tokens.refresh:
        holder[parsed.refresh_name] = tokens.refresh
    if parsed.expiry_name is not None and tokens.expires_at is not None:
        holder[parsed.expiry_name] = _expiry_value(
            parsed.expiry_style, tokens.expires_at, wall, lifetime
        )
    for name, value in extra.items():
        for spelled in (name, _camel(name)):
            if spelled in holder:
                holder[spelled] = value
    if "last_refresh" in parsed.document:  # Codex's
        stamp = datetime.fromtimestamp(wall, timezone.utc).isoformat().replace("+00:00", "Z")
        parsed.document["last_refresh"] = stamp
    if parsed.indented:
        text = json.dumps(parsed.document, indent=2, ensure_ascii=False)
    else:
        text = json.dumps(parsed.document, separators=(",", ":"), ensure_ascii=False)
    return (text + ("\n" if parsed.newline_at_end else "")).encode("utf-8")


def _expiry_value(
    style: ExpiryStyle | None, expires_at: float, wall: float, lifetime: float | None
) -> int | str:
    if style == "ms":
        return int(expires_at * 1000)
    if style == "iso":
        return datetime.fromtimestamp(expires_at, timezone.utc).isoformat().replace("+00:00", "Z")
    if style == "in":  # counted from the file's change, which is now
        return int(lifetime if lifetime is not None else expires_at - wall)
    return int(expires_at)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace the file at `path` with `data` at once, mode 0600: readers see
    the old file or the new one, never a part."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".byok", dir=path.parent)
    try:
        os.chmod(temporary, 0o600)  # mkstemp's mode on POSIX already; said for any other
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
