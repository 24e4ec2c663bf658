"""Terminal tables: the key table of /admin/keys, and aligned columns.

Pure functions, a view in and text out: `byok status` prints the key table
of a running byok, `byok demo` redraws it live, `byok keys check` prints its
verdicts in columns.
"""

from __future__ import annotations

import time
from collections.abc import Container, Mapping, Sequence
from typing import Any

HEADER = (
    "key",
    "state",
    "back in",
    "picks",
    "ok",
    "failed",
    "in flight",
    "latency",
    "tokens in",
    "tokens out",
    "reason",
)
NUMERIC = frozenset({2, 3, 4, 5, 6, 7, 8, 9})  # columns aligned right
INDENT = "    "  # key rows sit under their target, which sits under its model


def columns(rows: Sequence[Sequence[str]], right: Container[int] = ()) -> list[str]:
    """Rows of cells as aligned lines, two spaces apart; `right` columns flush right."""
    if not rows:
        return []
    widths = [max(len(row[n]) for row in rows) for n in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if n in right else cell.ljust(width)
            for n, (cell, width) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def format_table(view: Mapping[str, Any]) -> str:
    """The /admin/keys view as a terminal table, grouped by model and target."""
    now = _number(view.get("now")) or time.time()
    out: list[str] = []
    config = view.get("config") or {}
    if config:
        parts = [str(config.get("source", "?"))]
        if config.get("generation") is not None:
            parts.append(f"generation {config['generation']}")
        loaded = _number(config.get("loaded_at"))
        if loaded is not None:
            parts.append(f"loaded {_ago(now - loaded)} ago")
        out.append("config: " + ", ".join(parts))
    # Group lines (model, target) interleave with key rows; the key rows of
    # every group share one set of column widths, so the table reads as one.
    entries: list[str | list[str]] = []
    for model in view.get("models") or []:
        entries.append(_model_line(model))
        for target in model.get("targets") or []:
            entries.append(f"  {target.get('provider', '?')}/{target.get('model', '?')}")
            keys = target.get("keys") or []
            if not keys:
                entries.append(INDENT + "(no keys)")
            entries.extend(_key_row(key, now) for key in keys)
    rows = [list(HEADER)] + [e for e in entries if isinstance(e, list)]
    aligned = iter(columns(rows, NUMERIC))
    out.append(INDENT + next(aligned))
    for entry in entries:
        out.append(entry if isinstance(entry, str) else INDENT + next(aligned))
    if not view.get("models"):
        out.append("(no models)")
    return "\n".join(out)


def _model_line(model: Mapping[str, Any]) -> str:
    name = str(model.get("name", "?"))
    details = ["passthrough"] if model.get("passthrough") else []
    if model.get("strategy"):
        details.append(str(model["strategy"]))
    if model.get("fallbacks"):
        details.append("fallbacks: " + ", ".join(str(f) for f in model["fallbacks"]))
    return f"model {name}" + (f" ({'; '.join(details)})" if details else "")


def _key_row(key: Mapping[str, Any], now: float) -> list[str]:
    state = str(key.get("state", "?"))
    remaining = _number(key.get("cooldown_remaining"))
    latency = _number(key.get("latency_ewma_ms"))
    tokens = key.get("tokens") or {}
    return [
        str(key.get("label", "?")),
        state,
        f"{remaining:.1f}s" if remaining else "-",
        _count(key.get("picks")),
        _count(key.get("successes")),
        _count(key.get("failures")),
        _count(key.get("inflight")),
        f"{latency:.0f}ms" if latency is not None else "-",
        _count(tokens.get("input")),
        _count(tokens.get("output")),
        _reason(key.get("reason"), now) + _next_check(key, now) if state != "ready" else "",
    ]


def _next_check(key: Mapping[str, Any], now: float) -> str:
    """A blocked key is asked again later: when."""
    due = _number(key.get("revalidate_at"))
    return "" if due is None else f"; next check in {_ago(max(due - now, 0))}"


def _reason(reason: Any, now: float) -> str:
    """Why a key is out: the last failure, `429 Rate limit reached, 10s ago`."""
    if not isinstance(reason, Mapping):
        return "-"
    text = " ".join(
        str(part) for part in (reason.get("status"), reason.get("message")) if part is not None
    )
    at = _number(reason.get("at"))
    if at is not None:
        text = f"{text}, {_ago(now - at)} ago" if text else f"{_ago(now - at)} ago"
    return text or "-"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _count(value: Any) -> str:
    number = _number(value)
    if number is None:
        return "-"
    if number < 10_000:
        return f"{number:.0f}"
    if number < 1_000_000:
        return f"{number / 1000:.1f}k"
    return f"{number / 1_000_000:.1f}M"


def _ago(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    if seconds < 86400:
        return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"
    return f"{seconds // 86400:.0f}d{seconds % 86400 // 3600:02.0f}h"
