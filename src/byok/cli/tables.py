"""Terminal tables: the key table of /admin/keys, and aligned columns.

A view goes in; out comes a rich renderable (`key_table`, coloured on a
terminal: `byok demo` redraws it live) or plain text (`format_table`,
`columns`: what `byok status` and `byok keys check` print, and what a pipe
or a file gets, without a colour or a cursor code).  rich does the column
alignment; nothing here does I/O.
"""

from __future__ import annotations

import io
import time
from collections.abc import Container, Mapping, Sequence
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

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
INDENT = 4  # key rows sit under their target, which sits under its model
# Left out in this order where the width is short: what is left says which
# keys are out, and why.
DROPPED_FIRST = tuple(
    HEADER.index(name) for name in ("tokens out", "tokens in", "in flight", "latency", "picks")
)
MIN_REASON = 24  # columns kept for the reason, when a reason is that long
STATE_STYLES = {
    "ready": "green",
    "cooldown": "yellow",
    "half_open": "cyan",
    "blocked": "bold red",
    "disabled": "dim",
}
# Plain text is never wrapped: a line per row, however wide, is what a pipe,
# a file or a grep wants.
UNWRAPPED = 100_000


def columns(rows: Sequence[Sequence[str]], right: Container[int] = ()) -> list[str]:
    """Rows of cells as aligned lines, two spaces apart; `right` columns flush right."""
    if not rows:
        return []
    table = _grid(len(rows[0]), right)
    for row in rows:
        table.add_row(*row)
    return plain(table).splitlines()


def key_table(view: Mapping[str, Any]) -> KeyTable:
    """The /admin/keys view as a rich renderable (see KeyTable)."""
    return KeyTable(view)


class KeyTable:
    """The key table of an /admin/keys view, grouped by model and target.

    Under a config line, one header, then each model, its targets, and each
    target's keys.  The key rows of every group share one set of column
    widths: they are one table to the eye (rich has no cell that spans
    columns, so each group is a table of its own, all with the same widths).
    Where the width rich offers is too narrow for every column, the least
    telling columns (DROPPED_FIRST) are left out, so that a key's label,
    state and reason still read whole in an 80-column terminal."""

    def __init__(self, view: Mapping[str, Any]) -> None:
        now = _number(view.get("now")) or time.time()
        config = view.get("config") or {}
        self.config = _config_line(config, now) if config else None
        self.groups: list[tuple[list[Text], list[list[str]]]] = []
        for model in view.get("models") or []:
            lines = [Text(_model_line(model), style="bold")]
            for target in model.get("targets") or []:
                lines.append(Text(f"  {target.get('provider', '?')}/{target.get('model', '?')}"))
                keys = target.get("keys") or []
                if not keys:
                    lines.append(Text(" " * INDENT + "(no keys)", style="dim"))
                self.groups.append((lines, [_key_row(key, now) for key in keys]))
                lines = []
            if lines:  # a model without targets
                self.groups.append((lines, []))
        rows = [list(HEADER), *(row for _, group in self.groups for row in group)]
        self.widths = [max(len(row[n]) for row in rows) for n in range(len(HEADER))]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        shown = self._columns(options.max_width)
        if self.config is not None:
            yield Text(self.config)
        yield self._keys(shown, [], header=True)
        for lines, rows in self.groups:
            yield from lines
            if rows:
                yield self._keys(shown, rows, header=False)
        if not self.groups:
            yield Text("(no models)")

    def _columns(self, width: int) -> list[int]:
        """The columns that fit in `width`, with room for the reason column."""
        shown = list(range(len(HEADER)))
        reason = len(HEADER) - 1
        wanted = min(self.widths[reason], MIN_REASON)
        for dropped in (None, *DROPPED_FIRST):
            if dropped is not None:
                shown.remove(dropped)
            used = INDENT + sum(self.widths[n] + 2 for n in shown if n != reason)
            if used + wanted <= width:
                break
        return shown

    def _keys(self, shown: list[int], rows: list[list[str]], header: bool) -> Padding:
        """Rows in the `shown` columns of HEADER; all but the last (reason)
        have the widths of the whole view, so that groups line up."""
        table = Table(box=None, show_header=header, header_style="bold", pad_edge=False)
        for n in shown:
            last = n == len(HEADER) - 1
            table.add_column(
                HEADER[n],
                justify="right" if n in NUMERIC else "left",
                width=None if last else self.widths[n],
                no_wrap=not last,
            )
        for row in rows:
            table.add_row(*(_styled(n, row[n]) for n in shown))
        return Padding(table, (0, 0, 0, INDENT), expand=False)


def format_table(view: Mapping[str, Any]) -> str:
    """The /admin/keys view as plain text (`key_table` without colour)."""
    return plain(key_table(view))


def plain(renderable: RenderableType) -> str:
    """`renderable` as text without colour or cursor codes, lines unwrapped
    and without trailing spaces."""
    console = Console(
        file=io.StringIO(),
        width=UNWRAPPED,
        color_system=None,
        force_terminal=False,
        highlight=False,
        emoji=False,
        markup=False,
    )
    with console.capture() as captured:
        console.print(renderable)
    return "\n".join(line.rstrip() for line in captured.get().splitlines())


def _grid(count: int, right: Container[int]) -> Table:
    """A table of `count` columns without lines or header, two spaces between cells."""
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1))
    for n in range(count):
        table.add_column(justify="right" if n in right else "left")
    return table


def _styled(column: int, cell: str) -> str | Text:
    """A key's state in its colour (shown on a terminal only)."""
    return Text(cell, style=STATE_STYLES.get(cell, "")) if column == 1 else cell


def _config_line(config: Mapping[str, Any], now: float) -> str:
    parts = [str(config.get("source", "?"))]
    if config.get("generation") is not None:
        parts.append(f"generation {config['generation']}")
    loaded = _number(config.get("loaded_at"))
    if loaded is not None:
        parts.append(f"loaded {_ago(now - loaded)} ago")
    return "config: " + ", ".join(parts)


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
        _reason(key.get("reason"), now) + _next_check(key, now) + _quota(key, now)
        if state != "ready"
        else "",
    ]


def _next_check(key: Mapping[str, Any], now: float) -> str:
    """A blocked key is asked again later: when."""
    due = _number(key.get("revalidate_at"))
    return "" if due is None else f"; next check in {_ago(max(due - now, 0))}"


def _quota(key: Mapping[str, Any], now: float) -> str:
    """A subscription's spent quota window: which, and when it resets."""
    quota = key.get("quota")
    if not isinstance(quota, Mapping):
        return ""
    resets = _number(quota.get("resets_at"))
    if resets is None:
        return ""
    return f"; {quota.get('window', '?')} window resets in {_ago(max(resets - now, 0))}"


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
    # whole seconds first: 899.6 s is 15m00s, not 14m60s
    whole = round(max(seconds, 0.0))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02}h"
