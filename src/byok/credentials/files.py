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
import math
import os
import re
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
_MS_BELOW = 1e14  # ... and one above this is in no unit byok reads (microseconds?)
_LATEST = 253402300799.0  # 9999-12-31T23:59:59Z: the last time a file can say
# a token as it can go in a header: visible ASCII, nothing else
_TOKEN = re.compile(r"[!-~]+")
# RFC 3339 fractions past microseconds (Go writes nanoseconds), which Python
# 3.10's fromisoformat refuses
_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")

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
    expiry_as_text: bool = False  # "1800000000" rather than 1800000000: written so again

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
    try:
        if not given.is_dir():
            return given
        found = next((given / n for n in FILE_NAMES if (given / n).is_file()), None)
    except OSError as error:  # a directory on the way that byok may not search
        raise CredentialFileError(f"cannot look at {given}: {error.strerror}") from None
    if found is not None:
        return found
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
    except RecursionError:
        raise CredentialFileError(f"{name} is JSON nested too deep") from None
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
    as_text = expiry_name is not None and isinstance(holder[expiry_name], str) and style != "iso"
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
        expiry_as_text=as_text,
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
        value = value.strip()
        if value and not is_token(value):
            raise CredentialFileError(
                f"{name}: {field_name} holds characters a token cannot (spaces, line "
                "breaks, or anything but visible ASCII)"
            )
        return field_name, value
    return "", ""


def is_token(text: str) -> bool:
    """Whether `text` can be a token in a header: visible ASCII only."""
    return _TOKEN.fullmatch(text) is not None


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
            seconds = number(value)
            if seconds is None or seconds > _LATEST:
                raise CredentialFileError(f"{name}: {field_name} is not a number of seconds")
            return field_name, "in", modified + seconds
        epoch = number(value)
        if epoch is not None and epoch <= _MS_BELOW:
            if epoch > _MS_ABOVE:
                return field_name, "ms", epoch / 1000
            return field_name, "s", epoch
        if isinstance(value, str):
            when = _rfc3339(value)
            if when is not None:
                return field_name, "iso", when
        raise CredentialFileError(
            f"{name}: {field_name} is neither an epoch time nor an RFC 3339 time"
        )
    return None, None, None


def number(value: Any) -> float | None:
    """A finite number of 0 or more, as JSON or as a string of digits gives
    it; None for anything else (a bool, NaN, a string of other digits)."""
    if isinstance(value, str):
        text = value.strip()
        value = int(text) if text.isascii() and text.isdigit() and len(text) < 20 else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        found = float(value)
    except OverflowError:  # an int past any float
        return None
    return found if math.isfinite(found) and found >= 0 else None


def _rfc3339(text: str) -> float | None:
    try:
        when = datetime.fromisoformat(
            _LONG_FRACTION.sub(r"\1", text.strip().replace("Z", "+00:00"))
        )
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.timestamp()
    except (ValueError, OverflowError):
        return None


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (read, not verified: it only says when to
    refresh), or None if `token` is not a JWT with one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, RecursionError):  # binascii's and UnicodeDecodeError are ValueErrors
        return None
    exp = number(claims.get("exp")) if isinstance(claims, dict) else None
    return exp if exp is not None and exp <= _LATEST else None


def updated(parsed: CredentialFile, tokens: Tokens, wall: float, extra: dict[str, str]) -> bytes:
    """The file's document with refreshed `tokens` in it, in its shape
    (`wall` is now, from which an ``expires_in`` counts); `extra` are the
    other strings the grant gave (an id_token, a scope), set where the file
    has a field of that name."""
    holder = parsed.holder
    holder[parsed.access_name] = tokens.access
    if tokens.refresh:
        holder[parsed.refresh_name] = tokens.refresh
    if parsed.expiry_name is not None and tokens.expires_at is not None:
        value = _expiry_value(parsed.expiry_style, tokens.expires_at, wall)
        holder[parsed.expiry_name] = str(value) if parsed.expiry_as_text else value
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


def _expiry_value(style: ExpiryStyle | None, expires_at: float, wall: float) -> int | str:
    expires_at = min(max(expires_at, 0.0), _LATEST) if math.isfinite(expires_at) else _LATEST
    if style == "ms":
        return int(expires_at * 1000)
    if style == "iso":
        return datetime.fromtimestamp(expires_at, timezone.utc).isoformat().replace("+00:00", "Z")
    if style == "in":  # counted from the file's change, which is now
        return int(max(expires_at - wall, 0.0))
    return int(expires_at)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace the file at `path` with `data` at once, mode 0600: readers see
    the old file or the new one, never a part.  A symlink's target is the
    file replaced (the link stays), and it keeps its owner where byok may
    set it (byok as root, on a user's file)."""
    target = Path(os.path.realpath(path))
    try:
        before: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        before = None
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".byok", dir=target.parent
    )
    try:
        os.chmod(temporary, 0o600)  # mkstemp's mode on POSIX already; said for any other
        if before is not None and hasattr(os, "chown"):
            with contextlib.suppress(OSError):  # only root may give a file away
                os.chown(temporary, before.st_uid, before.st_gid)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
