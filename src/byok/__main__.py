"""``python -m byok``: the same as the ``byok`` command."""

from __future__ import annotations

import sys

from byok.cli import main

if __name__ == "__main__":
    sys.exit(main())
