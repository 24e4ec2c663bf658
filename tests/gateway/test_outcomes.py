"""What an upstream answer means for its key: the status classes and every way
a provider says how long to wait."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from byok.gateway.outcomes import MAX_DELAY, Kind, Outcome, classify, failure, rate_limit_delay

WALL = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, Kind.SUCCESS),
        (201, Kind.SUCCESS),
        (204, Kind.SUCCESS),
        (299, Kind.SUCCESS),
        (400, Kind.CLIENT_ERROR),
        (404, Kind.CLIENT_ERROR),
        (413, Kind.CLIENT_ERROR),
        (422, Kind.CLIENT_ERROR),
        (401, Kind.BLOCKED),
        (403, Kind.BLOCKED),
        (408, Kind.ERROR),
        (429, Kind.RATE_LIMITED),
        (500, Kind.ERROR),
        (502, Kind.ERROR),
        (503, Kind.ERROR),
        (529, Kind.ERROR),
        (301, Kind.ERROR),  # a redirect is not followed: the upstream is misconfigured
        (307, Kind.ERROR),
    ],
)
def test_classify_by_status(status, kind):
    outcome = classify(status, [], WALL)
    assert outcome == Outcome(kind, None, status)


def test_only_a_429_reads_its_headers():
    headers = [("retry-after", "5")]
    assert classify(503, headers, WALL).retry_after is None
    assert classify(429, headers, WALL).retry_after == 5


def test_a_failure_without_an_answer():
    assert failure("connection reset") == Outcome(Kind.ERROR, detail="connection reset")
    assert failure("slow", timed_out=True).timed_out


def iso(offset: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(WALL + offset, timezone.utc).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("headers", "delay"),
    [
        ({}, None),
        ({"retry-after": "20"}, 20.0),
        ({"retry-after": " 1.5 "}, 1.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "-3"}, 0.0),  # clamped
        ({"retry-after": "999999999"}, MAX_DELAY),  # not believed beyond a day
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": formatdate(WALL + 30, usegmt=True)}, 30.0),  # an HTTP date
        ({"retry-after": formatdate(WALL - 30, usegmt=True)}, 0.0),  # already past
        ({"retry-after": "Thu, 01 Jan 2026 00:00:40"}, 40.0),  # no zone: GMT
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # the finer one first
        ({"retry-after-ms": "x", "retry-after": "9"}, 9.0),
        # OpenAI: durations for each limit; the exhausted one decides
        ({"x-ratelimit-reset-requests": "6m0s", "x-ratelimit-remaining-requests": "0"}, 360.0),
        ({"x-ratelimit-reset-tokens": "1h2m3.5s", "x-ratelimit-remaining-tokens": "0"}, 3723.5),
        ({"x-ratelimit-reset-requests": "120ms", "x-ratelimit-remaining-requests": "0"}, 0.12),
        ({"x-ratelimit-reset-requests": "17", "x-ratelimit-remaining-requests": "0"}, 17.0),
        ({"x-ratelimit-reset-requests": "6m0x", "x-ratelimit-remaining-requests": "0"}, None),
        ({"x-ratelimit-reset-requests": "", "x-ratelimit-remaining-requests": "0"}, None),
        (
            {
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "2s",
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": "30s",
            },
            30.0,  # both exhausted: the longer wait
        ),
        (
            {
                "x-ratelimit-remaining-requests": "12",
                "x-ratelimit-reset-requests": "2s",
                "x-ratelimit-remaining-tokens": "500",
                "x-ratelimit-reset-tokens": "30s",
            },
            2.0,  # none exhausted: the soonest reset
        ),
        (
            {
                "x-ratelimit-remaining-requests": "12",
                "x-ratelimit-reset-requests": "2s",
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": "30s",
            },
            30.0,  # the exhausted limit, though another resets sooner
        ),
        # Anthropic: RFC 3339 timestamps per limit
        (
            {
                "anthropic-ratelimit-requests-remaining": "0",
                "anthropic-ratelimit-requests-reset": iso(12),
            },
            12.0,
        ),
        (
            {
                "anthropic-ratelimit-output-tokens-remaining": "0",
                "anthropic-ratelimit-output-tokens-reset": iso(45),
                "anthropic-ratelimit-requests-remaining": "40",
                "anthropic-ratelimit-requests-reset": iso(3),
            },
            45.0,
        ),
        (
            {
                "anthropic-ratelimit-tokens-remaining": "0",
                "anthropic-ratelimit-tokens-reset": "2026-01-01T00:01:00",  # no zone: UTC
            },
            60.0,
        ),
        (
            {
                "anthropic-ratelimit-tokens-remaining": "0",
                "anthropic-ratelimit-tokens-reset": "next tuesday",
            },
            None,
        ),
        ({"anthropic-ratelimit-input-tokens-reset": iso(-5)}, 0.0),
    ],
)
def test_rate_limit_delay(headers, delay):
    found = rate_limit_delay(headers, WALL)
    if delay is None:
        assert found is None
    else:
        assert found == pytest.approx(delay)


def test_a_429_carries_its_delay():
    outcome = classify(429, [("retry-after", "7"), ("content-type", "application/json")], WALL)
    assert outcome == Outcome(Kind.RATE_LIMITED, 7.0, 429)
    assert classify(429, [], WALL).retry_after is None


# ---- quota windows of subscription accounts --------------------------------------

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
UNIFIED = "anthropic-ratelimit-unified-"


@pytest.mark.parametrize(
    ("headers", "window", "delay"),
    [
        (  # Claude: the 5-hour window spent, a shorter retry-after beside it
            {
                "retry-after": "60",
                f"{UNIFIED}status": "rejected",
                f"{UNIFIED}reset": str(int(NOW + 18000)),
                f"{UNIFIED}representative-claim": "five_hour",
                f"{UNIFIED}5h-status": "rejected",
                f"{UNIFIED}5h-reset": str(int(NOW + 18000)),
                f"{UNIFIED}7d-status": "allowed",
                f"{UNIFIED}7d-reset": str(int(NOW + 400000)),
            },
            "five_hour",
            18000.0,
        ),
        (  # two windows spent: the key is back when both are whole
            {
                f"{UNIFIED}5h-status": "rejected",
                f"{UNIFIED}5h-reset": str(int(NOW + 3000)),
                f"{UNIFIED}7d-status": "rejected",
                f"{UNIFIED}7d-reset": str(int(NOW + 90000)),
            },
            "7d",
            90000.0,
        ),
        (  # the claim names the unified reset's window, not another's
            {
                f"{UNIFIED}status": "rejected",
                f"{UNIFIED}reset": str(int(NOW + 3000)),
                f"{UNIFIED}representative-claim": "five_hour",
                f"{UNIFIED}7d_opus-status": "rejected",
                f"{UNIFIED}7d_opus-reset": str(int(NOW + 90000)),
            },
            "7d_opus",
            90000.0,
        ),
        (  # a reset in milliseconds, and one as an RFC 3339 time
            {f"{UNIFIED}status": "rejected", f"{UNIFIED}reset": str(int((NOW + 600) * 1000))},
            "unified",
            600.0,
        ),
        (
            {f"{UNIFIED}5h-status": "rejected", f"{UNIFIED}5h-reset": "2027-01-15T09:00:00Z"},
            "5h",
            3600.0,
        ),
        (  # Codex: the weekly window spent, the 5-hour one not
            {
                "x-codex-primary-used-percent": "42",
                "x-codex-primary-window-minutes": "300",
                "x-codex-primary-reset-after-seconds": "3600",
                "x-codex-secondary-used-percent": "100",
                "x-codex-secondary-window-minutes": "10080",
                "x-codex-secondary-reset-after-seconds": "486400",
            },
            "7d",
            486400.0,
        ),
        (
            {"x-codex-primary-used-percent": "100.0", "x-codex-primary-reset-at": str(NOW + 90)},
            "primary",
            90.0,
        ),
        (
            {
                "x-codex-primary-used-percent": "100",
                "x-codex-primary-window-minutes": "300",
                "x-codex-primary-reset-after-seconds": "60",
            },
            "5h",
            60.0,
        ),
        (
            {
                "x-codex-primary-used-percent": "100",
                "x-codex-primary-window-minutes": "90",
                "x-codex-primary-reset-after-seconds": "60",
            },
            "90m",
            60.0,
        ),
        (  # a reset further than 8 days is not believed
            {f"{UNIFIED}status": "rejected", f"{UNIFIED}reset": str(int(NOW + 30 * 86400))},
            "unified",
            8 * 86400.0,
        ),
    ],
)
def test_a_spent_quota_window_cools_the_key_until_it_resets(headers, window, delay):
    outcome = classify(429, list(headers.items()), NOW)
    assert outcome == Outcome(Kind.RATE_LIMITED, delay, 429, window=window)


@pytest.mark.parametrize(
    "headers",
    [
        {f"{UNIFIED}status": "allowed_warning", f"{UNIFIED}reset": str(int(NOW + 99))},
        {f"{UNIFIED}status": "rejected", f"{UNIFIED}reset": "soon"},
        {"x-codex-primary-used-percent": "99.5", "x-codex-primary-reset-after-seconds": "99"},
        {"x-codex-primary-used-percent": "100"},  # no reset said
        # overage is not a window: a plan without it says rejected on every answer
        {f"{UNIFIED}status": "allowed", f"{UNIFIED}overage-status": "rejected"},
        {f"{UNIFIED}fallback-status": "rejected", f"{UNIFIED}fallback-reset": str(NOW + 99)},
        # a window that has reset already: the retry-after decides
        {f"{UNIFIED}status": "rejected", f"{UNIFIED}reset": str(int(NOW - 10))},
        {f"{UNIFIED}5h-status": "rejected", f"{UNIFIED}5h-reset": str(int(NOW - 10))},
        {"x-codex-primary-used-percent": "100", "x-codex-primary-reset-after-seconds": "0"},
    ],
)
def test_a_window_not_spent_or_without_a_reset_leaves_the_other_headers_to_say(headers):
    outcome = classify(429, [*headers.items(), ("retry-after", "7")], NOW)
    assert outcome == Outcome(Kind.RATE_LIMITED, 7.0, 429)
