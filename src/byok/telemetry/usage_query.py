"""A question to the usage ledger, read from text: the groups to sum by and
the period.  `byok usage` (its options) and `GET /admin/usage` (its query
parameters) take the same words, so they read them here; `option` names the
option or parameter in the one-line error, as its asker wrote it.

Times are UTC unless the text says otherwise; the ledger counts whole hours
(`usage_book.grouped`), so a moment here picks the hour that holds it."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from .usage_book import GROUPS

DEFAULT_BY = ("day", "client", "model", "key")
COST_DECIMALS = 6  # a millionth of a dollar: below it, only float noise
WHEN = "a date (2026-12-01), a UTC date and time (2026-12-01T10:00) or an age (7d, 24h, 30m)"
_AGE = re.compile(r"(\d+)([dhm])")
_AGE_UNITS = {"d": 86400, "h": 3600, "m": 60}


class UsageQueryError(ValueError):
    """A group or a moment that cannot be read, said in one line."""


def parse_by(text: str, option: str = "--by") -> tuple[str, ...]:
    """`day,client,model` as a tuple of GROUPS names, each once, in order."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in GROUPS]
    if unknown or not names:
        got = f"{', '.join(map(repr, unknown))} is not one" if unknown else "nothing given"
        raise UsageQueryError(f"{option}: {got}; give some of {', '.join(GROUPS)}, comma-separated")
    return tuple(dict.fromkeys(names))


def parse_when(text: str, now: float, option: str) -> float:
    """A moment as Unix seconds: an ISO date or date and time (UTC unless it
    says otherwise), or an age before `now` such as 7d, 24h, 30m."""
    text = text.strip()
    age = _AGE.fullmatch(text)
    if age:
        return now - int(age[1]) * _AGE_UNITS[age[2]]
    try:
        # Python 3.10's fromisoformat takes no Z
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise UsageQueryError(f"{option} {text!r}: expected {WHEN}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def start_of_month(now: float) -> float:
    """The first moment of the UTC month that holds `now`."""
    day = datetime.fromtimestamp(now, timezone.utc)
    return day.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
