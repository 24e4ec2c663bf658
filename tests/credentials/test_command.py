"""Token commands, run for real (a Python one-liner stands for gcloud or az):
success, a JSON answer with its expiry, failure, timeout, huge output, a
command that prints nothing, one that cannot start.  The tests that finish
run on trio's real clock (a subprocess's time is real; MockClock's autojump
would pass its timeout while it starts); the timeout runs under the
autojump clock, where 30 s pass at once."""

from __future__ import annotations

import sys

import pytest

from byok.credentials import CredentialError, TokenCommand, command

NOW = 1_800_000_000.0


def python(code: str, ttl: float = 300.0, timeout: float = 30.0) -> TokenCommand:
    return TokenCommand((sys.executable, "-c", code), ttl, timeout)


async def test_a_printed_token_is_taken_with_its_line_end_stripped():
    token, expires = await command.run(python("print('ya29.TOKEN-ABC')"), NOW)
    assert (token, expires) == ("ya29.TOKEN-ABC", None)  # the ttl alone decides


async def test_a_json_answer_gives_its_token_and_its_expiry():
    code = "import json; print(json.dumps({'accessToken': 'eyTOKEN', 'expires_in': 1800}))"
    assert await command.run(python(code), NOW) == ("eyTOKEN", NOW + 1800)
    code = "import json; print(json.dumps({'access_token': 'T', 'expires_on': 1800000600}))"
    assert await command.run(python(code), NOW) == ("T", 1_800_000_600.0)


@pytest.mark.parametrize(
    ("code", "message", "blocks"),
    [
        (
            "import sys; sys.stderr.write('ERROR: (gcloud) reauth needed for tok "
            "ya29ABCDEFGHIJKLMNOPQRSTUVWXYZ012345\\n'); sys.exit(1)",
            "exited with status 1: ERROR: (gcloud) reauth needed for tok [redacted]",
            False,  # a failure of the key: gcloud fails so on a network error too
        ),
        ("pass", "printed nothing", True),
        ("print('   ')", "printed nothing", True),
        ("print('two words')", "printed more than one word", True),
        ("print('x' * 200000)", "printed more than 65536 bytes", True),
        ("import sys; sys.stdout.buffer.write(b'\\xff\\xfe')", "not UTF-8", True),
        ('print(\'{"token_type": "bearer"}\')', "without access_token", True),
        ("print('{not json')", "does not parse", True),
    ],
)
async def test_a_command_that_gives_no_token_says_why_and_never_its_output(code, message, blocks):
    with pytest.raises(CredentialError) as caught:
        await command.run(python(code), NOW)
    assert message in caught.value.reason
    assert caught.value.blocks is blocks
    assert caught.value.reason.startswith(f"token command {sys.executable}")
    assert "ya29ABCDEF" not in caught.value.reason


async def test_a_command_that_cannot_start_blocks_its_key(tmp_path):
    missing = TokenCommand((str(tmp_path / "no-such-program"),))
    with pytest.raises(CredentialError, match="could not start") as caught:
        await command.run(missing, NOW)
    assert caught.value.blocks


async def test_a_command_past_its_timeout_is_killed_and_may_pass(autojump_clock):
    slow = python("import time; time.sleep(600); print('late')", timeout=5)
    with pytest.raises(CredentialError, match="did not finish within 5s") as caught:
        await command.run(slow, NOW)
    assert not caught.value.blocks  # a failure of the key, tried again at the next need
