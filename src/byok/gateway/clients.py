"""Client keys as virtual keys: who is asking, which models it may use, and
how much.

Theory of operation
-------------------
A client key (``[server] client_keys``) may be a table with a label, the
models it may use, rates (``rpm``, ``tpm``) and budgets (``daily_tokens``,
``monthly_tokens``, ``monthly_cost``).  Admission checks them in this order,
before any upstream key is touched:

    the key is not one of client_keys                       401
    the model is not among the key's models                 403
    a budget of the day or the month is spent               429, x-should-retry: false,
                                                            Retry-After: until it renews
    the rate would go over rpm or tpm                       429, x-should-retry: true if the
                                                            Retry-After is a minute or less

Rates are token buckets in byok_core, one member per client label (a
Selector nobody picks from: ``acquire`` takes the request's estimated tokens,
``release`` gives the slot back, ``report_usage`` corrects the estimate), kept
in the group's shared segment like the key pools, so that every worker of a
``--workers`` group draws on one bucket; a reload keeps what was spent.

Across replicas (``[cluster]``), the rates and the budgets are Redis's
(byok.cluster: a GCRA limit per client and rate, counters per client and
period), whatever replica a request lands on: ``Live.shared_clients`` admits
there first, and while Redis cannot answer each replica decides on its own
state, as here.

Budgets are calendar periods in UTC (a day, a month) counted in the usage
ledger (byok.telemetry.usage_book): what every process of the group wrote to
the file plus this one's rows not yet written, so a restart does not renew a
month.  A request is admitted while the period's tokens (or cost) are under
the budget, and its own tokens count once its answer tells them: the last
request of a period may go over by its own size.  Over a budget is a 429
with ``x-should-retry: false`` rather than a 402: it is the status every
SDK and agent already understands as "not now", and the header (which the
official SDKs obey) stops their retries, while the Retry-After says when the
budget renews.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

from byok_core import Selector

from ..config import ClientKey, Config
from ..telemetry.usage_book import Tally
from . import routing

DAY = 86_400
MAX_RETRY_AFTER = 60  # as the planner's: a longer wait tells the SDKs not to retry


class SharedStateAway(Exception):
    """The cluster's shared state cannot answer now: decide on local state."""


class SharedClients(Protocol):
    """Client rates and budgets shared by the replicas of a cluster."""

    async def admit(self, client: ClientKey, cost: int, wall: float) -> Refusal | None:
        """As Clients.admit, against the shared state; SharedStateAway when
        it cannot answer."""

    def spent(self, client: ClientKey, tokens: int, cost: float, wall: float) -> None:
        """An answer's tokens and cost, for the shared budgets; never waits."""


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str
    retry_after: int | None = None  # whole seconds
    should_retry: bool = False


class Clients:
    """The client keys of one runtime: identification, rates and budgets."""

    def __init__(
        self, config: Config, usage: Tally | None, previous: Clients | None = None
    ) -> None:
        self.keys: tuple[ClientKey, ...] = config.server.client_keys
        self.secrets = [k.secret.encode("utf-8") for k in self.keys]
        self.usage = usage
        if usage is not None and any(
            k.daily_tokens or k.monthly_tokens or k.monthly_cost for k in self.keys
        ):
            usage.book.want_totals()  # budgets read the totals: kept up to the file
        rated = [k for k in self.keys if k.rpm or k.tpm]
        self.rates: Selector | None = None
        if rated:
            shared = routing.shared_segment()
            self.rates = Selector(
                [k.label for k in rated],
                rpm=[k.rpm for k in rated],
                tpm=[k.tpm for k in rated],
                shared=shared,
                scope="=clients" if shared is not None else None,
            )
            if previous is not None and previous.rates is not None:
                self.rates.inherit(previous.rates)  # what was spent stays spent

    def identify(self, presented: str) -> ClientKey | None:
        """The client key presented, compared in constant time with every
        one (the time taken says nothing about which matched)."""
        return _match(presented, self.keys, self.secrets)

    def allowed(self, client: ClientKey, model: str) -> Refusal | None:
        """None if `client` may use `model`, else the 403."""
        if client.models is not None and model not in client.models:
            allowed = ", ".join(client.models) or "none"
            return Refusal(
                403, f"client key {client.label!r} may not use model {model!r}; allowed: {allowed}"
            )
        return None

    def admit(self, client: ClientKey, cost: int, now: float, wall: float) -> Refusal | None:
        """None if `client` may send a request of `cost` estimated tokens now
        (then taken from its rates: release() gives the slot back), else why not."""
        if client.daily_tokens or client.monthly_tokens or client.monthly_cost:
            refusal = over_budget(client, *self.spent(client, wall), wall)
            if refusal is not None:
                return refusal
        rates = self.rates
        if rates is None or not (client.rpm or client.tpm):
            return None
        if rates.acquire(client.label, cost, now):
            return None
        wait, limit = rates.limits_wait(client.label, cost, now)
        return over_rate(client, limit or "rpm", wait)

    def release(self, client: ClientKey, cost: int) -> None:
        if self.rates is not None and (client.rpm or client.tpm):
            self.rates.release(client.label, cost)

    def used(self, client: ClientKey, estimated: int, actual: int, now: float) -> None:
        """The answer's tokens: the client's tpm takes the difference from the estimate."""
        if self.rates is not None and client.tpm:
            self.rates.report_usage(client.label, estimated, actual, now)

    def spent(self, client: ClientKey, wall: float) -> tuple[int, int, float]:
        """What `client` spent by the usage ledger: tokens today, tokens and
        cost this month (0 without a ledger, or for a period without a budget)."""
        usage = self.usage
        day = month = 0
        cost = 0.0
        if usage is None:
            return day, month, cost
        if client.daily_tokens:
            totals = usage.spent(client.label, wall - wall % DAY)
            day = totals.input_tokens + totals.output_tokens
        if client.monthly_tokens or client.monthly_cost:
            totals = usage.spent(client.label, month_of(wall)[0])
            month, cost = totals.input_tokens + totals.output_tokens, totals.cost
        return day, month, cost


def over_rate(client: ClientKey, limit: str, wait: float) -> Refusal:
    """The 429 of a client over its rpm or tpm, back in `wait` seconds."""
    seconds = max(1, math.ceil(wait))
    per = f"{client.rpm} requests" if limit == "rpm" else f"{client.tpm} tokens"
    return Refusal(
        429,
        f"client key {client.label!r} is over its {limit} ({per} a minute); "
        f"this request fits again in {wait:.1f}s",
        seconds,
        seconds <= MAX_RETRY_AFTER,
    )


def over_budget(
    client: ClientKey, day: int, month: int, cost: float, wall: float
) -> Refusal | None:
    """The 429 of a client whose spending (`day` and `month` tokens, the
    month's `cost`) reached a budget; None if it reached none."""
    if client.daily_tokens and day >= client.daily_tokens:
        renews = wall - wall % DAY + DAY
        return _spent(client, "daily token budget", client.daily_tokens, day, renews, wall)
    renews = month_of(wall)[1]
    if client.monthly_tokens and month >= client.monthly_tokens:
        return _spent(client, "monthly token budget", client.monthly_tokens, month, renews, wall)
    if client.monthly_cost and cost >= client.monthly_cost:
        return _spent(client, "monthly cost budget", client.monthly_cost, cost, renews, wall)
    return None


def _match(presented: str, keys: Sequence[ClientKey], secrets: Sequence[bytes]) -> ClientKey | None:
    given = presented.encode("utf-8")
    compare = hmac.compare_digest
    found = [compare(given, secret) for secret in secrets]  # every key, always
    if not presented or True not in found:
        return None
    return keys[found.index(True)]


_month: tuple[float, float] = (0.0, 0.0)  # the last month_of(): asked for again and again


def month_of(wall: float) -> tuple[float, float]:
    """The start of the UTC month holding `wall`, and of the next one."""
    global _month
    if _month[0] <= wall < _month[1]:
        return _month
    day = datetime.fromtimestamp(wall, timezone.utc)
    start = datetime(day.year, day.month, 1, tzinfo=timezone.utc)
    following = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=timezone.utc)
    _month = (start.timestamp(), following.timestamp())
    return _month


def _spent(
    client: ClientKey, budget: str, limit: float, used: float, renews: float, wall: float
) -> Refusal:
    when = datetime.fromtimestamp(renews, timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    if isinstance(limit, float):
        amounts = f"${limit:,.2f}; spent ${used:,.2f}"
    else:
        amounts = f"{limit:,} tokens; used {int(used):,}"
    return Refusal(
        429,
        f"client key {client.label!r} has spent its {budget} ({amounts}); it renews at {when}",
        max(1, math.ceil(renews - wall)),
        False,
    )
