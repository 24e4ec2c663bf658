"""``python -m byok``: the proxy's entry point.

The proxy itself (trio server, httpx upstream, retries and fallbacks) is the
next milestone.  Today this command shows the selection engine at work on a
built-in set of simulated keys, so that a fresh install has something real
to run.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from byok import tour

    return tour.run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
