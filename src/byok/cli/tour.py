"""A tour of the selection engine on simulated keys and a simulated clock.

Four upstream keys serve sixty requests over thirty simulated seconds: one
healthy heavy key, one that is rate-limited now and then (429 with
Retry-After), one that was revoked (401) and one whose server fails for a
while.  The tour prints each request's route and outcome, then the health
table, so that rotation, cooldown, recovery, blocking and the circuit breaker
can be watched at work without a network.
"""

from __future__ import annotations

from collections.abc import Callable

from byok_core import COMPILED, Selector, State

from .tables import columns

Outcome = tuple[str, float]  # ("ok" | "429" | "401" | "500", retry-after or latency)


def _team_a(t: float) -> Outcome:
    return "ok", 0.4


def _team_b(t: float) -> Outcome:
    # rate-limited for a while every ten seconds, as a busy shared key is
    return ("429", 4.0) if 4 <= t % 10 < 5 else ("ok", 0.6)


def _revoked(t: float) -> Outcome:
    return "401", 0.0


def _flaky(t: float) -> Outcome:
    # the server behind this key is down from t=8 to t=16
    return ("500", 0.0) if 8 <= t < 16 else ("ok", 0.3)


UPSTREAMS: dict[str, Callable[[float], Outcome]] = {
    "team-a": _team_a,
    "team-b": _team_b,
    "revoked": _revoked,
    "flaky": _flaky,
}


def run(out: Callable[[str], None] = print) -> int:
    """`byok tour`: the requests, then the health table, through `out`."""
    sel = Selector(
        list(UPSTREAMS),
        strategy="weighted_round_robin",
        weights={"team-a": 3},
        cooldown=2.0,
        max_cooldown=30.0,
        failure_threshold=2,
    )
    engine = "compiled" if COMPILED else "pure-Python"
    out(f"byok engine tour ({engine} engine, weighted_round_robin, simulated clock)")
    out("keys: team-a (weight 3), team-b (429s now and then), revoked (401), flaky (500s 8s-16s)\n")
    for n in range(60):
        t = n * 0.5
        out(f"t={t:5.1f}s  " + _serve(sel, t))
    out("\nhealth at t=30s:")
    rows = [["key", "state", "picks", "ok", "failed", "cooldown"]]
    for view in sel.snapshot(now=30.0):
        remaining = view["cooldown_remaining"]
        numbers = [str(view[name]) for name in ("picks", "successes", "failures")]
        rows.append(
            [view["id"], view["state"], *numbers, f"{remaining:.1f}s" if remaining else "-"]
        )
    for line in columns(rows, right={2, 3, 4}):
        out(line)
    out("\n`byok demo` puts this engine in front of simulated keys, behind a real proxy.")
    return 0


def _serve(sel: Selector, t: float) -> str:
    """One request: try members in failover order until one answers."""
    tried = []
    for key in sel.order(now=t):
        status, value = UPSTREAMS[key](t)
        if status == "ok":
            sel.report_success(key, latency=value, now=t)
            tried.append(f"{key} ok")
            return " -> ".join(tried)
        if status == "429":
            sel.report_rate_limited(key, retry_after=value, now=t)
            tried.append(f"{key} 429 (cooling {value:.0f}s)")
        elif status == "401":
            sel.block(key)
            tried.append(f"{key} 401 (blocked)")
        else:
            sel.report_error(key, now=t)
            state = sel.state(key, now=t)
            tried.append(f"{key} 500" + (" (circuit open)" if state is State.COOLDOWN else ""))
    wait = sel.retry_after(now=t)
    tried.append(f"no key available, retry after {wait:.1f}s" if wait else "no key available")
    return " -> ".join(tried)
