"""The content codings the upstream is offered: only those byok can read."""

from __future__ import annotations

import pytest

from byok.gateway.headers import readable_codings


@pytest.mark.parametrize(
    ("client", "upstream"),
    [
        ("", "identity"),
        ("identity", "identity"),
        ("gzip, deflate", "gzip, deflate"),
        ("gzip, deflate, br, zstd", "gzip, deflate"),
        ("br, zstd", "identity"),
        ("BR;q=1.0 , GZip;q=0.5,zstd", "GZip;q=0.5"),
        ("x-gzip", "x-gzip"),
        ("*", "identity"),
        ("br, *;q=0.1", "identity"),
        ("gzip;q=0, br", "gzip;q=0"),  # the client's refusal of gzip goes up too
        (",,gzip,", "gzip"),
    ],
)
def test_the_upstream_is_offered_what_byok_reads(client: str, upstream: str) -> None:
    assert readable_codings(client) == upstream
