"""Whole minutes of traffic in virtual time (now=), through the engine alone:
the health rules judged by what they do to a pool, not rule by rule."""

from __future__ import annotations

from itertools import pairwise

RATE = 20  # picks per second
START = 100.0


def serve(sel, seconds, outcome):
    """Pick RATE times a second for `seconds`; `outcome(member, t, n)` says
    whether the n-th request (from 1) a member gets at time t succeeds.
    Returns each pick of every member as (t, transition of its report)."""
    served: dict[str, list[tuple[float, str | None]]] = {}
    for k in range(seconds * RATE):
        t = START + k / RATE
        member = sel.pick(now=t)
        if member is None:
            continue
        picks = served.setdefault(member, [])
        if outcome(member, t, len(picks) + 1):
            change = sel.report_success(member, latency=0.2, now=t)
        else:
            change = sel.report_error(member, now=t)
        picks.append((t, change))
    return served


def test_a_key_failing_every_second_request_gets_little_traffic(impl):
    sel = impl.Selector(["a", "b", "c"], strategy="weighted_round_robin")
    served = serve(sel, 60, lambda member, t, n: member != "c" or n % 2 == 1)
    c = served["c"]
    assert len(c) <= 25  # of 1200 requests; a third of them without the rate rule
    changes = [change for _, change in c if change]
    assert changes[0] == "opened_by_rate"  # the consecutive count never reaches 3
    assert set(changes) == {"opened_by_rate", "ready"}  # each probe succeeds, the next fails
    assert len(served["a"]) + len(served["b"]) + len(c) == 1200
    assert sel.snapshot(now=START + 60)[2]["backoff_level"] >= 5  # on probation all along


def test_a_dead_key_is_probed_once_per_step_and_back_soon_after_it_recovers(impl):
    sel = impl.Selector(["a", "b", "c"], strategy="weighted_round_robin")
    recovery = START + 60
    served = serve(sel, 120, lambda member, t, n: member != "c" or t >= recovery)
    c = served["c"]
    outage = [(t, change) for t, change in c if t < recovery]
    back = next(t for t, _ in c if t >= recovery)
    assert back - recovery <= 15  # max_cooldown
    # three errors in a row open the circuit; from then on each pick is the
    # one probe of its half-open period, and each probe fails
    assert [change for _, change in outage[:3]] == [None, None, "opened"]
    assert all(change == "probe_failed" for _, change in outage[3:])
    gaps = [later - earlier for (earlier, _), (later, _) in pairwise(outage[2:])]
    steps = [1, 2, 4, 8, 15, 15, 15, 15]
    assert len(gaps) <= len(steps)
    for gap, step in zip(gaps, steps):
        assert step <= gap <= step + 3 / RATE  # the probe comes within a round of picks
    # recovered: the probe closes the circuit and the key takes its share again
    assert next(change for t, change in c if t >= recovery) == "ready"
    assert len([t for t, _ in c if t >= back]) >= 0.3 * (START + 120 - back) * RATE
    assert sel.snapshot(now=START + 120)[2]["backoff_level"] == 0  # forgiven
