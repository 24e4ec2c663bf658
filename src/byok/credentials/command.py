"""A token printed by a command: ``gcloud auth print-access-token``,
``az account get-access-token``, a script of the operator's.

The command runs without a shell (its argv as the config lists it), with no
input, within its timeout (then it is killed).  What it prints is the token:
one line of text, or a JSON object with ``access_token`` (``accessToken``,
``token``) and, if it says, when the token expires (``expires_in``,
``expires_on``, ``expiresOn``, ``expires_at``: as a credential file's
expiry is read).  Its output is never logged: a failure says the exit
status and the last line of its standard error, with anything that looks
like a token taken out.

A command that cannot start, prints nothing, or prints anything but a token
blocks the key (it will not mend by itself: the operator fixes the config
or signs in again, and re-validation finds the key back).  One that exits
with a failure, or times out, counts as a failure of the key and runs again
after a backoff: gcloud and az fail that way on a network error too.
"""

from __future__ import annotations

import json
import re
import subprocess

import trio

from . import files
from .errors import CredentialError
from .sources import TokenCommand

OUTPUT_LIMIT = 64 * 1024  # bytes of standard output, and of standard error, kept
_TOKEN_FIELDS = ("access_token", "accessToken", "token")
# what a token looks like in an error line: a long run of base64 and JWT
# characters, letters and digits mixed (a program's dotted name has no digit)
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9._~+/=-]{24,}")


async def run(command: TokenCommand, wall: float) -> tuple[str, float | None]:
    """The token the command prints, and when it expires if it says so
    (wall-clock seconds); `wall` is now, where a relative expiry counts from."""
    name = command.shown
    try:
        process = await trio.lowlevel.open_process(
            list(command.argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as error:
        raise CredentialError(
            f"token command {name} could not start: {error.strerror}", blocks=True
        ) from None
    out, err = bytearray(), bytearray()
    over = False
    with trio.move_on_after(command.timeout) as waiting:
        try:
            async with trio.open_nursery() as nursery:
                assert process.stdout is not None
                assert process.stderr is not None
                nursery.start_soon(_collect, process.stdout, out, nursery.cancel_scope)
                nursery.start_soon(_collect, process.stderr, err, None)
            over = len(out) > OUTPUT_LIMIT
            if not over:
                await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                with trio.CancelScope(shield=True):
                    await process.wait()
    if waiting.cancelled_caught:
        raise CredentialError(
            f"token command {name} did not finish within {command.timeout:g}s", blocks=False
        )
    if over:
        raise CredentialError(
            f"token command {name} printed more than {OUTPUT_LIMIT} bytes: a token command "
            "prints the token alone, or a JSON object with access_token",
            blocks=True,
        )
    if process.returncode != 0:
        raise CredentialError(
            f"token command {name} exited with status {process.returncode}{_last_line(err)}",
            blocks=False,
        )
    return token_of(bytes(out), wall, name)


async def _collect(
    stream: trio.abc.ReceiveStream, into: bytearray, stop: trio.CancelScope | None
) -> None:
    """Read `stream` to its end into `into`, keeping OUTPUT_LIMIT + 1 bytes
    at most; past that, `stop` is cancelled (the output is too long), or the
    rest is read and dropped (standard error: only its end matters)."""
    while chunk := await stream.receive_some(65536):
        if stop is not None and len(into) + len(chunk) > OUTPUT_LIMIT:
            into += chunk[: OUTPUT_LIMIT + 1 - len(into)]
            stop.cancel()
            return
        into += chunk
        if len(into) > OUTPUT_LIMIT:
            del into[: len(into) - OUTPUT_LIMIT]


def token_of(output: bytes, wall: float, name: str) -> tuple[str, float | None]:
    """The token in a command's output, and its expiry if the output says."""
    try:
        text = output.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CredentialError(
            f"token command {name} printed bytes that are not UTF-8", blocks=True
        ) from None
    if not text:
        raise CredentialError(f"token command {name} printed nothing", blocks=True)
    if text.startswith("{"):
        return _from_json(text, wall, name)
    if not files.is_token(text):
        raise CredentialError(
            f"token command {name} printed more than one word (or characters a token "
            "cannot hold): a token command prints the token alone, or a JSON object with "
            "access_token",
            blocks=True,
        )
    return text, files.jwt_expiry(text)


def _from_json(text: str, wall: float, name: str) -> tuple[str, float | None]:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise CredentialError(
            f"token command {name} printed JSON that does not parse", blocks=True
        ) from None
    if not isinstance(document, dict):
        raise CredentialError(
            f"token command {name} printed JSON that is not an object", blocks=True
        )
    found = (document.get(f) for f in _TOKEN_FIELDS)
    token = next(
        (t.strip() for t in found if isinstance(t, str) and files.is_token(t.strip())), None
    )
    if token is None:
        raise CredentialError(
            f"token command {name} printed a JSON object without {' or '.join(_TOKEN_FIELDS)}",
            blocks=True,
        )
    try:
        _, _, expires_at = files.expiry_of(document, wall, f"token command {name}'s output")
    except files.CredentialFileError:
        expires_at = None  # a time it writes its own way: the ttl alone decides
    return token, expires_at if expires_at is not None else files.jwt_expiry(token)


def _last_line(err: bytearray) -> str:
    """The last line of a command's standard error, tokens taken out: ": ..." or ""."""
    lines = [line.strip() for line in bytes(err).decode("utf-8", "replace").splitlines()]
    last = next((line for line in reversed(lines) if line), "")
    if not last:
        return ""
    return ": " + _TOKEN_LIKE.sub(_scrubbed, last)[:200]


def _scrubbed(run: re.Match[str]) -> str:
    word = run.group()
    looks_like_a_token = any(c.isdigit() for c in word) and any(c.isalpha() for c in word)
    return "[redacted]" if looks_like_a_token else word
