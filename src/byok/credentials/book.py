"""The tokens that short-lived keys have held lately, for the redactor.

The config's secrets are known at load; a credential's tokens come and go.
The store replaces the book's contents as they change, and every redactor
built with the book (config.Redactor) takes them out too, as they are now.
"""

from __future__ import annotations

from collections.abc import Iterable


class SecretBook:
    def __init__(self) -> None:
        self.secrets: tuple[str, ...] = ()
        self.version = 0  # one more at each change: a redactor rebuilds its lists then

    def replace(self, secrets: Iterable[str]) -> None:
        new = tuple(dict.fromkeys(s for s in secrets if s))
        if new != self.secrets:
            self.secrets = new
            self.version += 1
