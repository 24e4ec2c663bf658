"""Content codings: a gzip or deflate body inflated whole, within a bound.

byok relays bodies as the upstream encoded them; it inflates a copy only to
read one (the usage of an answer, the secrets in an error it relays).
"""

from __future__ import annotations

import zlib

INFLATABLE = frozenset({"gzip", "x-gzip", "deflate"})


def inflate(body: bytes, encoding: str, limit: int) -> bytes | None:
    """`body` inflated whole, or None: another encoding, a corrupt or cut
    body, or more than `limit` bytes once inflated."""
    if encoding not in INFLATABLE:
        return None
    inflater = zlib.decompressobj(wbits=47)  # a gzip or a zlib header, whichever it has
    try:
        data = inflater.decompress(body, limit)
    except zlib.error:
        return None
    return data if inflater.eof and not inflater.unconsumed_tail else None
